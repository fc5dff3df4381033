package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"opspilot/test/testbin"
)

const (
	readerToken = "reader-token-0123456789"
	writerToken = "writer-token-0123456789"
)

// writeFile writes content to name in dir and returns its path.
func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// tokenConfig is an opspilot.yaml with a read and a write token.
func tokenConfig(dataDir, addr string) string {
	return fmt.Sprintf(`data_dir: %s
server:
  http_addr: %s
  auto_tls: false
  auth:
    tokens:
      - {name: reader, role: read, token: %q}
      - {name: writer, role: write, token: %q}
`, dataDir, addr, readerToken, writerToken)
}

// TestServerRequiresTokens: `opspilot server` enforces API tokens and roles
// on the API, the Prometheus API and the CLI, and refuses to run without any.
func TestServerRequiresTokens(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	addr := testbin.FreeAddr(t)
	cfg := writeFile(t, dir, "opspilot.yaml", tokenConfig(filepath.Join(dir, "data"), addr))
	s := launch(t, addr, dir, "server", "-c", cfg)
	s.waitReady(t, startTimeout)

	written := time.Now() // the write token's import below
	queryURL := s.base + "/prometheus/api/v1/query?query=up"
	importURL := s.base + "/prometheus/api/v1/import/prometheus"
	for _, c := range []struct {
		what, method, url, token, body string
		want                           int
	}{
		{"status without token", http.MethodGet, s.base + "/api/v1/status", "", "", http.StatusUnauthorized},
		{"query without token", http.MethodGet, queryURL, "", "", http.StatusUnauthorized},
		{"query with unknown token", http.MethodGet, queryURL, "unknown-token-0123456789", "", http.StatusUnauthorized},
		{"healthz without token", http.MethodGet, s.base + "/healthz", "", "", http.StatusOK},
		{"status with read token", http.MethodGet, s.base + "/api/v1/status", readerToken, "", http.StatusOK},
		{"query with read token", http.MethodGet, queryURL, readerToken, "", http.StatusOK},
		{"import with read token", http.MethodPost, importURL, readerToken, "e2e_auth_metric 1\n", http.StatusForbidden},
		{"remote write with read token", http.MethodPost, s.base + "/prometheus/api/v1/write", readerToken, "x", http.StatusForbidden},
		{"import without token", http.MethodPost, importURL, "", "e2e_auth_metric 1\n", http.StatusUnauthorized},
		{"import with write token", http.MethodPost, importURL, writerToken, "e2e_auth_metric{by=\"writer\"} 11\n", http.StatusNoContent},
	} {
		code, body := do(t, c.method, c.url, c.token, c.body)
		if code != c.want {
			t.Errorf("%s: %s %s answered %d %s, want %d", c.what, c.method, c.url, code, strings.TrimSpace(body), c.want)
		}
	}
	if st := s.status(t, readerToken); st["local_mode"] != false {
		t.Errorf("/api/v1/status local_mode = %v, want false for opspilot server", st["local_mode"])
	}
	// What the writer wrote, the reader reads; the reader's own write did not land.
	s.pollNewSample(t, readerToken, "e2e_auth_metric", 11, written)
	if !strings.Contains(s.p.Stderr.String(), "msg=audit token=writer") {
		t.Errorf("the write token's write was not audited in the log\n%s", tail(s.p))
	}

	// The CLI: --token, OPSPILOT_TOKEN, and a clear error without a token.
	r := opspilot(t, "query", "--server", s.base, "--token", readerToken, "up")
	if r.code != 0 || !(strings.HasPrefix(r.stdout, "SERIES") || strings.Contains(r.stderr, "(no series)")) {
		t.Errorf("opspilot query --token <read token> up: want exit 0 and a table\n%s", r)
	}
	r = opspilot(t, "query", "--server", s.base, "--token", readerToken, "e2e_auth_metric")
	if r.code != 0 || !regexp.MustCompile(`(?m)^e2e_auth_metric\{by="writer"\}\s+11\s`).MatchString(r.stdout) {
		t.Errorf("opspilot query --token <read token> e2e_auth_metric: want the writer's sample worth 11\n%s", r)
	}
	r = run(t, 30*time.Second, []string{"OPSPILOT_TOKEN=" + readerToken}, opspilotBin(t), "query", "--server", s.base, "e2e_auth_metric")
	if r.code != 0 || !strings.Contains(r.stdout, `e2e_auth_metric{by="writer"}`) {
		t.Errorf("OPSPILOT_TOKEN=<read token> opspilot query: want the sample\n%s", r)
	}
	r = run(t, 30*time.Second, []string{"OPSPILOT_TOKEN="}, opspilotBin(t), "query", "--server", s.base, "up")
	if r.code != 1 {
		t.Errorf("opspilot query without a token: exit code %d, want 1\n%s", r.code, r)
	}
	if !strings.Contains(r.stderr, "401") || !strings.Contains(r.stderr, "--token") {
		t.Errorf("opspilot query without a token: stderr should give the 401 and point to --token\n%s", r)
	}
	s.stopClean(t, 10*time.Second)
}

// TestServerWithoutTokensRefusesToStart: no tokens, no server.
func TestServerWithoutTokensRefusesToStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	addr := testbin.FreeAddr(t)
	cfg := writeFile(t, dir, "opspilot.yaml", fmt.Sprintf("data_dir: %s\nserver:\n  http_addr: %s\n", filepath.Join(dir, "data"), addr))
	s := launch(t, addr, dir, "server", "-c", cfg)
	if code := waitExit(t, s.p, 10*time.Second); code != 1 {
		t.Fatalf("opspilot server without tokens: exit code %d, want 1\n%s", code, tail(s.p))
	}
	if !strings.Contains(s.p.Stderr.String(), "server.auth.tokens") {
		t.Errorf("stderr does not mention server.auth.tokens\n%s", tail(s.p))
	}
	if strings.Contains(s.p.Stdout.String(), "opspilot ready on") {
		t.Errorf("printed a ready line\n%s", tail(s.p))
	}
}
