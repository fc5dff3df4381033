package loganomaly

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/google/renameio/v2"
	"github.com/prometheus/client_golang/prometheus"

	"opspilot/tsdb"
)

// Metric names of the series a scan produces.
const (
	MetricLines        = "opspilot_log_lines"
	MetricErrorLines   = "opspilot_log_error_lines"
	MetricNewTemplates = "opspilot_log_new_templates"
)

// DefaultErrorPattern marks a line as an error by its message when its
// level does not.
const DefaultErrorPattern = `(?i)\b(error|exception|fatal|panic|fail(ed|ure)?)\b`

// Writer takes the series a scan produced; *tsdb.Client is one.
type Writer interface {
	Write(ctx context.Context, series []tsdb.TimeSeries) error
}

// Config configures a Scanner. Zero fields take the documented defaults.
type Config struct {
	// URL is the VictoriaLogs base URL, e.g. http://127.0.0.1:9428.
	// Required.
	URL string
	// Filter is the LogsQL filter selecting the lines to scan. Default "*".
	Filter string
	// Interval is the scan period and the width of each sample's bucket.
	// Default 30s.
	Interval time.Duration
	// Delay keeps the scanned window this far behind now, so that lines
	// still being shipped or not yet searchable are not skipped. A line
	// whose _time is older than the window when it becomes searchable is
	// not counted. Default 15s.
	Delay time.Duration
	// MaxLookback bounds how far back a pass reaches after an outage or a
	// stop; older lines are skipped (and opspilot_log_scan_skipped_seconds_total
	// counts it). Default 1h; at least Interval.
	MaxLookback time.Duration
	// MaxPassWindow bounds the time range one pass reads, so that catching
	// up after an outage proceeds in passes that each finish within
	// QueryTimeout (Run runs them back to back). Default 10m; at least
	// Interval.
	MaxPassWindow time.Duration
	// QueryTimeout bounds one query to the log store. Default 1m.
	QueryTimeout time.Duration
	// ServiceField names the field lines are grouped by. Default "service".
	ServiceField string
	// FallbackField is used when ServiceField is empty. Default "_stream"
	// (the stream's labels); lines with neither are grouped as "unknown".
	FallbackField string
	// LevelField names the severity field. Default "level".
	LevelField string
	// ErrorLevels are the levels (case-insensitive) that make a line an
	// error. Default error, err, fatal, critical, crit, panic, emerg, alert.
	ErrorLevels []string
	// ErrorPattern makes a line an error when its message matches, whatever
	// its level. Default DefaultErrorPattern; "-" disables it.
	ErrorPattern string
	// MaxLineBytes cuts longer messages before mining. Default 16 KiB.
	MaxLineBytes int
	// RecentTemplates is how many new templates NewTemplates keeps per
	// service. Default 20.
	RecentTemplates int
	// ServiceTTL is how long a service/datacenter/node group keeps getting
	// zero samples after its last line. Default 24h.
	ServiceTTL time.Duration
	// Drain configures the per-service template miners.
	Drain DrainConfig
	// CheckpointPath is the file holding the cursor and the miners between
	// runs. Empty means no checkpoint: a restart starts afresh.
	CheckpointPath string
	// HTTPClient queries the log store. Default: a client with 5 s dial and
	// QueryTimeout response-header timeouts.
	HTTPClient *http.Client
	// Registerer receives the scanner's self-metrics; nil means none.
	Registerer prometheus.Registerer
	// Logger; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	c.URL = strings.TrimSuffix(c.URL, "/")
	if c.Filter == "" {
		c.Filter = "*"
	}
	if c.Interval == 0 {
		c.Interval = 30 * time.Second
	}
	if c.Delay == 0 {
		c.Delay = 15 * time.Second
	}
	if c.MaxLookback == 0 {
		c.MaxLookback = time.Hour
	}
	if c.MaxPassWindow == 0 {
		c.MaxPassWindow = 10 * time.Minute
	}
	if c.QueryTimeout == 0 {
		c.QueryTimeout = time.Minute
	}
	if c.ServiceField == "" {
		c.ServiceField = "service"
	}
	if c.FallbackField == "" {
		c.FallbackField = "_stream"
	}
	if c.LevelField == "" {
		c.LevelField = "level"
	}
	if c.ErrorLevels == nil {
		c.ErrorLevels = []string{"error", "err", "fatal", "critical", "crit", "panic", "emerg", "alert"}
	}
	if c.ErrorPattern == "" {
		c.ErrorPattern = DefaultErrorPattern
	}
	if c.MaxLineBytes == 0 {
		c.MaxLineBytes = 16 << 10
	}
	if c.RecentTemplates == 0 {
		c.RecentTemplates = 20
	}
	if c.ServiceTTL == 0 {
		c.ServiceTTL = 24 * time.Hour
	}
	c.Drain = c.Drain.withDefaults()
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate checks a configuration after defaults are applied.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if u, err := url.Parse(c.URL); c.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("log store URL %q: want the VictoriaLogs base URL, e.g. http://127.0.0.1:9428", c.URL))
	}
	if c.Interval < time.Second {
		errs = append(errs, fmt.Errorf("scan interval %s: must be at least 1s", c.Interval))
	}
	if c.Delay < 0 {
		errs = append(errs, fmt.Errorf("scan delay %s: must not be negative", c.Delay))
	}
	if c.MaxLookback < c.Interval {
		errs = append(errs, fmt.Errorf("max lookback %s: must be at least the interval %s", c.MaxLookback, c.Interval))
	}
	if c.MaxPassWindow < c.Interval {
		errs = append(errs, fmt.Errorf("max pass window %s: must be at least the interval %s", c.MaxPassWindow, c.Interval))
	}
	if c.QueryTimeout <= 0 || c.ServiceTTL <= 0 || c.MaxLineBytes <= 0 || c.RecentTemplates <= 0 {
		errs = append(errs, errors.New("query timeout, service TTL, max line bytes and recent templates must be positive"))
	}
	if c.ErrorPattern != "-" {
		if _, err := regexp.Compile(c.ErrorPattern); err != nil {
			errs = append(errs, fmt.Errorf("error pattern: %w", err))
		}
	}
	if err := c.Drain.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// TemplateInfo describes a template when it was first seen.
