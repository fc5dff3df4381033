package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"opspilot/orchestrator/model"
	"opspilot/test/testbin"
)

// TestDockerRuntimeSelfHeals runs the demo billing service as Docker
// containers (an image built FROM scratch here) under `opspilot up`, kills
// one container's process with -9 and expects it back and ready.
func TestDockerRuntimeSelfHeals(t *testing.T) {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		t.Skipf("no Docker client: %v", err)
	}
	defer cli.Close()
	pctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, err = cli.Ping(pctx, client.PingOptions{})
	cancel()
	if err != nil {
		t.Skipf("Docker engine not answering at %s (%v): the Docker runtime test needs one; the process runtime is tested without", cli.DaemonHost(), err)
	}
	image := testbin.ScratchImage(t, cli, testbin.ModuleRoot(t), "./examples/billing/cmd/billing", "billing")

	dir := t.TempDir()
	addr := testbin.FreeAddr(t)
	s := launch(t, addr, dir, "up", "--data-dir", dir, "--http-addr", addr, "--logstore-addr", "127.0.0.1:0")
	s.waitReady(t, startTimeout)
	server := "http://" + addr
	spec := writeFile(t, dir, "billing-docker.yaml", fmt.Sprintf(`kind: Service
name: billing
runtime: docker
image: %s
env: {BILLING_ADDR: "0.0.0.0:8080"}
replicas: 2
requests: {cpu: 10m, memory: 32Mi}
limits: {cpu: 500m, memory: 128Mi}
ports: [{name: http, port: 8080}]
readiness: {http: {path: /readyz, port: 8080}, period: 1s}
`, image))
	if r := opspilot(t, "apply", "-f", spec, "--server", server); r.code != 0 {
		t.Fatalf("apply: %s", r)
	}
	var is []model.Instance
	waitUntil(t, 60*time.Second, "2 ready containers", func() bool {
		_ = json.Unmarshal([]byte(opspilot(t, "get", "instances", "-o", "json", "--server", server).stdout), &is)
		return len(is) == 2 && is[0].State == model.StateReady && is[1].State == model.StateReady
	})
	t.Cleanup(func() {
		// Stopping opspilot stops its containers; make sure none is left.
		s.stopClean(t, 30*time.Second)
		for _, i := range is {
			_, _ = cli.ContainerRemove(context.Background(), i.ID, client.ContainerRemoveOptions{Force: true})
		}
	})
	victim := is[0]
	if victim.PID <= 0 || !alive(victim.PID) {
		t.Fatalf("container %s reports pid %d", victim.ID, victim.PID)
	}
	// The service answers through its published port.
	if code, body := do(t, "GET", fmt.Sprintf("http://%s:%d/readyz", victim.Address, victim.Port), "", ""); code != 200 {
		t.Fatalf("GET /readyz of the container: %d %s", code, body)
	}
	if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	took := waitUntil(t, 20*time.Second, "the killed container back and ready", func() bool {
		var now []model.Instance
		_ = json.Unmarshal([]byte(opspilot(t, "get", "instances", "-o", "json", "--server", server).stdout), &now)
		ready := 0
		for _, i := range now {
			if i.State == model.StateReady {
				ready++
			}
			if i.ID == victim.ID && (i.Restarts < 1 || i.PID == victim.PID) {
				return false
			}
		}
		return ready == 2
	})
	t.Logf("docker: kill -9 → ready again in %s", took.Round(time.Millisecond))
}
