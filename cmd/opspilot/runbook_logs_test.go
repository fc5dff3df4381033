package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"opspilot/collector/logs"
	"opspilot/test/testbin"
)

// TestRunbookLogsStepAgainstVictoriaLogs: the runbook `logs` step's search
// runs LogsQL against the real VictoriaLogs binary (built from go.mod):
// the newest matching lines of the service, newest last, at most the
// limit; a stopped log store is an error that names it.
func TestRunbookLogsStepAgainstVictoriaLogs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, _ := startTestVictoriaLogs(t, ctx)

	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	start := time.Now().Add(-time.Minute)
	for i, l := range []struct{ service, msg string }{
		{"billing", "pay ok shop=s1"}, {"billing", "error: card declined shop=s2"}, {"billing", "error: ledger timeout shop=s3"},
		{"checkout", "error: not billing's"}, {"billing", "error: ledger timeout shop=s4"}, {"billing", "error: ledger timeout shop=s5"},
	} {
		_ = enc.Encode(map[string]string{"_time": start.Add(time.Duration(i) * time.Second).UTC().Format(time.RFC3339Nano), "_msg": l.msg, "service": l.service})
	}
	resp, err := http.Post(v.URL()+"/insert/jsonline?_stream_fields=service&_msg_field=_msg&_time_field=_time", "application/stream+json", &body)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp, err = http.Get(v.URL() + "/internal/force_flush"); err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()

	var u atomic.Pointer[string]
	base := v.URL()
	u.Store(&base)
	l := runbookLogs{url: &u}
	var got []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got, err = l.Search(ctx, `service:billing error`, 3); err != nil {
			t.Fatal(err)
		}
		if len(got) == 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	want := []string{"error: ledger timeout shop=s3", "error: ledger timeout shop=s4", "error: ledger timeout shop=s5"}
	if !slices.Equal(got, want) {
		t.Errorf("logs step lines %q, want the 3 newest billing errors, newest last: %q", got, want)
	}

	_ = v.Stop()
	if _, err := l.Search(ctx, `service:billing`, 3); err == nil || !strings.Contains(err.Error(), "log store") {
		t.Errorf("a stopped log store: %v, want an error naming the log store", err)
	}
	empty := ""
	u.Store(&empty)
	if _, err := l.Search(ctx, `service:billing`, 3); err == nil || !strings.Contains(err.Error(), "no log store") {
		t.Errorf("no log store configured: %v", err)
	}
}

// startTestVictoriaLogs starts the real VictoriaLogs (built from go.mod)
// in a temporary directory on a free port, stopped when the test ends; the
// returned function starts it again on the same data and port.
func startTestVictoriaLogs(t *testing.T, ctx context.Context) (*logs.VictoriaLogs, func() *logs.VictoriaLogs) {
	t.Helper()
	bin := testbin.Tool(t, "victoria-logs")
	dir, addr := filepath.Join(t.TempDir(), "vl"), testbin.FreeAddr(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	start := func() *logs.VictoriaLogs {
		t.Helper()
		v, err := logs.StartVictoriaLogs(ctx, bin, dir, addr, log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = v.Stop() })
		return v
	}
	return start(), start
}
