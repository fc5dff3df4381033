package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"opspilot/test/testbin"
)

// startTimeout bounds how long a server may take to print its ready line in
// tests that do not measure start-up time themselves.
const startTimeout = 15 * time.Second

// opspilotBin is the built opspilot binary.
func opspilotBin(t testing.TB) string {
	t.Helper()
	return testbin.Tool(t, "opspilot")
}

// server is one running `opspilot up` or `opspilot server`.
type server struct {
	p       *testbin.Process
	addr    string // HOST:PORT
	base    string // http://HOST:PORT
	dataDir string
	started time.Time // just before the process was started
}

// startUp runs `opspilot up` on dataDir and addr and waits for its ready line.
func startUp(t testing.TB, dataDir, addr string) *server {
	t.Helper()
	s := launch(t, addr, dataDir, "up", "--data-dir", dataDir, "--http-addr", addr, "--logstore-addr", "127.0.0.1:0")
	s.waitReady(t, startTimeout)
	return s
}

// launch starts opspilot with args without waiting for anything.
func launch(t testing.TB, addr, dataDir string, args ...string) *server {
	t.Helper()
	bin := opspilotBin(t) // build before the clock starts
	s := &server{addr: addr, base: "http://" + addr, dataDir: dataDir, started: time.Now()}
	s.p = testbin.Start(t, bin, args...)
	return s
}

// readyLine is what opspilot prints on stdout once it serves.
func (s *server) readyLine() string { return "opspilot ready on " + s.base + "\n" }

// waitReady waits up to d (measured from the process start) for the ready
// line and returns how long after the start it appeared.
func (s *server) waitReady(t testing.TB, d time.Duration) time.Duration {
	t.Helper()
	return waitForOutput(t, s.p, s.p.Stdout, s.readyLine(), s.started, d)
}

// waitForOutput polls buf until it contains want, failing when d has passed
// since since or the process exits first. It returns when want appeared,
// relative to since.
func waitForOutput(t testing.TB, p *testbin.Process, buf *testbin.SyncBuffer, want string, since time.Time, d time.Duration) time.Duration {
	t.Helper()
	deadline := since.Add(d)
	for {
		if strings.Contains(buf.String(), want) {
			return time.Since(since)
		}
		if p.Exited() {
			err, _ := p.Wait(0)
			t.Fatalf("process exited (%v) before printing %q\n%s", err, want, tail(p))
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q did not appear within %s\n%s", want, d, tail(p))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// tail is the end of a process's stdout and stderr, for failure messages.
func tail(p *testbin.Process) string {
	return fmt.Sprintf("--- stdout (tail) ---\n%s\n--- stderr (tail) ---\n%s", lastLines(p.Stdout.String(), 30), lastLines(p.Stderr.String(), 30))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"..."}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// waitExit waits up to d for the process to end and returns its exit code
// (-1 if a signal ended it).
func waitExit(t testing.TB, p *testbin.Process, d time.Duration) int {
	t.Helper()
	err, done := p.Wait(d)
	if !done {
		t.Fatalf("process still running after %s\n%s", d, tail(p))
	}
	return exitCode(err)
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -2
}

// stopClean sends SIGINT and requires exit code 0 within d.
func (s *server) stopClean(t testing.TB, d time.Duration) {
	t.Helper()
	if err := s.p.Cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatalf("SIGINT: %v\n%s", err, tail(s.p))
	}
	if code := waitExit(t, s.p, d); code != 0 {
		t.Fatalf("after SIGINT opspilot exited with code %d, want 0\n%s", code, tail(s.p))
	}
}

// result is what a CLI run printed.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit code %d\n--- stdout ---\n%s\n--- stderr ---\n%s", r.code, r.stdout, r.stderr)
}

// run runs bin with args to completion, killing it after d.
func run(t testing.TB, d time.Duration, env []string, bin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	if env != nil {
		cmd.Env = append(cmd.Environ(), env...)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String(), code: exitCode(err)}
	if ctx.Err() != nil {
		t.Fatalf("%s %s did not finish within %s\n%s", bin, strings.Join(args, " "), d, r)
	}
	if r.code == -2 {
		t.Fatalf("%s %s: %v", bin, strings.Join(args, " "), err)
	}
	return r
}

// opspilot runs the opspilot CLI to completion (30 s at most).
func opspilot(t testing.TB, args ...string) result {
	t.Helper()
	return run(t, 30*time.Second, nil, opspilotBin(t), args...)
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

// do sends one request and returns the status code and body.
func do(t testing.TB, method, u, token, body string) (int, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "text/plain")
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, u, err)
	}
	return resp.StatusCode, string(b)
}

