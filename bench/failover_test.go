package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"opspilot/internal/netns"
	"opspilot/orchestrator/model"
	"opspilot/test/testbin"
)

// Datacenter failover with each node a separate host (its own network
// namespace): `opspilot server` and `opspilot gateway` in the root
// namespace, datacenters A and B of two agents each, billing with 4
// instances spread 1:1, `opspilot loadgen` at 100 requests/s through the
// gateway. Each iteration cuts the network of the datacenter that holds
// the most instances (links down: packets black-holed) and measures cut →
// all 4 instances ready in the other datacenter, and the requests that
// failed (one loadgen run per cut, from 1.5 s before it to 1 s after
// capacity is back). Then the network returns and the cluster settles
// (stale instances fenced, 4 ready, every node ready) before the next cut.
// Baseline in the same run: one node's network cut (the single-node loss
// the orchestrator already handles) → 4 ready again. Anchor: Karmada's
// default 300 s tolerations before it acts.
//
// Run: go test ./bench -run '^$' -bench DatacenterFailover -benchtime 10x -count 1

const failoverToken = "bench-admin-token-0123456789"

type failoverCluster struct {
	b       *testing.B
	net     *netns.Network
	dir     string
	base    string
	client  *http.Client
	caFile  string
	hosts   map[string][]*netns.Host // by datacenter
	gateway string
}

