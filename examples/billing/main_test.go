package billing

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func noEnv(string) string { return "" }

func testConfig(t *testing.T, args ...string) config {
	t.Helper()
	cfg, err := parseConfig(args, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.instance = "test-1"
	cfg.seed = 1
	return cfg
}

func noSleep(ctx context.Context, _ time.Duration) error { return ctx.Err() }

func post(t *testing.T, url, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("POST %s %q: decoding answer: %v", url, body, err)
	}
	return resp.StatusCode, m
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func count(s *server, op, result string) float64 {
	return testutil.ToFloat64(s.transactions.WithLabelValues(op, result))
}

func TestPayRefundHappyPath(t *testing.T) {
	s := newServer(testConfig(t), nil)
	ts := httptest.NewServer(s.handler())
	defer ts.Close()

	for _, op := range []string{"pay", "refund"} {
		for i := 0; i < 3; i++ {
			code, m := post(t, ts.URL+"/"+op, `{"amount": 12.5, "shop": "a"}`)
			if code != http.StatusOK || m["result"] != "ok" {
				t.Fatalf("%s: got %d %v", op, code, m)
			}
			if id, _ := m["id"].(string); !strings.HasPrefix(id, op+"_") {
				t.Errorf("%s: id %q", op, m["id"])
			}
			if m["amount"] != 12.5 || m["shop"] != "a" || m["instance"] != "test-1" {
				t.Errorf("%s: echo %v", op, m)
			}
		}
		if got := count(s, op, "ok"); got != 3 {
			t.Errorf("%s ok = %v, want 3", op, got)
		}
		if got := count(s, op, "error"); got != 0 {
			t.Errorf("%s error = %v, want 0", op, got)
		}
	}
	if got := testutil.ToFloat64(s.inflight); got != 0 {
		t.Errorf("inflight = %v after all requests", got)
	}

	code, body := get(t, ts.URL+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`billing_transactions_total{op="pay",result="ok"} 3`,
		`billing_transactions_total{op="refund",result="ok"} 3`,
		`billing_transactions_total{op="pay",result="error"} 0`,
		`billing_request_duration_seconds_count{op="pay"} 3`,
		`billing_capacity_tps 50`,
		`billing_inflight_requests 0`,
		`billing_load_tps 6`,
		"go_goroutines ",
		"process_start_time_seconds ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if code, _ := get(t, ts.URL+"/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	if code, _ := get(t, ts.URL+"/pay"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /pay = %d, want 405", code)
	}
}

func TestMalformedBodies(t *testing.T) {
	s := newServer(testConfig(t), nil)
	ts := httptest.NewServer(s.handler())
	defer ts.Close()
	for _, body := range []string{
		``,
		`{`,
		`not json`,
		`[]`,
		`null`,
		`{"amount": 0, "shop": "a"}`,
		`{"amount": -3, "shop": "a"}`,
		`{"amount": "12", "shop": "a"}`,
		`{"shop": "a"}`,
		`{"amount": 1e400}`,
		`{"amount": 5, "shop": 7}`,
		`{"amount": 5} {"amount": 6}`,
		`{"amount": 5, "shop": "` + strings.Repeat("x", 200) + `"}`,
	} {
		for _, op := range []string{"pay", "refund"} {
			code, m := post(t, ts.URL+"/"+op, body)
			if code != http.StatusBadRequest || m["result"] != "error" || m["reason"] == "" {
				t.Errorf("%s %q: got %d %v, want 400 with a reason", op, body, code, m)
			}
		}
	}
	code, _ := post(t, ts.URL+"/pay", `{"amount": 1, "shop": "`+strings.Repeat("x", maxBodyBytes)+`"}`)
	if code != http.StatusRequestEntityTooLarge {
		t.Errorf("huge body: %d, want 413", code)
	}
	for _, op := range []string{"pay", "refund"} {
		for _, res := range []string{"ok", "error"} {
			if got := count(s, op, res); got != 0 {
				t.Errorf("%s %s = %v after malformed bodies, want 0", op, res, got)
			}
		}
	}
	if got := s.window.rate(time.Now()); got != 0 {
		t.Errorf("malformed bodies counted in the load: %v", got)
	}
}

func TestReadinessWarmup(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	s := newServer(testConfig(t, "-warmup", "30s"), nil, withClock(clock))
	ts := httptest.NewServer(s.handler())
	defer ts.Close()

	check := func(want int, status string) {
		t.Helper()
		code, body := get(t, ts.URL+"/readyz")
		if code != want || !strings.Contains(body, `"status":"`+status+`"`) {
			t.Errorf("/readyz = %d %s, want %d %s", code, body, want, status)
		}
		if code, _ := get(t, ts.URL+"/healthz"); code != 200 {
			t.Errorf("/healthz = %d during %s", code, status)
		}
	}
	check(503, "starting")
	now.Add(int64(29 * time.Second))
	check(503, "starting")
	now.Add(int64(time.Second))
	check(200, "ready")
	s.startDrain()
	check(503, "draining")
}

// TestGracefulDrain checks the SIGTERM path: readiness goes 503 at once,
// the in-flight request finishes with 200, and serve returns nil.
func TestGracefulDrain(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	sleep := func(ctx context.Context, d time.Duration) error {
		once.Do(func() { close(entered) })
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	cfg := testConfig(t, "-drain-delay", "300ms")
	s := newServer(cfg, nil, withSleep(sleep))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- serve(ctx, s, ln, nil) }()

	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Fatalf("/readyz before drain = %d", code)
	}
	type result struct {
		code int
		m    map[string]any
	}
	inflight := make(chan result, 1)
	go func() {
		resp, err := http.Post(base+"/pay", "application/json", strings.NewReader(`{"amount": 1, "shop": "a"}`))
		if err != nil {
			inflight <- result{code: -1}
			return
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		inflight <- result{resp.StatusCode, m}
	}()
	<-entered
	cancel() // what SIGTERM does in main
	deadline := time.Now().Add(2 * time.Second)
	for s.readiness() != "draining" && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	// Still within -drain-delay: the listener is open and /readyz says 503.
	code, body := get(t, base+"/readyz")
	if code != 503 || !strings.Contains(body, "draining") {
		t.Errorf("/readyz while draining = %d %s", code, body)
	}
	select {
	case err := <-done:
		t.Fatalf("serve returned %v with a request in flight", err)
	case <-time.After(500 * time.Millisecond):
	}
	close(release)
	if r := <-inflight; r.code != 200 || r.m["result"] != "ok" {
		t.Errorf("in-flight request: %d %v", r.code, r.m)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("serve did not return after the drain")
	}
}

func TestLatencyAndErrorRate(t *testing.T) {
	for _, tc := range []struct {
		name           string
		rate, capacity float64
		lat            time.Duration
		errRate        float64
	}{
		{"idle", 0, 50, 5 * time.Millisecond, 0},
		{"0.5x", 25, 50, 5 * time.Millisecond, 0},
		{"1x", 50, 50, 5 * time.Millisecond, 0},
		{"1.5x", 75, 50, 16875 * time.Microsecond, 0},
		{"2x", 100, 50, 40 * time.Millisecond, 0.25},
		{"4x", 200, 50, 320 * time.Millisecond, 0.625},
		{"10x capped", 500, 50, 2 * time.Second, 0.85},
		{"infinite rate", math.Inf(1), 50, 2 * time.Second, 1},
		{"zero capacity", 10, 0, 5 * time.Millisecond, 0},
		{"NaN rate", math.NaN(), 50, 5 * time.Millisecond, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lat, er := latencyAndErrorRate(tc.rate, tc.capacity)
			if d := lat - tc.lat; d < -time.Microsecond || d > time.Microsecond {
				t.Errorf("latency = %v, want %v", lat, tc.lat)
			}
			if math.Abs(er-tc.errRate) > 1e-9 {
				t.Errorf("error rate = %v, want %v", er, tc.errRate)
			}
		})
	}
	// Monotone in the load.
	prevLat, prevErr := time.Duration(0), 0.0
	for r := 0.0; r <= 20; r += 0.01 {
		lat, er := latencyAndErrorRate(r, 1)
		if lat < prevLat || er < prevErr || er < 0 || er >= 1 || lat > maxLatency {
			t.Fatalf("rate %v: (%v, %v) after (%v, %v)", r, lat, er, prevLat, prevErr)
		}
		prevLat, prevErr = lat, er
	}
}

func TestRateWindow(t *testing.T) {
	var w rateWindow
	t0 := time.Unix(1000, 0)
	for i := 0; i < 10; i++ {
		if got := w.add(t0.Add(time.Duration(i) * 100 * time.Millisecond)); got != float64(i+1) {
			t.Fatalf("add %d: rate %v", i, got)
		}
	}
	// At t0+1s the event at t0 has left the window.
	if got := w.add(t0.Add(time.Second)); got != 10 {
		t.Errorf("rate at t0+1s = %v, want 10", got)
	}
	if got := w.rate(t0.Add(10 * time.Second)); got != 0 {
		t.Errorf("rate much later = %v", got)
	}
}

// TestOverload fires 60 concurrent requests at an instance with -capacity 5:
// some must be shed with 503 overloaded and counted as result="error".
func TestOverload(t *testing.T) {
	cfg, err := parseConfig([]string{"-capacity", "5", "-seed", "42", "-instance", "busy"}, noEnv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	s := newServer(cfg, nil)
	ts := httptest.NewServer(s.handler())
	defer ts.Close()

	const n = 60
	var wg sync.WaitGroup
	codes := make(chan int, n)
	reasons := make(chan string, n)
	for i := 0; i < n; i++ {
		wg.Go(func() {
			resp, err := http.Post(ts.URL+"/pay", "application/json", strings.NewReader(`{"amount": 9.99, "shop": "a"}`))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var m map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&m)
			codes <- resp.StatusCode
			if resp.StatusCode == 503 {
				reasons <- m["reason"].(string)
			}
		})
	}
	wg.Wait()
	close(codes)
	close(reasons)
	byCode := map[int]int{}
	for c := range codes {
		byCode[c]++
	}
	for r := range reasons {
		if r != "overloaded" {
			t.Errorf("503 reason %q", r)
		}
	}
	t.Logf("status codes: %v", byCode)
	if byCode[503] == 0 || byCode[200] == 0 || byCode[200]+byCode[503] != n {
		t.Errorf("want a mix of 200 and 503 summing to %d, got %v", n, byCode)
	}
	if got := count(s, "pay", "error"); got != float64(byCode[503]) {
		t.Errorf(`result="error" = %v, want %d`, got, byCode[503])
	}
	if got := count(s, "pay", "ok"); got != float64(byCode[200]) {
		t.Errorf(`result="ok" = %v, want %d`, got, byCode[200])
	}
	_, body := get(t, ts.URL+"/metrics")
	if !strings.Contains(body, `billing_transactions_total{op="pay",result="error"}`) {
		t.Error("/metrics lacks the error series")
	}
}

// FuzzPayBody: any body gets 200, 4xx, or the overload 503; never a panic.
func FuzzPayBody(f *testing.F) {
	for _, seed := range []string{
		`{"amount": 12.5, "shop": "a"}`, `{"amount": -1}`, `{"amount": 0}`, `{}`, ``, `{`, `null`,
		`{"amount": 1e308, "shop": "\u0000"}`, `{"amount": 1} trailing`, `[1,2]`, `{"amount": "x"}`,
		`{"amount": 5e-324}`, `{"shop": {"a": [1]}}`, "\xff\xfe",
	} {
		f.Add([]byte(seed))
	}
	s := newServer(config{capacity: 1000, instance: "fuzz", shutdownTimeout: time.Second}, nil,
		withSleep(noSleep), withRand(mrand.New(mrand.NewPCG(1, 2)).Float64))
	h := s.handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, op := range []string{"/pay", "/refund"} {
			req := httptest.NewRequest(http.MethodPost, op, strings.NewReader(string(body)))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			var m map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
				t.Fatalf("%s %q: answer is not JSON: %v", op, body, err)
			}
			switch c := rec.Code; {
			case c == 200:
				if m["result"] != "ok" || m["id"] == "" {
					t.Fatalf("%s %q: 200 %v", op, body, m)
				}
			case c == 503:
				if m["reason"] != "overloaded" {
					t.Fatalf("%s %q: 503 %v", op, body, m)
				}
			case c >= 400 && c < 500:
				if m["result"] != "error" || m["reason"] == "" {
					t.Fatalf("%s %q: %d %v", op, body, c, m)
				}
			default:
				t.Fatalf("%s %q: status %d %v", op, body, c, m)
			}
		}
	})
}

