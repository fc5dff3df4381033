package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"opspilot/orchestrator/model"
)

var quiet = slog.New(slog.DiscardHandler)

// scriptedTransport answers requests with a script, recording when each
// came; inside a synctest bubble the times are the fake clock's.
type scriptedTransport struct {
	respond func(n int, req *http.Request) (*http.Response, error)

	mu    sync.Mutex
	calls []scriptedCall
}

type scriptedCall struct {
	at     time.Time
	url    string
	auth   string
	body   string
	method string
}

func (s *scriptedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		body, _ = io.ReadAll(req.Body)
		_ = req.Body.Close()
	}
	s.mu.Lock()
	n := len(s.calls)
	s.calls = append(s.calls, scriptedCall{at: time.Now(), url: req.URL.String(), auth: req.Header.Get("Authorization"), body: string(body), method: req.Method})
	s.mu.Unlock()
	return s.respond(n, req)
}

func (s *scriptedTransport) recorded() []scriptedCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]scriptedCall(nil), s.calls...)
}

func jsonResponse(req *http.Request, status int, v any) *http.Response {
	b, _ := json.Marshal(v)
	return &http.Response{StatusCode: status, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(bytes.NewReader(b)), ContentLength: int64(len(b)), Request: req}
}

var refused = &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}

// The watcher backs off exponentially (with jitter, up to the maximum)
// while the server is away, keeps the last set, resyncs with a plain GET
// and then long-polls again.
func TestWatcherBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		setAt := func(rev int64) model.EndpointSet {
			return model.EndpointSet{Revision: rev, Services: map[string][]model.Endpoint{"billing": {{Instance: "b1", Address: "10.0.0.1:80"}}}}
		}
		const failures = 6 // the long-poll that fails, then five plain GETs
		tr := &scriptedTransport{respond: func(n int, req *http.Request) (*http.Response, error) {
			switch {
			case n == 0:
				return jsonResponse(req, 200, setAt(1)), nil
			case n <= failures:
				return nil, refused
			case n == failures+1:
				return jsonResponse(req, 200, setAt(2)), nil
			default: // a long-poll with no change: held open
				<-req.Context().Done()
				return nil, req.Context().Err()
			}
		}}
		reg := prometheus.NewRegistry()
		w, err := NewWatcher(WatcherConfig{Server: "http://server.test", Token: "tok", MinBackoff: 100 * time.Millisecond, MaxBackoff: 400 * time.Millisecond},
			&http.Client{Transport: tr}, reg, quiet)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- w.Run(ctx) }()

		synctest.Wait() // first set received, long-poll failed, backing off
		set, changed := w.Current()
		if set == nil || set.Revision != 1 {
			t.Fatalf("during the outage the set is %+v, want the last good one (revision 1)", set)
		}
		if got := testutil.ToFloat64(w.stale); got != 1 {
			t.Errorf("stale gauge = %v during the outage, want 1", got)
		}

		time.Sleep(3 * time.Second)
		synctest.Wait()
		select {
		case <-changed:
		default:
			t.Fatal("change channel not closed after the server came back with a new set")
		}
		if got := revision(w); got != 2 {
			t.Fatalf("revision %d after the server came back, want 2", got)
		}
		if got := testutil.ToFloat64(w.stale); got != 0 {
			t.Errorf("stale gauge = %v after recovery, want 0", got)
		}
		if got := testutil.ToFloat64(w.errorsTotal); got != failures {
			t.Errorf("watch errors = %v, want %d", got, failures)
		}

		calls := tr.recorded()
		if len(calls) != failures+3 {
			t.Fatalf("%d requests, want %d", len(calls), failures+3)
		}
		for i, c := range calls {
			if c.auth != "Bearer tok" {
				t.Errorf("request %d: Authorization %q", i, c.auth)
			}
			longPoll := strings.Contains(c.url, "wait=")
			wantLongPoll := i == 1 || i == failures+2
			if longPoll != wantLongPoll {
				t.Errorf("request %d %s: long-poll=%v, want %v (plain GET after a failure)", i, c.url, longPoll, wantLongPoll)
			}
		}
		if !strings.HasSuffix(calls[1].url, "/api/v1/endpoints?wait=1&timeout=30s") || !strings.Contains(calls[failures+2].url, "wait=2&") {
			t.Errorf("long-polls %s and %s, want wait=1 then wait=2", calls[1].url, calls[failures+2].url)
		}
		for i := 2; i <= failures+1; i++ {
			gap := calls[i].at.Sub(calls[i-1].at)
			base := min(100*time.Millisecond<<(i-2), 400*time.Millisecond)
			if lo, hi := base*8/10, base*12/10; gap < lo || gap > hi {
				t.Errorf("wait before request %d = %s, want %s ±20%%", i, gap, base)
			}
		}

		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil on cancellation", err)
		}
	})
}

