package control

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"opspilot/orchestrator/model"
	"opspilot/orchestrator/scheduler"
	"opspilot/orchestrator/store"
)

// world is one consistent-enough read of etcd for a reconcile pass.
type world struct {
	services  map[string]store.Versioned[model.Service]
	instances []store.Versioned[model.Instance]
	nodes     map[string]store.Versioned[model.Node]
	tenants   map[string]model.Tenant
	dcs       map[string]store.Versioned[model.DatacenterStatus]
}

func (c *Controller) read(ctx context.Context) (*world, error) {
	w := &world{services: map[string]store.Versioned[model.Service]{}, nodes: map[string]store.Versioned[model.Node]{}, tenants: map[string]model.Tenant{}, dcs: map[string]store.Versioned[model.DatacenterStatus]{}}
	svcs, _, err := store.List[model.Service](ctx, c.st, store.KindService)
	if err != nil {
		return nil, err
	}
	for _, s := range svcs {
		w.services[s.Value.Name] = s
	}
	nodes, _, err := store.List[model.Node](ctx, c.st, store.KindNode)
	if err != nil {
		return nil, err
	}
	for _, n := range nodes {
		w.nodes[n.Value.Name] = n
	}
	tenants, _, err := store.List[model.Tenant](ctx, c.st, store.KindTenant)
	if err != nil {
		return nil, err
	}
	for _, t := range tenants {
		w.tenants[t.Value.Name] = t.Value
	}
	dcs, _, err := store.List[model.DatacenterStatus](ctx, c.st, store.KindDatacenter)
	if err != nil {
		return nil, err
	}
	for _, d := range dcs {
		w.dcs[d.Value.Name] = d
	}
	// Instances last: anything placed after the services were read is
	// seen, so a pass never places twice.
	if w.instances, _, err = store.List[model.Instance](ctx, c.st, store.KindInstance); err != nil {
		return nil, err
	}
	return w, nil
}

// reconcile is one level-triggered pass over everything.
func (c *Controller) reconcile(ctx context.Context) error {
	now := c.now()
	w, err := c.read(ctx)
	if err != nil {
		return err
	}
	c.reconcileNodes(ctx, w, now)
	dcs := c.reconcileDatacenters(ctx, w, now)

	byService := map[string][]model.Instance{}
	for _, vi := range w.instances {
		i := vi.Value
		n, known := w.nodes[i.Node]
		switch {
		case !known || n.Value.Status.State == model.NodeLost:
			// The node is gone: forget the instance so it is rebuilt
			// elsewhere. If the node comes back, its agent no longer finds
			// the instance among its assignments and stops it (fencing).
			why := "its node " + i.Node + " is lost"
			if !known {
				why = "its node " + i.Node + " was removed"
			}
			if err := store.Delete(ctx, c.st, store.KindInstance, i.ID, vi.Version); err == nil {
				c.m.stopped.WithLabelValues("node_lost").Inc()
				if i.Desired == model.DesiredRun {
					c.events.Record(ctx, Event{Type: EventWarning, Kind: "instance", Object: i.ID, Reason: "InstanceLost",
						Message: fmt.Sprintf("instance %s of %s removed: %s; a replacement is placed elsewhere", i.ID, i.Service, why), Who: whoController})
				}
			}
			continue
		case i.Desired == model.DesiredStop && (i.State == model.StateStopped || i.State == model.StateFailed):
			// The agent confirmed the stop.
			if err := store.Delete(ctx, c.st, store.KindInstance, i.ID, vi.Version); err == nil {
				c.m.stopped.WithLabelValues("stopped").Inc()
			}
			continue
		case i.Desired == model.DesiredStop && !i.StopAt.IsZero() && now.Sub(i.StopAt) > stopConfirmTimeout:
			// The agent never confirmed (it lost the instance, or it hangs):
			// forget it. Should the agent still run it, the instance is no
			// longer among its assignments and it stops it then.
			if err := store.Delete(ctx, c.st, store.KindInstance, i.ID, vi.Version); err == nil {
				c.m.stopped.WithLabelValues("stop_unconfirmed").Inc()
				c.events.Record(ctx, Event{Type: EventWarning, Kind: "instance", Object: i.ID, Reason: "StopUnconfirmed",
					Message: fmt.Sprintf("node %s did not confirm the stop of %s within %s; the instance is forgotten", i.Node, i.ID, stopConfirmTimeout), Who: whoController})
			}
			continue
		}
		if _, ok := w.services[i.Service]; !ok && i.Desired == model.DesiredRun {
			c.stop(ctx, i, now, "service deleted")
			continue
		}
		byService[i.Service] = append(byService[i.Service], i)
	}

	var reqs []scheduler.Request
	var revs []Revision
	for _, name := range sortedKeys(w.services) {
		svc := w.services[name]
		req, rev, err := c.reconcileService(ctx, svc, byService[name], dcs, now)
		if err != nil {
			c.log.Warn("reconcile service", "service", name, "err", err)
			if msg := err.Error(); c.unschedulable["error:"+name] != msg {
				c.unschedulable["error:"+name] = msg
				c.events.Record(ctx, Event{Type: EventWarning, Kind: "service", Object: name, Reason: "ReconcileError", Message: msg, Who: whoController})
			}
			continue
		}
		delete(c.unschedulable, "error:"+name)
		if req.Count > 0 {
			reqs = append(reqs, req)
			revs = append(revs, rev)
		}
	}
	if len(reqs) > 0 {
		c.place(ctx, w, reqs, revs, now)
	}
	return nil
}

