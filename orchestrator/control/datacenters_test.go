package control

import (
	"context"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"opspilot/orchestrator/model"
	"opspilot/orchestrator/store"
)

func TestDatacenterHealth(t *testing.T) {
	for _, c := range []struct {
		lost, total int
		want        string
	}{
		{0, 4, model.DatacenterHealthy}, {1, 4, model.DatacenterDegraded}, {3, 4, model.DatacenterDegraded},
		{4, 4, model.DatacenterLost}, {4, 5, model.DatacenterLost}, {3, 5, model.DatacenterDegraded}, {1, 1, model.DatacenterLost},
		{0, 0, model.DatacenterHealthy},
	} {
		if got := dcHealth(c.lost, c.total, 0.8); got != c.want {
			t.Errorf("%d of %d lost: %s, want %s", c.lost, c.total, got, c.want)
		}
	}
}

// spread counts a service's instances desired to run per datacenter.
func (cl *cluster) spread(service string) map[string]int {
	out := map[string]int{}
	for _, i := range cl.instances(service) {
		if i.Desired == model.DesiredRun {
			out[i.Datacenter]++
		}
	}
	return out
}

func (cl *cluster) datacenter(name string) model.DatacenterStatus {
	cl.t.Helper()
	var ds []DatacenterView
	cl.do("GET", "/api/v1/datacenters", nil, &ds)
	for _, d := range ds {
		if d.Name == name {
			return d.Status
		}
	}
	cl.t.Fatalf("datacenter %s not listed", name)
	return model.DatacenterStatus{}
}

// watchTotals samples the service every 10 ms until stop and returns the
// largest number of instances desired to run and the smallest number ready.
func (cl *cluster) watchTotals(service string) (stop func() (maxRun, minReady int)) {
	var done atomic.Bool
	var wg sync.WaitGroup
	maxRun, minReady := 0, 1<<30
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !done.Load() {
			st := cl.service(service).Status
			maxRun = max(maxRun, st.Replicas)
			minReady = min(minReady, st.ReadyReplicas)
			time.Sleep(10 * time.Millisecond)
		}
	}()
	return func() (int, int) { done.Store(true); wg.Wait(); return maxRun, minReady }
}

func (cl *cluster) hasEvent(reason, object string) bool {
	var evs []Event
	cl.do("GET", "/api/v1/events?limit=500", nil, &evs)
	for _, e := range evs {
		if e.Reason == reason && e.Object == object {
			return true
		}
	}
	return false
}

