package control

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"opspilot/api"
	"opspilot/orchestrator/agentproto"
	"opspilot/orchestrator/model"
	"opspilot/orchestrator/node"
	"opspilot/orchestrator/store"
)

// These tests run the controller on a real embedded etcd behind the real
// API server, with real node agents (orchestrator/node) whose executor is
// scripted: it reports the states a test asks for instead of running
// processes. The runtime itself is tested in orchestrator/runtime and end
// to end in test/e2e.

type staticJoin string

func (s staticJoin) CheckJoinToken(t string) bool { return t == string(s) }

type cluster struct {
	t    *testing.T
	st   *store.Store
	c    *Controller
	url  string
	ctx  context.Context
	http *http.Client
}

func newCluster(t *testing.T, cfg Config) *cluster {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.Open(ctx, store.Config{Embedded: true, DataDir: t.TempDir()}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	c, err := New(st, cfg, prometheus.NewRegistry(), log)
	if err != nil {
		t.Fatal(err)
	}
	acfg := api.DefaultConfig()
	acfg.HTTPAddr, acfg.LocalMode = "127.0.0.1:0", true
	srv, err := api.New(acfg, api.Options{Log: log, Routes: append(c.Routes(), c.AgentRoutes(staticJoin("join-secret"))...)})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	srv.SetReady(true)
	done := make(chan struct{}, 2)
	go func() { _ = srv.Serve(ctx); done <- struct{}{} }()
	go func() { _ = c.Run(ctx); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done })
	return &cluster{t: t, st: st, c: c, url: srv.URL(), ctx: ctx, http: &http.Client{Timeout: 40 * time.Second}}
}

func (cl *cluster) do(method, path string, body, out any) int {
	cl.t.Helper()
	var rd io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		rd = bytes.NewReader(data)
	}
	req, _ := http.NewRequestWithContext(cl.ctx, method, cl.url+path, rd)
	req.Header.Set(api.ReasonHeader, "test says so")
	resp, err := cl.http.Do(req)
	if err != nil {
		cl.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(data, out); err != nil {
			cl.t.Fatalf("%s %s: decode %s: %v", method, path, data, err)
		}
	}
	if resp.StatusCode/100 != 2 {
		cl.t.Logf("%s %s: %d %s", method, path, resp.StatusCode, data)
	}
	return resp.StatusCode
}

// scripted is an executor that reports what the test scripts.
type scripted struct {
	mu sync.Mutex
	// have is what the server assigned last; running what "runs".
	have    []agentproto.Assignment
	running map[string]agentproto.InstanceStatus
	// failVersion's instances crash-loop without becoming ready.
	failVersion string
	syncs       int
	onChange    func()
}

func (s *scripted) Sync(as []agentproto.Assignment) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.have = as
	s.syncs++
	keep := map[string]bool{}
	for _, a := range as {
		keep[a.Instance.ID] = true
		st := s.running[a.Instance.ID]
		st.ID = a.Instance.ID
		switch {
		case a.Instance.Desired == model.DesiredStop:
			st.State = model.StateStopped
		case a.Instance.Version == s.failVersion:
			st.State, st.Restarts, st.LastExit = model.StateRunning, 5, "exit status 2"
		default:
			st.State = model.StateReady
			st.Address, st.Port = "127.0.0.1", 10000+len(s.running)
		}
		s.running[a.Instance.ID] = st
	}
	for id := range s.running {
		if !keep[id] {
			delete(s.running, id) // fenced
		}
	}
}

func (s *scripted) Statuses() []agentproto.InstanceStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]agentproto.InstanceStatus, 0, len(s.running))
	for _, st := range s.running {
		out = append(out, st)
	}
	return out
}

