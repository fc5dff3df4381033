package store

import (
	"context"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// EventType says what happened to an object.
type EventType int

const (
	// EventPut: the object was created or updated.
	EventPut EventType = iota + 1
	// EventDelete: the object was deleted; Value is empty.
	EventDelete
	// EventReset: the watch broke (history compacted past the resume revision,
	// or etcd refused the watch). Err says why; the channel closes after
	// it. List again and Watch from the new revision.
	EventReset
)

func (t EventType) String() string {
	switch t {
	case EventPut:
		return "put"
	case EventDelete:
		return "delete"
	case EventReset:
		return "reset"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// Event is one change to an object of the watched kind. Value is the
// object's JSON; decode it with json.Unmarshal into the model type.
type Event struct {
	Type    EventType
	Name    string
	Value   []byte
	Version int64 // ModRevision of the change (the deletion's revision for EventDelete)
	Err     error // set for EventReset only
}

// Watch streams changes to objects of kind made after fromRevision (the
// revision List returned), in etcd's order, so nothing between List and
// Watch is missed. fromRevision 0 watches from now. The channel closes when
// ctx ends or after an EventReset, or when the store closes.
func Watch(ctx context.Context, s *Store, kind string, fromRevision int64) <-chan Event {
	out := make(chan Event, 64)
	if err := checkKind(kind); err != nil {
		out <- Event{Type: EventReset, Err: err}
		close(out)
		return out
	}
	prefix := s.kindPrefix(kind)
	opts := []clientv3.OpOption{clientv3.WithPrefix()}
	if fromRevision > 0 {
		opts = append(opts, clientv3.WithRev(fromRevision+1))
	}
	// WithRequireLeader: a member cut off from its cluster ends the watch
	// instead of silently delivering nothing.
	wch := s.client.Watch(clientv3.WithRequireLeader(ctx), prefix, opts...)
	go func() {
		defer close(out)
		send := func(ev Event) bool {
			select {
			case out <- ev:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for resp := range wch {
			if err := resp.Err(); err != nil {
				if ctx.Err() == nil {
					if resp.CompactRevision > 0 {
						err = fmt.Errorf("watch %s from revision %d: history compacted up to %d; list again: %w", kind, fromRevision, resp.CompactRevision, err)
					} else {
						err = fmt.Errorf("watch %s: %w", kind, err)
					}
					send(Event{Type: EventReset, Err: err})
				}
				return
			}
			for _, e := range resp.Events {
				ev := Event{Name: strings.TrimPrefix(string(e.Kv.Key), prefix), Version: e.Kv.ModRevision}
				if e.Type == clientv3.EventTypeDelete {
					ev.Type = EventDelete
				} else {
					ev.Type = EventPut
					ev.Value = e.Kv.Value
				}
				if !send(ev) {
					return
				}
			}
		}
	}()
	return out
}