// TestDatacenterLossFailsOverAndBack: both nodes of B stop sending
// heartbeats; B is lost, its share runs in A, and when B returns its stale
// instances are fenced and the service moves back to 2:2 one instance at a
// time, never above 4+1.
func TestDatacenterLossFailsOverAndBack(t *testing.T) {
	cfg := fastConfig()
	// A loaded machine can delay a heartbeat by a second; B's return must
	// not look like a new loss.
	cfg.NodeTimeout = 2 * time.Second
	cfg.Datacenters.FailbackDelay = time.Second
	cl := newCluster(t, cfg)
	defer cl.startAgent("a1", "A", t.TempDir(), &scripted{})()
	defer cl.startAgent("a2", "A", t.TempDir(), &scripted{})()
	b1, b2 := &scripted{}, &scripted{}
	dirB1, dirB2 := t.TempDir(), t.TempDir()
	stopB1, stopB2 := cl.startAgent("b1", "B", dirB1, b1), cl.startAgent("b2", "B", dirB2, b2)
	s := demoService(4)
	s.Placement.Datacenters = map[string]int{"A": 1, "B": 1}
	cl.do("PUT", "/api/v1/services/billing", s, nil)
	cl.waitFor(5*time.Second, "4 ready, 2 in each datacenter", func() bool {
		sp := cl.spread("billing")
		return cl.service("billing").Status.ReadyReplicas == 4 && sp["A"] == 2 && sp["B"] == 2
	})

	stopB1()
	stopB2()
	took := cl.waitFor(10*time.Second, "4 ready in A", func() bool {
		return cl.service("billing").Status.Datacenters["A"] == 4
	})
	t.Logf("datacenter B cut → 4 ready in A after %s (node timeout %s)", took, cfg.NodeTimeout)
	if took > cfg.NodeTimeout+2*time.Second {
		t.Errorf("capacity back after %s; want within node_timeout + 2s", took)
	}
	st := cl.datacenter("B")
	if st.Health != model.DatacenterLost || !st.FailedOver || st.Manual || st.FailoverBy != whoController {
		t.Errorf("B status %+v, want lost and failed over by the controller", st)
	}
	if !cl.hasEvent("DatacenterLost", "B") || !cl.hasEvent("DatacenterFailedOver", "B") {
		t.Error("no DatacenterLost / DatacenterFailedOver event")
	}
	if code := cl.do("POST", "/api/v1/datacenters/B/failback", nil, nil); code != 409 {
		t.Errorf("failback of a lost datacenter: %d, want 409", code)
	}

	// B returns: stale instances fenced, then failback 1 at a time.
	stopWatch := cl.watchTotals("billing")
	defer cl.startAgent("b1", "B", dirB1, b1)()
	defer cl.startAgent("b2", "B", dirB2, b2)()
	cl.waitFor(5*time.Second, "B's stale instances fenced", func() bool {
		return len(b1.ids())+len(b2.ids()) == 0
	})
	took = cl.waitFor(15*time.Second, "failback to 2:2", func() bool {
		sp := cl.spread("billing")
		st := cl.service("billing").Status
		return sp["A"] == 2 && sp["B"] == 2 && st.ReadyReplicas == 4 && st.Replicas == 4
	})
	maxRun, minReady := stopWatch()
	t.Logf("failback took %s after B's return (delay %s); at most %d instances, at least %d ready", took, cfg.Datacenters.FailbackDelay, maxRun, minReady)
	if maxRun > 5 {
		t.Errorf("up to %d instances during failback; want at most 4 + failback_step (no doubled capacity)", maxRun)
	}
	if minReady < 4 {
		t.Errorf("only %d ready during failback; it must add before it removes", minReady)
	}
	if st := cl.datacenter("B"); st.FailedOver || st.Health != model.DatacenterHealthy || st.FailbackAt.IsZero() {
		t.Errorf("B after failback: %+v", st)
	}
	if !cl.hasEvent("DatacenterFailback", "B") || !cl.hasEvent("DatacenterHealthy", "B") {
		t.Error("no DatacenterHealthy / DatacenterFailback event")
	}
	if got := len(b1.ids()) + len(b2.ids()); got != 2 {
		t.Errorf("B's nodes run %d instances, want 2", got)
	}
}

