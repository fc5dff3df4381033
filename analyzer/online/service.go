package online

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"opspilot/analyzer"
	"opspilot/analyzer/loganomaly"
	"opspilot/analyzer/rootcause"
	"opspilot/tsdb"
)

// Querier runs range queries (tsdb.Client is one).
type Querier interface {
	QueryRange(ctx context.Context, expr string, r tsdb.Range) (tsdb.Result, error)
}

// Writer writes samples (tsdb.Client is one).
type Writer interface {
	Write(ctx context.Context, series []tsdb.TimeSeries) error
}

// relookBack is how many intervals before the last scored one each range
// query repeats, for points that became visible late.
const relookBack = 2

// Names of the series the service writes, as vmanomaly names them.
const (
	MetricScore    = "anomaly_score"
	MetricExpected = "anomaly_expected"
	MetricLower    = "anomaly_lower"
	MetricUpper    = "anomaly_upper"
)

// Options are the service's collaborators.
type Options struct {
	Querier Querier
	Writer  Writer
	// NewModel makes the model for a new series of a query naming model
	// (Query.Model); default analyzer.NewOnlineModelNamed.
	NewModel func(model string) (analyzer.Model, error)
	// Registerer receives the opspilot_analyzer_* metrics (may be nil).
	Registerer prometheus.Registerer
	Log        *slog.Logger
	// Inventory lists where instances run, for root-cause hints (may be
	// nil: hints then use only the labels on the anomalous series).
	Inventory func(context.Context) ([]rootcause.Instance, error)
	// Now is the clock (tests).
	Now func() time.Time
}

// Service scores the configured queries' series every interval and writes
// the anomaly series back. Run owns its loop; Step is one pass.
type Service struct {
	cfg  Config
	opts Options
	log  *slog.Logger
	m    *metrics

	mu     sync.Mutex
	series map[string]*series // by seriesKey
	joint  map[string]*jointSeries
	joints []Joint // cfg.Joints()
	// scored is, per query, the last interval end scored; a pass scores
	// (scored, now] so a missed pass is caught up, not lost.
	scored map[string]time.Time
	// pending holds written-back samples the TSDB has not accepted yet.
	pending []tsdb.TimeSeries
	// templates lists a service's newest log templates, once the log
	// scanner runs (SetLogTemplates).
	templates atomic.Pointer[func(service string) []loganomaly.TemplateInfo]
	// scratch and keyBuf are observe's reused buffers (under mu).
	scratch []tsdb.Label
	keyBuf  []byte
}

// series is one scored series.
type series struct {
	query  string
	labels []tsdb.Label // output labels, without __name__, sorted
	model  analyzer.Model
	last   time.Time // timestamp of the last point observed
	result analyzer.Result
	episode
	// out are the labels of anomaly_score, _expected, _lower and _upper.
	out [4][]tsdb.Label
}

// episode is a series' current or latest anomaly episode: consecutive
// alarms no more than the root-cause window apart.
type episode struct {
	onset, lastAlarm time.Time
	peak             float64
}

// alarm records a point scored at or above analyzer.AlarmLevel.
func (e *episode) alarm(t time.Time, score float64, window time.Duration) {
	if e.onset.IsZero() || t.Sub(e.lastAlarm) > window {
		e.onset, e.peak = t, 0
	}
	e.lastAlarm, e.peak = t, max(e.peak, score)
}

// anomaly is the episode as root-cause input, if it alarmed at or after
// since; metric names the query or joint.
func (e *episode) anomaly(since time.Time, labels []tsdb.Label, metric string) (rootcause.Anomaly, bool) {
	if e.onset.IsZero() || e.lastAlarm.Before(since) {
		return rootcause.Anomaly{}, false
	}
	ls := make(map[string]string, len(labels))
	for _, l := range labels {
		ls[l.Name] = l.Value
	}
	sr := rootcause.SeriesFromLabels(ls)
	sr.Metric = metric
	return rootcause.Anomaly{Series: sr, Onset: e.onset, Peak: e.peak, Last: e.lastAlarm}, true
}