type TemplateInfo struct {
	Service string `json:"service"`
	ID      uint64 `json:"id"`
	// Template is the template as the miner holds it now (it generalises
	// as more lines join); FirstTemplate as it was created.
	Template      string    `json:"template"`
	FirstTemplate string    `json:"first_template"`
	Example       string    `json:"example"`
	FirstSeen     time.Time `json:"first_seen"`
	Datacenter    string    `json:"datacenter,omitempty"`
	Node          string    `json:"node,omitempty"`
}

// Scanner turns the lines in VictoriaLogs into per-service log metrics:
// every Interval it reads the lines that arrived since its cursor, mines
// their templates and counts lines, error lines and new templates per
// service (and datacenter and node). It is safe for concurrent use; passes
// run one at a time.
type Scanner struct {
	cfg   Config
	hc    *http.Client
	errRe *regexp.Regexp
	// defaultPattern: errRe is DefaultErrorPattern, matched by hasErrorWord.
	defaultPattern bool
	errLevel       map[string]bool
	m              *scanMetrics

	scanMu   sync.Mutex // one pass at a time; guards everything below but recent
	cursor   time.Time  // lines before it are counted
	miners   map[string]*Drain
	groups   map[groupKey]time.Time // last bucket end with a line
	pending  map[string]map[uint64]TemplateInfo
	msgBuf   []byte
	rowCache map[string]string

	mu     sync.Mutex
	recent map[string][]TemplateInfo // newest last
}

type groupKey struct{ service, datacenter, node string }

