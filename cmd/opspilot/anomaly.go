package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"opspilot/analyzer"
)

func newAnomalyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "anomaly",
		Short: "Anomaly detection: score series offline",
	}
	var in, out string
	score := &cobra.Command{
		Use:   "score-csv --in FILE_OR_DIR --out DIR",
		Short: "Score timestamp,value CSV files with the streaming ensemble (NAB's result layout)",
		Long: `score-csv reads timestamp,value CSV files (a file, or a directory walked
recursively), runs each through the streaming anomaly ensemble one point at a
time (no look-ahead), and writes timestamp,value,anomaly_score files with the
same relative paths, rows and order under --out: the result layout of the
Numenta Anomaly Benchmark, so NAB's scorer reads them directly.`,
		Example: `  opspilot anomaly score-csv --in ../shared/data/nab/data --out results
  cd ../shared/tools/nabscore && go run . -data ../../data/nab/data -labels ../../data/nab/labels/combined_windows.json -results ../../../main/results`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if in == "" || out == "" {
				return errors.New("pass --in FILE_OR_DIR and --out DIR")
			}
			if err := analyzer.ScoreCSV(in, out, analyzer.NewDefaultEnsemble); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "scores written under %s\n", out)
			return nil
		},
	}
	score.Flags().StringVar(&in, "in", "", "a timestamp,value CSV file or a directory of them")
	score.Flags().StringVar(&out, "out", "", "where the scored files go (same relative paths)")
	cmd.AddCommand(score)
	return cmd
}
