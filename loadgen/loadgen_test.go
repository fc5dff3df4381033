package loadgen

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"opspilot/orchestrator/model"
)

func TestRateMath(t *testing.T) {
	day := Wave{Amplitude: 0.5, Period: 24 * time.Hour, Compress: 144} // a day in 10 minutes
	surge := Surge{Start: 10 * time.Second, Length: 5 * time.Second, Multiplier: 3}
	tests := []struct {
		name string
		got  float64
		want float64
	}{
		{"wave trough at midnight", day.Factor(0), 0.5},
		{"wave mean at 6:00 (2.5 min compressed)", day.Factor(150 * time.Second), 1},
		{"wave peak at noon (5 min compressed)", day.Factor(5 * time.Minute), 1.5},
		{"wave back at the trough after a day", day.Factor(10 * time.Minute), 0.5},
		{"wave starting at 06:00", Wave{Amplitude: 0.5, Period: 24 * time.Hour, Compress: 1, Start: 6 * time.Hour}.Factor(0), 1},
		{"full amplitude reaches zero", Wave{Amplitude: 1, Period: time.Hour}.Factor(0), 0},
		{"flat wave", Wave{}.Factor(time.Hour), 1},
		{"before the surge", surge.Factor(10*time.Second - time.Nanosecond), 1},
		{"surge starts", surge.Factor(10 * time.Second), 3},
		{"surge last instant", surge.Factor(15*time.Second - time.Nanosecond), 3},
		{"surge over", surge.Factor(15 * time.Second), 1},
		{"no surge without length", Surge{Multiplier: 3}.Factor(0), 1},
		{"rate at peak during surge", Config{Rate: 100, Wave: Wave{Amplitude: 0.5, Period: 20 * time.Second, Compress: 1}, Surge: surge}.RateAt(10 * time.Second), 450},
		{"expected requests at a constant rate", Config{Rate: 100}.withDefaults().requestsBetween(0, 2*time.Second), 200},
		{"expected requests over a whole wave = mean × period", Config{Rate: 10, Wave: Wave{Amplitude: 0.8, Period: 24 * time.Hour, Compress: 8640}}.withDefaults().requestsBetween(0, 10*time.Second), 100},
		{"expected requests across a surge edge", Config{Rate: 100, Surge: surge}.withDefaults().requestsBetween(9*time.Second, 11*time.Second), 400},
	}
	for _, tt := range tests {
		if math.Abs(tt.got-tt.want) > 1e-9*max(1, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

func TestDefaultsAndValidation(t *testing.T) {
	c := Config{Target: "http://gw/billing"}.withDefaults()
	if c.Rate != DefaultRate || c.Concurrency != DefaultConcurrency || c.Timeout != DefaultTimeout || c.Mix != DefaultMix || c.Wave.Period != 24*time.Hour || c.Wave.Compress != 1 {
		t.Errorf("defaults not applied: %+v", c)
	}
	if s := (Config{Target: "http://gw", Surge: Surge{Length: time.Second}}).withDefaults().Surge; s.Multiplier != 3 {
		t.Errorf("surge without multiplier: %+v, want 3×", s)
	}
	if s := DefaultSurge(9 * time.Minute); s.Start != 3*time.Minute || s.Length != 3*time.Minute || s.Multiplier != 3 {
		t.Errorf("DefaultSurge = %+v", s)
	}
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "no target"},
		{Config{Target: "127.0.0.1:8080/billing"}, "absolute"},
		{Config{Target: "http://gw", Rate: -1}, "rate"},
		{Config{Target: "http://gw", Rate: math.NaN()}, "rate"},
		{Config{Target: "http://gw", Wave: Wave{Amplitude: 1.5}}, "amplitude"},
		{Config{Target: "http://gw", Mix: Mix{Pay: -1, Refund: 2}}, "mix"},
		{Config{Target: "http://gw", Concurrency: -1}, "concurrency"},
		{Config{Target: "http://gw", Duration: -time.Second}, "duration"},
	} {
		_, err := Run(context.Background(), tt.cfg, nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Run(%+v) = %v, want an error about %q", tt.cfg, err, tt.want)
		}
	}
}

// fakeTarget is an http.RoundTripper standing in for the gateway inside a
// synctest bubble, where the clock is fake and exact.
type fakeTarget struct {
	start time.Time
	serve func(n int, req *http.Request) (*http.Response, error)

	mu       sync.Mutex
	at       []time.Duration
	paths    []string
	methods  []string
	bodies   []string
	inflight int
	peak     int
}

func (f *fakeTarget) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
	}
	f.mu.Lock()
	n := len(f.at)
	f.at = append(f.at, time.Since(f.start))
	f.paths = append(f.paths, req.URL.Path)
	f.methods = append(f.methods, req.Method)
	f.bodies = append(f.bodies, string(body))
	f.inflight++
	f.peak = max(f.peak, f.inflight)
	f.mu.Unlock()
	defer func() { f.mu.Lock(); f.inflight--; f.mu.Unlock() }()
	if f.serve != nil {
		return f.serve(n, req)
	}
	return ok(req), nil
}

