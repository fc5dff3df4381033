package loganomaly

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"opspilot/collector/logs"
	"opspilot/test/testbin"
	"opspilot/tsdb"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func startVL(t *testing.T, dataDir, addr string) *logs.VictoriaLogs {
	t.Helper()
	bin := testbin.Tool(t, "victoria-logs")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := logs.StartVictoriaLogs(ctx, bin, dataDir, addr, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Stop() })
	return v
}

// logLine is one line to ingest.
type logLine struct {
	at                   time.Time
	service, node, level string
	msg                  string
}

// ingest stores lines through VictoriaLogs' JSON-lines endpoint, with the
// collector's field layout, and makes them searchable at once.
func ingest(t *testing.T, base string, lines ...logLine) {
	t.Helper()
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	for _, l := range lines {
		doc := map[string]string{
			"_time": l.at.UTC().Format(time.RFC3339Nano), "_msg": l.msg,
			"service": l.service, "node": l.node, "datacenter": "dc1",
		}
		if l.level != "" {
			doc["level"] = l.level
		}
		if err := enc.Encode(doc); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.Post(base+"/insert/jsonline?_stream_fields=service,node&_msg_field=_msg&_time_field=_time",
		"application/stream+json", &body)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("ingest: %s: %s", resp.Status, b)
	}
	resp, err = http.Get(base + "/internal/force_flush")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
}

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

const (
	testInterval = 10 * time.Second
	testDelay    = 2 * time.Second
)

// testBase is a bucket boundary well inside VictoriaLogs' retention.
func testBase() time.Time {
	return time.Now().UTC().Truncate(time.Minute).Add(-40 * time.Minute)
}

// bucketLines is one interval's worth of lines for both services. extra
// shapes are added for the test in question.
func bucketLines(start time.Time, k int) []logLine {
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	return []logLine{
		{at(100), "web", "node-a", "info", fmt.Sprintf("GET /api/users/%d 200 in %dms", 100+k, 3+k)},
		{at(200), "web", "node-a", "info", fmt.Sprintf("GET /api/users/%d 200 in %dms", 200+k, 7+k)},
		{at(300), "web", "node-a", "info", fmt.Sprintf("GET /api/orders/%d 200 in %dms", 300+k, 9+k)},
		{at(400), "web", "node-a", "error", fmt.Sprintf("upstream connect to 10.0.0.%d:5432 refused", k+1)},
		{at(500), "web", "node-a", "info", fmt.Sprintf("request %d failed: deadline exceeded after %ds", k, k+1)},
		{at(600), "db", "node-b", "", fmt.Sprintf("checkpoint complete: wrote %d buffers (%d.%d%%)", 1000+k, k, k)},
		{at(700), "db", "node-b", "", fmt.Sprintf("checkpoint complete: wrote %d buffers (%d.%d%%)", 2000+k, k, k)},
		{at(9999), "db", "node-b", "", fmt.Sprintf("autovacuum of table orders_%d done in %dms", k, 40+k)},
	}
}

type sample struct {
	metric, service string
	at              time.Time
	v               float64
}

// flatten indexes series by metric, service and sample time, failing on a
// duplicate, and checks the labels.
func flatten(t *testing.T, series []tsdb.TimeSeries) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, ts := range series {
		var name, svc, dc, node string
		for _, l := range ts.Labels {
			switch l.Name {
			case "__name__":
				name = l.Value
			case "service":
				svc = l.Value
			case "datacenter":
				dc = l.Value
			case "node":
				node = l.Value
			default:
				t.Errorf("unexpected label %s=%s", l.Name, l.Value)
			}
		}
		if dc != "dc1" || node == "" {
			t.Errorf("%s{service=%s}: datacenter %q node %q", name, svc, dc, node)
		}
		for _, s := range ts.Samples {
			k := key(name, svc, time.UnixMilli(s.Timestamp))
			if _, dup := out[k]; dup {
				t.Errorf("duplicate sample %s", k)
			}
			out[k] = s.Value
		}
	}
	return out
}

func key(metric, service string, at time.Time) string {
	return fmt.Sprintf("%s{service=%s}@%s", strings.TrimPrefix(metric, "opspilot_log_"), service, at.UTC().Format("15:04:05"))
}

