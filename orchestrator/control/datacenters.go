package control

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"opspilot/config"
	"opspilot/orchestrator/model"
	"opspilot/orchestrator/scheduler"
	"opspilot/orchestrator/store"
)

// DatacenterConfig is `orchestrator.datacenters`: when a datacenter counts
// as lost, and how its services come back.
type DatacenterConfig struct {
	// LostFraction: a datacenter is lost when at least this fraction of
	// its nodes sent no heartbeat for node_timeout (degraded when some
	// did, fewer than this). Its services then fail over.
	LostFraction float64 `yaml:"lost_fraction"`
	// Failback is "auto" (a datacenter failed over because it was lost
	// returns to service once healthy for failback_delay) or "manual"
	// (only `opspilot failback DC` returns it). A failover made on purpose
	// with `opspilot failover` always waits for `opspilot failback`.
	Failback string `yaml:"failback"`
	// FailbackDelay is how long a returned datacenter must stay healthy
	// before automatic failback starts.
	FailbackDelay time.Duration `yaml:"failback_delay"`
	// FailbackStep is how many instances of a service move back at a
	// time; the next move waits until they are ready and the surplus
	// elsewhere is stopped.
	FailbackStep int `yaml:"failback_step"`
	// DegradedErrorRatio marks a datacenter degraded while more than this
	// share of the requests its instances answer through the gateways are
	// 5xx (over the last 30s, checked every 5s); 0 turns the check off.
	DegradedErrorRatio float64 `yaml:"degraded_error_ratio"`
}

// Failback modes.
const (
	FailbackAuto   = "auto"
	FailbackManual = "manual"
)

// DefaultDatacenterConfig returns the documented defaults.
func DefaultDatacenterConfig() DatacenterConfig {
	return DatacenterConfig{LostFraction: 0.8, Failback: FailbackAuto, FailbackDelay: 10 * time.Second, FailbackStep: 1, DegradedErrorRatio: 0.05}
}

// Validate implements config.Validator.
func (c DatacenterConfig) Validate() []config.Problem {
	var ps []config.Problem
	if !(c.LostFraction > 0 && c.LostFraction <= 1) {
		ps = append(ps, config.Problem{Field: "lost_fraction", Msg: fmt.Sprintf("%v is not in (0, 1]; 0.8 (the default) loses a datacenter when 80%% of its nodes miss heartbeats", c.LostFraction)})
	}
	if c.Failback != FailbackAuto && c.Failback != FailbackManual {
		ps = append(ps, config.Problem{Field: "failback", Msg: fmt.Sprintf("unknown mode %q; use auto or manual", c.Failback)})
	}
	if c.FailbackDelay < 0 {
		ps = append(ps, config.Problem{Field: "failback_delay", Msg: "must not be negative"})
	}
	if c.DegradedErrorRatio < 0 || c.DegradedErrorRatio > 1 {
		ps = append(ps, config.Problem{Field: "degraded_error_ratio", Msg: fmt.Sprintf("%v is not in [0, 1]; 0 turns the check off", c.DegradedErrorRatio)})
	}
	if c.FailbackStep < 1 {
		ps = append(ps, config.Problem{Field: "failback_step", Msg: "must be at least 1"})
	}
	return ps
}

// dcState is what one reconcile pass knows about datacenters.
type dcState struct {
	// known lists every datacenter that has nodes, sorted.
	known []string
	// out holds the failed-over datacenters: no placements, instances
	// replaced elsewhere.
	out map[string]bool
	// placeable holds datacenters with at least one ready, schedulable
	// node.
	placeable map[string]bool
}

// weights returns the service's datacenter weights with failed-over
// datacenters' shares moved by its failover policy.
func (d dcState) weights(p model.Placement) map[string]int {
	return scheduler.EffectiveWeights(p, d.known, d.out)
}

// dcHealth judges a datacenter from its nodes: lost when at least
// fraction of them are lost.
func dcHealth(lost, total int, fraction float64) string {
	switch {
	case total == 0 || lost == 0:
		return model.DatacenterHealthy
	case float64(lost) >= math.Ceil(fraction*float64(total)-1e-9):
		return model.DatacenterLost
	default:
		return model.DatacenterDegraded
	}
}