// importText writes samples in the Prometheus text format through
// VictoriaMetrics' import endpoint and requires 204.
func (s *server) importText(t testing.TB, token, lines string) {
	t.Helper()
	code, body := do(t, http.MethodPost, s.base+"/prometheus/api/v1/import/prometheus", token, lines)
	if code != http.StatusNoContent {
		t.Fatalf("import: %d %s, want 204\n%s", code, body, tail(s.p))
	}
}

// promResponse is the Prometheus HTTP API's envelope for instant queries.
type promResponse struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		ResultType string       `json:"resultType"`
		Result     model.Vector `json:"result"`
	} `json:"data"`
}

// query runs an instant query over HTTP and requires a 200 "success" answer.
func (s *server) query(t testing.TB, token, expr string) promResponse {
	t.Helper()
	code, body := do(t, http.MethodGet, s.base+"/prometheus/api/v1/query?query="+url.QueryEscape(expr), token, "")
	if code != http.StatusOK {
		t.Fatalf("query %s: %d %s\n%s", expr, code, body, tail(s.p))
	}
	var r promResponse
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("query %s: answer is not Prometheus JSON: %v\n%s", expr, err, body)
	}
	if r.Status != "success" {
		t.Fatalf("query %s: status %q (%s: %s), want success", expr, r.Status, r.ErrorType, r.Error)
	}
	if r.Data.ResultType != "vector" {
		t.Fatalf("query %s: resultType %q, want vector\n%s", expr, r.Data.ResultType, body)
	}
	return r
}

// A series VictoriaMetrics has not seen before is in its index up to ~2 s
// after it was written (raw index items are flushed by a 1 s ticker once
// they are 1 s old), and its samples are searchable up to ~4 s after (raw
// rows: 2 s age, 2 s ticker). But a query that runs before the series is in
// the index caches "no such series" in VictoriaMetrics' tag-filters cache,
// which is reset only every ~10 s (+10% jitter): then the series stays
// invisible for up to ~11 s. So tests wait firstQueryAfter before the first
// query of a new series, and give it newSeriesSearchable in all.
const (
	firstQueryAfter     = 3 * time.Second
	newSeriesSearchable = 15 * time.Second
)

// pollNewSample waits until a sample written at written (of a new series) is
// returned by expr.
func (s *server) pollNewSample(t testing.TB, token, expr string, want float64, written time.Time) time.Duration {
	t.Helper()
	time.Sleep(time.Until(written.Add(firstQueryAfter)))
	s.pollValue(t, token, expr, want, time.Until(written.Add(newSeriesSearchable)))
	return time.Since(written)
}

// pollValue repeats an instant query until it returns exactly one sample
// worth want, for up to d; it returns how long that took.
func (s *server) pollValue(t testing.TB, token, expr string, want float64, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var last model.Vector
	for {
		last = s.query(t, token, expr).Data.Result
		if len(last) == 1 && float64(last[0].Value) == want {
			return time.Since(start)
		}
		if time.Since(start) > d {
			t.Fatalf("query %s did not return one sample worth %g within %s; last result: %v\n%s", expr, want, d, last, tail(s.p))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// status fetches GET /api/v1/status.
func (s *server) status(t testing.TB, token string) map[string]any {
	t.Helper()
	code, body := do(t, http.MethodGet, s.base+"/api/v1/status", token, "")
	if code != http.StatusOK {
		t.Fatalf("GET /api/v1/status: %d %s", code, body)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/api/v1/status is not JSON: %v\n%s", err, body)
	}
	return st
}

// tsdbStatus is the tsdb object of /api/v1/status.
func tsdbStatus(t testing.TB, st map[string]any) map[string]any {
	t.Helper()
	ts, ok := st["tsdb"].(map[string]any)
	if !ok {
		t.Fatalf("/api/v1/status has no tsdb object: %v", st)
	}
	return ts
}