// reconcileNodes records nodes' transitions between ready and lost.
func (c *Controller) reconcileNodes(ctx context.Context, w *world, now time.Time) {
	counts := map[[2]string]int{}
	for _, name := range sortedKeys(w.nodes) {
		vn := w.nodes[name]
		n := vn.Value
		lost := c.nodes.isLost(name, now)
		state := model.NodeReady
		if lost {
			state = model.NodeLost
		}
		counts[[2]string{n.Datacenter, state}]++
		c.nodes.settle(name, lost)
		if n.Status.State == state {
			continue
		}
		n.Status.State, n.Status.Since = state, now
		ver, err := store.Update(ctx, c.st, store.KindNode, name, n, vn.Version)
		if err != nil {
			continue
		}
		w.nodes[name] = store.Versioned[model.Node]{Value: n, Version: ver}
		if lost {
			c.events.Record(ctx, Event{Type: EventWarning, Kind: "node", Object: name, Reason: "NodeLost",
				Message: fmt.Sprintf("node %s (datacenter %s) sent no heartbeat for %s; its instances are rebuilt elsewhere", name, n.Datacenter, c.cfg.NodeTimeout), Who: whoController})
		} else {
			c.events.Record(ctx, Event{Kind: "node", Object: name, Reason: "NodeReady", Message: fmt.Sprintf("node %s (datacenter %s) is ready", name, n.Datacenter), Who: whoController})
		}
	}
	c.m.nodesGauge.Reset()
	for k, n := range counts {
		c.m.nodesGauge.WithLabelValues(k[0], k[1]).Set(float64(n))
	}
}

