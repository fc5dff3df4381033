package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"opspilot/orchestrator/model"
	"opspilot/test/testbin"
)

// The reports against a running `opspilot up --demo`, through the CLI:
// three days of host history for a growing datacenter (what `opspilot demo
// backfill` writes, in short) give a capacity report with charts and a
// recommendation; a billing instance killed with -9 shows in the daily
// inspection as restarting.
func TestReportsAgainstUpDemo(t *testing.T) {
	dir := t.TempDir()
	addr, gwAddr := testbin.FreeAddr(t), testbin.FreeAddr(t)
	s := launch(t, addr, dir, "up", "--demo", "--data-dir", dir, "--http-addr", addr, "--logstore-addr", "127.0.0.1:0", "--gateway-addr", gwAddr)
	s.waitReady(t, 30*time.Second)
	server := "http://" + addr

	// 3 days at 5 minutes: busy CPU grows 1 core a day on 8 cores.
	end := time.Now().Add(-10 * time.Minute).Truncate(time.Minute)
	start := end.Add(-72 * time.Hour)
	var b strings.Builder
	busy := 0.0
	for tt := start; !tt.After(end); tt = tt.Add(5 * time.Minute) {
		d := tt.Sub(start).Hours() / 24
		busy += (1 + d + 0.3*math.Sin(2*math.Pi*d)) * 300
		ms := tt.UnixMilli()
		fmt.Fprintf(&b, "node_cpu_seconds_total{datacenter=\"dc-e2e\",node=\"e2e-1\",cpu=\"0\",mode=\"user\"} %.1f %d\n", busy, ms)
		for c := range 8 {
			fmt.Fprintf(&b, "node_cpu_seconds_total{datacenter=\"dc-e2e\",node=\"e2e-1\",cpu=\"%d\",mode=\"idle\"} %.1f %d\n", c, tt.Sub(start).Seconds()/2, ms)
		}
		fmt.Fprintf(&b, "node_memory_MemTotal_bytes{datacenter=\"dc-e2e\",node=\"e2e-1\"} %d %d\n", 32<<30, ms)
		fmt.Fprintf(&b, "node_memory_MemAvailable_bytes{datacenter=\"dc-e2e\",node=\"e2e-1\"} %d %d\n", 20<<30, ms)
	}
	s.importText(t, "", b.String())

	out := filepath.Join(dir, "r.html")
	waitUntil(t, 30*time.Second, "a capacity report with the imported datacenter", func() bool {
		r := opspilot(t, "report", "capacity", "--range", "3d", "--out", out, "--server", server)
		if r.code != 0 {
			t.Logf("report capacity: %s", r)
			return false
		}
		html, _ := os.ReadFile(out)
		return strings.Contains(string(html), "Datacenter dc-e2e")
	})
	html, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(html), `<img class="chart"`); n < 2 {
		t.Errorf("%d charts in the report, want at least dc-e2e's two", n)
	}
	// Busy ~4 cores now, +1 a day: 80% of 8 cores (6.4) in about 2.4 days.
	if !strings.Contains(string(html), "datacenter dc-e2e needs") {
		t.Errorf("no recommendation for dc-e2e in the report")
	}
	r := opspilot(t, "report", "capacity", "--range", "3d", "--format", "text", "--server", server)
	if r.code != 0 || !strings.Contains(r.stdout, "datacenter dc-e2e needs") {
		t.Errorf("text report:\n%s", r)
	}

	// Kill a billing instance: the node restarts it, the agent counts it.
	var is []model.Instance
	r = opspilot(t, "get", "instances", "-o", "json", "--server", server)
	if err := json.Unmarshal([]byte(r.stdout), &is); err != nil || len(is) == 0 || is[0].PID == 0 {
		t.Fatalf("instances: %v %s", err, r)
	}
	victim := is[0]
	if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 60*time.Second, "the killed instance in the inspection", func() bool {
		r = opspilot(t, "report", "inspection", "--server", server)
		return r.code == 0 && strings.Contains(r.stdout, victim.ID)
	})
	// The control plane knows of the restart at once, the agent's counter
	// (container_restarts_total) on its next round: either reports it.
	if !strings.Contains(r.stdout, "Instances restarting: 1 instances") {
		t.Errorf("inspection:\n%s", r.stdout)
	}
	// dc-e2e's history ends 10 minutes ago: its node has sent nothing since.
	if !strings.Contains(r.stdout, "e2e-1: no host metrics since") {
		t.Errorf("the silent node is not reported:\n%s", r.stdout)
	}
	t.Logf("inspection:\n%s", r.stdout)
}
