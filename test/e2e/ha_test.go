package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"opspilot/internal/tlsprobe"
	"opspilot/orchestrator/model"
	"opspilot/orchestrator/pki"
	"opspilot/test/testbin"
)

// haReplica is one `opspilot server` of a three-replica control plane.
type haReplica struct {
	name, dir, addr, base, cfg string
	peerURL                    string // its etcd member's
	p                          *testbin.Process
}

type haCluster struct {
	t         *testing.T
	dir       string
	replicas  []*haReplica
	joinToken string
}

type leaderStatus struct {
	Leader struct {
		Name string `json:"name"`
		URL  string `json:"url"`
	} `json:"leader"`
	Self struct {
		Name string `json:"name"`
	} `json:"self"`
	IsLeader bool `json:"is_leader"`
}

// startHACluster runs three `opspilot server` processes whose embedded
// etcd members form one cluster on loopback ports, over https:// peer
// URLs (etcd peer TLS). They share the CA and join secret (written before
// the first start, as an operator copies DATA_DIR/pki/{ca.crt,ca.key,
// join-secret} to every replica), so each issues its member a peer
// certificate the others accept.
func startHACluster(t *testing.T) *haCluster {
	t.Helper()
	c := &haCluster{t: t, dir: t.TempDir()}
	var initial []string
	type ports struct{ client, peer string }
	ps := make([]ports, 3)
	for i := range 3 {
		name := fmt.Sprintf("cp-%c", 'a'+i)
		ps[i] = ports{"http://" + testbin.FreeAddr(t), "https://" + testbin.FreeAddr(t)}
		initial = append(initial, name+"="+ps[i].peer)
		addr := testbin.FreeAddr(t)
		c.replicas = append(c.replicas, &haReplica{name: name, dir: filepath.Join(c.dir, name), addr: addr, base: "http://" + addr, peerURL: ps[i].peer})
	}
	c.sharePKI()
	for i, r := range c.replicas {
		r.cfg = c.replicaConfig(r, ps[i].client, ps[i].peer, initial, "")
	}
	// The members start together: each waits for a quorum.
	var wg sync.WaitGroup
	for _, r := range c.replicas {
		r.p = testbin.Start(t, opspilotBin(t), "server", "-c", r.cfg)
	}
	for _, r := range c.replicas {
		wg.Go(func() { c.waitReady(r, 60*time.Second) })
	}
	wg.Wait()
	return c
}

// replicaConfig writes replica r's config: an etcd member of the cluster
// initial (name=peerURL,…) at clientURL and peerURL, a 2 s leader lease,
// fast raft timings; extra is more YAML.
func (c *haCluster) replicaConfig(r *haReplica, clientURL, peerURL string, initial []string, extra string) string {
	return writeFile(c.t, c.dir, r.name+".yaml", fmt.Sprintf(`data_dir: %s
server:
  http_addr: %s
  auto_tls: false
  auth:
    tokens:
      - {name: ops-admin, role: admin, token: %q}
orchestrator:
  node_timeout: 3s
  leader: {ttl: 2s}
  store:
    name: %s
    client_url: %s
    peer_url: %s
    initial_cluster: %s
    heartbeat_interval: 50ms
    election_timeout: 500ms
self_monitoring:
  enabled: false
%s`, r.dir, r.addr, adminToken, r.name, clientURL, peerURL, strings.Join(initial, ","), extra))
}

// sharePKI creates the CA in the first replica's data dir and copies it,
// with the join secret, to the others (as an operator copies
// DATA_DIR/pki/{ca.crt,ca.key,join-secret} before their first start).
func (c *haCluster) sharePKI() {
	c.t.Helper()
	ca, err := pki.EnsureCA(filepath.Join(c.replicas[0].dir, "pki"), nil, time.Now())
	if err != nil {
		c.t.Fatal(err)
	}
	c.joinToken = ca.JoinToken()
	for _, r := range c.replicas[1:] {
		if err := os.MkdirAll(filepath.Join(r.dir, "pki"), 0o700); err != nil {
			c.t.Fatal(err)
		}
		for _, f := range []string{pki.CACertFile, pki.CAKeyFile, pki.JoinSecretFile} {
			b, err := os.ReadFile(filepath.Join(c.replicas[0].dir, "pki", f))
			if err != nil {
				c.t.Fatal(err)
			}
			writeFile(c.t, filepath.Join(r.dir, "pki"), f, string(b))
		}
	}
}

