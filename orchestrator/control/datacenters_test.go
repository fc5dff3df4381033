package control

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"opspilot/orchestrator/model"
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