// TestPlannedFailover: `failover B` moves B's share to the service's
// disaster-recovery datacenter C before B's instances stop, stays until
// `failback B`, and who and why are recorded.
func TestPlannedFailoverToDisasterRecovery(t *testing.T) {
	cfg := fastConfig()
	cfg.Datacenters.FailbackDelay = 100 * time.Millisecond
	cl := newCluster(t, cfg)
	for _, n := range []struct{ name, dc string }{{"a1", "A"}, {"b1", "B"}, {"c1", "C"}} {
		defer cl.startAgent(n.name, n.dc, t.TempDir(), &scripted{})()
	}
	s := demoService(4)
	s.Placement.Datacenters = map[string]int{"A": 1, "B": 1, "C": 0}
	s.Placement.Failover = []string{"C"}
	cl.do("PUT", "/api/v1/services/billing", s, nil)
	cl.waitFor(5*time.Second, "2 in A and 2 in B", func() bool {
		sp := cl.spread("billing")
		return cl.service("billing").Status.ReadyReplicas == 4 && sp["A"] == 2 && sp["B"] == 2
	})
	if code := cl.do("POST", "/api/v1/datacenters/Z/failover", nil, nil); code != 404 {
		t.Errorf("failover of an unknown datacenter: %d, want 404", code)
	}

	stopWatch := cl.watchTotals("billing")
	if code := cl.do("POST", "/api/v1/datacenters/B/failover", nil, nil); code != 200 {
		t.Fatalf("failover B: %d", code)
	}
	cl.waitFor(5*time.Second, "B's share in C", func() bool {
		sp := cl.spread("billing")
		return sp["A"] == 2 && sp["B"] == 0 && sp["C"] == 2 && cl.service("billing").Status.ReadyReplicas == 4
	})
	if _, minReady := stopWatch(); minReady < 4 {
		t.Errorf("%d ready during a planned failover; replacements must be ready before B's instances stop", minReady)
	}
	st := cl.datacenter("B")
	if !st.FailedOver || !st.Manual || st.FailoverBy != "local" || st.FailoverWhy != "test says so" {
		t.Errorf("B status %+v, want failed over by hand with who and why", st)
	}
	time.Sleep(5 * cfg.Datacenters.FailbackDelay)
	if sp := cl.spread("billing"); sp["B"] != 0 || !cl.datacenter("B").FailedOver {
		t.Errorf("a planned failover was undone by itself: %v", sp)
	}

	if code := cl.do("POST", "/api/v1/datacenters/B/failback", nil, nil); code != 200 {
		t.Fatalf("failback B: %d", code)
	}
	cl.waitFor(10*time.Second, "back to 2 in A and 2 in B", func() bool {
		sp := cl.spread("billing")
		return sp["A"] == 2 && sp["B"] == 2 && sp["C"] == 0 && cl.service("billing").Status.ReadyReplicas == 4
	})
}

// scriptedAnalyzer answers Compare with what the test sets (named so: it
// stands in for the TSDB, whose analysis is tested in cmd/opspilot).
type scriptedAnalyzer struct {
	mu    sync.Mutex
	cmp   Comparison
	calls []string
}

func (s *scriptedAnalyzer) Compare(_ context.Context, service, newV, oldV string, _ time.Duration) (Comparison, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, service+" "+newV+" vs "+oldV)
	return s.cmp, nil
}

func (s *scriptedAnalyzer) set(c Comparison) { s.mu.Lock(); s.cmp = c; s.mu.Unlock() }

// grayConfig keeps nodes from being lost on a loaded machine: a lost
// datacenter would fail over in the middle of the release.
func grayConfig() Config {
	cfg := fastConfig()
	cfg.NodeTimeout = 3 * time.Second
	return cfg
}

// logEvents logs the events, to explain a failure.
func (cl *cluster) logEvents() {
	var evs []Event
	cl.do("GET", "/api/v1/events?limit=500", nil, &evs)
	for _, e := range evs {
		cl.t.Log(e.Reason, e.Message)
	}
}

func grayService() model.Service {
	s := demoService(4)
	s.Placement.Datacenters = map[string]int{"A": 1, "B": 1}
	s.Rollout.Steps = []model.RolloutStep{{Datacenter: "B", Percent: 50}, {Datacenter: "B", Percent: 100}}
	s.Rollout.Analysis = model.RolloutAnalysis{Window: 300 * time.Millisecond, MinRequests: 10}
	return s
}

// newVersionBy counts the service's instances desired to run on version
// v, per datacenter.
func (cl *cluster) newVersionBy(service, v string) map[string]int {
	out := map[string]int{}
	for _, i := range cl.instances(service) {
		if i.Desired == model.DesiredRun && i.Version == v {
			out[i.Datacenter]++
		}
	}
	return out
}