// Against a real server: changes arrive through the long-poll at once, the
// last set survives the server going away, and a change made meanwhile is
// picked up within milliseconds of its return.
func TestWatcherOutageAndReturn(t *testing.T) {
	a := model.Endpoint{Instance: "a", Datacenter: "dc1", Address: "10.0.0.1:80"}
	b := model.Endpoint{Instance: "b", Datacenter: "dc1", Address: "10.0.0.2:80"}
	cp := newControlPlane(t, "s3cret", model.EndpointSet{Revision: 1, Services: map[string][]model.Endpoint{"billing": {a}}})
	w, err := NewWatcher(WatcherConfig{Server: cp.url(), Token: "s3cret", MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}, nil, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	waitFor(t, 2*time.Second, "the first set", func() bool { return revision(w) == 1 })
	time.Sleep(20 * time.Millisecond) // let the long-poll start
	start := time.Now()
	cp.update(func(s map[string][]model.Endpoint) { s["billing"] = append(s["billing"], b) })
	waitFor(t, time.Second, "revision 2", func() bool { return revision(w) == 2 })
	t.Logf("change seen %s after the server made it (long-poll)", time.Since(start))

	cp.stop()
	time.Sleep(150 * time.Millisecond)
	set, _ := w.Current()
	if set.Revision != 2 || len(set.Services["billing"]) != 2 {
		t.Fatalf("during the outage: %+v, want revision 2 with both endpoints", set)
	}
	if testutil.ToFloat64(w.errorsTotal) == 0 {
		t.Error("no watch errors counted while the server was away")
	}

	cp.update(func(s map[string][]model.Endpoint) { s["billing"] = []model.Endpoint{b} })
	start = time.Now()
	cp.start(t)
	waitFor(t, 2*time.Second, "revision 3 after the server's return", func() bool { return revision(w) == 3 })
	took := time.Since(start)
	t.Logf("change made during the outage seen %s after the server's return", took)
	if took > 500*time.Millisecond {
		t.Errorf("took %s, want about MaxBackoff (20ms)", took)
	}
}

func TestWatcherRejectedToken(t *testing.T) {
	cp := newControlPlane(t, "right", model.EndpointSet{Revision: 1})
	w, err := NewWatcher(WatcherConfig{Server: cp.url(), Token: "wrong"}, nil, nil, quiet)
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.poll(context.Background(), -1)
	if err == nil || !strings.Contains(err.Error(), "rejected the token") {
		t.Fatalf("poll with a wrong token: %v, want an error saying the token was rejected", err)
	}
}

func TestWatcherConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		cfg    WatcherConfig
		client *http.Client
		want   string
	}{
		{WatcherConfig{}, nil, "server URL is empty"},
		{WatcherConfig{Server: "127.0.0.1:7070"}, nil, "must be absolute"},
		{WatcherConfig{Server: "http://x", MinBackoff: time.Second, MaxBackoff: time.Millisecond}, nil, "backoff"},
		{WatcherConfig{Server: "http://x"}, &http.Client{Timeout: 10 * time.Second}, "would cut every"},
	} {
		_, err := NewWatcher(tt.cfg, tt.client, nil, quiet)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("NewWatcher(%+v) = %v, want error containing %q", tt.cfg, err, tt.want)
		}
	}
}

