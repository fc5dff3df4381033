package control

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"opspilot/orchestrator/store"
)

// Two control-plane replicas on one etcd: a heartbeat received by the
// follower reaches the leader's node tracker through the relay, and an
// older relayed heartbeat never moves a node's last heartbeat back.
func TestHeartbeatRelayReachesTheLeader(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(ctx, store.Config{Embedded: true, DataDir: t.TempDir()}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	leader, err := New(st, DefaultConfig(), prometheus.NewRegistry(), log)
	if err != nil {
		t.Fatal(err)
	}
	follower, err := New(st, DefaultConfig(), prometheus.NewRegistry(), log)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}, 3)
	for _, f := range []func(context.Context) error{
		func(ctx context.Context) error { return leader.RunHeartbeatRelay(ctx, "cp-a", 50*time.Millisecond) },
		func(ctx context.Context) error { return follower.RunHeartbeatRelay(ctx, "cp-b", 50*time.Millisecond) },
		follower.SharedView(),
	} {
		go func() { _ = f(ctx); done <- struct{}{} }()
	}
	defer func() { cancel(); <-done; <-done; <-done }()

	seen := func(c *Controller, node string) time.Time {
		c.nodes.mu.Lock()
		defer c.nodes.mu.Unlock()
		return c.nodes.lastSeen[node]
	}
	deadline := time.Now().Add(5 * time.Second)
	var at time.Time
	for {
		at = time.Now()
		follower.beat("n1", at)
		time.Sleep(100 * time.Millisecond)
		if got := seen(leader, "n1"); got.Equal(at) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the leader's tracker has n1 at %v, want the follower's heartbeat at %v", seen(leader, "n1"), at)
		}
	}
	// The leader hears n1 itself later; a relayed older beat keeps that.
	own := at.Add(time.Second)
	leader.beat("n1", own)
	if leader.nodes.beatAt("n1", at); !seen(leader, "n1").Equal(own) {
		t.Errorf("a relayed older heartbeat moved n1 back to %v", seen(leader, "n1"))
	}
	if !follower.viewShared.Load() {
		t.Error("SharedView did not take the view over from Run")
	}
}
