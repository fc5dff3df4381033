package alerting

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/prometheus/prometheus/util/strutil"

	"opspilot/api"
	"opspilot/config"
	"opspilot/tsdb"
)

// EvaluatorConfig configures rule evaluation: the `alerting.rules` part of
// opspilot.yaml.
type EvaluatorConfig struct {
	// Files are rule files or globs (rules/*.yaml), Prometheus/vmalert
	// format with MetricsQL expressions.
	Files []string `yaml:"files"`
	// DisableBuiltin leaves out opspilot's own platform rules
	// (DatacenterLost, DatacenterDegraded, DatacenterFailedOver).
	DisableBuiltin bool `yaml:"disable_builtin"`
	// Interval is how often a group without its own interval is evaluated
	// (default 1s).
	Interval time.Duration `yaml:"interval"`
	// ResendDelay is how long a firing alert waits before it is sent to the
	// notification pipeline again (default 1m, as Prometheus'
	// --rules.alert.resend-delay). A new or resolved alert is sent at once.
	ResendDelay time.Duration `yaml:"resend_delay"`
	// OutageTolerance is how long opspilot may be down and still restore
	// the `for` state of pending and firing alerts from ALERTS_FOR_STATE
	// (default 1h).
	OutageTolerance time.Duration `yaml:"outage_tolerance"`
	// ForGracePeriod is the least time an alert whose `for` state was
	// restored waits before it fires, when its `for` is at least this long
	// (default 10m).
	ForGracePeriod time.Duration `yaml:"for_grace_period"`
}

// Defaults of EvaluatorConfig.
const (
	DefaultRuleInterval    = time.Second
	DefaultResendDelay     = time.Minute
	DefaultOutageTolerance = time.Hour
	DefaultForGracePeriod  = 10 * time.Minute
	// DefaultMaxPendingSamples bounds the samples kept for the next write
	// while the TSDB refuses them.
	DefaultMaxPendingSamples = 100_000
	// RulesWho is the name rule events are recorded under.
	RulesWho = "rules"
)

// DefaultEvaluatorConfig is the configuration when the file says nothing.
func DefaultEvaluatorConfig() EvaluatorConfig {
	return EvaluatorConfig{
		Interval:        DefaultRuleInterval,
		ResendDelay:     DefaultResendDelay,
		OutageTolerance: DefaultOutageTolerance,
		ForGracePeriod:  DefaultForGracePeriod,
	}
}

// Validate reports problems with YAML field paths.
func (c EvaluatorConfig) Validate() []config.Problem {
	var ps []config.Problem
	if c.Interval < 100*time.Millisecond || c.Interval > time.Hour {
		ps = append(ps, config.Problem{Field: "interval", Msg: fmt.Sprintf("%s is outside 100ms..1h; the default 1s turns a breach into an alert within two seconds", c.Interval)})
	}
	if c.ResendDelay < 0 {
		ps = append(ps, config.Problem{Field: "resend_delay", Msg: "must not be negative (default 1m)"})
	}
	if c.OutageTolerance < 0 {
		ps = append(ps, config.Problem{Field: "outage_tolerance", Msg: "must not be negative (default 1h; 0 never restores the for state)"})
	}
	if c.ForGracePeriod < 0 {
		ps = append(ps, config.Problem{Field: "for_grace_period", Msg: "must not be negative (default 10m)"})
	}
	for i, f := range c.Files {
		if _, err := filepath.Match(f, ""); err != nil || strings.TrimSpace(f) == "" {
			ps = append(ps, config.Problem{Field: fmt.Sprintf("files[%d]", i), Msg: fmt.Sprintf("%q is not a file path or glob pattern (rules/*.yaml)", f)})
		}
	}
	return ps
}

// AlertSink receives the alerts rules fire and resolve: the notification
// pipeline, which groups, silences and routes them. PutAlerts is called
// inline by a group's evaluation, so it must not block for long. An alert
// it refuses is sent again after the resend delay (a resolved one for up to
// 15 minutes after it resolved).
type AlertSink interface {
	PutAlerts(ctx context.Context, alerts ...*alert.Alert) error
}

