package control

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"sync"
	"time"

	"opspilot/orchestrator/store"
)

// KindHeartbeat holds, per control-plane replica, the latest heartbeats
// its agents sent it, so that the leader's node tracker sees the nodes
// whose agents talk to another replica.
const KindHeartbeat = "heartbeats"

// heartbeatBatch is one replica's heartbeats since its last batch.
type heartbeatBatch struct {
	Replica string               `json:"replica"`
	Beats   map[string]time.Time `json:"beats"`
}

// heartbeatRelay collects the heartbeats this replica received.
type heartbeatRelay struct {
	mu      sync.Mutex
	pending map[string]time.Time
}

func (r *heartbeatRelay) add(node string, at time.Time) {
	r.mu.Lock()
	r.pending[node] = at
	r.mu.Unlock()
}

func (r *heartbeatRelay) take() map[string]time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.pending) == 0 {
		return nil
	}
	out := r.pending
	r.pending = map[string]time.Time{}
	return out
}

// beat records a heartbeat received here (and relays it when a relay
// runs). It reports whether the node was lost until now.
func (c *Controller) beat(node string, now time.Time) bool {
	wasLost := c.nodes.beat(node, now)
	if r := c.relay.Load(); r != nil {
		r.add(node, now)
	}
	return wasLost
}

// beatAt records a heartbeat another replica received at at; it never
// moves a node's last heartbeat back.
func (t *nodeTracker) beatAt(node string, at time.Time) (wasLost bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if at.After(t.lastSeen[node]) {
		t.lastSeen[node] = at
	}
	return t.lost[node]
}

// SharedView hands the in-memory view of instances and nodes (agents'
// assignments, endpoints) to the returned function, which keeps it
// current until its context ends. A control-plane replica runs it whether
// or not it leads; Run, the leader's loop, then leaves the view to it.
func (c *Controller) SharedView() func(context.Context) error {
	c.viewShared.Store(true)
	return func(ctx context.Context) error { return c.view.run(ctx, c.st, c.Poke) }
}

// RunHeartbeatRelay shares heartbeats between control-plane replicas
// until ctx ends: every interval it writes the heartbeats this replica
// received since the last write to one etcd key of its own (a write only
// when there were any, so its cost does not grow with the nodes), and it
// feeds the other replicas' heartbeats into this replica's node tracker.
// Every replica's tracker is thus current, and a new leader judges nodes
// on their real heartbeats at once. Timestamps are the receiving
// replica's clock, capped at ours: clocks must agree to well within the
// node timeout.
func (c *Controller) RunHeartbeatRelay(ctx context.Context, replica string, interval time.Duration) error {
	if interval <= 0 {
		return fmt.Errorf("heartbeat relay: interval %s must be positive", interval)
	}
	r := &heartbeatRelay{pending: map[string]time.Time{}}
	c.relay.Store(r)
	defer c.relay.CompareAndSwap(r, nil)
	key := c.st.Prefix() + KindHeartbeat + "/" + replica
	go func() {
		for ctx.Err() == nil {
			for ev := range store.Watch(ctx, c.st, KindHeartbeat, 0) {
				if ev.Type != store.EventPut || ev.Name == replica {
					continue
				}
				var b heartbeatBatch
				if json.Unmarshal(ev.Value, &b) != nil {
					continue
				}
				now := c.now()
				back := false
				for node, at := range b.Beats {
					if at.After(now) {
						at = now
					}
					if c.nodes.beatAt(node, at) {
						back = true
					}
				}
				if back {
					c.Poke()
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	t := time.NewTicker(interval)
	defer t.Stop()
	var unsent map[string]time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		beats := r.take()
		if unsent != nil {
			// A failed write's beats go with the next one, unless newer.
			for n, at := range unsent {
				if _, ok := beats[n]; !ok {
					if beats == nil {
						beats = map[string]time.Time{}
					}
					beats[n] = at
				}
			}
			unsent = nil
		}
		if len(beats) == 0 {
			continue
		}
		data, _ := json.Marshal(heartbeatBatch{Replica: replica, Beats: beats})
		wctx, cancel := context.WithTimeout(ctx, interval*4)
		_, err := c.st.Client().Put(wctx, key, string(data))
		cancel()
		if err != nil && ctx.Err() == nil {
			c.log.Debug("heartbeat relay: write failed; retrying with the next batch", "err", err)
			unsent = maps.Clone(beats)
		}
	}
}
