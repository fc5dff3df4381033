package alerting

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// EventLog keeps an alert's life for the incident timeline: the newest
// events in memory for the API, and every event as one JSON line in a
// file that the node agent's log pipeline ships to the log store (the
// file survives an outage of the store; the agent resumes where it
// stopped). The file is rotated to events.jsonl.1 at maxBytes.
type EventLog struct {
	path     string
	maxBytes int64
	keep     int

	mu   sync.Mutex
	f    *os.File
	size int64
	ring []Event
	next int
	full bool

	total *prometheus.CounterVec
	fails prometheus.Counter

	listeners []func(Event)
}

// Subscribe calls f with every event recorded from now on (the incident
// tracker). f runs inline and must not block.
func (l *EventLog) Subscribe(f func(Event)) {
	l.mu.Lock()
	l.listeners = append(l.listeners, f)
	l.mu.Unlock()
}

// OpenEventLog opens (or creates) the events file at path and reads its
// last keep events back into memory.
func OpenEventLog(path string, maxBytes int64, keep int, reg prometheus.Registerer) (*EventLog, error) {
	l := &EventLog{path: path, maxBytes: maxBytes, keep: keep, ring: make([]Event, keep),
		total: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "opspilot_alerting_events_total",
			Help: "Alert events recorded, by type (fired, notified, acknowledged, silenced, resolved, notify-failed)."}, []string{"type"}),
		fails: prometheus.NewCounter(prometheus.CounterOpts{Name: "opspilot_alerting_event_write_failures_total",
			Help: "Alert events that could not be appended to the events file (they stay in memory)."}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{l.total, l.fails} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("alerting: %w", err)
			}
		}
	}
	if f, err := os.Open(path); err == nil {
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var ev Event
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				l.push(ev)
			}
		}
		_ = f.Close()
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("alerting: events file: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("alerting: events file: %w", err)
	}
	l.f, l.size = f, st.Size()
	return l, nil
}

func (l *EventLog) push(ev Event) {
	l.ring[l.next] = ev
	l.next = (l.next + 1) % len(l.ring)
	if l.next == 0 {
		l.full = true
	}
}

// Path is the events file, for the log shipper.
func (l *EventLog) Path() string { return l.path }

// Record implements Recorder.
func (l *EventLog) Record(_ context.Context, ev Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	ev.Time = ev.Time.UTC()
	line, _ := json.Marshal(struct {
		Event
		Msg    string `json:"_msg"`
		Source string `json:"source"`
	}{ev, ev.Type + " " + ev.AlertName + ": " + ev.Message, "opspilot-alerting"})
	line = append(line, '\n')
	l.total.WithLabelValues(ev.Type).Inc()
	l.mu.Lock()
	l.push(ev)
	l.write(line)
	listeners := l.listeners
	l.mu.Unlock()
	// Outside the lock: a listener may read the log.
	for _, f := range listeners {
		f(ev)
	}
}

// write appends one line to the file (under mu), rotating it first when
// it would pass maxBytes.
func (l *EventLog) write(line []byte) {
	if l.f == nil {
		l.fails.Inc()
		return
	}
	if l.size+int64(len(line)) > l.maxBytes {
		l.rotate()
	}
	n, err := l.f.Write(line)
	l.size += int64(n)
	if err != nil {
		l.fails.Inc()
	}
}

func (l *EventLog) rotate() {
	_ = l.f.Close()
	_ = os.Rename(l.path, l.path+".1")
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		l.f = nil
		return
	}
	l.f, l.size = f, 0
}

// EventFilter selects events; zero fields match everything.
type EventFilter struct {
	Fingerprint, AlertName, Type string
	Since                        time.Time
	Limit                        int
}

// List returns the newest events matching f, oldest first.
func (l *EventLog) List(f EventFilter) []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var all []Event
	if l.full {
		all = append(all, l.ring[l.next:]...)
	}
	all = append(all, l.ring[:l.next]...)
	out := []Event{}
	for _, ev := range all {
		if (f.Fingerprint != "" && ev.Fingerprint != f.Fingerprint) || (f.AlertName != "" && ev.AlertName != f.AlertName) ||
			(f.Type != "" && ev.Type != f.Type) || ev.Time.Before(f.Since) {
			continue
		}
		out = append(out, ev)
	}
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[len(out)-f.Limit:]
	}
	return out
}

// Close closes the file.
func (l *EventLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

var _ io.Closer = (*EventLog)(nil)