// EvaluatorOptions are the evaluator's collaborators.
type EvaluatorOptions struct {
	// Querier runs the rules' instant queries (required).
	Querier Querier
	// Writer stores recording rules' results, ALERTS and ALERTS_FOR_STATE
	// (required).
	Writer Writer
	// Sink receives firing and resolved alerts; nil drops them.
	Sink AlertSink
	// Recorder receives fired and resolved events; nil drops them.
	Recorder Recorder
	// Registerer receives Prometheus' prometheus_rule_* metrics and the
	// evaluator's own; nil means none.
	Registerer prometheus.Registerer
	Log        *slog.Logger
	// ExternalURL is where opspilot is reached; alerts link to the
	// expression under it (GeneratorURL) and templates see it.
	ExternalURL string
	// BeforeEvaluate, if set, runs before an evaluation queries the TSDB
	// (at most once per evaluation time, and again after the evaluator's
	// own writes): the embedded TSDB makes the samples written so far
	// searchable there.
	BeforeEvaluate func()
	// MaxPendingSamples bounds the samples kept while writes fail (default
	// DefaultMaxPendingSamples); the oldest are dropped first.
	MaxPendingSamples int
}

// Evaluator evaluates rule files against the TSDB with Prometheus' rules
// manager: MetricsQL queries through the Querier, results, ALERTS and
// ALERTS_FOR_STATE through the Writer, alerts to the Sink. Create it with
// NewEvaluator and start it with Run.
type Evaluator struct {
	cfg      EvaluatorConfig
	o        EvaluatorOptions
	set      *RuleSet
	manager  *rules.Manager
	m        *evalMetrics
	buf      *sampleBuffer
	extURL   *url.URL
	runCtx   context.Context
	cancel   context.CancelFunc
	maxGroup time.Duration // the longest group interval

	runOnce sync.Once

	flushMu   sync.Mutex
	flushedAt time.Time // the evaluation time BeforeEvaluate last ran for

	firingMu sync.Mutex
	firing   map[uint64]bool // alerts (by label hash) recorded as fired
}

