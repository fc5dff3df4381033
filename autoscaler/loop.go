package autoscaler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"opspilot/config"
)

// Sample is one series of an instant query's result.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// Querier answers instant MetricsQL/PromQL queries at a time. The loop
// reads every metric through it; cmd/opspilot adapts the TSDB client.
type Querier interface {
	Query(ctx context.Context, expr string, at time.Time) ([]Sample, error)
}

// RangeQuerier also answers range queries; predictive policies use it to
// fit their models on past data. A Querier without it never predicts.
type RangeQuerier interface {
	QueryRange(ctx context.Context, expr string, start, end time.Time, step time.Duration) (ts []time.Time, vs []float64, err error)
}

// Scale is a service's size as the scale target sees it.
type Scale struct {
	// Replicas is the count the service is set to.
	Replicas int
	// Instances are the instances that count (not being stopped, not
	// failed), with their readiness.
	Instances []Instance
	// CPU and Memory are what one instance requests (cores and bytes),
	// for resource metrics; zero when not set.
	CPU, Memory float64
}

// Target is what the loop scales: opspilot's orchestrator, or later a
// Kubernetes deployment. Implementations must be safe for concurrent use.
type Target interface {
	// Get returns the service's replicas and instances; an error wrapping
	// ErrNoService means the service does not exist.
	Get(ctx context.Context, service string) (Scale, error)
	// Scale sets the service's replicas; who and why are recorded with
	// the change.
	Scale(ctx context.Context, service string, replicas int, who, why string) error
}

// ErrNoService is returned (wrapped) by Target.Get for a service that does
// not exist.
var ErrNoService = errors.New("no such service")

// Event is something the loop reports for a service: a decision that
// scaled or was held back, stale data, a failed scale.
type Event struct {
	Service string
	// Type is "Normal" or "Warning".
	Type string
	// Reason is a CamelCase word: Scaled, WouldScale (dry run),
	// ScaleLimited, MetricStale, MetricRecovered, ScaleFailed.
	Reason  string
	Message string
}

// Recorder keeps the loop's events (the orchestrator's event log).
type Recorder interface {
	Record(ctx context.Context, e Event)
}

// LoopConfig configures the loop: the `autoscaler:` section of
// opspilot.yaml.
type LoopConfig struct {
	// Enabled runs the loop in the control plane (default true).
	Enabled bool `yaml:"enabled"`
	// Interval between evaluations (default 1s).
	Interval time.Duration `yaml:"interval"`
	// DryRun makes every policy a dry run: decisions are reported, not
	// carried out.
	DryRun bool `yaml:"dry_run"`
	// History is how many decisions per service Status keeps (default 50).
	History int `yaml:"history"`
}

// DefaultLoopConfig is the loop's configuration when the file says nothing.
func DefaultLoopConfig() LoopConfig {
	return LoopConfig{Enabled: true, Interval: DefaultInterval, History: DefaultHistory}
}

// Validate reports problems with YAML field paths.
func (c LoopConfig) Validate() []config.Problem {
	var ps []config.Problem
	if c.Interval < 100*time.Millisecond || c.Interval > time.Minute {
		ps = append(ps, config.Problem{Field: "interval", Msg: fmt.Sprintf("%s is outside 100ms..1m; the default 1s decides within two seconds of a change", c.Interval)})
	}
	if c.History < 0 || c.History > 10000 {
		ps = append(ps, config.Problem{Field: "history", Msg: "must be between 0 (default 50) and 10000 decisions per service"})
	}
	return ps
}

// Defaults of LoopConfig.
const (
	DefaultInterval = time.Second
	DefaultHistory  = 50
	// Who is the name decisions are recorded under.
	Who = "autoscaler"
)

// LoopOptions are the loop's dependencies.
type LoopOptions struct {
	Querier Querier
	Target  Target
	// Policies returns the policies to evaluate; it is called every
	// evaluation. On an error the last policies are kept.
	Policies func(ctx context.Context) ([]Policy, error)
	// Recorder receives events; nil drops them (they are still logged).
	Recorder Recorder
	// BeforeEvaluate, if set, runs before each evaluation: the embedded
	// TSDB makes the samples written so far searchable there.
	BeforeEvaluate func()
	Registerer     prometheus.Registerer
	Log            *slog.Logger
	// Now is the clock (default time.Now); tests pass a fake one.
	Now func() time.Time
}

// Loop evaluates every policy each interval: it reads the metrics, checks
// they are fresh, computes Desired, applies the behaviour with a Limiter
// per service, adds the predictive recommendation, scales the Target and
// reports. Create it with NewLoop and start it with Run.
type Loop struct {
	cfg LoopConfig
	o   LoopOptions
	m   *loopMetrics

	mu       sync.Mutex
	policies []Policy
	services map[string]*serviceState
}