// reconcileService decides one service: what to stop now and how many new
// instances to place (returned as a scheduler request).
func (c *Controller) reconcileService(ctx context.Context, vs store.Versioned[model.Service], insts []model.Instance, dcs dcState, now time.Time) (scheduler.Request, Revision, error) {
	svc := vs.Value
	rev, err := ensureRevision(ctx, c.st, &svc, "", now)
	if err != nil {
		return scheduler.Request{}, Revision{}, err
	}
	if rev.Failed != "" {
		// The rollback moved the spec off this version, so it is here
		// again because someone released it again: a new attempt, with
		// a fresh gray release, and no longer a failed release to go
		// back from.
		if rev, err = c.rerelease(ctx, rev); err != nil {
			return scheduler.Request{}, Revision{}, err
		}
	}
	// Failed-over datacenters: their share is placed by the service's
	// failover policy, and their instances leave once replaced.
	weights := dcs.weights(svc.Placement)
	svc.Placement.Datacenters = weights
	insts = c.evacuate(ctx, &svc, insts, dcs, now)
	var active, cur, old []model.Instance
	for _, i := range insts {
		if i.Desired != model.DesiredRun {
			continue
		}
		active = append(active, i)
		if i.Version == rev.Version {
			cur = append(cur, i)
		} else {
			old = append(old, i)
		}
	}
	desired := svc.Replicas
	surge, unavailable := svc.Rollout.MaxSurge, svc.Rollout.MaxUnavailable
	if surge == 0 && unavailable == 0 {
		surge = 1
	}
	req := scheduler.Request{Service: svc, Existing: active}
	deadline := svc.Rollout.ProgressDeadline
	if deadline == 0 {
		deadline = model.DefaultProgressDeadline
	}

	if len(old) == 0 {
		switch {
		case len(cur) < desired:
			req.Count = desired - len(cur)
		case len(cur) > desired:
			if movingBack(cur, desired, weights, dcs, now, deadline) {
				break // a failback move: stop the surplus once it is ready
			}
			for _, i := range victims(cur, len(cur)-desired, weights, desired) {
				c.stopAfter(ctx, i, now, drainDelay(&svc), fmt.Sprintf("scaled down to %d", desired))
			}
		default:
			if dc, n := failbackStep(cur, desired, weights, dcs, c.cfg.Datacenters.FailbackStep); n > 0 {
				req.Count = n
				req.Service.Placement.Datacenters = map[string]int{dc: 1}
			}
		}
		return req, rev, nil
	}

	// A rollout is in progress. Has the new version failed?
	for _, i := range cur {
		if i.State == model.StateReady || !i.ReadySince.IsZero() {
			continue
		}
		var why string
		switch {
		case i.State == model.StateFailed:
			why = fmt.Sprintf("instance %s failed: %s", i.ID, firstNonEmpty(i.Message, i.LastExit))
		case i.Restarts >= c.cfg.CrashLoopRestarts:
			why = fmt.Sprintf("instance %s restarted %d times without becoming ready (last exit: %s)", i.ID, i.Restarts, firstNonEmpty(i.LastExit, i.Message, "unknown"))
		case !i.Created.IsZero() && now.Sub(i.Created) > deadline:
			why = fmt.Sprintf("instance %s not ready after %s (progress deadline)", i.ID, deadline)
		}
		if why != "" {
			return scheduler.Request{}, rev, c.rollback(ctx, svc, rev, old, why, now)
		}
	}

	if len(svc.Rollout.Steps) > 0 {
		done, err := c.grayRollout(ctx, &svc, rev, cur, old, weights, dcs, &req, now)
		if err != nil || !done {
			return req, rev, err
		}
	}

	readyCur, readyOld := countReady(cur), countReady(old)
	maxTotal := desired + surge
	minReady := max(desired-unavailable, 0)
	// Stop old instances: the unready ones first (they serve nothing),
	// then ready ones while enough stay ready.
	slices.SortStableFunc(old, func(a, b model.Instance) int { return boolInt(a.Ready()) - boolInt(b.Ready()) })
	total := len(active)
	ready := readyCur + readyOld
	for _, i := range old {
		if i.Ready() {
			if ready-1 < minReady {
				break
			}
			ready--
		}
		c.stopAfter(ctx, i, now, drainDelay(&svc), fmt.Sprintf("replaced by version %s", rev.Version))
		total--
	}
	if n := min(desired-len(cur), maxTotal-total); n > 0 {
		req.Count = n
	}
	return req, rev, nil
}

