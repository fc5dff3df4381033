//go:build linux

package runtime

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"opspilot/collector/scrape"
	"opspilot/orchestrator/model"
	"opspilot/tsdb"
)

// TestManagerScrapeTargets runs real helper instances: the one with a
// metrics endpoint yields a target at its host port, which a real Scraper
// scrapes into samples labelled with service, instance and tenant; once
// the instance is asked to stop (still draining, so still running) it has
// no target any more.
func TestManagerScrapeTargets(t *testing.T) {
	log, _ := testLogger(t)
	m, err := NewManager(ManagerConfig{
		Dir: t.TempDir(), Runtimes: map[string]Runtime{model.RuntimeProcess: newTestProcess(t, log)},
		Host: "10.1.2.3", Log: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	closeManager(t, m)

	withMetrics := helperSpec(t, "kpi-1", nil)
	// The helper serves on $PORT, the first port; admin is there so the
	// target must pick the port by name.
	withMetrics.Ports = []model.Port{{Name: "http", Port: 8080}, {Name: "admin", Port: 9000}}
	withMetrics.Metrics = &model.MetricsEndpoint{Port: "http", Path: "/metrics", Interval: time.Second}
	plain := helperSpec(t, "plain-1", nil)
	badPort := helperSpec(t, "bad-1", nil)
	badPort.Metrics = &model.MetricsEndpoint{Port: "nope"}
	m.Sync([]Assignment{{Spec: withMetrics}, {Spec: plain}, {Spec: badPort}})
	waitFor(t, 10*time.Second, "kpi-1 and plain-1 ready", func() bool {
		return stateIs(m, "kpi-1", model.StateReady)() && stateIs(m, "plain-1", model.StateReady)()
	})
	if st, _ := statusOf(m, "bad-1"); st.State != model.StateFailed || !strings.Contains(st.Message, `metrics port "nope" is not a declared port`) {
		t.Errorf("bad-1: %+v", st)
	}

	st, _ := statusOf(m, "kpi-1")
	ts := m.ScrapeTargets()
	want := scrape.Target{
		Service: "svc-kpi-1", Instance: "kpi-1", Tenant: "team",
		// The agent scrapes at ProbeHost, not at the reported Address.
		URL:      "http://127.0.0.1:" + strconv.Itoa(st.Ports["http"]) + "/metrics",
		Interval: time.Second,
	}
	if len(ts) != 1 || ts[0].Service != want.Service || ts[0].Instance != want.Instance || ts[0].Tenant != want.Tenant ||
		ts[0].URL != want.URL || ts[0].Interval != want.Interval || ts[0].Timeout != 0 || ts[0].Labels != nil {
		t.Fatalf("targets %+v, want [%+v]", ts, want)
	}
	resp, err := http.Get(ts[0].URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `helper_requests_total{path="/metrics"} 42`) {
		t.Fatalf("GET %s: %s", ts[0].URL, body)
	}

	// A real scraper given the targets writes labelled samples.
	var mu sync.Mutex
	var got []tsdb.TimeSeries
	sc, err := scrape.New(scrape.Config{}, func(s []tsdb.TimeSeries) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, s...)
		return nil
	}, prometheus.NewRegistry(), log)
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.SetTargets(ts); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sc.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	wantLabels := map[string]string{
		"__name__": "helper_requests_total", "path": "/metrics",
		"service": "svc-kpi-1", "instance": "kpi-1", "tenant": "team", "job": "svc-kpi-1",
	}
	waitFor(t, 10*time.Second, "a scraped sample of kpi-1", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, s := range got {
			if hasLabels(s, wantLabels) && len(s.Samples) > 0 && s.Samples[0].Value == 42 {
				return true
			}
		}
		return false
	})

	// Stopping with a drain delay: the process still serves, but the
	// instance is stopping and no longer a target.
	m.Sync([]Assignment{{Spec: withMetrics, Stop: true, StopAt: time.Now().Add(time.Minute)}, {Spec: plain}})
	waitFor(t, 5*time.Second, "kpi-1 stopping", stateIs(m, "kpi-1", model.StateStopping))
	if ts := m.ScrapeTargets(); len(ts) != 0 {
		t.Errorf("targets of a stopping instance: %+v", ts)
	}
	m.Sync([]Assignment{{Spec: withMetrics, Stop: true}, {Spec: plain}})
	waitFor(t, 10*time.Second, "kpi-1 stopped", stateIs(m, "kpi-1", model.StateStopped))
	if ts := m.ScrapeTargets(); len(ts) != 0 {
		t.Errorf("targets of a stopped instance: %+v", ts)
	}

}

func hasLabels(s tsdb.TimeSeries, want map[string]string) bool {
	n := 0
	for _, l := range s.Labels {
		if v, ok := want[l.Name]; ok && v == l.Value {
			n++
		}
	}
	return n == len(want)
}