// checkPeerTLS proves the replicas' etcd members talk TLS: each runs with
// a peer certificate issued from the shared CA, and its peer URL refuses
// a plain-HTTP request and a TLS client without a certificate of the CA.
func (c *haCluster) checkPeerTLS(rs []*haReplica) {
	c.t.Helper()
	caPEM, err := os.ReadFile(filepath.Join(c.replicas[0].dir, "pki", pki.CACertFile))
	if err != nil {
		c.t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	for _, r := range rs {
		if !strings.Contains(r.p.Stderr.String(), "etcd peer TLS on") {
			c.t.Errorf("replica %s did not log 'etcd peer TLS on'\n%s", r.name, tail(r.p))
		}
		peer, err := tls.LoadX509KeyPair(filepath.Join(r.dir, "pki", pki.PeerCertFile), filepath.Join(r.dir, "pki", pki.PeerKeyFile))
		if err != nil {
			c.t.Errorf("replica %s peer certificate: %v", r.name, err)
			continue
		}
		if _, err := peer.Leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			c.t.Errorf("replica %s peer certificate is not a client certificate of the shared CA: %v", r.name, err)
		}
		hostPort := strings.TrimPrefix(r.peerURL, "https://")
		for _, tc := range []struct {
			name, url string
			certs     []tls.Certificate
			refuse    bool
		}{
			{"plain HTTP", "http://" + hostPort, nil, true},
			{"TLS without a client certificate", "https://" + hostPort, nil, true},
			{"TLS with the member's certificate", "https://" + hostPort, []tls.Certificate{peer}, false},
		} {
			err := tlsprobe.Get(tc.url+"/version", roots, tc.certs)
			if refused := err != nil; refused != tc.refuse {
				c.t.Errorf("replica %s peer URL, %s: GET /version: %v; want refused %v", r.name, tc.name, err, tc.refuse)
			}
		}
	}
}

