package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"opspilot/autoscaler"
	"opspilot/examples/autoscaling"
	"opspilot/orchestrator/control"
	omodel "opspilot/orchestrator/model"
	"opspilot/orchestrator/store"
	"opspilot/tsdb"
)

// newAutoscaler builds the autoscaling loop of the control plane: it reads
// policies from the orchestrator's store, metrics through the TSDB client
// (once it exists) and scales through the controller's scale API.
func newAutoscaler(cfg FileConfig, orch *orchestrator, q *lateTSDB, reg prometheus.Registerer, log *slog.Logger) (*autoscaler.Loop, error) {
	return autoscaler.NewLoop(cfg.Autoscaler, autoscaler.LoopOptions{
		Querier:    tsdbQuerier{q},
		Target:     orchTarget{orch.st, orch.ctrl},
		Recorder:   eventRecorder{orch.ctrl.Events()},
		Policies:   func(ctx context.Context) ([]autoscaler.Policy, error) { return listPolicies(ctx, orch.st) },
		Registerer: reg,
		Log:        log,
	})
}

func listPolicies(ctx context.Context, st *store.Store) ([]autoscaler.Policy, error) {
	return listValues[autoscaler.Policy](ctx, st, control.KindAutoscalingPolicy)
}

// listValues returns the values of every stored object of a kind.
func listValues[T any](ctx context.Context, st *store.Store, kind string) ([]T, error) {
	vs, _, err := store.List[T](ctx, st, kind)
	if err != nil {
		return nil, err
	}
	out := make([]T, len(vs))
	for i, v := range vs {
		out[i] = v.Value
	}
	return out, nil
}

// tsdbQuerier adapts the TSDB client to the autoscaler's Querier and
// RangeQuerier.
type tsdbQuerier struct{ l *lateTSDB }

func (t tsdbQuerier) Query(ctx context.Context, expr string, at time.Time) ([]autoscaler.Sample, error) {
	// Decide on the newest samples: the loop checks their age itself, and
	// the embedded store's 1 s latency offset would add a second.
	res, err := t.l.Query(tsdb.WithQueryParams(ctx, newestParams), expr, at)
	if err != nil {
		return nil, err
	}
	var out []autoscaler.Sample
	switch v := res.Value.(type) {
	case model.Vector:
		for _, s := range v {
			out = append(out, autoscaler.Sample{Labels: labelMap(s.Metric), Value: float64(s.Value)})
		}
	case *model.Scalar:
		out = append(out, autoscaler.Sample{Labels: map[string]string{}, Value: float64(v.Value)})
	default:
		return nil, fmt.Errorf("the query returned a %s, want an instant vector", res.Value.Type())
	}
	return out, nil
}

func (t tsdbQuerier) QueryRange(ctx context.Context, expr string, start, end time.Time, step time.Duration) ([]time.Time, []float64, error) {
	res, err := t.l.QueryRange(ctx, expr, tsdb.Range{Start: start, End: end, Step: step})
	if err != nil {
		return nil, nil, err
	}
	m, ok := res.Value.(model.Matrix)
	if !ok {
		return nil, nil, fmt.Errorf("the range query returned a %s, want a matrix", res.Value.Type())
	}
	if len(m) > 1 {
		return nil, nil, fmt.Errorf("the query returned %d series; aggregate it to one", len(m))
	}
	var ts []time.Time
	var vs []float64
	if len(m) == 1 {
		for _, p := range m[0].Values {
			ts, vs = append(ts, p.Timestamp.Time()), append(vs, float64(p.Value))
		}
	}
	return ts, vs, nil
}

// newestParams asks VictoriaMetrics for latency_offset 1ms (its minimum);
// Prometheus ignores the parameter.
var newestParams = map[string]string{"latency_offset": "1ms"}

func labelMap(m model.Metric) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[string(k)] = string(v)
	}
	return out
}