func ok(req *http.Request) *http.Response {
	return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader(`{"result":"ok"}`)), Request: req}
}

// The scheduler sends exactly the integral of the rate in every second:
// a compressed day (10s) with a 3× surge, on the fake clock.
func TestScheduleFollowsWaveAndSurge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := Config{
			Target: "http://gateway.test/billing", Rate: 100, Duration: 10 * time.Second,
			Wave:  Wave{Amplitude: 0.5, Period: 24 * time.Hour, Compress: 8640}, // a day in 10s
			Surge: Surge{Start: 4 * time.Second, Length: 2 * time.Second, Multiplier: 3},
		}
		ft := &fakeTarget{start: time.Now()}
		rep, err := Run(t.Context(), cfg, &http.Client{Transport: ft})
		if err != nil {
			t.Fatal(err)
		}
		full := cfg.withDefaults()
		if want := full.requestsBetween(0, cfg.Duration); math.Abs(float64(rep.Sent)-want) > 1 {
			t.Errorf("sent %d, want %.1f", rep.Sent, want)
		}
		for s := range 10 {
			lo, hi := time.Duration(s)*time.Second, time.Duration(s+1)*time.Second
			got := 0
			for _, at := range ft.at {
				if at >= lo && at < hi {
					got++
				}
			}
			if want := full.requestsBetween(lo, hi); math.Abs(float64(got)-want) > 1.5 {
				t.Errorf("second %d: %d requests, want %.1f (rate %.0f→%.0f/s)", s, got, want, full.RateAt(lo), full.RateAt(hi-1))
			}
		}
		if rep.OK != rep.Sent || rep.Failed != 0 || rep.Dropped != 0 || rep.Elapsed != cfg.Duration {
			t.Errorf("report %+v", rep)
		}
	})
}

func TestPercentilesOfKnownLatencies(t *testing.T) {
	ms := time.Millisecond
	var lat []time.Duration
	for i := 100; i >= 1; i-- {
		lat = append(lat, time.Duration(i)*ms)
	}
	slices.Sort(lat)
	for _, tt := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50 * ms}, {0.95, 95 * ms}, {0.99, 99 * ms}, {1, 100 * ms}, {0, 1 * ms}} {
		if got := percentile(lat, tt.q); got != tt.want {
			t.Errorf("percentile(1..100ms, %v) = %s, want %s", tt.q, got, tt.want)
		}
	}
	if percentile(nil, 0.5) != 0 {
		t.Error("percentile of nothing must be 0")
	}

	// End to end: request n takes (n mod 100)+1 ms on the fake clock.
	synctest.Test(t, func(t *testing.T) {
		ft := &fakeTarget{start: time.Now()}
		ft.serve = func(n int, req *http.Request) (*http.Response, error) {
			time.Sleep(time.Duration(n%100+1) * ms)
			return ok(req), nil
		}
		rep, err := Run(t.Context(), Config{Target: "http://gw.test/billing", Rate: 100, Duration: time.Second}, &http.Client{Transport: ft})
		if err != nil {
			t.Fatal(err)
		}
		if rep.OK != 100 || rep.P50 != 50*ms || rep.P95 != 95*ms || rep.P99 != 99*ms || rep.Max != 100*ms {
			t.Errorf("ok %d p50 %s p95 %s p99 %s max %s; want 100 requests with 50/95/99/100ms", rep.OK, rep.P50, rep.P95, rep.P99, rep.Max)
		}
	})
}

// billingTx is what examples/billing accepts.
type billingTx struct {
	Amount *float64 `json:"amount"`
	Shop   string   `json:"shop"`
}