func (c *haCluster) waitReady(r *haReplica, d time.Duration) {
	deadline := time.Now().Add(d)
	for !strings.Contains(r.p.Stdout.String(), "opspilot ready on") {
		if time.Now().After(deadline) || r.p.Exited() {
			c.t.Errorf("replica %s not ready\n%s", r.name, tail(r.p))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *haCluster) urls() string {
	var us []string
	for _, r := range c.replicas {
		us = append(us, r.base)
	}
	return strings.Join(us, ",")
}

// get reads path from replica r; false when it does not answer.
func (c *haCluster) get(r *haReplica, path string, out any) bool {
	req, _ := http.NewRequest("GET", r.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	cl := &http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	return resp.StatusCode == 200 && json.NewDecoder(resp.Body).Decode(out) == nil
}

func (c *haCluster) leaderOf(r *haReplica) (leaderStatus, bool) {
	var st leaderStatus
	ok := c.get(r, "/api/v1/leader", &st)
	return st, ok
}

// agreedLeader is the leader every listed replica names, or "".
func (c *haCluster) agreedLeader(rs []*haReplica) string {
	name := ""
	for _, r := range rs {
		st, ok := c.leaderOf(r)
		if !ok || st.Leader.Name == "" || (name != "" && st.Leader.Name != name) {
			return ""
		}
		name = st.Leader.Name
	}
	return name
}

func (c *haCluster) agent(name, dc string, extra ...string) *testbin.Process {
	c.t.Helper()
	return startAgent(c.t, c.dir, name, dc, c.urls(), c.joinToken, extra...)
}

func (c *haCluster) cli(r *haReplica, args ...string) result {
	c.t.Helper()
	return opspilot(c.t, append(args, "--server", r.base, "--token", adminToken)...)
}

func (c *haCluster) instances(r *haReplica) []model.Instance {
	var is []model.Instance
	if !c.get(r, "/api/v1/instances?service=billing", &is) {
		return nil
	}
	return is
}

// running counts billing's instances meant to run, and the ready ones.
func (c *haCluster) running(r *haReplica) (active, ready int) {
	for _, i := range c.instances(r) {
		if i.Desired == model.DesiredRun {
			active++
			if i.Ready() {
				ready++
			}
		}
	}
	return active, ready
}

// TestHAControlPlaneSurvivesLeaderKill: three control-plane replicas over
// a three-member embedded etcd cluster with peer TLS; kill -9 of the
// leader replica elects a new leader within seconds, self-healing and
// scaling keep working through the survivors with no duplicated
// instances, and the killed replica comes back as a follower over TLS.
func TestHAControlPlaneSurvivesLeaderKill(t *testing.T) {
	c := startHACluster(t)
	if t.Failed() {
		t.FailNow()
	}
	c.checkPeerTLS(c.replicas)
	var first string
	waitUntil(t, 20*time.Second, "the replicas agree on a leader", func() bool {
		first = c.agreedLeader(c.replicas)
		return first != ""
	})
	var leaderR *haReplica
	var survivors []*haReplica
	for _, r := range c.replicas {
		if r.name == first {
			leaderR = r
		} else {
			survivors = append(survivors, r)
		}
	}
	t.Logf("leader: %s", first)
	// --ship-to-all: the replicas' embedded TSDBs each get every sample,
	// so the next leader has the history too (checked after the kill)
	c.agent("n1", "A", "--ship-to-all")
	c.agent("n2", "A", "--ship-to-all")
	waitUntil(t, 20*time.Second, "two nodes joined", func() bool {
		var ns []model.Node
		return c.get(survivors[0], "/api/v1/nodes", &ns) && len(ns) == 2
	})
	if r := c.cli(survivors[0], "apply", "-f", billingSpec(t, c.dir, 3, "1")); r.code != 0 {
		t.Fatalf("apply: %s", r)
	}
	waitUntil(t, 30*time.Second, "3 ready", func() bool { _, ready := c.running(survivors[0]); return ready == 3 })

	// kill -9 of the leader replica.
	killed := time.Now()
	if err := leaderR.p.Cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	var next string
	took := waitUntil(t, 15*time.Second, "a new leader", func() bool {
		next = c.agreedLeader(survivors)
		return next != "" && next != first
	})
	for _, r := range survivors {
		if r.name == next {
			if at, ok := leaderSince(r.p.Stderr.String()); ok {
				t.Logf("kill -9 of leader %s → %s leads after %s (its log); all survivors agreed after %s", first, next, at.Sub(killed).Round(time.Millisecond), took)
			}
		}
	}
	// The lease TTL (2 s) after the etcd cluster re-elected its own raft
	// leader (the killed member may have been it), on a loaded machine.
	if took > 10*time.Second {
		t.Errorf("hand-over took %s; want within a few seconds (2 s lease TTL plus an etcd election)", took)
	}

	// Every survivor's own TSDB holds n1's host metrics from before the
	// kill and goes on receiving them after it.
	at := float64(killed.UnixMilli()) / 1000
	for _, r := range survivors {
		var first, last float64
		waitUntil(t, 20*time.Second, r.name+" holds n1's samples from before and after the kill", func() bool {
			first = queryValue(t, r.base, adminToken, `tfirst_over_time(node_load1{node="n1"}[10m])`)
			last = queryValue(t, r.base, adminToken, `tlast_over_time(node_load1{node="n1"}[10m])`)
			return first < at && last > at && !math.IsInf(last, 1)
		})
		t.Logf("%s: n1's node_load1 from %.1f to %.1f, killed at %.1f", r.name, first, last, at)
	}

	// Self-healing still works: kill -9 of an instance.
	var victim model.Instance
	for _, i := range c.instances(survivors[0]) {
		if i.Desired == model.DesiredRun && i.Ready() && i.PID > 0 {
			victim = i
			break
		}
	}
	if victim.PID == 0 {
		t.Fatalf("no running instance with a pid: %+v", c.instances(survivors[0]))
	}
	if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	healed := waitUntil(t, 20*time.Second, "the killed instance replaced or restarted", func() bool {
		_, ready := c.running(survivors[1])
		if ready != 3 {
			return false
		}
		for _, i := range c.instances(survivors[1]) {
			if i.ID == victim.ID && i.PID == victim.PID && i.Desired == model.DesiredRun {
				return false
			}
		}
		return true
	})
	t.Logf("instance kill -9 healed in %s under the new leader", healed)

	// scale through a surviving replica that may not be the leader.
	if r := c.cli(survivors[1], "scale", "billing", "4", "--reason", "ha test"); r.code != 0 {
		t.Fatalf("scale: %s", r)
	}
	waitUntil(t, 30*time.Second, "4 ready", func() bool { _, ready := c.running(survivors[0]); return ready == 4 })
	time.Sleep(2 * time.Second)
	if active, _ := c.running(survivors[0]); active != 4 {
		t.Errorf("%d instances meant to run after scaling to 4: %+v", active, c.instances(survivors[0]))
	}
	// The agents moved to a follower when their replica died; the new
	// leader saw their heartbeats through the relay and lost no node.
	var evs []map[string]any
	if c.get(survivors[0], "/api/v1/events?reason=NodeLost", &evs) && len(evs) > 0 {
		t.Errorf("nodes were declared lost across the hand-over: %v", evs)
	}

	// The killed replica starts again and rejoins as a follower.
	cfg, err := os.ReadFile(leaderR.cfg)
	if err != nil {
		t.Fatal(err)
	}
	leaderR.cfg = writeFile(t, c.dir, leaderR.name+"-again.yaml", strings.Replace(string(cfg), "  store:\n", "  store:\n    cluster_state: existing\n", 1))
	restarted := time.Now()
	leaderR.p = testbin.Start(t, opspilotBin(t), "server", "-c", leaderR.cfg)
	c.waitReady(leaderR, 60*time.Second)
	if t.Failed() {
		t.FailNow()
	}
	c.checkPeerTLS([]*haReplica{leaderR})
	waitUntil(t, 15*time.Second, "the restarted replica follows the new leader", func() bool {
		st, ok := c.leaderOf(leaderR)
		return ok && !st.IsLeader && st.Leader.Name == next
	})
	if got := c.agreedLeader(c.replicas); got != next {
		t.Errorf("after the rejoin the replicas agree on %q, want %q", got, next)
	}
	if active, _ := c.running(leaderR); active != 4 {
		t.Errorf("the rejoined replica sees %d instances meant to run, want 4", active)
	}
	// The agents kept what the dead replica missed in its own queues and
	// delivered it on its return: it holds as many of n1's samples from
	// its downtime as a replica that never stopped.
	down := fmt.Sprintf(`count_over_time(node_load1{node="n1"}[%dms] @ %.3f)`,
		restarted.Sub(killed).Milliseconds(), float64(restarted.UnixMilli())/1000)
	var want, got float64
	waitUntil(t, 30*time.Second, "the rejoined replica holds the samples of its downtime", func() bool {
		want, got = queryValue(t, survivors[0].base, adminToken, down), queryValue(t, leaderR.base, adminToken, down)
		return want > 0 && !math.IsInf(want, 1) && got == want
	})
	t.Logf("n1's samples while %s was down (%s): %v on it after its return, %v on %s", leaderR.name,
		restarted.Sub(killed).Round(time.Second), got, want, survivors[0].name)
}

// leaderSince finds when a replica's log says it became the leader.
func leaderSince(log string) (time.Time, bool) {
	var at time.Time
	found := false
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, "this replica is the leader now") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "time="); ok {
				if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
					at, found = t, true
				}
			}
		}
	}
	return at, found
}
