package alerting

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"opspilot/internal/slackrec"
)

// The whole chat loop through the pipeline against slack-go's slacktest
// server (the real Slack is not reachable from here): an alert is posted
// to the Slack receiver, the Silence 1h button (a request signed like
// Slack's, to the server's interactions route) silences its group as
// slack:<user>, and the resolution is notified.
func TestPipelineSlackAgainstSlacktestServerPostsAndSilencesFromChat(t *testing.T) {
	s := newSlackTestServer(t)
	dir := t.TempDir()
	token, secret := filepath.Join(dir, "token"), filepath.Join(dir, "secret")
	for p, v := range map[string]string{token: "xoxb-test", secret: "s3cret"} {
		if err := os.WriteFile(p, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	amFile := filepath.Join(dir, "am.yml")
	if err := os.WriteFile(amFile, []byte(`route:
  receiver: sre
  group_by: [alertname, service]
  group_wait: 50ms
  group_interval: 1s
receivers:
  - name: sre
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultPipelineConfig()
	cfg.Dir, cfg.AlertmanagerConfigFile, cfg.Console.Receivers = filepath.Join(dir, "state"), amFile, nil
	off := false
	cfg.Slack = []SlackConfig{{Receiver: "sre", Channel: "#ops", TokenFile: token, SigningSecretFile: secret, APIURL: s.GetAPIURL(), Graph: &off}}
	querier := &slackTestQuerier{}
	p, err := NewPipeline(cfg, PipelineOptions{Querier: querier})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	srv := apiServer(t, p)

	a := testAlert("ErrorsHigh", "billing", "critical", time.Now(), false)
	put(t, p, a)
	notified := waitEvent(t, p, func(e Event) bool {
		return e.Type == EventNotified && e.Receiver == "sre" && e.Message == "slack: firing"
	})

	value := EncodeSlackActionValue(AlertRef{Fingerprint: a.Fingerprint().String(), GroupKey: notified.GroupKey,
		Labels: map[string]string{"alertname": "ErrorsHigh", "service": "billing"}})
	body := slackTestPayload(SlackActionSilence1h, value)
	post := func(path string, hdr http.Header) int {
		req, _ := http.NewRequest("POST", srv.URL+path, strings.NewReader(body))
		req.Header = hdr
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("/api/v1/slack/sre/interactions", slackrec.Sign(body, "wrong", time.Now())); code != 401 {
		t.Errorf("a request signed with another secret: %d, want 401", code)
	}
	if code := post("/api/v1/slack/nobody/interactions", slackrec.Sign(body, "s3cret", time.Now())); code != 404 {
		t.Errorf("an unknown receiver: %d, want 404", code)
	}
	signed := slackrec.Sign(body, "s3cret", time.Now())
	if code := post("/api/v1/slack/sre/interactions", signed); code != 200 {
		t.Fatalf("Silence 1h: %d", code)
	}
	if code := post("/api/v1/slack/sre/interactions", signed); code != 401 {
		t.Errorf("the same signed request again (a replay): %d, want 401", code)
	}
	sils := p.Silences(context.Background())
	if len(sils) != 1 || sils[0].CreatedBy != "slack:U123" || !slices.Equal(sils[0].Matchers, []string{`alertname="ErrorsHigh"`, `service="billing"`}) ||
		sils[0].EndsAt.Sub(sils[0].StartsAt).Round(time.Second) != time.Hour {
		t.Errorf("silence from chat: %+v", sils)
	}
	waitEvent(t, p, func(e Event) bool { return e.Type == EventSilenced && e.Who == "slack:U123" })

	// Once the silence is gone, the resolution reaches Slack (as in
	// Alertmanager, a silenced alert's resolution is muted too).
	if err := p.ExpireSilence(context.Background(), sils[0].ID, "ann"); err != nil {
		t.Fatal(err)
	}
	put(t, p, testAlert("ErrorsHigh", "billing", "critical", time.Now(), true))
	waitEvent(t, p, func(e Event) bool {
		return e.Type == EventNotified && e.Receiver == "sre" && e.Message == "slack: resolved"
	})
	// The group's thread stays known after it resolved (the incident's
	// summary goes there); an unknown group has none.
	if n, err := p.PostInThread(context.Background(), notified.GroupKey, "incident summary"); n != 1 || err != nil {
		t.Errorf("post in the resolved group's thread: %d, %v", n, err)
	}
	if n, _ := p.PostInThread(context.Background(), `{}:{alertname="Other"}`, "x"); n != 0 {
		t.Errorf("posted in the thread of a group never notified: %d", n)
	}
	// A runbook's query step graph goes to the same thread.
	before := len(s.uploaded())
	if n, err := p.PostGraphInThread(context.Background(), notified.GroupKey, "billing-errors error_ratio", `sum(rate(x[1m])) > 0.01`); n != 1 || err != nil {
		t.Errorf("graph in the thread: %d, %v", n, err)
	}
	if up := s.uploaded(); len(up) != before+1 || !bytes.HasPrefix(up[len(up)-1], []byte("\x89PNG")) {
		t.Errorf("uploaded %d files, want one more PNG", len(up)-before)
	}
	querier.mu.Lock()
	if last := querier.exprs[len(querier.exprs)-1]; last != "sum(rate(x[1m]))" {
		t.Errorf("the graph's query %q: the comparison should become the threshold line", last)
	}
	querier.mu.Unlock()
}

func waitEvent(t *testing.T, p *Pipeline, match func(Event) bool) Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, e := range p.Events().List(EventFilter{}) {
			if match(e) {
				return e
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no such event within 10 s: %+v", p.Events().List(EventFilter{}))
	return Event{}
}
