package collector

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"opspilot/collector/diskqueue"
	"opspilot/test/testbin"
	"opspilot/tsdb"
)

// startVM runs the real VictoriaMetrics binary on addr with data in dir,
// deduplicating exact duplicates as opspilot's embedded store does.
func startVM(t *testing.T, addr, dir string) *testbin.Process {
	t.Helper()
	p := testbin.Start(t, testbin.Tool(t, "victoria-metrics"),
		"-storageDataPath="+dir, "-httpListenAddr="+addr, "-loggerLevel=WARN",
		"-dedup.minScrapeInterval=1ms", "-search.latencyOffset=0s", "-memory.allowedPercent=10")
	testbin.WaitHealthy(t, "http://"+addr+"/health", 30*time.Second)
	return p
}

func stopVM(t *testing.T, p *testbin.Process) {
	t.Helper()
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	if _, ok := p.Wait(30 * time.Second); !ok {
		t.Fatal("VictoriaMetrics did not stop")
	}
}

// outageSeries is 10 series; sample i of the whole run goes to series
// i%10 at timestamp base+i ms with value i, so every sample is unique and
// the order is checkable.
func outageSeries(from, to int, base int64) []tsdb.TimeSeries {
	out := make([]tsdb.TimeSeries, 10)
	for s := range out {
		out[s].Labels = []tsdb.Label{{Name: "__name__", Value: "outage_metric"}, {Name: "series", Value: fmt.Sprint(s)}}
	}
	for i := from; i < to; i++ {
		s := &out[i%10]
		s.Samples = append(s.Samples, tsdb.Sample{Timestamp: base + int64(i), Value: float64(i)})
	}
	return out
}

// TestShipperSurvivesTSDBOutage is the outage test: the TSDB is
// stopped for 60 s while the agent ships 100k samples; after it returns, a
// query finds every sample, once, in order.
func TestShipperSurvivesTSDBOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("the outage lasts 60 s; skipped with -short")
	}
	t.Parallel()
	addr, dataDir := testbin.FreeAddr(t), t.TempDir()
	vm := startVM(t, addr, dataDir)

	rc := tsdb.RemoteConfig{URL: "http://" + addr}
	ep, _ := rc.Endpoints()
	ccfg := tsdb.DefaultClientConfig()
	ccfg.RetryMaxElapsed = time.Second
	ccfg.Timeout = 5 * time.Second
	client, err := tsdb.NewClient(ep, ccfg, tsdb.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	scfg := DefaultShipperConfig()
	scfg.RetryMaxBackoff = time.Second
	sh, err := NewShipper(scfg, t.TempDir(), diskqueue.Options{}, client, reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sh.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	const total = 100_000
	base := time.Now().Add(-10 * time.Minute).UnixMilli()
	// First fifth while the TSDB is up.
	if err := sh.Append(outageSeries(0, total/5, base)); err != nil {
		t.Fatal(err)
	}
	waitDrained(t, sh, 30*time.Second)

	stopVM(t, vm)
	outageStart := time.Now()
	// The rest arrives in 8 rounds during the 60 s outage.
	for r := range 8 {
		from := total/5 + r*(total*4/5)/8
		to := total/5 + (r+1)*(total*4/5)/8
		if err := sh.Append(outageSeries(from, to, base)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(7 * time.Second)
	}
	if sh.Pending() == 0 {
		t.Fatal("with the TSDB down, samples should wait in the disk queue")
	}
	time.Sleep(time.Until(outageStart.Add(60 * time.Second)))
	startVM(t, addr, dataDir)
	waitDrained(t, sh, 60*time.Second)

	if got := testutil.ToFloat64(sh.sent); got != total {
		t.Errorf("samples sent: %v, want %d", got, total)
	}
	if got := testutil.ToFloat64(sh.dropped.WithLabelValues("queue_full")) + testutil.ToFloat64(sh.dropped.WithLabelValues("rejected")); got != 0 {
		t.Errorf("samples dropped: %v, want 0", got)
	}
	// Every sample, once, in order: export each series' raw samples.
	_, _ = http.Get("http://" + addr + "/internal/force_flush")
	for s := range 10 {
		resp, err := http.Get("http://" + addr + "/api/v1/export?match[]=" + url.QueryEscape(fmt.Sprintf(`outage_metric{series="%d"}`, s)) + "&start=0")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		var row struct {
			Values     []float64 `json:"values"`
			Timestamps []int64   `json:"timestamps"`
		}
		if err := json.Unmarshal([]byte(strings.TrimSpace(string(body))), &row); err != nil {
			t.Fatalf("series %d export: %v: %.200s", s, err, body)
		}
		if len(row.Values) != total/10 {
			t.Fatalf("series %d: %d samples, want %d (each once)", s, len(row.Values), total/10)
		}
		for k, v := range row.Values {
			want := float64(s + 10*k)
			if v != want || row.Timestamps[k] != base+int64(want) {
				t.Fatalf("series %d sample %d: value %v at %d, want %v at %d", s, k, v, row.Timestamps[k], want, base+int64(want))
			}
		}
	}
}

func waitDrained(t *testing.T, sh *Shipper, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for sh.Pending() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("disk queue not drained within %s: %d requests pending", d, sh.Pending())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