// orchTarget scales services through the controller.
type orchTarget struct {
	st   *store.Store
	ctrl *control.Controller
}

func (o orchTarget) Get(ctx context.Context, service string) (autoscaler.Scale, error) {
	s, err := store.Get[omodel.Service](ctx, o.st, store.KindService, service)
	if errors.Is(err, store.ErrNotFound) {
		return autoscaler.Scale{}, fmt.Errorf("service %s: %w", service, autoscaler.ErrNoService)
	}
	if err != nil {
		return autoscaler.Scale{}, err
	}
	insts, _, err := store.List[omodel.Instance](ctx, o.st, store.KindInstance)
	if err != nil {
		return autoscaler.Scale{}, err
	}
	sc := autoscaler.Scale{Replicas: s.Value.Replicas,
		CPU: float64(s.Value.Requests.MilliCPU) / 1000, Memory: float64(s.Value.Requests.MemoryBytes)}
	for _, v := range insts {
		i := v.Value
		// As the HPA ignores pods being deleted and failed pods.
		if i.Service != service || i.Desired == omodel.DesiredStop || i.State == omodel.StateFailed || i.State == omodel.StateStopped {
			continue
		}
		sc.Instances = append(sc.Instances, autoscaler.Instance{Name: i.ID, Ready: i.Ready()})
	}
	return sc, nil
}

func (o orchTarget) Scale(ctx context.Context, service string, replicas int, who, why string) error {
	_, err := o.ctrl.Scale(ctx, service, replicas, who, why, nil)
	return err
}

// eventRecorder puts the autoscaler's events in the orchestrator's event
// log, on the service they concern.
type eventRecorder struct{ e *control.Events }

func (r eventRecorder) Record(ctx context.Context, ev autoscaler.Event) {
	r.e.Record(ctx, control.Event{Type: ev.Type, Kind: "service", Object: ev.Service, Reason: ev.Reason,
		Message: ev.Message, Who: autoscaler.Who})
}

func newAutoscalerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "autoscaler",
		Short: "What the autoscaler decides: its policies' values, recommendations and forecasts",
		Long: `The autoscaler evaluates every AutoscalingPolicy (opspilot apply -f) each
second in the control plane. list shows each service's last evaluation;
describe one service's policy, metrics against targets, forecast against
actual and last decisions.`,
	}
	cmd.AddCommand(newAutoscalerListCmd(), newAutoscalerDescribeCmd())
	return cmd
}

func newAutoscalerListCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Each autoscaled service's replicas, recommendation and metrics against targets",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			var out []autoscaler.Summary
			if err := c.do(cmd.Context(), "GET", "/api/v1/autoscalers", nil, &out); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 3, ' ', 0)
			fmt.Fprintln(tw, "SERVICE\tREPLICAS\tMIN\tMAX\tRECOMMENDED\tPREDICTED\tMETRICS (VALUE/TARGET)\tLAST")
			for _, s := range out {
				var ms []string
				for _, m := range s.Metrics {
					if m.State == "proposed" {
						ms = append(ms, fmt.Sprintf("%s %s/%s", m.Metric, short(m.Value), short(m.Target)))
					} else {
						ms = append(ms, m.Metric+" "+m.State)
					}
				}
				last := s.Action
				if s.DryRun {
					last += " (dry run)"
				}
				fmt.Fprintf(tw, "%s\t%d→%d\t%d\t%d\t%d\t%s\t%s\t%s\n", s.Service, s.Current, s.Desired, s.Min, s.Max, s.Recommended,
					predictedCol(s.Predicted), dash(strings.Join(ms, ", ")), last)
			}
			return tw.Flush()
		},
	}
	f.register(cmd)
	return cmd
}

