package alerting

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	amalert "github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/alertmanager/eventrecorder"
	"github.com/prometheus/alertmanager/featurecontrol"
	"github.com/prometheus/alertmanager/nflog"
	"github.com/prometheus/alertmanager/nflog/nflogpb"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slacktest"

	"opspilot/config"
	"opspilot/internal/slackrec"
	"opspilot/tsdb"
)

// The real Slack is unreachable from tests: they run against slack-go's
// slacktest server. slacktest v0.35.0 serves chat.postMessage but not
// chat.update nor the files upload v2 flow (files.getUploadURLExternal, the
// upload URL, files.completeUploadExternal); slackTestServer registers
// those on slacktest's own mux through NewTestServer's Binder hook. A
// recording http.RoundTripper in front of the client records every call's
// form and injects Slack's error answers (ratelimited, invalid_auth…)
// without reaching the server.

type slackTestCall struct {
	Method string
	Form   url.Values
}

type slackTestTransport struct {
	mu    sync.Mutex
	calls []slackTestCall
	// fault, if set, answers instead of the server when it returns a
	// response or an error.
	fault func(r *http.Request, method string) (*http.Response, error)
}

func (t *slackTestTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	method := path.Base(r.URL.Path)
	var form url.Values
	r2 := r.Clone(r.Context())
	if r.Body != nil && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		b, err := io.ReadAll(r.Body)
		_ = r.Body.Close()
		if err != nil {
			return nil, err
		}
		form, _ = url.ParseQuery(string(b))
		r2.Body = io.NopCloser(bytes.NewReader(b))
		r2.ContentLength = int64(len(b))
	}
	t.mu.Lock()
	t.calls = append(t.calls, slackTestCall{Method: method, Form: form})
	fault := t.fault
	t.mu.Unlock()
	if fault != nil {
		if resp, err := fault(r2, method); resp != nil || err != nil {
			return resp, err
		}
	}
	return http.DefaultTransport.RoundTrip(r2)
}

func (t *slackTestTransport) setFault(f func(r *http.Request, method string) (*http.Response, error)) {
	t.mu.Lock()
	t.fault = f
	t.mu.Unlock()
}

func (t *slackTestTransport) callsTo(method string) []slackTestCall {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []slackTestCall
	for _, c := range t.calls {
		if c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

func (t *slackTestTransport) reset() {
	t.mu.Lock()
	t.calls = nil
	t.mu.Unlock()
}

// slackTestServer is slacktest's server plus the endpoints it lacks.
type slackTestServer struct {
	*slacktest.Server
	mu      sync.Mutex
	uploads [][]byte
}

func newSlackTestServer(t *testing.T) *slackTestServer {
	t.Helper()
	s := &slackTestServer{}
	var seq int
	bind := func(c slacktest.Customize) {
		c.Handle("/chat.update", func(w http.ResponseWriter, r *http.Request) {
			_ = r.ParseForm()
			slackTestJSON(w, map[string]any{"ok": true, "channel": r.Form.Get("channel"), "ts": r.Form.Get("ts"), "text": r.Form.Get("text")})
		})
		c.Handle("/files.getUploadURLExternal", func(w http.ResponseWriter, r *http.Request) {
			base := r.Context().Value(slacktest.ServerURLContextKey).(string)
			s.mu.Lock()
			seq++
			id := fmt.Sprintf("F%04d", seq)
			s.mu.Unlock()
			slackTestJSON(w, map[string]any{"ok": true, "upload_url": base + "upload/" + id, "file_id": id})
		})
		c.Handle("/upload/", func(w http.ResponseWriter, r *http.Request) {
			f, _, err := r.FormFile("file")
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			b, _ := io.ReadAll(f)
			s.mu.Lock()
			s.uploads = append(s.uploads, b)
			s.mu.Unlock()
			_, _ = w.Write([]byte("OK - " + strconv.Itoa(len(b))))
		})
		c.Handle("/files.completeUploadExternal", func(w http.ResponseWriter, r *http.Request) {
			_ = r.ParseForm()
			var files []map[string]string
			_ = json.Unmarshal([]byte(r.Form.Get("files")), &files)
			slackTestJSON(w, map[string]any{"ok": true, "files": files})
		})
	}
	s.Server = slacktest.NewTestServer(bind)
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

func (s *slackTestServer) uploaded() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.uploads...)
}

func slackTestJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

type slackTestQuerier struct {
	mu    sync.Mutex
	exprs []string
	err   error
}

func (q *slackTestQuerier) QueryRange(_ context.Context, expr string, r tsdb.Range) (tsdb.Result, error) {
	q.mu.Lock()
	q.exprs = append(q.exprs, expr)
	err := q.err
	q.mu.Unlock()
	if err != nil {
		return tsdb.Result{}, err
	}
	var vals []model.SamplePair
	for t := r.Start; !t.After(r.End); t = t.Add(r.Step) {
		vals = append(vals, model.SamplePair{Timestamp: model.TimeFromUnixNano(t.UnixNano()), Value: model.SampleValue(0.005 + 0.01*float64(len(vals)%10)/10)})
	}
	return tsdb.Result{Value: model.Matrix{{Metric: model.Metric{"service": "billing"}, Values: vals}}}, nil
}

type slackTestRecorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *slackTestRecorder) Record(_ context.Context, ev Event) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.mu.Unlock()
}