func startFailoverCluster(b *testing.B) *failoverCluster {
	b.Helper()
	if err := netns.Available(); err != nil {
		b.Skipf("skipping: the datacenter failover benchmark runs each node in its own network namespace, which cannot be made here: %v", err)
	}
	_, _ = netns.Sweep(context.Background())
	n, err := netns.New(context.Background(), netns.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := n.Close(); err != nil {
			b.Error(err)
		}
	})
	bin := testbin.Tool(b, "opspilot")
	dir := b.TempDir()
	ln, err := net.Listen("tcp", net.JoinHostPort(n.Gateway().String(), "0"))
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	cfg := filepath.Join(dir, "opspilot.yaml")
	write(b, cfg, fmt.Sprintf(`data_dir: %s
server:
  http_addr: %s
  auth:
    tokens:
      - {name: bench, role: admin, token: %q}
orchestrator:
  node_timeout: 3s
analyzer: {enabled: false}
self_monitoring: {enabled: false}
`, filepath.Join(dir, "server"), addr, failoverToken))
	srv := testbin.Start(b, bin, "server", "-c", cfg)
	start := time.Now()
	for !strings.Contains(srv.Stdout.String(), "opspilot ready on") {
		if time.Since(start) > 60*time.Second || srv.Exited() {
			b.Fatalf("opspilot server not ready: %s", srv.Stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	joinToken := ""
	for _, line := range strings.Split(srv.Stdout.String(), "\n") {
		if i := strings.Index(line, "--join-token "); i >= 0 {
			joinToken = strings.Fields(line[i+len("--join-token "):])[0]
		}
	}
	c := &failoverCluster{b: b, net: n, dir: dir, base: "https://" + addr, hosts: map[string][]*netns.Host{},
		caFile: filepath.Join(dir, "server", "pki", "ca.crt")}
	pem, err := os.ReadFile(c.caFile)
	if err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	c.client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}

	for _, node := range []struct{ name, dc string }{{"a1", "A"}, {"a2", "A"}, {"b1", "B"}, {"b2", "B"}} {
		h, err := n.AddHost(context.Background(), node.name)
		if err != nil {
			b.Fatal(err)
		}
		c.hosts[node.dc] = append(c.hosts[node.dc], h)
		acfg := filepath.Join(dir, node.name+".yaml")
		write(b, acfg, fmt.Sprintf(`data_dir: %s
agent:
  http_addr: 127.0.0.1:9441
  interval: 5s
  logs: {enabled: false}
node:
  address: %s
  runtimes: [process]
`, filepath.Join(dir, node.name), h.Addr))
		argv := h.Argv(bin, "agent", "-c", acfg, "--server", c.base, "--datacenter", node.dc, "--node", node.name, "--join-token", joinToken)
		testbin.Start(b, argv[0], argv[1:]...)
	}
	c.waitSteady(60 * time.Second)

	svc := model.Service{
		Name: "billing", Runtime: model.RuntimeProcess, Replicas: 4,
		Command:   []string{testbin.Tool(b, "billing")},
		Env:       map[string]string{"BILLING_ADDR": "0.0.0.0:8080", "BILLING_CAPACITY": "500"},
		Requests:  model.Resources{MilliCPU: 10, MemoryBytes: 16 << 20},
		Ports:     []model.Port{{Name: "http", Port: 8080}},
		Readiness: &model.Probe{HTTP: &model.HTTPProbe{Path: "/readyz", Port: 8080}, Period: time.Second},
		Placement: model.Placement{Datacenters: map[string]int{"A": 1, "B": 1}},
	}
	c.call("PUT", "/api/v1/services/billing", svc, nil)
	c.waitSteady(60 * time.Second)

	gwAddr := testbin.FreeAddr(b)
	gw := testbin.Start(b, bin, "gateway", "--server", c.base, "--ca-file", c.caFile, "--token", failoverToken, "--listen", gwAddr, "--name", "gw-bench")
	for !strings.Contains(gw.Stdout.String(), "listening on") {
		if gw.Exited() {
			b.Fatalf("gateway exited: %s", gw.Stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.gateway = "http://" + gwAddr
	return c
}

func write(b *testing.B, path, content string) {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		b.Fatal(err)
	}
}

func (c *failoverCluster) call(method, path string, body, out any) bool {
	var rd *strings.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		rd = strings.NewReader(string(data))
	} else {
		rd = strings.NewReader("")
	}
	req, _ := http.NewRequest(method, c.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+failoverToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		if method != "GET" {
			c.b.Fatalf("%s %s: %d", method, path, resp.StatusCode)
		}
		return false
	}
	return out == nil || json.NewDecoder(resp.Body).Decode(out) == nil
}

// readyByDC counts billing's ready instances per datacenter; active is
// every instance not stopped (ready or on its way).
func (c *failoverCluster) readyByDC() (by map[string]int, total, active int, ok bool) {
	var is []model.Instance
	if !c.call("GET", "/api/v1/instances?service=billing", nil, &is) {
		return nil, 0, 0, false
	}
	by = map[string]int{}
	for _, i := range is {
		if i.Ready() {
			by[i.Datacenter]++
			total++
		}
		if i.Desired != model.DesiredStop && i.Active() {
			active++
		}
	}
	return by, total, active, true
}

// waitSteady waits until every node is ready and billing (once it exists)
// has exactly its 4 instances, all ready, split 2:2 as its weights say
// (after a datacenter returns: failback done). It returns how long that
// took.
func (c *failoverCluster) waitSteady(limit time.Duration) time.Duration {
	c.b.Helper()
	start := time.Now()
	for {
		var nodes []model.Node
		steady := c.call("GET", "/api/v1/nodes", nil, &nodes) && len(nodes) == 4
		for _, n := range nodes {
			steady = steady && n.Status.State == model.NodeReady
		}
		var svcs []model.Service
		if steady && c.call("GET", "/api/v1/services", nil, &svcs) && len(svcs) > 0 {
			by, total, active, ok := c.readyByDC()
			steady = ok && total == 4 && active == 4 && by["A"] == 2 && by["B"] == 2
		}
		if steady {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			by, total, active, _ := c.readyByDC()
			c.b.Fatalf("not steady after %s: nodes %+v, ready %v (%d), active %d", limit, nodes, by, total, active)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cutAndTime cuts hosts, waits until cond holds, and returns how long
// that took after the cut.
func (c *failoverCluster) cutAndTime(hosts []*netns.Host, what string, cond func(by map[string]int, total int) bool) time.Duration {
	c.b.Helper()
	if err := c.net.Cut(context.Background(), hosts...); err != nil {
		c.b.Fatal(err)
	}
	cut := time.Now()
	for {
		if by, total, _, ok := c.readyByDC(); ok && cond(by, total) {
			return time.Since(cut)
		}
		if time.Since(cut) > 60*time.Second {
			c.b.Fatalf("%s: not within 60 s of the cut", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var failedLine = regexp.MustCompile(`(\d+) sent in .*?, (\d+) ok, (\d+) failed`)

// loadgenDuring runs `opspilot loadgen` at 100/s around f and returns the
// requests that failed.
func (c *failoverCluster) loadgenDuring(f func()) (failed, sent int) {
	c.b.Helper()
	p := testbin.Start(c.b, testbin.Tool(c.b, "opspilot"), "loadgen", "--target", c.gateway+"/billing", "--rate", "100", "--duration", "10m", "--quiet")
	time.Sleep(1500 * time.Millisecond) // connections made and kept alive, as in steady traffic
	f()
	time.Sleep(time.Second)
	_ = p.Cmd.Process.Signal(syscall.SIGINT)
	if _, done := p.Wait(15 * time.Second); !done {
		c.b.Fatal("loadgen did not stop")
	}
	m := failedLine.FindStringSubmatch(p.Stdout.String())
	if m == nil {
		c.b.Fatalf("no report from loadgen: %s %s", p.Stdout, p.Stderr)
	}
	sent, _ = strconv.Atoi(m[1])
	failed, _ = strconv.Atoi(m[3])
	if failed > 0 {
		fmt.Fprintf(os.Stderr, "loadgen: %s\n", p.Stdout)
	}
	return failed, sent
}

func BenchmarkDatacenterFailover(b *testing.B) {
	c := startFailoverCluster(b)
	var failover, nodeLoss, failback []time.Duration
	var failed []float64
	last := "A"
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Cut the datacenter holding the most instances; with failback
		// both hold 2, so the cuts alternate between A and B.
		by, _, _, _ := c.readyByDC()
		dc, other := "B", "A"
		if by["A"] > by["B"] || (by["A"] == by["B"] && last == "B") {
			dc, other = "A", "B"
		}
		last = dc
		var took time.Duration
		f, sent := c.loadgenDuring(func() {
			took = c.cutAndTime(c.hosts[dc], "datacenter "+dc+" cut", func(by map[string]int, _ int) bool { return by[other] == 4 })
		})
		failover = append(failover, took)
		failed = append(failed, float64(f))
		fmt.Fprintf(os.Stderr, "cut %d: datacenter %s (held %d) → 4 ready in %s: %s; %d of %d requests failed\n",
			i+1, dc, by[dc], other, took.Round(time.Millisecond), f, sent)
		if err := c.net.Restore(context.Background(), c.hosts[dc]...); err != nil {
			b.Fatal(err)
		}
		back := c.waitSteady(60 * time.Second)
		failback = append(failback, back)
		fmt.Fprintf(os.Stderr, "restore %d: datacenter %s back → failback to 2:2 in %s (failback_delay 10s included)\n", i+1, dc, back.Round(time.Millisecond))

		// Baseline: one node that holds instances.
		var node *netns.Host
		for _, h := range append(slices.Clone(c.hosts["A"]), c.hosts["B"]...) {
			var is []model.Instance
			c.call("GET", "/api/v1/instances?service=billing", nil, &is)
			for _, in := range is {
				if in.Node == h.Name && in.Ready() {
					node = h
				}
			}
			if node != nil {
				break
			}
		}
		took = c.cutAndTime([]*netns.Host{node}, "node "+node.Name+" cut", func(_ map[string]int, total int) bool {
			var is []model.Instance
			if !c.call("GET", "/api/v1/instances?service=billing", nil, &is) {
				return false
			}
			ready := 0
			for _, in := range is {
				if in.Ready() && in.Node != node.Name {
					ready++
				}
			}
			return ready == 4
		})
		nodeLoss = append(nodeLoss, took)
		if err := c.net.Restore(context.Background(), node); err != nil {
			b.Fatal(err)
		}
		c.waitSteady(60 * time.Second)
	}
	b.StopTimer()
	report(b, "failover", failover)
	report(b, "nodeloss", nodeLoss)
	report(b, "failback", failback)
	slices.Sort(failed)
	b.ReportMetric(failed[len(failed)/2], "failed-per-cut-p50")
	b.ReportMetric(failed[len(failed)-1], "failed-per-cut-max")
	b.ReportMetric(float64(percentile(failover, 0.5))/float64(percentile(nodeLoss, 0.5)), "failover/nodeloss-p50")
	b.ReportMetric(float64(300*time.Second)/float64(percentile(failover, 0.5)), "x-faster-than-karmada-300s")
	fmt.Fprintf(os.Stderr, "failover: %v\nnode loss: %v\nfailback: %v\nfailed per cut: %v\n", failover, nodeLoss, failback, failed)
}
