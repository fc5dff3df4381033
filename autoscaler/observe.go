package autoscaler

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/VictoriaMetrics/metricsql"
)

// Resource usage queries: the container collector's cAdvisor-named series,
// labelled with service and instance.
const (
	cpuUsageQuery    = `sum by (instance) (rate(container_cpu_usage_seconds_total{service=%q}[30s]))`
	memoryUsageQuery = `sum by (instance) (container_memory_working_set_bytes{service=%q})`
)

// metricQuery returns the instant query a metric reads, and whether its
// result is per instance.
func metricQuery(p *Policy, m *Metric) (string, bool) {
	switch {
	case m.Resource != nil && m.Resource.Name == "memory":
		return fmt.Sprintf(memoryUsageQuery, p.Service), true
	case m.Resource != nil:
		return fmt.Sprintf(cpuUsageQuery, p.Service), true
	case m.PerInstance != nil:
		return m.PerInstance.Query, true
	case m.Expression != nil:
		return m.Expression.Query, false
	case m.Threshold != nil:
		if c, err := ParseCondition(m.Threshold.When); err == nil {
			return c.Query, false
		}
	}
	return "", false
}

// observe reads every metric of the policy at now. A metric whose query
// fails, returns nothing, or whose newest sample is older than the
// policy's max_data_age is Unavailable; per-instance samples of instances
// whose own data is stale are dropped (they count as missing).
func (l *Loop) observe(ctx context.Context, p *Policy, sc Scale, now time.Time) []Observation {
	out := make([]Observation, len(p.Metrics))
	fresh := map[string]freshness{} // by selector, within this evaluation
	maxAge := p.maxDataAge()
	for i := range p.Metrics {
		m := &p.Metrics[i]
		q, perInstance := metricQuery(p, m)
		if q == "" {
			out[i].Unavailable = "the metric has no query"
			continue
		}
		f, err := l.freshness(ctx, q, maxAge, now, fresh)
		if err != nil {
			out[i].Unavailable = err.Error()
			continue
		}
		if f.age > maxAge {
			out[i].Unavailable = fmt.Sprintf("stale: the newest sample of %s is %s old (max_data_age %s)", f.selector, f.age.Round(time.Millisecond), maxAge)
			continue
		}
		res, err := l.o.Query(ctx, q, now)
		if err != nil {
			l.m.errors.WithLabelValues(p.Service, "query").Inc()
			out[i].Unavailable = "query failed: " + err.Error()
			continue
		}
		if !perInstance {
			switch {
			case len(res) == 0:
				if m.Threshold != nil {
					// An empty comparison side means "no such
					// traffic", e.g. no transactions: the rule does
					// not hold.
					out[i].Value = 0
				} else {
					out[i].Unavailable = "the query returned no series"
				}
			case len(res) > 1:
				out[i].Unavailable = fmt.Sprintf("the query returned %d series; aggregate it to one, e.g. with sum(...)", len(res))
			default:
				out[i].Value = res[0].Value
			}
			continue
		}
		samples := map[string]float64{}
		for _, s := range res {
			inst := s.Labels["instance"]
			if inst == "" || !finite(s.Value) {
				continue
			}
			if t, ok := f.byInstance[inst]; ok && now.Sub(t) > maxAge {
				continue // this instance's data is stale: missing
			}
			samples[inst] += s.Value
		}
		out[i].Samples = samples
		if m.Resource != nil {
			req := sc.CPU
			if m.Resource.Name == "memory" {
				req = sc.Memory
			}
			out[i].Requests = map[string]float64{}
			for _, inst := range sc.Instances {
				out[i].Requests[inst.Name] = req
			}
		}
	}
	return out
}

// freshness is how old a query's data is.
type freshness struct {
	// age of the newest sample of the stalest selector; selector names it.
	age      time.Duration
	selector string
	// byInstance is the newest sample per instance label, over the
	// selectors that have one (the oldest of them).
	byInstance map[string]time.Time
}

// freshness finds the age of q's data: for each series selector in q, the
// newest raw sample within a lookback of max(1m, 6×maxAge) (MetricsQL's
// tlast_over_time), per instance and overall. The query's age is its
// stalest selector's: a ratio of a fresh and a stale series is stale. A
// query without selectors (a constant) is always fresh.
func (l *Loop) freshness(ctx context.Context, q string, maxAge time.Duration, now time.Time, cache map[string]freshness) (freshness, error) {
	sels, err := selectors(q)
	if err != nil {
		return freshness{}, fmt.Errorf("cannot parse the query: %v", err)
	}
	lookback := max(time.Minute, 6*maxAge)
	out := freshness{byInstance: map[string]time.Time{}}
	for _, sel := range sels {
		f, ok := cache[sel]
		if !ok {
			expr := fmt.Sprintf("max by (instance) (tlast_over_time(%s[%ds]))", sel, int64(lookback.Seconds()))
			res, err := l.o.Query(ctx, expr, now)
			if err != nil {
				return freshness{}, fmt.Errorf("query failed: %v", err)
			}
			f = freshness{age: time.Duration(math.MaxInt64), selector: sel, byInstance: map[string]time.Time{}}
			newest := time.Time{}
			for _, s := range res {
				if !finite(s.Value) {
					continue
				}
				t := time.UnixMilli(int64(math.Round(s.Value * 1000)))
				if inst := s.Labels["instance"]; inst != "" {
					f.byInstance[inst] = t
				}
				if t.After(newest) {
					newest = t
				}
			}
			if !newest.IsZero() {
				f.age = max(0, now.Sub(newest))
			}
			cache[sel] = f
		}
		if f.age == time.Duration(math.MaxInt64) {
			return freshness{}, fmt.Errorf("no data: %s has no sample in the last %s", sel, lookback)
		}
		if f.age >= out.age {
			out.age, out.selector = f.age, f.selector
		}
		for inst, t := range f.byInstance {
			if old, ok := out.byInstance[inst]; !ok || t.Before(old) {
				out.byInstance[inst] = t
			}
		}
	}
	return out, nil
}

// selectors returns the distinct series selectors of a query, as
// MetricsQL text, in order of appearance.
func selectors(q string) ([]string, error) {
	e, err := metricsql.Parse(q)
	if err != nil {
		return nil, err
	}
	var out []string
	metricsql.VisitAll(e, func(x metricsql.Expr) {
		if me, ok := x.(*metricsql.MetricExpr); ok {
			s := string(me.AppendString(nil))
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	})
	return out, nil
}

// Query runs an instant query through the loop's Querier.
func (o LoopOptions) Query(ctx context.Context, q string, at time.Time) ([]Sample, error) {
	return o.Querier.Query(ctx, q, at)
}
