package main

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"opspilot/alerting"
)

func newRulesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "Alerting and recording rules: check rule files, list the server's rules and alerts",
		Long: `Rule files are Prometheus/vmalert rule files whose expressions are MetricsQL
(a superset of PromQL), evaluated by the server every interval (1s unless a
group sets its own). check reads files and reports every problem with its
file, line and column; list shows the running server's groups, each rule's
state and health and its active alerts.`,
	}
	cmd.AddCommand(newRulesCheckCmd(), newRulesListCmd())
	return cmd
}

func newRulesCheckCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "check FILE...",
		Short: "Check rule files (paths or globs) and report each problem with its line and column",
		Example: `  opspilot rules check examples/alerting/billing.rules.yaml
  opspilot rules check 'rules/*.yaml'`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			set, err := alerting.LoadRuleFiles(args)
			if err != nil {
				var re alerting.RuleErrors
				if !errors.As(err, &re) {
					return err
				}
				files := map[string]bool{}
				for _, e := range re {
					fmt.Fprintln(cmd.ErrOrStderr(), e)
					files[e.File] = true
				}
				return fmt.Errorf("%d problem(s) in %d file(s); fix them and run the check again", len(re), len(files))
			}
			for _, f := range set.Files {
				g, r := f.Count()
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %d groups, %d rules OK\n", f.Path, g, r)
			}
			return nil
		},
	}
}

func newRulesListCmd() *cobra.Command {
	var f clientFlags
	var alerts bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "The server's rule groups: each rule's state, health, active alerts and last error",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			var groups []alerting.GroupStatus
			if err := c.do(cmd.Context(), "GET", "/api/v1/rules", nil, &groups); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if len(groups) == 0 {
				fmt.Fprintln(w, "No rules: list rule files under alerting.rules.files in opspilot.yaml.")
				return nil
			}
			tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
			fmt.Fprintln(tw, "GROUP\tRULE\tTYPE\tSTATE\tHEALTH\tALERTS\tLAST EVALUATION\tERROR")
			for _, g := range groups {
				for _, r := range g.Rules {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", g.Name, r.Name, r.Type, dash(r.State), r.Health,
						alertCounts(r.Alerts), ago(r.LastEvaluation), dash(r.LastError))
				}
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if !alerts {
				return nil
			}
			fmt.Fprintln(w)
			tw = tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
			fmt.Fprintln(tw, "ALERT\tSTATE\tVALUE\tACTIVE SINCE\tLABELS")
			for _, g := range groups {
				for _, r := range g.Rules {
					for _, a := range r.Alerts {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Name, a.State, short(a.Value), ago(a.ActiveAt), labelString(a.Labels))
					}
				}
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&alerts, "alerts", false, "also list each active alert with its labels and value")
	f.register(cmd)
	return cmd
}

// alertCounts summarises a rule's active alerts: "2 firing, 1 pending".
func alertCounts(as []alerting.AlertStatus) string {
	n := map[string]int{}
	for _, a := range as {
		n[a.State]++
	}
	var parts []string
	for _, s := range []string{"firing", "pending"} {
		if n[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n[s], s))
		}
	}
	return dash(strings.Join(parts, ", "))
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return time.Since(t).Round(100*time.Millisecond).String() + " ago"
}

func labelString(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		if k != "alertname" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return dash(strings.Join(parts, ", "))
}
