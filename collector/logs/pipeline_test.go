package logs

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"opspilot/test/testbin"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(b))
	return len(b), nil
}

func startVL(t *testing.T, dataDir, addr string) *VictoriaLogs {
	t.Helper()
	bin := testbin.Tool(t, "victoria-logs")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := StartVictoriaLogs(ctx, bin, dataDir, addr, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Stop() })
	return v
}

// runPipeline runs a pipeline until the returned stop is called.
func runPipeline(t *testing.T, cfg Config, reg prometheus.Registerer) (stop func()) {
	t.Helper()
	p, err := New(cfg, reg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
	}
	t.Cleanup(stop)
	return stop
}

func query(t *testing.T, base, q string) []map[string]string {
	t.Helper()
	resp, err := http.Get(base + "/select/logsql/query?query=" + url.QueryEscape(q))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("query %q: %s", q, resp.Status)
	}
	var rows []map[string]string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var row map[string]string
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatalf("query %q: %v in %s", q, err, sc.Bytes())
		}
		rows = append(rows, row)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

func count(t *testing.T, base, filter string) int {
	t.Helper()
	rows := query(t, base, filter+" | stats count() as n")
	if len(rows) != 1 {
		return 0
	}
	n, err := strconv.Atoi(rows[0]["n"])
	if err != nil {
		t.Fatalf("count: %v", rows)
	}
	return n
}

