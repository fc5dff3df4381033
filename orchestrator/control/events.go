package control

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"opspilot/orchestrator/store"
)

// KindEvent holds events, named by time so they list in order.
const KindEvent = "events"

// Event types.
const (
	EventNormal  = "Normal"
	EventWarning = "Warning"
)

// Event records one change or decision: what happened to which object,
// who did it and why.
type Event struct {
	Name   string    `json:"name"`
	Time   time.Time `json:"time"`
	Type   string    `json:"type"`
	Kind   string    `json:"kind"`
	Object string    `json:"object"`
	Reason string    `json:"reason"`
	// Message says what happened in a sentence.
	Message string `json:"message"`
	// Who is the API caller's token name, "controller" for the
	// reconciler's own decisions, or an agent's node name.
	Who string `json:"who"`
	// Why is the caller's stated reason (--reason), if any.
	Why string `json:"why,omitempty"`
}

// Events writes events to etcd under a lease, so they expire after TTL.
type Events struct {
	st  *store.Store
	log *slog.Logger
	ttl time.Duration
	seq atomic.Uint64

	mu         sync.Mutex
	lease      clientv3.LeaseID
	leaseUntil time.Time
}

func newEvents(st *store.Store, ttl time.Duration, log *slog.Logger) *Events {
	return &Events{st: st, ttl: ttl, log: log}
}

// leaseFor returns a lease that keeps keys at least ttl from now; one
// lease serves the events of a tenth of the TTL.
func (e *Events) leaseFor(ctx context.Context, now time.Time) (clientv3.LeaseID, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.lease != 0 && now.Before(e.leaseUntil) {
		return e.lease, nil
	}
	resp, err := e.st.Client().Grant(ctx, int64((e.ttl+e.ttl/10)/time.Second))
	if err != nil {
		return 0, err
	}
	e.lease, e.leaseUntil = resp.ID, now.Add(e.ttl/10)
	return e.lease, nil
}

// Record stores ev (Time and Name are filled in). Failures are logged,
// never returned: an event is a record of a decision already made.
func (e *Events) Record(ctx context.Context, ev Event) Event {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	if ev.Type == "" {
		ev.Type = EventNormal
	}
	ev.Name = fmt.Sprintf("%019d-%06d", ev.Time.UnixNano(), e.seq.Add(1)%1e6)
	e.log.Info("event", "type", ev.Type, "kind", ev.Kind, "object", ev.Object, "reason", ev.Reason, "message", ev.Message, "who", ev.Who, "why", ev.Why)
	data, err := json.Marshal(ev)
	if err == nil {
		var lease clientv3.LeaseID
		if lease, err = e.leaseFor(ctx, ev.Time); err == nil {
			_, err = e.st.Client().Put(ctx, e.st.Key(KindEvent, ev.Name), string(data), clientv3.WithLease(lease))
		}
	}
	if err != nil {
		e.log.Warn("could not store event", "reason", ev.Reason, "object", ev.Object, "err", err)
	}
	return ev
}
