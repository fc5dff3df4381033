package report

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"html/template"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"opspilot/analyzer/forecast"
	"opspilot/tsdb"
)

// Defaults of CapacityOptions.
const (
	DefaultRange     = 30 * 24 * time.Hour
	DefaultHorizon   = 30 * 24 * time.Hour
	DefaultThreshold = 0.8
	// maxPoints keeps a fit under about 4,000 points (10 minutes for four
	// weeks), as the analyzer's capacity API does.
	maxPoints = 4000
	// minRateWindow covers at least two samples of a 5 s agent and of
	// history written at 5-minute resolution.
	minRateWindow = 5 * time.Minute
)

// CapacityOptions configures BuildCapacity. The zero value reads 30 days,
// forecasts 30 days and plans for 80% utilisation.
type CapacityOptions struct {
	// Range is how much history is read and fitted.
	Range time.Duration
	// Horizon is how far ahead usage is forecast.
	Horizon time.Duration
	// Threshold is the planning limit as a fraction of capacity: usage
	// above it counts as exhausted.
	Threshold float64
	// Now is the end of the range; zero means time.Now().
	Now time.Time
	// Progress, if set, is called after each step with the steps done and
	// the total.
	Progress func(done, total int, step string)
}

// Validate reports options a person must fix.
func (o CapacityOptions) Validate() error {
	var errs []error
	if o.Range < 0 || (o.Range > 0 && o.Range < time.Hour) || o.Range > 400*24*time.Hour {
		errs = append(errs, fmt.Errorf("range %s: use 1h to 400d, e.g. 30d", model.Duration(o.Range)))
	}
	if o.Horizon < 0 || o.Horizon > 5*365*24*time.Hour {
		errs = append(errs, fmt.Errorf("horizon %s: use up to 5y, e.g. 30d", model.Duration(o.Horizon)))
	}
	if o.Threshold < 0 || o.Threshold > 1 || math.IsNaN(o.Threshold) {
		errs = append(errs, fmt.Errorf("threshold %v: use a fraction of capacity in (0,1], e.g. 0.8", o.Threshold))
	}
	return errors.Join(errs...)
}