// New builds the service and restores the checkpoint in cfg.StateFile when
// one exists. A checkpoint that cannot be read is reported and ignored: the
// models then start fresh.
func New(cfg Config, opts Options) (*Service, error) {
	if opts.Querier == nil || opts.Writer == nil {
		return nil, errors.New("analyzer: online service needs a querier and a writer")
	}
	if opts.NewModel == nil {
		opts.NewModel = analyzer.NewOnlineModelNamed
	}
	for _, q := range cfg.Queries {
		if _, err := opts.NewModel(q.Model); err != nil {
			return nil, fmt.Errorf("analyzer query %s: %w", q.Name, err)
		}
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, opts: opts, log: opts.Log, m: m,
		series: map[string]*series{}, joint: map[string]*jointSeries{}, joints: cfg.Joints(), scored: map[string]time.Time{}}
	if cfg.StateFile != "" {
		n, err := s.restore(cfg.StateFile)
		switch {
		case err != nil:
			s.log.Warn("analyzer: checkpoint not restored; models start fresh", "file", cfg.StateFile, "err", err)
		case n > 0:
			s.log.Info("analyzer: restored model checkpoint", "file", cfg.StateFile, "series", n)
		}
	}
	s.m.series.Set(float64(len(s.series)))
	return s, nil
}

// SetLogTemplates makes the log scanner's newest templates available to the
// API (GET /api/v1/analyzer/log-templates).
func (s *Service) SetLogTemplates(f func(service string) []loganomaly.TemplateInfo) {
	s.templates.Store(&f)
}

