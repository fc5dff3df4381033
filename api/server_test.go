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
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.yaml.in/yaml/v3"
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
		Authenticate: func(tok string) (Caller, bool) {
			return Caller{Name: "node:n1", Role: RoleNode}, tok == nodeTok
		},
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

const nodeTok = "node-token-for-n1-0123456789"

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
		{"openapi.json needs no token", "GET", "/api/v1/openapi.json", "", 200, `"openapi":"3.0.3"`},
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
		{"node token writes samples", "POST", "/prometheus/api/v1/write", nodeTok, 200, "tsdb saw POST /prometheus/api/v1/write"},
		{"node token imports samples", "POST", "/prometheus/api/v1/import/prometheus", nodeTok, 200, "tsdb saw"},
		{"node token cannot query", "GET", "/prometheus/api/v1/query?query=up", nodeTok, 403, "node:n1 is a node credential: it may only write samples"},
		{"node token cannot delete series", "POST", "/prometheus/api/v1/admin/tsdb/delete_series", nodeTok, 403, "may only write samples"},
		{"node token cannot read status", "GET", "/api/v1/status", nodeTok, 403, "node credential"},
		{"metrics without token", "GET", "/metrics", "", 401, ""},
		{"unknown API path", "GET", "/api/v1/nothing", readTok, 404, "no API endpoint GET /api/v1/nothing; see /api/v1/openapi.yaml or /api/v1/openapi.json"},
		{"index names openapi.json", "GET", "/", "", 200, "/api/v1/openapi.json"},
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
	if got := testutil.ToFloat64(s.requests.WithLabelValues("prometheus", "403")); got != 4 { // 2 read-token writes, 2 node-token reads
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

// TestOpenAPIJSON checks that /api/v1/openapi.json is served without a
// token and is the YAML document: the same paths and methods, and the same
// document as a YAML 1.2 parser reads the YAML (the conversion uses a YAML
// 1.1 parser, which reads unquoted yes/no/on/off as booleans).
func TestOpenAPIJSON(t *testing.T) {
	s, _ := start(t, withTokens(), false) // not ready: the document is served regardless
	resp, err := http.Get(s.URL() + "/api/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /api/v1/openapi.json without a token: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if !bytes.Equal(body, OpenAPIJSON()) {
		t.Error("the served JSON differs from OpenAPIJSON()")
	}
	var fromJSON map[string]any
	if err := json.Unmarshal(body, &fromJSON); err != nil {
		t.Fatalf("openapi.json is not valid JSON: %v", err)
	}

	code, served := do(t, "GET", s.URL()+"/api/v1/openapi.yaml", "")
	if code != 200 || served != string(OpenAPIYAML()) {
		t.Fatalf("GET /api/v1/openapi.yaml: %d, or differs from OpenAPIYAML()", code)
	}
	var fromYAML map[string]any
	if err := yaml.Unmarshal(OpenAPIYAML(), &fromYAML); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	// Through JSON, so numbers compare as float64 on both sides.
	data, err := json.Marshal(fromYAML)
	if err != nil {
		t.Fatalf("openapi.yaml has a mapping with non-string keys: %v", err)
	}
	fromYAML = nil
	if err := json.Unmarshal(data, &fromYAML); err != nil {
		t.Fatal(err)
	}

	jsonOps, yamlOps := operations(t, fromJSON), operations(t, fromYAML)
	if len(yamlOps) < 30 {
		t.Errorf("openapi.yaml documents only %d operations", len(yamlOps))
	}
	if !slices.Equal(jsonOps, yamlOps) {
		t.Errorf("paths and methods differ:\n json: %v\n yaml: %v", jsonOps, yamlOps)
	}
	if !reflect.DeepEqual(fromJSON, fromYAML) {
		t.Error("openapi.json differs from openapi.yaml as a YAML 1.2 parser reads it; quote scalars such as yes, no, on, off in the YAML")
	}
}

// operations lists "METHOD /path" for every operation of an OpenAPI
// document, sorted.
func operations(t *testing.T, doc map[string]any) []string {
	t.Helper()
	paths, ok := doc["paths"].(map[string]any)
	if !ok {
		t.Fatal("the document has no paths")
	}
	var out []string
	for path, item := range paths {
		for method := range item.(map[string]any) {
			switch method {
			case "get", "put", "post", "delete", "patch", "head", "options", "trace":
				out = append(out, strings.ToUpper(method)+" "+path)
			}
		}
	}
	slices.Sort(out)
	return out
}
