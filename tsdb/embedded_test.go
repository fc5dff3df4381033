package tsdb

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
)

// The embedded store is a process-wide singleton, so every test in this
// package shares the one TestMain starts.
var (
	shared    *Embedded
	sharedURL string // http://127.0.0.1:PORT serving /prometheus/
)

func TestMain(m *testing.M) {
	// Parse the test flags before StartEmbedded marks the flag set parsed.
	flag.Parse()
	dir, err := os.MkdirTemp("", "opspilot-tsdb-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cfg := DefaultConfig().Embedded
	cfg.DataDir = dir
	cfg.MemoryAllowedPercent = 5
	cfg.LogLevel = "error"
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	shared, err = StartEmbedded(cfg, log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "start embedded tsdb:", err)
		os.Exit(1)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.Handle("/prometheus/", shared.Handler())
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	sharedURL = "http://" + ln.Addr().String()

	code := m.Run()

	_ = srv.Close()
	shared.Stop()
	shared.Stop() // a second Stop must be harmless
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func testClientConfig() ClientConfig {
	c := DefaultClientConfig()
	c.RetryMinBackoff = time.Millisecond
	c.RetryMaxBackoff = 10 * time.Millisecond
	c.RetryMaxElapsed = 2 * time.Second
	c.Timeout = 10 * time.Second
	return c
}

func newTestClient(t *testing.T, ep Endpoints, opts ClientOptions) *Client {
	t.Helper()
	c, err := NewClient(ep, testClientConfig(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// series builds n series of metric name, each with one sample per second
// ending now, valued base+i (series i) so sums are predictable.
func testSeries(name, run string, n, samples int, base float64, end time.Time) []TimeSeries {
	out := make([]TimeSeries, n)
	for i := range n {
		ts := TimeSeries{Labels: []Label{
			{Name: "__name__", Value: name},
			{Name: "run", Value: run},
			{Name: "series", Value: fmt.Sprint(i)},
		}}
		for j := range samples {
			ts.Samples = append(ts.Samples, Sample{
				Timestamp: end.Add(-time.Duration(samples-1-j) * time.Second).UnixMilli(),
				Value:     base + float64(i),
			})
		}
		out[i] = ts
	}
	return out
}

// eventually polls the instant query until check accepts its value,
// flushing the shared store first so that tests need not wait out
// VictoriaMetrics' visibility delays (see Embedded.Flush).
func eventually(t *testing.T, c *Client, expr string, check func(model.Value) bool) model.Value {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var last model.Value
	var lastErr error
	for ctx.Err() == nil {
		shared.Flush()
		res, err := c.Query(ctx, expr, time.Time{})
		lastErr = err
		if err == nil {
			last = res.Value
			if check(res.Value) {
				return res.Value
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("query %q never matched; last value %v, last error %v", expr, last, lastErr)
	return nil
}

func scalarOf(v model.Value) (float64, bool) {
	vec, ok := v.(model.Vector)
	if !ok || len(vec) != 1 {
		return 0, false
	}
	return float64(vec[0].Value), true
}

func TestEmbeddedWriteQueryRoundTrip(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		ep   Endpoints
		opts ClientOptions
	}{
		{"http", LocalEndpoints(sharedURL), ClientOptions{}},
		{"in-process", InProcessEndpoints(), ClientOptions{Transport: shared.Transport()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newTestClient(t, tc.ep, tc.opts)
			ctx := context.Background()
			now := time.Now().Truncate(time.Second)
			// 5 series × 30 samples valued 10..14: sum of latest = 60.
			if err := c.Write(ctx, testSeries("roundtrip_metric", tc.name, 5, 30, 10, now)); err != nil {
				t.Fatal(err)
			}
			expr := fmt.Sprintf(`sum(roundtrip_metric{run=%q})`, tc.name)
			eventually(t, c, expr, func(v model.Value) bool {
				s, ok := scalarOf(v)
				return ok && s == 60
			})

			res, err := c.QueryRange(ctx, fmt.Sprintf(`roundtrip_metric{run=%q,series="3"}`, tc.name),
				Range{Start: now.Add(-29 * time.Second), End: now, Step: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			m, ok := res.Value.(model.Matrix)
			if !ok || len(m) != 1 {
				t.Fatalf("range query: want one series, got %v", res.Value)
			}
			if len(m[0].Values) < 25 {
				t.Errorf("range query: want ~30 points, got %d", len(m[0].Values))
			}
			for _, p := range m[0].Values {
				if p.Value != 13 {
					t.Fatalf("range query point %v: want 13", p)
				}
			}

			series, err := c.Series(ctx, []string{fmt.Sprintf(`roundtrip_metric{run=%q}`, tc.name)}, now.Add(-time.Hour), now.Add(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			if len(series) != 5 {
				t.Errorf("series: want 5, got %d: %v", len(series), series)
			}
			vals, err := c.LabelValues(ctx, "series", []string{fmt.Sprintf(`roundtrip_metric{run=%q}`, tc.name)}, now.Add(-time.Hour), now.Add(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(vals, ",") != "0,1,2,3,4" {
				t.Errorf("label values: got %v", vals)
			}
		})
	}
}

func TestWriteSplitsIntoRequests(t *testing.T) {
	t.Parallel()
	var requests atomic.Int64
	ep := countingProxy(t, &requests, nil)
	cfg := testClientConfig()
	cfg.MaxSamplesPerRequest = 100
	cfg.WriteConcurrency = 3
	reg := prometheus.NewRegistry()
	c, err := NewClient(ep, cfg, ClientOptions{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	// 7 series × 150 samples = 1050 samples → 11 requests of ≤100.
	if err := c.Write(context.Background(), testSeries("split_metric", "a", 7, 150, 1, time.Now())); err != nil {
		t.Fatal(err)
	}
	if got := requests.Load(); got != 11 {
		t.Errorf("want 11 write requests, got %d", got)
	}
	if got := testutil.ToFloat64(c.metrics.writtenSamples); got != 1050 {
		t.Errorf("written samples metric: want 1050, got %v", got)
	}
	eventually(t, c, `count_over_time(split_metric{run="a"}[5m])`, func(v model.Value) bool {
		vec, ok := v.(model.Vector)
		if !ok || len(vec) != 7 {
			return false
		}
		for _, s := range vec {
			if s.Value != 150 {
				return false
			}
		}
		return true
	})
}

// countingProxy serves the shared store on a new port, counting write
// requests and letting fail decide (by attempt number) to answer an error.
func countingProxy(t *testing.T, writes *atomic.Int64, fail func(n int64, w http.ResponseWriter) bool) Endpoints {
	t.Helper()
	h := shared.Handler()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/api/v1/write") {
			n := writes.Add(1)
			if fail != nil && fail(n, w) {
				return
			}
		}
		h.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return LocalEndpoints("http://" + ln.Addr().String())
}

func TestWriteRetriesTransientFailures(t *testing.T) {
	t.Parallel()
	var writes atomic.Int64
	ep := countingProxy(t, &writes, func(n int64, w http.ResponseWriter) bool {
		switch n {
		case 1:
			http.Error(w, "storage is overloaded", http.StatusServiceUnavailable)
			return true
		case 2:
			w.Header().Set("Retry-After", "0")
			http.Error(w, "slow down", http.StatusTooManyRequests)
			return true
		}
		return false
	})
	reg := prometheus.NewRegistry()
	c := newTestClient(t, ep, ClientOptions{Registerer: reg})
	if err := c.Write(context.Background(), testSeries("retry_metric", "a", 1, 1, 5, time.Now())); err != nil {
		t.Fatalf("write should succeed after retries: %v", err)
	}
	if got := writes.Load(); got != 3 {
		t.Errorf("want 3 attempts (503, 429, ok), got %d", got)
	}
	if got := testutil.ToFloat64(c.metrics.retries); got != 2 {
		t.Errorf("retries metric: want 2, got %v", got)
	}
	eventually(t, c, `retry_metric{run="a"}`, func(v model.Value) bool {
		s, ok := scalarOf(v)
		return ok && s == 5
	})
}

func TestWriteDoesNotRetryClientErrors(t *testing.T) {
	t.Parallel()
	var writes atomic.Int64
	ep := countingProxy(t, &writes, func(_ int64, w http.ResponseWriter) bool {
		http.Error(w, "label name too long", http.StatusBadRequest)
		return true
	})
	c := newTestClient(t, ep, ClientOptions{})
	err := c.Write(context.Background(), testSeries("bad_metric", "a", 1, 1, 5, time.Now()))
	if err == nil {
		t.Fatal("want an error for a 400")
	}
	for _, want := range []string{"400 Bad Request", "label name too long", ep.WriteURL} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q should contain %q", err, want)
		}
	}
	if got := writes.Load(); got != 1 {
		t.Errorf("a 400 must not be retried: %d attempts", got)
	}
}

func TestWriteGivesUpAfterRetryBudget(t *testing.T) {
	t.Parallel()
	var writes atomic.Int64
	ep := countingProxy(t, &writes, func(_ int64, w http.ResponseWriter) bool {
		http.Error(w, "down for maintenance", http.StatusBadGateway)
		return true
	})
	cfg := testClientConfig()
	cfg.RetryMaxElapsed = 200 * time.Millisecond
	c, err := NewClient(ep, cfg, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Write(context.Background(), testSeries("gaveup_metric", "a", 1, 1, 5, time.Now()))
	if err == nil {
		t.Fatal("want an error when the store keeps failing")
	}
	if !strings.Contains(err.Error(), "gave up after") || !strings.Contains(err.Error(), "down for maintenance") {
		t.Errorf("error should say it gave up and why: %v", err)
	}
	if writes.Load() < 3 {
		t.Errorf("want several attempts within the budget, got %d", writes.Load())
	}
}

func TestWriteToUnreachableStoreFailsClearly(t *testing.T) {
	t.Parallel()
	addr := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}()
	cfg := testClientConfig()
	cfg.RetryMaxElapsed = 100 * time.Millisecond
	c, err := NewClient(LocalEndpoints("http://"+addr), cfg, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Write(context.Background(), testSeries("x", "a", 1, 1, 1, time.Now()))
	if err == nil || !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), addr) {
		t.Fatalf("want a connection refused error naming %s, got %v", addr, err)
	}
}

func TestQueryErrorsAreNotRetried(t *testing.T) {
	t.Parallel()
	var queries atomic.Int64
	h := shared.Handler()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		queries.Add(1)
		h.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	c := newTestClient(t, LocalEndpoints("http://"+ln.Addr().String()), ClientOptions{})
	_, err = c.Query(context.Background(), "sum(", time.Time{})
	if err == nil {
		t.Fatal("want a parse error")
	}
	if !strings.Contains(err.Error(), `"sum("`) {
		t.Errorf("error should name the query: %v", err)
	}
	if queries.Load() != 1 {
		t.Errorf("a bad query must not be retried: %d attempts", queries.Load())
	}
}

func TestStartEmbeddedOncePerProcess(t *testing.T) {
	cfg := DefaultConfig().Embedded
	cfg.DataDir = t.TempDir()
	_, err := StartEmbedded(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), "already running in this process") {
		t.Fatalf("second StartEmbedded: want an 'already running' error, got %v", err)
	}
}

func TestDataDirLockNamesHolder(t *testing.T) {
	dir := t.TempDir()
	first, err := lockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = lockDataDir(dir)
	want := fmt.Sprintf("in use by another opspilot (pid %d)", os.Getpid())
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "--data-dir") {
		t.Fatalf("second lock: want error containing %q and a hint, got %v", want, err)
	}
	_ = first.Close()
	again, err := lockDataDir(dir)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	_ = again.Close()
}

func TestEmbeddedDetectsForeignVictoriaMetricsLock(t *testing.T) {
	// The shared store's own flock.lock is held by VictoriaMetrics itself.
	err := checkVMLock(shared.DataDir())
	if err == nil || !strings.Contains(err.Error(), "locked by another VictoriaMetrics") {
		t.Fatalf("want the VictoriaMetrics lock conflict reported, got %v", err)
	}
	if err := checkVMLock(t.TempDir()); err != nil {
		t.Fatalf("free directory: %v", err)
	}
}

func TestMetricsShipperWritesGatheredMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	counter := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shipper_test_events_total", Help: "x"}, []string{"kind"})
	hist := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "shipper_test_latency_seconds", Help: "x", Buckets: []float64{0.1, 1}})
	reg.MustRegister(counter, hist)
	counter.WithLabelValues("a").Add(3)
	hist.Observe(0.5)
	hist.Observe(2)

	c := newTestClient(t, InProcessEndpoints(), ClientOptions{Transport: shared.Transport()})
	s := NewMetricsShipper(reg, c, time.Second, map[string]string{"job": "shipper-test", "instance": "t1"}, reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.Extra = shared.WriteMetrics
	n, err := s.ShipOnce(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if n < 6 {
		t.Fatalf("want the counter, 3 buckets, sum, count, up and vm_* metrics, got %d series", n)
	}
	eventually(t, c, `shipper_test_events_total{job="shipper-test",instance="t1",kind="a"}`, func(v model.Value) bool {
		s, ok := scalarOf(v)
		return ok && s == 3
	})
	eventually(t, c, `shipper_test_latency_seconds_bucket{job="shipper-test",le="1"}`, func(v model.Value) bool {
		s, ok := scalarOf(v)
		return ok && s == 1
	})
	eventually(t, c, `up{job="shipper-test"}`, func(v model.Value) bool {
		s, ok := scalarOf(v)
		return ok && s == 1
	})
	// VictoriaMetrics' own metrics ride along.
	eventually(t, c, `count(vm_rows_inserted_total{job="shipper-test"}) > 0`, func(v model.Value) bool {
		_, ok := scalarOf(v)
		return ok
	})
}

// TestWithQueryParamsShowsNewestSample: the embedded store hides samples
// newer than its latency offset (1 s) from instant queries; the
// autoscaler's latency_offset=1ms (WithQueryParams) sees a sample as soon as
// it is flushed.
func TestWithQueryParamsShowsNewestSample(t *testing.T) {
	t.Parallel()
	c := newTestClient(t, InProcessEndpoints(), ClientOptions{Transport: shared.Transport()})
	ctx := context.Background()
	now := time.Now()
	series := []TimeSeries{{Labels: []Label{{Name: "__name__", Value: "newest_sample_metric"}}, Samples: []Sample{{Timestamp: now.UnixMilli(), Value: 7}}}}
	if err := c.Write(ctx, series); err != nil {
		t.Fatal(err)
	}
	shared.Flush()
	res, err := c.Query(ctx, "newest_sample_metric", now)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := res.Value.(model.Vector); !ok || len(v) != 0 {
		t.Errorf("with the 1 s latency offset the sample written now should be hidden, got %v", res.Value)
	}
	res, err = c.Query(WithQueryParams(ctx, map[string]string{"latency_offset": "1ms"}), "newest_sample_metric", now)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := res.Value.(model.Vector); !ok || len(v) != 1 || v[0].Value != 7 {
		t.Errorf("latency_offset=1ms: want the sample (7), got %v", res.Value)
	}
}