func (r *slackTestRecorder) byType(typ string) []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Event
	for _, e := range r.events {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

type slackTestEnv struct {
	srv   *slackTestServer
	tr    *slackTestTransport
	q     *slackTestQuerier
	rec   *slackTestRecorder
	reg   *prometheus.Registry
	cfg   SlackConfig
	store *nflog.Store
}

func newSlackTestEnv(t *testing.T) *slackTestEnv {
	t.Helper()
	e := &slackTestEnv{srv: newSlackTestServer(t), tr: &slackTestTransport{}, q: &slackTestQuerier{}, rec: &slackTestRecorder{}, reg: prometheus.NewRegistry(), store: nflog.NewStore(nil)}
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("xoxb-test-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.cfg = SlackConfig{Receiver: "ops", Channel: "C0OPS", TokenFile: tokenFile, APIURL: e.srv.GetAPIURL(), DashboardURL: "https://grafana.example.com/", GraphRange: 30 * time.Minute}
	return e
}

func (e *slackTestEnv) notifier(t *testing.T) *SlackNotifier {
	t.Helper()
	n, err := NewSlackNotifier(e.cfg, SlackOptions{Querier: e.q, Recorder: e.rec, Registerer: e.reg, HTTPClient: &http.Client{Transport: e.tr, Timeout: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

const slackTestGroupKey = `{}/{severity="critical"}:{alertname="HighErrorRate", service="billing"}`

// slackTestNow is the tests' now. Alertmanager decides "resolved" against
// the real clock in places where the context carries no time, so it is
// tied to the real clock: ten minutes ago, with firing alerts ending a day
// later and resolved ones (a few minutes after it) already in the past.
var slackTestNow = time.Now().UTC().Add(-10 * time.Minute).Truncate(time.Second)

func (e *slackTestEnv) ctx(now time.Time) context.Context {
	ctx := notify.WithGroupKey(context.Background(), slackTestGroupKey)
	ctx = notify.WithReceiverName(ctx, "ops")
	ctx = notify.WithGroupLabels(ctx, model.LabelSet{"alertname": "HighErrorRate", "service": "billing"})
	ctx = notify.WithNflogStore(ctx, e.store)
	return notify.WithNow(ctx, now)
}

func slackTestAlert(instance string, resolvedAt time.Time) *amalert.Alert {
	a := model.Alert{
		Labels: model.LabelSet{"alertname": "HighErrorRate", "service": "billing", "severity": "critical", "instance": model.LabelValue(instance)},
		Annotations: model.LabelSet{
			"summary":     "billing 5xx ratio above 1%",
			"description": "5xx ratio of billing is 5% on " + model.LabelValue(instance),
			"value":       "0.05",
			"runbook":     "restart-billing",
			"dashboard":   "d/billing?var-instance=" + model.LabelValue(instance),
		},
		StartsAt:     slackTestNow.Add(-10 * time.Minute),
		GeneratorURL: "http://opspilot:9090/graph?g0.expr=" + url.QueryEscape(`rate(http_errors_total{service="billing"}[5m]) > 0.01`) + "&g0.tab=1",
	}
	if resolvedAt.IsZero() {
		a.EndsAt = slackTestNow.Add(24 * time.Hour)
	} else {
		a.EndsAt = resolvedAt
	}
	return amalert.New(a, slackTestNow, false)
}

func slackTestBlocks(t *testing.T, c slackTestCall) []slack.Block {
	t.Helper()
	var bs slack.Blocks
	if err := json.Unmarshal([]byte(c.Form.Get("blocks")), &bs); err != nil {
		t.Fatalf("%s blocks do not decode: %v\n%s", c.Method, err, c.Form.Get("blocks"))
	}
	return bs.BlockSet
}

func slackTestHeader(t *testing.T, blocks []slack.Block) string {
	t.Helper()
	for _, b := range blocks {
		if h, ok := b.(*slack.HeaderBlock); ok {
			return h.Text.Text
		}
	}
	t.Fatal("no header block")
	return ""
}

func slackTestActionBlock(blocks []slack.Block) *slack.ActionBlock {
	for _, b := range blocks {
		if a, ok := b.(*slack.ActionBlock); ok {
			return a
		}
	}
	return nil
}

func slackTestText(blocks []slack.Block) string {
	var sb strings.Builder
	for _, b := range blocks {
		switch b := b.(type) {
		case *slack.SectionBlock:
			if b.Text != nil {
				sb.WriteString(b.Text.Text + "\n")
			}
			for _, f := range b.Fields {
				sb.WriteString(f.Text + "\n")
			}
		case *slack.ContextBlock:
			for _, el := range b.ContextElements.Elements {
				if tx, ok := el.(*slack.TextBlockObject); ok {
					sb.WriteString(tx.Text + "\n")
				}
			}
		}
	}
	return sb.String()
}

func TestSlackNotifierAgainstSlacktestServerPostsBlocksAndGraph(t *testing.T) {
	e := newSlackTestEnv(t)
	n := e.notifier(t)
	a := slackTestAlert("host-1", time.Time{})

	v := n.Notify(e.ctx(slackTestNow), a)
	if v.Err() != nil {
		t.Fatalf("verdict: %v", v.Err())
	}
	posts := e.tr.callsTo("chat.postMessage")
	if len(posts) != 1 {
		t.Fatalf("%d chat.postMessage calls, want 1", len(posts))
	}
	p := posts[0]
	if p.Form.Get("channel") != "C0OPS" {
		t.Errorf("channel %q", p.Form.Get("channel"))
	}
	blocks := slackTestBlocks(t, p)
	if h := slackTestHeader(t, blocks); !strings.Contains(h, "HighErrorRate") || !strings.Contains(h, "CRITICAL") || !strings.Contains(h, ":red_circle:") || !strings.Contains(h, "FIRING:1") {
		t.Errorf("header %q", h)
	}
	text := slackTestText(blocks)
	for _, want := range []string{"*billing 5xx ratio above 1%*", "5xx ratio of billing is 5% on host-1", "*Severity*\ncritical", "*Value*\n0.05", "*Firing*\n1", "*Resolved*\n0", "*Started*\n<!date^", "`instance=host-1`"} {
		if !strings.Contains(text, want) {
			t.Errorf("message lacks %q:\n%s", want, text)
		}
	}
	var atts []slack.Attachment
	if err := json.Unmarshal([]byte(p.Form.Get("attachments")), &atts); err != nil || len(atts) != 1 || atts[0].Color != "#d00000" {
		t.Errorf("attachments %s (%v): want one with the critical colour", p.Form.Get("attachments"), err)
	}

	act := slackTestActionBlock(blocks)
	if act == nil {
		t.Fatal("no actions block")
	}
	var ids []string
	for _, el := range act.Elements.ElementSet {
		b, ok := el.(*slack.ButtonBlockElement)
		if !ok {
			t.Fatalf("element %T is not a button", el)
		}
		ids = append(ids, b.ActionID)
		switch b.ActionID {
		case SlackActionDashboard:
			if b.URL != "https://grafana.example.com/d/billing?var-instance=host-1" {
				t.Errorf("dashboard URL %q", b.URL)
			}
		default:
			ref, err := DecodeSlackActionValue(b.Value)
			if err != nil {
				t.Fatalf("%s value %q: %v", b.ActionID, b.Value, err)
			}
			if ref.GroupKey != slackTestGroupKey || ref.Fingerprint != a.Fingerprint().String() || ref.Labels["service"] != "billing" || ref.Labels["alertname"] != "HighErrorRate" {
				t.Errorf("%s value decodes to %+v", b.ActionID, ref)
			}
		}
	}
	if got := strings.Join(ids, ","); got != "opspilot_ack,opspilot_silence_1h,opspilot_runbook,opspilot_dashboard" {
		t.Errorf("buttons %s", got)
	}

	// The graph: the expression without its comparison, uploaded with the
	// files v2 flow into the message's thread.
	if got := e.q.exprs; len(got) != 1 || got[0] != `rate(http_errors_total{service="billing"}[5m])` {
		t.Errorf("graph queries %q", got)
	}
	ups := e.srv.uploaded()
	if len(ups) != 1 {
		t.Fatalf("%d uploads, want 1", len(ups))
	}
	img, err := png.Decode(bytes.NewReader(ups[0]))
	if err != nil {
		t.Fatalf("uploaded graph is not a PNG: %v", err)
	}
	if sz := img.Bounds().Size(); sz.X != slackGraphWidth || sz.Y != slackGraphHeight {
		t.Errorf("graph size %v", sz)
	}
	if len(e.tr.callsTo("files.getUploadURLExternal")) != 1 {
		t.Error("no files.getUploadURLExternal")
	}
	comp := e.tr.callsTo("files.completeUploadExternal")
	ch, ts, ok := n.MessageFor(slackTestGroupKey)
	if !ok || ts == "" {
		t.Fatal("message not remembered")
	}
	if len(comp) != 1 || comp[0].Form.Get("channel_id") != ch || comp[0].Form.Get("thread_ts") != ts {
		t.Errorf("files.completeUploadExternal %+v, want channel %s thread %s", comp, ch, ts)
	}
	if sc, _ := e.store.GetStr(slackStoreChannel); sc != ch {
		t.Errorf("store channel %q, want %q", sc, ch)
	}
	if st, _ := e.store.GetStr(slackStoreTS); st != ts {
		t.Errorf("store ts %q, want %q", st, ts)
	}

	evs := e.rec.byType(EventNotified)
	if len(evs) != 1 || evs[0].Who != SlackWho || evs[0].Fingerprint != a.Fingerprint().String() || evs[0].GroupKey != slackTestGroupKey {
		t.Errorf("notified events %+v", evs)
	}
	if got := testutil.ToFloat64(n.m.requests.WithLabelValues("chat.postMessage", "ok")); got != 1 {
		t.Errorf("requests_total{chat.postMessage,ok} = %v", got)
	}
	if got := testutil.ToFloat64(n.m.graphFailures); got != 0 {
		t.Errorf("graph failures %v", got)
	}
}

func TestSlackNotifierAgainstSlacktestServerUpdatesInPlaceAndResolves(t *testing.T) {
	e := newSlackTestEnv(t)
	n := e.notifier(t)
	a1, a2 := slackTestAlert("host-1", time.Time{}), slackTestAlert("host-2", time.Time{})

	if v := n.Notify(e.ctx(slackTestNow), a1); v.Err() != nil {
		t.Fatal(v.Err())
	}
	ch, ts, _ := n.MessageFor(slackTestGroupKey)

	// More alerts firing in the group: the same message, edited.
	if v := n.Notify(e.ctx(slackTestNow.Add(time.Minute)), a1, a2); v.Err() != nil {
		t.Fatal(v.Err())
	}
	ups := e.tr.callsTo("chat.update")
	if len(ups) != 1 || ups[0].Form.Get("channel") != ch || ups[0].Form.Get("ts") != ts {
		t.Fatalf("chat.update calls %+v, want one for %s/%s", ups, ch, ts)
	}
	if h := slackTestHeader(t, slackTestBlocks(t, ups[0])); !strings.Contains(h, "FIRING:2") {
		t.Errorf("header after the second alert %q", h)
	}
	if len(e.tr.callsTo("chat.postMessage")) != 1 {
		t.Errorf("a second chat.postMessage for the same group")
	}
	if len(e.srv.uploaded()) != 1 {
		t.Errorf("%d graphs, want only the first message's", len(e.srv.uploaded()))
	}

	// All resolved: edited to green, "Resolved", no buttons.
	end := slackTestNow.Add(2 * time.Minute)
	r1, r2 := slackTestAlert("host-1", end), slackTestAlert("host-2", end)
	if v := n.Notify(e.ctx(slackTestNow.Add(3*time.Minute)), r1, r2); v.Err() != nil {
		t.Fatal(v.Err())
	}
	ups = e.tr.callsTo("chat.update")
	if len(ups) != 2 || ups[1].Form.Get("channel") != ch || ups[1].Form.Get("ts") != ts {
		t.Fatalf("chat.update calls %+v, want a second for %s/%s", ups, ch, ts)
	}
	blocks := slackTestBlocks(t, ups[1])
	if h := slackTestHeader(t, blocks); !strings.Contains(h, "RESOLVED") || !strings.Contains(h, ":white_check_mark:") {
		t.Errorf("resolved header %q", h)
	}
	if slackTestActionBlock(blocks) != nil {
		t.Error("resolved message still has buttons")
	}
	if text := slackTestText(blocks); !strings.Contains(text, "*Resolved at*") || !strings.Contains(text, "*Resolved*\n2") {
		t.Errorf("resolved text:\n%s", text)
	}
	if !strings.Contains(ups[1].Form.Get("attachments"), "#2eb886") {
		t.Errorf("resolved colour missing: %s", ups[1].Form.Get("attachments"))
	}
	if len(e.tr.callsTo("chat.postMessage")) != 1 {
		t.Error("resolve posted a new message")
	}

	// The incident is over: firing again starts a new message.
	if _, ok := e.store.GetStr(slackStoreTS); ok {
		t.Error("store still names the resolved message")
	}
	if v := n.Notify(e.ctx(slackTestNow.Add(time.Hour)), slackTestAlert("host-1", time.Time{})); v.Err() != nil {
		t.Fatal(v.Err())
	}
	if got := len(e.tr.callsTo("chat.postMessage")); got != 2 {
		t.Errorf("%d chat.postMessage calls after re-firing, want 2", got)
	}
}

func TestSlackNotifierAgainstSlacktestServerKeepsMessageAcrossRestartViaNflogStore(t *testing.T) {
	e := newSlackTestEnv(t)
	before := e.notifier(t)
	if v := before.Notify(e.ctx(slackTestNow), slackTestAlert("host-1", time.Time{})); v.Err() != nil {
		t.Fatal(v.Err())
	}
	ch, ts, _ := before.MessageFor(slackTestGroupKey)

	// A restart: a new notifier with an empty memory, and the store as the
	// notification log's snapshot gives it back.
	e.tr.reset()
	after := e.notifier(t)
	if _, _, ok := after.MessageFor(slackTestGroupKey); ok {
		t.Fatal("new notifier remembers the message in memory")
	}
	if v := after.Notify(e.ctx(slackTestNow.Add(5*time.Minute)), slackTestAlert("host-1", slackTestNow.Add(4*time.Minute))); v.Err() != nil {
		t.Fatal(v.Err())
	}
	ups := e.tr.callsTo("chat.update")
	if len(ups) != 1 || ups[0].Form.Get("channel") != ch || ups[0].Form.Get("ts") != ts {
		t.Fatalf("after the restart chat.update calls %+v, want one for %s/%s", ups, ch, ts)
	}
	if n := len(e.tr.callsTo("chat.postMessage")); n != 0 {
		t.Errorf("after the restart %d chat.postMessage calls, want 0", n)
	}
}

func TestSlackNotifierAgainstSlacktestServerWithoutStoreUsesMemory(t *testing.T) {
	e := newSlackTestEnv(t)
	n := e.notifier(t)
	ctx := notify.WithGroupKey(context.Background(), "g1")
	if v := n.Notify(ctx, slackTestAlert("host-1", time.Time{})); v.Err() != nil {
		t.Fatal(v.Err())
	}
	if v := n.Notify(ctx, slackTestAlert("host-1", time.Time{}), slackTestAlert("host-2", time.Time{})); v.Err() != nil {
		t.Fatal(v.Err())
	}
	if p, u := len(e.tr.callsTo("chat.postMessage")), len(e.tr.callsTo("chat.update")); p != 1 || u != 1 {
		t.Errorf("%d posts and %d updates, want 1 and 1", p, u)
	}
}

func TestSlackNotifierAgainstSlacktestServerErrorVerdicts(t *testing.T) {
	jsonErr := func(code string) func(*http.Request, string) (*http.Response, error) {
		return func(r *http.Request, method string) (*http.Response, error) {
			if method != "chat.postMessage" {
				return nil, nil
			}
			return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}, Request: r,
				Body: io.NopCloser(strings.NewReader(`{"ok":false,"error":"` + code + `"}`))}, nil
		}
	}
	cases := []struct {
		name      string
		fault     func(*http.Request, string) (*http.Response, error)
		retry     bool
		delay     time.Duration
		errSubstr string
	}{
		{"ratelimited 429", func(r *http.Request, method string) (*http.Response, error) {
			return &http.Response{StatusCode: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"7"}}, Request: r, Body: io.NopCloser(strings.NewReader(""))}, nil
		}, true, 7 * time.Second, "rate limited"},
		{"ratelimited in the body", jsonErr("ratelimited"), true, 0, "ratelimited"},
		{"invalid_auth", jsonErr("invalid_auth"), false, 0, "token_file"},
		{"channel_not_found", jsonErr("channel_not_found"), false, 0, "/invite"},
		{"not_in_channel", jsonErr("not_in_channel"), false, 0, "/invite"},
		{"server error", func(r *http.Request, method string) (*http.Response, error) {
			return &http.Response{StatusCode: 503, Status: "503 Service Unavailable", Request: r, Body: io.NopCloser(strings.NewReader("down"))}, nil
		}, true, 0, "503"},
		{"network error", func(r *http.Request, method string) (*http.Response, error) {
			return nil, errors.New("dial tcp: connection refused")
		}, true, 0, "cannot reach"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newSlackTestEnv(t)
			n := e.notifier(t)
			e.tr.setFault(c.fault)
			v := n.Notify(e.ctx(slackTestNow), slackTestAlert("host-1", time.Time{}))
			if v.Err() == nil {
				t.Fatal("no error")
			}
			if v.ShouldRetry() != c.retry || v.Delay() != c.delay || !strings.Contains(v.Err().Error(), c.errSubstr) {
				t.Errorf("verdict retry=%v delay=%s err=%q, want retry=%v delay=%s err containing %q", v.ShouldRetry(), v.Delay(), v.Err(), c.retry, c.delay, c.errSubstr)
			}
			if evs := e.rec.byType(EventNotifyFailed); len(evs) != 1 || evs[0].Who != SlackWho {
				t.Errorf("notify-failed events %+v", evs)
			}
			if _, ok := e.store.GetStr(slackStoreTS); ok {
				t.Error("a failed post stored a message ts")
			}
		})
	}
}

func TestSlackNotifierAgainstSlacktestServerSendsMessageWhenGraphFails(t *testing.T) {
	t.Run("query fails", func(t *testing.T) {
		e := newSlackTestEnv(t)
		e.q.err = errors.New("tsdb down")
		n := e.notifier(t)
		if v := n.Notify(e.ctx(slackTestNow), slackTestAlert("host-1", time.Time{})); v.Err() != nil {
			t.Fatal(v.Err())
		}
		if len(e.tr.callsTo("chat.postMessage")) != 1 || len(e.srv.uploaded()) != 0 {
			t.Error("want the message without a graph")
		}
		if got := testutil.ToFloat64(n.m.graphFailures); got != 1 {
			t.Errorf("graph failures %v, want 1", got)
		}
	})
	t.Run("upload fails", func(t *testing.T) {
		e := newSlackTestEnv(t)
		e.tr.setFault(func(r *http.Request, method string) (*http.Response, error) {
			if method == "files.getUploadURLExternal" {
				return nil, errors.New("connection reset")
			}
			return nil, nil
		})
		n := e.notifier(t)
		if v := n.Notify(e.ctx(slackTestNow), slackTestAlert("host-1", time.Time{})); v.Err() != nil {
			t.Fatal(v.Err())
		}
		if got := testutil.ToFloat64(n.m.graphFailures); got != 1 {
			t.Errorf("graph failures %v, want 1", got)
		}
	})
	t.Run("no expression", func(t *testing.T) {
		e := newSlackTestEnv(t)
		n := e.notifier(t)
		a := slackTestAlert("host-1", time.Time{})
		a.GeneratorURL = ""
		if v := n.Notify(e.ctx(slackTestNow), a); v.Err() != nil {
			t.Fatal(v.Err())
		}
		if len(e.q.exprs) != 0 || len(e.srv.uploaded()) != 0 {
			t.Error("graph without an expression")
		}
		if got := testutil.ToFloat64(n.m.graphFailures); got != 0 {
			t.Errorf("graph failures %v, want 0", got)
		}
	})
	t.Run("graph disabled", func(t *testing.T) {
		e := newSlackTestEnv(t)
		off := false
		e.cfg.Graph = &off
		n := e.notifier(t)
		if v := n.Notify(e.ctx(slackTestNow), slackTestAlert("host-1", time.Time{})); v.Err() != nil {
			t.Fatal(v.Err())
		}
		if len(e.srv.uploaded()) != 0 || len(e.tr.callsTo("files.getUploadURLExternal")) != 0 {
			t.Error("graph uploaded although disabled")
		}
	})
}

func TestSlackNotifierAgainstSlacktestServerShowsQueriedValueWithoutAnnotation(t *testing.T) {
	e := newSlackTestEnv(t)
	n := e.notifier(t)
	a := slackTestAlert("host-1", time.Time{})
	delete(a.Annotations, "value")
	if v := n.Notify(e.ctx(slackTestNow), a); v.Err() != nil {
		t.Fatal(v.Err())
	}
	posts := e.tr.callsTo("chat.postMessage")
	if len(posts) != 1 {
		t.Fatalf("%d posts", len(posts))
	}
	// The fake store's last sample of {service="billing"} is 0.005.
	if text := slackTestText(slackTestBlocks(t, posts[0])); !strings.Contains(text, "*Value*\n0.005") || !strings.Contains(text, "`instance=host-1` — 0.005") {
		t.Errorf("queried value missing:\n%s", text)
	}
	if len(e.q.exprs) != 1 {
		t.Errorf("%d queries, want one for both the value and the graph", len(e.q.exprs))
	}
}

func TestSlackQueriedValuesMatchAlertLabels(t *testing.T) {
	q := &slackQueried{matrix: model.Matrix{
		{Metric: model.Metric{"instance": "a"}, Values: []model.SamplePair{{Timestamp: 1, Value: 1}, {Timestamp: 2, Value: 2}}},
		{Metric: model.Metric{"instance": "b"}, Values: []model.SamplePair{{Timestamp: 1, Value: 3}, {Timestamp: 2, Value: model.SampleValue(math.NaN())}}},
	}}
	a, b, c := slackTestAlert("a", time.Time{}), slackTestAlert("b", time.Time{}), slackTestAlert("c", time.Time{})
	got := q.values([]*amalert.Alert{a, b, c})
	if got[a.Fingerprint()] != "2" || got[b.Fingerprint()] != "3" || got[c.Fingerprint()] != "" {
		t.Errorf("values %v", got)
	}
	if (*slackQueried)(nil).values([]*amalert.Alert{a}) != nil {
		t.Error("nil query has values")
	}
}

func TestSlackBuildMessageSeverities(t *testing.T) {
	cases := []struct{ sev, emoji, color string }{
		{"critical", ":red_circle:", "#d00000"},
		{"warning", ":warning:", "#f2c744"},
		{"info", ":information_source:", "#439fe0"},
		{"", ":large_orange_circle:", "#ff8c00"},
	}
	for _, c := range cases {
		a := slackTestAlert("host-1", time.Time{})
		a.Labels["severity"] = model.LabelValue(c.sev)
		if c.sev == "" {
			delete(a.Labels, "severity")
		}
		m := slackBuildMessage(SlackConfig{}, "g", nil, []*amalert.Alert{a}, slackTestNow, nil)
		h := m.blocks[0].(*slack.HeaderBlock).Text.Text
		if !strings.HasPrefix(h, c.emoji) || m.color != c.color {
			t.Errorf("severity %q: header %q colour %s", c.sev, h, m.color)
		}
	}
	// Long texts stay within Slack's limits.
	a := slackTestAlert(strings.Repeat("i", 5000), time.Time{})
	a.Labels["alertname"] = model.LabelValue(strings.Repeat("N", 300))
	a.Annotations["summary"] = model.LabelValue(strings.Repeat("s", 5000))
	a.Annotations["value"] = model.LabelValue(strings.Repeat("9", 5000))
	m := slackBuildMessage(SlackConfig{DashboardURL: "https://g.example/"}, "g", nil, []*amalert.Alert{a}, slackTestNow, nil)
	if n := len([]rune(m.blocks[0].(*slack.HeaderBlock).Text.Text)); n > slackMaxHeader {
		t.Errorf("header %d runes", n)
	}
	for _, b := range m.blocks {
		if sb, ok := b.(*slack.SectionBlock); ok {
			if sb.Text != nil && len([]rune(sb.Text.Text)) > slackMaxSectionText {
				t.Errorf("section %d runes", len([]rune(sb.Text.Text)))
			}
			for _, f := range sb.Fields {
				if len([]rune(f.Text)) > slackMaxFieldText {
					t.Errorf("field %d runes", len([]rune(f.Text)))
				}
			}
		}
		if ab, ok := b.(*slack.ActionBlock); ok {
			for _, el := range ab.Elements.ElementSet {
				if btn := el.(*slack.ButtonBlockElement); len(btn.Value) > slackMaxButtonValue || len(btn.URL) > slackMaxURL {
					t.Errorf("button %s: value %d, URL %d", btn.ActionID, len(btn.Value), len(btn.URL))
				}
			}
		}
	}
}

func TestSlackNotifierAgainstSlacktestServerPostsAnewWhenMessageIsGone(t *testing.T) {
	e := newSlackTestEnv(t)
	n := e.notifier(t)
	if v := n.Notify(e.ctx(slackTestNow), slackTestAlert("host-1", time.Time{})); v.Err() != nil {
		t.Fatal(v.Err())
	}
	e.tr.setFault(func(r *http.Request, method string) (*http.Response, error) {
		if method != "chat.update" {
			return nil, nil
		}
		return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}}, Request: r,
			Body: io.NopCloser(strings.NewReader(`{"ok":false,"error":"message_not_found"}`))}, nil
	})
	if v := n.Notify(e.ctx(slackTestNow.Add(time.Minute)), slackTestAlert("host-1", time.Time{}), slackTestAlert("host-2", time.Time{})); v.Err() != nil {
		t.Fatal(v.Err())
	}
	if p := len(e.tr.callsTo("chat.postMessage")); p != 2 {
		t.Errorf("%d posts, want a new one after message_not_found", p)
	}
}