func (o CapacityOptions) withDefaults() CapacityOptions {
	if o.Range == 0 {
		o.Range = DefaultRange
	}
	if o.Horizon == 0 {
		o.Horizon = DefaultHorizon
	}
	if o.Threshold == 0 {
		o.Threshold = DefaultThreshold
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	return o
}

// CapacityReport is the capacity trend report.
type CapacityReport struct {
	Generated  time.Time
	Start, End time.Time
	Step       time.Duration
	Horizon    time.Duration
	Threshold  float64
	// Recommendations are every section's, most urgent first.
	Recommendations []Recommendation
	Datacenters     []Section
	NodeGroups      []Section
	Services        []Section
	// Notes say what could not be read and why.
	Notes []string
}

// Section is one datacenter, node group or service.
type Section struct {
	Kind      string // "datacenter", "node group" or "service"
	Name      string
	Detail    string // e.g. the node group's nodes
	Resources []ResourceForecast
	Scaling   *ScalingActivity
}

// ResourceForecast is one resource of a section: its trend, peak,
// forecast and time to exhaustion.
type ResourceForecast struct {
	Resource, Unit          string
	UsageExpr, CapacityExpr string
	// Current, Capacity and Limit (Capacity × threshold) in Unit;
	// Utilisation = Current/Capacity.
	Current, Capacity, Limit, Utilisation float64
	// Peak is the highest usage in the range, at PeakAt.
	Peak            float64
	PeakAt          time.Time
	PeakUtilisation float64
	GrowthPerDay    float64
	Method          string
	Confidence      string
	Reason          string
	// ExhaustAt is when the forecast mean reaches Limit (zero: not within
	// the horizon); ExhaustAtPessimistic when the interval's upper bound
	// does.
	ExhaustAt, ExhaustAtPessimistic time.Time
	AlreadyExhausted                bool
	// Needed is the capacity to add (in Unit) to stay under the limit
	// until the horizon's end at the forecast mean; 0 if none.
	Needed         float64
	Chart          template.URL
	Recommendation *Recommendation
	// Err says why there is no forecast.
	Err string
}

// Recommendation is one plain-language sentence with what it is about.
type Recommendation struct {
	Kind, Name, Resource string
	// Urgency orders recommendations: the date by which to act (the
	// report's end when already exhausted).
	By   time.Time
	Text string
}

// resource names the built-in usage/capacity expressions.
type resource struct {
	name, unit     string
	usage, capExpr string
}

// BuildCapacity reads the range from q (and the inventory from cp, which
// may be nil), forecasts every datacenter's, node group's and service's
// CPU and memory, and words the recommendations.
func BuildCapacity(ctx context.Context, q Querier, cp ControlPlane, opts CapacityOptions) (*CapacityReport, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("capacity report: %w", err)
	}
	o := opts.withDefaults()
	step := max((o.Range / maxPoints).Round(time.Minute), time.Minute)
	end := o.Now.UTC().Truncate(step)
	rep := &CapacityReport{Generated: o.Now.UTC(), Start: end.Add(-o.Range), End: end, Step: step, Horizon: o.Horizon, Threshold: o.Threshold}
	r := tsdb.Range{Start: rep.Start, End: rep.End, Step: step}
	window := model.Duration(max(step, minRateWindow)).String()
	rangeStr := model.Duration(o.Range).String()

	// What exists: from the TSDB (history may name datacenters and
	// services the control plane no longer has) and the control plane.
	dcs, err := labelValues(ctx, q, fmt.Sprintf(`count by (datacenter) (max_over_time(node_memory_MemTotal_bytes[%s]))`, rangeStr), "datacenter", end)
	if err != nil {
		return nil, fmt.Errorf("capacity report: list datacenters: %w", err)
	}
	svcs, err := labelValues(ctx, q, fmt.Sprintf(`count by (service) (max_over_time(container_memory_working_set_bytes[%s]))`, rangeStr), "service", end)
	if err != nil {
		return nil, fmt.Errorf("capacity report: list services: %w", err)
	}
	var groups []nodeGroup
	var events []Event
	if cp == nil {
		rep.Notes = append(rep.Notes, "no control plane API: node groups and scaling events are not shown")
	} else {
		if nodes, err := cp.Nodes(ctx); err != nil {
			rep.Notes = append(rep.Notes, "nodes: "+err.Error())
		} else {
			for _, n := range nodes {
				dcs = append(dcs, n.Datacenter)
			}
			groups = nodeGroups(nodes)
		}
		if ss, err := cp.Services(ctx); err != nil {
			rep.Notes = append(rep.Notes, "services: "+err.Error())
		} else {
			for _, s := range ss {
				svcs = append(svcs, s.Name)
			}
		}
		if events, err = cp.Events(ctx, rep.Start); err != nil {
			rep.Notes = append(rep.Notes, "events: "+err.Error())
		}
	}
	dcs, svcs = sortedUnique(dcs), sortedUnique(svcs)
	if len(dcs) == 0 && len(svcs) == 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("no host or container metrics in the last %s: run an agent (opspilot up), or write history (opspilot demo backfill)", rangeStr))
	}
	if len(groups) == 0 && cp != nil {
		rep.Notes = append(rep.Notes, "no node groups: nodes have no partition or labels (node.partition, node.labels)")
	}

	total := 2*(len(dcs)+len(groups)) + 3*len(svcs)
	done := 0
	progress := func(what string) {
		done++
		if o.Progress != nil {
			o.Progress(done, total, what)
		}
	}
	fc := forecaster{q: q, r: r, o: o}
	for _, dc := range dcs {
		sel := "datacenter=" + strconv.Quote(dc)
		s := Section{Kind: "datacenter", Name: dc}
		for _, res := range hostResources(sel, window) {
			s.Resources = append(s.Resources, fc.forecast(ctx, s.Kind, s.Name, res))
			progress("datacenter " + dc + " " + res.name)
		}
		rep.Datacenters = append(rep.Datacenters, s)
	}
	for _, g := range groups {
		sel := "node=~" + strconv.Quote(g.regexp())
		s := Section{Kind: "node group", Name: g.name, Detail: strings.Join(g.nodes, ", ")}
		for _, res := range hostResources(sel, window) {
			s.Resources = append(s.Resources, fc.forecast(ctx, s.Kind, s.Name, res))
			progress("node group " + g.name + " " + res.name)
		}
		rep.NodeGroups = append(rep.NodeGroups, s)
	}
	for _, svc := range svcs {
		sel := "service=" + strconv.Quote(svc)
		s := Section{Kind: "service", Name: svc}
		for _, res := range serviceResources(sel, window) {
			s.Resources = append(s.Resources, fc.forecast(ctx, s.Kind, s.Name, res))
			progress("service " + svc + " " + res.name)
		}
		s.Scaling = scalingActivity(ctx, q, r, svc, events)
		progress("service " + svc + " scaling")
		rep.Services = append(rep.Services, s)
	}
	for _, secs := range [][]Section{rep.Datacenters, rep.NodeGroups, rep.Services} {
		for _, s := range secs {
			for _, res := range s.Resources {
				if res.Recommendation != nil {
					rep.Recommendations = append(rep.Recommendations, *res.Recommendation)
				}
			}
		}
	}
	slices.SortStableFunc(rep.Recommendations, func(a, b Recommendation) int { return a.By.Compare(b.By) })
	return rep, nil
}