// NewEvaluator checks cfg, loads and checks the rule files and prepares
// the rules manager; nothing is evaluated before Run, but Groups already
// lists the rules. Each group waits in a goroutine for Run, so an
// Evaluator is meant to be run.
func NewEvaluator(cfg EvaluatorConfig, o EvaluatorOptions) (*Evaluator, error) {
	if ps := cfg.Validate(); len(ps) > 0 {
		return nil, fmt.Errorf("alerting rules config: %s: %s", ps[0].Field, ps[0].Msg)
	}
	if o.Querier == nil || o.Writer == nil {
		return nil, errors.New("alerting: the rule evaluator needs a Querier and a Writer")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.MaxPendingSamples <= 0 {
		o.MaxPendingSamples = DefaultMaxPendingSamples
	}
	extURL, err := url.Parse(o.ExternalURL)
	if err != nil {
		return nil, fmt.Errorf("alerting: external URL %q: %w — give an absolute URL such as http://opspilot.example:8080", o.ExternalURL, err)
	}
	set := &RuleSet{}
	if len(cfg.Files) > 0 {
		set, err = LoadRuleFiles(cfg.Files)
		if err != nil {
			return nil, fmt.Errorf("alerting rule files:\n%w", err)
		}
	}
	e := &Evaluator{cfg: cfg, o: o, set: set, extURL: extURL, firing: map[uint64]bool{}, maxGroup: cfg.Interval}
	for _, f := range set.Files {
		for _, g := range f.Groups {
			e.maxGroup = max(e.maxGroup, time.Duration(g.Interval))
		}
	}
	e.m = newEvalMetrics(o.Registerer)
	e.buf = &sampleBuffer{w: o.Writer, log: o.Log, m: e.m, max: o.MaxPendingSamples, written: e.wrote}
	e.runCtx, e.cancel = context.WithCancel(context.Background())
	mp := NewMetricsQLParser()
	e.manager = rules.NewManager(&rules.ManagerOptions{
		NameValidationScheme:     model.UTF8Validation,
		ExternalURL:              extURL,
		QueryFunc:                e.query,
		NotifyFunc:               e.notify,
		Context:                  e.runCtx,
		AppendableV2:             e.buf,
		Queryable:                forStateQueryable{e: e},
		Logger:                   o.Log,
		Registerer:               o.Registerer,
		OutageTolerance:          cfg.OutageTolerance,
		ForGracePeriod:           cfg.ForGracePeriod,
		ResendDelay:              cfg.ResendDelay,
		GroupLoader:              setLoader{set: set, parser: mp},
		RuleDependencyController: noRuleDependencies{},
		Parser:                   mp,
	})
	if err := e.manager.Update(cfg.Interval, set.Paths(), labels.EmptyLabels(), o.ExternalURL, e.iterate); err != nil {
		return nil, fmt.Errorf("alerting: load rule groups: %w", err)
	}
	return e, nil
}

// Rules returns the checked rule files the evaluator runs.
func (e *Evaluator) Rules() *RuleSet { return e.set }

// Run evaluates the rules until ctx is done, then writes what is still
// pending. It may be called once.
func (e *Evaluator) Run(ctx context.Context) error {
	ran := false
	e.runOnce.Do(func() { ran = true })
	if !ran {
		return errors.New("alerting: the rule evaluator already ran; create a new one")
	}
	groups, rs := e.set.Count()
	e.o.Log.Info("rule evaluation started", "files", len(e.set.Files), "groups", groups, "rules", rs, "interval", e.cfg.Interval)
	done := make(chan struct{})
	go func() {
		e.manager.Run()
		close(done)
	}()
	<-ctx.Done()
	e.cancel()
	e.manager.Stop()
	<-done
	// The groups' context is gone; give the last samples a moment of their own.
	fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.buf.flush(fctx); err != nil {
		e.o.Log.Warn("rule results not written at shutdown", "err", err, "samples", e.buf.pendingCount())
	}
	e.o.Log.Info("rule evaluation stopped")
	return nil
}

// iterate is the groups' evaluation: Prometheus' own, with BeforeEvaluate
// first.
func (e *Evaluator) iterate(ctx context.Context, g *rules.Group, ts time.Time) {
	e.beforeEvaluate(ts)
	rules.DefaultEvalIterationFunc(ctx, g, ts)
	if err := e.buf.lastError(); err != nil {
		e.m.lastWriteFailed.Set(1)
	} else {
		e.m.lastWriteFailed.Set(0)
	}
}

// beforeEvaluate runs BeforeEvaluate once per evaluation time, however many
// groups share it, and again after the evaluator wrote samples (a recording
// rule's result another rule reads).
func (e *Evaluator) beforeEvaluate(ts time.Time) {
	if e.o.BeforeEvaluate == nil {
		return
	}
	e.flushMu.Lock()
	defer e.flushMu.Unlock()
	if ts.Equal(e.flushedAt) {
		return
	}
	e.flushedAt = ts
	e.o.BeforeEvaluate()
}

// wrote is called after a successful write: the next query flushes again.
func (e *Evaluator) wrote() {
	e.flushMu.Lock()
	e.flushedAt = time.Time{}
	e.flushMu.Unlock()
}

// newestParams asks VictoriaMetrics for latency_offset 1ms (its minimum),
// so that rules see the samples written up to now; Prometheus ignores it.
var newestParams = map[string]string{"latency_offset": "1ms"}

// query is the rules manager's QueryFunc: an instant MetricsQL query whose
// vector or scalar becomes a promql.Vector.
func (e *Evaluator) query(ctx context.Context, q string, t time.Time) (promql.Vector, error) {
	e.beforeEvaluate(t)
	res, err := e.o.Querier.Query(tsdb.WithQueryParams(ctx, newestParams), q, t)
	if err != nil {
		return nil, err
	}
	if len(res.Warnings) > 0 {
		e.o.Log.Debug("rule query warnings", "expr", q, "warnings", res.Warnings)
	}
	ts := t.UnixMilli()
	switch v := res.Value.(type) {
	case model.Vector:
		out := make(promql.Vector, 0, len(v))
		for _, s := range v {
			out = append(out, promql.Sample{Metric: labelsOf(s.Metric), T: ts, F: float64(s.Value)})
		}
		return out, nil
	case *model.Scalar:
		return promql.Vector{{Metric: labels.EmptyLabels(), T: ts, F: float64(v.Value)}}, nil
	case nil:
		return promql.Vector{}, nil
	}
	return nil, fmt.Errorf("the expression returns a %s; a rule needs an instant vector or a scalar — wrap range selectors in a function such as rate() or last_over_time()", res.Value.Type())
}

func labelsOf(m model.Metric) labels.Labels {
	b := labels.NewScratchBuilder(len(m))
	for k, v := range m {
		b.Add(string(k), string(v))
	}
	b.Sort()
	return b.Labels()
}

// notify is the rules manager's NotifyFunc: it converts the alerts as
// Prometheus' rules.SendAlerts does, records fired and resolved events and
// hands the alerts to the sink.
func (e *Evaluator) notify(ctx context.Context, expr string, alerts ...*rules.Alert) {
	if len(alerts) == 0 {
		return
	}
	now := time.Now()
	out := make([]*alert.Alert, 0, len(alerts))
	for _, a := range alerts {
		out = append(out, ConvertAlert(a, e.o.ExternalURL, expr, now))
		e.recordTransition(ctx, a, expr)
	}
	e.m.alertsSent.Add(float64(len(out)))
	if e.o.Sink == nil {
		return
	}
	if err := e.o.Sink.PutAlerts(ctx, out...); err != nil {
		e.m.sinkFailures.Inc()
		e.o.Log.Warn("alerts not handed to the notification pipeline; they are sent again within the resend delay", "alerts", len(out), "err", err)
	}
}

// ConvertAlert turns a rule's alert into Alertmanager's, as Prometheus'
// rules.SendAlerts and Alertmanager's API do: StartsAt is when it fired,
// EndsAt its resolution or, while firing, its ValidUntil.
func ConvertAlert(a *rules.Alert, externalURL, expr string, now time.Time) *alert.Alert {
	ma := model.Alert{
		Labels:       labelSetOf(a.Labels),
		Annotations:  labelSetOf(a.Annotations),
		StartsAt:     a.FiredAt,
		GeneratorURL: externalURL + strutil.TableLinkForExpression(expr),
	}
	if !a.ResolvedAt.IsZero() {
		ma.EndsAt = a.ResolvedAt
	} else {
		ma.EndsAt = a.ValidUntil
	}
	return alert.New(ma, now, false)
}

func labelSetOf(ls labels.Labels) model.LabelSet {
	out := make(model.LabelSet, ls.Len())
	ls.Range(func(l labels.Label) { out[model.LabelName(l.Name)] = model.LabelValue(l.Value) })
	return out
}

// recordTransition records EventFired the first time an alert is sent
// firing and EventResolved when it is sent resolved.
func (e *Evaluator) recordTransition(ctx context.Context, a *rules.Alert, expr string) {
	h := a.Labels.Hash()
	resolved := !a.ResolvedAt.IsZero()
	e.firingMu.Lock()
	was := e.firing[h]
	if resolved {
		delete(e.firing, h)
	} else {
		e.firing[h] = true
	}
	e.firingMu.Unlock()
	var ev Event
	switch {
	case !resolved && !was:
		ev = Event{Time: a.FiredAt, Type: EventFired}
		e.m.transitions.WithLabelValues(EventFired).Inc()
	case resolved && was:
		ev = Event{Time: a.ResolvedAt, Type: EventResolved}
		e.m.transitions.WithLabelValues(EventResolved).Inc()
	default:
		return
	}
	ls := labelSetOf(a.Labels)
	ev.Fingerprint = ls.Fingerprint().String()
	ev.AlertName = a.Labels.Get(labels.AlertName)
	ev.Labels = a.Labels.Map()
	ev.Who = RulesWho
	ev.Message = a.Annotations.Get("summary")
	if ev.Message == "" {
		ev.Message = expr
	}
	e.o.Log.Info("alert "+ev.Type, "alertname", ev.AlertName, "labels", a.Labels.String(), "value", a.Value)
	if e.o.Recorder != nil {
		e.o.Recorder.Record(ctx, ev)
	}
}

// setLoader gives the rules manager the groups LoadRuleFiles checked, so
// that the files are read once and every problem was reported with its
// line.
type setLoader struct {
	set    *RuleSet
	parser parser.Parser
}

func (l setLoader) Load(identifier string, _ bool, _ model.ValidationScheme) (*rulefmt.RuleGroups, []error) {
	for _, f := range l.set.Files {
		if f.Path == identifier {
			return &rulefmt.RuleGroups{Groups: f.Groups}, nil
		}
	}
	return nil, []error{fmt.Errorf("%s: not among the checked rule files", identifier)}
}

func (l setLoader) Parse(query string) (parser.Expr, error) { return l.parser.ParseExpr(query) }

// noRuleDependencies leaves every rule's dependencies unknown, so the
// rules are evaluated in order. Prometheus' analysis walks the PromQL
// syntax tree, which a *MetricsQLExpr does not have (the walk would panic).
type noRuleDependencies struct{}

func (noRuleDependencies) AnalyseRules([]rules.Rule) {}

// sampleBuffer is the rules manager's storage: each appender collects an
// evaluation's samples and Commit writes them, with any a failed write left
// behind, through the Writer. A failed write keeps the samples for the next
// commit (up to max, oldest dropped first) and does not fail the rule.
type sampleBuffer struct {
	w       Writer
	log     *slog.Logger
	m       *evalMetrics
	max     int
	written func()

	mu      sync.Mutex
	pending []tsdb.TimeSeries
	npend   int
	lastErr error
}

func (b *sampleBuffer) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return &bufferAppender{b: b, ctx: ctx}
}