func TestSlackNotifierRequiresGroupKey(t *testing.T) {
	e := newSlackTestEnv(t)
	n := e.notifier(t)
	v := n.Notify(context.Background(), slackTestAlert("host-1", time.Time{}))
	if v.Err() == nil || v.ShouldRetry() {
		t.Errorf("verdict %v retry %v, want unrecoverable", v.Err(), v.ShouldRetry())
	}
}

func TestSlackNotifiersShareOneRegistry(t *testing.T) {
	e := newSlackTestEnv(t)
	a, b := e.notifier(t), e.notifier(t)
	if a.m.requests != b.m.requests {
		t.Error("second notifier did not reuse the registered counters")
	}
}

func TestEncodeSlackActionValueFitsSlackLimit(t *testing.T) {
	long := strings.Repeat("x", 3000)
	cases := []AlertRef{
		{Fingerprint: "abcdef0123456789", GroupKey: slackTestGroupKey, Labels: map[string]string{"alertname": "A", "service": "billing"}},
		{Fingerprint: "abcdef0123456789", GroupKey: slackTestGroupKey, Labels: map[string]string{"alertname": "A", "huge": long, "other": strings.Repeat("y", 900)}},
		{Fingerprint: "abcdef0123456789", GroupKey: long, Labels: map[string]string{"alertname": "A"}},
		{Fingerprint: "abcdef0123456789", GroupKey: `{}:{q="\"<&>"}`, Labels: map[string]string{"ünï": "çødé \u2028"}},
	}
	for i, ref := range cases {
		v := EncodeSlackActionValue(ref)
		if len(v) > slackMaxButtonValue {
			t.Errorf("case %d: %d bytes", i, len(v))
		}
		got, err := DecodeSlackActionValue(v)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if got.Fingerprint != ref.Fingerprint {
			t.Errorf("case %d: fingerprint %q", i, got.Fingerprint)
		}
		if (i == 0 || i == 3) && (got.GroupKey != ref.GroupKey || len(got.Labels) != len(ref.Labels)) {
			t.Errorf("case %d: a short value lost data: %+v", i, got)
		}
	}
	// A huge group key is dropped, the labels stay.
	if got, _ := DecodeSlackActionValue(EncodeSlackActionValue(cases[2])); got.GroupKey != "" || got.Labels["alertname"] != "A" {
		t.Errorf("huge group key: %+v", got)
	}
	// Labels are dropped longest first, alertname last.
	got, _ := DecodeSlackActionValue(EncodeSlackActionValue(cases[1]))
	if got.Labels["alertname"] != "A" || got.Labels["other"] == "" || got.Labels["huge"] != "" || got.GroupKey != slackTestGroupKey {
		t.Errorf("dropping order: %+v", got)
	}
	for _, bad := range []string{"", "{}", "[]", `{"f":""}`, strings.Repeat("a", 2001)} {
		if _, err := DecodeSlackActionValue(bad); err == nil {
			t.Errorf("DecodeSlackActionValue(%.20q) succeeded", bad)
		}
	}
}