func newAutoscalerDescribeCmd() *cobra.Command {
	var (
		f      clientFlags
		output string
	)
	cmd := &cobra.Command{
		Use:   "describe SERVICE",
		Short: "A service's policy, metrics against targets, forecast against actual and last decisions",
		Example: `  opspilot autoscaler describe billing
  opspilot autoscaler describe billing -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if err := c.do(cmd.Context(), "GET", "/api/v1/autoscalers/"+url.PathEscape(args[0]), nil, &raw); err != nil {
				return err
			}
			switch output {
			case "json":
				_, err := fmt.Fprintln(cmd.OutOrStdout(), string(raw))
				return err
			case "", "text":
			default:
				return fmt.Errorf("-o %q: use text or json", output)
			}
			var st autoscaler.Status
			if err := json.Unmarshal(raw, &st); err != nil {
				return err
			}
			return printAutoscalerStatus(cmd.OutOrStdout(), st)
		},
	}
	f.register(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	return cmd
}

func printAutoscalerStatus(w io.Writer, st autoscaler.Status) error {
	p := st.Policy
	fmt.Fprintf(w, "Service:        %s\n", p.Service)
	fmt.Fprintf(w, "Replicas:       %d (min %d, max %d)\n", st.Last.Current, p.MinReplicas, p.MaxReplicas)
	mode := "scaling"
	if st.DryRun {
		mode = "dry run: decisions are reported, not carried out"
	}
	fmt.Fprintf(w, "Mode:           %s\n", mode)
	fmt.Fprintf(w, "Behaviour:      scale up: window %s, %s; scale down: window %s, %s\n",
		p.Behavior.ScaleUp.StabilizationWindow, ratePolicies(p.Behavior.ScaleUp), p.Behavior.ScaleDown.StabilizationWindow, ratePolicies(p.Behavior.ScaleDown))
	fmt.Fprintf(w, "Last decision:  %s at %s: %d → %d (%s)\n", st.Last.Action, st.Last.Time.Local().Format("15:04:05"),
		st.Last.Current, st.Last.Replicas, st.Last.Decision.Reason)
	fmt.Fprintf(w, "Recommendation: %d: %s\n", st.Last.Recommendation.Replicas, st.Last.Recommendation.Reason)
	if st.Last.Predicted > 0 || st.Last.PredictReason != "" {
		fmt.Fprintf(w, "Predicted:      %d: %s\n", st.Last.Predicted, st.Last.PredictReason)
	}
	fmt.Fprintln(w, "\nMetrics:")
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "  METRIC\tDEFINITION\tVALUE\tTARGET\tPROPOSES\tWHY")
	for i, m := range p.Metrics {
		val, tgt, prop, why := "-", "-", "-", "-"
		if i < len(st.Last.Recommendation.Proposals) {
			pr := st.Last.Recommendation.Proposals[i]
			why = pr.Reason
			if pr.State == autoscaler.Proposed {
				val, tgt, prop = short(pr.Value), short(pr.Target), strconv.Itoa(pr.Replicas)
			} else {
				prop = pr.State.String()
			}
		}
		fmt.Fprintf(tw, "  metrics[%d]\t%s\t%s\t%s\t%s\t%s\n", i, metricSummary(m), val, tgt, prop, why)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, fc := range st.Forecasts {
		fmt.Fprintf(w, "\nForecast of %s (sum: %s), %s ahead at %s steps: %s\n", fc.Metric, fc.Query, fc.Lead, fc.Step, fc.State)
		if len(fc.Points) > 0 {
			tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
			fmt.Fprintln(tw, "  STEP\tFORECAST\tINTERVAL\tACTUAL\tERROR")
			for _, pt := range fc.Points[max(0, len(fc.Points)-12):] {
				actual, errs := "-", "-"
				if pt.Actual != nil {
					actual = short(*pt.Actual)
					if *pt.Actual != 0 {
						errs = fmt.Sprintf("%+.1f%%", (pt.Forecast-*pt.Actual) / *pt.Actual * 100)
					}
				}
				fmt.Fprintf(tw, "  %s\t%s\t%s .. %s\t%s\t%s\n", pt.Time.Local().Format("01-02 15:04"), short(pt.Forecast), short(pt.Lower), short(pt.Upper), actual, errs)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		}
	}
	fmt.Fprintln(w, "\nLast decisions (newest last):")
	tw = tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "  TIME\tACTION\tREPLICAS\tRECOMMENDED\tLIMITED BY\tREASON")
	for _, d := range st.History[max(0, len(st.History)-15):] {
		lim := make([]string, len(d.Decision.LimitedBy))
		for i, l := range d.Decision.LimitedBy {
			lim[i] = string(l)
		}
		reason := d.Decision.Reason
		if d.Action == "scaled" || d.Action == "dry-run" {
			reason = d.Recommendation.Reason
		}
		if d.Error != "" {
			reason = d.Error
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d → %d\t%d\t%s\t%s\n", d.Time.Local().Format("15:04:05"), d.Action, d.Current, d.Replicas,
			d.Recommendation.Replicas, dash(strings.Join(lim, ",")), reason)
	}
	return tw.Flush()
}

func ratePolicies(r autoscaler.ScalingRules) string {
	if r.SelectPolicy == autoscaler.SelectDisabled {
		return "disabled"
	}
	var ps []string
	for _, p := range r.Policies {
		unit := ""
		if p.Type == autoscaler.PolicyPercent {
			unit = "%"
		}
		ps = append(ps, fmt.Sprintf("%d%s per %s", p.Value, unit, p.Period))
	}
	sel := r.SelectPolicy
	if sel == "" {
		sel = autoscaler.SelectMax
	}
	return strings.Join(ps, " or ") + " (" + sel + ")"
}

// metricSummary is a metric in one line.
func metricSummary(m autoscaler.Metric) string {
	switch {
	case m.Resource != nil:
		return fmt.Sprintf("%s utilisation %s%%", m.Resource.Name, short(m.Resource.AverageUtilization))
	case m.PerInstance != nil:
		return fmt.Sprintf("%s per instance: %s", short(m.PerInstance.AverageValue), m.PerInstance.Query)
	case m.Expression != nil && m.Expression.AverageValue > 0:
		return fmt.Sprintf("%s per replica: %s", short(m.Expression.AverageValue), m.Expression.Query)
	case m.Expression != nil:
		return fmt.Sprintf("value %s: %s", short(m.Expression.Value), m.Expression.Query)
	case m.Threshold != nil:
		if m.Threshold.Set > 0 {
			return fmt.Sprintf("when %s: set %d", m.Threshold.When, m.Threshold.Set)
		}
		return fmt.Sprintf("when %s: add %d", m.Threshold.When, m.Threshold.Add)
	}
	return "-"
}

func short(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }

func predictedCol(n int) string {
	if n == 0 {
		return "-"
	}
	return strconv.Itoa(n)
}

// applyDemoPolicy stores examples/autoscaling/billing.yaml, the demo
// billing service's autoscaling policy.
func applyDemoPolicy(ctx context.Context, orch *orchestrator) error {
	return applyDemoSpecs[autoscaler.Policy](ctx, orch, "examples/autoscaling/billing.yaml", autoscaling.Billing, control.KindAutoscalingPolicy)
}

// applyDemoSpecs stores the objects of an embedded apply file as they
// are, creating or replacing each (the demo's own objects).
func applyDemoSpecs[T any](ctx context.Context, orch *orchestrator, name string, data []byte, kind string) error {
	objs, err := parseSpecs(name, data)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	for _, o := range objs {
		v := o.value.(T)
		cur, err := store.Get[T](ctx, orch.st, kind, o.name)
		switch {
		case errors.Is(err, store.ErrNotFound):
			_, err = store.Create(ctx, orch.st, kind, o.name, v)
		case err == nil:
			_, err = store.Update(ctx, orch.st, kind, o.name, v, cur.Version)
		}
		if err != nil {
			return fmt.Errorf("demo: store %s %s: %w", o.kind, o.name, err)
		}
	}
	return nil
}
