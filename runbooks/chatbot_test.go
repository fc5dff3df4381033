package runbooks

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slacktest"

	"opspilot/internal/slackrec"
)

// fakeChatActions records what the bot asked for (the orchestrator and
// pipeline behind it are wired and tested in cmd/opspilot).
type fakeChatActions struct {
	mu    sync.Mutex
	calls []string
}

func (f *fakeChatActions) add(s string) {
	f.mu.Lock()
	f.calls = append(f.calls, s)
	f.mu.Unlock()
}

func (f *fakeChatActions) got() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeChatActions) Status(_ context.Context, s string) (string, error) {
	f.add("status " + s)
	return s + ": 3/3 ready", nil
}

func (f *fakeChatActions) Scale(_ context.Context, s string, n int, who, why string) (string, error) {
	f.add(fmt.Sprintf("scale %s %d by %s because %s", s, n, who, why))
	return fmt.Sprintf("scaled %s to %d", s, n), nil
}

func (f *fakeChatActions) Failover(_ context.Context, dc, to, who, why string) (string, error) {
	f.add("failover " + dc)
	return "", fmt.Errorf("failover is not available yet")
}

func (f *fakeChatActions) Silence(_ context.Context, m []string, d time.Duration, who, why string) (string, error) {
	f.add(fmt.Sprintf("silence %v %s by %s", m, d, who))
	return "silence s-1", nil
}

func (f *fakeChatActions) Ack(_ context.Context, fp, who string) error {
	f.add("ack " + fp + " by " + who)
	return nil
}

func (f *fakeChatActions) RunRunbook(_ context.Context, name string, p map[string]string, who, why string) (string, error) {
	f.add("runbook " + name)
	return "run started", nil
}

func (f *fakeChatActions) Runbooks(context.Context) ([]string, error) {
	return []string{"billing-errors"}, nil
}

func (f *fakeChatActions) TenantOf(_ context.Context, s string) (string, error) { return tenantOf(s) }

const chatSecret = "chat-s3cret"