// serviceState is what the loop keeps per service between evaluations.
type serviceState struct {
	policy     Policy
	limiter    *Limiter
	stale      bool // the last evaluation had a stale or missing metric
	lastLimits string
	history    []Decided // newest last
	last       Decided
	predictors map[int]*predictor
}

// Decided is one evaluation's record, for Status and describe.
type Decided struct {
	Time time.Time `json:"time"`
	// Current is the replica count before the decision; Replicas after.
	Current  int `json:"current"`
	Replicas int `json:"replicas"`
	// Recommendation is the raw result of Desired (with Predicted added).
	Recommendation Recommendation `json:"recommendation"`
	// Predicted is the predictive recommendation, 0 when none.
	Predicted int `json:"predicted,omitempty"`
	// PredictReason explains Predicted.
	PredictReason string `json:"predict_reason,omitempty"`
	// Decision is the behaviour step's result.
	Decision Decision `json:"decision"`
	// Action is "scaled", "dry-run", "held" (stale data), "failed", or
	// "none".
	Action string `json:"action"`
	// Error is set when Action is "failed".
	Error string `json:"error,omitempty"`
	// Latency is how long the evaluation took, from reading the first
	// metric to the scale call's return.
	Latency time.Duration `json:"latency_ns"`
}

// NewLoop checks its options and returns a loop.
func NewLoop(cfg LoopConfig, o LoopOptions) (*Loop, error) {
	if o.Querier == nil || o.Target == nil || o.Policies == nil {
		return nil, errors.New("autoscaler: NewLoop needs a Querier, a Target and Policies")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.History <= 0 {
		cfg.History = DefaultHistory
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	m, err := newLoopMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	return &Loop{cfg: cfg, o: o, m: m, services: map[string]*serviceState{}}, nil
}

// SetBeforeEvaluate sets LoopOptions.BeforeEvaluate; call it before Run.
func (l *Loop) SetBeforeEvaluate(f func()) { l.o.BeforeEvaluate = f }

// Run evaluates every interval until ctx ends.
func (l *Loop) Run(ctx context.Context) error {
	t := time.NewTicker(l.cfg.Interval)
	defer t.Stop()
	for {
		l.Evaluate(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Evaluate runs one evaluation of every policy.
func (l *Loop) Evaluate(ctx context.Context) {
	ps, err := l.o.Policies(ctx)
	l.mu.Lock()
	if err != nil {
		l.o.Log.Warn("autoscaler: cannot list policies; keeping the last ones", "err", err)
		ps = l.policies
	}
	l.policies = ps
	seen := map[string]bool{}
	for _, p := range ps {
		seen[p.Service] = true
	}
	for name := range l.services {
		if !seen[name] {
			delete(l.services, name)
			l.m.forget(name)
		}
	}
	l.mu.Unlock()
	if len(ps) == 0 {
		return
	}
	if l.o.BeforeEvaluate != nil {
		l.o.BeforeEvaluate()
	}
	for i := range ps {
		if ctx.Err() != nil {
			return
		}
		l.evaluate(ctx, &ps[i])
	}
}

// state returns the service's state, creating it or updating its policy.
func (l *Loop) state(p *Policy) *serviceState {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.services[p.Service]
	if s == nil {
		s = &serviceState{limiter: NewLimiter(p), predictors: map[int]*predictor{}}
		l.services[p.Service] = s
	}
	if !samePolicy(&s.policy, p) {
		// A re-applied policy keeps the limiter's history (windows and
		// rate periods span the change) but predictions start over.
		s.limiter.Behavior, s.limiter.MinReplicas, s.limiter.MaxReplicas = p.Behavior, p.MinReplicas, p.MaxReplicas
		s.predictors = map[int]*predictor{}
	}
	s.policy = *p
	return s
}

// samePolicy compares policies by value: each evaluation decodes them
// afresh from the store, so their pointers always differ.
func samePolicy(a, b *Policy) bool { return reflect.DeepEqual(*a, *b) }

// evaluate decides for one policy.
func (l *Loop) evaluate(ctx context.Context, p *Policy) {
	start := time.Now()
	now := l.o.Now()
	s := l.state(p)
	dry := l.cfg.DryRun || p.DryRun

	sc, err := l.o.Target.Get(ctx, p.Service)
	if err != nil {
		l.m.errors.WithLabelValues(p.Service, "target").Inc()
		if !errors.Is(err, ErrNoService) {
			l.o.Log.Warn("autoscaler: cannot read the service", "service", p.Service, "err", err)
		}
		// No replica gauges: the count is unknown, not zero.
		l.m.evaluations.WithLabelValues(p.Service, "held").Inc()
		l.mu.Lock()
		s.last = Decided{Time: now, Action: "held", Error: err.Error()}
		l.mu.Unlock()
		return
	}
	in := Inputs{Current: sc.Replicas, Instances: sc.Instances}
	in.Metrics = l.observe(ctx, p, sc, now)
	rec := Desired(p, in)

	d := Decided{Time: now, Current: sc.Replicas}
	var stale []string
	for i, pr := range rec.Proposals {
		if pr.State == Invalid && in.Metrics[i].Unavailable != "" {
			stale = append(stale, pr.Metric+": "+pr.Reason)
		}
	}
	if p.Predictive != nil {
		d.Predicted, d.PredictReason = l.predict(ctx, p, s, in, now)
		if d.Predicted > rec.Replicas && len(stale) == 0 && rec.Active {
			rec.Reason = fmt.Sprintf("predictive: %s (reactive: %d, %s)", d.PredictReason, rec.Replicas, rec.Reason)
			rec.Replicas = d.Predicted
		}
	}
	d.Recommendation = rec

	if len(stale) > 0 {
		// A stale or missing metric holds the replicas: never scale on
		// nothing. The limiter does not see this evaluation.
		d.Replicas, d.Action = sc.Replicas, "held"
		d.Decision = Decision{Replicas: sc.Replicas, Recommended: rec.Replicas, Stabilized: sc.Replicas, Policy: -1,
			Reason: "holding " + fmt.Sprint(sc.Replicas) + " replicas: " + strings.Join(stale, "; ")}
		if !s.stale {
			l.record(ctx, Event{Service: p.Service, Type: "Warning", Reason: "MetricStale",
				Message: fmt.Sprintf("holding %d replicas of %s: %s", sc.Replicas, p.Service, strings.Join(stale, "; "))})
		}
		s.stale = true
		l.m.held.WithLabelValues(p.Service).Inc()
		d.Latency = time.Since(start)
		l.finish(ctx, s, d, "")
		return
	}
	if s.stale {
		s.stale = false
		l.record(ctx, Event{Service: p.Service, Type: "Normal", Reason: "MetricRecovered",
			Message: fmt.Sprintf("every metric of %s is fresh again", p.Service)})
	}

	dec := s.limiter.Apply(now, sc.Replicas, rec.Replicas)
	d.Decision, d.Replicas, d.Action = dec, dec.Replicas, "none"
	limits := limitString(dec.LimitedBy)
	for _, lb := range dec.LimitedBy {
		l.m.limited.WithLabelValues(p.Service, string(lb)).Inc()
	}
	if dec.Replicas != sc.Replicas {
		why := fmt.Sprintf("%s; %s", rec.Reason, dec.Reason)
		if dry {
			d.Action = "dry-run"
			if s.last.Action != "dry-run" || s.last.Replicas != dec.Replicas || s.last.Current != sc.Replicas {
				l.record(ctx, Event{Service: p.Service, Type: "Normal", Reason: "WouldScale",
					Message: fmt.Sprintf("dry run: would scale %s from %d to %d replicas: %s", p.Service, sc.Replicas, dec.Replicas, why)})
			}
		} else if err := l.o.Target.Scale(ctx, p.Service, dec.Replicas, Who, why); err != nil {
			d.Action, d.Error = "failed", err.Error()
			l.m.errors.WithLabelValues(p.Service, "scale").Inc()
			l.record(ctx, Event{Service: p.Service, Type: "Warning", Reason: "ScaleFailed",
				Message: fmt.Sprintf("scaling %s from %d to %d failed (retrying next evaluation): %v", p.Service, sc.Replicas, dec.Replicas, err)})
		} else {
			d.Action = "scaled"
			s.limiter.Record(now, sc.Replicas, dec.Replicas)
			l.m.scaled.WithLabelValues(p.Service, direction(sc.Replicas, dec.Replicas)).Inc()
			l.record(ctx, Event{Service: p.Service, Type: "Normal", Reason: "AutoScaled",
				Message: fmt.Sprintf("scaled %s from %d to %d replicas: %s", p.Service, sc.Replicas, dec.Replicas, why)})
		}
	} else if limits != "" && limits != s.lastLimits && rec.Replicas != sc.Replicas {
		l.record(ctx, Event{Service: p.Service, Type: "Normal", Reason: "ScaleLimited",
			Message: fmt.Sprintf("%s: recommended %d, keeping %d: %s (%s)", p.Service, rec.Replicas, sc.Replicas, dec.Reason, rec.Reason)})
	}
	d.Latency = time.Since(start)
	l.finish(ctx, s, d, limits)
}

// finish stores the decision and updates the metrics.
func (l *Loop) finish(_ context.Context, s *serviceState, d Decided, limits string) {
	svc := s.policy.Service
	l.m.current.WithLabelValues(svc).Set(float64(d.Current))
	l.m.desired.WithLabelValues(svc).Set(float64(d.Replicas))
	l.m.recommended.WithLabelValues(svc).Set(float64(d.Recommendation.Replicas))
	l.m.latency.WithLabelValues(svc).Observe(d.Latency.Seconds())
	for i, pr := range d.Recommendation.Proposals {
		if pr.State == Proposed {
			l.m.value.WithLabelValues(svc, pr.Metric).Set(pr.Value)
			l.m.target.WithLabelValues(svc, pr.Metric).Set(pr.Target)
		}
		_ = i
	}
	l.m.evaluations.WithLabelValues(svc, d.Action).Inc()
	l.mu.Lock()
	defer l.mu.Unlock()
	s.lastLimits = limits
	s.last = d
	if d.Action == "scaled" || d.Action == "failed" || len(s.history) == 0 || changed(s.history[len(s.history)-1], d) {
		s.history = append(s.history, d)
		if n := len(s.history) - l.cfg.History; n > 0 {
			s.history = slices.Delete(s.history, 0, n)
		}
	}
}

// changed reports whether a decision differs from the previous recorded
// one in what a person reading the history cares about.
func changed(a, b Decided) bool {
	return a.Current != b.Current || a.Replicas != b.Replicas || a.Recommendation.Replicas != b.Recommendation.Replicas ||
		a.Predicted != b.Predicted || limitString(a.Decision.LimitedBy) != limitString(b.Decision.LimitedBy) || a.Action != b.Action
}

func limitString(ls []Limit) string {
	s := make([]string, len(ls))
	for i, l := range ls {
		s[i] = string(l)
	}
	return strings.Join(s, ",")
}

func direction(from, to int) string {
	if to > from {
		return "up"
	}
	return "down"
}

func (l *Loop) record(ctx context.Context, e Event) {
	lvl := slog.LevelInfo
	if e.Type == "Warning" {
		lvl = slog.LevelWarn
	}
	l.o.Log.Log(ctx, lvl, "autoscaler: "+e.Message, "service", e.Service, "reason", e.Reason)
	if l.o.Recorder != nil {
		l.o.Recorder.Record(ctx, e)
	}
}

// Status is what the loop knows of one service, for describe.
type Status struct {
	Policy Policy `json:"policy"`
	// Last is the latest evaluation; History the recent decisions that
	// changed something, oldest first.
	Last    Decided   `json:"last"`
	History []Decided `json:"history"`
	// Forecasts holds, per predicted metric, the model's state and its
	// forecasts against what happened.
	Forecasts []ForecastStatus `json:"forecasts,omitempty"`
	DryRun    bool             `json:"dry_run"`
}

// Status returns the service's status; false if no policy scales it.
func (l *Loop) Status(service string) (Status, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.services[service]
	if s == nil {
		return Status{}, false
	}
	st := Status{Policy: s.policy, Last: jsonSafe(s.last), DryRun: l.cfg.DryRun || s.policy.DryRun}
	for _, d := range s.history {
		st.History = append(st.History, jsonSafe(d))
	}
	for _, i := range slices.Sorted(maps.Keys(s.predictors)) {
		fs := s.predictors[i].status(metricPath(i))
		for k := range fs.Points {
			p := &fs.Points[k]
			p.Forecast, p.Lower, p.Upper = zeroNaN(p.Forecast), zeroNaN(p.Lower), zeroNaN(p.Upper)
		}
		st.Forecasts = append(st.Forecasts, fs)
	}
	return st, true
}

// Services lists the services the loop scales.
func (l *Loop) Services() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Sorted(maps.Keys(l.services))
}

// jsonSafe copies a decision with non-finite numbers (a NaN average)
// set to 0, which JSON cannot carry.
func jsonSafe(d Decided) Decided {
	d.Recommendation.Proposals = slices.Clone(d.Recommendation.Proposals)
	for k := range d.Recommendation.Proposals {
		p := &d.Recommendation.Proposals[k]
		p.Value, p.Target, p.Ratio = zeroNaN(p.Value), zeroNaN(p.Target), zeroNaN(p.Ratio)
	}
	return d
}

func zeroNaN(v float64) float64 {
	if finite(v) {
		return v
	}
	return 0
}

// finite reports whether v is a usable number.
func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