// startGrayBilling runs the controller with the scripted analyzer an, one
// agent in A and one in B, and grayService's billing with its 4 instances
// ready.
func startGrayBilling(t *testing.T, an *scriptedAnalyzer) (*cluster, model.Service) {
	t.Helper()
	cl := newCluster(t, grayConfig())
	cl.c.SetRolloutAnalyzer(an)
	for _, n := range []struct{ name, dc string }{{"a1", "A"}, {"b1", "B"}} {
		t.Cleanup(cl.startAgent(n.name, n.dc, t.TempDir(), &scripted{}))
	}
	s := grayService()
	cl.do("PUT", "/api/v1/services/billing", s, nil)
	cl.waitFor(5*time.Second, "4 ready", func() bool { return cl.service("billing").Status.ReadyReplicas == 4 })
	return cl, s
}

// TestGrayReleaseStepsThroughDatacenters: B 50%, held and judged, B 100%,
// judged, then A as a plain rolling update; A never runs the new version
// before B's steps pass.
func TestGrayReleaseStepsThroughDatacenters(t *testing.T) {
	an := &scriptedAnalyzer{cmp: Comparison{NewRequests: 50, OldRequests: 500, NewErrorRatio: 0.001, OldErrorRatio: 0.001, NewP95: 0.01, OldP95: 0.01}}
	cl, s := startGrayBilling(t, an)

	s.Env = map[string]string{"RELEASE": "2"}
	cl.do("PUT", "/api/v1/services/billing", s, nil)
	newV := cl.service("billing").Status.Version
	sawHalfB := false
	cl.waitFor(15*time.Second, "all 4 on the new version", func() bool {
		by := cl.newVersionBy("billing", newV)
		if by["A"] > 0 && by["B"] < 2 {
			t.Fatalf("A runs the new version before B's steps passed: %v", by)
		}
		if by["B"] == 1 && by["A"] == 0 {
			sawHalfB = true
		}
		st := cl.service("billing").Status
		return by["A"] == 2 && by["B"] == 2 && st.ReadyReplicas == 4 && st.Replicas == 4
	})
	if !sawHalfB {
		t.Error("never saw the 50% step (1 of B's 2 instances on the new version)")
	}
	an.mu.Lock()
	calls := len(an.calls)
	an.mu.Unlock()
	if calls != 2 {
		cl.logEvents()
		t.Errorf("analysis ran %d times, want once per step (2)", calls)
	}
	for _, reason := range []string{"GrayReleaseStarted", "GrayStepHeld", "GrayStepPassed"} {
		if !cl.hasEvent(reason, "billing") {
			t.Errorf("no %s event", reason)
		}
	}
}