func chatServer(t testing.TB, client *slack.Client) (*httptest.Server, *fakeChatActions, *[]string) {
	acts := &fakeChatActions{}
	var (
		mu     sync.Mutex
		audits []string
	)
	bot := &Bot{RBAC: testRBAC(), Actions: acts, Incidents: NewTracker("inc"),
		Audit: func(_ context.Context, who, cmd, why, result string) {
			mu.Lock()
			audits = append(audits, who+": "+cmd+" → "+result)
			mu.Unlock()
		}}
	h := &SlackHandlers{Bot: bot, Verifier: &SlackVerifier{Secret: chatSecret}, Client: client}
	mux := http.NewServeMux()
	for _, r := range h.Routes() {
		mux.Handle(r.Pattern, r.Handler)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, acts, &audits
}

func post(t testing.TB, u, body string, hdr http.Header) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", u, strings.NewReader(body))
	req.Header = hdr
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func slashBody(user, text string) string {
	return url.Values{"command": {"/opspilot"}, "text": {text}, "user_id": {user}, "user_name": {strings.ToLower(user)},
		"channel_id": {"C1"}, "team_id": {"T1"}, "response_url": {"https://hooks.slack.invalid/x"}}.Encode()
}

func TestSlashCommandsSignedRolesAndReplays(t *testing.T) {
	srv, acts, audits := chatServer(t, nil)
	u := srv.URL + "/slack/commands"

	// A tenant user scales their own service: done, recorded with who and why.
	body := slashBody("UUSER", "scale billing 6 because promotion")
	code, resp := post(t, u, body, slackrec.Sign(body, chatSecret, time.Now()))
	if code != 200 || !strings.Contains(resp, "scaled billing to 6") {
		t.Fatalf("scale by its tenant's user: %d %s", code, resp)
	}
	if got := acts.got(); len(got) != 1 || got[0] != "scale billing 6 by slack:ulla because promotion" {
		t.Errorf("actions %q", got)
	}
	// The same request again (a replay within the window) is refused.
	if code, resp := post(t, u, body, slackrec.Sign(body, chatSecret, time.Now())); code != 401 || !strings.Contains(resp, "a replay") {
		t.Errorf("replay: %d %s", code, resp)
	}
	// Another tenant's service: refused, and told why.
	body = slashBody("UUSER", "scale catalog 6")
	code, resp = post(t, u, body, slackrec.Sign(body, chatSecret, time.Now().Add(-time.Second)))
	if code != 200 || !strings.Contains(resp, "catalog belongs to tenant shop") {
		t.Errorf("scale another tenant's service: %d %s", code, resp)
	}
	// Someone without a role: refused.
	body = slashBody("UNOBODY", "scale billing 6")
	code, resp = post(t, u, body, slackrec.Sign(body, chatSecret, time.Now().Add(-2*time.Second)))
	if code != 200 || !strings.Contains(resp, "no opspilot role") {
		t.Errorf("scale without a role: %d %s", code, resp)
	}
	if got := acts.got(); len(got) != 1 {
		t.Errorf("a refused command reached the orchestrator: %q", got)
	}
	if len(*audits) != 3 || !strings.Contains((*audits)[1], "refused") {
		t.Errorf("audit %q", *audits)
	}
	// Anyone may ask for status; a bad command gets the right form.
	body = slashBody("UNOBODY", "status billing")
	if code, resp := post(t, u, body, slackrec.Sign(body, chatSecret, time.Now().Add(-3*time.Second))); code != 200 || !strings.Contains(resp, "3/3 ready") {
		t.Errorf("status: %d %s", code, resp)
	}
	body = slashBody("UADMIN", "scale billing")
	if code, resp := post(t, u, body, slackrec.Sign(body, chatSecret, time.Now().Add(-4*time.Second))); code != 200 || !strings.Contains(resp, "`scale billing 10`") {
		t.Errorf("bad command: %d %s", code, resp)
	}

	// Unsigned, badly signed and stale requests are refused.
	body = slashBody("UADMIN", "scale billing 1")
	for name, hdr := range map[string]http.Header{
		"unsigned":     {"Content-Type": {"application/x-www-form-urlencoded"}},
		"wrong secret": slackrec.Sign(body, "other", time.Now()),
		"stale":        slackrec.Sign(body, chatSecret, time.Now().Add(-10*time.Minute)),
	} {
		if code, resp := post(t, u, body, hdr); code != 401 {
			t.Errorf("%s: %d %s", name, code, resp)
		}
	}
	if got := acts.got(); slices.Contains(got, "scale billing 1 by slack:root because ") {
		t.Errorf("a refused request scaled: %q", got)
	}
}

// The Events API: the URL check, and a mention answered in its thread
// through slack-go's slacktest server (the real Slack is not reachable
// from here).
func TestSlackEventsMentionAgainstSlacktestServer(t *testing.T) {
	replies := make(chan url.Values, 4)
	s := slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/chat.postMessage", func(w http.ResponseWriter, r *http.Request) {
			_ = r.ParseForm()
			replies <- r.Form
			_, _ = w.Write([]byte(`{"ok":true,"channel":"C1","ts":"2.0"}`))
		})
	})
	s.Start()
	defer s.Stop()
	srv, acts, _ := chatServer(t, slack.New("xoxb-test", slack.OptionAPIURL(s.GetAPIURL())))
	u := srv.URL + "/slack/events"

	body := `{"type":"url_verification","challenge":"abc123","token":"x"}`
	if code, resp := post(t, u, body, slackrec.Sign(body, chatSecret, time.Now())); code != 200 || resp != "abc123" {
		t.Errorf("url_verification: %d %q", code, resp)
	}
	ev, _ := json.Marshal(map[string]any{"type": "event_callback", "team_id": "T1", "api_app_id": "A1", "event_id": "Ev1", "event_time": 1,
		"event": map[string]any{"type": "app_mention", "user": "UTA", "text": "<@UBOT> silence service=billing for 2h because deploying",
			"ts": "1.0", "channel": "C1", "event_ts": "1.0"}})
	if code, resp := post(t, u, string(ev), slackrec.Sign(string(ev), chatSecret, time.Now())); code != 200 {
		t.Fatalf("app_mention: %d %s", code, resp)
	}
	select {
	case f := <-replies:
		if f.Get("thread_ts") != "1.0" || !strings.Contains(f.Get("text"), "silence s-1") {
			t.Errorf("reply %v", f)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no reply in the thread")
	}
	if got := acts.got(); len(got) != 1 || got[0] != "silence [service=billing] 2h0m0s by slack:tina" {
		t.Errorf("actions %q", got)
	}
	if code, _ := post(t, u, "{", slackrec.Sign("{", chatSecret, time.Now())); code != 400 {
		t.Errorf("garbage event: %d", code)
	}
}

// FuzzSlackCommandRequest: any signed body is answered with 200, 400 or
// 401, never a panic or a 5xx.
func FuzzSlackCommandRequest(f *testing.F) {
	for _, s := range []string{slashBody("UADMIN", "status billing"), "text=%zz", "", slashBody("U1", `silence "`)} {
		f.Add(s)
	}
	srv, _, _ := chatServer(f, nil)
	f.Fuzz(func(t *testing.T, body string) {
		code, resp := post(t, srv.URL+"/slack/commands", body, slackrec.Sign(body, chatSecret, time.Now()))
		if code != 200 && code != 400 && code != 401 {
			t.Fatalf("%q: %d %s", body, code, resp)
		}
	})
}