func expect(t *testing.T, got map[string]float64, want []sample) {
	t.Helper()
	for _, w := range want {
		k := key(w.metric, w.service, w.at)
		if v, ok := got[k]; !ok || v != w.v {
			t.Errorf("%s = %v (present %v), want %v", k, v, ok, w.v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d samples, want %d: %v", len(got), len(want), got)
	}
}

// bucketSamples is what one bucketLines bucket yields.
func bucketSamples(end time.Time, webNew, dbNew, dbErr float64) []sample {
	return []sample{
		{MetricLines, "web", end, 5}, {MetricErrorLines, "web", end, 2}, {MetricNewTemplates, "web", end, webNew},
		{MetricLines, "db", end, 3}, {MetricErrorLines, "db", end, dbErr}, {MetricNewTemplates, "db", end, dbNew},
	}
}

func newTestScanner(t *testing.T, v *logs.VictoriaLogs, clock *testClock, checkpoint string) *Scanner {
	t.Helper()
	s, err := New(Config{
		URL: v.URL(), Interval: testInterval, Delay: testDelay, Now: clock.Now,
		CheckpointPath: checkpoint, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func scan(t *testing.T, s *Scanner) map[string]float64 {
	t.Helper()
	series, err := s.Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return flatten(t, series)
}

func TestScanCountsPerServiceOncePerInterval(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	v := startVL(t, filepath.Join(dir, "vl"), testbin.FreeAddr(t))
	base := testBase()
	b1, b2, b3 := base.Add(testInterval), base.Add(2*testInterval), base.Add(3*testInterval)
	ingest(t, v.URL(), bucketLines(base, 0)...)
	ingest(t, v.URL(), bucketLines(b1, 1)...)
	// A brand-new shape after warm-up, and a line exactly on the next
	// bucket's start (it belongs there, not here).
	ingest(t, v.URL(),
		logLine{b1.Add(5 * time.Second), "db", "node-b", "", "panic: runtime error: index out of range [3] with length 3"},
		logLine{b2, "web", "node-a", "info", "GET /api/users/7 200 in 1ms"},
	)

	clock := &testClock{t: b1.Add(testDelay)}
	s := newTestScanner(t, v, clock, "")
	// The first pass of a fresh scanner covers one interval.
	expect(t, scan(t, s), bucketSamples(b1, 3, 2, 0))

	clock.Set(b2.Add(testDelay + time.Second))
	want := bucketSamples(b2, 0, 1, 1)
	want[3].v = 4 // db: three lines and the panic
	expect(t, scan(t, s), want)
	if got := scan(t, s); len(got) != 0 {
		t.Errorf("a second pass before the next interval produced %v", got)
	}

	// A quiet bucket: the boundary line for web, zeros for db.
	clock.Set(b3.Add(testDelay))
	expect(t, scan(t, s), []sample{
		{MetricLines, "web", b3, 1}, {MetricErrorLines, "web", b3, 0}, {MetricNewTemplates, "web", b3, 0},
		{MetricLines, "db", b3, 0}, {MetricErrorLines, "db", b3, 0}, {MetricNewTemplates, "db", b3, 0},
	})

	nt := s.NewTemplates("db")
	if len(nt) != 3 {
		t.Fatalf("db new templates: %+v", nt)
	}
	if nt[0].Template != "panic: runtime error: index out of range [<NUM>] with length <NUM>" ||
		!strings.HasPrefix(nt[0].Example, "panic: runtime error") || !nt[0].FirstSeen.Equal(b1.Add(5*time.Second)) ||
		nt[0].Node != "node-b" || nt[0].Datacenter != "dc1" {
		t.Errorf("newest db template: %+v", nt[0])
	}
	if got := nt[2].Template; got != "checkpoint complete: wrote <NUM> buffers (<NUM>%)" {
		t.Errorf("oldest db template %q", got)
	}
	if got := s.Services(); strings.Join(got, ",") != "db,web" {
		t.Errorf("services %v", got)
	}
}

func TestScanResumesFromCheckpoint(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	v := startVL(t, filepath.Join(dir, "vl"), testbin.FreeAddr(t))
	base := testBase()
	b1, b2, b3 := base.Add(testInterval), base.Add(2*testInterval), base.Add(3*testInterval)
	ingest(t, v.URL(), bucketLines(base, 0)...)
	ingest(t, v.URL(), bucketLines(b1, 1)...)
	ingest(t, v.URL(), bucketLines(b2, 2)...)
	ingest(t, v.URL(), logLine{b2.Add(time.Second), "web", "node-a", "warn", "cache eviction storm: 1200 keys in 3s"})
	checkpoint := filepath.Join(dir, "state", "loganomaly.json")

	clock := &testClock{t: b2.Add(testDelay)}
	s := newTestScanner(t, v, clock, checkpoint)
	clock.Set(b1.Add(testDelay))
	expect(t, scan(t, s), bucketSamples(b1, 3, 2, 0))
	clock.Set(b2.Add(testDelay))
	expect(t, scan(t, s), bucketSamples(b2, 0, 0, 0))

	// A restart: same cursor, same templates.
	s2 := newTestScanner(t, v, clock, checkpoint)
	if !s2.Cursor().Equal(b2) {
		t.Fatalf("restored cursor %s, want %s", s2.Cursor(), b2)
	}
	if got := scan(t, s2); len(got) != 0 {
		t.Errorf("a pass right after the restart counted again: %v", got)
	}
	if len(s2.NewTemplates("web")) != 3 {
		t.Errorf("web new templates after restart: %+v", s2.NewTemplates("web"))
	}
	clock.Set(b3.Add(testDelay))
	want := bucketSamples(b3, 1, 0, 0)
	want[0].v = 6 // web: five lines and the eviction storm
	expect(t, scan(t, s2), want)
	if nt := s2.NewTemplates("web"); nt[0].Template != "cache eviction storm: <NUM> keys in <DUR>" {
		t.Errorf("newest web template after restart: %+v", nt[0])
	}
	if matches, _ := filepath.Glob(filepath.Join(dir, "state", ".*tmp*")); len(matches) != 0 {
		t.Errorf("temporary checkpoint files left: %v", matches)
	}

	// A damaged checkpoint stops the start with advice.
	if err := os.WriteFile(checkpoint, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{URL: v.URL(), CheckpointPath: checkpoint}); err == nil || !strings.Contains(err.Error(), "delete it") {
		t.Errorf("damaged checkpoint: %v", err)
	}
}

func TestScanLosesNothingWhileLogStoreIsDown(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dataDir, addr := filepath.Join(dir, "vl"), testbin.FreeAddr(t)
	v := startVL(t, dataDir, addr)
	base := testBase()
	b1, b2, b3 := base.Add(testInterval), base.Add(2*testInterval), base.Add(3*testInterval)
	ingest(t, v.URL(), bucketLines(base, 0)...)
	ingest(t, v.URL(), bucketLines(b1, 1)...)
	ingest(t, v.URL(), logLine{b1.Add(time.Second), "db", "node-b", "fatal", "replication slot lost: standby 3 disconnected"})

	clock := &testClock{t: b1.Add(testDelay)}
	s := newTestScanner(t, v, clock, filepath.Join(dir, "cp.json"))
	expect(t, scan(t, s), bucketSamples(b1, 3, 2, 0))

	// The store goes down; two intervals pass.
	if err := v.Stop(); err != nil {
		t.Fatal(err)
	}
	clock.Set(b3.Add(testDelay))
	if _, err := s.Scan(context.Background()); err == nil {
		t.Fatal("a pass against a stopped log store succeeded")
	}
	if !s.Cursor().Equal(b1) {
		t.Errorf("cursor moved to %s during the outage, want %s", s.Cursor(), b1)
	}
	if lag := testutil.ToFloat64(s.m.lag); lag != (2*testInterval + testDelay).Seconds() {
		t.Errorf("lag %vs, want %vs", lag, (2*testInterval + testDelay).Seconds())
	}

	// Back on the same data; lines of the outage's second interval arrive
	// late but within the delay.
	v = startVL(t, dataDir, addr)
	ingest(t, v.URL(), bucketLines(b2, 2)...)
	want := append(bucketSamples(b2, 0, 1, 1), bucketSamples(b3, 0, 0, 0)...)
	want[3].v = 4 // db: three lines and the fatal one
	expect(t, scan(t, s), want)
	if !s.Cursor().Equal(b3) {
		t.Errorf("cursor %s, want %s", s.Cursor(), b3)
	}
	if lag := testutil.ToFloat64(s.m.lag); lag != testDelay.Seconds() {
		t.Errorf("lag %vs after catching up, want %vs", lag, testDelay.Seconds())
	}

	// Far behind: only MaxLookback is scanned, the rest is skipped.
	clock.Set(b3.Add(2*time.Hour + testDelay))
	// Each pass reads at most MaxPassWindow (10 min): six passes catch up.
	for pass := range 7 {
		series, err := s.Scan(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		want := int(10 * time.Minute / testInterval)
		if pass == 6 {
			want = 0
		}
		if n := len(series); n > 0 && len(series[0].Samples) != want || n == 0 && want != 0 {
			t.Fatalf("pass %d after a 2 h gap: %d series, want %d buckets each", pass, n, want)
		}
	}
	if want := b3.Add(2 * time.Hour); !s.Cursor().Equal(want) {
		t.Errorf("cursor %s after catching up, want %s", s.Cursor(), want)
	}
	if skipped := testutil.ToFloat64(s.m.skipped); skipped != time.Hour.Seconds() {
		t.Errorf("skipped %vs, want 3600", skipped)
	}
}

// TestScanCountsNewTemplateAtItsEarliestLine: in a catch-up pass rows come
// in storage order (stream by stream), not time order; a new template
// still counts in the bucket, and on the node, of its earliest line.
func TestScanCountsNewTemplateAtItsEarliestLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	v := startVL(t, filepath.Join(dir, "vl"), testbin.FreeAddr(t))
	base := testBase()
	b1, b2, b3 := base.Add(testInterval), base.Add(2*testInterval), base.Add(3*testInterval)
	ingest(t, v.URL(), bucketLines(base, 0)...)
	// The later lines, on three streams, are stored first.
	ingest(t, v.URL(),
		logLine{b2.Add(time.Second), "web", "node-a", "warn", "disk pressure on /var: 91% used"},
		logLine{b2.Add(time.Second), "web", "node-b", "warn", "disk pressure on /var: 92% used"},
		logLine{b2.Add(time.Second), "web", "node-d", "warn", "disk pressure on /var: 93% used"},
	)
	ingest(t, v.URL(), logLine{b1.Add(2 * time.Second), "web", "node-c", "warn", "disk pressure on /data: 97% used"})

	clock := &testClock{t: b1.Add(testDelay)}
	s := newTestScanner(t, v, clock, "")
	scan(t, s)
	clock.Set(b3.Add(testDelay))
	series, err := s.Scan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	newAt := map[string]float64{} // node@bucket end → new templates
	total := 0.0
	for _, ts := range series {
		if ts.Labels[0].Value != MetricNewTemplates {
			continue
		}
		var node, svc string
		for _, l := range ts.Labels {
			switch l.Name {
			case "node":
				node = l.Value
			case "service":
				svc = l.Value
			}
		}
		for _, smp := range ts.Samples {
			total += smp.Value
			if svc == "web" && smp.Value != 0 {
				newAt[node+"@"+time.UnixMilli(smp.Timestamp).UTC().Format("15:04:05")] += smp.Value
			}
		}
	}
	early := b2.Format("15:04:05") // the end of the bucket holding b1+2s
	if total != 1 || newAt["node-c@"+early] != 1 {
		t.Errorf("new templates: %v (total %v), want 1 in the bucket ending %s", newAt, total, early)
	}
	nt := s.NewTemplates("web")
	if len(nt) != 4 || !nt[0].FirstSeen.Equal(b1.Add(2*time.Second)) || !strings.Contains(nt[0].Example, "/data") {
		t.Errorf("newest web template: %+v", nt)
	}
}

// flakyWriter records what it accepts and refuses the calls in fail.
type flakyWriter struct {
	calls    int
	fail     map[int]bool
	accepted []tsdb.TimeSeries
}

func (w *flakyWriter) Write(_ context.Context, series []tsdb.TimeSeries) error {
	w.calls++
	if w.fail[w.calls] {
		return errors.New("tsdb unavailable")
	}
	w.accepted = append(w.accepted, series...)
	return nil
}

// TestRunWritesEveryIntervalAndRetriesFailedWrites runs the loop on
// synctest's clock against the real log store: one pass per interval;
// refused writes are covered by later passes, which catch up back to back
// (one interval per pass here), each bucket written once.
func TestRunWritesEveryIntervalAndRetriesFailedWrites(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	v := startVL(t, filepath.Join(dir, "vl"), testbin.FreeAddr(t))
	base := testBase()
	for k := range 5 {
		ingest(t, v.URL(), bucketLines(base.Add(time.Duration(k)*testInterval), k)...)
	}
	w := &flakyWriter{fail: map[int]bool{2: true, 3: true}}
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		// The bubble's clock drives the loop; the scanner sees it shifted
		// to where the lines are.
		now := func() time.Time { return base.Add(testInterval + testDelay).Add(time.Since(start)) }
		s, err := New(Config{
			URL: v.URL(), Interval: testInterval, Delay: testDelay, Now: now, Logger: testLogger(t),
			MaxPassWindow: testInterval,
			HTTPClient:    &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- s.Run(ctx, w) }()
		time.Sleep(3*testInterval + testInterval/2) // passes at 0, 10, 20, 30 s
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
	// 0 s: bucket 1; 10 s and 20 s: refused; 30 s: buckets 2, 3, 4 back to back.
	if w.calls != 6 {
		t.Errorf("%d writes, want 6", w.calls)
	}
	var want []sample
	for k := 1; k <= 4; k++ {
		newWeb, newDB := 0.0, 0.0
		if k == 1 {
			newWeb, newDB = 3, 2
		}
		want = append(want, bucketSamples(base.Add(time.Duration(k)*testInterval), newWeb, newDB, 0)...)
	}
	expect(t, flatten(t, w.accepted), want)
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{URL: "http://127.0.0.1:9428"}).Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	err := Config{URL: "127.0.0.1:9428", Interval: time.Millisecond, MaxLookback: time.Microsecond, MaxPassWindow: time.Microsecond,
		ErrorPattern: "(", Drain: DrainConfig{Depth: 1}}.Validate()
	for _, want := range []string{"base URL", "interval 1ms", "max lookback", "max pass window", "error pattern", "depth 1"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %q", err, want)
		}
	}
}

func TestAlignDownOnSynctestClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// The bubble starts at midnight UTC 2000-01-01: a grid boundary.
		t0 := time.Now()
		if got := alignDown(t0, time.Minute); !got.Equal(t0) {
			t.Errorf("alignDown(%s) = %s", t0, got)
		}
		time.Sleep(95 * time.Second)
		if got, want := alignDown(time.Now(), 30*time.Second), t0.Add(90*time.Second); !got.Equal(want) {
			t.Errorf("after 95s: %s, want %s", got, want)
		}
		if got, want := alignDown(time.Unix(-1, 0), time.Minute), time.Unix(-60, 0); !got.Equal(want) {
			t.Errorf("before the epoch: %s, want %s", got, want)
		}
	})
}

// BenchmarkScan measures a whole pass against the real log store: query,
// streaming decode, error matching and mining, on the mixed corpus (a
// catch-up pass after an outage reads like this).
func BenchmarkScan(b *testing.B) {
	dir := b.TempDir()
	bin := testbin.Tool(b, "victoria-logs")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	v, err := logs.StartVictoriaLogs(ctx, bin, filepath.Join(dir, "vl"), testbin.FreeAddr(b), nil)
	cancel()
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = v.Stop() }()
	const n = 100_000
	base := time.Now().UTC().Truncate(time.Minute).Add(-10 * time.Minute)
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	for i, l := range corpus(n, 5) {
		_ = enc.Encode(map[string]string{
			"_time": base.Add(time.Duration(i) * (time.Minute / n)).Format(time.RFC3339Nano), "_msg": l,
			"service": []string{"web", "db", "cache", "billing"}[i%4], "node": "node-a", "datacenter": "dc1",
		})
	}
	resp, err := http.Post(v.URL()+"/insert/jsonline?_stream_fields=service,node", "application/stream+json", &body)
	if err != nil {
		b.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp, err = http.Get(v.URL() + "/internal/force_flush"); err != nil {
		b.Fatal(err)
	}
	_ = resp.Body.Close()
	now := func() time.Time { return base.Add(time.Minute + time.Second) }
	b.ResetTimer()
	for b.Loop() {
		s, err := New(Config{URL: v.URL(), Interval: time.Minute, Delay: time.Second, Now: now})
		if err != nil {
			b.Fatal(err)
		}
		series, err := s.Scan(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		total := 0.0
		for _, ts := range series {
			if ts.Labels[0].Value == MetricLines {
				total += ts.Samples[0].Value
			}
		}
		if total != n {
			b.Fatalf("scanned %v lines, want %d", total, n)
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "lines/s")
}

func FuzzParseFlatRow(f *testing.F) {
	for _, s := range []string{
		`{"_msg":"hello","_time":"2026-11-26T16:00:00Z","service":"web"}`,
		`{}`, ` { "a" : "b" } `, `{"a":"b",}`, `{"a":1}`, `{"a":"\"q\""}`, `{"a":"b"}x`, `{"a":"é"}`, "{\"a\":\"\xff\"}",
		`{"a":"b","a":"c"}`, `[]`, `{"a":{"b":"c"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		fast := map[string]string{}
		if !parseFlatRow(line, fast) {
			return
		}
		var slow map[string]string
		if err := json.Unmarshal(line, &slow); err != nil {
			t.Fatalf("parseFlatRow accepted %q, encoding/json says %v", line, err)
		}
		if fmt.Sprint(fast) != fmt.Sprint(slow) {
			t.Fatalf("%q: fast %v, encoding/json %v", line, fast, slow)
		}
	})
}
