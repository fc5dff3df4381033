package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"opspilot/alerting"
	"opspilot/internal/slackrec"
	"opspilot/orchestrator/control"
	"opspilot/test/testbin"
)

// billingErrorRatio is the expression of the demo's BillingErrorRatioHigh
// rule (examples/alerting/billing.rules.yaml) without its threshold.
const billingErrorRatio = `sum(rate(billing_transactions_total{service="billing",result="error"}[5s])) / sum(rate(billing_transactions_total{service="billing"}[5s]))`

// TestUpDemoAlertsOnErrorSurge is issue 7's done-when: with `opspilot up
// --demo`, a surge (`opspilot loadgen --surge`) that outruns billing's
// capacity until the autoscaler catches up makes the error-ratio rule
// fire; the console notification comes within 3 s of the breach (the
// first scraped sample over the threshold) and a resolved notification
// follows after the surge. The alert's events, the rules, the CLI's
// alerts and silence commands are checked on the way.
func TestUpDemoAlertsOnErrorSurge(t *testing.T) {
	dir := t.TempDir()
	addr, gwAddr := testbin.FreeAddr(t), testbin.FreeAddr(t)
	// The chat-bot: a platform admin; everyone else may only look.
	secret := writeFile(t, dir, "slack-signing-secret", "e2e-secret\n")
	cfg := writeFile(t, dir, "opspilot.yaml", `runbooks:
  chat:
    signing_secret_file: `+secret+`
    users: [{slack: UADMIN, name: root, role: platform-admin}]
`)
	s := launch(t, addr, dir, "up", "--demo", "--config", cfg, "--data-dir", filepath.Join(dir, "data"), "--http-addr", addr, "--logstore-addr", "127.0.0.1:0", "--gateway-addr", gwAddr)
	s.waitReady(t, 15*time.Second)
	server := "http://" + addr
	// The billing rules (3) and the platform rules (3: datacenters).
	if !strings.Contains(s.p.Stdout.String(), "alerting      6 rules every 1s, notifications to this console") {
		t.Errorf("the banner should describe alerting:\n%s", s.p.Stdout.String())
	}
	rulesFile := filepath.Join(testbin.ModuleRoot(t), "examples", "alerting", "billing.rules.yaml")
	if r := opspilot(t, "rules", "check", rulesFile); r.code != 0 || !strings.Contains(r.stdout, "OK") {
		t.Errorf("rules check of the demo's rules:\n%s", r)
	}
	waitUntil(t, 60*time.Second, "billing 3/3 ready", func() bool {
		var v control.ServiceView
		code, body := do(t, "GET", server+"/api/v1/services/billing", "", "")
		return code == 200 && json.Unmarshal([]byte(body), &v) == nil && v.Status.ReadyReplicas == 3
	})

	// 300 transactions/s, five times that for the middle 10 s: past
	// billing's capacity until the autoscaler has added instances.
	loadStart := time.Now()
	lg := testbin.Start(t, opspilotBin(t), "loadgen", "--server", server, "--rate", "300", "--duration", "30s", "--surge", "--surge-multiplier", "5", "--quiet")
	waitForOutput(t, s.p, s.p.Stdout, "[FIRING] BillingErrorRatioHigh", loadStart, 40*time.Second)

	if code := waitExit(t, lg, 60*time.Second); code != 0 {
		t.Fatalf("loadgen exited %d:\n%s", code, tail(lg))
	}
	waitForOutput(t, s.p, s.p.Stdout, "[RESOLVED] BillingErrorRatioHigh", loadStart, 60*time.Second)
	var resolvedAt, resolvedNotified time.Time
	for _, e := range alertEvents(t, server) {
		if e.AlertName != "BillingErrorRatioHigh" {
			continue
		}
		switch {
		case e.Type == alerting.EventResolved:
			resolvedAt = e.Time
		case e.Type == alerting.EventNotified && strings.HasSuffix(e.Message, "resolved"):
			resolvedNotified = e.Time
		}
	}
	if resolvedAt.IsZero() || resolvedNotified.Before(resolvedAt) {
		t.Errorf("want a resolved event and then a resolved notification: resolved %s, notified %s", resolvedAt, resolvedNotified)
	}
	t.Logf("resolved notification %s after the alert resolved", resolvedNotified.Sub(resolvedAt).Round(time.Millisecond))

	// The breach: the first moment the rule's expression crossed 0.1%, to
	// 100 ms (the expression only changes when a scraped sample arrives).
	// Computed once the surge is over: the store answers range queries
	// up to its latency offset before now.
	breach := firstCrossing(t, server, billingErrorRatio, 0.001, loadStart, time.Now().Add(-2*time.Second))
	events := alertEvents(t, server)
	var fired, notified time.Time
	for _, e := range events {
		if e.AlertName != "BillingErrorRatioHigh" {
			continue
		}
		switch {
		case e.Type == alerting.EventFired && fired.IsZero():
			fired = e.Time
		case e.Type == alerting.EventNotified && e.Receiver == "console" && notified.IsZero():
			notified = e.Time
		}
	}
	if fired.IsZero() || notified.IsZero() {
		t.Fatalf("no fired/notified events:\n%+v", events)
	}
	t.Logf("breach %s, fired %s later, console notification %s after the breach",
		breach.Format("15:04:05.000"), fired.Sub(breach).Round(time.Millisecond), notified.Sub(breach).Round(time.Millisecond))
	if d := notified.Sub(breach); d > 3*time.Second || d < 0 {
		t.Errorf("the notification came %s after the breach; want within 3 s", d)
	}

	// The events are in the log store too (the agent ships events.jsonl).
	var vl string
	for _, line := range strings.Split(s.p.Stdout.String(), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "logstore      VictoriaLogs at "); ok {
			vl = strings.Fields(rest)[0]
		}
	}
	waitUntil(t, 20*time.Second, "the resolved event in the log store", func() bool {
		resp, err := http.Get(vl + "/select/logsql/query?query=" + url.QueryEscape(`service:opspilot-alerting type:resolved alertname:BillingErrorRatioHigh`))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var doc map[string]any
		return json.NewDecoder(resp.Body).Decode(&doc) == nil && doc["fingerprint"] != nil && doc["who"] == "rules"
	})

	// The alert opened an incident, which resolved with it; its summary is
	// printed on the console and by `opspilot incident show`.
	waitForOutput(t, s.p, s.p.Stdout, "resolved: BillingErrorRatioHigh on billing", loadStart, 20*time.Second)
	waitUntil(t, 20*time.Second, "the resolved incident in the log store", func() bool {
		resp, err := http.Get(vl + "/select/logsql/query?query=" + url.QueryEscape(`service:opspilot-incidents state:resolved`))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var doc map[string]any
		return json.NewDecoder(resp.Body).Decode(&doc) == nil && doc["id"] == "inc-1"
	})
	if r := opspilot(t, "incident", "list", "--server", server); r.code != 0 || !strings.Contains(r.stdout, "resolved") || !strings.Contains(r.stdout, "BillingErrorRatioHigh on billing") {
		t.Errorf("incident list:\n%s", r)
	}
	// The demo's runbook (examples/runbooks/billing-errors.yaml) ran when
	// the incident opened and mitigated it by scaling billing.
	if r := opspilot(t, "incident", "show", "inc-1", "--server", server); r.code != 0 || !strings.Contains(r.stdout, "time to resolve:") ||
		!strings.Contains(r.stdout, "timeline:") || !strings.Contains(r.stdout, "notified") ||
		!strings.Contains(r.stdout, "runbook:billing-errors") || !strings.Contains(r.stdout, "mitigated: scale: scale ok: scaled billing from") {
		t.Errorf("incident show inc-1:\n%s", r)
	}
	if !strings.Contains(s.p.Stdout.String(), "[runbook inc-1] [ok] scale (scale): scaled billing from") {
		t.Errorf("the runbook's steps should be on the console:\n%s", lastLines(s.p.Stdout.String(), 40))
	}
	if r := opspilot(t, "get", "runbooks", "--server", server); r.code != 0 || !strings.Contains(r.stdout, "billing-errors") {
		t.Errorf("get runbooks:\n%s", r)
	}
	rbFile := filepath.Join(testbin.ModuleRoot(t), "examples", "runbooks", "billing-errors.yaml")
	if r := opspilot(t, "apply", "-f", rbFile, "--server", server); r.code != 0 || !strings.Contains(r.stdout, "runbook/billing-errors unchanged") {
		t.Errorf("apply the demo's own runbook:\n%s", r)
	}

	// The chat-bot's slash command, signed as Slack signs it.
	slash := func(user, text string, at time.Time) (int, string) {
		body := url.Values{"command": {"/opspilot"}, "text": {text}, "user_id": {user}, "team_id": {"T1"}, "channel_id": {"C1"}}.Encode()
		req, _ := http.NewRequest("POST", server+"/slack/commands", strings.NewReader(body))
		req.Header = slackrec.Sign(body, "e2e-secret", at)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := slash("UNOBODY", "status billing", time.Now()); code != 200 || !strings.Contains(body, "billing: ") || !strings.Contains(body, "ready") {
		t.Errorf("/opspilot status billing: %d %s", code, body)
	}
	if code, body := slash("UNOBODY", "scale billing 9", time.Now()); code != 200 || !strings.Contains(body, "no opspilot role") {
		t.Errorf("/opspilot scale by a user without a role: %d %s", code, body)
	}
	if code, body := slash("UADMIN", "scale billing 9 because e2e", time.Now()); code != 200 || !strings.Contains(body, "scaled billing to 9 replicas") {
		t.Errorf("/opspilot scale by a platform admin: %d %s", code, body)
	}
	if code, _ := slash("UADMIN", "scale billing 9 because e2e", time.Now().Add(-10*time.Minute)); code != 401 {
		t.Errorf("a stale slash command: %d, want 401", code)
	}
	if r := opspilot(t, "get", "events", "--server", server); r.code != 0 || !strings.Contains(r.stdout, "ChatCommand") || !strings.Contains(r.stdout, "slack:root") {
		t.Errorf("the chat command should be an event with who:\n%s", r)
	}

	// The CLI: the alert's events, the rules and silences.
	if r := opspilot(t, "alerts", "events", "--alertname", "BillingErrorRatioHigh", "--server", server); r.code != 0 ||
		!strings.Contains(r.stdout, "fired") || !strings.Contains(r.stdout, "resolved") || !strings.Contains(r.stdout, "console") {
		t.Errorf("alerts events:\n%s", r)
	}
	if r := opspilot(t, "rules", "list", "--server", server); r.code != 0 || !strings.Contains(r.stdout, "BillingErrorRatioHigh") {
		t.Errorf("rules list:\n%s", r)
	}
	r := opspilot(t, "silence", "add", "alertname=BillingErrorRatioHigh", "service=billing", "--duration", "1h", "--comment", "e2e", "--server", server)
	id := strings.TrimSpace(r.stdout)
	if r.code != 0 || id == "" {
		t.Fatalf("silence add:\n%s", r)
	}
	if r := opspilot(t, "silence", "list", "--server", server); r.code != 0 || !strings.Contains(r.stdout, id) || !strings.Contains(r.stdout, `alertname="BillingErrorRatioHigh"`) {
		t.Errorf("silence list:\n%s", r)
	}
	if r := opspilot(t, "silence", "add", "alertname=X", "--server", server); r.code == 0 || !strings.Contains(r.stderr, "--comment") {
		t.Errorf("a silence without a reason should be refused:\n%s", r)
	}
	if r := opspilot(t, "silence", "expire", id, "--server", server); r.code != 0 {
		t.Errorf("silence expire:\n%s", r)
	}
	if r := opspilot(t, "silence", "list", "--all", "--server", server); r.code != 0 || !strings.Contains(r.stdout, "expired") {
		t.Errorf("silence list --all:\n%s", r)
	}
}

