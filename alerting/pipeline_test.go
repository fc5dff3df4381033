package alerting

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	amalert "github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/common/model"
)

// capture is a receiver integration that keeps what it was sent.
type capture struct {
	mu  sync.Mutex
	got []notification
}

type notification struct {
	at       time.Time
	receiver string
	group    string
	// alerts are "alertname{service}=state", sorted.
	alerts []string
}

func (c *capture) Notify(ctx context.Context, alerts ...*amalert.Alert) notify.NotifyVerdict {
	rcv, _ := notify.ReceiverName(ctx)
	gl, _ := notify.GroupLabels(ctx)
	n := notification{at: time.Now(), receiver: rcv, group: gl.String()}
	for _, a := range alerts {
		st := "firing"
		if a.Resolved() {
			st = "resolved"
		}
		n.alerts = append(n.alerts, fmt.Sprintf("%s{%s}=%s", a.Name(), a.Labels["service"], st))
	}
	sort.Strings(n.alerts)
	c.mu.Lock()
	c.got = append(c.got, n)
	c.mu.Unlock()
	return notify.Success()
}

func (c *capture) all() []notification {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got)
}

const testAMConfig = `route:
  receiver: team
  group_by: [alertname, service]
  group_wait: 500ms
  group_interval: 5s
  repeat_interval: 1h
  routes:
    - receiver: pager
      matchers: ['severity="critical"']
      continue: true
receivers:
  - name: team
  - name: pager
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: [service]
`

type pipelineFixture struct {
	p       *Pipeline
	team    *capture
	pager   *capture
	console *bytes.Buffer
	cancel  context.CancelFunc
	done    chan struct{}
}

