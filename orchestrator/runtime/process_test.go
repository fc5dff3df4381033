//go:build linux

package runtime

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"opspilot/collector/container"
	"opspilot/orchestrator/model"
)

// These tests run real processes (the test binary as a helper service, see
// helper_test.go) with real time, and real cgroups where the host lets
// them be created.

// testCgroupParent is the cgroup parent of this test process's instances,
// so parallel test runs never meet.
var testCgroupParent = "opspilot-test-" + strconv.Itoa(os.Getpid())

// newTestProcess returns a process runtime on the host's cgroups under a
// parent of its own, removed after the test.
func newTestProcess(t *testing.T, log *slog.Logger) *Process {
	p := NewProcess(ProcessConfig{CgroupParent: testCgroupParent, Log: log})
	t.Cleanup(func() { removeCgroupParent("/sys/fs/cgroup", testCgroupParent) })
	return p
}

func removeCgroupParent(root, parent string) {
	_ = os.Remove(filepath.Join(root, parent))
	for _, ctl := range v1Controllers {
		_ = os.Remove(filepath.Join(root, ctl, parent))
	}
}

// cgroupsWork reports whether this host lets the test create cgroups
// (v1 or v2) at the default root, and why not.
func cgroupsWork() (bool, string) {
	m := newCgroupManager("/sys/fs/cgroup", testCgroupParent)
	cg, err := m.create("probe-" + strconv.Itoa(os.Getpid()))
	if err != nil {
		return false, err.Error()
	}
	_ = cg.remove()
	removeCgroupParent("/sys/fs/cgroup", testCgroupParent)
	return true, ""
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestProcessInstanceLifecycle(t *testing.T) {
	t.Setenv("OPSPILOT_TEST_AGENT_SECRET", "must-not-leak")
	log, _ := testLogger(t)
	root := t.TempDir()
	var changes atomic.Int64
	changed := make(chan struct{}, 1)
	m, err := NewManager(ManagerConfig{
		Dir: root, Runtimes: map[string]Runtime{model.RuntimeProcess: newTestProcess(t, log)},
		Host: "10.1.2.3", Node: "node-a", Datacenter: "dc-1", Log: log,
		OnChange: func() {
			changes.Add(1)
			select {
			case changed <- struct{}{}:
			default:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	closeManager(t, m)

	spec := helperSpec(t, "web-1", map[string]string{"GREETING": "hello"})
	spec.Command = append(spec.Command, "-listen=:$PORT", "--admin=${PORT_ADMIN_API}", "$PORT_9000", "$NOT_DEFINED", "${OPSPILOT_INSTANCE}")
	spec.Ports = []model.Port{{Name: "http", Port: 8080}, {Name: "admin-api", Port: 8081}, {Port: 9000}}
	spec.Files = map[string]string{"config/app.conf": "answer=42\n"}
	spec.Limits = model.Resources{MilliCPU: 500, MemoryBytes: 512 << 20}
	m.Sync([]Assignment{{Spec: spec}})
	waitFor(t, 10*time.Second, "web-1 ready", stateIs(m, "web-1", model.StateReady))
	<-changed

	st, _ := statusOf(m, "web-1")
	if len(st.Ports) != 3 || st.Address != "10.1.2.3" || st.Service != "svc-web-1" || st.Restarts != 0 {
		t.Fatalf("status %+v", st)
	}
	if hp := slices.Sorted(maps.Values(st.Ports)); hp[0] == hp[1] || hp[1] == hp[2] {
		t.Fatalf("host ports not distinct: %v", st.Ports)
	}
	port := st.Ports["http"]
	instDir := filepath.Join(root, "web-1")

	// Arguments expanded, environment clean and complete, files written.
	info := getInfo(t, port)
	p := strconv.Itoa
	if want := []string{"-listen=:" + p(port), "--admin=" + p(st.Ports["admin-api"]), p(st.Ports["9000"]), "$NOT_DEFINED", "web-1"}; !slices.Equal(info.Args[1:], want) {
		t.Errorf("args %q, want %q", info.Args[1:], want)
	}
	env := envMap(info.Env)
	for k, want := range map[string]string{
		"PORT": p(port), "PORT_HTTP": p(port), "PORT_ADMIN_API": p(st.Ports["admin-api"]), "PORT_9000": p(st.Ports["9000"]),
		"OPSPILOT_INSTANCE": "web-1", "OPSPILOT_SERVICE": "svc-web-1", "OPSPILOT_VERSION": "v1", "OPSPILOT_TENANT": "team",
		"OPSPILOT_NODE": "node-a", "OPSPILOT_DATACENTER": "dc-1", "OPSPILOT_DIR": instDir,
		"HOME": instDir, "GREETING": "hello", "PATH": os.Getenv("PATH"),
	} {
		if env[k] != want {
			t.Errorf("env %s=%q, want %q", k, env[k], want)
		}
	}
	if _, leaked := env["OPSPILOT_TEST_AGENT_SECRET"]; leaked {
		t.Error("the agent's environment leaked into the instance")
	}
	if info.Dir != instDir || info.Config != "answer=42\n" || info.PID != st.PID {
		t.Errorf("dir %q config %q pid %d; want %q, the file, %d", info.Dir, info.Config, info.PID, instDir, st.PID)
	}

	// Output lands in the log files the shipper is told about.
	stdoutPath, stderrPath := LogPaths(instDir)
	if out, _ := os.ReadFile(stdoutPath); !strings.Contains(string(out), "helper started") {
		t.Errorf("stdout.log = %q", out)
	}
	if out, _ := os.ReadFile(stderrPath); !strings.Contains(string(out), "stderr works") {
		t.Errorf("stderr.log = %q", out)
	}
	if srcs := m.LogSources(); len(srcs) != 2 || srcs[0].Path != stdoutPath || srcs[1].Path != stderrPath || srcs[0].Instance != "web-1" || srcs[0].Service != "svc-web-1" {
		t.Errorf("LogSources() = %+v", srcs)
	}
	if ok, why := cgroupsWork(); ok {
		cgs := m.Cgroups()
		if len(cgs) != 1 || cgs[0].Instance != "web-1" || cgs[0].CgroupPath != "/"+testCgroupParent+"/web-1" {
			t.Errorf("Cgroups() = %+v", cgs)
		}
	} else {
		t.Logf("cgroups unavailable (%s): not checking Cgroups()", why)
	}

	// kill -9: restarted, ready again on the same ports. How fast is
	// measured in bench (BenchmarkCrashReplacement, p95 < 1 s); the
	// restart's zero delay is checked exactly by the synctest tests. Here,
	// under a loaded -race run, only a generous bound.
	if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	took := waitFor(t, 5*time.Second, "web-1 ready again after kill -9", func() bool {
		s, _ := statusOf(m, "web-1")
		return s.State == model.StateReady && s.PID != st.PID
	})
	t.Logf("kill -9 → ready again in %s", took)
	st2, _ := statusOf(m, "web-1")
	if st2.Restarts != 1 || st2.LastExit != "signal: killed" || !maps.Equal(st2.Ports, st.Ports) {
		t.Errorf("after kill -9: %+v; want 1 restart, signal: killed, ports %v", st2, st.Ports)
	}
	if info := getInfo(t, port); info.PID != st2.PID {
		t.Errorf("port %d served by pid %d, want the new %d", port, info.PID, st2.PID)
	}

	// Stop: SIGTERM, a clean exit, then forgotten at the next Sync.
	m.Sync(nil)
	waitFor(t, 10*time.Second, "web-1 stopped", stateIs(m, "web-1", model.StateStopped))
	if st, _ := statusOf(m, "web-1"); st.LastExit != "exit status 0" || st.PID != 0 {
		t.Errorf("stopped: %+v", st)
	}
	if _, err := os.Stat(filepath.Join(instDir, "sigterm")); err != nil {
		t.Errorf("the instance got no SIGTERM: %v", err)
	}
	m.Sync(nil)
	if sts := m.Statuses(); len(sts) != 0 {
		t.Errorf("statuses after the second Sync: %+v", sts)
	}
	if _, err := os.Stat(instDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("instance directory still there: %v", err)
	}
	if changes.Load() == 0 {
		t.Error("OnChange never called")
	}
}

// recordingRuntime records when each Start was called and when each
// started instance was seen to exit.
type recordingRuntime struct {
	Runtime
	mu            sync.Mutex
	starts, exits []time.Time
}

func (r *recordingRuntime) Start(ctx context.Context, spec Spec, ports map[string]int, dir string) (Handle, error) {
	r.mu.Lock()
	r.starts = append(r.starts, time.Now())
	r.mu.Unlock()
	h, err := r.Runtime.Start(ctx, spec, ports, dir)
	if err == nil {
		go func() {
			<-h.Wait()
			r.mu.Lock()
			r.exits = append(r.exits, time.Now())
			r.mu.Unlock()
		}()
	}
	return h, err
}

// restartDelays returns, per restart, the time between an exit and the
// next Start.
func (r *recordingRuntime) restartDelays() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []time.Duration
	for i := 0; i+1 < len(r.starts) && i < len(r.exits); i++ {
		out = append(out, r.starts[i+1].Sub(r.exits[i]))
	}
	return out
}

func TestProcessCrashLoopBacksOff(t *testing.T) {
	log, _ := testLogger(t)
	root := t.TempDir()
	rt := &recordingRuntime{Runtime: newTestProcess(t, log)}
	m, err := NewManager(ManagerConfig{
		Dir: root, Runtimes: map[string]Runtime{model.RuntimeProcess: rt}, Log: log,
		Backoff: Backoff{Initial: 100 * time.Millisecond, Max: 400 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	closeManager(t, m)
	spec := helperSpec(t, "crash-1", map[string]string{helperEnv: "crash"})
	spec.Readiness = nil
	m.Sync([]Assignment{{Spec: spec}})
	waitFor(t, 15*time.Second, "6 restarts", func() bool { return len(rt.restartDelays()) >= 6 })
	m.Sync([]Assignment{{Spec: spec, Stop: true}})

	// Real crashes of a real process: the first restart is immediate,
	// then 100ms doubling, capped at 400ms.
	delays := rt.restartDelays()[:6]
	t.Logf("exit → next start: %v", delays)
	ms := time.Millisecond
	want := []time.Duration{0, 100 * ms, 200 * ms, 400 * ms, 400 * ms, 400 * ms}
	for i, w := range want {
		// Timers never fire early, but the exit is timestamped when the
		// supervisor notices it, which on a loaded machine can come a few
		// ms after the restart was started; late, but not by the next step
		// of the schedule.
		if delays[i] < w-20*ms || delays[i] > w+250*ms {
			t.Errorf("restart %d after %s, want %s", i+1, delays[i], w)
		}
	}
	if starts := readStarts(t, filepath.Join(root, "crash-1")); len(starts) < 6 {
		t.Errorf("the helper logged %d starts, want ≥ 6", len(starts))
	}
	st, _ := statusOf(m, "crash-1")
	if st.Restarts < 6 || st.LastExit != "exit status 1" {
		t.Errorf("status %+v: want ≥ 6 restarts, exit status 1", st)
	}
}

func TestProcessLivenessFailureRestarts(t *testing.T) {
	log, _ := testLogger(t)
	root := t.TempDir()
	m, err := NewManager(ManagerConfig{Dir: root, Runtimes: map[string]Runtime{model.RuntimeProcess: newTestProcess(t, log)}, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	closeManager(t, m)
	spec := helperSpec(t, "live-1", nil)
	spec.Liveness = httpProbe("/healthz", 8080, 100*time.Millisecond, 2)
	m.Sync([]Assignment{{Spec: spec}})
	waitFor(t, 10*time.Second, "live-1 ready", stateIs(m, "live-1", model.StateReady))
	before, _ := statusOf(m, "live-1")

	// The helper answers 500 while this file exists (and removes it when
	// it starts).
	dir := filepath.Join(root, "live-1")
	if err := os.WriteFile(filepath.Join(dir, "unhealthy"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	took := waitFor(t, 10*time.Second, "restart after liveness failures", func() bool {
		s, _ := statusOf(m, "live-1")
		return s.Restarts == 1 && s.State == model.StateReady
	})
	t.Logf("unhealthy → restarted and ready in %s", took)
	st, _ := statusOf(m, "live-1")
	if st.PID == before.PID || !strings.Contains(st.LastExit, "liveness probe failed 2 times") || !strings.HasPrefix(st.LastExit, "exit status 0") {
		t.Errorf("status %+v: want a new pid, a graceful exit for failing liveness", st)
	}
	if _, err := os.Stat(filepath.Join(dir, "sigterm")); err != nil {
		t.Errorf("the unhealthy instance was not stopped with SIGTERM: %v", err)
	}
}

func TestProcessStopGrace(t *testing.T) {
	log, _ := testLogger(t)
	root := t.TempDir()
	m, err := NewManager(ManagerConfig{Dir: root, Runtimes: map[string]Runtime{model.RuntimeProcess: newTestProcess(t, log)}, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	closeManager(t, m)
	// polite exits 300ms after SIGTERM, within its 3s grace; stubborn
	// ignores SIGTERM and is killed after its 400ms grace.
	polite := helperSpec(t, "polite", map[string]string{"HELPER_TERM_DELAY": "300ms"})
	polite.StopGrace = 3 * time.Second
	stubborn := helperSpec(t, "stubborn", map[string]string{"HELPER_IGNORE_TERM": "1"})
	stubborn.StopGrace = 400 * time.Millisecond
	m.Sync([]Assignment{{Spec: polite}, {Spec: stubborn}})
	waitFor(t, 10*time.Second, "both ready", func() bool {
		return stateIs(m, "polite", model.StateReady)() && stateIs(m, "stubborn", model.StateReady)()
	})

	start := time.Now()
	m.Sync(nil)
	waitFor(t, time.Second, "stopping", stateIs(m, "polite", model.StateStopping))
	stopped := map[string]time.Duration{}
	waitFor(t, 10*time.Second, "both stopped", func() bool {
		for _, id := range []string{"polite", "stubborn"} {
			if _, ok := stopped[id]; !ok && stateIs(m, id, model.StateStopped)() {
				stopped[id] = time.Since(start)
			}
		}
		return len(stopped) == 2
	})
	t.Logf("stopped after %v", stopped)
	for _, tc := range []struct {
		id       string
		min, max time.Duration
		exit     string
	}{
		{"polite", 300 * time.Millisecond, 3 * time.Second, "exit status 0"},
		{"stubborn", 400 * time.Millisecond, 3 * time.Second, "signal: killed"},
	} {
		st, _ := statusOf(m, tc.id)
		if st.LastExit != tc.exit {
			t.Errorf("%s: last exit %q, want %q", tc.id, st.LastExit, tc.exit)
		}
		if d := stopped[tc.id]; d < tc.min || d > tc.max {
			t.Errorf("%s stopped after %s, want %s-%s", tc.id, d, tc.min, tc.max)
		}
		if _, err := os.Stat(filepath.Join(root, tc.id, "sigterm")); err != nil {
			t.Errorf("%s got no SIGTERM: %v", tc.id, err)
		}
	}
}

func TestProcessCgroupV1Limits(t *testing.T) {
	const root = "/sys/fs/cgroup"
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err == nil {
		t.Skip("this host uses cgroup v2; TestProcessCgroupV2 covers it")
	}
	if ok, why := cgroupsWork(); !ok {
		t.Skipf("cannot create v1 cgroups here (%s); the fallback is covered by TestProcessWithoutCgroups", why)
	}
	log, logs := testLogger(t)
	p := newTestProcess(t, log)
	spec := helperSpec(t, "cg-1", nil)
	spec.Limits = model.Resources{MilliCPU: 250, MemoryBytes: 256 << 20}
	port := freeTCPPort(t)
	dir := t.TempDir()
	h, err := p.Start(context.Background(), spec, map[string]int{"http": port}, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop(context.Background(), 0)

	rel := "/" + testCgroupParent + "/cg-1"
	c := h.Cgroup()
	if c == nil || c.CgroupPath != rel || c.Instance != "cg-1" || c.Service != "svc-cg-1" || c.Tenant != "team" {
		t.Fatalf("Cgroup() = %+v, want path %s", c, rel)
	}
	read := func(ctl, file string) string {
		data, err := os.ReadFile(filepath.Join(root, ctl, rel, file))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(data))
	}
	for _, f := range []struct{ ctl, file, want string }{
		{"cpu", "cpu.cfs_period_us", "100000"},
		{"cpu", "cpu.cfs_quota_us", "25000"}, // 250 millicores
		{"memory", "memory.limit_in_bytes", strconv.Itoa(256 << 20)},
	} {
		if got := read(f.ctl, f.file); got != f.want {
			t.Errorf("%s/%s = %s, want %s", f.ctl, f.file, got, f.want)
		}
	}
	pid := strconv.Itoa(h.PID())
	for _, ctl := range v1Controllers {
		if procs := strings.Fields(read(ctl, "cgroup.procs")); !slices.Contains(procs, pid) {
			t.Errorf("pid %s not in %s cgroup.procs %v", pid, ctl, procs)
		}
	}

	// The container collector reads what the runtime made.
	col, err := container.New(container.Config{CgroupRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	defer col.Close()
	col.SetInstances([]container.Instance{*c})
	series, err := col.Collect(context.Background(), time.Now())
	if err != nil {
		t.Fatalf("collect: %v", err)
	}
	got := map[string]float64{}
	for _, ts := range series {
		var name, inst string
		for _, l := range ts.Labels {
			switch l.Name {
			case "__name__":
				name = l.Value
			case "instance":
				inst = l.Value
			}
		}
		if inst == "cg-1" {
			got[name] = ts.Samples[0].Value
		}
	}
	if got["container_spec_cpu_quota"] != 25000 || got["container_spec_memory_limit_bytes"] != 256<<20 {
		t.Errorf("collector saw quota %v, memory limit %v", got["container_spec_cpu_quota"], got["container_spec_memory_limit_bytes"])
	}
	if _, ok := got["container_cpu_usage_seconds_total"]; !ok {
		t.Error("collector saw no CPU usage (cpuacct)")
	}

	if err := h.Stop(context.Background(), 2*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, ctl := range v1Controllers {
		if _, err := os.Stat(filepath.Join(root, ctl, rel)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s cgroup not removed after exit: %v", ctl, err)
		}
	}
	if strings.Contains(logs.String(), "WARN") {
		t.Errorf("warnings logged:\n%s", logs)
	}
}

func TestProcessCgroupV2(t *testing.T) {
	root := "/sys/fs/cgroup"
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err != nil {
		root = "/sys/fs/cgroup/unified" // a hybrid host's v2 hierarchy
		if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err != nil {
			t.Skip("no cgroup v2 hierarchy on this host")
		}
	}
	parent := testCgroupParent + "-v2"
	if err := os.MkdirAll(filepath.Join(root, parent), 0o755); err != nil {
		t.Skipf("cannot create v2 cgroups under %s: %v", root, err)
	}
	t.Cleanup(func() { os.Remove(filepath.Join(root, parent)) })
	controllers, _ := os.ReadFile(filepath.Join(root, "cgroup.controllers"))
	hasCPU := slices.Contains(strings.Fields(string(controllers)), "cpu")
	hasMem := slices.Contains(strings.Fields(string(controllers)), "memory")

	log, logs := testLogger(t)
	p := NewProcess(ProcessConfig{CgroupRoot: root, CgroupParent: parent, Log: log})
	if !p.cgroups.v2 {
		t.Fatalf("%s not detected as v2", root)
	}
	spec := helperSpec(t, "cg2-1", nil)
	spec.Limits = model.Resources{MilliCPU: 1500, MemoryBytes: 256 << 20}
	h, err := p.Start(context.Background(), spec, map[string]int{"http": freeTCPPort(t)}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop(context.Background(), 0)
	dir := filepath.Join(root, parent, "cg2-1")
	procs, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(strings.Fields(string(procs)), strconv.Itoa(h.PID())) {
		t.Fatalf("pid %d not in %s/cgroup.procs: %q", h.PID(), dir, procs)
	}
	if hasCPU {
		if data, _ := os.ReadFile(filepath.Join(dir, "cpu.max")); strings.TrimSpace(string(data)) != "150000 100000" {
			t.Errorf("cpu.max = %q", data)
		}
	}
	if hasMem {
		if data, _ := os.ReadFile(filepath.Join(dir, "memory.max")); strings.TrimSpace(string(data)) != strconv.Itoa(256<<20) {
			t.Errorf("memory.max = %q", data)
		}
	}
	if !hasCPU || !hasMem {
		// The limits cannot apply: the runtime says so, once, and runs the
		// instance anyway.
		if !strings.Contains(logs.String(), "cannot apply CPU or memory limits") {
			t.Errorf("no warning about the missing controllers:\n%s", logs)
		}
		t.Logf("%s lacks the cpu or memory controller (it has %q): checked placement only", root, strings.TrimSpace(string(controllers)))
	}
	if err := h.Stop(context.Background(), 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("cgroup not removed after exit: %v", err)
	}
}

func TestProcessWithoutCgroups(t *testing.T) {
	log, logs := testLogger(t)
	// An empty directory has no cgroup hierarchy: like a host where the
	// agent is not root or the cgroupfs is read-only, creation fails.
	p := NewProcess(ProcessConfig{CgroupRoot: t.TempDir(), Log: log})
	var handles []Handle
	for _, id := range []string{"nocg-1", "nocg-2"} {
		spec := helperSpec(t, id, nil)
		spec.Limits = model.Resources{MilliCPU: 100, MemoryBytes: 64 << 20}
		port := freeTCPPort(t)
		h, err := p.Start(context.Background(), spec, map[string]int{"http": port}, t.TempDir())
		if err != nil {
			t.Fatalf("start without cgroups: %v", err)
		}
		handles = append(handles, h)
		defer h.Stop(context.Background(), 0)
		if h.Cgroup() != nil {
			t.Errorf("%s: Cgroup() = %+v, want nil", id, h.Cgroup())
		}
		waitFor(t, 10*time.Second, id+" serving", func() bool {
			resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/healthz")
			if err == nil {
				resp.Body.Close()
			}
			return err == nil
		})
	}
	if n := strings.Count(logs.String(), "cannot create cgroups"); n != 1 {
		t.Errorf("warned %d times, want once:\n%s", n, logs)
	}
	for _, h := range handles {
		if err := h.Stop(context.Background(), time.Second); err != nil {
			t.Error(err)
		}
		if h.ExitStatus() != "exit status 0" {
			t.Errorf("exit %q", h.ExitStatus())
		}
	}
}

func TestProcessStartErrors(t *testing.T) {
	log, _ := testLogger(t)
	p := NewProcess(ProcessConfig{CgroupRoot: t.TempDir(), Log: log})
	spec := Spec{InstanceID: "bad-1", Service: "bad", Runtime: model.RuntimeProcess, Command: []string{"no-such-binary-xyz"}}
	if _, err := p.Start(context.Background(), spec, nil, t.TempDir()); err == nil || !strings.Contains(err.Error(), "not found in the instance's PATH") {
		t.Errorf("missing binary: %v", err)
	}
	spec.Command = []string{"/bin/true"}
	spec.Ports = []model.Port{{Port: 80}}
	if _, err := p.Start(context.Background(), spec, nil, t.TempDir()); err == nil || !strings.Contains(err.Error(), "no host port") {
		t.Errorf("missing host port: %v", err)
	}
}

func TestProcessAndManagerCleanup(t *testing.T) {
	if ok, why := cgroupsWork(); !ok {
		t.Skipf("cannot create cgroups here (%s): nothing for Process.Cleanup to find", why)
	}
	log, _ := testLogger(t)
	p := newTestProcess(t, log)
	root := t.TempDir()
	// An instance a crashed agent left: running, in its cgroup.
	spec := helperSpec(t, "orphan-1", nil)
	h, err := p.Start(context.Background(), spec, map[string]int{"http": freeTCPPort(t)}, filepath.Join(root, "orphan-1"))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop(context.Background(), 0)
	// A directory that is not an instance's must survive.
	if err := os.MkdirAll(filepath.Join(root, "not-ours"), 0o755); err != nil {
		t.Fatal(err)
	}
	m, err := NewManager(ManagerConfig{Dir: root, Runtimes: map[string]Runtime{model.RuntimeProcess: p}, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	closeManager(t, m)
	if err := m.Cleanup(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.Wait():
	case <-time.After(5 * time.Second):
		t.Fatal("the orphan survived Cleanup")
	}
	if _, err := os.Stat(filepath.Join(root, "orphan-1")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("orphan directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "not-ours")); err != nil {
		t.Errorf("Cleanup removed a directory it did not create: %v", err)
	}
	if ids := p.cgroups.leftovers(); len(ids) != 0 {
		t.Errorf("cgroups left: %v", ids)
	}
}

func TestManagerSync(t *testing.T) {
	log, _ := testLogger(t)
	root := t.TempDir()
	m, err := NewManager(ManagerConfig{Dir: root, Runtimes: map[string]Runtime{model.RuntimeProcess: newTestProcess(t, log)}, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	closeManager(t, m)
	a, b := helperSpec(t, "a-1", nil), helperSpec(t, "b-1", nil)
	a.StopGrace, b.StopGrace = time.Second, time.Second

	m.Sync([]Assignment{{Spec: a}, {Spec: b}})
	waitFor(t, 10*time.Second, "a and b ready", func() bool {
		return stateIs(m, "a-1", model.StateReady)() && stateIs(m, "b-1", model.StateReady)()
	})
	stA, _ := statusOf(m, "a-1")
	stB, _ := statusOf(m, "b-1")
	if stA.Ports["http"] == stB.Ports["http"] {
		t.Fatalf("a and b share host port %d", stA.Ports["http"])
	}

	// b leaves the assignments: stopped, still reported, then forgotten.
	m.Sync([]Assignment{{Spec: a}})
	waitFor(t, 10*time.Second, "b stopped", stateIs(m, "b-1", model.StateStopped))
	if st, _ := statusOf(m, "a-1"); st.State != model.StateReady || st.PID != stA.PID {
		t.Errorf("a disturbed: %+v", st)
	}
	m.Sync([]Assignment{{Spec: a}})
	if _, ok := statusOf(m, "b-1"); ok {
		t.Error("b still reported after the next Sync")
	}
	if _, err := os.Stat(filepath.Join(root, "b-1")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("b's directory: %v", err)
	}

	// Desired stop keeps a reported as stopped; wanting it again starts it
	// on the same ports.
	m.Sync([]Assignment{{Spec: a, Stop: true}})
	waitFor(t, 10*time.Second, "a stopped", stateIs(m, "a-1", model.StateStopped))
	m.Sync([]Assignment{{Spec: a, Stop: true}})
	if _, ok := statusOf(m, "a-1"); !ok {
		t.Fatal("a forgotten while still assigned (stopped)")
	}
	m.Sync([]Assignment{{Spec: a}})
	waitFor(t, 10*time.Second, "a ready again", stateIs(m, "a-1", model.StateReady))
	if st, _ := statusOf(m, "a-1"); !maps.Equal(st.Ports, stA.Ports) {
		t.Errorf("ports %v after restart, want %v", st.Ports, stA.Ports)
	}

	// What cannot run is reported, not dropped.
	c := a
	c.InstanceID, c.Runtime, c.Image = "c-1", model.RuntimeDocker, "web:1"
	d := a
	d.InstanceID = "bad/id"
	m.Sync([]Assignment{{Spec: a}, {Spec: c}, {Spec: d}})
	if st, _ := statusOf(m, "c-1"); st.State != model.StateFailed || !strings.Contains(st.Message, `no "docker" runtime`) {
		t.Errorf("c: %+v", st)
	}
	if st, _ := statusOf(m, "bad/id"); st.State != model.StateFailed || !strings.Contains(st.Message, "instance id") {
		t.Errorf("d: %+v", st)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m.Close(ctx)
	if st, _ := statusOf(m, "a-1"); st.State != model.StateStopped {
		t.Errorf("after Close: %+v", st)
	}
	m.Sync([]Assignment{{Spec: b}})
	if _, ok := statusOf(m, "b-1"); ok {
		t.Error("Sync after Close started something")
	}
}
