package main

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"opspilot/analyzer"
	"opspilot/analyzer/loganomaly"
	"opspilot/analyzer/online"
)

func newAnomalyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "anomaly",
		Short: "Anomaly detection: list the online scores, score series offline",
	}
	cmd.AddCommand(newAnomalyListCmd(), newAnomalyIncidentsCmd(), newAnomalyTemplatesCmd())
	var in, out, model string
	score := &cobra.Command{
		Use:   "score-csv --in FILE_OR_DIR --out DIR [--model nab]",
		Short: "Score timestamp,value CSV files with the streaming ensemble (NAB's result layout)",
		Long: `score-csv reads timestamp,value CSV files (a file, or a directory walked
recursively), runs each through the streaming anomaly ensemble one point at a
time (no look-ahead), and writes timestamp,value,anomaly_score files with the
same relative paths, rows and order under --out: the result layout of the
Numenta Anomaly Benchmark, so NAB's scorer reads them directly.

--model picks the detector: nab (the default, the ensemble tuned on NAB),
nab-compact (the same without its ARTime member: less than half the memory
per series), or any model the online analyzer offers (ewma, robust-z,
seasonal, decompose, holt-winters, bocpd), to see how a query's model would
have scored a recorded series.`,
		Example: `  opspilot anomaly score-csv --in ../shared/data/nab/data --out results
  cd ../shared/tools/nabscore && go run . -data ../../data/nab/data -labels ../../data/nab/labels/combined_windows.json -results ../../../main/results
  opspilot anomaly score-csv --in billing-latency.csv --out scored --model seasonal`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if in == "" || out == "" {
				return errors.New("pass --in FILE_OR_DIR and --out DIR")
			}
			newModel := analyzer.NewDefaultEnsemble
			switch model {
			case "", "nab":
			case "nab-compact":
				newModel = analyzer.NewCompactEnsemble
			default:
				if _, err := analyzer.NewOnlineModelNamed(model); err != nil {
					return fmt.Errorf("--model: %w", err)
				}
				newModel = func() analyzer.Model {
					m, _ := analyzer.NewOnlineModelNamed(model)
					return m
				}
			}
			if err := analyzer.ScoreCSV(in, out, newModel); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "scores written under %s\n", out)
			return nil
		},
	}
	score.Flags().StringVar(&in, "in", "", "a timestamp,value CSV file or a directory of them")
	score.Flags().StringVar(&out, "out", "", "where the scored files go (same relative paths)")
	score.Flags().StringVar(&model, "model", "nab", "the detector: "+strings.Join(analyzer.OnlineModelNames(), ", "))
	cmd.AddCommand(score)
	return cmd
}

func newAnomalyListCmd() *cobra.Command {
	var f clientFlags
	var minScore float64
	var limit int
	var match []string
	var service string
	cmd := &cobra.Command{
		Use:   "list [--service S] [--match label=value]... [--min-score 0.9]",
		Short: "List the series the online analyzer scores, most anomalous first",
		Long: `list shows the online analyzer's latest verdict per series: its score
(>= 0.9 is an anomaly), the value it expected and the band it considers
normal. The same numbers are in the TSDB as anomaly_score, anomaly_expected,
anomaly_lower and anomaly_upper, labelled like the source series plus for=QUERY.`,
		Example: `  opspilot anomaly list --min-score 0.9
  opspilot anomaly list --match service=billing --match for=service_latency_p95`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			q := url.Values{}
			for _, m := range match {
				k, v, ok := strings.Cut(m, "=")
				if !ok || k == "" {
					return fmt.Errorf("--match %q: want label=value, e.g. service=billing", m)
				}
				q.Set(k, v)
			}
			if service != "" {
				q.Set("service", service)
			}
			q.Set("min_score", strconv.FormatFloat(minScore, 'g', -1, 64))
			q.Set("limit", strconv.Itoa(limit))
			var out struct {
				Anomalies []online.SeriesStatus `json:"anomalies"`
				Series    int                   `json:"series"`
			}
			if err := c.do(cmd.Context(), "GET", "/api/v1/analyzer/anomalies?"+q.Encode(), nil, &out); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 3, ' ', 0)
			fmt.Fprintln(tw, "SCORE\tFOR\tSERIES\tVALUE EXPECTED\tNORMAL BAND\tAT")
			for _, a := range out.Anomalies {
				expected, band := "-", "-"
				if a.Expected != nil {
					expected = strconv.FormatFloat(*a.Expected, 'g', 4, 64)
				}
				if a.Lower != nil && a.Upper != nil {
					band = fmt.Sprintf("%.4g .. %.4g", *a.Lower, *a.Upper)
				}
				fmt.Fprintf(tw, "%.3f\t%s\t%s\t%s\t%s\t%s\n", a.Score, a.Query, seriesLabels(a.Labels), expected, band, a.Time.Local().Format("15:04:05"))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d of %d scored series shown\n", len(out.Anomalies), out.Series)
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&service, "service", "", "only this service's series (same as --match service=S)")
	cmd.Flags().Float64Var(&minScore, "min-score", 0, "only series scoring at least this (0.9 = anomalous)")
	cmd.Flags().IntVar(&limit, "limit", 50, "at most this many series")
	cmd.Flags().StringArrayVar(&match, "match", nil, "label=value the series must have (repeatable)")
	return cmd
}