// reconcileDatacenters updates each datacenter's health from its nodes,
// fails lost datacenters over, returns recovered ones to service after the
// failback delay, and returns what the rest of the pass needs.
func (c *Controller) reconcileDatacenters(ctx context.Context, w *world, now time.Time) dcState {
	total, lost := map[string]int{}, map[string]int{}
	d := dcState{out: map[string]bool{}, placeable: map[string]bool{}}
	for _, vn := range w.nodes {
		n := vn.Value
		total[n.Datacenter]++
		if n.Status.State == model.NodeLost {
			lost[n.Datacenter]++
		} else if !n.Unschedulable {
			d.placeable[n.Datacenter] = true
		}
	}
	d.known = slices.Sorted(maps.Keys(total))
	failing := probeFailures(w, now)
	cfg := c.cfg.Datacenters
	for _, dc := range d.known {
		vs, had := w.dcs[dc]
		st := vs.Value
		before := st
		st.Name = dc
		health := dcHealth(lost[dc], total[dc], cfg.LostFraction)
		reason := fmt.Sprintf("%d of %d nodes sent no heartbeat for %s", lost[dc], total[dc], c.cfg.NodeTimeout)
		if sig := c.signal(dc); health == model.DatacenterHealthy && sig != "" {
			health, reason = model.DatacenterDegraded, sig
		}
		if f := failing[dc]; health == model.DatacenterHealthy && f != "" {
			health, reason = model.DatacenterDegraded, f
		}
		if health != st.Health {
			st.Health, st.HealthSince, st.HealthReason = health, now, reason
		}
		switch {
		case health == model.DatacenterLost && !st.FailedOver:
			st.FailedOver, st.Manual = true, false
			st.FailoverAt, st.FailoverBy, st.FailoverWhy = now, whoController, "datacenter lost: "+st.HealthReason
		case st.FailedOver && !st.Manual && cfg.Failback == FailbackAuto && health == model.DatacenterHealthy && now.Sub(st.HealthSince) >= cfg.FailbackDelay:
			st.FailedOver, st.FailbackAt = false, now
		}
		if st != before || !had {
			ver, err := c.putDatacenter(ctx, dc, st, vs.Version, had)
			if err != nil {
				c.log.Warn("store datacenter status", "datacenter", dc, "err", err)
				st = before // decide again next pass
			} else {
				w.dcs[dc] = store.Versioned[model.DatacenterStatus]{Value: st, Version: ver}
				c.recordDatacenter(ctx, before, st, had)
			}
		}
		if st.FailedOver {
			d.out[dc] = true
		}
	}
	c.m.dcHealth.Reset()
	c.m.dcFailedOver.Reset()
	for _, dc := range d.known {
		st := w.dcs[dc].Value
		for _, h := range []string{model.DatacenterHealthy, model.DatacenterDegraded, model.DatacenterLost} {
			c.m.dcHealth.WithLabelValues(dc, h).Set(float64(boolInt(st.Health == h)))
		}
		c.m.dcFailedOver.WithLabelValues(dc).Set(float64(boolInt(st.FailedOver)))
	}
	return d
}

func (c *Controller) putDatacenter(ctx context.Context, dc string, st model.DatacenterStatus, version int64, exists bool) (int64, error) {
	if exists {
		return store.Update(ctx, c.st, store.KindDatacenter, dc, st, version)
	}
	return store.Create(ctx, c.st, store.KindDatacenter, dc, st)
}

// recordDatacenter turns a datacenter's transitions into events.
func (c *Controller) recordDatacenter(ctx context.Context, before, st model.DatacenterStatus, had bool) {
	if st.Health != before.Health && (had || st.Health != model.DatacenterHealthy) {
		ev := Event{Type: EventWarning, Kind: "datacenter", Object: st.Name, Who: whoController}
		switch st.Health {
		case model.DatacenterLost:
			ev.Reason, ev.Message = "DatacenterLost", fmt.Sprintf("datacenter %s is lost: %s", st.Name, st.HealthReason)
		case model.DatacenterDegraded:
			ev.Reason, ev.Message = "DatacenterDegraded", fmt.Sprintf("datacenter %s is degraded: %s", st.Name, st.HealthReason)
		default:
			ev.Type, ev.Reason, ev.Message = EventNormal, "DatacenterHealthy", fmt.Sprintf("datacenter %s is healthy again: every node sends heartbeats", st.Name)
		}
		c.events.Record(ctx, ev)
	}
	if st.FailedOver && !before.FailedOver {
		c.events.Record(ctx, Event{Type: EventWarning, Kind: "datacenter", Object: st.Name, Reason: "DatacenterFailedOver",
			Message: fmt.Sprintf("datacenter %s failed over: %s; its services' instances are rebuilt in the other datacenters", st.Name, st.FailoverWhy), Who: st.FailoverBy})
	}
	if !st.FailedOver && before.FailedOver {
		c.events.Record(ctx, Event{Kind: "datacenter", Object: st.Name, Reason: "DatacenterFailback",
			Message: fmt.Sprintf("datacenter %s is back in service after %s healthy; services move their share back %d instance(s) at a time", st.Name, c.cfg.Datacenters.FailbackDelay, c.cfg.Datacenters.FailbackStep), Who: whoController})
	}
}

