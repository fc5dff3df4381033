package autoscaler

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"opspilot/analyzer/forecast"
)

// Predictive pre-scaling: for each resource, per_instance and expression
// metric of a policy with `predictive`, a predictor fits the analyzer's
// Holt-Winters model (daily and weekly seasons, parameters fitted by
// Nelder-Mead) on the metric's total over `history` at `step` resolution,
// read from the TSDB, keeps it current with the values the loop observes
// (averaged per step), and forecasts the total `lead` ahead. The replicas
// that total needs are recommended, never below the reactive result.
// Threshold rules are not predicted: they act on a condition now.

// refitEvery is how often a fitted model is fitted again on fresh history.
const refitEvery = 6 * time.Hour

// forecastLog is how many forecasts against actuals a predictor keeps.
const forecastLog = 48

// predictor forecasts one metric's total.
type predictor struct {
	cfg   Predictive
	total string // the query of the metric's total, for the history

	mu      sync.Mutex
	hw      *forecast.HoltWinters
	fitting bool
	nextFit time.Time
	state   string // why there is no prediction, or the fit's summary
	slot    time.Time
	sum     float64
	n       int
	log     []ForecastPoint // forecasts for future slots, and their actuals
}

// ForecastPoint is a forecast for one step, made Lead before it, and what
// the metric's total turned out to be.
type ForecastPoint struct {
	Time     time.Time `json:"time"`
	Forecast float64   `json:"forecast"`
	Lower    float64   `json:"lower"`
	Upper    float64   `json:"upper"`
	// Actual is the step's mean observed value; NaN (null in JSON) until
	// the step is over.
	Actual *float64 `json:"actual,omitempty"`
}

// ForecastStatus describes one metric's predictor.
type ForecastStatus struct {
	Metric string `json:"metric"`
	Query  string `json:"query"`
	// State says whether the model predicts, and if not why ("learning:
	// 1.2 of 2 days of history").
	State  string          `json:"state"`
	Lead   time.Duration   `json:"lead_ns"`
	Step   time.Duration   `json:"step_ns"`
	Points []ForecastPoint `json:"points,omitempty"`
}

// totalQuery returns the query of the metric's total, or "" for metrics
// that are not predicted.
func totalQuery(p *Policy, m *Metric) string {
	q, perInstance := metricQuery(p, m)
	switch {
	case m.Threshold != nil || q == "":
		return ""
	case perInstance:
		return "sum(" + q + ")"
	}
	return q
}

// predict returns the replicas the policy's metrics are forecast to need
// Lead from now (0 when no metric predicts yet) and why.
func (l *Loop) predict(ctx context.Context, p *Policy, s *serviceState, in Inputs, now time.Time) (int, string) {
	cfg := p.Predictive.withDefaults()
	rq, _ := l.o.Querier.(RangeQuerier)
	best, why := 0, "no prediction yet"
	ready := 0
	for _, inst := range in.Instances {
		if inst.Ready {
			ready++
		}
	}
	for i := range p.Metrics {
		m := &p.Metrics[i]
		q := totalQuery(p, m)
		if q == "" {
			continue
		}
		l.mu.Lock()
		pr := s.predictors[i]
		if pr == nil {
			pr = &predictor{cfg: cfg, total: q, state: "waiting for the first fit"}
			s.predictors[i] = pr
		}
		l.mu.Unlock()
		if rq == nil {
			pr.setState("the TSDB client cannot run range queries")
			continue
		}
		obs := in.Metrics[i]
		total := obs.Value
		if obs.Samples != nil {
			total = 0
			for _, v := range obs.Samples {
				total += v
			}
		}
		if obs.Unavailable == "" {
			pr.observe(now, total)
		}
		pr.maybeFit(ctx, rq, now, l)
		mean, ok := pr.forecastAt(now)
		if !ok {
			if best == 0 {
				why = metricPath(i) + ": " + pr.status("").State
			}
			continue
		}
		n := replicasFor(m, mean, ready, in.Instances, obs)
		if n > best {
			best = n
			why = fmt.Sprintf("%s is forecast at %s in %s, which needs %d replicas", metricPath(i), num(mean), cfg.Lead, n)
		}
	}
	l.m.predicted.WithLabelValues(p.Service).Set(float64(best))
	return min(best, p.MaxReplicas), why
}

// replicasFor is the replica count a metric's forecast total needs.
func replicasFor(m *Metric, total float64, ready int, insts []Instance, obs Observation) int {
	if !finite(total) || total <= 0 {
		return 0
	}
	switch {
	case m.PerInstance != nil:
		return ceilReplicas(total / m.PerInstance.AverageValue)
	case m.Expression != nil && m.Expression.AverageValue > 0:
		return ceilReplicas(total / m.Expression.AverageValue)
	case m.Expression != nil:
		return ceilReplicas(total / m.Expression.Value * float64(max(ready, 1)))
	case m.Resource != nil:
		var req float64
		for _, inst := range insts {
			req = max(req, obs.Requests[inst.Name])
		}
		if req <= 0 {
			return 0
		}
		return ceilReplicas(total / (req * m.Resource.AverageUtilization / 100))
	}
	return 0
}

