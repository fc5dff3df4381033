package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"opspilot/internal/netns"
	"opspilot/orchestrator/model"
	"opspilot/test/testbin"
)

// TestHADatacenterCutKeepsControlPlaneAndFailover: datacenters A, B and C,
// each a control-plane replica (an etcd member) and a node agent on hosts
// of their own in network namespaces. Cutting the leader's datacenter
// leaves two replicas, a quorum: they elect a new leader, find the
// datacenter lost, and rebuild its share of billing in the other two.
// Every agent lists the leader's replica first, so the surviving agents
// are talking to the replica that goes dark (packets dropped, no reset)
// and must leave it within node_timeout, or their nodes are lost too.
func TestHADatacenterCutKeepsControlPlaneAndFailover(t *testing.T) {
	if err := netns.Available(); err != nil {
		t.Skipf("skipping: this test runs each replica and node in its own network namespace, which cannot be made here: %v", err)
	}
	n, err := netns.New(context.Background(), netns.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	})
	c := &haCluster{t: t, dir: t.TempDir()}
	dcs := []string{"A", "B", "C"}
	hosts := map[string][]*netns.Host{}
	var initial []string
	for _, dc := range dcs {
		h, err := n.AddHost(context.Background(), "cp-"+strings.ToLower(dc))
		if err != nil {
			t.Fatal(err)
		}
		hosts[dc] = append(hosts[dc], h)
		ip := h.Addr.String()
		initial = append(initial, h.Name+"=http://"+ip+":2380")
		c.replicas = append(c.replicas, &haReplica{name: h.Name, dir: filepath.Join(c.dir, h.Name), addr: ip + ":9440", base: "http://" + ip + ":9440"})
	}
	c.sharePKI()
	for i, r := range c.replicas {
		ip := strings.TrimSuffix(r.addr, ":9440")
		r.cfg = c.replicaConfig(r, "http://127.0.0.1:2379", "http://"+ip+":2380", initial, "analyzer: {enabled: false}\nalerting: {enabled: false}\n")
		argv := hosts[dcs[i]][0].Argv(opspilotBin(t), "server", "-c", r.cfg)
		r.p = testbin.Start(t, argv[0], argv[1:]...)
	}
	var wg sync.WaitGroup
	for _, r := range c.replicas {
		wg.Go(func() { c.waitReady(r, 60*time.Second) })
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	// The agents all talk to the leader's replica first: the one cut.
	var first string
	waitUntil(t, 10*time.Second, "a leader all replicas agree on", func() bool {
		first = c.agreedLeader(c.replicas)
		return first != ""
	})
	var servers []string
	for _, r := range c.replicas {
		if r.name == first {
			servers = append([]string{r.base}, servers...)
		} else {
			servers = append(servers, r.base)
		}
	}
	agents := map[string]*testbin.Process{}
	for _, dc := range dcs {
		h, err := n.AddHost(context.Background(), "node-"+strings.ToLower(dc))
		if err != nil {
			t.Fatal(err)
		}
		hosts[dc] = append(hosts[dc], h)
		agents[dc] = startHostAgent(t, c.dir, h, dc, strings.Join(servers, ","), c.joinToken)
	}
	if r := c.cli(c.replicas[0], "apply", "-f", billingInDatacenters(t, c.dir, 3, "{A: 1, B: 1, C: 1}")); r.code != 0 {
		t.Fatalf("apply:\n%s", r)
	}
	readyBy := func(r *haReplica) (map[string]int, int) {
		by, total := map[string]int{}, 0
		for _, i := range c.instances(r) {
			if i.Ready() {
				by[i.Datacenter]++
				total++
			}
		}
		return by, total
	}
	waitUntil(t, 60*time.Second, "billing ready 1:1:1", func() bool {
		by, total := readyBy(c.replicas[0])
		return total == 3 && by["A"] == 1 && by["B"] == 1 && by["C"] == 1
	})

	// Cut the datacenter of the leader: its replica, etcd member and node.
	var leader string
	waitUntil(t, 10*time.Second, "a leader all replicas agree on", func() bool {
		leader = c.agreedLeader(c.replicas)
		return leader != ""
	})
	if leader != first {
		// Leadership moved before the cut (rare): the test still checks
		// the control plane's failover, but the agents keep talking to
		// their first replica, which is not cut.
		t.Logf("the leader moved from %s, every agent's first replica, to %s before the cut", first, leader)
	}
	cut := ""
	var survivors []*haReplica
	for i, r := range c.replicas {
		if r.name == leader {
			cut = dcs[i]
		} else {
			survivors = append(survivors, r)
		}
	}
	if err := n.Cut(context.Background(), hosts[cut]...); err != nil {
		t.Fatal(err)
	}
	cutAt := time.Now()
	t.Logf("datacenter %s cut (leader %s)", cut, leader)
	var newLeader string
	took := waitUntil(t, 15*time.Second, "a new leader among the survivors", func() bool {
		newLeader = c.agreedLeader(survivors)
		return newLeader != "" && newLeader != leader
	})
	t.Logf("cut → new leader %s after %s", newLeader, took.Round(10*time.Millisecond))
	waitUntil(t, 30*time.Second, "billing's 3 instances ready outside "+cut, func() bool {
		by, total := readyBy(survivors[0])
		return total == 3 && by[cut] == 0
	})
	t.Logf("cut → 3 ready outside %s after %s", cut, time.Since(cutAt).Round(10*time.Millisecond))
	if leader == first {
		for _, dc := range dcs {
			if dc != cut && !strings.Contains(agents[dc].Stderr.String(), "talking to another control-plane replica") {
				t.Errorf("the agent in datacenter %s did not move off the cut replica:\n%s", dc, agents[dc].Stderr.String())
			}
		}
	}
	var dcv []struct {
		Name   string                 `json:"name"`
		Status model.DatacenterStatus `json:"status"`
	}
	if !c.get(survivors[1], "/api/v1/datacenters", &dcv) {
		t.Fatal("GET /api/v1/datacenters from a survivor failed")
	}
	for _, d := range dcv {
		if d.Name == cut && (d.Status.Health != model.DatacenterLost || !d.Status.FailedOver) {
			t.Errorf("datacenter %s after the cut: %+v, want lost and failed over", cut, d.Status)
		}
	}
	// Only the cut datacenter's node was lost: the others' heartbeats
	// reached a surviving replica within node_timeout.
	var lost []struct {
		Object string `json:"object"`
	}
	if !c.get(survivors[0], "/api/v1/events?reason=NodeLost", &lost) {
		t.Fatal("GET /api/v1/events from a survivor failed")
	}
	for _, e := range lost {
		if e.Object != "node-"+strings.ToLower(cut) {
			t.Errorf("node %s, outside the cut datacenter %s, was declared lost", e.Object, cut)
		}
	}
	// The control plane still takes changes: scale through a survivor.
	if r := c.cli(survivors[1], "scale", "billing", "4", "--reason", "e2e"); r.code != 0 {
		t.Fatalf("scale through a survivor:\n%s", r)
	}
	waitUntil(t, 20*time.Second, "4 ready outside "+cut, func() bool {
		by, total := readyBy(survivors[0])
		return total == 4 && by[cut] == 0
	})
}