func (b *sampleBuffer) pendingCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.npend
}

func (b *sampleBuffer) lastError() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lastErr
}

// commit writes the pending samples and series; on failure they become
// the pending samples.
func (b *sampleBuffer) commit(ctx context.Context, series []tsdb.TimeSeries, n int) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	all := append(b.pending, series...)
	total := b.npend + n
	if len(all) == 0 {
		return nil
	}
	if err := b.w.Write(ctx, all); err != nil {
		b.lastErr = err
		b.m.writeFailures.Inc()
		b.pending, b.npend = all, total
		for b.npend > b.max && len(b.pending) > 0 {
			dropped := len(b.pending[0].Samples)
			b.pending = b.pending[1:]
			b.npend -= dropped
			b.m.droppedSamples.Add(float64(dropped))
		}
		b.m.pendingSamples.Set(float64(b.npend))
		b.log.Warn("rule results not written; kept for the next evaluation", "samples", b.npend, "err", err)
		return err
	}
	b.pending, b.npend, b.lastErr = nil, 0, nil
	b.m.pendingSamples.Set(0)
	b.m.writtenSamples.Add(float64(total))
	if b.written != nil {
		b.written()
	}
	return nil
}

func (b *sampleBuffer) flush(ctx context.Context) error { return b.commit(ctx, nil, 0) }

