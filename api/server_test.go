package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const (
	readTok  = "read-token-0123456789"
	writeTok = "write-token-0123456789"
	adminTok = "admin-token-0123456789"
)

// start runs a Server on a free loopback port. The TSDB route is served by
// recordTSDB, which answers 200 and the path it saw: these tests are about
// routing and authorisation, the real store is exercised in tsdb and e2e.
func start(t *testing.T, cfg Config, ready bool) (*Server, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	cfg.HTTPAddr = "127.0.0.1:0"
	s, err := New(cfg, Options{
		TSDB:     http.HandlerFunc(recordTSDB),
		Status:   func() any { return map[string]any{"version": "test"} },
		Registry: prometheus.NewRegistry(),
		Log:      slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	s.SetReady(ready)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, &logs
}

func recordTSDB(w http.ResponseWriter, r *http.Request) {
	_, _ = io.WriteString(w, "tsdb saw "+r.Method+" "+r.URL.Path)
}

func withTokens() Config {
	c := DefaultConfig()
	c.Auth.Tokens = []Token{
		{Name: "grafana", Role: RoleRead, Token: readTok},
		{Name: "agent", Role: RoleWrite, Token: writeTok},
		{Name: "sre", Role: RoleAdmin, Token: adminTok},
	}
	return c
}

func do(t *testing.T, method, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestAuthorization(t *testing.T) {
	s, logs := start(t, withTokens(), true)
	base := s.URL()
	for _, tc := range []struct {
		name, method, path, token string
		code                      int
		bodyHas                   string
	}{
		{"health needs no token", "GET", "/healthz", "", 200, "ok"},
		{"openapi needs no token", "GET", "/api/v1/openapi.yaml", "", 200, "openapi: 3"},
		{"status without token", "GET", "/api/v1/status", "", 401, "missing API token"},
		{"status with unknown token", "GET", "/api/v1/status", "not-a-token-at-all", 401, "unknown API token"},
		{"status with read token", "GET", "/api/v1/status", readTok, 200, `"version": "test"`},
		{"query without token", "GET", "/prometheus/api/v1/query?query=up", "", 401, "Bearer"},
		{"query with read token", "GET", "/prometheus/api/v1/query?query=up", readTok, 200, "tsdb saw GET /prometheus/api/v1/query"},
		{"POST query with read token", "POST", "/prometheus/api/v1/query", readTok, 200, "tsdb saw POST"},
		{"remote write with read token", "POST", "/prometheus/api/v1/write", readTok, 403, `has role read; POST /prometheus/api/v1/write needs role write`},
		{"import with read token", "POST", "/prometheus/api/v1/import/prometheus", readTok, 403, "needs role write"},
		{"remote write with write token", "POST", "/prometheus/api/v1/write", writeTok, 200, "tsdb saw POST /prometheus/api/v1/write"},
		{"remote write with admin token", "POST", "/prometheus/api/v1/write", adminTok, 200, "tsdb saw"},
		{"metrics with read token", "GET", "/metrics", readTok, 200, "opspilot_http_requests_total"},
		{"metrics without token", "GET", "/metrics", "", 401, ""},
		{"unknown API path", "GET", "/api/v1/nothing", readTok, 404, "no API endpoint GET /api/v1/nothing"},
		{"unknown page", "GET", "/nothing", "", 404, "no page /nothing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(t, tc.method, base+tc.path, tc.token)
			if code != tc.code || !strings.Contains(body, tc.bodyHas) {
				t.Fatalf("%s %s: got %d %q, want %d containing %q", tc.method, tc.path, code, body, tc.code, tc.bodyHas)
			}
			if code >= 400 && tc.path != "/metrics" {
				var e map[string]string
				if err := json.Unmarshal([]byte(body), &e); err != nil || e["error"] == "" {
					t.Errorf("error answers are JSON with a reason: %q", body)
				}
			}
		})
	}
	// Mutations are recorded with who did them.
	if !strings.Contains(logs.String(), "msg=audit token=agent role=write method=POST path=/prometheus/api/v1/write") {
		t.Errorf("no audit record for the write:\n%s", logs.String())
	}
	if got := testutil.ToFloat64(s.requests.WithLabelValues("prometheus", "403")); got != 2 {
		t.Errorf("403s counted on the prometheus handler: %v", got)
	}
}

func TestLocalModeWithoutTokens(t *testing.T) {
	cfg := DefaultConfig()
	cfg.LocalMode = true
	s, _ := start(t, cfg, true)
	if code, body := do(t, "POST", s.URL()+"/prometheus/api/v1/write", ""); code != 200 {
		t.Fatalf("local mode on loopback needs no token: %d %s", code, body)
	}
}

func TestLocalModeRefusesNonLoopbackWithoutTokens(t *testing.T) {
	cfg := DefaultConfig()
	cfg.LocalMode = true
	cfg.HTTPAddr = "0.0.0.0:9440"
	_, err := New(cfg, Options{})
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("want a refusal naming loopback, got %v", err)
	}
}

func TestServerModeRequiresTokens(t *testing.T) {
	_, err := New(DefaultConfig(), Options{})
	if err == nil || !strings.Contains(err.Error(), "server.auth.tokens") {
		t.Fatalf("want an error naming server.auth.tokens, got %v", err)
	}
}

func TestTokenFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(good, []byte("file-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(short, []byte("abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Auth.Tokens = []Token{{Name: "f", Role: RoleRead, TokenFile: good}}
	s, _ := start(t, cfg, true)
	if code, _ := do(t, "GET", s.URL()+"/api/v1/status", "file-token-0123456789"); code != 200 {
		t.Fatalf("token from file (trailing newline trimmed) should work: %d", code)
	}

	cfg.Auth.Tokens = []Token{{Name: "s", Role: RoleRead, TokenFile: short}}
	if _, err := New(cfg, Options{}); err == nil || !strings.Contains(err.Error(), "shorter than") {
		t.Fatalf("short token file: want a refusal, got %v", err)
	}
	cfg.Auth.Tokens = []Token{{Name: "m", Role: RoleRead, TokenFile: filepath.Join(dir, "missing")}}
	if _, err := New(cfg, Options{}); err == nil || !strings.Contains(err.Error(), `"m"`) {
		t.Fatalf("missing token file: want an error naming the token, got %v", err)
	}
}

func TestNotReadyAnswers503(t *testing.T) {
	s, _ := start(t, withTokens(), false)
	if code, _ := do(t, "GET", s.URL()+"/healthz", ""); code != 503 {
		t.Fatalf("healthz before ready: want 503, got %d", code)
	}
	if code, _ := do(t, "GET", s.URL()+"/prometheus/api/v1/query?query=up", readTok); code != 503 {
		t.Fatalf("TSDB before ready: want 503, got %d", code)
	}
	s.SetReady(true)
	if code, _ := do(t, "GET", s.URL()+"/healthz", ""); code != 200 {
		t.Fatalf("healthz once ready: want 200, got %d", code)
	}
}

func TestBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := withTokens()
	cfg.HTTPAddr = ln.Addr().String()
	s, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Listen()
	if err == nil || !strings.Contains(err.Error(), "already in use") || !strings.Contains(err.Error(), "--http-addr") {
		t.Fatalf("want 'already in use' with a hint, got %v", err)
	}
}

func TestRequestBodyLimit(t *testing.T) {
	cfg := withTokens()
	cfg.MaxRequestBytes = 16
	var logs bytes.Buffer
	cfg.HTTPAddr = "127.0.0.1:0"
	s, err := New(cfg, Options{
		TSDB: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, err := io.ReadAll(r.Body); err != nil {
				http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			}
		}),
		Log: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	s.SetReady(true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() { _ = s.Serve(ctx) }()
	req, _ := http.NewRequest("POST", s.URL()+"/prometheus/api/v1/write", strings.NewReader(strings.Repeat("x", 100)))
	req.Header.Set("Authorization", "Bearer "+writeTok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body: want 413, got %d", resp.StatusCode)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		fields []string
	}{
		{"defaults", func(*Config) {}, nil},
		{"no port", func(c *Config) { c.HTTPAddr = "localhost" }, []string{"http_addr"}},
		{"bad port", func(c *Config) { c.HTTPAddr = "localhost:99999" }, []string{"http_addr"}},
		{"half TLS", func(c *Config) { c.TLSCertFile = "c.pem" }, []string{"tls_key_file"}},
		{"token problems", func(c *Config) {
			c.Auth.Tokens = []Token{
				{Name: "a", Role: "read", Token: "short"},
				{Name: "a", Role: "owner", Token: "0123456789abcdef", TokenFile: "/x"},
				{Role: "read"},
			}
		}, []string{"auth.tokens[0].token", "auth.tokens[1].name", "auth.tokens[1].role", "auth.tokens[1].token_file", "auth.tokens[2].name", "auth.tokens[2].token_file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mutate(&c)
			var got []string
			for _, p := range c.Validate() {
				got = append(got, p.Field)
			}
			if strings.Join(got, ",") != strings.Join(tc.fields, ",") {
				t.Fatalf("want %v, got %v", tc.fields, got)
			}
		})
	}
}