// Run scores every interval and checkpoints every CheckpointInterval and
// on return, until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	tick := time.NewTicker(s.cfg.Interval)
	defer tick.Stop()
	lastCkpt := s.opts.Now()
	defer func() {
		if err := s.SaveCheckpoint(); err != nil {
			s.log.Warn("analyzer: final checkpoint failed", "err", err)
		}
	}()
	for {
		if err := s.Step(ctx, s.opts.Now()); err != nil && ctx.Err() == nil {
			s.log.Warn("analyzer: pass incomplete; the missed intervals are scored on the next pass", "err", err)
		}
		if s.cfg.StateFile != "" && s.opts.Now().Sub(lastCkpt) >= s.cfg.CheckpointInterval {
			if err := s.SaveCheckpoint(); err != nil {
				s.log.Warn("analyzer: checkpoint failed", "err", err)
			}
			lastCkpt = s.opts.Now()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// Step scores every query's points in (last scored, now], aligned to the
// interval, writes the anomaly series and retries earlier unwritten ones.
// A query that fails keeps its position, so the next pass scores the
// intervals it missed (up to MaxCatchUp back).
func (s *Service) Step(ctx context.Context, now time.Time) error {
	start := time.Now()
	step := s.cfg.Interval
	end := now.Truncate(step)
	var errs []error
	var out []tsdb.TimeSeries
	results := map[string]model.Matrix{}
	floor := end.Add(-max(s.cfg.MaxCatchUp, step))
	for _, q := range s.cfg.Queries {
		s.mu.Lock()
		from, ok := s.scored[q.Name]
		s.mu.Unlock()
		if !ok || from.Before(floor) {
			from = floor
		}
		if !end.After(from) {
			continue
		}
		// The range reaches relookBack intervals before the last one scored:
		// a point the TSDB had not made visible yet is scored late instead
		// of never. Each series' last timestamp keeps any point from being
		// scored twice.
		res, err := s.opts.Querier.QueryRange(ctx, q.Expr, tsdb.Range{Start: from.Add(-relookBack * step), End: end, Step: step})
		if err != nil {
			s.m.queryErrors.WithLabelValues(q.Name).Inc()
			errs = append(errs, fmt.Errorf("query %s: %w", q.Name, err))
			continue
		}
		out = s.observe(q, res.Value, out)
		if mat, ok := res.Value.(model.Matrix); ok {
			results[q.Name] = mat
		}
		s.mu.Lock()
		s.scored[q.Name] = end
		s.mu.Unlock()
	}
	out = s.observeJoint(results, out)
	s.forget(now)
	if err := s.write(ctx, out); err != nil {
		errs = append(errs, err)
	}
	s.m.passSeconds.Observe(time.Since(start).Seconds())
	return errors.Join(errs...)
}

// observe feeds each series' points newer than its last one, in time order, to their
// series' models and appends the anomaly samples to out.
func (s *Service) observe(q Query, v model.Value, out []tsdb.TimeSeries) []tsdb.TimeSeries {
	mat, ok := v.(model.Matrix)
	if !ok {
		s.log.Warn("analyzer: query did not return a range vector; skipped", "query", q.Name, "type", v.Type().String())
		return out
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ss := range mat {
		// Look the series up by a key built in a reused buffer: no
		// allocation for series already known.
		s.scratch = outputLabels(s.scratch[:0], q.Name, ss.Metric)
		s.keyBuf = appendKey(s.keyBuf[:0], s.scratch)
		se := s.series[string(s.keyBuf)]
		if se == nil {
			if len(s.series)+len(s.joint) >= s.cfg.MaxSeries {
				s.m.dropped.Inc()
				continue
			}
			m, _ := s.opts.NewModel(q.Model) // checked in New
			se = newSeries(q.Name, slices.Clone(s.scratch), m)
			s.series[string(s.keyBuf)] = se
		}
		// One backing array for the four output series' samples.
		buf := make([]tsdb.Sample, 0, 4*len(ss.Values))
		var n, ne, nb int
		for _, p := range ss.Values {
			t := p.Timestamp.Time()
			if !t.After(se.last) {
				continue
			}
			val := float64(p.Value)
			if math.IsNaN(val) || math.IsInf(val, 0) {
				continue
			}
			r := se.model.Observe(t, val)
			se.last, se.result = t, r
			if r.Score >= analyzer.AlarmLevel {
				se.alarm(t, r.Score, s.rcWindow())
			}
			s.m.points.Inc()
			n++
			if finite(r.Expected) {
				ne++
			}
			if finite(r.Lower) && finite(r.Upper) {
				nb++
			}
			buf = append(buf, tsdb.Sample{Timestamp: t.UnixMilli(), Value: r.Score}, tsdb.Sample{Value: r.Expected},
				tsdb.Sample{Value: r.Lower}, tsdb.Sample{Value: r.Upper})
		}
		if n == 0 {
			continue
		}
		// Regroup [score exp lower upper]* into four runs, skipping the
		// non-finite expectations and bounds of warming-up models.
		score, expected, lower, upper := make([]tsdb.Sample, 0, n), make([]tsdb.Sample, 0, ne), make([]tsdb.Sample, 0, nb), make([]tsdb.Sample, 0, nb)
		for i := 0; i < len(buf); i += 4 {
			ms := buf[i].Timestamp
			score = append(score, buf[i])
			if e := buf[i+1].Value; finite(e) {
				expected = append(expected, tsdb.Sample{Timestamp: ms, Value: e})
			}
			if lo, hi := buf[i+2].Value, buf[i+3].Value; finite(lo) && finite(hi) {
				lower = append(lower, tsdb.Sample{Timestamp: ms, Value: lo})
				upper = append(upper, tsdb.Sample{Timestamp: ms, Value: hi})
			}
		}
		out = appendOut(out, se.out[0], score)
		out = appendOut(out, se.out[1], expected)
		out = appendOut(out, se.out[2], lower)
		out = appendOut(out, se.out[3], upper)
	}
	s.m.series.Set(float64(len(s.series)))
	return out
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// appendSeries appends a series named name with labels and samples.
func appendSeries(out []tsdb.TimeSeries, name string, labels []tsdb.Label, samples []tsdb.Sample) []tsdb.TimeSeries {
	return appendOut(out, withName(name, labels), samples)
}

func appendOut(out []tsdb.TimeSeries, labels []tsdb.Label, samples []tsdb.Sample) []tsdb.TimeSeries {
	if len(samples) == 0 {
		return out
	}
	return append(out, tsdb.TimeSeries{Labels: labels, Samples: samples})
}

// withName is labels with __name__ first.
func withName(name string, labels []tsdb.Label) []tsdb.Label {
	ls := make([]tsdb.Label, 0, len(labels)+1)
	ls = append(ls, tsdb.Label{Name: "__name__", Value: name})
	return append(ls, labels...)
}

// newSeries builds a series and its four output label sets, which are
// shared by every write (the writer only reads them).
func newSeries(query string, labels []tsdb.Label, m analyzer.Model) *series {
	se := &series{query: query, labels: labels, model: m}
	for i, name := range []string{MetricScore, MetricExpected, MetricLower, MetricUpper} {
		se.out[i] = withName(name, labels)
	}
	return se
}

// outputLabels appends to dst the output labels of a source series: its
// labels with `for` set to the query name, sorted; a source __name__ is
// kept as `metric`, so series of one selector that differ only by name
// stay apart (and a source `for` becomes `source_for`). The label strings
// are the source's own.
func outputLabels(dst []tsdb.Label, query string, m model.Metric) []tsdb.Label {
	for k, v := range m {
		name := string(k)
		switch name {
		case model.MetricNameLabel:
			name = "metric"
		case "for":
			name = "source_for"
		}
		dst = append(dst, tsdb.Label{Name: name, Value: string(v)})
	}
	dst = append(dst, tsdb.Label{Name: "for", Value: query})
	slices.SortFunc(dst, func(a, b tsdb.Label) int { return strings.Compare(a.Name, b.Name) })
	return dst
}

// seriesKey is a query result series' map key and output labels.
func seriesKey(query string, m model.Metric) (string, []tsdb.Label) {
	labels := outputLabels(nil, query, m)
	return keyOf(labels), labels
}

// appendKey appends the map key of sorted output labels.
func appendKey(dst []byte, labels []tsdb.Label) []byte {
	for _, l := range labels {
		dst = append(dst, l.Name...)
		dst = append(dst, '=')
		dst = append(dst, l.Value...)
		dst = append(dst, 0)
	}
	return dst
}

// keyOf is the map key of sorted output labels (they include `for`).
func keyOf(labels []tsdb.Label) string { return string(appendKey(nil, labels)) }

// forget drops models of series that have had no data for cfg.Forget.
func (s *Service) forget(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, se := range s.series {
		if !se.last.IsZero() && now.Sub(se.last) > s.cfg.Forget {
			delete(s.series, k)
			s.m.forgotten.Inc()
		}
	}
	for k, js := range s.joint {
		if !js.last.IsZero() && now.Sub(js.last) > s.cfg.Forget {
			delete(s.joint, k)
			s.m.forgotten.Inc()
		}
	}
	s.m.series.Set(float64(len(s.series) + len(s.joint)))
}

// maxPending bounds samples kept for a TSDB that refuses writes: at the
// default interval that is hours of scores for thousands of series.
const maxPending = 1 << 20

// write sends out and any earlier unwritten samples. On failure they are
// kept (the oldest dropped beyond maxPending, counted) for the next pass.
func (s *Service) write(ctx context.Context, out []tsdb.TimeSeries) error {
	s.mu.Lock()
	batch := append(s.pending, out...)
	s.pending = nil
	s.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	err := s.opts.Writer.Write(ctx, batch)
	if err == nil {
		for _, ts := range batch {
			s.m.written.Add(float64(len(ts.Samples)))
		}
		return nil
	}
	if tsdb.IsRejected(err) {
		s.m.rejected.Add(float64(len(batch)))
		return fmt.Errorf("write anomaly series: the TSDB rejected them (dropped): %w", err)
	}
	n := 0
	for _, ts := range batch {
		n += len(ts.Samples)
	}
	for n > maxPending && len(batch) > 0 {
		n -= len(batch[0].Samples)
		s.m.rejected.Add(float64(len(batch[0].Samples)))
		batch = batch[1:]
	}
	s.mu.Lock()
	s.pending = append(batch, s.pending...)
	s.mu.Unlock()
	s.m.pending.Set(float64(n))
	return fmt.Errorf("write anomaly series (kept %d samples for the next pass): %w", n, err)
}

// SeriesStatus is one scored series' latest verdict, for the API.
type SeriesStatus struct {
	Query  string            `json:"for"`
	Labels map[string]string `json:"labels"`
	Time   time.Time         `json:"time"`
	Score  float64           `json:"score"`
	// Expected, Lower and Upper are absent while the model is warming up.
	Expected *float64 `json:"expected,omitempty"`
	Lower    *float64 `json:"lower,omitempty"`
	Upper    *float64 `json:"upper,omitempty"`
}

// Status lists the scored series whose labels include all of match,
// highest score first.
func (s *Service) Status(match map[string]string) []SeriesStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []SeriesStatus
next:
	for _, se := range s.series {
		ls := make(map[string]string, len(se.labels))
		for _, l := range se.labels {
			ls[l.Name] = l.Value
		}
		for k, v := range match {
			if ls[k] != v {
				continue next
			}
		}
		out = append(out, SeriesStatus{Query: se.query, Labels: ls, Time: se.last, Score: se.result.Score,
			Expected: optional(se.result.Expected), Lower: optional(se.result.Lower), Upper: optional(se.result.Upper)})
	}
nextJoint:
	for _, js := range s.joint {
		ls := make(map[string]string, len(js.labels))
		for _, l := range js.labels {
			ls[l.Name] = l.Value
		}
		for k, v := range match {
			if ls[k] != v {
				continue nextJoint
			}
		}
		out = append(out, SeriesStatus{Query: js.joint, Labels: ls, Time: js.last, Score: js.score})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Score != out[j].Score {
			return out[i].Score > out[j].Score
		}
		return fmt.Sprint(out[i].Labels) < fmt.Sprint(out[j].Labels)
	})
	return out
}

func optional(f float64) *float64 {
	if finite(f) {
		return &f
	}
	return nil
}