type bufferAppender struct {
	b      *sampleBuffer
	ctx    context.Context
	series []tsdb.TimeSeries
}

func (a *bufferAppender) Append(_ storage.SeriesRef, ls labels.Labels, _, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, _ storage.AOptions) (storage.SeriesRef, error) {
	if h != nil || fh != nil {
		return 0, errors.New("native histograms are not supported by rule results; aggregate them to floats in the expression")
	}
	ts := tsdb.TimeSeries{Labels: make([]tsdb.Label, 0, ls.Len()), Samples: []tsdb.Sample{{Timestamp: t, Value: v}}}
	ls.Range(func(l labels.Label) { ts.Labels = append(ts.Labels, tsdb.Label{Name: l.Name, Value: l.Value}) })
	a.series = append(a.series, ts)
	return 0, nil
}

// Commit writes the samples. A failed write is logged, counted and retried
// with the next commit, so it does not mark the rule as failing: the
// evaluation itself (alert states) succeeded.
func (a *bufferAppender) Commit() error {
	_ = a.b.commit(a.ctx, a.series, len(a.series))
	a.series = nil
	return nil
}

func (a *bufferAppender) Rollback() error {
	a.series = nil
	return nil
}

// forStateQueryable restores alerts' `for` state after a restart: Select
// runs last_over_time and tlast_over_time of the ALERTS_FOR_STATE series
// over the outage tolerance as instant MetricsQL queries, then keeps the
// series that had no staleness marker after their last sample (see live):
// one more query per series found, which happens once per start.
type forStateQueryable struct{ e *Evaluator }

