package collector

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/value"

	"opspilot/collector/scrape"
	"opspilot/tsdb"
)

// received records what a remote-write receiver (the scrape package's push
// handler, which opspilot's server also mounts) was sent.
type received struct {
	mu     sync.Mutex
	series []tsdb.TimeSeries
}

func (r *received) sink(ts []tsdb.TimeSeries) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.series = append(r.series, ts...)
	return nil
}

// has reports whether a received series with every label in want has a
// non-stale sample.
func (r *received) has(want map[string]string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
outer:
	for _, s := range r.series {
		got := map[string]string{}
		for _, l := range s.Labels {
			got[l.Name] = l.Value
		}
		for k, v := range want {
			if got[k] != v {
				continue outer
			}
		}
		for _, smp := range s.Samples {
			if !value.IsStaleNaN(smp.Value) {
				return true
			}
		}
	}
	return false
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAgentServiceTargets runs a real agent shipping through a real TSDB
// client to a real remote-write receiver, and a service instance's
// /metrics on an httptest server: once SetServiceTargets names it, its
// samples arrive labelled with service, instance, tenant, datacenter and
// node; once it is removed, it is no longer scraped. The scraper runs on
// real time (Prometheus' scrape loops and HTTP), so this is not a synctest
// test.
func TestAgentServiceTargets(t *testing.T) {
	var got received
	recvScraper, err := scrape.New(scrape.Config{}, got.sink, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	recv := httptest.NewServer(recvScraper.PushHandler())
	defer recv.Close()
	ep, err := tsdb.RemoteConfig{URL: recv.URL}.Endpoints()
	if err != nil {
		t.Fatal(err)
	}
	client, err := tsdb.NewClient(ep, tsdb.DefaultClientConfig(), tsdb.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}

	var scrapes atomic.Int64
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		n := scrapes.Add(1)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, "# TYPE billing_transactions_total counter\nbilling_transactions_total{op=\"pay\",result=\"ok\"} %d\n", 10*n)
	}))
	defer app.Close()

	cfg := DefaultConfig()
	cfg.Datacenter, cfg.Node = "dc-1", "node-1"
	cfg.Host.Enabled, cfg.Containers.Enabled, cfg.Logs.Enabled = false, false, false
	// A configured target stays scraped whatever the instances do.
	cfg.Scrape.Targets = []scrape.Target{{Service: "static", URL: app.URL + "/metrics", Interval: time.Second}}
	agent, err := New(cfg, Deps{
		Writer: client, DataDir: t.TempDir(), Registry: prometheus.NewRegistry(),
		Log: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agent.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	}()

	inst := scrape.Target{Service: "billing", Instance: "billing-7f3kq", Tenant: "demo", URL: app.URL + "/metrics", Interval: time.Second}
	bad := scrape.Target{Service: "billing", Instance: "billing-bad", URL: app.URL + "/metrics", Interval: 100 * time.Millisecond}
	dup := inst
	dup.URL = app.URL + "/other"
	err = agent.SetServiceTargets([]scrape.Target{inst, bad, dup})
	if err == nil || !strings.Contains(err.Error(), `instance "billing-bad": interval: must be at least 1s`) ||
		!strings.Contains(err.Error(), "same tenant, service and instance") {
		t.Errorf("SetServiceTargets with a bad and a duplicate target: %v", err)
	}
	want := map[string]string{
		"__name__": "billing_transactions_total", "op": "pay", "result": "ok",
		"service": "billing", "instance": "billing-7f3kq", "tenant": "demo", "job": "billing",
		"datacenter": "dc-1", "node": "node-1",
	}
	waitUntil(t, 15*time.Second, "billing-7f3kq's samples at the receiver", func() bool { return got.has(want) })
	waitUntil(t, 15*time.Second, "the configured target's samples at the receiver", func() bool {
		return got.has(map[string]string{"__name__": "billing_transactions_total", "service": "static", "node": "node-1"})
	})
	if got.has(map[string]string{"instance": "billing-bad"}) {
		t.Error("the invalid target was scraped")
	}
	// Every heartbeat passes the same set again: nothing to do, no error.
	for range 3 {
		if err := agent.SetServiceTargets([]scrape.Target{inst}); err != nil {
			t.Fatal(err)
		}
	}

	// The instance goes away: only the configured target is scraped, once
	// a second.
	if err := agent.SetServiceTargets(nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond) // the scrape manager applies updates within a second
	before := scrapes.Load()
	time.Sleep(3 * time.Second)
	if n := scrapes.Load() - before; n < 2 || n > 4 {
		t.Errorf("%d scrapes in 3s after the instance's target was removed; want about 3 (the configured target alone)", n)
	}
}