func (pr *predictor) setState(s string) {
	pr.mu.Lock()
	pr.state = s
	pr.mu.Unlock()
}

// observe adds a value to the current step; a finished step updates the
// model and fills in the logged forecast's actual.
func (pr *predictor) observe(now time.Time, v float64) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	slot := now.Truncate(pr.cfg.Step)
	if !slot.Equal(pr.slot) {
		if pr.n > 0 {
			mean := pr.sum / float64(pr.n)
			if pr.hw != nil {
				pr.hw.Update(pr.slot, mean)
			}
			for k := range pr.log {
				if pr.log[k].Time.Equal(pr.slot) {
					a := mean
					pr.log[k].Actual = &a
				}
			}
		}
		pr.slot, pr.sum, pr.n = slot, 0, 0
	}
	if finite(v) {
		pr.sum += v
		pr.n++
	}
}

// maybeFit starts a fit in the background when one is due.
func (pr *predictor) maybeFit(ctx context.Context, rq RangeQuerier, now time.Time, l *Loop) {
	pr.mu.Lock()
	if pr.fitting || now.Before(pr.nextFit) {
		pr.mu.Unlock()
		return
	}
	pr.fitting = true
	cfg, q := pr.cfg, pr.total
	pr.mu.Unlock()
	go func() {
		// The fit runs off the evaluation path: fitting weeks of data
		// takes tens of milliseconds, the loop's budget is one second.
		hw, state, retry := fit(ctx, rq, q, cfg, now)
		pr.mu.Lock()
		defer pr.mu.Unlock()
		pr.fitting = false
		pr.state = state
		pr.nextFit = now.Add(retry)
		if hw != nil {
			pr.hw = hw
		}
		if hw == nil && pr.hw == nil {
			l.o.Log.Debug("autoscaler: no forecast yet", "query", q, "state", state)
		}
	}()
}

// fit reads the history and fits the model; it returns the model (nil if
// none), a state sentence and when to try again.
func fit(ctx context.Context, rq RangeQuerier, q string, cfg Predictive, now time.Time) (*forecast.HoltWinters, string, time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	start := now.Add(-cfg.History).Truncate(cfg.Step)
	// Each point is the step's mean (a subquery at a tenth of the step),
	// as the loop's own updates are, not one sample of a short rate.
	res := max(cfg.Step/10, time.Second)
	hq := fmt.Sprintf("avg_over_time((%s)[%ds:%ds])", q, int64(cfg.Step.Seconds()), int64(res.Seconds()))
	ts, vs, err := rq.QueryRange(ctx, hq, start, now.Truncate(cfg.Step), cfg.Step)
	if err != nil {
		return nil, "history query failed: " + err.Error(), time.Minute
	}
	finiteN := 0
	first := time.Time{}
	for k, v := range vs {
		if finite(v) {
			if first.IsZero() {
				first = ts[k]
			}
			finiteN++
		}
	}
	have := time.Duration(0)
	if !first.IsZero() {
		have = now.Sub(first)
	}
	if have < minPredictiveHistory || finiteN < 96 {
		return nil, fmt.Sprintf("learning: %.1f of %.0f days of history", have.Hours()/24, minPredictiveHistory.Hours()/24), max(cfg.Step, 10*time.Minute)
	}
	hw, err := forecast.Fit(ts, vs, forecast.Config{Step: cfg.Step})
	if err != nil {
		return nil, "fit failed: " + err.Error(), time.Hour
	}
	pp := hw.Params()
	return hw, fmt.Sprintf("predicting: Holt-Winters on %d points, seasons %v, one-step error %s", pp.Observations, pp.Seasons, num(pp.Sigma)), refitEvery
}

// forecastAt returns the forecast mean for now+Lead, and logs it for the
// step it falls in.
func (pr *predictor) forecastAt(now time.Time) (float64, bool) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.hw == nil {
		return 0, false
	}
	at := now.Add(pr.cfg.Lead)
	pts := pr.hw.Forecast(now, pr.cfg.Lead+pr.cfg.Step, forecast.DefaultLevel)
	for _, pt := range pts {
		if !pt.T.Before(at.Truncate(pr.cfg.Step)) && finite(pt.Mean) {
			slot := at.Truncate(pr.cfg.Step)
			if k := slices.IndexFunc(pr.log, func(f ForecastPoint) bool { return f.Time.Equal(slot) }); k < 0 {
				pr.log = append(pr.log, ForecastPoint{Time: slot, Forecast: pt.Mean, Lower: pt.Lower, Upper: pt.Upper})
				if n := len(pr.log) - forecastLog; n > 0 {
					pr.log = slices.Delete(pr.log, 0, n)
				}
			}
			return math.Max(pt.Mean, 0), true
		}
	}
	return 0, false
}

func (pr *predictor) status(metric string) ForecastStatus {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return ForecastStatus{Metric: metric, Query: pr.total, State: pr.state, Lead: pr.cfg.Lead, Step: pr.cfg.Step,
		Points: slices.Clone(pr.log)}
}