func (q forStateQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	return forStateQuerier{e: q.e, mint: mint, maxt: maxt}, nil
}

type forStateQuerier struct {
	e          *Evaluator
	mint, maxt int64
}

func (q forStateQuerier) Select(ctx context.Context, _ bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	parts := make([]string, 0, len(ms))
	for _, m := range ms {
		parts = append(parts, strconv.Quote(m.Name)+m.Type.String()+strconv.Quote(m.Value))
	}
	sel := "{" + strings.Join(parts, ",") + "}"
	window := max(time.Duration(q.maxt-q.mint)*time.Millisecond, time.Second)
	at := time.UnixMilli(q.maxt)
	win := fmt.Sprintf("[%ds]", int64(math.Ceil(window.Seconds())))
	ctx = tsdb.WithQueryParams(ctx, newestParams)
	vals, err := q.e.o.Querier.Query(ctx, "last_over_time("+sel+win+")", at)
	if err != nil {
		return storage.ErrSeriesSet(fmt.Errorf("restore for state: %w", err))
	}
	times, err := q.e.o.Querier.Query(ctx, "tlast_over_time("+sel+win+")", at)
	if err != nil {
		return storage.ErrSeriesSet(fmt.Errorf("restore for state: %w", err))
	}
	tv, _ := times.Value.(model.Vector)
	vv, _ := vals.Value.(model.Vector)
	last := map[model.Fingerprint]float64{}
	for _, s := range tv {
		m := s.Metric.Clone()
		delete(m, model.MetricNameLabel)
		last[m.Fingerprint()] = float64(s.Value)
	}
	var out []storage.Series
	for _, s := range vv {
		m := s.Metric.Clone()
		delete(m, model.MetricNameLabel)
		t, ok := last[m.Fingerprint()]
		if !ok {
			continue
		}
		m[model.MetricNameLabel] = "ALERTS_FOR_STATE"
		live, err := q.live(ctx, m, time.UnixMilli(int64(t*1000)), at)
		if err != nil {
			return storage.ErrSeriesSet(fmt.Errorf("restore for state: %w", err))
		}
		if !live {
			continue
		}
		out = append(out, storage.NewListSeries(labelsOf(m), []chunks.Sample{forStatePoint{t: int64(t * 1000), f: float64(s.Value)}}))
	}
	return &seriesList{series: out}
}

