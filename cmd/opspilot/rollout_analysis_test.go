package main

import (
	"context"
	"io"
	"log/slog"
	"math"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"opspilot/orchestrator/control"
	"opspilot/tsdb"
)

var (
	embeddedOnce   sync.Once
	embeddedClient *tsdb.Client
	embeddedStore  *tsdb.Embedded
	embeddedErr    error
)

// testTSDB starts the embedded VictoriaMetrics once for the package's
// tests (it is process-global) and returns a client to it.
func testTSDB(t *testing.T) (*tsdb.Client, *tsdb.Embedded) {
	t.Helper()
	embeddedOnce.Do(func() {
		cfg := tsdb.DefaultConfig().Embedded
		cfg.MemoryAllowedPercent, cfg.LogLevel = 5, "error"
		// The store outlives the test that starts it, so its directory is
		// not the test's TempDir (removed when that test ends).
		if cfg.DataDir, embeddedErr = os.MkdirTemp("", "opspilot-cmd-tsdb-"); embeddedErr != nil {
			return
		}
		if embeddedStore, embeddedErr = tsdb.StartEmbedded(cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); embeddedErr != nil {
			return
		}
		embeddedClient, embeddedErr = tsdb.NewClient(tsdb.InProcessEndpoints(), tsdb.DefaultClientConfig(), tsdb.ClientOptions{Transport: embeddedStore.Transport()})
	})
	if embeddedErr != nil {
		t.Fatal(embeddedErr)
	}
	return embeddedClient, embeddedStore
}

// TestRolloutAnalyzerComparesVersions writes two minutes of the gateway's
// per-version metrics into the real embedded TSDB — version v2 answering
// 5% errors at about 80 ms, v1 1% at about 8 ms — and checks the
// comparison a gray-release step is judged on.
func TestRolloutAnalyzerComparesVersions(t *testing.T) {
	client, store := testTSDB(t)
	end := time.Now().Truncate(time.Second)
	buckets := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, math.Inf(1)}
	var series []tsdb.TimeSeries
	add := func(name string, v func(k int) float64, labels ...string) {
		series = append(series, twoMinutes(end, v, append([]string{"__name__", name, "service", "grayapp"}, labels...)...))
	}
	for _, ver := range []struct {
		version       string
		rps, errRatio float64
		latency       float64
	}{{"v1", 30, 0.01, 0.008}, {"v2", 10, 0.05, 0.08}} {
		add("opspilot_gateway_requests_total", func(k int) float64 { return float64(k) * ver.rps * (1 - ver.errRatio) }, "version", ver.version, "code", "200", "datacenter", "B")
		add("opspilot_gateway_requests_total", func(k int) float64 { return float64(k) * ver.rps * ver.errRatio }, "version", ver.version, "code", "503", "datacenter", "B")
		for _, le := range buckets {
			add("opspilot_gateway_request_duration_seconds_bucket", func(k int) float64 {
				if le < ver.latency {
					return 0
				}
				return float64(k) * ver.rps
			}, "version", ver.version, "datacenter", "B", "le", strconv.FormatFloat(le, 'g', -1, 64))
		}
	}
	if err := client.Write(context.Background(), series); err != nil {
		t.Fatal(err)
	}
	store.Flush()

	l := &lateTSDB{}
	l.set(client)
	a := rolloutAnalyzer{q: tsdbQuerier{l}, now: func() time.Time { return end }}
	var cmp control.Comparison
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		if cmp, err = a.Compare(context.Background(), "grayapp", "v2", "v1", time.Minute); err != nil {
			t.Fatal(err)
		}
		if cmp.NewRequests > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond) // searchable after a flush, on a loaded machine a little later
	}
	t.Logf("comparison: %+v", cmp)
	near := func(what string, got, want, tol float64) {
		if math.Abs(got-want) > tol*want {
			t.Errorf("%s = %g, want %g ±%.0f%%", what, got, want, 100*tol)
		}
	}
	near("new requests in 1m", cmp.NewRequests, 600, 0.1)
	near("old requests in 1m", cmp.OldRequests, 1800, 0.1)
	near("new error ratio", cmp.NewErrorRatio, 0.05, 0.05)
	near("old error ratio", cmp.OldErrorRatio, 0.01, 0.05)
	// p95 interpolates inside the bucket holding the latency.
	if !(cmp.NewP95 > 0.05 && cmp.NewP95 <= 0.1) || !(cmp.OldP95 > 0.005 && cmp.OldP95 <= 0.01) {
		t.Errorf("p95 new %g (want in (0.05, 0.1]), old %g (want in (0.005, 0.01])", cmp.NewP95, cmp.OldP95)
	}
	// A version without traffic: no requests, and an unknown latency.
	c, err := a.Compare(context.Background(), "grayapp", "v9", "v1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if c.NewRequests != 0 || !math.IsNaN(c.NewP95) {
		t.Errorf("a version without traffic: %+v", c)
	}
}

// twoMinutes is a series with the label pairs labels and one sample a
// second for the two minutes up to end, sample k (0 to 120) valued v(k).
func twoMinutes(end time.Time, v func(k int) float64, labels ...string) tsdb.TimeSeries {
	var ts tsdb.TimeSeries
	for i := 0; i+1 < len(labels); i += 2 {
		ts.Labels = append(ts.Labels, tsdb.Label{Name: labels[i], Value: labels[i+1]})
	}
	for k := 0; k <= 120; k++ {
		ts.Samples = append(ts.Samples, tsdb.Sample{Timestamp: end.Add(time.Duration(k-120) * time.Second).UnixMilli(), Value: v(k)})
	}
	return ts
}
