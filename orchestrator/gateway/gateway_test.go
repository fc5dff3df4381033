package gateway

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"opspilot/orchestrator/model"
)

func TestRouting(t *testing.T) {
	billing := newBackend(t, "billing-1", nil)
	search := newBackend(t, "search-1", nil)
	two := setOf(map[string][]*testBackend{"billing": {billing}, "search": {search}})
	one := setOf(map[string][]*testBackend{"billing": {billing}})

	tests := []struct {
		name           string
		set            model.EndpointSet
		defaultService string
		host, path     string
		wantStatus     int
		wantInstance   string
		wantPath       string // path the backend saw
		wantRawPath    string
		wantQuery      string
		wantReason     string // for gateway errors
	}{
		{name: "host label", set: two, host: "billing.localhost:8080", path: "/pay",
			wantStatus: 200, wantInstance: "billing-1", wantPath: "/pay"},
		{name: "host label wins over path", set: two, host: "search.example.com", path: "/billing/pay",
			wantStatus: 200, wantInstance: "search-1", wantPath: "/billing/pay"},
		{name: "host label case-insensitive", set: two, host: "BILLING.localhost", path: "/pay",
			wantStatus: 200, wantInstance: "billing-1", wantPath: "/pay"},
		{name: "path segment stripped", set: two, host: "localhost:8080", path: "/billing/pay?x=1",
			wantStatus: 200, wantInstance: "billing-1", wantPath: "/pay", wantQuery: "x=1"},
		{name: "path segment alone", set: two, path: "/search",
			wantStatus: 200, wantInstance: "search-1", wantPath: "/"},
		{name: "escaped rest kept escaped", set: two, path: "/search/a%2Fb",
			wantStatus: 200, wantInstance: "search-1", wantPath: "/a/b", wantRawPath: "/a%2Fb"},
		{name: "ip host falls through to path", set: two, host: "127.0.0.1:8080", path: "/billing/refund",
			wantStatus: 200, wantInstance: "billing-1", wantPath: "/refund"},
		{name: "only service is the default", set: one, path: "/pay",
			wantStatus: 200, wantInstance: "billing-1", wantPath: "/pay"},
		{name: "configured default", set: two, defaultService: "search", path: "/q",
			wantStatus: 200, wantInstance: "search-1", wantPath: "/q"},
		{name: "unknown service", set: two, path: "/nope/x",
			wantStatus: 404, wantReason: "unknown_service"},
		{name: "root with several services", set: two, path: "/",
			wantStatus: 404, wantReason: "unknown_service"},
	}
	c := newClient()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, srv, _ := startGateway(t, NewStaticSource(tt.set), Config{DefaultService: tt.defaultService})
			res := send(c, http.MethodGet, srv.URL+tt.path, tt.host, "", nil)
			if res.err != nil {
				t.Fatal(res.err)
			}
			if res.status != tt.wantStatus {
				t.Fatalf("status %d, want %d (body %s)", res.status, tt.wantStatus, res.body)
			}
			if tt.wantReason != "" {
				var eb errorBody
				if err := json.Unmarshal([]byte(res.body), &eb); err != nil || eb.Reason != tt.wantReason {
					t.Fatalf("body %s: want JSON reason %q", res.body, tt.wantReason)
				}
				if !strings.Contains(eb.Error, "billing, search") {
					t.Errorf("error %q should list the services", eb.Error)
				}
				return
			}
			if res.instance != tt.wantInstance {
				t.Errorf("%s = %q, want %q", InstanceHeader, res.instance, tt.wantInstance)
			}
			var e echo
			if err := json.Unmarshal([]byte(res.body), &e); err != nil {
				t.Fatal(err)
			}
			if e.Path != tt.wantPath || e.RawPath != tt.wantRawPath || e.Query != tt.wantQuery {
				t.Errorf("backend saw path %q raw %q query %q, want %q %q %q", e.Path, e.RawPath, e.Query, tt.wantPath, tt.wantRawPath, tt.wantQuery)
			}
			if tt.host != "" && e.Host != tt.host {
				t.Errorf("backend saw Host %q, want the client's %q", e.Host, tt.host)
			}
		})
	}
}

