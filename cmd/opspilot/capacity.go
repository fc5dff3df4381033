package main

import (
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"opspilot/analyzer/online"
)

func newCapacityCmd() *cobra.Command {
	var f clientFlags
	var scope, resource, history, horizon, capacity, usage string
	var threshold float64
	cmd := &cobra.Command{
		Use:   "capacity NAME [--scope service|datacenter|nodes] [--resource cpu|memory|kpi]",
		Short: "Forecast a service's, datacenter's or node group's usage and when it runs out",
		Long: `capacity reads weeks of usage from the TSDB, fits a trend with daily and
weekly seasonality (Holt-Winters, parameters fitted by optimisation),
forecasts it with intervals, and reports when it reaches capacity (times
--threshold) at the current growth: the mean forecast, and the pessimistic
one (upper bound of the interval).

Built in: for a service, CPU cores against its instances' CPU limits and
memory against their memory limits, and its gateway request rate (kpi, with
--capacity); for a datacenter or a node group (--scope nodes, NAME a regular
expression over node names), host CPU against cores and memory against
physical memory. --usage and --capacity take any MetricsQL expression.`,
		Example: `  opspilot capacity billing --resource memory
  opspilot capacity dc1 --scope datacenter --threshold 0.8
  opspilot capacity billing --resource kpi --capacity 'sum(billing_capacity_tps)'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			q := url.Values{"scope": {scope}, "name": {args[0]}, "resource": {resource}, "history": {history}, "horizon": {horizon}}
			if capacity != "" {
				q.Set("capacity", capacity)
			}
			if usage != "" {
				q.Set("usage", usage)
			}
			if threshold > 0 {
				q.Set("threshold", strconv.FormatFloat(threshold, 'g', -1, 64))
			}
			var r online.CapacityForecast
			if err := c.do(cmd.Context(), "GET", "/api/v1/analyzer/capacity?"+q.Encode(), nil, &r); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%s %s, %s\n", r.Scope, r.Name, r.Resource)
			fmt.Fprintf(w, "  usage now     %.4g of %.4g (%.0f%%); limit %.4g\n", r.Current, r.Capacity, 100*r.Utilisation, r.Limit)
			fmt.Fprintf(w, "  growth        %+.4g per day\n", r.GrowthPerDay)
			fmt.Fprintf(w, "  model         %s, confidence %s, data %s .. %s", r.Method, r.Confidence, r.DataStart.Local().Format("2006-01-02 15:04"), r.DataEnd.Local().Format("2006-01-02 15:04"))
			if len(r.Seasons) > 0 {
				fmt.Fprintf(w, ", seasons %v", r.Seasons)
			}
			fmt.Fprintln(w)
			if r.Reason != "" {
				fmt.Fprintf(w, "  note          %s\n", r.Reason)
			}
			switch {
			case r.AlreadyExhausted:
				fmt.Fprintln(w, "  exhausted     now: usage is at or above the limit")
			case r.ExhaustAt != nil:
				fmt.Fprintf(w, "  exhausted     %s (in %s)\n", r.ExhaustAt.Local().Format("2006-01-02 15:04"), roundDays(r.ExhaustAt.Sub(r.DataEnd)))
			default:
				fmt.Fprintln(w, "  exhausted     not within the horizon")
			}
			if r.ExhaustAtPessimistic != nil && !r.AlreadyExhausted {
				fmt.Fprintf(w, "  pessimistic   %s (in %s)\n", r.ExhaustAtPessimistic.Local().Format("2006-01-02 15:04"), roundDays(r.ExhaustAtPessimistic.Sub(r.DataEnd)))
			}
			fmt.Fprintf(w, "  usage         %s\n", r.UsageExpr)
			if r.CapacityExpr != "" {
				fmt.Fprintf(w, "  capacity      %s\n", r.CapacityExpr)
			}
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&scope, "scope", "service", "service, datacenter or nodes (NAME is then a regular expression over node names)")
	cmd.Flags().StringVar(&resource, "resource", "cpu", "cpu, memory or kpi (gateway requests/s of a service)")
	cmd.Flags().StringVar(&history, "history", "28d", "how much usage history to fit")
	cmd.Flags().StringVar(&horizon, "horizon", "30d", "how far ahead to forecast")
	cmd.Flags().StringVar(&capacity, "capacity", "", "capacity: a number, or a MetricsQL expression (default: built in for cpu and memory)")
	cmd.Flags().StringVar(&usage, "usage", "", "usage: a MetricsQL expression returning one series (default: built in)")
	cmd.Flags().Float64Var(&threshold, "threshold", 0, "fraction of capacity that counts as exhausted, e.g. 0.8 (default 1)")
	return cmd
}

// roundDays prints a duration in days and hours when it is long.
func roundDays(d time.Duration) string {
	if d >= 48*time.Hour {
		return fmt.Sprintf("%.1f days", d.Hours()/24)
	}
	return d.Round(time.Minute).String()
}
