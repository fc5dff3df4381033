package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"opspilot/test/testbin"
)

// crashDurability is how long after a write a sample is certain to be on
// disk, so that it survives `kill -9`: tsdb.CrashLossWindow for the default
// flush_interval (8 s: raw rows wait up to two 2 s ticks, the in-memory part
// then reaches disk after its 2 s deadline on the next 2 s flush tick), plus
// headroom for a loaded machine.
const crashDurability = 11 * time.Second

// TestUpReadyWithin2s is the first thing a user sees: `opspilot up` serves
// within 2 s, healthy, with a working Prometheus query API. It does not run
// in parallel, so that the time measured is opspilot's own.
func TestUpReadyWithin2s(t *testing.T) {
	dir := t.TempDir()
	addr := testbin.FreeAddr(t)
	s := launch(t, addr, dir, "up", "--data-dir", dir, "--http-addr", addr, "--logstore-addr", "127.0.0.1:0")
	took := s.waitReady(t, 10*time.Second)
	if took > 2*time.Second {
		t.Errorf("ready line appeared %s after start, want within 2s\n%s", took.Round(time.Millisecond), tail(s.p))
	}
	t.Logf("ready after %s", took.Round(time.Millisecond))
	if !strings.HasPrefix(s.p.Stdout.String(), "opspilot ") {
		t.Errorf("stdout does not start with the banner:\n%s", s.p.Stdout.String())
	}

	code, body := do(t, http.MethodGet, s.base+"/healthz", "", "")
	if code != http.StatusOK {
		t.Errorf("GET /healthz: %d %q, want 200", code, body)
	}
	// Exactly what `curl http://ADDR/prometheus/api/v1/query?query=up` sees.
	code, body = do(t, http.MethodGet, s.base+"/prometheus/api/v1/query?query=up", "", "")
	if code != http.StatusOK {
		t.Fatalf("GET /prometheus/api/v1/query?query=up: %d %s", code, body)
	}
	var r struct {
		Status string `json:"status"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("query answer is not JSON: %v\n%s", err, body)
	}
	if r.Status != "success" || r.Data.ResultType != "vector" || r.Data.Result == nil {
		t.Errorf("query answer %s, want Prometheus JSON with status success and a vector result", body)
	}

	st := s.status(t, "")
	ts := tsdbStatus(t, st)
	if st["ready"] != true || st["local_mode"] != true {
		t.Errorf("/api/v1/status ready=%v local_mode=%v, want both true", st["ready"], st["local_mode"])
	}
	if v, _ := st["version"].(string); v == "" {
		t.Errorf("/api/v1/status has no version: %v", st)
	}
	if ts["mode"] != "embedded" || ts["unclean_shutdown"] != false {
		t.Errorf("/api/v1/status tsdb = %v, want mode embedded and unclean_shutdown false", ts)
	}
	if d, _ := ts["data_dir"].(string); !strings.HasPrefix(d, dir) {
		t.Errorf("/api/v1/status tsdb.data_dir = %q, want a directory inside --data-dir %s", d, dir)
	}
	code, body = do(t, http.MethodGet, s.base+"/api/v1/openapi.yaml", "", "")
	if code != http.StatusOK || !strings.HasPrefix(body, "openapi: 3") {
		t.Errorf("GET /api/v1/openapi.yaml: %d, body starts %q; want 200 and an OpenAPI 3 document", code, body[:min(len(body), 40)])
	}
	code, body = do(t, http.MethodGet, s.base+"/metrics", "", "")
	if code != http.StatusOK || !strings.Contains(body, "opspilot_http_requests_total{") {
		t.Errorf("GET /metrics: %d, want 200 with opspilot_http_requests_total", code)
	}
}

// TestQueryBuildInfoWithin20s: the banner's suggestion `opspilot query
// opspilot_build_info` shows opspilot's own metrics within 20 s of start.
func TestQueryBuildInfoWithin20s(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	addr := testbin.FreeAddr(t)
	s := launch(t, addr, dir, "up", "--data-dir", dir, "--http-addr", addr, "--logstore-addr", "127.0.0.1:0")
	s.waitReady(t, startTimeout)

	var r result
	for {
		r = opspilot(t, "query", "--server", s.base, "opspilot_build_info")
		if r.code != 0 {
			t.Fatalf("opspilot query opspilot_build_info failed:\n%s\n%s", r, tail(s.p))
		}
		if strings.Contains(r.stdout, "opspilot_build_info{") {
			break
		}
		if time.Since(s.started) > 20*time.Second {
			t.Fatalf("opspilot query opspilot_build_info showed no series within 20s of start; last run:\n%s\n%s", r, tail(s.p))
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Logf("opspilot_build_info queryable %s after start", time.Since(s.started).Round(time.Millisecond))
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) < 2 || strings.Join(strings.Fields(lines[0]), " ") != "SERIES VALUE TIME" {
		t.Fatalf("table output: want header SERIES VALUE TIME and a row, got:\n%s", r.stdout)
	}
	row := lines[1]
	if !strings.Contains(row, `job="opspilot"`) || !strings.Contains(row, `version="`) {
		t.Errorf("row %q lacks job=\"opspilot\" or version", row)
	}
	if f := strings.Fields(row); len(f) < 3 || f[len(f)-2] != "1" {
		t.Errorf("row %q: want value 1 before the time column", row)
	} else if _, err := time.Parse(time.RFC3339, f[len(f)-1]); err != nil {
		t.Errorf("row %q: time column: %v", row, err)
	}

	r = opspilot(t, "query", "--server", s.base, "-o", "json", "opspilot_build_info")
	if r.code != 0 {
		t.Fatalf("opspilot query -o json failed:\n%s", r)
	}
	var out struct {
		ResultType string       `json:"resultType"`
		Result     model.Vector `json:"result"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("-o json output does not parse: %v\n%s", err, r.stdout)
	}
	if out.ResultType != "vector" || len(out.Result) == 0 {
		t.Fatalf("-o json: resultType %q with %d samples, want a non-empty vector\n%s", out.ResultType, len(out.Result), r.stdout)
	}
	m := out.Result[0].Metric
	if m["__name__"] != "opspilot_build_info" || m["job"] != "opspilot" || m["instance"] != model.LabelValue(addr) {
		t.Errorf("-o json metric %v, want opspilot_build_info with job=\"opspilot\" and instance=%q", m, addr)
	}
	if out.Result[0].Value != 1 {
		t.Errorf("-o json value %v, want 1", out.Result[0].Value)
	}
}

// TestWriteQueryRoundTripAndRestartKeepsData: written samples are queryable
// and survive a clean stop (Ctrl-C) and restart.
func TestWriteQueryRoundTripAndRestartKeepsData(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	addr := testbin.FreeAddr(t)
	s := startUp(t, dir, addr)

	written := time.Now()
	s.importText(t, "", "e2e_restart_metric{case=\"a\"} 42\n")
	took := s.pollNewSample(t, "", `e2e_restart_metric{case="a"}`, 42, written)
	t.Logf("written sample queried back %s after the write", took.Round(time.Millisecond))

	s.stopClean(t, 10*time.Second)
	if strings.Contains(s.p.Stderr.String(), "level=ERROR") {
		t.Errorf("clean stop logged an error:\n%s", tail(s.p))
	}

	s2 := startUp(t, dir, addr) // same data dir, same port
	s2.pollValue(t, "", `last_over_time(e2e_restart_metric{case="a"}[1h])`, 42, 5*time.Second)
	if strings.Contains(s2.p.Stderr.String(), "did not shut down cleanly") {
		t.Errorf("restart after a clean stop warns about an unclean shutdown:\n%s", tail(s2.p))
	}
	if ts := tsdbStatus(t, s2.status(t, "")); ts["unclean_shutdown"] != false {
		t.Errorf("after a clean stop /api/v1/status tsdb.unclean_shutdown = %v, want false", ts["unclean_shutdown"])
	}
	s2.stopClean(t, 10*time.Second)
}

// TestSecondInstanceSameDataDirFails: a second opspilot on the same data
// directory refuses to start, names the holder, and leaves the first alone.
func TestSecondInstanceSameDataDirFails(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first := startUp(t, dir, testbin.FreeAddr(t))
	written := time.Now()
	first.importText(t, "", "e2e_second_instance 3\n")

	addr2 := testbin.FreeAddr(t)
	second := launch(t, addr2, dir, "up", "--data-dir", dir, "--http-addr", addr2, "--logstore-addr", "127.0.0.1:0")
	code := waitExit(t, second.p, 10*time.Second)
	if code == 0 {
		t.Fatalf("second opspilot on the same data dir exited 0\n%s", tail(second.p))
	}
	want := fmt.Sprintf("is in use by another opspilot (pid %d)", first.p.Cmd.Process.Pid)
	if !strings.Contains(second.p.Stderr.String(), want) {
		t.Errorf("second opspilot's stderr lacks %q\n%s", want, tail(second.p))
	}
	if strings.Contains(second.p.Stdout.String(), "opspilot ready on") {
		t.Errorf("second opspilot printed a ready line:\n%s", tail(second.p))
	}

	if first.p.Exited() {
		t.Fatalf("the first opspilot ended\n%s", tail(first.p))
	}
	if code, body := do(t, http.MethodGet, first.base+"/healthz", "", ""); code != http.StatusOK {
		t.Errorf("first opspilot's /healthz: %d %q, want 200", code, body)
	}
	first.pollNewSample(t, "", "e2e_second_instance", 3, written)
}

// TestBusyPort: a busy HTTP port is reported as such, before the data
// directory is touched, so the directory stays free for the next start.
func TestBusyPort(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	busy := ln.Addr().String()

	s := launch(t, busy, dir, "up", "--data-dir", dir, "--http-addr", busy, "--logstore-addr", "127.0.0.1:0")
	if code := waitExit(t, s.p, 10*time.Second); code == 0 {
		t.Fatalf("opspilot up on a busy port exited 0\n%s", tail(s.p))
	}
	if stderr := s.p.Stderr.String(); !strings.Contains(stderr, "already in use") || !strings.Contains(stderr, busy) {
		t.Errorf("stderr lacks %q naming %s\n%s", "already in use", busy, tail(s.p))
	}
	if _, err := os.Stat(filepath.Join(dir, "tsdb")); !os.IsNotExist(err) {
		t.Errorf("a failed start on a busy port touched the data dir (stat %s/tsdb: %v)", dir, err)
	}

	s2 := startUp(t, dir, testbin.FreeAddr(t))
	s2.importText(t, "", "e2e_busy_port 1\n")
	s2.stopClean(t, 10*time.Second)
}

// TestKill9ThenRestartDetectsUncleanShutdown: after a crash the next start
// says so (log, status, metric) and keeps what had reached disk.
func TestKill9ThenRestartDetectsUncleanShutdown(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	addr := testbin.FreeAddr(t)
	s := startUp(t, dir, addr)

	written := time.Now()
	s.importText(t, "", "e2e_kill_metric{case=\"a\"} 5\n")
	s.pollNewSample(t, "", `e2e_kill_metric{case="a"}`, 5, written)
	time.Sleep(time.Until(written.Add(crashDurability)))

	if err := s.p.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, s.p, 10*time.Second); code != -1 {
		t.Fatalf("after SIGKILL exit code %d, want death by signal", code)
	}

	s2 := startUp(t, dir, addr)
	if !strings.Contains(s2.p.Stderr.String(), "did not shut down cleanly") {
		t.Errorf("restart after kill -9 does not warn %q\n%s", "did not shut down cleanly", tail(s2.p))
	}
	if ts := tsdbStatus(t, s2.status(t, "")); ts["unclean_shutdown"] != true {
		t.Errorf("after kill -9 /api/v1/status tsdb.unclean_shutdown = %v, want true", ts["unclean_shutdown"])
	}
	if code, body := do(t, http.MethodGet, s2.base+"/metrics", "", ""); code != http.StatusOK || !strings.Contains(body, "\nopspilot_tsdb_unclean_shutdown 1\n") {
		t.Errorf("GET /metrics: %d; want opspilot_tsdb_unclean_shutdown 1", code)
	}
	s2.pollValue(t, "", `last_over_time(e2e_kill_metric{case="a"}[1h])`, 5, 5*time.Second)
	s2.stopClean(t, 10*time.Second)
}

// TestPromtoolQueriesOpspilot: Prometheus tooling works against
// http://ADDR/prometheus, the URL the banner gives for Grafana.
func TestPromtoolQueriesOpspilot(t *testing.T) {
	t.Parallel()
	promtool := testbin.Tool(t, "promtool")
	s := startUp(t, t.TempDir(), testbin.FreeAddr(t))
	written := time.Now()
	s.importText(t, "", "e2e_promtool_metric{src=\"promtool\"} 7\n")
	time.Sleep(time.Until(written.Add(firstQueryAfter)))

	// promtool prints one line per sample: `METRIC{LABELS} => VALUE @[TIME]`.
	want := `e2e_promtool_metric{src="promtool"} => 7 @[`
	for {
		r := run(t, 20*time.Second, nil, promtool, "query", "instant", s.base+"/prometheus", "e2e_promtool_metric")
		if r.code == 0 && strings.Contains(r.stdout, want) {
			break
		}
		if time.Since(written) > newSeriesSearchable {
			t.Fatalf("promtool query instant did not print %q within %s of the write; last run:\n%s\n%s", want, newSeriesSearchable, r, tail(s.p))
		}
		time.Sleep(300 * time.Millisecond)
	}

	r := run(t, 20*time.Second, nil, promtool, "query", "labels", s.base+"/prometheus", "src")
	if r.code != 0 {
		t.Fatalf("promtool query labels failed:\n%s", r)
	}
	if !strings.Contains("\n"+r.stdout, "\npromtool\n") {
		t.Errorf("promtool query labels src: want a line %q\n%s", "promtool", r)
	}
}