// TestGrayReleaseFailedAnalysisRollsBack: the new version's error ratio
// is 5 points above the old one's at the first step, so the release rolls
// back and every instance ends on the old version; the rollout view shows
// the failed release's verdicts, not those of the old version's own gray
// release.
func TestGrayReleaseFailedAnalysisRollsBack(t *testing.T) {
	an := &scriptedAnalyzer{cmp: Comparison{NewRequests: 100, OldRequests: 1000, NewP95: 0.01, OldP95: 0.01}}
	cl, s := startGrayBilling(t, an)
	// The old version is itself gray-released (and passes).
	s.Env = map[string]string{"RELEASE": "good"}
	cl.do("PUT", "/api/v1/services/billing", s, nil)
	oldV := cl.service("billing").Status.Version
	cl.waitFor(15*time.Second, "the good release complete", func() bool {
		st := cl.service("billing").Status
		return st.Rollout == "complete" && st.Version == oldV
	})

	// Too little traffic first: the step is held, not judged.
	an.set(Comparison{NewRequests: 3, OldRequests: 100})
	s.Env = map[string]string{"RELEASE": "bad"}
	cl.do("PUT", "/api/v1/services/billing", s, nil)
	cl.waitFor(5*time.Second, "an inconclusive window", func() bool { return cl.hasEvent("GrayStepInconclusive", "billing") })
	an.set(Comparison{NewRequests: 100, OldRequests: 1000, NewErrorRatio: 0.06, OldErrorRatio: 0.01, NewP95: 0.01, OldP95: 0.01})
	defer func() {
		if t.Failed() {
			cl.logEvents()
		}
	}()
	cl.waitFor(10*time.Second, "rolled back to the old version everywhere", func() bool {
		st := cl.service("billing").Status
		by := cl.newVersionBy("billing", oldV)
		return st.Version == oldV && by["A"] == 2 && by["B"] == 2 && st.Replicas == 4 && st.ReadyReplicas == 4
	})
	var evs []Event
	cl.do("GET", "/api/v1/events?limit=500", nil, &evs)
	found := false
	for _, e := range evs {
		if e.Reason == "RolloutFailed" && strings.Contains(e.Message, "error ratio is 5.00 points above") {
			found = true
		}
	}
	if !found {
		t.Errorf("no RolloutFailed event naming the error ratio; events: %+v", evs)
	}
	var ro RolloutView
	cl.do("GET", "/api/v1/services/billing/rollout", nil, &ro)
	if !strings.HasPrefix(ro.Status.Rollout, "rolled back: gray release step 1/2") {
		t.Errorf("rollout view status %q, want rolled back with the failing step", ro.Status.Rollout)
	}
	if ro.Gray == nil || ro.Gray.Version == oldV || len(ro.Gray.Verdicts) == 0 || !strings.Contains(ro.Gray.Verdicts[len(ro.Gray.Verdicts)-1], ": fail — ") {
		t.Errorf("rollout view gray release %+v, want the failed release (not %s's) ending in its failing verdict", ro.Gray, oldV)
	}
	badV := ro.Gray.Version

	// The same version released again (fixed elsewhere, say): a new gray
	// release from its first step, not the failed attempt's verdicts; and
	// the release after it is gradual again, not "going back from a
	// failed release".
	an.set(Comparison{NewRequests: 100, OldRequests: 1000, NewP95: 0.01, OldP95: 0.01})
	cl.do("PUT", "/api/v1/services/billing", s, nil)
	cl.waitFor(15*time.Second, "the re-released version complete", func() bool {
		st := cl.service("billing").Status
		return st.Version == badV && st.Rollout == "complete" && st.ReadyReplicas == 4
	})
	cl.do("GET", "/api/v1/services/billing/rollout", nil, &ro)
	if ro.Gray == nil || ro.Gray.Version != badV || len(ro.Gray.Verdicts) != 2 || strings.Contains(strings.Join(ro.Gray.Verdicts, "\n"), "fail") {
		t.Errorf("the re-release's gray release %+v, want two fresh passing verdicts", ro.Gray)
	}
	if !cl.hasEvent("Rereleased", "billing") {
		t.Error("no Rereleased event")
	}
	s.Env = map[string]string{"RELEASE": "next"}
	cl.do("PUT", "/api/v1/services/billing", s, nil)
	nextV := cl.service("billing").Status.Version
	cl.waitFor(15*time.Second, "the next release complete", func() bool {
		st := cl.service("billing").Status
		return st.Version == nextV && st.Rollout == "complete"
	})
	cl.do("GET", "/api/v1/services/billing/rollout", nil, &ro)
	if ro.Gray == nil || ro.Gray.Version != nextV || len(ro.Gray.Verdicts) != 2 {
		t.Errorf("the release after the re-release was not gradual: %+v", ro.Gray)
	}
}