func TestMixAndBodies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ft := &fakeTarget{start: time.Now()}
		rep, err := Run(t.Context(), Config{Target: "http://gw.test/billing/", Rate: 1000, Duration: 3 * time.Second}, &http.Client{Transport: ft})
		if err != nil {
			t.Fatal(err)
		}
		counts := map[string]int{}
		for i, p := range ft.paths {
			counts[ft.methods[i]+" "+p]++
			var tx billingTx
			dec := json.NewDecoder(strings.NewReader(ft.bodies[i]))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&tx); err != nil || tx.Amount == nil || *tx.Amount <= 0 || tx.Shop == "" || len(tx.Shop) > 128 {
				t.Fatalf("body %q is not a transaction billing accepts (%v)", ft.bodies[i], err)
			}
		}
		if share := float64(counts["POST /billing/pay"]) / float64(rep.Sent); math.Abs(share-0.9) > 0.03 {
			t.Errorf("mix %v: /pay share %.3f, want 0.9", counts, share)
		}
		if counts["POST /billing/pay"]+counts["POST /billing/refund"] != rep.Sent {
			t.Errorf("mix %v: only /pay and /refund expected by default", counts)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		ft := &fakeTarget{start: time.Now()}
		if _, err := Run(t.Context(), Config{Target: "http://gw.test/billing", Rate: 50, Duration: time.Second, Mix: Mix{Health: 1}}, &http.Client{Transport: ft}); err != nil {
			t.Fatal(err)
		}
		for i, p := range ft.paths {
			if ft.methods[i] != "GET" || p != "/billing/healthz" || ft.bodies[i] != "" {
				t.Fatalf("health-only mix sent %s %s %q", ft.methods[i], p, ft.bodies[i])
			}
		}
	})
}

// With a slow target and a small cap, the offered rate holds: what cannot
// be sent is dropped, never delayed; progress reports every second.
func TestCapDropsAndProgress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ft := &fakeTarget{start: time.Now()}
		ft.serve = func(n int, req *http.Request) (*http.Response, error) {
			time.Sleep(time.Second)
			return ok(req), nil
		}
		var progress []Progress
		rep, err := Run(t.Context(), Config{Target: "http://gw.test/billing", Rate: 10, Duration: 3 * time.Second, Concurrency: 5,
			Progress: func(p Progress) { progress = append(progress, p) }}, &http.Client{Transport: ft})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Sent+rep.Dropped != 30 || rep.Dropped < 10 || ft.peak > 5 || rep.OK != rep.Sent {
			t.Errorf("sent %d dropped %d ok %d peak in flight %d; want 30 offered, >= 10 dropped, <= 5 in flight", rep.Sent, rep.Dropped, rep.OK, ft.peak)
		}
		if len(progress) < 4 || !progress[len(progress)-1].Done {
			t.Fatalf("progress calls %+v; want one per second and a final one", progress)
		}
		for i, p := range progress[:3] {
			if p.Elapsed != time.Duration(i+1)*time.Second || p.Done {
				t.Errorf("progress %d at %s (done %v), want at %ds", i, p.Elapsed, p.Done, i+1)
			}
		}
		if last := progress[len(progress)-1]; last.Sent != rep.Sent || last.Dropped != rep.Dropped || last.InFlight != 0 {
			t.Errorf("final progress %+v disagrees with the report", last)
		}
		if p := progress[0]; p.Rate != 10 || p.InFlight != 5 {
			t.Errorf("progress at 1s: rate %v in flight %d, want 10 and 5", p.Rate, p.InFlight)
		}
	})
}

func TestCancelAbortsInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ft := &fakeTarget{start: time.Now()}
		ft.serve = func(n int, req *http.Request) (*http.Response, error) {
			<-req.Context().Done()
			return nil, req.Context().Err()
		}
		ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
		defer cancel()
		rep, err := Run(ctx, Config{Target: "http://gw.test/billing", Rate: 10, Duration: time.Minute, Timeout: time.Hour}, &http.Client{Transport: ft})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Elapsed != 1500*time.Millisecond || rep.Aborted != rep.Sent || rep.Sent != 15 || rep.Failed != 0 {
			t.Errorf("report %+v; want 15 sent in 1.5s, all aborted, none failed", rep)
		}
	})
}