// live reports whether the series m, last sampled at last, was still
// active then: VictoriaMetrics' rollups skip Prometheus' staleness markers,
// so a resolved alert's last for-state sample shows in last_over_time. A
// resolved alert's series got a staleness marker at the evaluation after
// its last sample; a plain selector honours it, so m queried a little
// later is absent if the alert resolved, and present if it was still
// active when opspilot stopped.
func (q forStateQuerier) live(ctx context.Context, m model.Metric, last, now time.Time) (bool, error) {
	parts := make([]string, 0, len(m))
	for k, v := range m {
		parts = append(parts, strconv.Quote(string(k))+"="+strconv.Quote(string(v)))
	}
	slices.Sort(parts)
	at := last.Add(2*q.e.maxGroup + time.Millisecond)
	if at.After(now) {
		at = now
	}
	res, err := q.e.o.Querier.Query(ctx, "{"+strings.Join(parts, ",")+"}", at)
	if err != nil {
		return false, err
	}
	v, _ := res.Value.(model.Vector)
	return len(v) > 0, nil
}

func (forStateQuerier) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (forStateQuerier) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (forStateQuerier) Close() error { return nil }

type seriesList struct {
	series []storage.Series
	i      int
}

func (s *seriesList) Next() bool {
	if s.i >= len(s.series) {
		return false
	}
	s.i++
	return true
}
func (s *seriesList) At() storage.Series                { return s.series[s.i-1] }
func (s *seriesList) Err() error                        { return nil }
func (s *seriesList) Warnings() annotations.Annotations { return nil }
func (p forStatePoint) T() int64                        { return p.t }
func (p forStatePoint) ST() int64                       { return 0 }
func (p forStatePoint) F() float64                      { return p.f }
func (p forStatePoint) H() *histogram.Histogram         { return nil }
func (p forStatePoint) FH() *histogram.FloatHistogram   { return nil }
func (p forStatePoint) Type() chunkenc.ValueType        { return chunkenc.ValFloat }
func (p forStatePoint) Copy() chunks.Sample             { return p }

// forStatePoint is one ALERTS_FOR_STATE sample.
type forStatePoint struct {
	t int64
	f float64
}

type evalMetrics struct {
	writeFailures   prometheus.Counter
	writtenSamples  prometheus.Counter
	droppedSamples  prometheus.Counter
	pendingSamples  prometheus.Gauge
	lastWriteFailed prometheus.Gauge
	alertsSent      prometheus.Counter
	sinkFailures    prometheus.Counter
	transitions     *prometheus.CounterVec
}

func newEvalMetrics(reg prometheus.Registerer) *evalMetrics {
	f := promauto.With(reg)
	return &evalMetrics{
		writeFailures: f.NewCounter(prometheus.CounterOpts{Name: "opspilot_alerting_write_failures_total",
			Help: "Writes of rule results, ALERTS and ALERTS_FOR_STATE that failed (their samples are kept for the next write)."}),
		writtenSamples: f.NewCounter(prometheus.CounterOpts{Name: "opspilot_alerting_written_samples_total",
			Help: "Rule result, ALERTS and ALERTS_FOR_STATE samples written to the TSDB."}),
		droppedSamples: f.NewCounter(prometheus.CounterOpts{Name: "opspilot_alerting_dropped_samples_total",
			Help: "Rule result samples dropped because writes kept failing and the pending buffer was full."}),
		pendingSamples: f.NewGauge(prometheus.GaugeOpts{Name: "opspilot_alerting_pending_samples",
			Help: "Rule result samples waiting for the TSDB to accept them."}),
		lastWriteFailed: f.NewGauge(prometheus.GaugeOpts{Name: "opspilot_alerting_last_write_failed",
			Help: "1 if the last write of rule results failed."}),
		alertsSent: f.NewCounter(prometheus.CounterOpts{Name: "opspilot_alerting_alerts_sent_total",
			Help: "Firing and resolved alerts handed to the notification pipeline."}),
		sinkFailures: f.NewCounter(prometheus.CounterOpts{Name: "opspilot_alerting_sink_failures_total",
			Help: "Times the notification pipeline refused alerts."}),
		transitions: f.NewCounterVec(prometheus.CounterOpts{Name: "opspilot_alerting_alert_transitions_total",
			Help: "Alerts that started firing (fired) or resolved."}, []string{"event"}),
	}
}