// New returns a Scanner, resuming from the checkpoint if there is one.
func New(cfg Config) (*Scanner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Scanner{
		cfg:      cfg,
		hc:       cfg.HTTPClient,
		errLevel: make(map[string]bool),
		miners:   make(map[string]*Drain),
		groups:   make(map[groupKey]time.Time),
		pending:  make(map[string]map[uint64]TemplateInfo),
		recent:   make(map[string][]TemplateInfo),
		m:        newScanMetrics(),
	}
	if cfg.ErrorPattern != "-" {
		s.errRe = regexp.MustCompile(cfg.ErrorPattern)
		s.defaultPattern = cfg.ErrorPattern == DefaultErrorPattern
	}
	for _, l := range cfg.ErrorLevels {
		s.errLevel[strings.ToLower(l)] = true
	}
	if s.hc == nil {
		s.hc = &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			ResponseHeaderTimeout: cfg.QueryTimeout,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConnsPerHost:   1,
		}}
	}
	if cfg.Registerer != nil {
		if err := s.m.register(cfg.Registerer); err != nil {
			return nil, err
		}
	}
	if err := s.loadCheckpoint(); err != nil {
		return nil, err
	}
	return s, nil
}

// Cursor is the end of the last committed pass: every line before it has
// been counted. Zero before the first pass of a fresh scanner.
func (s *Scanner) Cursor() time.Time {
	s.scanMu.Lock()
	defer s.scanMu.Unlock()
	return s.cursor
}

// NewTemplates returns the most recent new templates of a service, newest
// first.
func (s *Scanner) NewTemplates(service string) []TemplateInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.recent[service]
	out := make([]TemplateInfo, len(r))
	for i, ti := range r {
		out[len(r)-1-i] = ti
	}
	return out
}

// Services lists the services with mined templates.
func (s *Scanner) Services() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.recent))
	for svc := range s.recent {
		out = append(out, svc)
	}
	slices.Sort(out)
	return out
}

