package gateway

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"opspilot/orchestrator/model"
)

// Scale-down the way the server does it: remove the instance from the
// endpoint set, wait the drain delay (100ms here), then stop it gracefully.
// Under constant load of GETs and non-idempotent POSTs (which the gateway
// may not retry once sent), while instances come and go, not one request
// may fail, none may need a retry, and none may reach a stopping instance.
func TestScaleDownWithDrainLosesNothing(t *testing.T) {
	const drainDelay = 100 * time.Millisecond
	handler := func(b **testBackend) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			d := time.Duration(rand.IntN(3)) * time.Millisecond
			if rand.IntN(20) == 0 {
				d = 150 * time.Millisecond // some are still running when Shutdown starts
			}
			time.Sleep(d)
			(*b).echo(w, r)
		}
	}
	var n int
	start := func() *testBackend {
		var b *testBackend
		b = newBackend(t, fmt.Sprintf("billing-%d", n), handler(&b))
		n++
		return b
	}
	live := []*testBackend{start(), start(), start()}
	var eps []model.Endpoint
	for _, b := range live {
		eps = append(eps, b.endpoint())
	}
	cp := newControlPlane(t, "tok", model.EndpointSet{Revision: 1, Services: map[string][]model.Endpoint{"billing": eps}})
	w, err := NewWatcher(WatcherConfig{Server: cp.url(), Token: "tok", MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}, nil, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	watchDone := make(chan struct{})
	go func() { defer close(watchDone); _ = w.Run(ctx) }()
	defer func() { cancel(); <-watchDone }()
	g, srv, _ := startGateway(t, w, Config{})
	waitFor(t, 2*time.Second, "the first endpoint set", func() bool { return revision(w) == 1 })

	// Load: closed-loop workers, half POST /pay with a body.
	var sent, failed atomic.Int64
	var failMu sync.Mutex
	var failures []string
	stop := make(chan struct{})
	var load sync.WaitGroup
	c := newClient()
	for i := range 8 {
		load.Go(func() {
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				method, body := http.MethodGet, ""
				if (i+j)%2 == 0 {
					method, body = http.MethodPost, `{"amount":12.5,"shop":"a"}`
				}
				res := send(c, method, srv.URL+"/billing/pay", "", body, nil)
				sent.Add(1)
				if res.err != nil || res.status != 200 {
					failed.Add(1)
					failMu.Lock()
					if len(failures) < 5 {
						failures = append(failures, fmt.Sprintf("%s: %d %v %s", method, res.status, res.err, res.body))
					}
					failMu.Unlock()
				}
			}
		})
	}

	var stopped []*testBackend
	for range 4 {
		time.Sleep(150 * time.Millisecond)
		added := start()
		cp.update(func(s map[string][]model.Endpoint) { s["billing"] = append(s["billing"], added.endpoint()) })
		live = append(live, added)
		time.Sleep(150 * time.Millisecond)

		victim := live[0]
		live = live[1:]
		cp.update(func(s map[string][]model.Endpoint) {
			s["billing"] = slices.DeleteFunc(s["billing"], func(e model.Endpoint) bool { return e.Instance == victim.name })
		})
		time.Sleep(drainDelay)
		victim.stopping.Store(true)
		victim.stop(t)
		stopped = append(stopped, victim)
	}
	time.Sleep(150 * time.Millisecond)
	close(stop)
	load.Wait()

	t.Logf("%d requests during 4 scale-ups and 4 drained scale-downs, %d failed", sent.Load(), failed.Load())
	if failed.Load() != 0 {
		t.Errorf("%d requests failed, want 0; first: %q", failed.Load(), failures)
	}
	if sent.Load() < 200 {
		t.Errorf("only %d requests sent; the load was too light to prove anything", sent.Load())
	}
	if r := testutil.ToFloat64(g.m.retries.WithLabelValues("billing")); r != 0 {
		t.Errorf("%v retries: some request met a stopped instance and was rescued, drain should make that unnecessary", r)
	}
	for _, b := range stopped {
		if b.hits.Load() == 0 {
			t.Errorf("%s served nothing before it was drained; the test proves nothing for it", b.name)
		}
		if late := b.late.Load(); late != 0 {
			t.Errorf("%s got %d requests after its drain delay", b.name, late)
		}
	}
	for _, b := range live {
		if b.hits.Load() == 0 {
			t.Errorf("%s (added during the run) got no requests", b.name)
		}
	}
}
