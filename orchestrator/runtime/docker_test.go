//go:build linux

package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"opspilot/test/testbin"

	cerrdefs "github.com/containerd/errdefs"
	containertypes "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"opspilot/orchestrator/model"
)

// dockerOrSkip connects to the local engine, or skips: without one there
// is nothing to test against, and the message says so.
func dockerOrSkip(t *testing.T) *Docker {
	t.Helper()
	log, _ := testLogger(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := NewDocker(ctx, DockerConfig{Log: log})
	if err != nil {
		if errors.Is(err, ErrNoEngine) {
			t.Skipf("no Docker engine answers on this machine, so the Docker runtime cannot be tested: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// buildTestImage builds testdata/dockerserver into an image FROM scratch
// (at /server; see testbin.ScratchImage).
func buildTestImage(t *testing.T, d *Docker) string {
	t.Helper()
	return testbin.ScratchImage(t, d.Client(), ".", "./testdata/dockerserver", "server")
}

func TestNewDockerWithoutEngine(t *testing.T) {
	_, err := NewDocker(context.Background(), DockerConfig{Host: "unix://" + filepath.Join(t.TempDir(), "no-docker.sock")})
	if !errors.Is(err, ErrNoEngine) || !client.IsErrConnectionFailed(err) || !strings.Contains(err.Error(), "no Docker engine") {
		t.Fatalf("err = %v; want ErrNoEngine wrapping the connection failure", err)
	}
}

func TestDockerInstance(t *testing.T) {
	d := dockerOrSkip(t)
	image := buildTestImage(t, d)
	ctx := context.Background()
	cli := d.Client()
	id := "dk-" + strconv.Itoa(os.Getpid())
	t.Cleanup(func() {
		_, _ = cli.ContainerRemove(context.Background(), id, client.ContainerRemoveOptions{Force: true})
	})

	// A missing image is explained, not pulled.
	_, err := d.Start(ctx, Spec{InstanceID: id + "-x", Service: "x", Runtime: model.RuntimeDocker, Image: "opspilot-runtime-test-missing:none"}, nil, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "no registry") {
		t.Fatalf("missing image: %v", err)
	}

	// The runtime alone: exec inside the container, exit status, removal.
	direct := Spec{InstanceID: id + "-direct", Service: "svc-dk", Runtime: model.RuntimeDocker, Image: image, Ports: []model.Port{{Port: 8080}}}
	h, err := d.Start(ctx, direct, map[string]int{"8080": freeTCPPort(t)}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ex, ok := h.(Execer)
	if !ok {
		t.Fatal("docker handles must run exec probes inside the container")
	}
	if err := ex.Exec(ctx, []string{"/server", "-no-such-flag"}); err == nil || !strings.Contains(err.Error(), "exit status 2") {
		t.Errorf("failing exec: %v", err)
	}
	if err := ex.Exec(ctx, []string{"/no/such/binary"}); err == nil {
		t.Error("exec of a missing binary succeeded")
	}
	if h.Cgroup() != nil || h.PID() == 0 {
		t.Errorf("Cgroup() %v, PID() %d", h.Cgroup(), h.PID())
	}
	if err := h.Stop(ctx, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if h.ExitStatus() != "exit status 0" {
		t.Errorf("exit status %q", h.ExitStatus())
	}
	if _, err := cli.ContainerInspect(ctx, direct.InstanceID, client.ContainerInspectOptions{}); !cerrdefs.IsNotFound(err) {
		t.Errorf("container not removed after Stop: %v", err)
	}

	log, _ := testLogger(t)
	root := t.TempDir()
	m, err := NewManager(ManagerConfig{Dir: root, Runtimes: map[string]Runtime{model.RuntimeDocker: d}, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	closeManager(t, m)
	spec := Spec{
		InstanceID: id, Service: "svc-dk", Tenant: "team", Version: "v1",
		Runtime: model.RuntimeDocker, Image: image,
		Command:   []string{"-greeting=hi", "$PORT"},
		Env:       map[string]string{"GREETING": "hello"},
		Limits:    model.Resources{MilliCPU: 500, MemoryBytes: 64 << 20},
		Ports:     []model.Port{{Name: "http", Port: 8080}},
		Files:     map[string]string{"config/app.conf": "answer=42\n"},
		Readiness: httpProbe("/healthz", 8080, time.Second, 3),
		// Runs inside the container, through the exec API (a few engine
		// round trips: give it time).
		Liveness:  &model.Probe{Exec: &model.ExecProbe{Command: []string{"/server", "-check"}}, Period: time.Second, Timeout: time.Second, FailureThreshold: 3},
		StopGrace: 2 * time.Second,
	}
	m.Sync([]Assignment{{Spec: spec}})
	took := waitFor(t, 30*time.Second, "container ready", stateIs(m, id, model.StateReady))
	t.Logf("container ready %s after Sync", took)
	st, _ := statusOf(m, id)
	port := st.Ports["http"]

	var info struct {
		Args   []string
		Env    []string
		Config string
	}
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/info")
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	env := envMap(info.Env)
	if strings.Join(info.Args, " ") != "/server -greeting=hi 8080" || env["PORT"] != "8080" || env["PORT_HTTP"] != "8080" ||
		env["GREETING"] != "hello" || env["OPSPILOT_INSTANCE"] != id || env["OPSPILOT_DIR"] != ContainerDir || info.Config != "answer=42\n" {
		t.Errorf("inside the container: args %q, env %v, config %q", info.Args, env, info.Config)
	}

	in, err := cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	labels := in.Container.Config.Labels
	if labels[LabelService] != "svc-dk" || labels[LabelTenant] != "team" || labels[LabelInstance] != id || labels[LabelVersion] != "v1" {
		t.Errorf("labels %v", labels)
	}
	if hc := in.Container.HostConfig; hc.NanoCPUs != 500_000_000 || hc.Memory != 64<<20 {
		t.Errorf("limits: NanoCPUs %d, Memory %d", hc.NanoCPUs, hc.Memory)
	}
	if st.PID != in.Container.State.Pid || st.PID == 0 {
		t.Errorf("status pid %d, container pid %d", st.PID, in.Container.State.Pid)
	}

	// Kill the container's process: restarted at once (a new container of
	// the same name on the same host port).
	if _, err := cli.ContainerKill(ctx, id, client.ContainerKillOptions{Signal: "SIGKILL"}); err != nil {
		t.Fatal(err)
	}
	took = waitFor(t, 15*time.Second, "container ready again", func() bool {
		s, _ := statusOf(m, id)
		return s.State == model.StateReady && s.PID != st.PID
	})
	t.Logf("container killed → ready again in %s", took)
	st2, _ := statusOf(m, id)
	if st2.Restarts != 1 || st2.LastExit != "signal: killed" || st2.Ports["http"] != port {
		t.Errorf("after the kill: %+v", st2)
	}
	stdout, _ := LogPaths(filepath.Join(root, id))
	if out, _ := os.ReadFile(stdout); strings.Count(string(out), "dockerserver started") != 2 {
		t.Errorf("stdout.log has not both runs' output: %q", out)
	}
	// The exec liveness probe runs inside and passes: no restart from it.
	time.Sleep(2500 * time.Millisecond)
	if st3, _ := statusOf(m, id); st3.Restarts != 1 || st3.State != model.StateReady {
		t.Errorf("exec liveness probe inside the container failed: %+v", st3)
	}

	m.Sync(nil)
	waitFor(t, 20*time.Second, "container stopped", stateIs(m, id, model.StateStopped))
	if st, _ := statusOf(m, id); st.LastExit != "exit status 0" {
		t.Errorf("stopped: %+v", st)
	}
	if _, err := cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{}); !cerrdefs.IsNotFound(err) {
		t.Errorf("container still there after stop: %v", err)
	}
	if out, _ := os.ReadFile(stdout); !strings.Contains(string(out), "got SIGTERM") {
		t.Errorf("no graceful stop in stdout.log: %q", out)
	}

	// Cleanup removes what an earlier agent left, and nothing it keeps.
	for _, name := range []string{id + "-stray", id + "-kept"} {
		_, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{Name: name, Config: &containertypes.Config{
			Image: image, Labels: map[string]string{LabelInstance: name},
		}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_, _ = cli.ContainerRemove(context.Background(), name, client.ContainerRemoveOptions{Force: true})
		})
	}
	// A same-named container opspilot did not make is never replaced.
	foreign := id + "-foreign"
	if _, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{Name: foreign, Config: &containertypes.Config{Image: image}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = cli.ContainerRemove(context.Background(), foreign, client.ContainerRemoveOptions{Force: true})
	})
	fspec := direct
	fspec.InstanceID = foreign
	if _, err := d.Start(ctx, fspec, map[string]int{"8080": freeTCPPort(t)}, t.TempDir()); err == nil || !strings.Contains(err.Error(), "not made by opspilot") {
		t.Errorf("start over a foreign container: %v", err)
	}
	if _, err := cli.ContainerInspect(ctx, foreign, client.ContainerInspectOptions{}); err != nil {
		t.Errorf("foreign container removed: %v", err)
	}

	if err := d.Cleanup(ctx, func(instance string) bool { return instance == id+"-kept" }); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.ContainerInspect(ctx, id+"-stray", client.ContainerInspectOptions{}); !cerrdefs.IsNotFound(err) {
		t.Errorf("stray container survived Cleanup: %v", err)
	}
	if _, err := cli.ContainerInspect(ctx, id+"-kept", client.ContainerInspectOptions{}); err != nil {
		t.Errorf("kept container removed: %v", err)
	}
}