func TestUnavailable(t *testing.T) {
	billing := newBackend(t, "billing-1", nil)
	c := newClient()

	t.Run("no set yet", func(t *testing.T) {
		_, srv, _ := startGateway(t, &publisher{}, Config{})
		res := send(c, http.MethodGet, srv.URL+"/billing/pay", "", "", nil)
		wantGatewayError(t, res, 503, "no_endpoint_set")
	})
	t.Run("service listed without instances", func(t *testing.T) {
		set := model.EndpointSet{Revision: 1, Services: map[string][]model.Endpoint{"billing": {}}}
		_, srv, _ := startGateway(t, NewStaticSource(set), Config{})
		wantGatewayError(t, send(c, http.MethodGet, srv.URL+"/billing/pay", "", "", nil), 503, "no_ready_instance")
	})
	t.Run("last instance went away", func(t *testing.T) {
		src := NewStaticSource(setOf(map[string][]*testBackend{"billing": {billing}, "search": {billing}}))
		g, srv, _ := startGateway(t, src, Config{})
		if res := send(c, http.MethodGet, srv.URL+"/billing/pay", "", "", nil); res.status != 200 {
			t.Fatalf("before: %d %s", res.status, res.body)
		}
		src.Set(setOf(map[string][]*testBackend{"search": {billing}}))
		wantGatewayError(t, send(c, http.MethodGet, srv.URL+"/billing/pay", "", "", nil), 503, "no_ready_instance")
		if got := testutil.ToFloat64(g.m.endpoints.WithLabelValues("billing", "")); got != 0 {
			t.Errorf("endpoints gauge for billing = %v, want 0", got)
		}
	})
}

func wantGatewayError(t *testing.T, res result, status int, reason string) {
	t.Helper()
	if res.err != nil {
		t.Fatal(res.err)
	}
	var eb errorBody
	if res.status != status || json.Unmarshal([]byte(res.body), &eb) != nil || eb.Reason != reason {
		t.Fatalf("got %d %s, want %d with JSON reason %q", res.status, res.body, status, reason)
	}
}

func TestBalancingSpreadsLoad(t *testing.T) {
	bs := []*testBackend{newBackend(t, "b1", nil), newBackend(t, "b2", nil), newBackend(t, "b3", nil)}
	_, srv, _ := startGateway(t, NewStaticSource(setOf(map[string][]*testBackend{"billing": bs})), Config{})
	c := newClient()
	const workers, each = 4, 150
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				if res := send(c, http.MethodGet, srv.URL+"/billing/healthz", "", "", nil); res.status != 200 {
					t.Errorf("status %d err %v", res.status, res.err)
				}
			}
		})
	}
	wg.Wait()
	for _, b := range bs {
		if share := float64(b.hits.Load()) / (workers * each); share < 0.2 {
			t.Errorf("%s got %.0f%% of requests, want >= 20%% of an even third", b.name, 100*share)
		}
	}
}

func TestBalancingAvoidsSlowEndpoint(t *testing.T) {
	slow := newBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) { time.Sleep(50 * time.Millisecond) })
	fast := []*testBackend{newBackend(t, "fast1", nil), newBackend(t, "fast2", nil)}
	src := NewStaticSource(setOf(map[string][]*testBackend{"billing": {slow, fast[0], fast[1]}}))
	_, srv, _ := startGateway(t, src, Config{})
	c := newClient()
	const workers, each = 12, 40
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				send(c, http.MethodGet, srv.URL+"/billing/x", "", "", nil)
			}
		})
	}
	wg.Wait()
	// Round robin would give the slow one a third; least-outstanding
	// choices send it only what the fast ones cannot take faster.
	if share := float64(slow.hits.Load()) / (workers * each); share > 0.2 {
		t.Errorf("slow endpoint got %.0f%% of requests, want < 20%%", 100*share)
	}
}

// An endpoint removed from the set gets no new requests, and the requests
// it is serving complete normally.
func TestRemovedEndpointDrains(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 10)
	old := newBackend(t, "old", func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		w.Write([]byte("done"))
	})
	next := newBackend(t, "new", nil)
	src := NewStaticSource(setOf(map[string][]*testBackend{"billing": {old}}))
	_, srv, _ := startGateway(t, src, Config{})
	c := newClient()

	const inflight = 5
	results := make(chan result, inflight)
	for range inflight {
		go func() { results <- send(c, http.MethodPost, srv.URL+"/billing/pay", "", `{"amount":1}`, nil) }()
	}
	for range inflight {
		select {
		case <-arrived:
		case <-time.After(5 * time.Second):
			t.Fatal("requests did not reach the old endpoint")
		}
	}

	src.Set(setOf(map[string][]*testBackend{"billing": {next}}))
	for range 20 {
		res := send(c, http.MethodGet, srv.URL+"/billing/pay", "", "", nil)
		if res.status != 200 || res.instance != "new" {
			t.Fatalf("after removal: %d from %q, want 200 from new", res.status, res.instance)
		}
	}
	if got := old.hits.Load(); got != inflight {
		t.Errorf("removed endpoint got %d requests, want only the %d sent before removal", got, inflight)
	}

	close(release)
	for range inflight {
		res := <-results
		if res.err != nil || res.status != 200 || res.instance != "old" || res.body != "done" {
			t.Errorf("in-flight request: %d %q %q %v, want 200 done from old", res.status, res.body, res.instance, res.err)
		}
	}
}

