package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/common/model"
	"github.com/spf13/cobra"

	"opspilot/tsdb"
)

func newQueryCmd() *cobra.Command {
	var (
		server, token, output, at string
		rng, step                 time.Duration
		timeout                   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "query EXPR",
		Short: "Run a MetricsQL/PromQL query against an opspilot server",
		Long: `query evaluates EXPR on the server's TSDB: an instant query at --time
(default now), or with --range a range query over the last RANGE at --step.`,
		Example: `  opspilot query opspilot_build_info
  opspilot query --range 1h --step 1m 'rate(opspilot_http_requests_total[5m])'
  opspilot query -o json up`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if token == "" {
				token = os.Getenv("OPSPILOT_TOKEN")
			}
			if output != "table" && output != "json" {
				return fmt.Errorf("--output %q: use table or json", output)
			}
			ccfg := tsdb.DefaultClientConfig()
			ccfg.Timeout = timeout
			ccfg.RetryMaxElapsed = 3 * time.Second
			client, err := tsdb.NewClient(tsdb.LocalEndpoints(server), ccfg, tsdb.ClientOptions{BearerToken: token})
			if err != nil {
				return err
			}
			end := time.Now()
			if at != "" {
				end, err = parseTime(at)
				if err != nil {
					return fmt.Errorf("--time: %w", err)
				}
			}
			var res tsdb.Result
			if rng > 0 {
				if step <= 0 {
					step = max(rng/250, time.Second).Round(time.Second)
				}
				res, err = client.QueryRange(cmd.Context(), args[0], tsdb.Range{Start: end.Add(-rng), End: end, Step: step})
			} else {
				res, err = client.Query(cmd.Context(), args[0], end)
			}
			if err != nil {
				return errorHint(err, server)
			}
			for _, w := range res.Warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
			}
			if output == "json" {
				return writeJSONResult(cmd.OutOrStdout(), res.Value)
			}
			if n := writeTable(cmd.OutOrStdout(), res.Value); n == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "(no series)")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&server, "server", "http://127.0.0.1:9440", "opspilot server URL")
	cmd.Flags().StringVar(&token, "token", "", "API token (default $OPSPILOT_TOKEN)")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	cmd.Flags().StringVar(&at, "time", "", "evaluation time (RFC 3339 or Unix seconds); the end of the range with --range")
	cmd.Flags().DurationVar(&rng, "range", 0, "run a range query over this duration ending at --time, e.g. 1h")
	cmd.Flags().DurationVar(&step, "step", 0, "range query resolution (default range/250, at least 1s)")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "give up on the query after this long")
	_ = cmd.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"table", "json"}, cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

func parseTime(s string) (time.Time, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		// Unix seconds between 1970 and 5138: rejects NaN, Inf and typos.
		if !(f >= 0 && f < 1e11) {
			return time.Time{}, fmt.Errorf("%q is out of range for Unix seconds; use RFC 3339 (2026-11-26T10:00:00Z) or Unix seconds", s)
		}
		sec := int64(f)
		return time.Unix(sec, int64((f-float64(sec))*1e9)), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return t, fmt.Errorf("%q is neither RFC 3339 (2026-11-26T10:00:00Z) nor Unix seconds", s)
	}
	return t, nil
}

// writeJSONResult prints the result the way the Prometheus API's data field does.
func writeJSONResult(w io.Writer, v model.Value) error {
	if v == nil {
		_, err := fmt.Fprintln(w, `{"resultType":"vector","result":[]}`)
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(map[string]any{"resultType": v.Type().String(), "result": v})
}

// writeTable prints v as aligned columns and returns how many series it had.
func writeTable(w io.Writer, v model.Value) int {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	switch v := v.(type) {
	case model.Vector:
		sort.Slice(v, func(i, j int) bool { return v[i].Metric.String() < v[j].Metric.String() })
		fmt.Fprintln(tw, "SERIES\tVALUE\tTIME")
		for _, s := range v {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Metric, formatValue(s.Value), s.Timestamp.Time().UTC().Format(time.RFC3339))
		}
		return len(v)
	case model.Matrix:
		sort.Slice(v, func(i, j int) bool { return v[i].Metric.String() < v[j].Metric.String() })
		fmt.Fprintln(tw, "SERIES\tTIME\tVALUE")
		for _, s := range v {
			for i, p := range s.Values {
				name := ""
				if i == 0 {
					name = s.Metric.String()
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\n", name, p.Timestamp.Time().UTC().Format(time.RFC3339), formatValue(p.Value))
			}
		}
		return len(v)
	case *model.Scalar:
		fmt.Fprintf(tw, "%s\t%s\n", formatValue(v.Value), v.Timestamp.Time().UTC().Format(time.RFC3339))
		return 1
	case *model.String:
		fmt.Fprintf(tw, "%s\t%s\n", strings.TrimSpace(v.Value), v.Timestamp.Time().UTC().Format(time.RFC3339))
		return 1
	}
	return 0
}

func formatValue(v model.SampleValue) string {
	return strconv.FormatFloat(float64(v), 'g', -1, 64)
}