func startPipeline(t testing.TB, dir, amConfig string) *pipelineFixture {
	t.Helper()
	cfg := DefaultPipelineConfig()
	cfg.Dir = dir
	if amConfig != "" {
		cfg.AlertmanagerConfigFile = filepath.Join(dir, "alertmanager.yml")
		if err := os.WriteFile(cfg.AlertmanagerConfigFile, []byte(amConfig), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg.Console.Receivers = []string{"team"}
	}
	f := &pipelineFixture{team: &capture{}, pager: &capture{}, console: &bytes.Buffer{}, done: make(chan struct{})}
	var err error
	f.p, err = NewPipeline(cfg, PipelineOptions{Console: lockedWriter{w: f.console},
		notifiers: map[string][]notify.Notifier{"team": {f.team}, "pager": {f.pager}, "console": {f.team}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	go func() { _ = f.p.Run(ctx); close(f.done) }()
	return f
}

func (f *pipelineFixture) stop() {
	f.cancel()
	<-f.done
}

type lockedWriter struct {
	w io.Writer
}

var consoleMu sync.Mutex

func (l lockedWriter) Write(b []byte) (int, error) {
	consoleMu.Lock()
	defer consoleMu.Unlock()
	return l.w.Write(b)
}

func testAlert(name, service, severity string, start time.Time, resolved bool) *amalert.Alert {
	a := model.Alert{
		Labels:      model.LabelSet{"alertname": model.LabelValue(name), "service": model.LabelValue(service), "severity": model.LabelValue(severity)},
		Annotations: model.LabelSet{"summary": model.LabelValue(name + " on " + service)},
		StartsAt:    start,
		EndsAt:      time.Now().Add(time.Hour),
	}
	if resolved {
		a.EndsAt = time.Now().Add(-time.Millisecond)
	}
	return amalert.New(a, time.Now(), false)
}

func put(t *testing.T, p *Pipeline, as ...*amalert.Alert) {
	t.Helper()
	if err := p.PutAlerts(context.Background(), as...); err != nil {
		t.Fatal(err)
	}
}

func TestPipelineGroupsRoutesAndWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := startPipeline(t, t.TempDir(), testAMConfig)
		defer f.stop()
		time.Sleep(time.Millisecond)
		start := time.Now()
		put(t, f.p,
			testAlert("ErrorsHigh", "billing", "warning", start, false),
			testAlert("LatencyHigh", "billing", "warning", start, false),
			testAlert("ErrorsHigh", "billing", "warning", start, false), // a duplicate
			testAlert("ErrorsHigh", "gateway", "critical", start, false))
		time.Sleep(400 * time.Millisecond)
		if got := f.team.all(); len(got) != 0 {
			t.Fatalf("notified before group_wait (500ms): %+v", got)
		}
		time.Sleep(200 * time.Millisecond)
		team := f.team.all()
		var groups []string
		for _, n := range team {
			groups = append(groups, strings.Join(n.alerts, ","))
			if d := n.at.Sub(start); d != 500*time.Millisecond {
				t.Errorf("group %s notified %s after its first alert, want group_wait 500ms", n.group, d)
			}
		}
		sort.Strings(groups)
		want := []string{"ErrorsHigh{billing}=firing", "LatencyHigh{billing}=firing"}
		if !slices.Equal(groups, want) {
			t.Fatalf("team got groups %q, want one per alertname and service %q", groups, want)
		}
		if pager := f.pager.all(); len(pager) != 1 || pager[0].alerts[0] != "ErrorsHigh{gateway}=firing" {
			t.Fatalf("the critical route should page once for gateway (and the team not at all): %+v", pager)
		}

		// A second alert in an existing group waits for group_interval.
		put(t, f.p, testAlert("ErrorsHigh", "billing", "warning", start, false))
		a2 := testAlert("ErrorsHigh", "billing", "warning", start, false)
		a2.Labels["instance"] = "billing-2"
		a2 = amalert.New(a2.Alert, time.Now(), false)
		put(t, f.p, a2)
		time.Sleep(4 * time.Second)
		if n := len(f.team.all()); n != 2 {
			t.Fatalf("a change to a group was notified before group_interval: %d notifications", n)
		}
		time.Sleep(1500 * time.Millisecond)
		got := f.team.all()
		if len(got) != 3 || len(got[2].alerts) != 2 {
			t.Fatalf("after group_interval the billing ErrorsHigh group should be notified again with both alerts: %+v", got)
		}

		// Resolving every alert of a group sends a resolved notification.
		put(t, f.p, testAlert("LatencyHigh", "billing", "warning", start, true))
		time.Sleep(5 * time.Second)
		var resolved bool
		for _, n := range f.team.all()[3:] {
			if slices.Equal(n.alerts, []string{"LatencyHigh{billing}=resolved"}) {
				resolved = true
			}
		}
		if !resolved {
			t.Fatalf("no resolved notification for LatencyHigh: %+v", f.team.all())
		}
		consoleMu.Lock()
		out := f.console.String()
		consoleMu.Unlock()
		if !strings.Contains(out, "[RESOLVED] LatencyHigh") || !strings.Contains(out, "[FIRING] ErrorsHigh") {
			t.Errorf("console receiver output:\n%s", out)
		}
	})
}

func TestPipelineInhibitionTable(t *testing.T) {
	cases := []struct {
		name     string
		alerts   func() []*amalert.Alert
		notified []string
	}{
		{"critical mutes a warning of the same service",
			func() []*amalert.Alert {
				return []*amalert.Alert{testAlert("Down", "billing", "critical", time.Now(), false), testAlert("Slow", "billing", "warning", time.Now(), false)}
			},
			[]string{"Down{billing}=firing"}},
		{"not another service's",
			func() []*amalert.Alert {
				return []*amalert.Alert{testAlert("Down", "billing", "critical", time.Now(), false), testAlert("Slow", "gateway", "warning", time.Now(), false)}
			},
			[]string{"Down{billing}=firing", "Slow{gateway}=firing"}},
		{"a warning alone is notified",
			func() []*amalert.Alert {
				return []*amalert.Alert{testAlert("Slow", "billing", "warning", time.Now(), false)}
			},
			[]string{"Slow{billing}=firing"}},
		{"a resolved critical mutes nothing",
			func() []*amalert.Alert {
				return []*amalert.Alert{testAlert("Down", "billing", "critical", time.Now(), true), testAlert("Slow", "billing", "warning", time.Now(), false)}
			},
			[]string{"Slow{billing}=firing"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := startPipeline(t, t.TempDir(), testAMConfig)
				defer f.stop()
				time.Sleep(time.Millisecond)
				put(t, f.p, tc.alerts()...)
				time.Sleep(time.Second)
				var got []string
				for _, n := range append(f.team.all(), f.pager.all()...) {
					got = append(got, n.alerts...)
				}
				sort.Strings(got)
				if !slices.Equal(got, tc.notified) {
					t.Errorf("notified %q, want %q", got, tc.notified)
				}
			})
		})
	}
}