// seriesLabels prints labels as {a="b", ...} without `for`, sorted.
func seriesLabels(ls map[string]string) string {
	keys := make([]string, 0, len(ls))
	for k := range ls {
		if k != "for" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%q", k, ls[k])
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func newAnomalyIncidentsCmd() *cobra.Command {
	var f clientFlags
	var since string
	cmd := &cobra.Command{
		Use:   "incidents [--since 1h]",
		Short: "Group anomalies that fired together and rank their likely origins",
		Long: `incidents correlates the anomaly episodes of the last --since into
incidents (anomalies close in time and related by service, node, datacenter
or the configured call graph, analyzer.root_cause.calls) and ranks each
incident's likely origins, with the evidence, most likely first.`,
		Example: `  opspilot anomaly incidents --since 30m`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			var out struct {
				Incidents []online.Incident `json:"incidents"`
			}
			if err := c.do(cmd.Context(), "GET", "/api/v1/analyzer/incidents?since="+url.QueryEscape(since), nil, &out); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if len(out.Incidents) == 0 {
				fmt.Fprintf(w, "no anomalies in the last %s\n", since)
				return nil
			}
			for i, inc := range out.Incidents {
				if i > 0 {
					fmt.Fprintln(w)
				}
				fmt.Fprintf(w, "incident %s .. %s, %d anomalous series\n", inc.Start.Local().Format("15:04:05"), inc.End.Local().Format("15:04:05"), len(inc.Anomalies))
				for _, a := range inc.Anomalies {
					fmt.Fprintf(w, "  %s  %-24s %s peak %.2f\n", a.Onset.Local().Format("15:04:05"), a.Series.Metric, seriesName(a.Series.Service, a.Series.Instance, a.Series.Node), a.Peak)
				}
				fmt.Fprintf(w, "likely origins:\n%s\n", indent(inc.Summary, "  "))
			}
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&since, "since", "1h", "how far back to look for anomalies")
	return cmd
}

func seriesName(service, instance, node string) string {
	var parts []string
	for _, p := range [][2]string{{"service", service}, {"instance", instance}, {"node", node}} {
		if p[1] != "" {
			parts = append(parts, p[0]+"="+p[1])
		}
	}
	return strings.Join(parts, " ")
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n")
}

func newAnomalyTemplatesCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "templates SERVICE",
		Short: "A service's newest log templates (line shapes first seen), with an example line",
		Long: `templates lists the log line shapes (Drain templates: numbers, ids,
addresses and quoted strings masked) that the log scanner saw for the first
time in a service's logs, newest first. A burst of new templates is the
log-side sign of a new failure mode; opspilot_log_new_templates counts them
and the analyzer scores it (for="log_new_templates").`,
		Example: `  opspilot anomaly templates billing`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			var out struct {
				Templates []loganomaly.TemplateInfo `json:"templates"`
			}
			if err := c.do(cmd.Context(), "GET", "/api/v1/analyzer/log-templates?service="+url.QueryEscape(args[0]), nil, &out); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if len(out.Templates) == 0 {
				fmt.Fprintf(w, "no new log templates for %s yet\n", args[0])
				return nil
			}
			for _, t := range out.Templates {
				fmt.Fprintf(w, "%s  %s\n           e.g. %s\n", t.FirstSeen.Local().Format("01-02 15:04:05"), t.Template, t.Example)
			}
			return nil
		},
	}
	f.register(cmd)
	return cmd
}