// evacuate stops the service's instances in failed-over datacenters: the
// unready ones at once, the ready ones once the instances elsewhere are
// enough (make before break). It returns the instances outside them.
func (c *Controller) evacuate(ctx context.Context, svc *model.Service, insts []model.Instance, d dcState, now time.Time) []model.Instance {
	if len(d.out) == 0 {
		return insts
	}
	var rest, evac []model.Instance
	readyRest := 0
	for _, i := range insts {
		if i.Desired == model.DesiredRun && d.out[i.Datacenter] {
			evac = append(evac, i)
			continue
		}
		rest = append(rest, i)
		if i.Ready() {
			readyRest++
		}
	}
	for _, i := range evac {
		if !i.Ready() || readyRest >= svc.Replicas {
			c.stopAfter(ctx, i, now, drainDelay(svc), fmt.Sprintf("datacenter %s failed over", i.Datacenter))
		}
	}
	return rest
}

// failbackStep returns how many instances to add in which datacenter so
// the service moves toward its weighted split: only when every instance is
// ready, into the datacenter furthest below its share that can take one.
// The surplus this makes elsewhere is stopped by the scale-down that
// follows (victims picks the datacenter furthest above its share).
func failbackStep(cur []model.Instance, desired int, weights map[string]int, d dcState, step int) (string, int) {
	if countReady(cur) != len(cur) || len(cur) != desired {
		return "", 0
	}
	targets := scheduler.Targets(desired, weights, d.known)
	per := map[string]int{}
	for _, i := range cur {
		per[i.Datacenter]++
	}
	best, deficit := "", 0
	for _, dc := range slices.Sorted(maps.Keys(targets)) {
		if n := targets[dc] - per[dc]; n > deficit && d.placeable[dc] && !d.out[dc] {
			best, deficit = dc, n
		}
	}
	return best, min(deficit, step)
}

// movingBack reports whether an unready instance is still starting in a
// datacenter that is not above its share: a failback move in progress,
// which the scale-down must wait for rather than stop.
func movingBack(cur []model.Instance, desired int, weights map[string]int, d dcState, now time.Time, deadline time.Duration) bool {
	targets := scheduler.Targets(desired, weights, d.known)
	per := map[string]int{}
	for _, i := range cur {
		per[i.Datacenter]++
	}
	for _, i := range cur {
		if !i.Ready() && i.State != model.StateFailed && now.Sub(i.Created) < deadline && per[i.Datacenter] <= targets[i.Datacenter] {
			return true
		}
	}
	return false
}

// ErrDatacenterLost refuses a failback while the datacenter is still lost.
var ErrDatacenterLost = errors.New("datacenter is lost")

// Failover takes a datacenter out of service on purpose (planned
// maintenance, a cut-over): its services' instances are rebuilt in the
// other datacenters by their failover policies, and its own instances
// stop once the replacements are ready. It stays out until Failback.
func (c *Controller) Failover(ctx context.Context, dc, who, why string) (model.DatacenterStatus, error) {
	return c.mutateDatacenter(ctx, dc, func(st *model.DatacenterStatus, now time.Time) error {
		st.FailedOver, st.Manual = true, true
		st.FailoverAt, st.FailoverBy, st.FailoverWhy = now, who, firstNonEmpty(why, "failover requested by "+who)
		return nil
	}, func(st model.DatacenterStatus) Event {
		return Event{Type: EventWarning, Kind: "datacenter", Object: dc, Reason: "DatacenterFailedOver",
			Message: fmt.Sprintf("datacenter %s failed over on request; its services' instances are rebuilt in the other datacenters and its own stop once replaced", dc), Who: who, Why: why}
	})
}

