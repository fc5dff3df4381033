package scrape

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"opspilot/config"
	"opspilot/tsdb"
)

// kpiApp is a real HTTP application exposing business KPIs with
// client_golang.
func kpiApp(t *testing.T) *httptest.Server {
	t.Helper()
	reg := prometheus.NewRegistry()
	tx := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "billing_transactions_total", Help: "Transactions."}, []string{"shop"})
	tx.WithLabelValues("a").Add(3)
	queue := prometheus.NewGauge(prometheus.GaugeOpts{Name: "billing_queue_depth", Help: "Queued invoices."})
	queue.Set(7)
	debug := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "billing_debug_info", Help: "Debug.", ConstLabels: prometheus.Labels{"build": "x1"}}, []string{"shop"})
	debug.WithLabelValues("a").Set(1)
	reg.MustRegister(tx, queue, debug)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	t.Cleanup(srv.Close)
	return srv
}

// runScraper starts s and stops it (bounded) at the end of the test.
func runScraper(t *testing.T, s *Scraper) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return within 10s of cancel")
		}
	})
}

func TestScrapeEndToEnd(t *testing.T) {
	t.Parallel()
	app := kpiApp(t)
	var rec recorder
	reg := prometheus.NewRegistry()
	s, err := New(Config{Targets: []Target{{
		Service: "billing", Instance: "billing-1", Tenant: "acme",
		URL:      app.URL + "/metrics",
		Interval: time.Second, Timeout: 500 * time.Millisecond,
		Labels: map[string]string{"env": "test"},
	}}}, rec.sink, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	runScraper(t, s)

	target := map[string]string{"service": "billing", "instance": "billing-1", "tenant": "acme", "env": "test", "job": "billing"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range target {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	waitFor(t, "the KPIs and up=1", 10*time.Second, func() bool {
		b := rec.snapshot()
		return hasValue(find(b, with("__name__", "billing_transactions_total", "shop", "a")), 3) &&
			hasValue(find(b, with("__name__", "billing_queue_depth")), 7) &&
			hasValue(find(b, with("__name__", "up")), 1) &&
			len(find(b, with("__name__", "scrape_duration_seconds"))) > 0
	})
	for _, ts := range rec.snapshot()[0] {
		if !matches(ts, target) {
			t.Errorf("series %s lacks the target labels %v", labelString(ts), target)
		}
		for _, s := range ts.Samples {
			if d := time.Since(time.UnixMilli(s.Timestamp)); d < 0 || d > time.Minute {
				t.Errorf("series %s has timestamp %d, %s from now", labelString(ts), s.Timestamp, d)
			}
		}
	}

	app.Close()
	waitFor(t, "up=0 after the app stopped", 10*time.Second, func() bool {
		return hasValue(find(rec.snapshot(), with("__name__", "up")), 0)
	})
	if got := testutil.ToFloat64(s.metrics.samples.WithLabelValues("accepted")); got == 0 {
		t.Error("opspilot_agent_scrape_samples_total{result=accepted} is 0")
	}
	if n, err := testutil.GatherAndCount(reg, "prometheus_target_interval_length_seconds", "opspilot_agent_scrape_targets"); err != nil || n == 0 {
		t.Errorf("scrape metrics not registered: n=%d err=%v", n, err)
	}
}

func TestSetTargets(t *testing.T) {
	t.Parallel()
	app1, app2 := kpiApp(t), kpiApp(t)
	var rec recorder
	s, err := New(Config{Targets: []Target{{Service: "one", URL: app1.URL + "/metrics", Interval: time.Second}}}, rec.sink, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	runScraper(t, s)
	waitFor(t, "up of target one", 10*time.Second, func() bool {
		return hasValue(find(rec.snapshot(), map[string]string{"__name__": "up", "service": "one"}), 1)
	})
	if err := s.SetTargets([]Target{{Service: "two", URL: app2.URL + "/metrics", Interval: time.Second}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "up of target two", 10*time.Second, func() bool {
		return hasValue(find(rec.snapshot(), map[string]string{"__name__": "up", "service": "two"}), 1)
	})
	if err := s.SetTargets([]Target{{Service: "x", URL: "ftp://nope"}}); err == nil || !strings.Contains(err.Error(), "targets[0].url") {
		t.Errorf("SetTargets with a bad URL: err = %v, want a targets[0].url problem", err)
	}
}

// TestRelabel scrapes a real app with relabel configs decoded from YAML by
// opspilot/config, as the agent's config file would be.
func TestRelabel(t *testing.T) {
	t.Parallel()
	type check func(t *testing.T, series []tsdb.TimeSeries)
	has := func(want map[string]string) func([]tsdb.TimeSeries) bool {
		return func(ss []tsdb.TimeSeries) bool { return len(find([][]tsdb.TimeSeries{ss}, want)) > 0 }
	}
	present := func(want map[string]string) check {
		return func(t *testing.T, ss []tsdb.TimeSeries) {
			if !has(want)(ss) {
				t.Errorf("no series matching %v", want)
			}
		}
	}
	absent := func(want map[string]string) check {
		return func(t *testing.T, ss []tsdb.TimeSeries) {
			if has(want)(ss) {
				t.Errorf("found a series matching %v, want none", want)
			}
		}
	}
	noLabel := func(name string) check {
		return func(t *testing.T, ss []tsdb.TimeSeries) {
			for _, ts := range ss {
				if _, ok := labelMap(ts)[name]; ok && labelMap(ts)["__name__"] != "up" && !strings.HasPrefix(labelMap(ts)["__name__"], "scrape_") {
					t.Errorf("series %s still has label %q", labelString(ts), name)
				}
			}
		}
	}
	tests := []struct {
		name   string
		yaml   string
		checks []check
	}{
		{"drop by name", `
metric_relabel_configs:
  - source_labels: [__name__]
    regex: billing_debug_.*
    action: drop
`, []check{absent(map[string]string{"__name__": "billing_debug_info"}), present(map[string]string{"__name__": "billing_transactions_total"})}},
		{"keep matching", `
metric_relabel_configs:
  - source_labels: [__name__]
    regex: billing_transactions_total
    action: keep
`, []check{present(map[string]string{"__name__": "billing_transactions_total"}), absent(map[string]string{"__name__": "billing_queue_depth"}), absent(map[string]string{"__name__": "billing_debug_info"}), present(map[string]string{"__name__": "up"})}},
		{"replace and rename", `
metric_relabel_configs:
  - source_labels: [shop]
    target_label: store
  - source_labels: [__name__]
    regex: billing_queue_depth
    target_label: __name__
    replacement: billing_backlog
`, []check{present(map[string]string{"__name__": "billing_transactions_total", "store": "a", "shop": "a"}), present(map[string]string{"__name__": "billing_backlog"}), absent(map[string]string{"__name__": "billing_queue_depth"})}},
		{"labeldrop", `
metric_relabel_configs:
  - regex: build|shop
    action: labeldrop
`, []check{noLabel("build"), noLabel("shop"), present(map[string]string{"__name__": "billing_debug_info"})}},
		{"target relabel drops a target", `
relabel_configs:
  - source_labels: [skip]
    regex: "yes"
    action: drop
`, []check{absent(map[string]string{"instance": "skipped"}), present(map[string]string{"__name__": "up", "instance": "kept"})}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			app := kpiApp(t)
			var cfg Config
			if err := config.Parse("scrape.yaml", []byte(tc.yaml), &cfg); err != nil {
				t.Fatal(err)
			}
			cfg.Targets = []Target{
				{Service: "billing", Instance: "kept", URL: app.URL + "/metrics", Interval: time.Second},
				{Service: "billing", Instance: "skipped", URL: app.URL + "/metrics", Interval: time.Second, Labels: map[string]string{"skip": "yes"}},
			}
			var rec recorder
			s, err := New(cfg, rec.sink, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			runScraper(t, s)
			// Each scrape is one sink call carrying the samples and the
			// report series; two scrapes of "kept" make sure "skipped"
			// had time to show up if it was scraped.
			upKept := map[string]string{"__name__": "up", "instance": "kept"}
			waitFor(t, "two scrapes of the kept target", 10*time.Second, func() bool {
				return len(find(rec.snapshot(), upKept)) >= 2
			})
			var all []tsdb.TimeSeries
			for _, b := range rec.snapshot() {
				all = append(all, b...)
			}
			for _, c := range tc.checks {
				c(t, all)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Target{Service: "billing", URL: "http://127.0.0.1:8080/metrics", Interval: time.Second}
	with := func(f func(*Target)) Target { t := ok; f(&t); return t }
	tests := []struct {
		name    string
		targets []Target
		field   string
		msg     string
	}{
		{"interval below 1s", []Target{with(func(t *Target) { t.Interval = 500 * time.Millisecond })}, "targets[0].interval", "at least 1s"},
		{"timeout above interval", []Target{with(func(t *Target) { t.Timeout = 2 * time.Second })}, "targets[0].timeout", "must not exceed the interval"},
		{"bad URL scheme", []Target{with(func(t *Target) { t.URL = "ftp://host/metrics" })}, "targets[0].url", `"http://" or "https://"`},
		{"unparsable URL", []Target{with(func(t *Target) { t.URL = "http://[::1" })}, "targets[0].url", "not a valid URL"},
		{"URL without host", []Target{with(func(t *Target) { t.URL = "http:///metrics" })}, "targets[0].url", "no host"},
		{"missing URL", []Target{with(func(t *Target) { t.URL = "" })}, "targets[0].url", "is required"},
		{"missing service", []Target{with(func(t *Target) { t.Service = "" })}, "targets[0].service", "is required"},
		{"duplicate target", []Target{ok, ok}, "targets[1]", "duplicates targets[0]"},
		{"reserved label", []Target{with(func(t *Target) { t.Labels = map[string]string{"tenant": "x"} })}, "targets[0].labels.tenant", "set by the target's tenant field"},
		{"bad label name", []Target{with(func(t *Target) { t.Labels = map[string]string{"a-b": "x"} })}, `targets[0].labels["a-b"]`, "not a valid label name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Targets: tc.targets}
			ps := cfg.Validate()
			for _, p := range ps {
				if p.Field == tc.field && strings.Contains(p.Msg, tc.msg) {
					return
				}
			}
			t.Errorf("Validate() = %v, want a problem at %s containing %q", ps, tc.field, tc.msg)
		})
	}
	t.Run("valid", func(t *testing.T) {
		cfg := Config{Targets: []Target{ok, with(func(t *Target) { t.Instance = "other"; t.Timeout = time.Second })}}
		if ps := cfg.Validate(); len(ps) > 0 {
			t.Errorf("Validate() = %v, want none", ps)
		}
	})
	t.Run("from YAML with line numbers", func(t *testing.T) {
		var cfg Config
		err := config.Parse("agent.yaml", []byte(`targets:
  - service: billing
    url: http://127.0.0.1:8080/metrics
    interval: 100ms
metric_relabel_configs:
  - action: replace
`), &cfg)
		if err == nil {
			t.Fatal("Parse succeeded, want problems")
		}
		for _, want := range []string{"agent.yaml:4:15: targets[0].interval: must be at least 1s", "metric_relabel_configs[0]: relabel configuration for replace action requires 'target_label'"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks %q", err, want)
			}
		}
	})
	t.Run("New rejects", func(t *testing.T) {
		_, err := New(Config{Targets: []Target{ok, ok}}, func([]tsdb.TimeSeries) error { return nil }, nil, nil)
		if err == nil || !strings.Contains(err.Error(), "targets[1]: duplicates targets[0]") {
			t.Errorf("New: err = %v", err)
		}
	})
}