// GroupStatus is one rule group in GET /api/v1/rules.
type GroupStatus struct {
	Name string `json:"name"`
	File string `json:"file"`
	// Interval is a Go duration ("1s").
	Interval       string    `json:"interval"`
	LastEvaluation time.Time `json:"last_evaluation"`
	// EvaluationSeconds is how long the last evaluation took.
	EvaluationSeconds float64      `json:"evaluation_seconds"`
	Rules             []RuleStatus `json:"rules"`
}

// RuleStatus is one rule's last evaluation.
type RuleStatus struct {
	Name string `json:"name"`
	// Type is "alerting" or "recording".
	Type          string            `json:"type"`
	Expr          string            `json:"expr"`
	For           string            `json:"for,omitempty"`
	KeepFiringFor string            `json:"keep_firing_for,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
	// State is inactive, pending or firing for alerting rules (unknown
	// before the first evaluation); empty for recording rules.
	State string `json:"state,omitempty"`
	// Health is ok, err or unknown.
	Health            string        `json:"health"`
	LastError         string        `json:"last_error,omitempty"`
	LastEvaluation    time.Time     `json:"last_evaluation"`
	EvaluationSeconds float64       `json:"evaluation_seconds"`
	Alerts            []AlertStatus `json:"alerts,omitempty"`
}

// AlertStatus is one active alert of an alerting rule.
type AlertStatus struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations,omitempty"`
	State       string            `json:"state"`
	Value       float64           `json:"value"`
	ActiveAt    time.Time         `json:"active_at"`
	FiredAt     time.Time         `json:"fired_at,omitzero"`
}

// Groups returns the groups' and rules' last evaluations, sorted by file
// and group name.
func (e *Evaluator) Groups() []GroupStatus {
	out := []GroupStatus{}
	for _, g := range e.manager.RuleGroups() {
		gs := GroupStatus{Name: g.Name(), File: g.File(), Interval: g.Interval().String(),
			LastEvaluation: g.GetLastEvaluation(), EvaluationSeconds: g.GetEvaluationTime().Seconds(), Rules: []RuleStatus{}}
		for _, r := range g.Rules() {
			rs := RuleStatus{Name: r.Name(), Expr: r.Query().String(), Labels: r.Labels().Map(), Health: string(r.Health()),
				LastEvaluation: r.GetEvaluationTimestamp(), EvaluationSeconds: r.GetEvaluationDuration().Seconds()}
			if err := r.LastError(); err != nil {
				rs.LastError = err.Error()
			}
			switch r := r.(type) {
			case *rules.AlertingRule:
				rs.Type = "alerting"
				rs.State = r.State().String()
				rs.For = model.Duration(r.HoldDuration()).String()
				rs.KeepFiringFor = model.Duration(r.KeepFiringFor()).String()
				rs.Annotations = r.Annotations().Map()
				for _, a := range r.ActiveAlerts() {
					rs.Alerts = append(rs.Alerts, AlertStatus{Labels: a.Labels.Map(), Annotations: a.Annotations.Map(),
						State: a.State.String(), Value: a.Value, ActiveAt: a.ActiveAt, FiredAt: a.FiredAt})
				}
				slices.SortFunc(rs.Alerts, func(a, b AlertStatus) int { return a.ActiveAt.Compare(b.ActiveAt) })
			default:
				rs.Type = "recording"
			}
			gs.Rules = append(gs.Rules, rs)
		}
		out = append(out, gs)
	}
	return out
}

// Routes are the evaluator's read-only REST endpoints: GET /api/v1/rules
// lists the groups, their rules' last evaluation and active alerts.
func (e *Evaluator) Routes() []api.Route {
	return []api.Route{
		{Pattern: "GET /api/v1/rules", Name: "rules", Role: api.RoleRead, Handler: http.HandlerFunc(e.listRules)},
	}
}

func (e *Evaluator) listRules(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(e.Groups())
}