func TestStaticSource(t *testing.T) {
	eps := []model.Endpoint{{Instance: "a", Address: "x:1"}}
	src := NewStaticSource(model.EndpointSet{Revision: 5, Services: map[string][]model.Endpoint{"s": eps}})
	eps[0].Address = "mutated"
	set, changed := src.Current()
	if set.Revision != 5 || set.Services["s"][0].Address != "x:1" {
		t.Fatalf("got %+v; the source must copy its input", set)
	}
	src.Set(model.EndpointSet{Services: map[string][]model.Endpoint{}})
	select {
	case <-changed:
	default:
		t.Fatal("Set did not close the change channel")
	}
	if got := revision(src); got != 6 {
		t.Errorf("revision after Set = %d, want 6 (one more than before)", got)
	}
}

func TestRegister(t *testing.T) {
	prev := slog.Default()
	slog.SetDefault(quiet) // Register logs its expected failure there
	defer slog.SetDefault(prev)
	synctest.Test(t, func(t *testing.T) {
		tr := &scriptedTransport{respond: func(n int, req *http.Request) (*http.Response, error) {
			if n == 1 {
				return nil, refused // one failure must not stop the loop
			}
			return &http.Response{StatusCode: http.StatusNoContent, Body: http.NoBody, Request: req}, nil
		}}
		gw := model.Gateway{Name: "gw-1", URL: "http://127.0.0.1:8080", Datacenter: "dc1"}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		start := time.Now()
		go func() { done <- Register(ctx, "http://server.test/", "tok", gw, &http.Client{Transport: tr}) }()

		time.Sleep(12 * time.Second)
		synctest.Wait()
		calls := tr.recorded()
		if len(calls) != 3 {
			t.Fatalf("%d registrations in 12s, want 3 (at 0s, 5s, 10s)", len(calls))
		}
		for i, c := range calls {
			if want := start.Add(time.Duration(i) * RegisterInterval); !c.at.Equal(want) {
				t.Errorf("registration %d at +%s, want +%s", i, c.at.Sub(start), want.Sub(start))
			}
			var got model.Gateway
			if c.method != http.MethodPost || c.url != "http://server.test/api/v1/gateways" || c.auth != "Bearer tok" ||
				json.Unmarshal([]byte(c.body), &got) != nil || got != gw {
				t.Errorf("registration %d: %s %s auth %q body %s", i, c.method, c.url, c.auth, c.body)
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Register = %v after cancellation, want nil", err)
		}
	})
}

func TestRegisterRejectsBadArguments(t *testing.T) {
	ctx := context.Background()
	if err := Register(ctx, "server:7070", "", model.Gateway{Name: "g", URL: "http://x"}, nil); err == nil || !strings.Contains(err.Error(), "absolute") {
		t.Errorf("relative server URL: %v", err)
	}
	if err := Register(ctx, "http://server", "", model.Gateway{Name: "g"}, nil); err == nil || !strings.Contains(err.Error(), "required") {
		t.Errorf("gateway without URL: %v", err)
	}
}

// A server that answers long-polls at once with the same revision (not
// holding them) is polled at most every MinBackoff, not in a tight loop.
func TestWatcherDoesNotHammerAServerIgnoringWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr := &scriptedTransport{respond: func(n int, req *http.Request) (*http.Response, error) {
			return jsonResponse(req, 200, model.EndpointSet{Revision: 7}), nil
		}}
		w, err := NewWatcher(WatcherConfig{Server: "http://server.test", MinBackoff: 100 * time.Millisecond}, &http.Client{Transport: tr}, nil, quiet)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		_ = w.Run(ctx)
		// The first GET and the first long-poll at 0s, then one per 100ms.
		if n := len(tr.recorded()); n > 12 {
			t.Errorf("%d polls in 1s, want at most 12 (one per 100ms)", n)
		}
		if got := revision(w); got != 7 {
			t.Errorf("revision %d, want 7", got)
		}
	})
}