func hostResources(sel, window string) []resource {
	return []resource{
		{name: "cpu", unit: "cores",
			usage:   fmt.Sprintf(`sum(rate(node_cpu_seconds_total{%s, mode!="idle"}[%s]))`, sel, window),
			capExpr: fmt.Sprintf(`count(node_cpu_seconds_total{%s, mode="idle"})`, sel)},
		{name: "memory", unit: "bytes",
			usage:   fmt.Sprintf(`sum(node_memory_MemTotal_bytes{%[1]s} - node_memory_MemAvailable_bytes{%[1]s})`, sel),
			capExpr: fmt.Sprintf(`sum(node_memory_MemTotal_bytes{%s})`, sel)},
	}
}

func serviceResources(sel, window string) []resource {
	return []resource{
		{name: "cpu", unit: "cores",
			usage:   fmt.Sprintf(`sum(rate(container_cpu_usage_seconds_total{%s}[%s]))`, sel, window),
			capExpr: fmt.Sprintf(`sum(container_spec_cpu_quota{%[1]s} / container_spec_cpu_period{%[1]s})`, sel)},
		{name: "memory", unit: "bytes",
			usage:   fmt.Sprintf(`sum(container_memory_working_set_bytes{%s})`, sel),
			capExpr: fmt.Sprintf(`sum(container_spec_memory_limit_bytes{%s})`, sel)},
	}
}

type forecaster struct {
	q Querier
	r tsdb.Range
	o CapacityOptions
}

// forecast runs one resource's usage and capacity queries and fits them.
// Failures are kept in the result (Err): one missing series must not
// lose the whole report.
func (f forecaster) forecast(ctx context.Context, kind, name string, res resource) ResourceForecast {
	out := ResourceForecast{Resource: res.name, Unit: res.unit, UsageExpr: res.usage, CapacityExpr: res.capExpr}
	ts, vs, err := oneSeries(ctx, f.q, res.usage, f.r)
	if err != nil {
		out.Err = "usage: " + err.Error()
		return out
	}
	cts, cvs, err := oneSeries(ctx, f.q, res.capExpr, f.r)
	if err != nil {
		out.Err = "capacity: " + err.Error()
		return out
	}
	rep, err := forecast.Exhaustion(ts, vs, forecast.CapacitySeries(cts, cvs), forecast.CapacityConfig{
		Model: forecast.Config{Step: f.r.Step}, Horizon: f.o.Horizon, Threshold: f.o.Threshold,
	})
	if err != nil {
		out.Err = err.Error()
		return out
	}
	out.Current, out.Capacity, out.Limit, out.Utilisation = rep.Current, rep.Capacity, rep.Limit, rep.Utilisation
	out.GrowthPerDay, out.Method, out.Confidence, out.Reason = rep.GrowthPerDay, rep.Method, string(rep.Confidence), rep.Reason
	out.ExhaustAt, out.ExhaustAtPessimistic, out.AlreadyExhausted = rep.ExhaustAt, rep.ExhaustAtPessimistic, rep.AlreadyExhausted
	out.Peak = math.Inf(-1)
	for i, v := range vs {
		if isFinite(v) && v > out.Peak {
			out.Peak, out.PeakAt = v, ts[i]
		}
	}
	out.PeakUtilisation = out.Peak / out.Capacity
	maxMean := rep.Current
	for _, p := range rep.Forecast {
		if isFinite(p.Mean) {
			maxMean = max(maxMean, p.Mean)
		}
	}
	if need := maxMean/f.o.Threshold - rep.Capacity; need > 0 {
		out.Needed = roundUpCapacity(need, res.unit)
	}
	title := fmt.Sprintf("%s %s: %s", kind, name, res.name)
	chart, err := forecastChart(title, unitLabel(res.unit), ts, scaleValues(vs, res.unit), scalePoints(rep.Forecast, res.unit), scaleValue(rep.Capacity, res.unit), scaleValue(rep.Limit, res.unit))
	if err != nil {
		out.Err = err.Error()
	}
	out.Chart = chart
	out.Recommendation = recommend(kind, name, out, f.r.End, f.o)
	return out
}