// Run scans every Interval and writes the series through w, until ctx
// ends. A pass is committed (the cursor advances) only once w accepted its
// series, so an outage of the log store or of w loses nothing within
// MaxLookback: the next pass covers the gap.
func (s *Scanner) Run(ctx context.Context, w Writer) error {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		for ctx.Err() == nil {
			behind, err := s.runOnce(ctx, w)
			if err != nil && ctx.Err() == nil {
				s.cfg.Logger.Warn("log scan failed; the next pass retries the same lines", "err", err)
			}
			if err != nil || !behind {
				break
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// runOnce runs, writes and commits one pass; behind reports that the pass
// was capped by MaxPassWindow and another can follow at once.
func (s *Scanner) runOnce(ctx context.Context, w Writer) (behind bool, err error) {
	s.scanMu.Lock()
	defer s.scanMu.Unlock()
	p, err := s.pass(ctx)
	if err != nil {
		return false, err
	}
	if len(p.series) > 0 {
		if err := w.Write(ctx, p.series); err != nil {
			s.m.passes.WithLabelValues("write_error").Inc()
			return false, fmt.Errorf("write log metrics: %w", err)
		}
	}
	s.commit(p)
	return p.behind, nil
}

// Scan runs one pass and commits it: the caller owns writing the returned
// series (nil when no full interval has passed since the last pass), and a
// crash before it wrote them loses them; Run writes before it commits. On
// error nothing is committed and the next pass covers the same lines. A
// scanner more than MaxPassWindow behind reads only the oldest
// MaxPassWindow per pass; call Scan again until Cursor is recent.
func (s *Scanner) Scan(ctx context.Context) ([]tsdb.TimeSeries, error) {
	s.scanMu.Lock()
	defer s.scanMu.Unlock()
	p, err := s.pass(ctx)
	if err != nil {
		return nil, err
	}
	s.commit(p)
	return p.series, nil
}

// passResult is a computed but not yet committed pass.
type passResult struct {
	now        time.Time
	start, end time.Time
	series     []tsdb.TimeSeries
	seen       map[groupKey]time.Time
	newTmpl    []TemplateInfo
	skipped    time.Duration // before start, beyond the max lookback
	behind     bool          // end was capped by MaxPassWindow: more to read now
}

type bucketCounts struct{ lines, errors, newTemplates float64 }

type newRef struct {
	key    groupKey
	bucket int
	idx    int // in passResult.newTmpl
}

func alignDown(t time.Time, d time.Duration) time.Time {
	ns := t.UnixNano()
	r := ns % int64(d)
	if r < 0 {
		r += int64(d)
	}
	return time.Unix(0, ns-r).UTC()
}

// pass reads [cursor, end) and computes its series. It leaves the cursor
// alone; the miners learn the lines, and templates they create are kept
// pending so a repeated pass still counts them as new.
func (s *Scanner) pass(ctx context.Context) (*passResult, error) {
	now := s.cfg.Now()
	end := alignDown(now.Add(-s.cfg.Delay), s.cfg.Interval)
	start := s.cursor
	if start.IsZero() {
		start = end.Add(-s.cfg.Interval)
	}
	s.m.lag.Set(now.Sub(start).Seconds())
	p := &passResult{now: now, start: start, end: end, seen: make(map[groupKey]time.Time)}
	if !end.After(start) {
		return p, nil
	}
	if end.Sub(start) > s.cfg.MaxLookback {
		from := alignDown(end.Add(-s.cfg.MaxLookback), s.cfg.Interval)
		if from.Before(end.Add(-s.cfg.MaxLookback)) {
			from = from.Add(s.cfg.Interval)
		}
		p.skipped = from.Sub(start)
		start = from
		p.start = from
	}
	if end.Sub(start) > s.cfg.MaxPassWindow {
		capped := alignDown(start.Add(s.cfg.MaxPassWindow), s.cfg.Interval)
		if !capped.After(start) {
			capped = alignDown(start, s.cfg.Interval).Add(s.cfg.Interval)
		}
		end, p.end, p.behind = capped, capped, true
	}
	gridStart := alignDown(start, s.cfg.Interval)
	nBuckets := int(end.Sub(gridStart) / s.cfg.Interval)
	counts := make(map[groupKey][]bucketCounts)
	// firstOf locates each template counted as new in this pass.
	firstOf := make(map[string]map[uint64]*newRef)

	qctx, cancel := context.WithTimeout(ctx, s.cfg.QueryTimeout)
	defer cancel()
	lines := 0
	err := s.query(qctx, start, end, func(row map[string]string) {
		ts, err := time.Parse(time.RFC3339Nano, row["_time"])
		if err != nil || ts.Before(start) || !ts.Before(end) {
			s.m.malformed.Inc()
			return
		}
		lines++
		svc := row[s.cfg.ServiceField]
		if svc == "" {
			svc = row[s.cfg.FallbackField]
		}
		if svc == "" {
			svc = "unknown"
		}
		key := groupKey{svc, row["datacenter"], row["node"]}
		b := int(ts.Sub(gridStart) / s.cfg.Interval)
		bc := counts[key]
		if bc == nil {
			bc = make([]bucketCounts, nBuckets)
			counts[key] = bc
		}
		bc[b].lines++
		msg := row["_msg"]
		if s.isError(row[s.cfg.LevelField], msg) {
			bc[b].errors++
		}
		bucketEnd := gridStart.Add(time.Duration(b+1) * s.cfg.Interval)
		if bucketEnd.After(p.seen[key]) {
			p.seen[key] = bucketEnd
		}

		if len(msg) > s.cfg.MaxLineBytes {
			msg = truncateUTF8(msg, s.cfg.MaxLineBytes)
		}
		miner := s.miner(svc)
		id, tmpl, isNew := miner.Add(msg)
		// Rows arrive in storage order, not time order: a template counts
		// as new in the bucket of its earliest line in the pass.
		if ref, ok := firstOf[svc][id]; ok {
			if info := &p.newTmpl[ref.idx]; ts.Before(info.FirstSeen) {
				counts[ref.key][ref.bucket].newTemplates--
				bc[b].newTemplates++
				ref.key, ref.bucket = key, b
				info.FirstSeen, info.Example = ts, truncateUTF8(msg, 1024)
				info.Datacenter, info.Node = key.datacenter, key.node
			}
			return
		}
		pend := s.pending[svc]
		info, pending := pend[id]
		if !isNew && !pending {
			return
		}
		if isNew {
			info = TemplateInfo{Service: svc, ID: id, Template: tmpl, FirstTemplate: tmpl}
			if pend == nil {
				pend = make(map[uint64]TemplateInfo)
				s.pending[svc] = pend
			}
			pend[id] = info
		}
		info.FirstSeen, info.Example = ts, truncateUTF8(msg, 1024)
		info.Datacenter, info.Node = key.datacenter, key.node
		if firstOf[svc] == nil {
			firstOf[svc] = make(map[uint64]*newRef)
		}
		firstOf[svc][id] = &newRef{key: key, bucket: b, idx: len(p.newTmpl)}
		bc[b].newTemplates++
		p.newTmpl = append(p.newTmpl, info)
	})
	if err != nil {
		s.m.passes.WithLabelValues("query_error").Inc()
		return nil, fmt.Errorf("scan logs [%s, %s) at %s: %w", start.Format(time.RFC3339), end.Format(time.RFC3339), s.cfg.URL, err)
	}
	s.m.lines.Add(float64(lines))

	// Groups known from earlier passes get zero samples, so a service
	// going quiet shows as a drop to zero rather than a gap.
	for key, last := range s.groups {
		if _, ok := counts[key]; !ok && end.Sub(last) <= s.cfg.ServiceTTL {
			counts[key] = make([]bucketCounts, nBuckets)
		}
	}
	p.series = buildSeries(counts, gridStart, s.cfg.Interval)
	return p, nil
}

func buildSeries(counts map[groupKey][]bucketCounts, gridStart time.Time, interval time.Duration) []tsdb.TimeSeries {
	keys := make([]groupKey, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b groupKey) int {
		return cmp.Or(cmp.Compare(a.service, b.service), cmp.Compare(a.datacenter, b.datacenter), cmp.Compare(a.node, b.node))
	})
	out := make([]tsdb.TimeSeries, 0, 3*len(keys))
	for _, k := range keys {
		bc := counts[k]
		for _, metric := range []string{MetricLines, MetricErrorLines, MetricNewTemplates} {
			labels := []tsdb.Label{{Name: "__name__", Value: metric}}
			if k.datacenter != "" {
				labels = append(labels, tsdb.Label{Name: "datacenter", Value: k.datacenter})
			}
			if k.node != "" {
				labels = append(labels, tsdb.Label{Name: "node", Value: k.node})
			}
			labels = append(labels, tsdb.Label{Name: "service", Value: k.service})
			samples := make([]tsdb.Sample, len(bc))
			for i, c := range bc {
				v := c.lines
				switch metric {
				case MetricErrorLines:
					v = c.errors
				case MetricNewTemplates:
					v = c.newTemplates
				}
				samples[i] = tsdb.Sample{Value: v, Timestamp: gridStart.Add(time.Duration(i+1) * interval).UnixMilli()}
			}
			out = append(out, tsdb.TimeSeries{Labels: labels, Samples: samples})
		}
	}
	return out
}

// commit advances the cursor past a computed pass and checkpoints.
func (s *Scanner) commit(p *passResult) {
	if !p.end.After(p.start) {
		return
	}
	if p.skipped > 0 {
		s.cfg.Logger.Warn("log scan was further behind than the max lookback; older lines were skipped",
			"from", p.start.Add(-p.skipped), "to", p.start, "skipped", p.skipped)
		s.m.skipped.Add(p.skipped.Seconds())
	}
	s.cursor = p.end
	for k, t := range p.seen {
		s.groups[k] = t
	}
	for k, t := range s.groups {
		if p.end.Sub(t) > s.cfg.ServiceTTL {
			delete(s.groups, k)
		}
	}
	// A committed pass starts where the failed ones did, so it has counted
	// every template they left pending.
	clear(s.pending)
	// Rows arrive in storage order, not time order.
	slices.SortStableFunc(p.newTmpl, func(a, b TemplateInfo) int { return a.FirstSeen.Compare(b.FirstSeen) })
	s.mu.Lock()
	for _, ti := range p.newTmpl {
		r := append(s.recent[ti.Service], ti)
		if len(r) > s.cfg.RecentTemplates {
			r = slices.Delete(r, 0, len(r)-s.cfg.RecentTemplates)
		}
		s.recent[ti.Service] = r
	}
	for svc, r := range s.recent {
		if miner := s.miners[svc]; miner != nil {
			for i := range r {
				if tmpl, ok := miner.Template(r[i].ID); ok {
					r[i].Template = tmpl
				}
			}
		}
	}
	s.mu.Unlock()
	templates := 0
	for _, d := range s.miners {
		templates += d.Len()
	}
	s.m.templates.Set(float64(templates))
	s.m.lag.Set(p.now.Sub(s.cursor).Seconds())
	s.m.passes.WithLabelValues("ok").Inc()
	if err := s.saveCheckpoint(); err != nil {
		// The pass stands; the next checkpoint includes it. Only a crash
		// before then would count its lines again.
		s.m.checkpointErrors.Inc()
		s.cfg.Logger.Error("cannot write the log scan checkpoint; a restart would count recent lines again", "err", err)
	}
}

func (s *Scanner) miner(service string) *Drain {
	d := s.miners[service]
	if d == nil {
		d = newDrain(s.cfg.Drain)
		s.miners[service] = d
	}
	return d
}

func (s *Scanner) isError(level, msg string) bool {
	if level != "" && s.errLevel[strings.ToLower(level)] {
		return true
	}
	if s.defaultPattern {
		return hasErrorWord(msg)
	}
	return s.errRe != nil && s.errRe.MatchString(msg)
}

// hasErrorWord is DefaultErrorPattern without the regexp engine (a third
// of a pass's CPU time with it): \b…\b around an alternation of ASCII
// words means some maximal run of [0-9A-Za-z_] equals one of them, case
// folded (none contains k or s, the letters with non-ASCII folds).
// FuzzErrorWord checks the equivalence.
func hasErrorWord(msg string) bool {
	for i := 0; i < len(msg); {
		if !isWordByte(msg[i]) {
			i++
			continue
		}
		j := i
		for j < len(msg) && isWordByte(msg[j]) {
			j++
		}
		if n := j - i; n >= 4 && n <= 9 {
			switch w := msg[i:j]; {
			case strings.EqualFold(w, "error"), strings.EqualFold(w, "exception"), strings.EqualFold(w, "fatal"),
				strings.EqualFold(w, "panic"), strings.EqualFold(w, "fail"), strings.EqualFold(w, "failed"),
				strings.EqualFold(w, "failure"):
				return true
			}
		}
		i = j
	}
	return false
}

func isWordByte(c byte) bool {
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'
}

func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// query streams the lines with _time in [start, end) from
// /select/logsql/query (JSON lines, one object of string fields per line;
// VictoriaLogs treats end as exclusive) and calls fn for each.
func (s *Scanner) query(ctx context.Context, start, end time.Time, fn func(map[string]string)) error {
	fields := []string{"_time", "_msg", s.cfg.ServiceField, s.cfg.FallbackField, s.cfg.LevelField, "datacenter", "node"}
	slices.Sort(fields)
	fields = slices.Compact(fields)
	form := url.Values{
		"query": {s.cfg.Filter + " | fields " + strings.Join(fields, ", ")},
		"start": {start.UTC().Format(time.RFC3339Nano)},
		"end":   {end.UTC().Format(time.RFC3339Nano)},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL+"/select/logsql/query", strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.hc.Do(req)
	if err != nil {
		return err
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
	}()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("log store answered %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	br := bufio.NewReaderSize(resp.Body, 64<<10)
	row := s.rowCache
	if row == nil {
		row = make(map[string]string)
		s.rowCache = row
	}
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A row longer than the buffer: gather it whole.
			long := append([]byte(nil), line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if len(bytes.TrimSpace(line)) > 0 {
			if err == io.EOF && line[len(line)-1] != '\n' {
				return errors.New("response ended in the middle of a row")
			}
			clear(row)
			if parseFlatRow(line, row) {
				fn(row)
			} else if jerr := json.Unmarshal(line, &row); jerr != nil {
				// An error after the response started arrives as plain text.
				return fmt.Errorf("log store response: %s", truncateUTF8(string(bytes.TrimSpace(line)), 512))
			} else {
				fn(row)
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read log store response: %w", err)
		}
	}
}

// parseFlatRow decodes the rows VictoriaLogs writes, {"name":"value",...}
// with string values, into row, without encoding/json's reflection (a third
// of a pass's CPU time with it). It reports false on anything else,
// including escapes, and the caller falls back to encoding/json.
func parseFlatRow(line []byte, row map[string]string) bool {
	i := skipJSONSpace(line, 0)
	if i >= len(line) || line[i] != '{' {
		return false
	}
	i = skipJSONSpace(line, i+1)
	if i < len(line) && line[i] == '}' {
		return skipJSONSpace(line, i+1) == len(line)
	}
	for {
		k, next, ok := plainJSONString(line, i)
		if !ok {
			return false
		}
		i = skipJSONSpace(line, next)
		if i >= len(line) || line[i] != ':' {
			return false
		}
		v, next, ok := plainJSONString(line, skipJSONSpace(line, i+1))
		if !ok {
			return false
		}
		row[string(k)] = string(v)
		i = skipJSONSpace(line, next)
		if i >= len(line) {
			return false
		}
		switch line[i] {
		case ',':
			i = skipJSONSpace(line, i+1)
		case '}':
			return skipJSONSpace(line, i+1) == len(line)
		default:
			return false
		}
	}
}

func skipJSONSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// plainJSONString reads a string without escapes or control characters
// at i, returning its contents and the index after it.
func plainJSONString(b []byte, i int) ([]byte, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			if !utf8.Valid(b[i+1 : j]) {
				return nil, 0, false
			}
			return b[i+1 : j], j + 1, true
		case c == '\\' || c < 0x20:
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// checkpoint is the scanner's persisted state.
type checkpoint struct {
	Version int                       `json:"version"`
	Cursor  int64                     `json:"cursor_unix_nano"`
	Miners  map[string]*Drain         `json:"miners"`
	Recent  map[string][]TemplateInfo `json:"recent"`
	Groups  []groupState              `json:"groups"`
}

type groupState struct {
	Service    string `json:"service"`
	Datacenter string `json:"datacenter,omitempty"`
	Node       string `json:"node,omitempty"`
	LastSeen   int64  `json:"last_seen_unix_nano"`
}

const checkpointVersion = 1

func (s *Scanner) saveCheckpoint() error {
	if s.cfg.CheckpointPath == "" {
		return nil
	}
	cp := checkpoint{Version: checkpointVersion, Cursor: s.cursor.UnixNano(), Miners: s.miners}
	s.mu.Lock()
	cp.Recent = s.recent
	b, err := func() ([]byte, error) {
		defer s.mu.Unlock()
		for k, t := range s.groups {
			cp.Groups = append(cp.Groups, groupState{k.service, k.datacenter, k.node, t.UnixNano()})
		}
		return json.Marshal(cp)
	}()
	if err != nil {
		return fmt.Errorf("encode checkpoint: %w", err)
	}
	return writeFileAtomic(s.cfg.CheckpointPath, b)
}

// writeFileAtomic replaces path with b (renameio: temporary file in the
// same directory, fsync, rename), so a crash leaves the old checkpoint or
// the new one, never a torn one.
func writeFileAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return renameio.WriteFile(path, b, 0o600)
}

func (s *Scanner) loadCheckpoint() error {
	if s.cfg.CheckpointPath == "" {
		return nil
	}
	b, err := os.ReadFile(s.cfg.CheckpointPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read log scan checkpoint: %w", err)
	}
	var cp checkpoint
	if err := json.Unmarshal(b, &cp); err != nil || cp.Version != checkpointVersion {
		if err == nil {
			err = fmt.Errorf("version %d, this build reads %d", cp.Version, checkpointVersion)
		}
		return fmt.Errorf("log scan checkpoint %s is unreadable (%v); delete it to start afresh (lines since the last scan are then not counted)",
			s.cfg.CheckpointPath, err)
	}
	if cp.Cursor != 0 {
		s.cursor = time.Unix(0, cp.Cursor).UTC()
	}
	for svc, d := range cp.Miners {
		if d == nil {
			continue
		}
		if got, want := d.Config(), s.cfg.Drain; got != want {
			// Templates mined under other settings would route differently.
			s.cfg.Logger.Warn("drain settings changed; relearning the service's templates", "service", svc, "was", got, "now", want)
			continue
		}
		s.miners[svc] = d
	}
	for svc, r := range cp.Recent {
		if len(r) > s.cfg.RecentTemplates {
			r = r[len(r)-s.cfg.RecentTemplates:]
		}
		s.recent[svc] = r
	}
	for _, g := range cp.Groups {
		s.groups[groupKey{g.Service, g.Datacenter, g.Node}] = time.Unix(0, g.LastSeen).UTC()
	}
	s.m.lag.Set(s.cfg.Now().Sub(s.cursor).Seconds())
	return nil
}

type scanMetrics struct {
	lag              prometheus.Gauge
	templates        prometheus.Gauge
	passes           *prometheus.CounterVec
	lines            prometheus.Counter
	malformed        prometheus.Counter
	skipped          prometheus.Counter
	checkpointErrors prometheus.Counter
}

func newScanMetrics() *scanMetrics {
	return &scanMetrics{
		lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "opspilot_log_scan_lag_seconds",
			Help: "How far the log scan's cursor is behind now: lines newer than this are not yet counted.",
		}),
		templates: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "opspilot_log_scan_templates",
			Help: "Log templates held by the miners, all services.",
		}),
		passes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opspilot_log_scan_passes_total",
			Help: "Log scan passes by result (ok, query_error, write_error).",
		}, []string{"result"}),
		lines: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "opspilot_log_scan_lines_total",
			Help: "Log lines read from the log store (a failed pass's lines are read again).",
		}),
		malformed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "opspilot_log_scan_malformed_rows_total",
			Help: "Rows without a _time in the queried window; not counted.",
		}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "opspilot_log_scan_skipped_seconds_total",
			Help: "Time ranges skipped because the scan was further behind than its max lookback.",
		}),
		checkpointErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "opspilot_log_scan_checkpoint_errors_total",
			Help: "Failed checkpoint writes.",
		}),
	}
}

func (m *scanMetrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.lag, m.templates, m.passes, m.lines, m.malformed, m.skipped, m.checkpointErrors} {
		if err := r.Register(c); err != nil {
			return fmt.Errorf("register log scan metrics: %w", err)
		}
	}
	return nil
}