func TestRetries(t *testing.T) {
	unavailable := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "1")
		http.Error(w, `{"result":"error","reason":"draining"}`, http.StatusServiceUnavailable)
	}
	// reset reads the whole request, then drops the connection without
	// answering: the request reached the instance.
	reset := func(w http.ResponseWriter, r *http.Request) {
		_, _ = r.Body.Read(make([]byte, 1024))
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			if tc, ok := conn.(interface{ SetLinger(int) error }); ok {
				_ = tc.SetLinger(0) // RST
			}
			_ = conn.Close()
		}
	}
	const body = `{"amount":12.5,"shop":"a"}`
	tests := []struct {
		name    string
		bad     string // "refused", or a handler below
		handler http.HandlerFunc
		method  string
		hdr     http.Header
		maxBody int64
		// wantRetry: every request that met the bad endpoint was retried
		// and succeeded; otherwise it failed and was not retried.
		wantRetry  bool
		wantStatus int // client-visible status of requests that met the bad endpoint, when not retried
	}{
		{name: "refused GET", bad: "refused", method: "GET", wantRetry: true},
		{name: "refused POST never reached it", bad: "refused", method: "POST", wantRetry: true},
		{name: "refused POST too large to replay", bad: "refused", method: "POST", maxBody: 8, wantStatus: 502},
		{name: "503 GET", handler: unavailable, method: "GET", wantRetry: true},
		{name: "503 PUT", handler: unavailable, method: "PUT", wantRetry: true},
		{name: "503 POST reached it", handler: unavailable, method: "POST", wantStatus: 503},
		{name: "503 POST with Idempotency-Key", handler: unavailable, method: "POST",
			hdr: http.Header{"Idempotency-Key": {"k1"}}, wantRetry: true},
		{name: "reset GET", handler: reset, method: "GET", wantRetry: true},
		{name: "reset POST reached it", handler: reset, method: "POST", wantStatus: 502},
	}
	c := newClient()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			good := newBackend(t, "good", nil)
			bad := model.Endpoint{Instance: "bad", Datacenter: "dc1", Address: refusedAddr(t)}
			var badBackend *testBackend
			if tt.handler != nil {
				badBackend = newBackend(t, "bad", tt.handler)
				bad = badBackend.endpoint()
			}
			set := model.EndpointSet{Revision: 1, Services: map[string][]model.Endpoint{"billing": {bad, good.endpoint()}}}
			g, srv, _ := startGateway(t, NewStaticSource(set), Config{MaxRetryBody: tt.maxBody})

			const n = 40
			failed := 0
			for range n {
				res := send(c, tt.method, srv.URL+"/billing/pay", "", body, tt.hdr)
				if res.err != nil {
					t.Fatal(res.err)
				}
				switch {
				case res.status == 200:
					var e echo
					if err := json.Unmarshal([]byte(res.body), &e); err != nil || e.Body != body || e.Method != tt.method || res.instance != "good" {
						t.Fatalf("200 from %q with %s; want the good endpoint to see the full %s body", res.instance, res.body, tt.method)
					}
				case tt.wantRetry:
					t.Fatalf("status %d %s: want every request to succeed after a retry", res.status, res.body)
				case res.status != tt.wantStatus:
					t.Fatalf("status %d %s, want %d", res.status, res.body, tt.wantStatus)
				default:
					failed++
				}
			}
			retries := int(testutil.ToFloat64(g.m.retries.WithLabelValues("billing")))
			if got := int(good.hits.Load()); got != n-failed {
				t.Errorf("good endpoint got %d requests, want %d", got, n-failed)
			}
			if tt.wantRetry {
				if retries == 0 {
					t.Fatal("no request met the bad endpoint; the test proves nothing")
				}
				if badBackend != nil && int(badBackend.hits.Load()) != retries {
					t.Errorf("bad endpoint saw %d requests but %d retries were counted", badBackend.hits.Load(), retries)
				}
				return
			}
			if retries != 0 {
				t.Errorf("%d retries, want none", retries)
			}
			if failed == 0 {
				t.Fatal("no request met the bad endpoint; the test proves nothing")
			}
			if badBackend != nil && int(badBackend.hits.Load()) != failed {
				t.Errorf("bad endpoint saw %d requests, want exactly the %d failed ones (one attempt each)", badBackend.hits.Load(), failed)
			}
		})
	}
}