// Against a real HTTP server: the offered rate is achieved within ±10%.
func TestOfferedRateAchieved(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.Copy(io.Discard, r.Body)
		w.Write([]byte(`{"result":"ok"}`))
	}))
	defer srv.Close()
	start := time.Now()
	rep, err := Run(context.Background(), Config{Target: srv.URL + "/billing", Rate: 200, Duration: 2 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s (run took %s)", rep, time.Since(start).Round(time.Millisecond))
	if rep.Sent < 360 || rep.Sent > 440 || int(hits.Load()) != rep.Sent {
		t.Errorf("sent %d (server saw %d), want 400 ±10%%", rep.Sent, hits.Load())
	}
	if rep.OK != rep.Sent || rep.Failed != 0 || rep.Dropped != 0 || rep.ByStatus[200] != rep.Sent {
		t.Errorf("report %+v", rep)
	}
	if rep.P50 <= 0 || rep.P99 < rep.P50 {
		t.Errorf("percentiles p50 %s p99 %s", rep.P50, rep.P99)
	}
}

// A slow real target does not lower the offered rate: with room, every
// due request is sent; with a small cap, the excess is dropped.
func TestSlowTargetKeepsOfferedRate(t *testing.T) {
	var inflight, peak atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inflight.Add(1)
		defer inflight.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(300 * time.Millisecond)
		w.Write([]byte("ok"))
	}))
	defer srv.Close()

	t.Run("room", func(t *testing.T) {
		rep, err := Run(context.Background(), Config{Target: srv.URL, Rate: 100, Duration: 2 * time.Second}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Sent < 180 || rep.Sent > 220 || rep.Dropped != 0 || rep.OK != rep.Sent {
			t.Errorf("%s\nwant 200 ±10%% sent, none dropped, despite 300ms responses", rep)
		}
		if p := peak.Load(); p < 20 {
			t.Errorf("at most %d requests in flight at once; open loop at 100/s × 0.3s should reach about 30", p)
		}
	})
	t.Run("capped", func(t *testing.T) {
		peak.Store(0)
		rep, err := Run(context.Background(), Config{Target: srv.URL, Rate: 100, Duration: 2 * time.Second, Concurrency: 10}, nil)
		if err != nil {
			t.Fatal(err)
		}
		offered := rep.Sent + rep.Dropped
		if offered < 180 || offered > 220 || rep.Dropped < 100 || peak.Load() > 10 {
			t.Errorf("%s\nwant 200 ±10%% offered, most dropped, <= 10 in flight (peak %d)", rep, peak.Load())
		}
	})
}

// The surge triples the rate in its window, against a real server.
func TestSurgeWindow(t *testing.T) {
	var mu sync.Mutex
	var arrivals []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrivals = append(arrivals, time.Now())
		mu.Unlock()
		io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()
	start := time.Now()
	rep, err := Run(context.Background(), Config{Target: srv.URL, Rate: 100, Duration: 2 * time.Second,
		Surge: Surge{Start: time.Second, Length: time.Second, Multiplier: 3}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	before, during := 0, 0
	for _, at := range arrivals {
		if at.Sub(start) < time.Second {
			before++
		} else {
			during++
		}
	}
	t.Logf("before the surge %d, during %d; %s", before, during, rep)
	if before < 85 || before > 115 || during < 270 || during > 330 {
		t.Errorf("%d requests in the first second, %d in the surge second; want about 100 then 300", before, during)
	}
}

func TestFailuresReported(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"result":"error","reason":"overloaded"}`))
	}))
	defer srv.Close()
	rep, err := Run(context.Background(), Config{Target: srv.URL, Rate: 50, Duration: 300 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed != rep.Sent || rep.ByStatus[503] != rep.Sent || !strings.Contains(rep.ErrorSamples["HTTP 503"], "overloaded") {
		t.Errorf("503s: %+v", rep)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	rep, err = Run(context.Background(), Config{Target: dead, Rate: 50, Duration: 300 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sent == 0 || rep.Errors["connection refused"] != rep.Sent || !strings.Contains(rep.ErrorSamples["connection refused"], "refused") {
		t.Errorf("refused target: %+v", rep)
	}
	if s := rep.String(); !strings.Contains(s, "connection refused:") {
		t.Errorf("summary does not mention the errors:\n%s", s)
	}
}

func TestDiscover(t *testing.T) {
	var gateways []model.Gateway
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodGet || r.URL.Path != "/api/v1/gateways" {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(gateways)
	}))
	defer srv.Close()
	ctx := context.Background()

	gateways = []model.Gateway{}
	_, err := Discover(ctx, srv.URL, "tok", nil)
	want := "no gateway registered with " + srv.URL + "; start one with `opspilot gateway --server " + srv.URL + "`"
	if err == nil || err.Error() != want {
		t.Errorf("no gateways: %v\nwant %s", err, want)
	}

	gateways = []model.Gateway{{Name: "gw-a", URL: "http://10.0.0.1:8080", Datacenter: "dc1"}, {Name: "gw-b", URL: "http://10.0.0.2:8080"}}
	if got, err := Discover(ctx, srv.URL+"/", "tok", nil); err != nil || got != "http://10.0.0.1:8080" {
		t.Errorf("Discover = %q, %v; want the first gateway", got, err)
	}
	if _, err := Discover(ctx, srv.URL, "wrong", nil); err == nil || !strings.Contains(err.Error(), "rejected the token") {
		t.Errorf("wrong token: %v", err)
	}
	if _, err := Discover(ctx, "localhost:7070", "", nil); err == nil || !strings.Contains(err.Error(), "absolute") {
		t.Errorf("relative URL: %v", err)
	}
	srv.Close()
	if _, err := Discover(ctx, srv.URL, "tok", nil); err == nil || !strings.Contains(err.Error(), "is the server running") {
		t.Errorf("server down: %v", err)
	}
}