func TestSlackConfigValidate(t *testing.T) {
	ok := SlackConfig{Receiver: "ops", Channel: "C1", TokenFile: "/run/secrets/slack"}
	cases := []struct {
		name  string
		edit  func(*SlackConfig)
		field string
	}{
		{"ok", func(*SlackConfig) {}, ""},
		{"no receiver", func(c *SlackConfig) { c.Receiver = "" }, "receiver"},
		{"no channel", func(c *SlackConfig) { c.Channel = "" }, "channel"},
		{"no token", func(c *SlackConfig) { c.TokenFile = "" }, "token_file"},
		{"two tokens", func(c *SlackConfig) { c.Token = "xoxb-1" }, "token"},
		{"two secrets", func(c *SlackConfig) { c.SigningSecret, c.SigningSecretFile = "a", "b" }, "signing_secret"},
		{"bad api url", func(c *SlackConfig) { c.APIURL = "slack.com/api" }, "api_url"},
		{"bad dashboard url", func(c *SlackConfig) { c.DashboardURL = "ftp://x" }, "dashboard_url"},
		{"graph range too short", func(c *SlackConfig) { c.GraphRange = time.Second }, "graph_range"},
	}
	for _, c := range cases {
		cfg := ok
		c.edit(&cfg)
		ps := cfg.Validate()
		switch {
		case c.field == "" && len(ps) > 0:
			t.Errorf("%s: %v", c.name, ps)
		case c.field != "" && (len(ps) != 1 || ps[0].Field != c.field):
			t.Errorf("%s: problems %v, want one on %s", c.name, ps, c.field)
		}
	}
	if _, err := NewSlackNotifier(SlackConfig{Receiver: "ops", Channel: "C1", TokenFile: filepath.Join(t.TempDir(), "missing")}, SlackOptions{}); err == nil || !strings.Contains(err.Error(), "token_file") {
		t.Errorf("missing token file: %v", err)
	}
	if !(SlackConfig{}).GraphEnabled() {
		t.Error("graph is off by default")
	}
}

