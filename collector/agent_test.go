package collector

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
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

// TestAgentShipsToEveryDestination: with several destinations (ShipToAll,
// for replicas with embedded TSDBs) every sample reaches each, through
// real TSDB clients and remote-write receivers. A destination that is down
// gets its samples when it is back, even after an agent restart in
// between, while the others are not held up; the shipping metrics carry
// the server label and each destination has its own queue directory.
func TestAgentShipsToEveryDestination(t *testing.T) {
	type dest struct {
		got  received
		down atomic.Bool
		url  string
	}
	var a, b dest
	for _, d := range []*dest{&a, &b} {
		sc, err := scrape.New(scrape.Config{}, d.got.sink, prometheus.NewRegistry(), nil)
		if err != nil {
			t.Fatal(err)
		}
		push := sc.PushHandler()
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if d.down.Load() {
				http.Error(w, "replica down", http.StatusServiceUnavailable)
				return
			}
			push.ServeHTTP(w, r)
		}))
		defer srv.Close()
		d.url = srv.URL
	}
	ccfg := tsdb.DefaultClientConfig()
	ccfg.RetryMaxElapsed = 200 * time.Millisecond // the shipper retries around it
	dir := t.TempDir()
	start := func(reg *prometheus.Registry) (*Agent, func()) {
		t.Helper()
		var dests []Destination
		for _, d := range []*dest{&a, &b} {
			ep, err := tsdb.RemoteConfig{URL: d.url}.Endpoints()
			if err != nil {
				t.Fatal(err)
			}
			c, err := tsdb.NewClient(ep, ccfg, tsdb.ClientOptions{})
			if err != nil {
				t.Fatal(err)
			}
			dests = append(dests, Destination{Name: d.url, Writer: c})
		}
		cfg := DefaultConfig()
		cfg.Datacenter, cfg.Node = "dc-1", "node-1"
		cfg.Host.Enabled, cfg.Containers.Enabled, cfg.Logs.Enabled = false, false, false
		cfg.Shipper.RetryMaxBackoff = 300 * time.Millisecond
		agent, err := New(cfg, Deps{Destinations: dests, DataDir: dir, Registry: reg, Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- agent.Run(ctx) }()
		return agent, func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("agent: %v", err)
			}
		}
	}
	probe := func(agent *Agent, round string) {
		t.Helper()
		err := agent.Append([]tsdb.TimeSeries{{
			Labels:  []tsdb.Label{{Name: "__name__", Value: "probe"}, {Name: "round", Value: round}},
			Samples: []tsdb.Sample{{Timestamp: time.Now().UnixMilli(), Value: 1}},
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
	first := map[string]string{"__name__": "probe", "round": "1", "node": "node-1"}
	second := map[string]string{"__name__": "probe", "round": "2", "node": "node-1"}

	b.down.Store(true)
	reg := prometheus.NewRegistry()
	agent, stop := start(reg)
	probe(agent, "1")
	waitUntil(t, 10*time.Second, "round 1 at the live destination", func() bool { return a.got.has(first) })
	if b.got.has(first) || agent.Pending() == 0 {
		t.Fatalf("the down destination: has round 1 %v, pending %d; want it queued", b.got.has(first), agent.Pending())
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	servers := map[string]bool{}
	for _, mf := range mfs {
		if mf.GetName() != "opspilot_agent_samples_sent_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "server" {
					servers[l.GetValue()] = true
				}
			}
		}
	}
	if !servers[a.url] || !servers[b.url] {
		t.Errorf("opspilot_agent_samples_sent_total servers %v, want %s and %s", servers, a.url, b.url)
	}
	stop() // round 1 stays queued for b across the restart

	agent, stop = start(prometheus.NewRegistry())
	defer stop()
	probe(agent, "2")
	waitUntil(t, 10*time.Second, "round 2 at the live destination", func() bool { return a.got.has(second) })
	b.down.Store(false)
	waitUntil(t, 10*time.Second, "both rounds at the destination that was down", func() bool {
		return b.got.has(first) && b.got.has(second)
	})
	waitUntil(t, 10*time.Second, "empty queues", func() bool { return agent.Pending() == 0 })
	for _, q := range []string{"queue", "queue-" + dirSafe(b.url)} {
		if _, err := os.Stat(filepath.Join(dir, "agent", q)); err != nil {
			t.Errorf("queue directory: %v", err)
		}
	}
}