func alertEvents(t *testing.T, server string) []alerting.Event {
	t.Helper()
	var out []alerting.Event
	code, body := do(t, "GET", server+"/api/v1/alerts/events?limit=1000", "", "")
	if code != 200 || json.Unmarshal([]byte(body), &out) != nil {
		t.Fatalf("alert events: %d %s", code, body)
	}
	return out
}

// firstCrossing is the first time in [start, end], at 100 ms steps, that
// expr exceeded threshold.
func firstCrossing(t *testing.T, server, expr string, threshold float64, start, end time.Time) time.Time {
	t.Helper()
	q := url.Values{"query": {expr}, "start": {fmt.Sprintf("%.3f", float64(start.UnixMilli())/1000)},
		"end": {fmt.Sprintf("%.3f", float64(end.UnixMilli())/1000)}, "step": {"0.1"}, "nocache": {"1"}, "latency_offset": {"1ms"}}
	code, body := do(t, "GET", server+"/prometheus/api/v1/query_range?"+q.Encode(), "", "")
	var out struct {
		Data struct {
			Result []struct {
				Values [][2]any `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &out) != nil || len(out.Data.Result) != 1 {
		t.Fatalf("query_range %s: %d %s", expr, code, body)
	}
	for _, p := range out.Data.Result[0].Values {
		ts, _ := p[0].(float64)
		s, _ := p[1].(string)
		if v, err := strconv.ParseFloat(s, 64); err == nil && v > threshold {
			return time.UnixMilli(int64(ts * 1000))
		}
	}
	t.Fatalf("%s never exceeded %g between %s and %s", expr, threshold, start, end)
	return time.Time{}
}
