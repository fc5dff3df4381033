package gateway

import (
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"opspilot/orchestrator/model"
)

// Source is where a Gateway reads endpoints from: a Watcher (the server's
// long-poll API) or a StaticSource (tests, or a gateway without a server).
type Source interface {
	// Current returns the endpoint set in effect and a channel that is
	// closed when a newer set replaces it. The set is shared: callers must
	// not modify it. A nil set means none has been received yet.
	Current() (*model.EndpointSet, <-chan struct{})
}

// snapshot is one published set with the channel closed when it is
// replaced; publishing swaps the pointer, so readers never lock.
type snapshot struct {
	set     *model.EndpointSet
	changed chan struct{}
}

// publisher holds the current snapshot for Watcher and StaticSource.
type publisher struct {
	mu  sync.Mutex // serialises publish, so channels close in order
	cur atomic.Pointer[snapshot]
}

func (p *publisher) Current() (*model.EndpointSet, <-chan struct{}) {
	s := p.cur.Load()
	if s == nil {
		p.mu.Lock()
		s = p.cur.Load()
		if s == nil {
			s = &snapshot{changed: make(chan struct{})}
			p.cur.Store(s)
		}
		p.mu.Unlock()
	}
	return s.set, s.changed
}

// publish makes set current and wakes everyone waiting on the previous one.
func (p *publisher) publish(set *model.EndpointSet) {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.cur.Swap(&snapshot{set: set, changed: make(chan struct{})})
	if old != nil {
		close(old.changed)
	}
}

// StaticSource is a Source whose set changes only when Set is called.
type StaticSource struct {
	publisher
}

// NewStaticSource returns a source serving a copy of set.
func NewStaticSource(set model.EndpointSet) *StaticSource {
	s := &StaticSource{}
	s.publish(cloneSet(set))
	return s
}

// Set replaces the set with a copy of set. Its revision becomes one more
// than the current one unless set's is already greater, so a test can
// build sets without counting.
func (s *StaticSource) Set(set model.EndpointSet) {
	c := cloneSet(set)
	if cur, _ := s.Current(); cur != nil && c.Revision <= cur.Revision {
		c.Revision = cur.Revision + 1
	}
	s.publish(c)
}

// cloneSet copies the map and slices so callers may keep mutating theirs.
func cloneSet(set model.EndpointSet) *model.EndpointSet {
	c := &model.EndpointSet{Revision: set.Revision, Services: make(map[string][]model.Endpoint, len(set.Services))}
	for svc, eps := range set.Services {
		eps = slices.Clone(eps)
		for i := range eps {
			eps[i].Ports = maps.Clone(eps[i].Ports)
		}
		c.Services[svc] = eps
	}
	return c
}
