package node

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"opspilot/orchestrator/agentproto"
	"opspilot/orchestrator/model"
)

// These tests run the agent against real loopback sockets, so they use
// real time: in a testing/synctest bubble a goroutine waiting on a socket
// is not durably blocked, so the fake clock would not move and no deadline
// would ever expire. Their bounds are several times what the agent needs
// (about one DialTimeout, JoinTimeout or heartbeat interval) and far below
// what it took without per-request deadlines: forever against a replica
// that holds the connection open. timing_test.go checks the exact timings
// with a fake clock over an in-memory network.

// silentReplica accepts TCP connections and never writes a byte, as a
// replica looks whose network is cut after the connection was made (or a
// hung process): no answer, no reset.
func silentReplica(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + ln.Addr().String()
}

// fakeReplica answers the agent protocol with one assignment whose hash
// is its own name; the long-poll waits as the server's does. Silence makes
// it hold every request from then on without answering.
type fakeReplica struct {
	name       string
	srv        *httptest.Server
	quit       chan struct{}
	silent     atomic.Bool
	joins      atomic.Int32
	heartbeats atomic.Int32
	// waiting counts long-polls held; given up records the ones the agent
	// gave up (their request context ended before the replica answered).
	waiting, givenUp atomic.Int32
}

func newFakeReplica(t *testing.T, name string) *fakeReplica {
	t.Helper()
	f := &fakeReplica{name: name, quit: make(chan struct{})}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		close(f.quit)
		f.srv.Close()
	})
	return f
}

func (f *fakeReplica) serve(w http.ResponseWriter, r *http.Request) {
	if f.silent.Load() {
		select {
		case <-r.Context().Done():
		case <-f.quit:
		}
		return
	}
	switch {
	case r.URL.Path == "/agent/v1/join":
		f.joins.Add(1)
		_ = json.NewEncoder(w).Encode(agentproto.JoinResponse{NodeToken: "tok", HeartbeatInterval: time.Second})
	case r.URL.Path == "/agent/v1/nodes/n1/heartbeat":
		f.heartbeats.Add(1)
		_ = json.NewEncoder(w).Encode(agentproto.HeartbeatResponse{})
	case r.URL.Path == "/agent/v1/nodes/n1/assignments":
		if r.URL.Query().Get("have") == f.name {
			f.waiting.Add(1)
			timeout, _ := time.ParseDuration(r.URL.Query().Get("timeout"))
			select {
			case <-r.Context().Done():
				f.givenUp.Add(1)
				return
			case <-f.quit:
				return
			case <-time.After(timeout):
			}
		}
		_ = json.NewEncoder(w).Encode(agentproto.Assignments{Hash: f.name,
			Assignments: []agentproto.Assignment{{Instance: model.Instance{ID: "billing-" + f.name}}}})
	default:
		http.NotFound(w, r)
	}
}

// syncRecorder is an Executor that records the assignments it was given.
type syncRecorder struct {
	mu   sync.Mutex
	last []string
}

func (s *syncRecorder) Sync(as []agentproto.Assignment) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last = nil
	for _, a := range as {
		s.last = append(s.last, a.Instance.ID)
	}
}

func (s *syncRecorder) Statuses() []agentproto.InstanceStatus { return nil }

func (s *syncRecorder) has(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.last) == 1 && s.last[0] == id
}

// within polls cond until it holds or d passed; it returns how long that took.
func within(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// runAgent runs a until the test ends and checks that Run then returns
// promptly and cleanly.
func runAgent(t *testing.T, a *Agent) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v after its context ended, want nil", err)
			}
		case <-time.After(2 * time.Second):
			t.Error("Run did not return within 2s of its context ending")
		}
	})
}