// rollback returns the service to the version most of the old instances
// run, and records why.
func (c *Controller) rollback(ctx context.Context, svc model.Service, failed Revision, old []model.Instance, why string, now time.Time) error {
	counts := map[string]int{}
	for _, i := range old {
		counts[i.Version]++
	}
	var prev string
	for v, n := range counts {
		if prev == "" || n > counts[prev] || (n == counts[prev] && v > prev) {
			prev = v
		}
	}
	c.revMu.Lock()
	back, err := c.revs.get(ctx, svc.Name, prev)
	c.revMu.Unlock()
	if err != nil {
		return fmt.Errorf("roll back %s: %w", svc.Name, err)
	}
	if _, err := mutateService(ctx, c.st, svc.Name, func(s *model.Service) error {
		if got, _ := configFilesOrNil(ctx, c.st, s); Version(s, got) != failed.Version {
			return errStale
		}
		restoreRunSpec(s, back.Spec)
		return nil
	}); err != nil {
		if errors.Is(err, errStale) {
			return nil
		}
		return err
	}
	if got, err := store.Get[Revision](ctx, c.st, KindRevision, revisionKey(svc.Name, failed.Version)); err == nil {
		got.Value.Failed = why
		_, _ = store.Update(ctx, c.st, KindRevision, revisionKey(svc.Name, failed.Version), got.Value, got.Version)
	}
	c.m.rollbacks.Inc()
	c.events.Record(ctx, Event{Type: EventWarning, Kind: "service", Object: svc.Name, Reason: "RolloutFailed",
		Message: fmt.Sprintf("rollout of %s to version %s failed: %s; rolled back to version %s (revision %d)", svc.Name, failed.Version, why, back.Version, back.Number),
		Who:     whoController})
	c.Poke()
	return nil
}

var errStale = errors.New("service changed since the decision")

// stopConfirmTimeout is how long after its stop time an instance may wait
// for its node to confirm the stop (stop_grace is 10 s by default).
const stopConfirmTimeout = time.Minute

func configFilesOrNil(ctx context.Context, st *store.Store, s *model.Service) (map[string]string, error) {
	return configFiles(ctx, st, s)
}

// restoreRunSpec copies what instances run from a revision's spec into s,
// keeping s's replicas, placement and rollout settings.
func restoreRunSpec(s *model.Service, from model.Service) {
	s.Runtime, s.Command, s.Image, s.Env = from.Runtime, from.Command, from.Image, from.Env
	s.Requests, s.Limits, s.Ports = from.Requests, from.Limits, from.Ports
	s.Liveness, s.Readiness, s.StopGrace, s.Configs, s.Tenant = from.Liveness, from.Readiness, from.StopGrace, from.Configs, from.Tenant
}

// stop asks the instance's agent to stop it: it leaves the endpoints at
// once and is signalled after the drain delay.
func (c *Controller) stop(ctx context.Context, i model.Instance, now time.Time, why string) {
	c.stopAfter(ctx, i, now, model.DefaultDrainDelay, why)
}

// drainDelay is the service's drain delay or the default.
func drainDelay(s *model.Service) time.Duration {
	if s.DrainDelay > 0 {
		return s.DrainDelay
	}
	return model.DefaultDrainDelay
}

func (c *Controller) stopAfter(ctx context.Context, i model.Instance, now time.Time, drain time.Duration, why string) {
	if err := mutateInstance(ctx, c.st, i.ID, func(in *model.Instance) bool {
		if in.Desired == model.DesiredStop {
			return false
		}
		in.Desired = model.DesiredStop
		in.StopAt = now.Add(drain)
		return true
	}); err != nil && !errors.Is(err, store.ErrNotFound) {
		c.log.Warn("stop instance", "instance", i.ID, "err", err)
		return
	}
	c.m.stopped.WithLabelValues("stop").Inc()
	c.log.Debug("stopping instance", "instance", i.ID, "why", why)
}