// Failback returns a failed-over datacenter to service; services move
// their share back failback_step instances at a time. A lost datacenter
// cannot fail back (ErrDatacenterLost).
func (c *Controller) Failback(ctx context.Context, dc, who, why string) (model.DatacenterStatus, error) {
	return c.mutateDatacenter(ctx, dc, func(st *model.DatacenterStatus, now time.Time) error {
		if st.Health == model.DatacenterLost {
			return fmt.Errorf("%w: %s (%s); it can fail back once its nodes send heartbeats again", ErrDatacenterLost, dc, st.HealthReason)
		}
		st.FailedOver, st.Manual, st.FailbackAt = false, false, now
		return nil
	}, func(st model.DatacenterStatus) Event {
		return Event{Kind: "datacenter", Object: dc, Reason: "DatacenterFailback",
			Message: fmt.Sprintf("datacenter %s is back in service on request; services move their share back %d instance(s) at a time", dc, c.cfg.Datacenters.FailbackStep), Who: who, Why: why}
	})
}

// mutateDatacenter applies change to a datacenter's stored status (created
// when the datacenter has nodes but no status yet), retrying conflicts, and
// records the event when something changed.
func (c *Controller) mutateDatacenter(ctx context.Context, dc string, change func(*model.DatacenterStatus, time.Time) error, event func(model.DatacenterStatus) Event) (model.DatacenterStatus, error) {
	for attempt := 0; ; attempt++ {
		now := c.now()
		vs, err := store.Get[model.DatacenterStatus](ctx, c.st, store.KindDatacenter, dc)
		exists := err == nil
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return model.DatacenterStatus{}, err
		}
		if !exists {
			if ok, err := c.hasNodesIn(ctx, dc); err != nil {
				return model.DatacenterStatus{}, err
			} else if !ok {
				return model.DatacenterStatus{}, fmt.Errorf("datacenter %s has no nodes (see `opspilot get datacenters`): %w", dc, store.ErrNotFound)
			}
			vs.Value = model.DatacenterStatus{Name: dc, Health: model.DatacenterHealthy, HealthSince: now}
		}
		st := vs.Value
		if err := change(&st, now); err != nil {
			return vs.Value, err
		}
		if st == vs.Value {
			return st, nil
		}
		if _, err = c.putDatacenter(ctx, dc, st, vs.Version, exists); err == nil {
			c.events.Record(ctx, event(st))
			c.Poke()
			return st, nil
		}
		if !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrExists) || attempt > 5 {
			return vs.Value, err
		}
	}
}

func (c *Controller) hasNodesIn(ctx context.Context, dc string) (bool, error) {
	nodes, _, err := store.List[model.Node](ctx, c.st, store.KindNode)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(nodes, func(n store.Versioned[model.Node]) bool { return n.Value.Datacenter == dc }), nil
}

// SetDatacenterSignals reports datacenters that other evidence finds
// unwell (the error ratio of the requests they answer, from the TSDB):
// reason per datacenter, replacing the previous report. A healthy
// datacenter with a signal is degraded; a signal never fails a datacenter
// over, heartbeats decide that.
func (c *Controller) SetDatacenterSignals(signals map[string]string) {
	c.sigMu.Lock()
	c.signals = maps.Clone(signals)
	c.sigMu.Unlock()
	c.Poke()
}

func (c *Controller) signal(dc string) string {
	c.sigMu.Lock()
	defer c.sigMu.Unlock()
	return c.signals[dc]
}

// probeSettle is how long an instance may take to pass its readiness probe
// before its failures count against its datacenter.
const probeSettle = 30 * time.Second

// probeFailures finds datacenters where at least half of the established
// instances (desired to run, placed over probeSettle ago, on nodes still
// sending heartbeats), and at least two, fail their readiness probes: the
// nodes answer, the services on them do not.
func probeFailures(w *world, now time.Time) map[string]string {
	total, unready := map[string]int{}, map[string]int{}
	for _, vi := range w.instances {
		i := vi.Value
		n, ok := w.nodes[i.Node]
		if i.Desired != model.DesiredRun || !ok || n.Value.Status.State == model.NodeLost || now.Sub(i.Created) < probeSettle {
			continue
		}
		total[i.Datacenter]++
		if !i.Ready() {
			unready[i.Datacenter]++
		}
	}
	out := map[string]string{}
	for dc, n := range unready {
		if n >= 2 && 2*n >= total[dc] {
			out[dc] = fmt.Sprintf("%d of its %d established instances fail their readiness probes", n, total[dc])
		}
	}
	return out
}