func TestPipelineSilences(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := startPipeline(t, t.TempDir(), testAMConfig)
		defer f.stop()
		time.Sleep(time.Millisecond)
		ctx := context.Background()
		bad := []SilenceRequest{
			{CreatedBy: "ann", EndsAt: time.Now().Add(time.Hour)},
			{Matchers: []string{`service="billing"`}, EndsAt: time.Now().Add(time.Hour)},
			{Matchers: []string{`service="billing"`}, CreatedBy: "ann", EndsAt: time.Now().Add(-time.Minute)},
			{Matchers: []string{`service=~"("`}, CreatedBy: "ann", EndsAt: time.Now().Add(time.Hour)},
			{Matchers: []string{`service=~".*"`}, CreatedBy: "ann", EndsAt: time.Now().Add(time.Hour)},
		}
		for i, r := range bad {
			if _, err := f.p.AddSilence(ctx, r); !errors.Is(err, ErrBadSilence) {
				t.Errorf("bad silence %d accepted or wrong error: %v", i, err)
			}
		}
		a := testAlert("ErrorsHigh", "billing", "warning", time.Now(), false)
		put(t, f.p, a, testAlert("ErrorsHigh", "gateway", "warning", time.Now(), false))
		id, err := f.p.AddSilence(ctx, SilenceRequest{Matchers: []string{`alertname="ErrorsHigh"`, `service="billing"`},
			EndsAt: time.Now().Add(time.Hour), CreatedBy: "ann", Comment: "deploying a fix"})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		got := f.team.all()
		if len(got) != 1 || got[0].alerts[0] != "ErrorsHigh{gateway}=firing" {
			t.Fatalf("the silenced billing alert was notified, or gateway's was not: %+v", got)
		}
		st := f.p.Alerts(ctx)
		var billing HeldAlert
		for _, s := range st {
			if s.Labels["service"] == "billing" {
				billing = s
			}
		}
		if billing.State != "suppressed" || !slices.Equal(billing.SilencedBy, []string{id}) {
			t.Errorf("billing alert status %+v, want suppressed by %s", billing, id)
		}
		evs := f.p.Events().List(EventFilter{Type: EventSilenced})
		if len(evs) != 1 || evs[0].Who != "ann" || evs[0].SilenceID != id || evs[0].Fingerprint != a.Fingerprint().String() {
			t.Errorf("silenced events %+v", evs)
		}
		sils := f.p.Silences(ctx)
		if len(sils) != 1 || sils[0].State != "active" || !slices.Equal(sils[0].Matchers, []string{`alertname="ErrorsHigh"`, `service="billing"`}) {
			t.Errorf("silences %+v", sils)
		}
		// Expiring it lets the alert through at the next flush.
		if err := f.p.ExpireSilence(ctx, id, "ann"); err != nil {
			t.Fatal(err)
		}
		if err := f.p.ExpireSilence(ctx, "no-such-id", "ann"); !errors.Is(err, ErrUnknownSilence) {
			t.Errorf("expire unknown: %v", err)
		}
		time.Sleep(6 * time.Second)
		var billingNotified bool
		for _, n := range f.team.all() {
			billingNotified = billingNotified || slices.Contains(n.alerts, "ErrorsHigh{billing}=firing")
		}
		if !billingNotified {
			t.Errorf("after the silence expired the alert was not notified: %+v", f.team.all())
		}
		// Silence from chat: alertname + the group's labels for an hour.
		sid, err := f.p.SilenceFor(ctx, AlertRef{Fingerprint: a.Fingerprint().String(), Labels: map[string]string{"service": "billing"}}, time.Hour, "slack:U1", "from chat")
		if err != nil {
			t.Fatal(err)
		}
		if s := f.p.Silences(ctx)[0]; s.ID != sid || s.CreatedBy != "slack:U1" || s.EndsAt.Sub(s.StartsAt) != time.Hour {
			t.Errorf("chat silence %+v", s)
		}
		if err := f.p.Acknowledge(ctx, AlertRef{Fingerprint: a.Fingerprint().String()}, "bob"); err != nil {
			t.Fatal(err)
		}
		if err := f.p.Acknowledge(ctx, AlertRef{Fingerprint: "0123"}, "bob"); !errors.Is(err, ErrUnknownAlert) {
			t.Errorf("ack of an unknown alert: %v", err)
		}
		for _, s := range f.p.Alerts(ctx) {
			if s.Fingerprint == a.Fingerprint().String() && (s.Ack == nil || s.Ack.By != "bob") {
				t.Errorf("ack not shown: %+v", s)
			}
		}
	})
}

