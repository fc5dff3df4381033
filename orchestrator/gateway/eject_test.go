package gateway

import (
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"opspilot/orchestrator/model"
)

// TestEjectionWindow: connect failures in a row take a backend out of
// picks for EjectFor; when the window ends it is tried again, one more
// failure ejects it again, a response restores it; when every backend is
// ejected one is still picked.
func TestEjectionWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const after, window = 3, 5 * time.Second
		bs := []*backend{
			{ep: model.Endpoint{Instance: "a"}},
			{ep: model.Endpoint{Instance: "b"}},
			{ep: model.Endpoint{Instance: "c"}},
		}
		a := bs[0]
		picked := func() (aPicked bool) {
			for range 200 {
				if pick(bs, nil, time.Now().UnixNano(), 0) == a {
					return true
				}
			}
			return false
		}
		for i := 1; i < after; i++ {
			if a.connectFailed(time.Now(), after, window) {
				t.Fatalf("ejected after %d failures, want %d", i, after)
			}
		}
		if !picked() {
			t.Fatal("a backend below the failure threshold is never picked")
		}
		if !a.connectFailed(time.Now(), after, window) {
			t.Fatalf("not ejected after %d failures in a row", after)
		}
		if picked() {
			t.Fatal("an ejected backend was picked while others are available")
		}
		if a.connectFailed(time.Now(), after, window) {
			t.Fatal("a failure while ejected (an attempt started before) counted as a new ejection")
		}
		if got := pick(bs, bs[1:], time.Now().UnixNano(), 0); got != a {
			t.Fatalf("with the others tried, pick = %v, want the ejected a (better than nothing)", got)
		}

		time.Sleep(window - time.Millisecond)
		if picked() {
			t.Fatal("picked before the ejection window ended")
		}
		time.Sleep(time.Millisecond)
		if !picked() {
			t.Fatal("not picked after the ejection window ended")
		}
		// Nothing succeeded in between: one failure ejects again.
		if !a.connectFailed(time.Now(), after, window) {
			t.Fatal("a failure right after an ejection did not eject again")
		}
		time.Sleep(window)
		a.answered(time.Now().UnixNano())
		for i := 1; i < after; i++ {
			if a.connectFailed(time.Now(), after, window) {
				t.Fatal("a response did not reset the failure count")
			}
		}

		for _, b := range bs {
			b.ejectedUntil.Store(time.Now().Add(time.Hour).UnixNano())
		}
		if pick(bs, nil, time.Now().UnixNano(), 0) == nil {
			t.Fatal("every backend ejected: pick returned none instead of trying one")
		}
		if never := (&backend{}); never.connectFailed(time.Now(), -1, window) {
			t.Fatal("EjectAfter -1 ejected")
		}
	})
}

// TestStallWindow: a backend with requests outstanding that answers
// nothing for StallAfter is passed over while others are available; an
// answer or going idle ends it.
func TestStallWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const after = int64(300 * time.Millisecond)
		now := func() int64 { return time.Now().UnixNano() }
		bs := []*backend{{ep: model.Endpoint{Instance: "a"}}, {ep: model.Endpoint{Instance: "b"}}}
		a := bs[0]
		if a.stalled(now(), after) {
			t.Fatal("an idle backend is stalled")
		}
		time.Sleep(time.Second) // idle for long: not held against it
		a.begin(now())
		time.Sleep(300 * time.Millisecond)
		if a.stalled(now(), after) {
			t.Fatal("stalled at StallAfter, want only beyond it")
		}
		time.Sleep(time.Millisecond)
		if !a.stalled(now(), after) {
			t.Fatal("not stalled after StallAfter without an answer")
		}
		bs[1].outstanding.Store(50) // far busier, but answering
		bs[1].answered(now())
		for range 100 {
			if pick(bs, nil, now(), after) == a {
				t.Fatal("a stalled backend was picked while another is available")
			}
		}
		if pick(bs, bs[1:], now(), after) != a {
			t.Fatal("the stalled backend is not tried when nothing else is left")
		}
		if a.stalled(now(), -1) {
			t.Fatal("stalled with the check off")
		}
		a.answered(now())
		if a.stalled(now(), after) {
			t.Fatal("stalled right after an answer")
		}
		time.Sleep(time.Second)
		a.release()
		if a.stalled(now(), after) {
			t.Fatal("an idle backend is stalled")
		}
	})
}

// blackHoleAddr is a loopback address whose listener's accept queue is
// full: the kernel drops further SYNs without an answer, as for a host
// behind a cut network, so connecting times out.
func blackHoleAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
	// Fill the queue with connections nobody accepts, until one hangs.
	for range 16 {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return addr
		}
		if err != nil {
			t.Fatalf("filling the accept queue of %s: %v", addr, err)
		}
		t.Cleanup(func() { _ = c.Close() })
	}
	t.Skipf("skipping: connecting to %s with a full accept queue does not time out on this kernel", addr)
	return ""
}

