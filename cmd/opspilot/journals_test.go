package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestServerShipsItsJournalsWithoutAnAgent: `opspilot server` has no
// agent of its own, so it ships the alert events and the incident journal
// to logstore.url itself, into the real VictoriaLogs (built from go.mod),
// where runbook logs steps find them through logstore.query_url; lines
// written while the log store is down arrive once it is back.
func TestServerShipsItsJournalsWithoutAnAgent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	v, restart := startTestVictoriaLogs(t, ctx)

	cfg := defaultFileConfig()
	cfg.DataDir = t.TempDir()
	cfg.LogStore.URL = v.InsertURL()
	cfg.LogStore.QueryURL = v.URL()
	if ps := cfg.Validate(); len(ps) > 0 {
		t.Fatalf("config: %v", ps)
	}
	events := filepath.Join(cfg.DataDir, "alerting", "events.jsonl")
	incidents := filepath.Join(cfg.DataDir, "runbooks", "incidents.jsonl")
	appendLine := func(path, line string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(line + "\n"); err != nil {
			t.Fatal(err)
		}
	}
	appendLine(events, `{"_msg":"fired BillingErrorRatioHigh","type":"fired","alertname":"BillingErrorRatioHigh"}`)

	p, err := controlPlaneJournals(cfg, events, prometheus.NewRegistry(), log)
	if err != nil || p == nil {
		t.Fatalf("controlPlaneJournals: %v, %v", p, err)
	}
	pctx, pcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(pctx) }()
	defer func() { pcancel(); <-done }()
	// The incident journal appears only when the first incident opens.
	appendLine(incidents, `{"_msg":"incident inc-1 open: BillingErrorRatioHigh","id":"inc-1","state":"open"}`)

	u := cfg.LogStore.QueryURL
	var url atomic.Pointer[string]
	url.Store(&u)
	search := runbookLogs{url: &url}
	waitLines := func(query string, want []string) {
		t.Helper()
		var got []string
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			if resp, err := http.Get(v.URL() + "/internal/force_flush"); err == nil {
				_ = resp.Body.Close()
			}
			if got, err = search.Search(ctx, query, 10); err == nil && slices.Equal(got, want) {
				return
			}
		}
		t.Fatalf("%s: lines %q (%v), want %q", query, got, err, want)
	}
	waitLines(`service:opspilot-alerting`, []string{"fired BillingErrorRatioHigh"})
	waitLines(`service:opspilot-incidents`, []string{"incident inc-1 open: BillingErrorRatioHigh"})

	// The log store goes away; the incident resolves meanwhile.
	if err := v.Stop(); err != nil {
		t.Fatal(err)
	}
	appendLine(incidents, `{"_msg":"incident inc-1 resolved: BillingErrorRatioHigh","id":"inc-1","state":"resolved"}`)
	time.Sleep(2 * time.Second) // a few failed flushes
	v = restart()
	waitLines(`service:opspilot-incidents`, []string{"incident inc-1 open: BillingErrorRatioHigh", "incident inc-1 resolved: BillingErrorRatioHigh"})
}