func TestRetryOnlyOnce(t *testing.T) {
	unavailable := func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }
	bs := []*testBackend{newBackend(t, "a", unavailable), newBackend(t, "b", unavailable), newBackend(t, "c", unavailable)}
	g, srv, _ := startGateway(t, NewStaticSource(setOf(map[string][]*testBackend{"billing": bs})), Config{})
	c := newClient()
	const n = 20
	for range n {
		if res := send(c, http.MethodGet, srv.URL+"/billing/x", "", "", nil); res.status != 503 {
			t.Fatalf("status %d, want the second endpoint's 503", res.status)
		}
	}
	total := bs[0].hits.Load() + bs[1].hits.Load() + bs[2].hits.Load()
	if total != 2*n {
		t.Errorf("endpoints saw %d attempts for %d requests, want exactly 2 each", total, n)
	}
	if got := testutil.ToFloat64(g.m.requests.WithLabelValues("billing", "dc1", "", "503")); got != n {
		t.Errorf("requests_total{code=503} = %v, want %d", got, n)
	}
}

func TestMetrics(t *testing.T) {
	b1, b2 := newBackend(t, "b1", nil), newBackend(t, "b2", nil)
	b2.dc = "dc2"
	src := NewStaticSource(setOf(map[string][]*testBackend{"billing": {b1, b2}}))
	g, srv, reg := startGateway(t, src, Config{})
	c := newClient()
	for range 10 {
		send(c, http.MethodGet, srv.URL+"/billing/x", "", "", nil)
	}
	send(c, http.MethodGet, srv.URL+"/nope/x", "billing-less", "", nil) // one service: goes to billing
	src.Set(setOf(map[string][]*testBackend{"billing": {b1, b2}, "search": {b1}}))
	send(c, http.MethodGet, srv.URL+"/nope/x", "", "", nil) // two services now: 404

	ok := testutil.ToFloat64(g.m.requests.WithLabelValues("billing", "dc1", "", "200")) +
		testutil.ToFloat64(g.m.requests.WithLabelValues("billing", "dc2", "", "200"))
	if ok != 11 {
		t.Errorf("requests_total{billing,200} = %v, want 11", ok)
	}
	if got := testutil.ToFloat64(g.m.errors.WithLabelValues("", "unknown_service")); got != 1 {
		t.Errorf("errors_total{unknown_service} = %v, want 1", got)
	}
	for _, c := range []struct {
		svc, dc string
		want    float64
	}{{"billing", "dc1", 1}, {"billing", "dc2", 1}, {"search", "dc1", 1}} {
		if got := testutil.ToFloat64(g.m.endpoints.WithLabelValues(c.svc, c.dc)); got != c.want {
			t.Errorf("endpoints{%s,%s} = %v, want %v", c.svc, c.dc, got, c.want)
		}
	}
	if got := testutil.ToFloat64(g.m.inflight.WithLabelValues("billing")); got != 0 {
		t.Errorf("inflight = %v after all requests finished", got)
	}
	// Calls between services are counted by caller when the caller header
	// names a known service; anything else is not a label value.
	for _, caller := range []string{"search", "search", "evil\ncaller", "billing", ""} {
		send(c, http.MethodGet, srv.URL+"/billing/x", "", "", http.Header{CallerHeader: {caller}})
	}
	if got := testutil.ToFloat64(g.m.calls.WithLabelValues("search", "billing")); got != 2 {
		t.Errorf("calls_total{search→billing} = %v, want 2", got)
	}
	if n := testutil.CollectAndCount(g.m.calls); n != 1 {
		t.Errorf("calls_total has %d series, want 1 (unknown callers and self-calls are not counted)", n)
	}
	names := map[string]bool{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"opspilot_gateway_requests_total", "opspilot_gateway_request_duration_seconds",
		"opspilot_gateway_errors_total", "opspilot_gateway_endpoints", "opspilot_gateway_inflight_requests", "opspilot_gateway_calls_total"} {
		if !names[n] {
			t.Errorf("metric %s not registered", n)
		}
	}
}
