package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"opspilot/orchestrator/model"
)

// The tests run instances of the test binary itself: with
// RUNTIME_TEST_HELPER set (in Spec.Env), TestMain becomes a small service
// instead of running tests. Re-executing is faster than building a helper.
const helperEnv = "RUNTIME_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helperMain(mode))
	}
	os.Exit(m.Run())
}

// helperInfo is what the helper server reports at /info.
type helperInfo struct {
	Args   []string
	Env    []string
	Dir    string
	PID    int
	Config string
}

// helperMain is the helper service. Every mode appends its start time to
// starts.log in its directory.
//
//   - crash: writes to stderr and exits 1.
//   - server: serves HTTP on $PORT: /healthz (500 while the file
//     "unhealthy" exists; it is removed at start), /info, /metrics (the
//     counter helper_requests_total 42). On SIGTERM it
//     writes the file "sigterm", then exits 0 after HELPER_TERM_DELAY, or
//     never when HELPER_IGNORE_TERM is set.
func helperMain(mode string) int {
	dir, _ := os.Getwd()
	f, err := os.OpenFile(filepath.Join(dir, "starts.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err == nil {
		fmt.Fprintln(f, time.Now().UnixNano())
		f.Close()
	}
	switch mode {
	case "crash":
		fmt.Fprintln(os.Stderr, "helper: crashing on purpose")
		return 1
	case "server":
	default:
		fmt.Fprintln(os.Stderr, "helper: unknown mode", mode)
		return 2
	}
	_ = os.Remove(filepath.Join(dir, "unhealthy"))
	terms := make(chan os.Signal, 1)
	signal.Notify(terms, syscall.SIGTERM)
	l, err := net.Listen("tcp", ":"+os.Getenv("PORT"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 3
	}
	fmt.Printf("helper started pid=%d port=%s\n", os.Getpid(), os.Getenv("PORT"))
	fmt.Fprintln(os.Stderr, "helper: stderr works")
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if _, err := os.Stat(filepath.Join(dir, "unhealthy")); err == nil {
			http.Error(w, "unhealthy", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("/info", func(w http.ResponseWriter, r *http.Request) {
		cfg, _ := os.ReadFile(filepath.Join(dir, "config", "app.conf"))
		json.NewEncoder(w).Encode(helperInfo{Args: os.Args, Env: os.Environ(), Dir: dir, PID: os.Getpid(), Config: string(cfg)})
	})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, "# TYPE helper_requests_total counter\nhelper_requests_total{path=%q} 42\n", r.URL.Path)
	})
	go http.Serve(l, mux)
	<-terms
	os.WriteFile(filepath.Join(dir, "sigterm"), []byte(time.Now().Format(time.RFC3339Nano)), 0o644)
	if os.Getenv("HELPER_IGNORE_TERM") != "" {
		select {}
	}
	if d, err := time.ParseDuration(os.Getenv("HELPER_TERM_DELAY")); err == nil {
		time.Sleep(d)
	}
	return 0
}

// helperSpec is a process instance of the helper server with an HTTP
// readiness probe on its first port.
func helperSpec(t *testing.T, id string, env map[string]string) Spec {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// GORACE: a race-enabled binary otherwise sleeps 1s when it exits 0.
	e := map[string]string{helperEnv: "server", "GORACE": "atexit_sleep_ms=0"}
	for k, v := range env {
		e[k] = v
	}
	return Spec{
		InstanceID: id, Service: "svc-" + id, Tenant: "team", Version: "v1",
		Runtime:   "process",
		Command:   []string{exe},
		Env:       e,
		Ports:     []model.Port{{Name: "http", Port: 8080}},
		Readiness: httpProbe("/healthz", 8080, time.Second, 3),
		StopGrace: 3 * time.Second,
	}
}

// httpProbe is an HTTP probe of path on declared port.
func httpProbe(path string, port int, period time.Duration, threshold int) *model.Probe {
	return &model.Probe{
		HTTP:             &model.HTTPProbe{Path: path, Port: port},
		Period:           period,
		Timeout:          min(period, 500*time.Millisecond),
		FailureThreshold: threshold,
	}
}

// testLogger returns a logger writing into a buffer the test can read, and
// to the test log on failure.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func testLogger(t *testing.T) (*slog.Logger, *logBuffer) {
	buf := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("runtime log:\n%s", buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// waitFor polls cond every 5ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// statusOf returns the manager's status of id.
func statusOf(m *Manager, id string) (Status, bool) {
	for _, s := range m.Statuses() {
		if s.InstanceID == id {
			return s, true
		}
	}
	return Status{}, false
}

func stateIs(m *Manager, id, state string) func() bool {
	return func() bool {
		s, ok := statusOf(m, id)
		return ok && s.State == state
	}
}

// getInfo asks a helper server for its /info.
func getInfo(t *testing.T, port int) helperInfo {
	t.Helper()
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(port) + "/info")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var info helperInfo
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		t.Fatal(err)
	}
	return info
}

// readStarts returns the start times the helper appended to starts.log.
func readStarts(t *testing.T, dir string) []time.Time {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "starts.log"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []time.Time
	for _, line := range strings.Fields(string(data)) {
		n, err := strconv.ParseInt(line, 10, 64)
		if err != nil {
			t.Fatalf("starts.log: %v", err)
		}
		out = append(out, time.Unix(0, n))
	}
	return out
}

func envMap(env []string) map[string]string {
	m := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// closeManager stops m at the end of the test.
func closeManager(t *testing.T, m *Manager) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		m.Close(ctx)
	})
}