// TestRunFlagsAndEnv covers parseConfig's precedence and run's wiring.
func TestRunFlagsAndEnv(t *testing.T) {
	env := map[string]string{"BILLING_CAPACITY": "7", "BILLING_ADDR": "0.0.0.0:9000", "PORT": "9100", "BILLING_WARMUP": "2s"}
	getenv := func(k string) string { return env[k] }
	cfg, err := parseConfig(nil, getenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.capacity != 7 || cfg.addr != "0.0.0.0:9100" || cfg.warmup != 2*time.Second || cfg.shutdownTimeout != 10*time.Second {
		t.Errorf("env config: %+v", cfg)
	}
	cfg, err = parseConfig([]string{"-capacity", "3", "-addr", "127.0.0.1:1234"}, getenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.capacity != 3 || cfg.addr != "127.0.0.1:1234" {
		t.Errorf("flags should win over env and PORT: %+v", cfg)
	}
	for _, args := range [][]string{{"-capacity", "0"}, {"-capacity", "-1"}, {"-warmup", "-1s"}, {"extra"}} {
		if _, err := parseConfig(args, noEnv, io.Discard); err == nil {
			t.Errorf("%q: no error", args)
		}
	}
	if _, err := parseConfig(nil, func(k string) string {
		if k == "BILLING_CAPACITY" {
			return "lots"
		}
		return ""
	}, io.Discard); err == nil {
		t.Error("bad BILLING_CAPACITY accepted")
	}

	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-capacity", "12"}, noEnv, io.Discard, func(a string) { addrc <- a })
	}()
	addr := <-addrc
	_, body := get(t, "http://"+addr+"/metrics")
	if want := "billing_capacity_tps 12"; !strings.Contains(body, want) {
		t.Errorf("/metrics lacks %q", want)
	}
	// The default instance name is hostname:port of the listener.
	host, _ := os.Hostname()
	_, port, _ := net.SplitHostPort(addr)
	if _, hz := get(t, "http://"+addr+"/healthz"); !strings.Contains(hz, net.JoinHostPort(host, port)) {
		t.Errorf("/healthz does not name the default instance %s: %s", net.JoinHostPort(host, port), hz)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
	if err := run(context.Background(), []string{"-h"}, noEnv, io.Discard, nil); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}

// TestSIGTERM runs the real main in a child process and stops it with
// SIGTERM: it must exit 0.
func TestSIGTERM(t *testing.T) {
	if os.Getenv("BILLING_TEST_MAIN") == "1" {
		os.Exit(Main([]string{"-addr", "127.0.0.1:0"}))
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestSIGTERM$")
	cmd.Env = append(os.Environ(), "BILLING_TEST_MAIN=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	var addr string
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, "addr="); i >= 0 && strings.Contains(line, "billing listening") {
			addr = strings.Fields(line[i+len("addr="):])[0]
			break
		}
	}
	if addr == "" {
		_ = cmd.Process.Kill()
		t.Fatal("child never said it was listening")
	}
	if code, _ := get(t, "http://"+addr+"/readyz"); code != 200 {
		t.Errorf("/readyz = %d", code)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, stderr)
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
}

// TestFailRatio: -fail-ratio answers that share of transactions 500
// whatever the load, counted as errors; outside [0, 1] it is refused.
func TestFailRatio(t *testing.T) {
	s := newServer(testConfig(t, "-capacity", "1000", "-fail-ratio", "0.5"), nil,
		withSleep(noSleep), withRand(mrand.New(mrand.NewPCG(1, 2)).Float64))
	ts := httptest.NewServer(s.handler())
	defer ts.Close()
	const n = 200
	byCode := map[int]int{}
	for range n {
		code, m := post(t, ts.URL+"/pay", `{"amount": 1}`)
		byCode[code]++
		if code == 500 && m["reason"] != "injected fault" {
			t.Errorf("500 reason %v, want injected fault", m["reason"])
		}
	}
	if byCode[200]+byCode[500] != n || byCode[500] < n/4 || byCode[500] > 3*n/4 {
		t.Errorf("status codes %v, want about half of %d answered 500", byCode, n)
	}
	if got := count(s, "pay", "error"); got != float64(byCode[500]) {
		t.Errorf(`result="error" = %v, want %d`, got, byCode[500])
	}
	for _, v := range []string{"-0.1", "1.5", "NaN"} {
		if _, err := parseConfig([]string{"-fail-ratio", v}, noEnv, io.Discard); err == nil {
			t.Errorf("-fail-ratio %s accepted", v)
		}
	}
	if cfg, err := parseConfig(nil, func(k string) string {
		if k == "BILLING_FAIL_RATIO" {
			return "0.25"
		}
		return ""
	}, io.Discard); err != nil || cfg.failRatio != 0.25 {
		t.Errorf("BILLING_FAIL_RATIO=0.25: %v %+v", err, cfg)
	}
}