func TestSlackDashboardURL(t *testing.T) {
	cases := []struct{ base, ann, want string }{
		{"https://g.example/", "d/abc", "https://g.example/d/abc"},
		{"https://g.example/grafana", "/d/abc?x=1", "https://g.example/grafana/d/abc?x=1"},
		{"https://g.example/", "https://other.example/x", "https://other.example/x"},
		{"", "d/abc", ""},
		{"https://g.example/", "", "https://g.example/"},
		{"", "", ""},
	}
	for _, c := range cases {
		if got := slackDashboardURL(c.base, c.ann); got != c.want {
			t.Errorf("slackDashboardURL(%q, %q) = %q, want %q", c.base, c.ann, got, c.want)
		}
	}
}

// Interactions.

const slackTestSecret = "8f742231b10e8888abcd99yyyzzz85a5"

type slackTestActions struct {
	mu    sync.Mutex
	calls []string
	refs  []AlertRef
	whos  []string
	whys  []string
	d     time.Duration
	err   error
}

func (a *slackTestActions) add(call string, ref AlertRef, who, why string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, call)
	a.refs = append(a.refs, ref)
	a.whos = append(a.whos, who)
	a.whys = append(a.whys, why)
}

func (a *slackTestActions) Acknowledge(_ context.Context, ref AlertRef, who string) error {
	a.add("ack", ref, who, "")
	return a.err
}