// saveNodeToken leaves a node token from an earlier join for server, so
// the agent starts with heartbeats and the long-poll instead of a join.
func saveNodeToken(t *testing.T, server string) string {
	t.Helper()
	dir := t.TempDir()
	data, _ := json.Marshal(savedToken{Server: server, Node: "n1", Token: "tok"})
	if err := os.WriteFile(filepath.Join(dir, "node-token.json"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A replica that accepts connections but never answers, listed first,
// costs one attempt: the join (or, with a saved node token, the first
// heartbeat) moves on to the replica that answers, and the long-poll gets
// its assignments there.
func TestAgentLeavesSilentReplica(t *testing.T) {
	for _, tc := range []struct {
		name       string
		savedToken bool
		// bound is what the first attempt may cost and then some: the
		// join's JoinTimeout (3s), a heartbeat's interval (1s).
		bound time.Duration
	}{
		{name: "join", bound: 8 * time.Second},
		{name: "heartbeat with a saved node token", savedToken: true, bound: 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			silent := silentReplica(t)
			live := newFakeReplica(t, "live")
			cfg := Config{Servers: []string{silent, live.srv.URL}, JoinToken: "join", Node: model.Node{Name: "n1", Datacenter: "A"}}
			if tc.savedToken {
				cfg.StateDir = saveNodeToken(t, silent)
			}
			exec := &syncRecorder{}
			a, err := New(cfg, exec)
			if err != nil {
				t.Fatal(err)
			}
			runAgent(t, a)
			took := within(t, tc.bound, "a heartbeat at the replica that answers", func() bool { return live.heartbeats.Load() > 0 })
			t.Logf("first heartbeat at the live replica after %s", took.Round(time.Millisecond))
			within(t, 2*time.Second, "the live replica's assignments synced", func() bool { return exec.has("billing-live") })
			if tc.savedToken && live.joins.Load() != 0 {
				t.Errorf("%d joins with a saved node token", live.joins.Load())
			}
		})
	}
}

// A long-poll held by a replica that then goes silent is given up and
// sent to the replica the heartbeats moved to, well before its
// PollTimeout (30s) runs out.
func TestLongPollFollowsHeartbeats(t *testing.T) {
	first, second := newFakeReplica(t, "first"), newFakeReplica(t, "second")
	exec := &syncRecorder{}
	a, err := New(Config{Servers: []string{first.srv.URL, second.srv.URL}, JoinToken: "join", Node: model.Node{Name: "n1", Datacenter: "A"}}, exec)
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	within(t, 5*time.Second, "the first replica's assignments synced", func() bool { return exec.has("billing-first") })
	within(t, 5*time.Second, "a long-poll held by the first replica", func() bool { return first.waiting.Load() > 0 })

	first.silent.Store(true)
	// A heartbeat is due within 1s; its request is given up 1s later and
	// the second replica answers; the long-poll follows at once.
	took := within(t, 5*time.Second, "the second replica's assignments synced", func() bool { return exec.has("billing-second") })
	t.Logf("silent replica → assignments from the other one after %s", took.Round(time.Millisecond))
	if first.givenUp.Load() == 0 {
		t.Error("the long-poll held by the silent replica was not given up")
	}
	if second.heartbeats.Load() == 0 {
		t.Error("no heartbeat reached the second replica")
	}
	if got := a.cfg.Servers[a.current.Load()]; got != second.srv.URL {
		t.Errorf("current replica %s, want %s", got, second.srv.URL)
	}
}

// Cancelling Run while every request hangs at a silent replica ends it at
// once, without waiting out a request's deadline.
func TestAgentStopsWhileReplicaSilent(t *testing.T) {
	silent := silentReplica(t)
	a, err := New(Config{Servers: []string{silent}, StateDir: saveNodeToken(t, silent), Node: model.Node{Name: "n1", Datacenter: "A"},
		HeartbeatInterval: time.Hour}, noExec{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	time.Sleep(300 * time.Millisecond) // the heartbeat and the long-poll are in flight
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	case <-time.After(500 * time.Millisecond):
		t.Fatal("Run did not return within 500ms of its context ending")
	}
}
