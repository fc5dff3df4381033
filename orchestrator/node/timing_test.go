package node

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"opspilot/orchestrator/agentproto"
	"opspilot/orchestrator/model"
)

// memNet is an in-memory network for synctest bubbles, whose fake clock
// the loopback sockets of failover_test.go cannot use: a dial to a
// listening name gets a net.Pipe to its server, to a silent one a pipe
// whose far end reads everything and never writes, and to a dark one no
// connection at all until the dial gives up.
type memNet struct {
	mu        sync.Mutex
	listeners map[string]*memListener
	silent    map[string]bool
}

func (m *memNet) dial(ctx context.Context, _, addr string) (net.Conn, error) {
	m.mu.Lock()
	l, silent := m.listeners[addr], m.silent[addr]
	m.mu.Unlock()
	near, far := net.Pipe()
	switch {
	case l != nil:
		select {
		case l.conns <- far:
			return near, nil
		case <-l.done:
			return nil, net.ErrClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	case silent:
		go func() { _, _ = io.Copy(io.Discard, far) }() // ends when near closes
		return near, nil
	default: // dark: packets dropped
		<-ctx.Done()
		return nil, ctx.Err()
	}
}

// serve runs f's handler as addr on m until the test ends.
func (m *memNet) serve(t *testing.T, addr string, f *fakeReplica) {
	l := &memListener{conns: make(chan net.Conn), done: make(chan struct{})}
	m.mu.Lock()
	if m.listeners == nil {
		m.listeners = map[string]*memListener{}
	}
	m.listeners[addr] = l
	m.mu.Unlock()
	srv := &http.Server{Handler: http.HandlerFunc(f.serve)}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() {
		close(f.quit)
		_ = srv.Close()
	})
}

type memListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *memListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *memListener) Addr() net.Addr { return &net.TCPAddr{} }

// timedRecorder records when each assignment was synced, on the bubble's
// clock.
type timedRecorder struct {
	syncRecorder
	mu     sync.Mutex
	synced map[string]time.Time
}

func (r *timedRecorder) Sync(as []agentproto.Assignment) {
	r.syncRecorder.Sync(as)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.synced == nil {
		r.synced = map[string]time.Time{}
	}
	for _, a := range as {
		r.synced[a.Instance.ID] = time.Now()
	}
}

// With the clock faked, the cost of a replica that does not answer is
// exact: the first heartbeat (or join) reaches the next replica one
// deadline after it was sent — DialTimeout (1s) when the dial gets no
// answer, the heartbeat interval (1s) or JoinTimeout (3s) when the
// connection is made but nothing comes back — and the long-poll's
// assignments come from that replica at the same instant.
func TestAgentTimingsWithDeadReplica(t *testing.T) {
	for _, tc := range []struct {
		name string
		// first is how the first replica fails: "silent" (connects, never
		// answers), "dark" (never connects), or "goes silent" (answers,
		// then goes silent at 1.5s, while the long-poll is held there).
		first      string
		savedToken bool
		// want is when the second replica gets its first heartbeat and
		// the agent syncs its assignments.
		want time.Duration
	}{
		{name: "join, silent", first: "silent", want: 3 * time.Second},
		{name: "join, dark", first: "dark", want: time.Second},
		{name: "heartbeat, silent", first: "silent", savedToken: true, want: time.Second},
		{name: "heartbeat, dark", first: "dark", savedToken: true, want: time.Second},
		// Heartbeats at 0s, 1s, 2s: the one at 2s is given up at 3s.
		{name: "goes silent while holding the long-poll", first: "goes silent", want: 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := &memNet{silent: map[string]bool{}}
				second := &fakeReplica{name: "second", quit: make(chan struct{})}
				m.serve(t, "second:9440", second)
				var first *fakeReplica
				switch tc.first {
				case "silent":
					m.silent["first:9440"] = true
				case "goes silent":
					first = &fakeReplica{name: "first", quit: make(chan struct{})}
					m.serve(t, "first:9440", first)
				}
				cfg := Config{Servers: []string{"http://first:9440", "http://second:9440"}, JoinToken: "join",
					Node: model.Node{Name: "n1", Datacenter: "A"}, Client: &http.Client{Transport: &http.Transport{DialContext: m.dial}}}
				if tc.savedToken {
					cfg.StateDir = saveNodeToken(t, "http://first:9440")
				}
				exec := &timedRecorder{}
				a, err := New(cfg, exec)
				if err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan error, 1)
				go func() { done <- a.Run(ctx) }()
				var heardAt time.Duration
				if first != nil {
					time.Sleep(1500 * time.Millisecond)
					synctest.Wait()
					if !exec.has("billing-first") || first.waiting.Load() == 0 {
						t.Fatal("at 1.5s the first replica's assignments are not synced or its long-poll not held")
					}
					first.silent.Store(true)
				}
				for second.heartbeats.Load() == 0 {
					if time.Since(start) > time.Minute {
						t.Fatal("no heartbeat reached the second replica within a minute")
					}
					time.Sleep(time.Millisecond)
				}
				heardAt = time.Since(start)
				synctest.Wait()
				if heardAt < tc.want || heardAt > tc.want+time.Millisecond {
					t.Errorf("second replica's first heartbeat at %s, want %s", heardAt, tc.want)
				}
				exec.mu.Lock()
				synced, ok := exec.synced["billing-second"]
				exec.mu.Unlock()
				if !ok || synced.Sub(start) != tc.want {
					t.Errorf("second replica's assignments synced at %s (%v), want at %s", synced.Sub(start), ok, tc.want)
				}
				if first != nil && first.givenUp.Load() == 0 {
					t.Error("the long-poll held by the silent replica was not given up")
				}
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Run = %v", err)
				}
				cfg.Client.CloseIdleConnections()
				a.cfg.Client.CloseIdleConnections()
			})
		})
	}
}
