package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"opspilot/test/testbin"
)

// TestUpAgentShipsHostMetricsAndLogs is issue 3's "done when": with
// `opspilot up` running, node_load1 and rate(node_cpu_seconds_total[1m])
// come back labelled with datacenter and node within 10 s, and a line
// written to a tailed file is in the log store within 10 s.
func TestUpAgentShipsHostMetricsAndLogs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	logFile := filepath.Join(dir, "app.log")
	if err := os.WriteFile(logFile, []byte("booting\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := testbin.FreeAddr(t)
	opspilotBin(t) // build (or wait for another test's build) before the clock starts
	started := time.Now()
	s := launch(t, addr, dir, "up", "--data-dir", dir, "--http-addr", addr, "--logstore-addr", "127.0.0.1:0", "--tail", logFile)
	s.waitReady(t, startTimeout)

	for _, expr := range []string{`node_load1`, `rate(node_cpu_seconds_total{mode="idle"}[1m])`} {
		for {
			r := s.query(t, "", expr)
			if len(r.Data.Result) > 0 {
				m := r.Data.Result[0].Metric
				if m["datacenter"] != "local" || m["node"] == "" {
					t.Fatalf("%s: series lack datacenter=local and node: %v", expr, m)
				}
				break
			}
			if time.Since(started) > 10*time.Second {
				t.Fatalf("%s returned no series within 10 s of start\n%s", expr, tail(s.p))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	// The log store's address is in the banner.
	var vl string
	for _, line := range strings.Split(s.p.Stdout.String(), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "logstore      VictoriaLogs at "); ok {
			vl = strings.Fields(rest)[0]
		}
	}
	if vl == "" {
		t.Fatalf("no logstore line in the banner:\n%s", s.p.Stdout.String())
	}
	written := time.Now()
	f, err := os.OpenFile(logFile, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, `{"level":"error","msg":"payment gateway timeout","order":7}`)
	_ = f.Close()
	for {
		resp, err := http.Get(vl + "/select/logsql/query?query=" + url.QueryEscape(`"payment gateway timeout"`))
		if err == nil {
			var doc map[string]any
			dec := json.NewDecoder(resp.Body)
			found := dec.Decode(&doc) == nil
			_ = resp.Body.Close()
			if found {
				if doc["level"] != "error" || doc["datacenter"] != "local" || doc["service"] != "local" {
					t.Fatalf("log line stored without its fields: %v", doc)
				}
				break
			}
		}
		if time.Since(written) > 10*time.Second {
			t.Fatalf("the log line was not in the log store within 10 s\n%s", tail(s.p))
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.stopClean(t, 15*time.Second)
}

// TestAgentKill9WhileServerDownLosesNothing: samples pushed to a standalone
// agent (204 = in its disk queue) while the server is down survive a
// kill -9 of the agent and arrive once both are back.
func TestAgentKill9WhileServerDownLosesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	srvAddr, agentAddr := testbin.FreeAddr(t), testbin.FreeAddr(t)
	cfg := writeFile(t, dir, "opspilot.yaml", tokenConfig(filepath.Join(dir, "server"), srvAddr))
	tokenFile := writeFile(t, dir, "agent.token", writerToken+"\n")
	agentArgs := []string{"agent", "--server", "http://" + srvAddr, "--token-file", tokenFile,
		"--data-dir", filepath.Join(dir, "agent"), "--http-addr", agentAddr, "--datacenter", "dc-e2e", "--node", "node-e2e"}

	srv := launch(t, srvAddr, dir, "server", "-c", cfg)
	srv.waitReady(t, startTimeout)
	agent := testbin.Start(t, opspilotBin(t), agentArgs...)
	testbin.WaitHealthy(t, "http://"+agentAddr+"/healthz", 20*time.Second)

	// The agent ships host metrics to the server with its labels.
	srv.pollNewSample(t, readerToken, `count(node_load1{datacenter="dc-e2e",node="node-e2e"})`, 1, time.Now())

	srv.stopClean(t, 15*time.Second)
	const batches, perBatch = 20, 50
	for b := range batches {
		var body strings.Builder
		for i := range perBatch {
			fmt.Fprintf(&body, "e2e_agent_kill{batch=\"%d\",i=\"%d\"} %d\n", b, i, b*perBatch+i)
		}
		code, resp := do(t, http.MethodPost, "http://"+agentAddr+"/api/v1/import/prometheus", "", body.String())
		if code != http.StatusNoContent {
			t.Fatalf("push batch %d to the agent: %d %s", b, code, resp)
		}
	}
	if err := agent.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, _ = agent.Wait(10 * time.Second)

	srv2 := launch(t, srvAddr, dir, "server", "-c", cfg)
	srv2.waitReady(t, startTimeout)
	testbin.Start(t, opspilotBin(t), agentArgs...)
	start := time.Now()
	for {
		r := srv2.query(t, readerToken, `count(last_over_time(e2e_agent_kill[1h]))`)
		if len(r.Data.Result) == 1 && int(r.Data.Result[0].Value) == batches*perBatch {
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("after kill -9 and restart: %v series of e2e_agent_kill, want %d", r.Data.Result, batches*perBatch)
		}
		time.Sleep(300 * time.Millisecond)
	}
	r := srv2.query(t, readerToken, `sum(count_over_time(e2e_agent_kill[1h]))`)
	if len(r.Data.Result) != 1 || int(r.Data.Result[0].Value) != batches*perBatch {
		t.Fatalf("every pushed sample once: got %v, want %d", r.Data.Result, batches*perBatch)
	}
}