func (a *slackTestActions) SilenceFor(_ context.Context, ref AlertRef, d time.Duration, who, why string) (string, error) {
	a.add("silence", ref, who, why)
	a.mu.Lock()
	a.d = d
	a.mu.Unlock()
	return "sil-1", a.err
}

func (a *slackTestActions) RunRunbook(_ context.Context, ref AlertRef, who string) (string, error) {
	a.add("runbook", ref, who, "")
	return "run-1", a.err
}

func slackTestPayload(actionID, value string) string {
	p := map[string]any{
		"type":      "block_actions",
		"user":      map[string]any{"id": "U123", "name": "alice", "username": "alice"},
		"channel":   map[string]any{"id": "C0OPS"},
		"container": map[string]any{"type": "message", "message_ts": "1764212400.000100", "channel_id": "C0OPS"},
		"actions":   []map[string]any{{"action_id": actionID, "block_id": "opspilot_actions", "type": "button", "value": value, "action_ts": "1764212460.1"}},
	}
	b, _ := json.Marshal(p)
	return url.Values{"payload": {string(b)}}.Encode()
}

func slackTestInteract(h http.Handler, body string, hdr http.Header) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/slack/interactions", strings.NewReader(body))
	for k, v := range hdr {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestSlackInteractionHandlerSignedClicksCallActions(t *testing.T) {
	ref := AlertRef{Fingerprint: "0123456789abcdef", GroupKey: slackTestGroupKey, Labels: map[string]string{"alertname": "HighErrorRate", "service": "billing"}}
	value := EncodeSlackActionValue(ref)
	cases := []struct{ action, call, reply string }{
		{SlackActionAck, "ack", "acknowledged"},
		{SlackActionSilence1h, "silence", "silenced the alert for 1h (silence sil-1)"},
		{SlackActionRunbook, "runbook", "started the runbook: run-1"},
	}
	for _, c := range cases {
		t.Run(c.action, func(t *testing.T) {
			acts := &slackTestActions{}
			h := NewSlackInteractionHandler(slackTestSecret, acts, nil)
			body := slackTestPayload(c.action, value)
			w := slackTestInteract(h, body, slackrec.Sign(body, slackTestSecret, time.Now()))
			if w.Code != http.StatusOK {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			if len(acts.calls) != 1 || acts.calls[0] != c.call {
				t.Fatalf("calls %v, want [%s]", acts.calls, c.call)
			}
			got := acts.refs[0]
			if got.Fingerprint != ref.Fingerprint || got.GroupKey != ref.GroupKey || got.Labels["service"] != "billing" {
				t.Errorf("ref %+v", got)
			}
			if acts.whos[0] != "slack:U123" {
				t.Errorf("who %q", acts.whos[0])
			}
			if c.call == "silence" && (acts.d != time.Hour || acts.whys[0] != "silenced from Slack by alice") {
				t.Errorf("silence for %s because %q", acts.d, acts.whys[0])
			}
			var rep slackInteractionReply
			if err := json.Unmarshal(w.Body.Bytes(), &rep); err != nil || !rep.OK || !strings.Contains(rep.Text, c.reply) {
				t.Errorf("reply %s (%v), want ok and %q", w.Body, err, c.reply)
			}
		})
	}
}

func TestSlackInteractionHandlerReportsActionErrors(t *testing.T) {
	acts := &slackTestActions{err: errors.New(`alert names no runbook: add annotation "runbook"`)}
	h := NewSlackInteractionHandler(slackTestSecret, acts, nil)
	body := slackTestPayload(SlackActionRunbook, EncodeSlackActionValue(AlertRef{Fingerprint: "f"}))
	w := slackTestInteract(h, body, slackrec.Sign(body, slackTestSecret, time.Now()))
	var rep slackInteractionReply
	_ = json.Unmarshal(w.Body.Bytes(), &rep)
	if w.Code != http.StatusOK || rep.OK || !strings.Contains(rep.Text, "names no runbook") {
		t.Errorf("status %d reply %+v", w.Code, rep)
	}
}

func TestSlackInteractionHandlerAgainstSlacktestServerRepliesInThread(t *testing.T) {
	e := newSlackTestEnv(t)
	acts := &slackTestActions{}
	api := slack.New("xoxb-test", slack.OptionAPIURL(e.srv.GetAPIURL()), slack.OptionHTTPClient(&http.Client{Transport: e.tr}))
	h := &SlackInteractionHandler{Secret: slackTestSecret, Actions: acts, Replies: api}
	body := slackTestPayload(SlackActionAck, EncodeSlackActionValue(AlertRef{Fingerprint: "f"}))
	if w := slackTestInteract(h, body, slackrec.Sign(body, slackTestSecret, time.Now())); w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	posts := e.tr.callsTo("chat.postMessage")
	if len(posts) != 1 || posts[0].Form.Get("thread_ts") != "1764212400.000100" || posts[0].Form.Get("channel") != "C0OPS" || !strings.Contains(posts[0].Form.Get("text"), "<@U123> acknowledged") {
		t.Errorf("thread replies %+v", posts)
	}
}

func TestSlackInteractionHandlerRejects(t *testing.T) {
	value := EncodeSlackActionValue(AlertRef{Fingerprint: "f"})
	good := slackTestPayload(SlackActionAck, value)
	sign := func(body string) http.Header { return slackrec.Sign(body, slackTestSecret, time.Now()) }
	cases := []struct {
		name   string
		body   string
		hdr    http.Header
		status int
		reason string
	}{
		{"bad signature", good, slackrec.Sign(good, "another secret", time.Now()), 401, "does not match"},
		{"stale timestamp", good, slackrec.Sign(good, slackTestSecret, time.Now().Add(-6*time.Minute)), 401, "5 minutes"},
		{"no signature", good, http.Header{}, 401, "missing X-Slack-Signature"},
		{"tampered body", good + "x", sign(good), 401, "does not match"},
		{"garbage", "%%%not a form", sign("%%%not a form"), 400, "form-encoded"},
		{"no payload", "a=b", sign("a=b"), 400, "form field"},
		{"payload not JSON", "payload=%7B", sign("payload=%7B"), 400, "not an interaction JSON"},
		{"wrong type", "payload=" + url.QueryEscape(`{"type":"view_submission","user":{"id":"U1"}}`), sign("payload=" + url.QueryEscape(`{"type":"view_submission","user":{"id":"U1"}}`)), 400, "not handled"},
		{"unknown action", slackTestPayload("other_app_action", value), sign(slackTestPayload("other_app_action", value)), 400, "no opspilot action"},
		{"bad value", slackTestPayload(SlackActionAck, "nope"), sign(slackTestPayload(SlackActionAck, "nope")), 400, "not an opspilot alert reference"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			acts := &slackTestActions{}
			w := slackTestInteract(NewSlackInteractionHandler(slackTestSecret, acts, nil), c.body, c.hdr)
			if w.Code != c.status || !strings.Contains(w.Body.String(), c.reason) {
				t.Errorf("status %d body %s, want %d with %q", w.Code, w.Body, c.status, c.reason)
			}
			if len(acts.calls) != 0 {
				t.Errorf("actions called: %v", acts.calls)
			}
		})
	}
	t.Run("GET", func(t *testing.T) {
		w := httptest.NewRecorder()
		NewSlackInteractionHandler(slackTestSecret, &slackTestActions{}, nil).ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
		if w.Code != http.StatusMethodNotAllowed {
			t.Errorf("status %d", w.Code)
		}
	})
	t.Run("no secret configured", func(t *testing.T) {
		w := slackTestInteract(NewSlackInteractionHandler("", &slackTestActions{}, nil), good, sign(good))
		if w.Code != http.StatusServiceUnavailable {
			t.Errorf("status %d", w.Code)
		}
	})
	t.Run("dashboard click is acknowledged", func(t *testing.T) {
		acts := &slackTestActions{}
		body := slackTestPayload(SlackActionDashboard, "")
		w := slackTestInteract(NewSlackInteractionHandler(slackTestSecret, acts, nil), body, sign(body))
		if w.Code != http.StatusOK || len(acts.calls) != 0 {
			t.Errorf("status %d, calls %v", w.Code, acts.calls)
		}
	})
}

type slackTestSendResolved struct{}

func (slackTestSendResolved) SendResolved() bool { return true }

// slackTestStages is Alertmanager's notify chain for one integration: the
// dedup stage reads the notification log's entry (and its store) into the
// context, the retry stage calls the notifier, the set-notifies stage logs
// the entry with the store.
func slackTestStages(n *SlackNotifier, nl *nflog.Log) notify.Stage {
	recv := &nflogpb.Receiver{GroupName: "ops", Integration: "slack", Idx: 0}
	in := notify.NewIntegration(n, slackTestSendResolved{}, "slack", 0, "ops")
	ff := featurecontrol.NoopFlags{}
	var rec eventrecorder.Recorder
	return notify.MultiStage{
		notify.NewDedupStage(slackTestSendResolved{}, nl, recv),
		notify.NewRetryStage(in, "ops", notify.NewMetrics(prometheus.NewRegistry(), ff), rec),
		notify.NewSetNotifiesStage(nl, recv, ff),
	}
}

func TestSlackNotifierThroughAlertmanagerStagesSurvivesNflogSnapshotAgainstSlacktestServer(t *testing.T) {
	e := newSlackTestEnv(t)
	ctx := notify.WithGroupKey(context.Background(), slackTestGroupKey)
	ctx = notify.WithReceiverName(ctx, "ops")
	ctx = notify.WithGroupLabels(ctx, model.LabelSet{"alertname": "HighErrorRate", "service": "billing"})
	ctx = notify.WithRepeatInterval(ctx, 4*time.Hour)
	log := slog.New(slog.DiscardHandler)

	nl1, err := nflog.New(nflog.Options{Retention: time.Hour, Metrics: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	before := e.notifier(t)
	if _, _, err := slackTestStages(before, nl1).Exec(notify.WithNow(ctx, slackTestNow), log, slackTestAlert("host-1", time.Time{})); err != nil {
		t.Fatal(err)
	}
	ch, ts, ok := before.MessageFor(slackTestGroupKey)
	if !ok {
		t.Fatal("no message posted")
	}

	// Restart: the notification log comes back from its snapshot, the
	// notifier starts with an empty memory.
	var snap bytes.Buffer
	if _, err := nl1.Snapshot(&snap); err != nil {
		t.Fatal(err)
	}
	nl2, err := nflog.New(nflog.Options{Retention: time.Hour, SnapshotReader: &snap, Metrics: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	e.tr.reset()
	after := e.notifier(t)
	resolved := slackTestAlert("host-1", slackTestNow.Add(time.Minute))
	if _, _, err := slackTestStages(after, nl2).Exec(notify.WithNow(ctx, slackTestNow.Add(2*time.Minute)), log, resolved); err != nil {
		t.Fatal(err)
	}
	ups := e.tr.callsTo("chat.update")
	if len(ups) != 1 || ups[0].Form.Get("channel") != ch || ups[0].Form.Get("ts") != ts {
		t.Fatalf("after the restart chat.update calls %+v, want one for %s/%s", ups, ch, ts)
	}
	if p := len(e.tr.callsTo("chat.postMessage")); p != 0 {
		t.Errorf("after the restart %d chat.postMessage calls, want 0", p)
	}
}

func TestSlackConfigParsesFromYAML(t *testing.T) {
	var c SlackConfig
	doc := "receiver: ops\nchannel: C0OPS\ntoken_file: /run/secrets/slack\nsigning_secret_file: /run/secrets/slack-signing\ngraph: false\ngraph_range: 30m\ndashboard_url: https://grafana.example.com/\n"
	if err := config.Parse("slack.yaml", []byte(doc), &c); err != nil {
		t.Fatal(err)
	}
	if c.GraphEnabled() || c.GraphRange != 30*time.Minute || c.SigningSecretFile != "/run/secrets/slack-signing" {
		t.Errorf("decoded %+v", c)
	}
	err := config.Parse("slack.yaml", []byte("receiver: ops\nchannel: C0OPS\ntoken: a\ntoken_file: b\n"), &SlackConfig{})
	if err == nil || !strings.Contains(err.Error(), "slack.yaml:3:8: token: set only one of token and token_file") {
		t.Errorf("two tokens: %v", err)
	}
}
