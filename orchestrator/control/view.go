package control

import (
	"context"
	"encoding/json"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"opspilot/orchestrator/model"
	"opspilot/orchestrator/store"
)

// view is an in-memory copy of the instances and nodes, kept current by
// etcd watches (an informer). It serves the read paths that must answer
// fast and long-poll: endpoints and agents' assignments. Decisions never
// use it: the reconciler reads etcd.
type view struct {
	mu        sync.Mutex
	instances map[string]model.Instance
	nodes     map[string]model.Node
	// changed is closed and replaced on every change.
	changed chan struct{}
	// endpoints is the current set; its Revision moves only when the set
	// does.
	endpoints    model.EndpointSet
	endpointsKey string
	synced       bool
}

func newView() *view {
	return &view{
		instances: map[string]model.Instance{}, nodes: map[string]model.Node{},
		changed:   make(chan struct{}),
		endpoints: model.EndpointSet{Services: map[string][]model.Endpoint{}},
	}
}

// run lists and watches until ctx ends, re-listing after a watch reset.
func (v *view) run(ctx context.Context, st *store.Store, onChange func()) error {
	for ctx.Err() == nil {
		if err := v.once(ctx, st, onChange); err != nil && ctx.Err() == nil {
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return nil
}

func (v *view) once(ctx context.Context, st *store.Store, onChange func()) error {
	insts, rev1, err := store.List[model.Instance](ctx, st, store.KindInstance)
	if err != nil {
		return err
	}
	nodes, rev2, err := store.List[model.Node](ctx, st, store.KindNode)
	if err != nil {
		return err
	}
	v.mu.Lock()
	v.instances = map[string]model.Instance{}
	for _, i := range insts {
		v.instances[i.Value.ID] = i.Value
	}
	v.nodes = map[string]model.Node{}
	for _, n := range nodes {
		v.nodes[n.Value.Name] = n.Value
	}
	v.synced = true
	v.publishLocked(max(rev1, rev2))
	v.mu.Unlock()
	onChange()

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ic := store.Watch(wctx, st, store.KindInstance, rev1)
	nc := store.Watch(wctx, st, store.KindNode, rev2)
	for {
		var ev store.Event
		var ok, isNode bool
		select {
		case ev, ok = <-ic:
		case ev, ok = <-nc:
			isNode = true
		}
		if !ok || ev.Type == store.EventReset {
			return ev.Err
		}
		v.mu.Lock()
		switch {
		case isNode && ev.Type == store.EventDelete:
			delete(v.nodes, ev.Name)
		case isNode:
			var n model.Node
			if json.Unmarshal(ev.Value, &n) == nil {
				v.nodes[ev.Name] = n
			}
		case ev.Type == store.EventDelete:
			delete(v.instances, ev.Name)
		default:
			var i model.Instance
			if json.Unmarshal(ev.Value, &i) == nil {
				v.instances[ev.Name] = i
			}
		}
		v.publishLocked(ev.Version)
		v.mu.Unlock()
		onChange()
	}
}

// publishLocked recomputes the endpoints and wakes waiters.
func (v *view) publishLocked(rev int64) {
	set := map[string][]model.Endpoint{}
	for _, i := range v.instances {
		if !i.Ready() {
			continue
		}
		n, ok := v.nodes[i.Node]
		if !ok || n.Status.State == model.NodeLost {
			continue
		}
		host := i.Address
		if host == "" {
			host = n.Address
		}
		ep := model.Endpoint{Instance: i.ID, Node: i.Node, Datacenter: i.Datacenter, Version: i.Version}
		if len(i.Ports) > 0 {
			ep.Ports = map[string]string{}
			for name, p := range i.Ports {
				ep.Ports[name] = hostPort(host, p)
			}
		}
		if i.Port > 0 {
			ep.Address = hostPort(host, i.Port)
		}
		set[i.Service] = append(set[i.Service], ep)
	}
	for _, eps := range set {
		slices.SortFunc(eps, func(a, b model.Endpoint) int {
			if a.Instance < b.Instance {
				return -1
			}
			if a.Instance > b.Instance {
				return 1
			}
			return 0
		})
	}
	data, _ := json.Marshal(set)
	if key := string(data); key != v.endpointsKey {
		v.endpointsKey = key
		v.endpoints = model.EndpointSet{Revision: max(rev, v.endpoints.Revision+1), Services: set}
	}
	close(v.changed)
	v.changed = make(chan struct{})
}

func hostPort(host string, port int) string {
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// endpointSet returns the current endpoints and a channel closed on the
// next change.
func (v *view) endpointSet() (model.EndpointSet, <-chan struct{}) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.endpoints, v.changed
}

// nodeInstances returns the instances on node, sorted by ID, and a
// channel closed on the next change.
func (v *view) nodeInstances(node string) ([]model.Instance, <-chan struct{}) {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []model.Instance
	for _, i := range v.instances {
		if i.Node == node {
			out = append(out, i)
		}
	}
	slices.SortFunc(out, func(a, b model.Instance) int {
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	return out, v.changed
}

func (v *view) instance(id string) (model.Instance, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	i, ok := v.instances[id]
	return i, ok
}

func (v *view) nodeByName(name string) (model.Node, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	n, ok := v.nodes[name]
	return n, ok
}

func (v *view) isSynced() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.synced
}