// recommend words what a planner should do about one resource, with
// numbers and dates; nil when there is nothing to do.
func recommend(kind, name string, r ResourceForecast, end time.Time, o CapacityOptions) *Recommendation {
	what := fmt.Sprintf("%s %s", kind, name)
	res := map[string]string{"cpu": "CPU", "memory": "memory"}[r.Resource]
	limitPct := fmt.Sprintf("%.0f%%", 100*o.Threshold)
	rec := &Recommendation{Kind: kind, Name: name, Resource: r.Resource}
	switch {
	case r.AlreadyExhausted:
		rec.By = end
		rec.Text = fmt.Sprintf("%s is at %.0f%% of its %s (%s of %s), above the %s planning limit: add %s now.",
			what, 100*r.Utilisation, res, formatAmount(r.Current, r.Unit), formatAmount(r.Capacity, r.Unit), limitPct, formatAmount(max(r.Needed, roundUpCapacity(r.Current/o.Threshold-r.Capacity, r.Unit)), r.Unit))
	case !r.ExhaustAt.IsZero():
		rec.By = r.ExhaustAt
		rec.Text = fmt.Sprintf("%s needs %s by %s at current growth (%s a day; usage reaches %s, %s of %s, on that date",
			what, moreAmount(r.Needed, r.Unit), r.ExhaustAt.Format(time.DateOnly), signed(formatAmount(r.GrowthPerDay, r.Unit)), formatAmount(r.Limit, r.Unit), limitPct, formatAmount(r.Capacity, r.Unit))
		if p := r.ExhaustAtPessimistic; !p.IsZero() && p.Format(time.DateOnly) < r.ExhaustAt.Format(time.DateOnly) {
			rec.Text += fmt.Sprintf(", at the earliest %s", p.Format(time.DateOnly))
		}
		rec.Text += ")."
	case !r.ExhaustAtPessimistic.IsZero():
		rec.By = r.ExhaustAtPessimistic
		rec.Text = fmt.Sprintf("%s's %s may reach the %s planning limit by %s (pessimistic forecast; the mean stays under it for %s): watch it.",
			what, res, limitPct, r.ExhaustAtPessimistic.Format(time.DateOnly), roundDays(o.Horizon))
	default:
		return nil
	}
	if r.Confidence == "low" {
		rec.Text += " Low confidence: " + r.Reason + "."
	}
	return rec
}

// scalingActivity summarises a service's replica changes: the instance
// count over the range and the control plane's scaling events.
func scalingActivity(ctx context.Context, q Querier, r tsdb.Range, svc string, events []Event) *ScalingActivity {
	sa := &ScalingActivity{}
	sel := "service=" + strconv.Quote(svc)
	expr := fmt.Sprintf(`max(opspilot_autoscaler_current_replicas{%[1]s}) or count(container_memory_working_set_bytes{%[1]s})`, sel)
	ts, vs, err := oneSeries(ctx, q, expr, r)
	if err != nil {
		sa.Err = err.Error()
	} else {
		sa.Min, sa.Max = math.Inf(1), math.Inf(-1)
		prev := math.NaN()
		for _, v := range vs {
			if !isFinite(v) {
				continue
			}
			sa.Min, sa.Max = min(sa.Min, v), max(sa.Max, v)
			if !math.IsNaN(prev) && v != prev {
				sa.Changes++
			}
			prev = v
		}
		sa.Current = prev
		chart, err := stepChart(fmt.Sprintf("service %s: instances", svc), "instances", []namedSeries{{Name: "instances", T: ts, V: vs}})
		if err != nil {
			sa.Err = err.Error()
		}
		sa.Chart = chart
	}
	for _, ev := range events {
		if ev.Kind == "service" && ev.Object == svc && (ev.Reason == "AutoScaled" || ev.Reason == "Scaled") {
			sa.Events = append(sa.Events, ev)
		}
	}
	sa.ScaleEvents = len(sa.Events)
	if len(sa.Events) > 10 {
		sa.Events = sa.Events[len(sa.Events)-10:]
	}
	return sa
}

// ScalingActivity is a service's replica changes over the range.
type ScalingActivity struct {
	Min, Max, Current float64
	// Changes counts changes of the instance count between steps;
	// ScaleEvents the AutoScaled and Scaled events, of which Events are
	// the last ten.
	Changes     int
	ScaleEvents int
	Events      []Event
	Chart       template.URL
	Err         string
}