// A restarted pipeline (same directory) does not notify again what it
// already notified, still sends the resolved notification, and keeps
// silences and acknowledgements.
func TestPipelineRestartDoesNotNotifyAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		f := startPipeline(t, dir, testAMConfig)
		time.Sleep(time.Millisecond)
		start := time.Now()
		a := testAlert("ErrorsHigh", "billing", "warning", start, false)
		put(t, f.p, a)
		time.Sleep(time.Second)
		if n := len(f.team.all()); n != 1 {
			t.Fatalf("first run: %d notifications, want 1", n)
		}
		if err := f.p.Acknowledge(context.Background(), AlertRef{Fingerprint: a.Fingerprint().String()}, "bob"); err != nil {
			t.Fatal(err)
		}
		f.stop()

		g := startPipeline(t, dir, testAMConfig)
		defer g.stop()
		time.Sleep(time.Millisecond)
		// The rule evaluator sends the still-firing alert again.
		put(t, g.p, testAlert("ErrorsHigh", "billing", "warning", start, false))
		time.Sleep(12 * time.Second)
		if got := g.team.all(); len(got) != 0 {
			t.Fatalf("the restarted pipeline notified again: %+v", got)
		}
		st := g.p.Alerts(context.Background())
		if len(st) != 1 || st[0].Ack == nil || st[0].Ack.By != "bob" {
			t.Errorf("after restart: %+v", st)
		}
		put(t, g.p, testAlert("ErrorsHigh", "billing", "warning", start, true))
		time.Sleep(6 * time.Second)
		got := g.team.all()
		if len(got) != 1 || !slices.Equal(got[0].alerts, []string{"ErrorsHigh{billing}=resolved"}) {
			t.Fatalf("after restart the resolution should be notified once: %+v", got)
		}
	})
}

// An alert that was firing when the server stopped and is never sent
// again (it resolved meanwhile) is resolved when its end time passes.
func TestPipelineRestartResolvesAlertsThatStoppedFiring(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		f := startPipeline(t, dir, testAMConfig)
		time.Sleep(time.Millisecond)
		a := model.Alert{Labels: model.LabelSet{"alertname": "ErrorsHigh", "service": "billing"}, StartsAt: time.Now(),
			EndsAt: time.Now().Add(20 * time.Second)}
		put(t, f.p, amalert.New(a, time.Now(), false))
		time.Sleep(time.Second)
		f.stop()
		g := startPipeline(t, dir, testAMConfig)
		defer g.stop()
		time.Sleep(30 * time.Second)
		got := g.team.all()
		if len(got) != 1 || !slices.Equal(got[0].alerts, []string{"ErrorsHigh{billing}=resolved"}) {
			t.Fatalf("want one resolved notification from the saved alert: %+v", got)
		}
	})
}

// Alertmanager's webhook receiver works unchanged: the JSON a webhook
// gets is Alertmanager's (version 4).
func TestPipelineWebhookReceiverSendsAlertmanagerJSON(t *testing.T) {
	type payload struct {
		Version     string            `json:"version"`
		Status      string            `json:"status"`
		Receiver    string            `json:"receiver"`
		GroupLabels map[string]string `json:"groupLabels"`
		Alerts      []struct {
			Status string            `json:"status"`
			Labels map[string]string `json:"labels"`
		} `json:"alerts"`
	}
	got := make(chan payload, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p payload
		if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		got <- p
	}))
	defer srv.Close()
	cfg := `route:
  receiver: hook
  group_by: [alertname]
  group_wait: 50ms
  group_interval: 1s
receivers:
  - name: hook
    webhook_configs:
      - url: ` + srv.URL + `
`
	f := startPipeline(t, t.TempDir(), cfg)
	defer f.stop()
	put(t, f.p, testAlert("ErrorsHigh", "billing", "critical", time.Now(), false))
	select {
	case p := <-got:
		if p.Version != "4" || p.Status != "firing" || p.Receiver != "hook" || p.GroupLabels["alertname"] != "ErrorsHigh" ||
			len(p.Alerts) != 1 || p.Alerts[0].Labels["service"] != "billing" {
			t.Errorf("webhook payload %+v", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no webhook call within 10 s")
	}
	// The event is recorded once the webhook call returns.
	var evs []Event
	for range 100 {
		if evs = f.p.Events().List(EventFilter{Type: EventNotified}); len(evs) > 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(evs) == 0 || evs[0].Receiver != "hook" {
		t.Errorf("notified events %+v", evs)
	}
}

func TestPipelineRejectsBadAlertmanagerConfig(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]string{
		"route: {receiver: nope}\nreceivers: [{name: team}]\n":           "undefined receiver",
		"route: {receiver: team}\nreceivers: [{name: team, bogus: 1}]\n": "bogus",
		"route: [\n": "yaml",
	}
	for body, want := range cases {
		path := filepath.Join(dir, "am.yml")
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg := DefaultPipelineConfig()
		cfg.Dir, cfg.AlertmanagerConfigFile = dir, path
		_, err := NewPipeline(cfg, PipelineOptions{})
		if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want the file name and %q", body, err, want)
		}
	}
	cfg := DefaultPipelineConfig()
	cfg.Dir = dir
	cfg.Slack = []SlackConfig{{Receiver: "sre"}}
	if _, err := NewPipeline(cfg, PipelineOptions{}); err == nil || !strings.Contains(err.Error(), `"sre" is not a receiver`) {
		t.Errorf("a Slack receiver naming no Alertmanager receiver: %v", err)
	}
}
