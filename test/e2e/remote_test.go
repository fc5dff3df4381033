package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"opspilot/test/testbin"
)

// TestServerRemoteMode: `opspilot server` with tsdb.mode remote in front of
// the real VictoriaMetrics binary (basic auth): samples written to opspilot's
// /prometheus land in VictoriaMetrics, queries through opspilot read them
// back, and self-monitoring goes into the remote store.
func TestServerRemoteMode(t *testing.T) {
	t.Parallel()
	vm, _ := testbin.VictoriaMetrics(t, "-httpAuth.username=ops", "-httpAuth.password=vm-password")
	dir := t.TempDir()
	addr := testbin.FreeAddr(t)
	cfg := writeFile(t, dir, "opspilot.yaml", fmt.Sprintf(`data_dir: %s
server:
  http_addr: %s
  auto_tls: false
  auth:
    tokens:
      - {name: reader, role: read, token: %q}
      - {name: writer, role: write, token: %q}
tsdb:
  mode: remote
  remote:
    url: %s
    basic_auth: {username: ops, password: vm-password}
self_monitoring:
  interval: 1s
`, filepath.Join(dir, "data"), addr, readerToken, writerToken, vm))
	s := launch(t, addr, dir, "server", "-c", cfg)
	s.waitReady(t, startTimeout)
	if !strings.Contains(s.p.Stdout.String(), "remote: writes to "+vm+"/api/v1/write") {
		t.Errorf("banner does not name the remote store:\n%s", s.p.Stdout.String())
	}
	if ts := tsdbStatus(t, s.status(t, readerToken)); ts["mode"] != "remote" || ts["query_url"] != vm {
		t.Errorf("/api/v1/status tsdb = %v, want mode remote and query_url %s", ts, vm)
	}

	written := time.Now()
	s.importText(t, writerToken, "e2e_remote_metric{via=\"opspilot\"} 11\n")
	s.pollNewSample(t, readerToken, `e2e_remote_metric{via="opspilot"}`, 11, written)

	// The sample is in VictoriaMetrics itself, not in a local store.
	req, _ := http.NewRequest(http.MethodGet, vm+"/api/v1/export?match[]="+url.QueryEscape(`e2e_remote_metric`), nil)
	req.SetBasicAuth("ops", "vm-password")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	exported, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil || !strings.Contains(string(exported), `"values":[11]`) {
		t.Errorf("VictoriaMetrics export lacks the sample written through opspilot: %s (%v)", exported, err)
	}

	// Self-monitoring reaches the remote store (queried through opspilot).
	deadline := time.Now().Add(newSeriesSearchable)
	for {
		r := s.query(t, readerToken, `opspilot_build_info{job="opspilot"}`)
		if len(r.Data.Result) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("opspilot_build_info never reached the remote store\n%s", tail(s.p))
		}
		time.Sleep(300 * time.Millisecond)
	}
	s.stopClean(t, 10*time.Second)
}