// place runs the scheduler for all requests together (so tenants share
// short capacity fairly) and creates the placed instances.
func (c *Controller) place(ctx context.Context, w *world, reqs []scheduler.Request, revs []Revision, now time.Time) {
	cl := scheduler.Cluster{Tenants: w.tenants, Usage: map[string]model.Resources{}}
	alloc := map[string]model.Resources{}
	for _, vi := range w.instances {
		i := vi.Value
		alloc[i.Node] = alloc[i.Node].Add(i.Requests)
		if i.Tenant != "" {
			cl.Usage[i.Tenant] = cl.Usage[i.Tenant].Add(i.Requests)
		}
	}
	for _, name := range sortedKeys(w.nodes) {
		n := w.nodes[name].Value
		if n.Unschedulable || n.Status.State != model.NodeReady {
			continue
		}
		n.Allocated = alloc[name]
		cl.Nodes = append(cl.Nodes, n)
	}
	for k := range reqs {
		// The scheduler places the service's current version.
		reqs[k].Service.Requests = revs[k].Spec.Requests
	}
	results := scheduler.Schedule(cl, reqs)
	for k, res := range results {
		svc, rev := reqs[k].Service, revs[k]
		var created []string
		for _, p := range res.Placements {
			id := svc.Name + "-" + randomSuffix()
			inst := model.Instance{
				ID: id, Service: svc.Name, Tenant: svc.Tenant, Version: rev.Version,
				Node: p.Node, Datacenter: p.Datacenter, Requests: rev.Spec.Requests,
				Desired: model.DesiredRun, State: model.StatePending, Created: now,
			}
			if _, err := store.Create(ctx, c.st, store.KindInstance, id, inst); err != nil {
				c.log.Warn("create instance", "instance", id, "err", err)
				continue
			}
			created = append(created, id+"→"+p.Node)
		}
		c.m.created.Add(float64(len(created)))
		if len(created) > 0 {
			c.events.Record(ctx, Event{Kind: "service", Object: svc.Name, Reason: "Placed",
				Message: fmt.Sprintf("placed %d instance(s) of %s version %s: %s", len(created), svc.Name, rev.Version, summarize(created, 10)), Who: whoController})
		}
		msg := ""
		if res.Unplaced > 0 {
			msg = res.String()
		}
		if msg != c.unschedulable[svc.Name] {
			c.unschedulable[svc.Name] = msg
			if msg != "" {
				c.events.Record(ctx, Event{Type: EventWarning, Kind: "service", Object: svc.Name, Reason: "Unschedulable",
					Message: fmt.Sprintf("%d instance(s) of %s cannot be placed: %s", res.Unplaced, svc.Name, msg), Who: whoController})
			}
		}
	}
}

// victims picks n instances to stop: unready ones first, then from the
// datacenter furthest above its weighted share, then the node with the
// most instances of the service, then the newest.
func victims(insts []model.Instance, n int, weights map[string]int, desired int) []model.Instance {
	pool := slices.Clone(insts)
	var out []model.Instance
	for ; n > 0 && len(pool) > 0; n-- {
		perDC, perNode := map[string]int{}, map[string]int{}
		for _, i := range pool {
			perDC[i.Datacenter]++
			perNode[i.Node]++
		}
		excess := func(dc string) float64 {
			total := 0
			for _, w := range weights {
				total += w
			}
			if total == 0 || len(weights) == 0 {
				return float64(perDC[dc])
			}
			return float64(perDC[dc]) - float64(desired)*float64(weights[dc])/float64(total)
		}
		best := 0
		for k := 1; k < len(pool); k++ {
			a, b := pool[k], pool[best]
			if a.Ready() != b.Ready() {
				if !a.Ready() {
					best = k
				}
				continue
			}
			if ea, eb := excess(a.Datacenter), excess(b.Datacenter); ea != eb {
				if ea > eb {
					best = k
				}
				continue
			}
			if perNode[a.Node] != perNode[b.Node] {
				if perNode[a.Node] > perNode[b.Node] {
					best = k
				}
				continue
			}
			if a.Created.After(b.Created) || (a.Created.Equal(b.Created) && a.ID > b.ID) {
				best = k
			}
		}
		out = append(out, pool[best])
		pool = slices.Delete(pool, best, best+1)
	}
	return out
}

func countReady(is []model.Instance) int {
	n := 0
	for _, i := range is {
		if i.Ready() {
			n++
		}
	}
	return n
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

func summarize(items []string, max int) string {
	if len(items) <= max {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:max], ", ") + fmt.Sprintf(" and %d more", len(items)-max)
}

const suffixAlphabet = "bcdfghjklmnpqrstvwxz2456789"

// randomSuffix is 5 characters without vowels (as Kubernetes pod names).
func randomSuffix() string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	for k := range b {
		b[k] = suffixAlphabet[int(b[k])%len(suffixAlphabet)]
	}
	return string(b[:])
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
