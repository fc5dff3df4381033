package leader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	clientv3 "go.etcd.io/etcd/client/v3"

	"opspilot/orchestrator/store"
)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// cluster starts a three-member embedded etcd cluster (real etcd, one
// process) and returns one store per member.
func cluster(t *testing.T) []*store.Store {
	t.Helper()
	var ls []net.Listener
	var urls []string
	for range 6 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		urls = append(urls, "http://"+l.Addr().String())
	}
	for _, l := range ls {
		_ = l.Close()
	}
	var initial []string
	for i := range 3 {
		initial = append(initial, fmt.Sprintf("cp-%d=%s", i, urls[2*i+1]))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sts := make([]*store.Store, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			sts[i], errs[i] = store.Open(ctx, store.Config{Embedded: true, DataDir: t.TempDir(), Name: fmt.Sprintf("cp-%d", i),
				ClientURL: urls[2*i], PeerURL: urls[2*i+1], InitialCluster: strings.Join(initial, ","),
				HeartbeatInterval: 50 * time.Millisecond, ElectionTimeout: 500 * time.Millisecond}, testLogger(t))
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range sts {
		t.Cleanup(func() { _ = s.Close() })
	}
	return sts
}

// timeline records leader terms and fails the test when two overlap.
type timeline struct {
	t       *testing.T
	mu      sync.Mutex
	leading string
	starts  map[string][]time.Time
	stops   map[string][]time.Time
}

func newTimeline(t *testing.T) *timeline {
	return &timeline{t: t, starts: map[string][]time.Time{}, stops: map[string][]time.Time{}}
}

// lead is a leader loop that runs until its context ends.
func (tl *timeline) lead(name string) func(context.Context) error {
	return func(ctx context.Context) error {
		tl.mu.Lock()
		if tl.leading != "" {
			tl.t.Errorf("%s started leading while %s still leads", name, tl.leading)
		}
		tl.leading = name
		tl.starts[name] = append(tl.starts[name], time.Now())
		tl.mu.Unlock()
		<-ctx.Done()
		tl.mu.Lock()
		tl.leading = ""
		tl.stops[name] = append(tl.stops[name], time.Now())
		tl.mu.Unlock()
		return nil
	}
}

func (tl *timeline) current() string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return tl.leading
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type replica struct {
	name   string
	e      *Elector
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

func startReplicas(t *testing.T, sts []*store.Store, tl *timeline) []*replica {
	t.Helper()
	var rs []*replica
	for i, s := range sts {
		name := fmt.Sprintf("cp-%d", i)
		reg := prometheus.NewRegistry()
		e, err := New(DefaultConfig(), Options{Client: s.Client(), Key: s.Prefix() + "leader", Self: Identity{Name: name, URL: "http://" + name},
			Registerer: reg, Log: testLogger(t).With("replica", name)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		r := &replica{name: name, e: e, reg: reg, cancel: cancel, done: make(chan error, 1)}
		go func() { r.done <- e.Run(ctx, tl.lead(name)) }()
		t.Cleanup(func() { cancel(); <-r.done })
		rs = append(rs, r)
	}
	return rs
}

func TestOneLeaderAndFastHandOverOnResign(t *testing.T) {
	sts := cluster(t)
	tl := newTimeline(t)
	rs := startReplicas(t, sts, tl)
	waitFor(t, 10*time.Second, "a leader", func() bool { return tl.current() != "" })
	first := tl.current()
	var leader *replica
	for _, r := range rs {
		if r.name == first {
			leader = r
		}
		want := 0.0
		if r.name == first {
			want = 1
		}
		if got := testutil.ToFloat64(r.e.gauge); got != want {
			t.Errorf("%s: opspilot_leader = %v, want %v", r.name, got, want)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, r := range rs {
		st, err := r.e.Status(ctx)
		if err != nil || st.Leader.Name != first || st.Leader.URL != "http://"+first || st.IsLeader != (r.name == first) {
			t.Errorf("%s: Status = %+v, %v; want leader %s", r.name, st, err, first)
		}
	}

	// A clean shutdown resigns: another replica leads within a moment.
	stopped := time.Now()
	leader.cancel()
	if err := <-leader.done; err != nil {
		t.Fatalf("Run after shutdown = %v", err)
	}
	leader.done <- nil // for the cleanup
	waitFor(t, 2*time.Second, "a new leader after resign", func() bool { c := tl.current(); return c != "" && c != first })
	took := time.Since(stopped)
	t.Logf("hand-over after resign: %s", took)
	if took > 500*time.Millisecond {
		t.Errorf("hand-over after resign took %s; want well under the %s TTL", took, DefaultTTL)
	}
	if got := testutil.ToFloat64(leader.e.gauge); got != 0 {
		t.Errorf("resigned replica: opspilot_leader = %v", got)
	}
}

func TestLostLeaseStopsLoopsBeforeTakeover(t *testing.T) {
	sts := cluster(t)
	tl := newTimeline(t)
	rs := startReplicas(t, sts, tl)
	waitFor(t, 10*time.Second, "a leader", func() bool { return tl.current() != "" })
	first := tl.current()
	var idx int
	for i, r := range rs {
		if r.name == first {
			idx = i
		}
	}
	// The leader's etcd member and client go away under it (its process
	// is cut off): it must stop its loops, and another replica takes
	// over only after that.
	lost := time.Now()
	_ = sts[idx].Close()
	waitFor(t, 10*time.Second, "a new leader", func() bool { c := tl.current(); return c != "" && c != first })
	t.Logf("hand-over after the leader's etcd went away: %s", time.Since(lost))
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if len(tl.stops[first]) == 0 {
		t.Fatalf("the old leader's loops never stopped")
	}
	for name, starts := range tl.starts {
		if name != first && len(starts) > 0 && starts[0].Before(tl.stops[first][0]) {
			t.Errorf("%s started at %s, before the old leader stopped at %s", name, starts[0], tl.stops[first][0])
		}
	}
}

func TestSoloAlwaysLeads(t *testing.T) {
	e, err := New(DefaultConfig(), Options{Self: Identity{Name: "only"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- e.Run(ctx, func(ctx context.Context) error { close(ran); <-ctx.Done(); return nil })
	}()
	<-ran
	st, err := e.Status(ctx)
	if err != nil || !st.IsLeader || st.Leader.Name != "only" || st.Election {
		t.Errorf("Status = %+v, %v", st, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if e.IsLeader() {
		t.Error("still leader after Run returned")
	}
	// A failing loop ends Run with its error.
	err = e.Run(context.Background(), func(context.Context) error { return errors.New("boom") })
	var le *LeadError
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "boom") {
		t.Errorf("Run with a failing loop = %v", err)
	}
}

func TestGuard(t *testing.T) {
	safe := 1500 * time.Millisecond
	t.Run("renewed", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ch := make(chan *clientv3.LeaseKeepAliveResponse)
			ctx, cancel := context.WithCancel(context.Background())
			out := make(chan string, 1)
			go func() { out <- guard(ctx, ch, time.Now(), safe) }()
			// Renewals every TTL/3 keep leadership for as long as they come.
			for range 10 {
				time.Sleep(667 * time.Millisecond)
				ch <- &clientv3.LeaseKeepAliveResponse{}
			}
			cancel()
			if r := <-out; r != "" {
				t.Errorf("guard = %q with regular renewals", r)
			}
		})
	})
	t.Run("renewals stop", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ch := make(chan *clientv3.LeaseKeepAliveResponse)
			start := time.Now()
			out := make(chan string, 1)
			go func() { out <- guard(context.Background(), ch, start, safe) }()
			time.Sleep(time.Second)
			ch <- &clientv3.LeaseKeepAliveResponse{}
			r := <-out
			if took := time.Since(start); took != time.Second+safe {
				t.Errorf("lost after %s, want %s (last renewal + safe)", took, time.Second+safe)
			}
			if !strings.Contains(r, "no lease renewal") {
				t.Errorf("reason = %q", r)
			}
		})
	})
	t.Run("keep-alive ends", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ch := make(chan *clientv3.LeaseKeepAliveResponse)
			close(ch)
			start := time.Now()
			if r := guard(context.Background(), ch, start, safe); !strings.Contains(r, "keep-alive ended") || time.Since(start) != 0 {
				t.Errorf("guard = %q after %s", r, time.Since(start))
			}
		})
	})
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Election: "maybe", TTL: 2 * time.Second}, "election"},
		{Config{Election: "on", TTL: 500 * time.Millisecond}, "ttl"},
		{Config{Election: "on", TTL: 1500 * time.Millisecond}, "ttl"},
	} {
		ps := tc.cfg.Validate()
		if len(ps) != 1 || ps[0].Field != tc.want {
			t.Errorf("Validate(%+v) = %v, want a problem with %s", tc.cfg, ps, tc.want)
		}
	}
	if ps := DefaultConfig().Validate(); len(ps) != 0 {
		t.Errorf("defaults: %v", ps)
	}
}