func (s *scripted) ids() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id := range s.running {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// startAgent joins a node running the scripted executor; the returned
// cancel stops its agent (as if the machine went away).
func (cl *cluster) startAgent(name, dc, stateDir string, ex *scripted) context.CancelFunc {
	cl.t.Helper()
	if ex.running == nil {
		ex.running = map[string]agentproto.InstanceStatus{}
	}
	a, err := node.New(node.Config{
		Server: cl.url, JoinToken: "join-secret", StateDir: stateDir,
		Node:     model.Node{Name: name, Datacenter: dc, Capacity: model.Resources{MilliCPU: 8000, MemoryBytes: 16 << 30}},
		Runtimes: []string{model.RuntimeProcess}, PollTimeout: 5 * time.Second,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, ex)
	if err != nil {
		cl.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(cl.ctx)
	done := make(chan struct{})
	go func() { _ = a.Run(ctx); close(done) }()
	select {
	case <-a.Joined():
	case <-time.After(10 * time.Second):
		cl.t.Fatalf("node %s did not join", name)
	}
	return func() { cancel(); <-done }
}

func (cl *cluster) service(name string) ServiceView {
	cl.t.Helper()
	var v ServiceView
	if code := cl.do("GET", "/api/v1/services/"+name, nil, &v); code != 200 {
		cl.t.Fatalf("GET service %s: %d", name, code)
	}
	return v
}

func (cl *cluster) instances(service string) []model.Instance {
	cl.t.Helper()
	var out []model.Instance
	cl.do("GET", "/api/v1/instances?service="+service, nil, &out)
	return out
}

// waitFor polls cond every 20 ms up to d.
func (cl *cluster) waitFor(d time.Duration, what string, cond func() bool) time.Duration {
	cl.t.Helper()
	start := time.Now()
	for time.Since(start) < d {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cl.t.Fatalf("timed out after %s waiting for %s", d, what)
	return 0
}

func demoService(replicas int) model.Service {
	return model.Service{
		Name: "billing", Runtime: model.RuntimeProcess, Command: []string{"/bin/billing"}, Replicas: replicas,
		Requests: model.Resources{MilliCPU: 100, MemoryBytes: 64 << 20},
		Ports:    []model.Port{{Name: "http", Port: 8080}},
		Env:      map[string]string{"RELEASE": "1"},
		Rollout:  model.RolloutStrategy{ProgressDeadline: 5 * time.Second},
	}
}

func fastConfig() Config {
	cfg := DefaultConfig()
	cfg.NodeTimeout = time.Second
	cfg.Resync = 200 * time.Millisecond
	return cfg
}

func TestScaleUpAndDown(t *testing.T) {
	cl := newCluster(t, fastConfig())
	a, b := &scripted{}, &scripted{}
	defer cl.startAgent("n1", "A", t.TempDir(), a)()
	defer cl.startAgent("n2", "A", t.TempDir(), b)()

	var res ApplyResult
	cl.do("PUT", "/api/v1/services/billing", demoService(3), &res)
	if res.Result != "created" {
		t.Fatalf("first apply: %+v", res)
	}
	took := cl.waitFor(5*time.Second, "3 ready", func() bool { return cl.service("billing").Status.ReadyReplicas == 3 })
	t.Logf("0 → 3 ready in %s", took)
	if n1, n2 := len(a.ids()), len(b.ids()); n1+n2 != 3 || n1 == 0 || n2 == 0 {
		t.Errorf("spread over two nodes: %d and %d", n1, n2)
	}
	// Applying the same spec again changes nothing.
	cl.do("PUT", "/api/v1/services/billing", demoService(3), &res)
	if res.Result != "unchanged" {
		t.Errorf("second apply: %+v", res)
	}

	var scaled map[string]any
	if code := cl.do("POST", "/api/v1/services/billing/scale", ScaleRequest{Replicas: ptr(1)}, &scaled); code != 200 {
		t.Fatalf("scale: %d", code)
	}
	cl.waitFor(5*time.Second, "1 instance left", func() bool {
		s := cl.service("billing").Status
		return s.Replicas == 1 && s.ReadyReplicas == 1 && len(cl.instances("billing")) == 1
	})
	var evs []Event
	cl.do("GET", "/api/v1/events?reason=Scaled", nil, &evs)
	if len(evs) != 1 || evs[0].Who != "local" || evs[0].Why != "test says so" || !strings.Contains(evs[0].Message, "from 3 to 1") {
		t.Errorf("scale event: %+v", evs)
	}
	if code := cl.do("POST", "/api/v1/services/billing/scale", map[string]any{"replicas": -1}, nil); code != 400 {
		t.Errorf("negative replicas: %d, want 400", code)
	}
	if code := cl.do("POST", "/api/v1/services/nope/scale", ScaleRequest{Replicas: ptr(1)}, nil); code != 404 {
		t.Errorf("unknown service: %d, want 404", code)
	}
}

func TestApplyRejectsBadSpecs(t *testing.T) {
	cl := newCluster(t, fastConfig())
	bad := demoService(1)
	bad.Runtime = "vm"
	if code := cl.do("PUT", "/api/v1/services/billing", bad, nil); code != 422 {
		t.Errorf("bad runtime: %d, want 422", code)
	}
	if code := cl.do("PUT", "/api/v1/services/other", demoService(1), nil); code != 400 {
		t.Errorf("name mismatch: %d, want 400", code)
	}
	req, _ := http.NewRequest("PUT", cl.url+"/api/v1/services/billing", strings.NewReader(`{"name": "billing", "replicas": "three"}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("malformed JSON: %d, want 400", resp.StatusCode)
	}
}

// TestRollingUpdateKeepsCapacity checks maxSurge 1 / maxUnavailable 0:
// never fewer than 3 ready, never more than 4 running.
func TestRollingUpdateKeepsCapacity(t *testing.T) {
	cl := newCluster(t, fastConfig())
	ex := &scripted{}
	defer cl.startAgent("n1", "A", t.TempDir(), ex)()
	cl.do("PUT", "/api/v1/services/billing", demoService(3), nil)
	cl.waitFor(5*time.Second, "3 ready", func() bool { return cl.service("billing").Status.ReadyReplicas == 3 })
	v1 := cl.service("billing").Status.Version

	s := demoService(3)
	s.Env["RELEASE"] = "2"
	cl.do("PUT", "/api/v1/services/billing", s, nil)
	minReady, maxActive := 99, 0
	cl.waitFor(10*time.Second, "rollout complete", func() bool {
		st := cl.service("billing").Status
		minReady = min(minReady, st.ReadyReplicas)
		maxActive = max(maxActive, st.Replicas)
		return st.Rollout == "complete" && st.Version != v1
	})
	if minReady < 3 || maxActive > 4 {
		t.Errorf("during the rollout: min ready %d (want ≥ 3), max active %d (want ≤ 4)", minReady, maxActive)
	}
	var ro RolloutView
	cl.do("GET", "/api/v1/services/billing/rollout", nil, &ro)
	if len(ro.History) != 2 || ro.History[1].Number != 2 || ro.History[0].Version != v1 {
		t.Errorf("history: %+v", ro.History)
	}

	// Undo goes back to revision 1.
	var undo map[string]any
	cl.do("POST", "/api/v1/services/billing/rollout/undo", nil, &undo)
	cl.waitFor(10*time.Second, "undo complete", func() bool {
		st := cl.service("billing").Status
		return st.Rollout == "complete" && st.Version == v1
	})
}

// TestFailedRolloutRollsBack: the new version crash-loops, so the
// controller returns to the old one, and the old capacity never dropped.
func TestFailedRolloutRollsBack(t *testing.T) {
	cl := newCluster(t, fastConfig())
	ex := &scripted{}
	defer cl.startAgent("n1", "A", t.TempDir(), ex)()
	cl.do("PUT", "/api/v1/services/billing", demoService(3), nil)
	cl.waitFor(5*time.Second, "3 ready", func() bool { return cl.service("billing").Status.ReadyReplicas == 3 })
	v1 := cl.service("billing").Status.Version

	s := demoService(3)
	s.Env["RELEASE"] = "broken"
	bad := Version(&s, nil)
	ex.mu.Lock()
	ex.failVersion = bad
	ex.mu.Unlock()
	cl.do("PUT", "/api/v1/services/billing", s, nil)
	minReady := 99
	cl.waitFor(10*time.Second, "rolled back", func() bool {
		st := cl.service("billing").Status
		minReady = min(minReady, st.ReadyReplicas)
		return st.Version == v1 && st.Rollout == "complete"
	})
	if minReady < 3 {
		t.Errorf("ready dropped to %d during the failed rollout", minReady)
	}
	var evs []Event
	cl.do("GET", "/api/v1/events?reason=RolloutFailed", nil, &evs)
	if len(evs) != 1 || !strings.Contains(evs[0].Message, "restarted 5 times") || evs[0].Who != whoController {
		t.Errorf("rollback event: %+v", evs)
	}
	var ro RolloutView
	cl.do("GET", "/api/v1/services/billing/rollout", nil, &ro)
	if last := ro.History[len(ro.History)-1]; last.Version != bad || last.Failed == "" {
		t.Errorf("failed revision not marked: %+v", last)
	}
	cl.waitFor(3*time.Second, "the bad version's instances removed", func() bool {
		for _, i := range cl.instances("billing") {
			if i.Version == bad {
				return false
			}
		}
		return true
	})
}

// TestNodeLossRebuildsAndFences: a node that stops heartbeating loses its
// instances to the other node within the timeout; when it returns it is
// told to stop the stale ones.
func TestNodeLossRebuildsAndFences(t *testing.T) {
	cl := newCluster(t, fastConfig())
	a, b := &scripted{}, &scripted{}
	dirA := t.TempDir()
	stopA := cl.startAgent("n1", "A", dirA, a)
	defer cl.startAgent("n2", "A", t.TempDir(), b)()
	s := demoService(4)
	cl.do("PUT", "/api/v1/services/billing", s, nil)
	cl.waitFor(5*time.Second, "4 ready", func() bool { return cl.service("billing").Status.ReadyReplicas == 4 })
	stale := a.ids()
	if len(stale) == 0 {
		t.Fatal("nothing on n1")
	}

	stopA()
	lostAt := time.Now()
	took := cl.waitFor(10*time.Second, "4 ready on n2", func() bool {
		st := cl.service("billing").Status
		return st.ReadyReplicas == 4 && len(b.ids()) == 4
	})
	t.Logf("node lost → capacity back in %s (timeout %s)", took, fastConfig().NodeTimeout)
	if took > fastConfig().NodeTimeout+2*time.Second {
		t.Errorf("rebuilt after %s", took)
	}
	var n NodeView
	cl.do("GET", "/api/v1/nodes/n1", nil, &n)
	if n.Status.State != model.NodeLost {
		t.Errorf("n1 state %q", n.Status.State)
	}
	_ = lostAt

	// n1 comes back with the node token it kept: its stale instances are
	// not assigned any more, so its executor drops them.
	a.mu.Lock()
	syncs := a.syncs
	a.mu.Unlock()
	defer cl.startAgent("n1", "A", dirA, a)()
	cl.waitFor(5*time.Second, "stale instances fenced", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.syncs > syncs && len(a.running) == 0
	})
	if st := cl.service("billing").Status; st.Replicas != 4 {
		t.Errorf("after the return: %d instances, want 4 (no doubled capacity)", st.Replicas)
	}
	cl.do("GET", "/api/v1/nodes/n1", nil, &n)
	cl.waitFor(3*time.Second, "n1 ready again", func() bool {
		cl.do("GET", "/api/v1/nodes/n1", nil, &n)
		return n.Status.State == model.NodeReady
	})
}

// TestRestartCreatesNoDuplicates: a second controller over the same store
// (a restarted control plane) keeps the count.
func TestRestartCreatesNoDuplicates(t *testing.T) {
	cl := newCluster(t, fastConfig())
	ex := &scripted{}
	defer cl.startAgent("n1", "A", t.TempDir(), ex)()
	cl.do("PUT", "/api/v1/services/billing", demoService(5), nil)
	cl.waitFor(5*time.Second, "5 ready", func() bool { return cl.service("billing").Status.ReadyReplicas == 5 })
	// Two more control planes (as after a restart while the old one still
	// ran), each reconciling many times, concurrently with the first.
	var wg sync.WaitGroup
	for range 2 {
		// n1 heartbeats to the first controller only: the others must not
		// find it lost while they run (a slow machine takes seconds here).
		cfg := fastConfig()
		cfg.NodeTimeout = time.Minute
		c2, err := New(cl.st, cfg, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				_ = c2.reconcile(cl.ctx)
			}
		}()
	}
	wg.Wait()
	if n := len(cl.instances("billing")); n != 5 {
		t.Errorf("%d instances after concurrent reconciles, want 5", n)
	}
}

func TestEndpointsLongPoll(t *testing.T) {
	cl := newCluster(t, fastConfig())
	ex := &scripted{}
	defer cl.startAgent("n1", "A", t.TempDir(), ex)()
	var set model.EndpointSet
	cl.do("GET", "/api/v1/endpoints", nil, &set)
	got := make(chan model.EndpointSet, 1)
	go func() {
		var next model.EndpointSet
		cl.do("GET", fmt.Sprintf("/api/v1/endpoints?wait=%d&timeout=20s", set.Revision), nil, &next)
		got <- next
	}()
	cl.do("PUT", "/api/v1/services/billing", demoService(2), nil)
	select {
	case next := <-got:
		if next.Revision <= set.Revision || len(next.Services["billing"]) == 0 {
			t.Errorf("long poll answered %+v", next)
		}
		for _, ep := range next.Services["billing"] {
			if !strings.HasPrefix(ep.Address, "127.0.0.1:") || ep.Datacenter != "A" {
				t.Errorf("endpoint %+v", ep)
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatal("long poll did not answer on change")
	}
}

func ptr[T any](v T) *T { return &v }

// TestNodeTracker: verdicts from explicit times (no sleeping): a node is
// lost after the timeout without heartbeats, every node gets a full
// timeout after a control-plane start, and transitions are reported once.
func TestNodeTracker(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tr := newNodeTracker(3*time.Second, t0)
	if tr.isLost("n1", t0.Add(2*time.Second)) {
		t.Error("an unseen node is lost before a full timeout after start")
	}
	if !tr.isLost("n1", t0.Add(3100*time.Millisecond)) {
		t.Error("an unseen node is not lost a timeout after start")
	}
	tr.beat("n1", t0.Add(4*time.Second))
	if tr.isLost("n1", t0.Add(6*time.Second)) || !tr.isLost("n1", t0.Add(7100*time.Millisecond)) {
		t.Error("lost verdict not 3 s after the last heartbeat")
	}
	if !tr.changed(t0.Add(5 * time.Second)) {
		t.Error("a newly seen node is no change")
	}
	if !tr.settle("n1", false) || tr.settle("n1", false) {
		t.Error("settle reports a transition once")
	}
	if tr.changed(t0.Add(5*time.Second)) || !tr.changed(t0.Add(8*time.Second)) {
		t.Error("changed does not follow the verdict")
	}
	tr.settle("n1", true)
	if !tr.beat("n1", t0.Add(9*time.Second)) {
		t.Error("beat does not report that the node was lost")
	}
	tr.forget("n1")
	if tr.changed(t0.Add(20 * time.Second)) {
		t.Error("a forgotten node still counts")
	}
}

// TestVictims: scale-down stops unready instances first, then from the
// datacenter furthest above its weighted share, then the busiest node.
func TestVictims(t *testing.T) {
	mk := func(id, dc, node, state string, age int) model.Instance {
		return model.Instance{ID: id, Datacenter: dc, Node: node, State: state, Desired: model.DesiredRun, Created: time.Unix(int64(1000-age), 0)}
	}
	is := []model.Instance{
		mk("a1", "A", "n1", model.StateReady, 5), mk("a2", "A", "n1", model.StateReady, 4), mk("a3", "A", "n2", model.StateReady, 3),
		mk("b1", "B", "n3", model.StateReady, 2), mk("b2", "B", "n4", model.StateStarting, 1),
	}
	got := victims(is, 3, map[string]int{"A": 1, "B": 1}, 2)
	ids := []string{got[0].ID, got[1].ID, got[2].ID}
	// b2 is not ready; then A holds 3 against a share of 1: from n1 (two
	// there), the newer a2, then a1 or a3 — n1 and n2 both have one left,
	// so the newest, a3.
	if ids[0] != "b2" || ids[1] != "a2" || ids[2] != "a3" {
		t.Errorf("victims = %v, want [b2 a2 a3]", ids)
	}
}

// TestConfigLibraryRollsOut: a mounted config library's files reach the
// node with the assignment, and changing the library is a new version,
// rolled out like any other change. A missing library is an error event,
// not a half-started service.
func TestConfigLibraryRollsOut(t *testing.T) {
	cl := newCluster(t, fastConfig())
	ex := &scripted{}
	defer cl.startAgent("n1", "A", t.TempDir(), ex)()
	s := demoService(2)
	s.Configs = []model.ConfigMount{{Name: "billing-conf"}}
	cl.do("PUT", "/api/v1/services/billing", s, nil)
	time.Sleep(500 * time.Millisecond)
	if n := len(cl.instances("billing")); n != 0 {
		t.Fatalf("%d instances placed without the config library", n)
	}
	var evs []Event
	cl.do("GET", "/api/v1/events?reason=ReconcileError", nil, &evs)
	if len(evs) != 1 || !strings.Contains(evs[0].Message, `mounts config "billing-conf", which does not exist`) {
		t.Errorf("missing library events: %+v", evs)
	}
	cl.do("PUT", "/api/v1/configs/billing-conf", model.ConfigLibrary{Name: "billing-conf", Files: map[string]string{"app.toml": "limit = 1"}}, nil)
	cl.waitFor(5*time.Second, "2 ready", func() bool { return cl.service("billing").Status.ReadyReplicas == 2 })
	files := func() map[string]string {
		ex.mu.Lock()
		defer ex.mu.Unlock()
		if len(ex.have) == 0 {
			return nil
		}
		return ex.have[0].Files
	}
	if got := files()["config/billing-conf/app.toml"]; got != "limit = 1" {
		t.Fatalf("assigned files: %v", files())
	}
	v1 := cl.service("billing").Status.Version
	cl.do("PUT", "/api/v1/configs/billing-conf", model.ConfigLibrary{Name: "billing-conf", Files: map[string]string{"app.toml": "limit = 2"}}, nil)
	cl.waitFor(10*time.Second, "the config change rolled out", func() bool {
		st := cl.service("billing").Status
		return st.Version != v1 && st.Rollout == "complete" && files()["config/billing-conf/app.toml"] == "limit = 2"
	})
}
