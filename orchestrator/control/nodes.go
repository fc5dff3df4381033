package control

import (
	"sync"
	"time"
)

// nodeTracker knows when each node's agent last sent a heartbeat. It lives
// in memory: after a control-plane restart every known node gets one full
// timeout from the start before it can be lost, so a restart never fails
// nodes over.
type nodeTracker struct {
	mu       sync.Mutex
	timeout  time.Duration
	started  time.Time
	lastSeen map[string]time.Time
	// lost is the last verdict per node, to report transitions.
	lost map[string]bool
}

func newNodeTracker(timeout time.Duration, now time.Time) *nodeTracker {
	return &nodeTracker{timeout: timeout, started: now, lastSeen: map[string]time.Time{}, lost: map[string]bool{}}
}

// beat records a heartbeat and reports whether the node was lost until
// now.
func (t *nodeTracker) beat(node string, now time.Time) (wasLost bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lastSeen[node] = now
	return t.lost[node]
}

// isLost reports whether node has missed heartbeats for the timeout.
func (t *nodeTracker) isLost(node string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.isLostLocked(node, now)
}

func (t *nodeTracker) isLostLocked(node string, now time.Time) bool {
	seen, ok := t.lastSeen[node]
	if !ok || seen.Before(t.started) {
		seen = t.started
	}
	return now.Sub(seen) > t.timeout
}

// changed reports whether any known node's verdict differs from the last
// one recorded with settle.
func (t *nodeTracker) changed(now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for node, was := range t.lost {
		if t.isLostLocked(node, now) != was {
			return true
		}
	}
	for node := range t.lastSeen {
		if _, known := t.lost[node]; !known {
			return true
		}
	}
	return false
}

// settle records the verdict for node and reports whether it changed.
func (t *nodeTracker) settle(node string, lost bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	was, known := t.lost[node]
	t.lost[node] = lost
	return !known || was != lost
}

// forget drops a deleted node.
func (t *nodeTracker) forget(node string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.lastSeen, node)
	delete(t.lost, node)
}
