package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"opspilot/test/testbin"
)

// TestUpDemoScoresServiceKPIs is issue 5's done-when for the online loop:
// `opspilot up --demo` writes anomaly_score (and expected, lower, upper)
// for the demo service's KPIs, and a restart restores the models from the
// checkpoint instead of relearning.
func TestUpDemoScoresServiceKPIs(t *testing.T) {
	dir := t.TempDir()
	addr, gwAddr := testbin.FreeAddr(t), testbin.FreeAddr(t)
	// Short intervals so the test does not wait for the 10 s defaults.
	cfgFile := writeFile(t, dir, "opspilot.yaml", `
self_monitoring:
  interval: 1s
analyzer:
  interval: 1s
`)
	args := []string{"up", "--demo", "-c", cfgFile, "--data-dir", dir, "--http-addr", addr, "--logstore-addr", "127.0.0.1:0", "--gateway-addr", gwAddr}
	s := launch(t, addr, dir, args...)
	s.waitReady(t, 15*time.Second)
	server := "http://" + addr

	stop := make(chan struct{})
	defer close(stop)
	go func() {
		client := &http.Client{Timeout: 2 * time.Second}
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if resp, err := client.Post("http://"+gwAddr+"/billing/pay", "application/json", strings.NewReader(`{"amount": 3, "shop": "e2e"}`)); err == nil {
				resp.Body.Close()
			}
		}
	}()

	for _, name := range []string{"anomaly_score", "anomaly_expected", "anomaly_lower", "anomaly_upper"} {
		expr := name + `{service="billing", for="service_requests"}`
		waitUntil(t, 60*time.Second, expr, func() bool {
			r := opspilot(t, "query", expr, "--server", server)
			return r.code == 0 && strings.Contains(r.stdout, `service="billing"`)
		})
	}
	// The instances' container metrics are scored too: the node tells the
	// collector their cgroups once they have started (not only when the
	// assignments change, which here they never do after the first).
	waitUntil(t, 60*time.Second, "container_memory scores for billing's 3 instances", func() bool {
		r := opspilot(t, "query", `count(anomaly_score{for="container_memory", service="billing"})`, "--server", server)
		return r.code == 0 && strings.Contains(r.stdout, " 3 ")
	})
	r := opspilot(t, "anomaly", "list", "--service", "billing", "--server", server)
	if r.code != 0 || !strings.Contains(r.stdout, "service_requests") || !strings.Contains(r.stdout, `service="billing"`) {
		t.Fatalf("anomaly list --service billing:\n%s", r)
	}
	t.Logf("anomaly list:\n%s", r.stdout)
	r = opspilot(t, "anomaly", "incidents", "--since", "10m", "--server", server)
	if r.code != 0 {
		t.Fatalf("anomaly incidents:\n%s", r)
	}
	// The log scanner reads the instances' logs from VictoriaLogs and
	// writes per-service log series; the template API answers.
	waitUntil(t, 60*time.Second, "opspilot_log_lines for billing", func() bool {
		r := opspilot(t, "query", `opspilot_log_lines{service="billing"}`, "--server", server)
		return r.code == 0 && strings.Contains(r.stdout, `service="billing"`)
	})
	if r := opspilot(t, "anomaly", "templates", "billing", "--server", server); r.code != 0 {
		t.Fatalf("anomaly templates billing:\n%s", r)
	}

	// Capacity: three days of a service's memory, growing 10 MB a day
	// towards a 1 GB limit, imported with timestamps; the CLI forecasts
	// exhaustion.
	var lines strings.Builder
	now := time.Now().Truncate(10 * time.Minute)
	for ts := now.Add(-72 * time.Hour); !ts.After(now); ts = ts.Add(10 * time.Minute) {
		days := 3 - now.Sub(ts).Hours()/24
		fmt.Fprintf(&lines, "e2e_memory_bytes{service=\"billing\"} %d %d\n", int64(900e6+10e6*days), ts.UnixMilli())
	}
	s.importText(t, "", lines.String())
	var out string
	waitUntil(t, 20*time.Second, "capacity forecast", func() bool {
		r := opspilot(t, "capacity", "billing", "--usage", `sum(e2e_memory_bytes{service="billing"})`, "--capacity", "1e9", "--history", "3d", "--server", server)
		out = r.stdout + r.stderr
		return r.code == 0
	})
	if !strings.Contains(out, "exhausted") || !strings.Contains(out, "growth") {
		t.Fatalf("capacity output:\n%s", out)
	}
	t.Logf("capacity:\n%s", out)

	s.stopClean(t, 20*time.Second)
	ckpt := filepath.Join(dir, "analyzer", "models.ckpt")
	if fi, err := os.Stat(ckpt); err != nil || fi.Size() == 0 {
		t.Fatalf("no checkpoint at %s after a clean stop: %v", ckpt, err)
	}
	s2 := launch(t, addr, dir, args...)
	s2.waitReady(t, 15*time.Second)
	waitForOutput(t, s2.p, s2.p.Stderr, "restored model checkpoint", s2.started, 10*time.Second)
}