// oneSeries runs expr over r and returns its one series.
func oneSeries(ctx context.Context, q Querier, expr string, r tsdb.Range) ([]time.Time, []float64, error) {
	ss, err := queryRange(ctx, q, expr, r)
	if err != nil {
		return nil, nil, err
	}
	switch len(ss) {
	case 0:
		return nil, nil, fmt.Errorf("no data from %s in %s .. %s", expr, r.Start.Format(time.DateOnly), r.End.Format(time.DateOnly))
	case 1:
		return ss[0].T, ss[0].V, nil
	}
	return nil, nil, fmt.Errorf("%s returned %d series, want one", expr, len(ss))
}

type nodeGroup struct {
	name  string
	nodes []string
}

func (g nodeGroup) regexp() string {
	qs := make([]string, len(g.nodes))
	for i, n := range g.nodes {
		qs[i] = regexp.QuoteMeta(n)
	}
	return strings.Join(qs, "|")
}

// nodeGroups groups nodes by datacenter and partition ("A/db") and by
// datacenter and node label ("A/zone=z1"); nodes with neither are in
// their datacenter's section only.
func nodeGroups(nodes []Node) []nodeGroup {
	by := map[string][]string{}
	for _, n := range nodes {
		if n.Partition != "" {
			k := n.Datacenter + "/" + n.Partition
			by[k] = append(by[k], n.Name)
		}
		for lk, lv := range n.Labels {
			k := n.Datacenter + "/" + lk + "=" + lv
			by[k] = append(by[k], n.Name)
		}
	}
	out := make([]nodeGroup, 0, len(by))
	for k, ns := range by {
		slices.Sort(ns)
		out = append(out, nodeGroup{name: k, nodes: ns})
	}
	slices.SortFunc(out, func(a, b nodeGroup) int { return cmp.Compare(a.name, b.name) })
	return out
}

func sortedUnique(s []string) []string {
	s = slices.DeleteFunc(s, func(v string) bool { return v == "" })
	slices.Sort(s)
	return slices.Compact(s)
}

// Units: bytes are shown in GiB.
const gib = 1 << 30

func scaleValue(v float64, unit string) float64 {
	if unit == "bytes" {
		return v / gib
	}
	return v
}

func scaleValues(vs []float64, unit string) []float64 {
	out := make([]float64, len(vs))
	for i, v := range vs {
		out[i] = scaleValue(v, unit)
	}
	return out
}

func scalePoints(ps []forecast.Point, unit string) []forecast.Point {
	out := make([]forecast.Point, len(ps))
	for i, p := range ps {
		out[i] = forecast.Point{T: p.T, Mean: scaleValue(p.Mean, unit), Lower: scaleValue(p.Lower, unit), Upper: scaleValue(p.Upper, unit)}
	}
	return out
}

func unitLabel(unit string) string {
	if unit == "bytes" {
		return "GiB"
	}
	return unit
}

// moreAmount is what "needs ___ by" says: "40 more cores", "12 GiB
// more memory".
func moreAmount(v float64, unit string) string {
	switch unit {
	case "bytes":
		return formatAmount(v, unit) + " more memory"
	case "cores":
		if v == 1 {
			return "1 more core"
		}
		return strconv.FormatFloat(v, 'f', decimals(v), 64) + " more cores"
	}
	return formatAmount(v, unit) + " more"
}

func signed(s string) string {
	if strings.HasPrefix(s, "-") {
		return s
	}
	return "+" + s
}

// roundUpCapacity rounds capacity to buy: whole cores, whole GiB.
func roundUpCapacity(v float64, unit string) float64 {
	if !(v > 0) || math.IsInf(v, 0) {
		return 0
	}
	if unit == "bytes" {
		return math.Ceil(v/gib) * gib
	}
	return math.Ceil(v - 1e-9)
}

// formatAmount prints an amount in its unit: "40 cores", "12 GiB".
func formatAmount(v float64, unit string) string {
	if unit == "bytes" {
		return strconv.FormatFloat(v/gib, 'f', decimals(v/gib), 64) + " GiB"
	}
	if unit == "cores" {
		if math.Abs(v) == 1 {
			return strconv.FormatFloat(v, 'f', 0, 64) + " core"
		}
		return strconv.FormatFloat(v, 'f', decimals(v), 64) + " cores"
	}
	return strconv.FormatFloat(v, 'g', 4, 64) + " " + unit
}

func decimals(v float64) int {
	switch a := math.Abs(v); {
	case a == math.Trunc(a) || a >= 100:
		return 0
	case a >= 10:
		return 1
	default:
		return 2
	}
}

// roundDays prints a duration in days when it is long.
func roundDays(d time.Duration) string {
	if d >= 48*time.Hour {
		return strconv.FormatFloat(d.Hours()/24, 'f', -1, 64) + " days"
	}
	return d.Round(time.Minute).String()
}