// waitCount polls until filter matches want lines, then checks it stays
// there (no late duplicates).
func waitCount(t *testing.T, base, filter string, want int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		n := count(t, base, filter)
		if n == want {
			break
		}
		if n > want {
			t.Fatalf("%s: %d lines in the store, want %d", filter, n, want)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d lines in the store after %s, want %d", filter, n, d, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond)
	if n := count(t, base, filter); n != want {
		t.Fatalf("%s: %d lines in the store, want %d", filter, n, want)
	}
}

func appendLines(t *testing.T, path string, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for _, l := range lines {
		_, _ = w.WriteString(l + "\n")
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func seqLines(prefix string, from, n int) []string {
	lines := make([]string, n)
	for i := range lines {
		lines[i] = fmt.Sprintf(`{"seq":%d,"msg":"%s %d"}`, from+i, prefix, from+i)
	}
	return lines
}

func testConfig(t *testing.T, v *VictoriaLogs, stateDir string, sources ...Source) Config {
	return Config{
		Sources: sources, StateDir: stateDir, URL: v.InsertURL(),
		Datacenter: "dc1", Node: "node-a", FlushInterval: 200 * time.Millisecond,
	}
}

func TestShipJSONAndPlainLines(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	v := startVL(t, filepath.Join(dir, "vl"), testbin.FreeAddr(t))
	path := filepath.Join(dir, "app.log")
	appendLines(t, path, `{"level":"warn","msg":"json hello","user":"bob"}`)
	runPipeline(t, testConfig(t, v, filepath.Join(dir, "state"), Source{Path: path, Service: "web", Instance: "web-1"}), nil)
	appendLines(t, path, "ERROR plain failure", "just words")

	waitCount(t, v.URL(), `_stream:{service="web",instance="web-1",node="node-a"}`, 3, 20*time.Second)
	rows := query(t, v.URL(), `service:=web | sort by (_time)`)
	want := []map[string]string{
		{"_msg": "json hello", "level": "warn", "user": "bob"},
		{"_msg": "ERROR plain failure", "level": "error"},
		{"_msg": "just words", "level": ""},
	}
	for i, w := range want {
		r := rows[i]
		for k, v := range w {
			if r[k] != v {
				t.Errorf("line %d: %s = %q, want %q (%v)", i, k, r[k], v, r)
			}
		}
		for k, v := range map[string]string{"service": "web", "instance": "web-1", "node": "node-a", "datacenter": "dc1", "file": path} {
			if r[k] != v {
				t.Errorf("line %d: %s = %q, want %q", i, k, r[k], v)
			}
		}
	}
}

func TestRotationShipsBothFilesOnce(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	v := startVL(t, filepath.Join(dir, "vl"), testbin.FreeAddr(t))
	path := filepath.Join(dir, "app.log")
	appendLines(t, path, seqLines("before", 0, 100)...)
	runPipeline(t, testConfig(t, v, filepath.Join(dir, "state"), Source{Path: path, Service: "rot"}), nil)
	waitCount(t, v.URL(), `service:=rot`, 100, 20*time.Second)

	// More lines, then rotate at once: some are read only from the old file.
	appendLines(t, path, seqLines("before", 100, 100)...)
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	appendLines(t, path, seqLines("after", 200, 100)...)
	waitCount(t, v.URL(), `service:=rot`, 300, 20*time.Second)
	if n := count(t, v.URL(), `service:=rot | uniq by (_msg)`); n != 300 {
		t.Fatalf("%d distinct lines, want 300", n)
	}

	// copytruncate: the same file shrinks and is written again.
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond) // let the tail notice the shrink
	appendLines(t, path, seqLines("truncated", 300, 10)...)
	waitCount(t, v.URL(), `service:=rot`, 310, 20*time.Second)
}

func TestRestartResumesAfterLastShippedLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	v := startVL(t, filepath.Join(dir, "vl"), testbin.FreeAddr(t))
	path := filepath.Join(dir, "app.log")
	cfg := testConfig(t, v, filepath.Join(dir, "state"), Source{Path: path, Service: "restart"})
	appendLines(t, path, seqLines("line", 0, 100)...)
	stop := runPipeline(t, cfg, nil)
	waitCount(t, v.URL(), `service:=restart`, 100, 20*time.Second)
	stop()

	appendLines(t, path, seqLines("line", 100, 50)...)
	runPipeline(t, cfg, nil)
	waitCount(t, v.URL(), `service:=restart`, 150, 20*time.Second)
	if n := count(t, v.URL(), `service:=restart | uniq by (_msg)`); n != 150 {
		t.Fatalf("%d distinct lines, want 150", n)
	}
}

func TestOutageLosesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dataDir, addr := filepath.Join(dir, "vl"), testbin.FreeAddr(t)
	v := startVL(t, dataDir, addr)
	path := filepath.Join(dir, "app.log")
	reg := prometheus.NewRegistry()
	runPipeline(t, testConfig(t, v, filepath.Join(dir, "state"), Source{Path: path, Service: "outage"}), reg)
	appendLines(t, path, seqLines("warmup", 0, 1)...)
	waitCount(t, v.URL(), `service:=outage`, 1, 20*time.Second)

	if err := v.Stop(); err != nil {
		t.Fatal(err)
	}
	const n = 10000
	appendLines(t, path, seqLines("outage", 1, n)...)
	time.Sleep(2 * time.Second) // the shipper fails and retries meanwhile

	restarted := time.Now()
	v = startVL(t, dataDir, addr)
	shipped := metricValue(t, reg, "opspilot_agent_log_lines_shipped_total")
	for shipped < n+1 && time.Since(restarted) < 30*time.Second {
		time.Sleep(20 * time.Millisecond)
		shipped = metricValue(t, reg, "opspilot_agent_log_lines_shipped_total")
	}
	elapsed := time.Since(restarted)
	t.Logf("%d lines shipped %s after the log store came back (%.0f lines/s incl. backoff wait); retried %v, read %v",
		n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(),
		metricValue(t, reg, "opspilot_agent_log_lines_retried_total"), metricValue(t, reg, "opspilot_agent_log_lines_read_total"))
	waitCount(t, v.URL(), `service:=outage`, n+1, 30*time.Second)

	rows := query(t, v.URL(), `service:=outage | fields _time, seq`)
	// Every line once, and times in line order. (Compare parsed times:
	// RFC 3339 strings drop trailing zeros, so they do not sort as text,
	// and lines may share a timestamp.)
	times := make([]time.Time, len(rows))
	for _, r := range rows {
		seq, err := strconv.Atoi(r["seq"])
		if err != nil || seq < 0 || seq >= len(rows) || !times[seq].IsZero() {
			t.Fatalf("unexpected or repeated seq %q among %d lines", r["seq"], len(rows))
		}
		ts, err := time.Parse(time.RFC3339Nano, r["_time"])
		if err != nil {
			t.Fatal(err)
		}
		times[seq] = ts
	}
	for i := 1; i < len(times); i++ {
		if times[i].Before(times[i-1]) {
			t.Fatalf("line %d (%s) is timed before line %d (%s)", i, times[i], i-1, times[i-1])
		}
	}
	if f := metricValue(t, reg, "opspilot_agent_log_lines_failed_total"); f != 0 {
		t.Errorf("failed = %v, want 0", f)
	}
}

func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

func TestThroughput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	v := startVL(t, filepath.Join(dir, "vl"), testbin.FreeAddr(t))
	path := filepath.Join(dir, "app.log")
	const n = 30000
	appendLines(t, path, seqLines("bulk", 0, n)...)
	reg := prometheus.NewRegistry()
	start := time.Now()
	runPipeline(t, testConfig(t, v, filepath.Join(dir, "state"), Source{Path: path, Service: "bulk"}), reg)
	for metricValue(t, reg, "opspilot_agent_log_lines_shipped_total") < n {
		if time.Since(start) > 30*time.Second {
			t.Fatal("not shipped within 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	elapsed := time.Since(start)
	t.Logf("%d lines read, parsed and shipped in %s: %.0f lines/s", n, elapsed.Round(time.Millisecond), n/elapsed.Seconds())
	waitCount(t, v.URL(), `service:=bulk`, n, 20*time.Second)
}