// TestBlackHoledEndpointsFailFastAndAreEjected: two of four endpoints
// (a datacenter whose network went dark) drop connection attempts without
// an answer. Every request, POSTs included, still succeeds: a connect
// that does not complete within DialTimeout is retried on another
// endpoint in another datacenter (the instance never saw the request),
// so no request waits more than one dial timeout; after EjectAfter
// failures in a row an endpoint gets no more requests, so later requests
// pay nothing.
func TestBlackHoledEndpointsFailFastAndAreEjected(t *testing.T) {
	good1, good2 := newBackend(t, "a1", nil), newBackend(t, "a2", nil)
	set := model.EndpointSet{Revision: 1, Services: map[string][]model.Endpoint{"billing": {
		good1.endpoint(), good2.endpoint(),
		{Instance: "b1", Datacenter: "B", Address: blackHoleAddr(t)},
		{Instance: "b2", Datacenter: "B", Address: blackHoleAddr(t)},
	}}}
	const dial, after = 100 * time.Millisecond, 2
	g, srv, _ := startGateway(t, NewStaticSource(set), Config{DialTimeout: dial, EjectAfter: after, EjectFor: time.Minute})
	c := newClient()
	const n = 80
	var slowest time.Duration
	for i := range n {
		start := time.Now()
		res := send(c, http.MethodPost, srv.URL+"/billing/pay", "", `{"amount":1}`, nil)
		slowest = max(slowest, time.Since(start))
		if res.err != nil || res.status != 200 {
			t.Fatalf("request %d: %d %s %v; want every request answered by datacenter A", i, res.status, res.body, res.err)
		}
	}
	if good1.hits.Load()+good2.hits.Load() != n {
		t.Errorf("A's endpoints answered %d of %d requests", good1.hits.Load()+good2.hits.Load(), n)
	}
	// A failed connect in B sends the retry to A at once: no request
	// waits for more than one dial timeout.
	if limit := dial + 150*time.Millisecond; slowest > limit {
		t.Errorf("slowest request took %s, want < %s (one dial timeout of %s, then the other datacenter)", slowest, limit, dial)
	}
	failures := testutil.ToFloat64(g.m.connectFailures.WithLabelValues("billing", "B"))
	ejections := testutil.ToFloat64(g.m.ejections.WithLabelValues("billing", "B"))
	if ejections != 2 || failures != 2*after {
		t.Errorf("%v connect failures and %v ejections in B, want %d and 2: each dark endpoint ejected after %d failures and left alone since",
			failures, ejections, 2*after, after)
	}
	if got := testutil.ToFloat64(g.m.connectFailures.WithLabelValues("billing", "dc1")); got != 0 {
		t.Errorf("%v connect failures on the healthy endpoints", got)
	}
}

// TestNoDialRetries: DialRetries -1 answers a failed connect with 502 at
// once instead of trying another endpoint.
func TestNoDialRetries(t *testing.T) {
	good := newBackend(t, "good", nil)
	set := model.EndpointSet{Revision: 1, Services: map[string][]model.Endpoint{"billing": {
		good.endpoint(), {Instance: "bad", Datacenter: "dc1", Address: refusedAddr(t)},
	}}}
	g, srv, _ := startGateway(t, NewStaticSource(set), Config{DialRetries: -1, EjectAfter: -1})
	c := newClient()
	bad := 0
	for range 40 {
		res := send(c, http.MethodGet, srv.URL+"/billing/x", "", "", nil)
		switch res.status {
		case 200:
		case 502:
			bad++
		default:
			t.Fatalf("status %d %s", res.status, res.body)
		}
	}
	if bad == 0 {
		t.Fatal("no request met the refusing endpoint; the test proves nothing")
	}
	if got := testutil.ToFloat64(g.m.retries.WithLabelValues("billing")); got != 0 {
		t.Errorf("%v retries with DialRetries -1", got)
	}
	if got := testutil.ToFloat64(g.m.ejections.WithLabelValues("billing", "dc1")); got != 0 {
		t.Errorf("%v ejections with EjectAfter -1", got)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{DialTimeout: -1}, "dial timeout"},
		{Config{DialRetries: -2}, "dial retries"},
		{Config{EjectAfter: -5}, "eject after"},
		{Config{EjectFor: -time.Second}, "eject for"},
		{Config{ResponseHeaderTimeout: -1}, "response header timeout"},
	} {
		_, err := New(NewStaticSource(model.EndpointSet{}), tt.cfg, nil, quiet)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v) = %v, want an error naming %q", tt.cfg, err, tt.want)
		}
	}
}

// TestSlowEndpointsStillServe: endpoints whose every request takes longer
// than StallAfter are only passed over, never failed: all requests
// succeed (no ejection, no timeout).
func TestSlowEndpointsStillServe(t *testing.T) {
	slow := func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(400 * time.Millisecond)
		w.WriteHeader(http.StatusOK)
	}
	bs := []*testBackend{newBackend(t, "s1", slow), newBackend(t, "s2", slow)}
	g, srv, _ := startGateway(t, NewStaticSource(setOf(map[string][]*testBackend{"billing": bs})), Config{StallAfter: 100 * time.Millisecond})
	c := newClient()
	const n = 12
	errs := make(chan string, n)
	for range n {
		go func() {
			res := send(c, http.MethodPost, srv.URL+"/billing/pay", "", `{"amount":1}`, nil)
			if res.err != nil || res.status != 200 {
				errs <- res.body + " " + strconv.Itoa(res.status)
				return
			}
			errs <- ""
		}()
	}
	for range n {
		if e := <-errs; e != "" {
			t.Errorf("a request to slow endpoints failed: %s", e)
		}
	}
	if got := bs[0].hits.Load() + bs[1].hits.Load(); got != n {
		t.Errorf("endpoints saw %d requests, want %d (one each, no retries)", got, n)
	}
	if got := testutil.ToFloat64(g.m.ejections.WithLabelValues("billing", "dc1")); got != 0 {
		t.Errorf("%v ejections of slow but healthy endpoints", got)
	}
}