func TestJudge(t *testing.T) {
	a := model.RolloutAnalysis{}
	for _, c := range []struct {
		cmp  Comparison
		want string
	}{
		{Comparison{NewRequests: 5}, verdictHold},
		{Comparison{NewRequests: 100, NewErrorRatio: 0.015, OldErrorRatio: 0.01, NewP95: 0.1, OldP95: 0.1}, verdictPass},
		{Comparison{NewRequests: 100, NewErrorRatio: 0.03, OldErrorRatio: 0.01, NewP95: 0.1, OldP95: 0.1}, verdictFail},
		{Comparison{NewRequests: 100, NewP95: 0.2, OldP95: 0.1}, verdictFail},
		{Comparison{NewRequests: 100, NewP95: math.NaN(), OldP95: 0.1}, verdictPass},
	} {
		if got, why := judge(c.cmp, a); got != c.want {
			t.Errorf("%+v: %s (%s), want %s", c.cmp, got, why, c.want)
		}
	}
}

// TestDatacenterDegradedBySignal: a datacenter whose requests fail (the
// error-ratio signal) is degraded with that reason, not failed over, and
// healthy again when the signal clears.
func TestDatacenterDegradedBySignal(t *testing.T) {
	cl := newCluster(t, fastConfig())
	defer cl.startAgent("a1", "A", t.TempDir(), &scripted{})()
	defer cl.startAgent("b1", "B", t.TempDir(), &scripted{})()
	cl.waitFor(5*time.Second, "B listed healthy", func() bool { return cl.datacenter("B").Health == model.DatacenterHealthy })
	cl.c.SetDatacenterSignals(map[string]string{"B": "12.0% of the requests failed"})
	cl.waitFor(5*time.Second, "B degraded", func() bool { return cl.datacenter("B").Health == model.DatacenterDegraded })
	if st := cl.datacenter("B"); st.FailedOver || st.HealthReason != "12.0% of the requests failed" {
		t.Errorf("B %+v: want degraded with the signal's reason, not failed over", st)
	}
	if a := cl.datacenter("A"); a.Health != model.DatacenterHealthy {
		t.Errorf("A %+v, want healthy", a)
	}
	cl.c.SetDatacenterSignals(nil)
	cl.waitFor(5*time.Second, "B healthy again", func() bool { return cl.datacenter("B").Health == model.DatacenterHealthy })
	if !cl.hasEvent("DatacenterDegraded", "B") {
		t.Error("no DatacenterDegraded event")
	}
}

func TestProbeFailuresDegradeADatacenter(t *testing.T) {
	now := time.Now()
	old := now.Add(-time.Minute)
	w := &world{nodes: map[string]store.Versioned[model.Node]{
		"a1": {Value: model.Node{Name: "a1", Datacenter: "A", Status: model.NodeStatus{State: model.NodeReady}}},
		"b1": {Value: model.Node{Name: "b1", Datacenter: "B", Status: model.NodeStatus{State: model.NodeReady}}},
		"c1": {Value: model.Node{Name: "c1", Datacenter: "C", Status: model.NodeStatus{State: model.NodeLost}}},
	}}
	add := func(id, node, dc, state string, created time.Time) {
		w.instances = append(w.instances, store.Versioned[model.Instance]{Value: model.Instance{ID: id, Node: node, Datacenter: dc, Desired: model.DesiredRun, State: state, Created: created}})
	}
	// A: 2 of 3 established instances fail; a new one starting does not count.
	add("a-1", "a1", "A", model.StateRunning, old)
	add("a-2", "a1", "A", model.StateRunning, old)
	add("a-3", "a1", "A", model.StateReady, old)
	add("a-4", "a1", "A", model.StateStarting, now)
	// B: one failing of one is not enough evidence; C's node is lost
	// (heartbeats judge that, not probes).
	add("b-1", "b1", "B", model.StateRunning, old)
	add("c-1", "c1", "C", model.StateRunning, old)
	add("c-2", "c1", "C", model.StateRunning, old)
	got := probeFailures(w, now)
	if len(got) != 1 || got["A"] != "2 of its 3 established instances fail their readiness probes" {
		t.Errorf("probe failures %v, want A only: 2 of 3", got)
	}
}
