package alerting

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	amalert "github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/alertmanager/nflog"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/slack-go/slack"

	"opspilot/config"
	"opspilot/tsdb"
)

// Slack action ids of the buttons on an alert message; the interaction
// handler dispatches on them.
const (
	SlackActionAck       = "opspilot_ack"
	SlackActionSilence1h = "opspilot_silence_1h"
	SlackActionRunbook   = "opspilot_runbook"
	SlackActionDashboard = "opspilot_dashboard"
)

// Defaults of SlackConfig.
const (
	DefaultSlackAPIURL     = "https://slack.com/api/"
	DefaultSlackGraphRange = time.Hour
	// SlackWho is the name Slack notifications are recorded under.
	SlackWho = "slack"
)

// Keys of the message's location in the notification log's per-group
// store (notify.NflogStore), so an update after a restart edits the same
// message.
const (
	slackStoreChannel = "opspilot_slack_channel"
	slackStoreTS      = "opspilot_slack_ts"
)

// Slack's limits that the message must respect.
const (
	slackMaxButtonValue = 2000
	slackMaxHeader      = 150
	slackMaxSectionText = 3000
	slackMaxFieldText   = 2000
	slackMaxAlertLines  = 10
	slackMaxURL         = 3000
)

// Graph size and the time a graph may take before the notifier gives up on
// it (the message itself is already posted then).
const (
	slackGraphWidth   = 800
	slackGraphHeight  = 300
	slackGraphTimeout = 15 * time.Second
	slackQueryTimeout = 5 * time.Second
	slackGraphPoints  = 240
)

// SlackConfig attaches a Slack channel to an Alertmanager receiver.
type SlackConfig struct {
	// Receiver is the Alertmanager receiver name whose notifications go
	// to Slack.
	Receiver string `yaml:"receiver"`
	// Channel is the channel id (C0123…) or name (#ops) to post to; the
	// bot must be a member.
	Channel string `yaml:"channel"`
	// Token is the bot token (xoxb-…). Prefer TokenFile; exactly one of
	// them must be set.
	Token     string `yaml:"token"`
	TokenFile string `yaml:"token_file"`
	// SigningSecret verifies the interaction requests (button clicks)
	// Slack sends; SigningSecretFile is preferred. Without either, buttons
	// are still shown but the interaction endpoint cannot be served.
	SigningSecret     string `yaml:"signing_secret"`
	SigningSecretFile string `yaml:"signing_secret_file"`
	// APIURL is Slack's Web API base URL (default
	// https://slack.com/api/); tests point it at a fake server.
	APIURL string `yaml:"api_url"`
	// DashboardURL is the base URL of the Open dashboard button; an
	// alert's "dashboard" annotation is joined to it (an absolute
	// annotation URL is used as is).
	DashboardURL string `yaml:"dashboard_url"`
	// Graph attaches a PNG of the alert's expression over GraphRange to the
	// message's thread (default true).
	Graph *bool `yaml:"graph"`
	// GraphRange is the graph's time span (default 1h).
	GraphRange time.Duration `yaml:"graph_range"`
}

// Validate reports problems with YAML field paths.
func (c SlackConfig) Validate() []config.Problem {
	var ps []config.Problem
	if c.Receiver == "" {
		ps = append(ps, config.Problem{Field: "receiver", Msg: "is required: the name of the Alertmanager receiver whose notifications go to this channel"})
	}
	if c.Channel == "" {
		ps = append(ps, config.Problem{Field: "channel", Msg: "is required: the channel id (C0123ABCD) or name (#ops) to post to; invite the bot there"})
	}
	switch {
	case c.Token == "" && c.TokenFile == "":
		ps = append(ps, config.Problem{Field: "token_file", Msg: "a bot token is required: put the app's xoxb-… token (OAuth & Permissions page) in a file and set token_file (or token)"})
	case c.Token != "" && c.TokenFile != "":
		ps = append(ps, config.Problem{Field: "token", Msg: "set only one of token and token_file (token_file is preferred: it keeps the secret out of the config)"})
	}
	if c.SigningSecret != "" && c.SigningSecretFile != "" {
		ps = append(ps, config.Problem{Field: "signing_secret", Msg: "set only one of signing_secret and signing_secret_file (signing_secret_file is preferred)"})
	}
	if c.APIURL != "" {
		if u, err := url.Parse(c.APIURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			ps = append(ps, config.Problem{Field: "api_url", Msg: fmt.Sprintf("%q is not an http(s) URL; leave it empty for %s", c.APIURL, DefaultSlackAPIURL)})
		}
	}
	if c.DashboardURL != "" {
		if u, err := url.Parse(c.DashboardURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			ps = append(ps, config.Problem{Field: "dashboard_url", Msg: fmt.Sprintf("%q is not an http(s) URL; use for example https://grafana.example.com/", c.DashboardURL)})
		}
	}
	if c.GraphRange != 0 && (c.GraphRange < time.Minute || c.GraphRange > 7*24*time.Hour) {
		ps = append(ps, config.Problem{Field: "graph_range", Msg: fmt.Sprintf("%s is outside 1m..7d; the default 1h shows the breach and what led to it", c.GraphRange)})
	}
	return ps
}

// GraphEnabled reports whether messages get a graph (Graph unset means
// yes).
func (c SlackConfig) GraphEnabled() bool { return c.Graph == nil || *c.Graph }

// LoadToken returns the bot token, reading TokenFile if set.
func (c SlackConfig) LoadToken() (string, error) {
	return slackSecret(c.Token, c.TokenFile, "token_file", "the bot token (xoxb-…)")
}

// LoadSigningSecret returns the signing secret for NewSlackInteractionHandler,
// reading SigningSecretFile if set; "" when neither is set.
func (c SlackConfig) LoadSigningSecret() (string, error) {
	if c.SigningSecret == "" && c.SigningSecretFile == "" {
		return "", nil
	}
	return slackSecret(c.SigningSecret, c.SigningSecretFile, "signing_secret_file", "the app's signing secret (Basic Information page)")
}

func slackSecret(inline, file, field, what string) (string, error) {
	if file == "" {
		return strings.TrimSpace(inline), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("slack %s: %w; create the file with %s", field, err, what)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("slack %s: %s is empty; put %s in it", field, file, what)
	}
	return s, nil
}

// SlackOptions are the notifier's dependencies; all are optional.
type SlackOptions struct {
	// Querier runs the graph's range query; nil means no graphs.
	Querier RangeQuerier
	// Recorder receives a notified (or notify-failed) event per alert; nil
	// drops them.
	Recorder   Recorder
	Registerer prometheus.Registerer
	Log        *slog.Logger
	// HTTPClient talks to Slack (default: 30 s timeout).
	HTTPClient *http.Client
}

// SlackNotifier posts one Block Kit message per alert group to a channel
// and edits it in place as the group changes and resolves. It implements
// Alertmanager's notify.Notifier and is safe for concurrent use.
type SlackNotifier struct {
	cfg SlackConfig
	o   SlackOptions
	api *slack.Client
	log *slog.Logger
	m   *slackMetrics

	mu sync.Mutex
	// msgs is where each group's message is, by group key: the fallback
	// when the context carries no notification-log store.
	msgs map[string]slackMessageRef
	// threads keeps each group's last message after it resolved, so the
	// incident's summary can still go in its thread (bounded).
	threads map[string]slackMessageRef
}

type slackMessageRef struct{ Channel, TS string }

var _ notify.Notifier = (*SlackNotifier)(nil)

// NewSlackNotifier checks cfg, reads the token and returns the notifier.
func NewSlackNotifier(cfg SlackConfig, o SlackOptions) (*SlackNotifier, error) {
	if ps := cfg.Validate(); len(ps) > 0 {
		msgs := make([]string, len(ps))
		for i, p := range ps {
			msgs[i] = p.Field + ": " + p.Msg
		}
		return nil, fmt.Errorf("slack receiver %q: %s", cfg.Receiver, strings.Join(msgs, "; "))
	}
	token, err := cfg.LoadToken()
	if err != nil {
		return nil, err
	}
	if cfg.APIURL == "" {
		cfg.APIURL = DefaultSlackAPIURL
	}
	if !strings.HasSuffix(cfg.APIURL, "/") {
		// slack-go appends the method name to the base URL.
		cfg.APIURL += "/"
	}
	if cfg.GraphRange == 0 {
		cfg.GraphRange = DefaultSlackGraphRange
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	m, err := newSlackMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	return &SlackNotifier{
		cfg:  cfg,
		o:    o,
		api:  slack.New(token, slack.OptionAPIURL(cfg.APIURL), slack.OptionHTTPClient(o.HTTPClient)),
		log:  o.Log,
		m:    m,
		msgs: map[string]slackMessageRef{}, threads: map[string]slackMessageRef{},
	}, nil
}

// Client is the notifier's Slack API client, for replies in an alert's
// thread (the interaction handler's SlackReplier).
func (n *SlackNotifier) Client() *slack.Client { return n.api }

// Notify posts or updates the group's message. Alertmanager calls it with
// the group's firing and resolved alerts and the group key in ctx.
func (n *SlackNotifier) Notify(ctx context.Context, alerts ...*amalert.Alert) notify.NotifyVerdict {
	key, err := notify.ExtractGroupKey(ctx)
	if err != nil {
		return notify.Unrecoverable(fmt.Errorf("slack: %w; the notifier must run inside Alertmanager's notification pipeline", err), notify.MissingContextReason)
	}
	if len(alerts) == 0 {
		return notify.Success()
	}
	gk := string(key)
	log := n.log.With("group_key", gk)
	now, ok := notify.Now(ctx)
	if !ok {
		now = time.Now()
	}
	groupLabels, _ := notify.GroupLabels(ctx)
	// The range query runs before the post: it gives the current values
	// the message shows when the rule sets no "value" annotation, and the
	// graph uploaded after the post.
	var q *slackQueried
	if first := slackFirstFiring(alerts, now); first != nil && n.o.Querier != nil {
		q = n.query(ctx, log, first, now)
	}
	msg := slackBuildMessage(n.cfg, gk, groupLabels, alerts, now, q.values(alerts))

	store, hasStore := notify.NflogStore(ctx)
	ref, found := n.lookup(gk, store)

	var v notify.NotifyVerdict
	posted := false
	if found {
		_, _, _, err := n.api.UpdateMessageContext(ctx, ref.Channel, ref.TS, msg.options()...)
		n.count("chat.update", err)
		var se slack.SlackErrorResponse
		if errors.As(err, &se) && (se.Err == "message_not_found" || se.Err == "cant_update_message" || se.Err == "edit_window_closed") {
			// The message was deleted or cannot be edited: post a new one
			// rather than lose the notification.
			log.Warn("slack: cannot update the group's message, posting a new one", "channel", ref.Channel, "ts", ref.TS, "err", err)
			found = false
		} else if err != nil {
			v = n.verdict("chat.update", err)
		}
	}
	if !found {
		ch, ts, err := n.api.PostMessageContext(ctx, n.cfg.Channel, msg.options()...)
		n.count("chat.postMessage", err)
		if err != nil {
			v = n.verdict("chat.postMessage", err)
		} else {
			ref = slackMessageRef{Channel: ch, TS: ts}
			posted = true
		}
	}
	if err := v.Err(); err != nil {
		log.Warn("slack: notification failed", "err", err, "retry", v.ShouldRetry())
		n.record(ctx, gk, alerts, EventNotifyFailed, err.Error())
		return v
	}

	if msg.allResolved {
		// The incident is over: a new firing of this group starts a new
		// message.
		n.forget(gk, store)
	} else {
		n.remember(gk, store, ref)
	}
	if !hasStore {
		log.Debug("slack: no notification-log store in the context; the message location is kept in memory only")
	}
	if posted && !msg.allResolved && n.cfg.GraphEnabled() && q != nil && q.err == nil {
		n.postGraph(ctx, log, ref, q)
	}
	state := "firing"
	if msg.allResolved {
		state = "resolved"
	}
	n.record(ctx, gk, alerts, EventNotified, fmt.Sprintf("slack %s: %s (%d firing, %d resolved)", ref.Channel, state, len(msg.firing), len(msg.resolved)))
	return notify.Success()
}

// lookup finds the group's message: first in the notification log's store
// (it survives restarts), then in memory.
func (n *SlackNotifier) lookup(gk string, store *nflog.Store) (slackMessageRef, bool) {
	if store != nil {
		ch, ok1 := store.GetStr(slackStoreChannel)
		ts, ok2 := store.GetStr(slackStoreTS)
		if ok1 && ok2 && ch != "" && ts != "" {
			return slackMessageRef{Channel: ch, TS: ts}, true
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	ref, ok := n.msgs[gk]
	return ref, ok
}

func (n *SlackNotifier) remember(gk string, store *nflog.Store, ref slackMessageRef) {
	if store != nil {
		store.SetStr(slackStoreChannel, ref.Channel)
		store.SetStr(slackStoreTS, ref.TS)
	}
	n.mu.Lock()
	n.msgs[gk] = ref
	if len(n.threads) > 10000 {
		n.threads = map[string]slackMessageRef{}
	}
	n.threads[gk] = ref
	n.mu.Unlock()
}

func (n *SlackNotifier) forget(gk string, store *nflog.Store) {
	if store != nil {
		store.Delete(slackStoreChannel)
		store.Delete(slackStoreTS)
	}
	n.mu.Lock()
	delete(n.msgs, gk)
	n.mu.Unlock()
}

// MessageFor returns the channel and ts of the group's current message as
// this notifier remembers it in memory (for tests and the console).
func (n *SlackNotifier) MessageFor(groupKey string) (channel, ts string, ok bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ref, ok := n.msgs[groupKey]
	return ref.Channel, ref.TS, ok
}

// PostInThread replies in the thread of the group's message (also after
// the group resolved); ok=false when this notifier never posted for it.
func (n *SlackNotifier) PostInThread(ctx context.Context, groupKey, text string) (bool, error) {
	n.mu.Lock()
	ref, ok := n.threads[groupKey]
	n.mu.Unlock()
	if !ok {
		return false, nil
	}
	_, _, err := n.api.PostMessageContext(ctx, ref.Channel, slack.MsgOptionText(text, false), slack.MsgOptionTS(ref.TS))
	n.count("chat.postMessage", err)
	return true, err
}

func (n *SlackNotifier) record(ctx context.Context, gk string, alerts []*amalert.Alert, typ, msg string) {
	if n.o.Recorder == nil {
		return
	}
	now := time.Now()
	for _, a := range alerts {
		n.o.Recorder.Record(ctx, Event{Time: now, Type: typ, Fingerprint: a.Fingerprint().String(), AlertName: a.Name(),
			Labels: labelMap(a.Labels), GroupKey: gk, Receiver: n.cfg.Receiver, Who: SlackWho, Message: msg})
	}
}

func (n *SlackNotifier) count(method string, err error) {
	result := "ok"
	var rl *slack.RateLimitedError
	switch {
	case err == nil:
	case errors.As(err, &rl):
		result = "ratelimited"
	default:
		result = "error"
	}
	n.m.requests.WithLabelValues(method, result).Inc()
}

// verdict classifies a Slack error: rate limits and network or server
// errors are retried, configuration errors are not and say how to fix them.
func (n *SlackNotifier) verdict(method string, err error) notify.NotifyVerdict {
	var rl *slack.RateLimitedError
	if errors.As(err, &rl) {
		return notify.Retry(rl.RetryAfter, fmt.Errorf("slack %s: rate limited, retrying after %s: %w", method, rl.RetryAfter, err), notify.RateLimitedReason)
	}
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		switch se.Err {
		case "ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout":
			return notify.Retry(0, fmt.Errorf("slack %s: %s (Slack-side, retrying)", method, se.Err), notify.ServerErrorReason)
		case "invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired", "no_permission":
			return notify.Unrecoverable(fmt.Errorf("slack %s: %s: Slack rejects the bot token; install the app to the workspace and put its Bot User OAuth Token (xoxb-…, OAuth & Permissions page) in token_file of the slack receiver %q", method, se.Err, n.cfg.Receiver), notify.AuthErrorReason)
		case "channel_not_found":
			return notify.Unrecoverable(fmt.Errorf("slack %s: channel_not_found: channel %q does not exist or the bot cannot see it; use the channel id (channel details → bottom of About) and invite the bot with /invite @<bot>", method, n.cfg.Channel), notify.ClientErrorReason)
		case "not_in_channel":
			return notify.Unrecoverable(fmt.Errorf("slack %s: not_in_channel: the bot is not a member of %q; invite it with /invite @<bot> in that channel", method, n.cfg.Channel), notify.ClientErrorReason)
		case "missing_scope":
			return notify.Unrecoverable(fmt.Errorf("slack %s: missing_scope (needed %q): add the chat:write and files:write bot scopes in the app's OAuth & Permissions page and reinstall it", method, se.Needed), notify.AuthErrorReason)
		case "is_archived":
			return notify.Unrecoverable(fmt.Errorf("slack %s: is_archived: channel %q is archived; unarchive it or set another channel", method, n.cfg.Channel), notify.ClientErrorReason)
		}
		return notify.Unrecoverable(fmt.Errorf("slack %s: %s", method, se.Err), notify.ClientErrorReason)
	}
	var sc slack.StatusCodeError
	if errors.As(err, &sc) {
		if sc.Code == http.StatusTooManyRequests || sc.Code >= 500 {
			return notify.Retry(0, fmt.Errorf("slack %s: %w", method, err), notify.GetFailureReasonFromStatusCode(sc.Code))
		}
		return notify.Unrecoverable(fmt.Errorf("slack %s: %w; check api_url (%s)", method, err, n.cfg.APIURL), notify.GetFailureReasonFromStatusCode(sc.Code))
	}
	switch {
	case errors.Is(err, context.Canceled):
		return notify.Retry(0, fmt.Errorf("slack %s: %w", method, err), notify.ContextCanceledReason)
	case errors.Is(err, context.DeadlineExceeded):
		return notify.Retry(0, fmt.Errorf("slack %s: %w", method, err), notify.ContextDeadlineExceededReason)
	}
	var ne net.Error
	var ue *url.Error
	if errors.As(err, &ne) || errors.As(err, &ue) {
		return notify.Retry(0, fmt.Errorf("slack %s: cannot reach %s: %w", method, n.cfg.APIURL, err), notify.RequestErrorReason)
	}
	// Unknown (a truncated or non-JSON answer, for example): retrying is
	// cheaper than losing the notification.
	return notify.Retry(0, fmt.Errorf("slack %s: %w", method, err), notify.DefaultReason)
}

// slackQueried is the range query of a group's first firing alert.
type slackQueried struct {
	alertName string
	plotExpr  string
	threshold *float64
	matrix    model.Matrix
	err       error
}

// query runs the range query of a's expression (without its comparison)
// over the graph range. It returns nil when the alert carries no
// expression; a failed query is logged, counted and kept in err.
func (n *SlackNotifier) query(ctx context.Context, log *slog.Logger, a *amalert.Alert, now time.Time) *slackQueried {
	expr := SlackGraphExpr(a.GeneratorURL)
	if expr == "" {
		log.Debug("slack: no g0.expr in the alert's generator URL: no graph or queried value", "generator_url", a.GeneratorURL)
		return nil
	}
	return n.queryExpr(ctx, log, a.Name(), expr, now)
}

// PostGraphInThread draws expr over the graph range and uploads it to the
// thread of the group's message (a runbook's query step); ok=false when
// this notifier never posted for the group.
func (n *SlackNotifier) PostGraphInThread(ctx context.Context, groupKey, title, expr string) (bool, error) {
	n.mu.Lock()
	ref, ok := n.threads[groupKey]
	n.mu.Unlock()
	if !ok {
		return false, nil
	}
	if n.o.Querier == nil {
		return true, errors.New("slack: no querier for graphs")
	}
	q := n.queryExpr(ctx, n.log, title, expr, time.Now())
	if q.err != nil {
		return true, q.err
	}
	n.postGraph(ctx, n.log, ref, q)
	return true, nil
}

// queryExpr runs expr's range query (without a top-level comparison,
// which becomes the threshold line).
func (n *SlackNotifier) queryExpr(ctx context.Context, log *slog.Logger, name, expr string, now time.Time) *slackQueried {
	q := &slackQueried{alertName: name}
	q.plotExpr, q.threshold = SlackSplitThreshold(expr)
	step := n.cfg.GraphRange / slackGraphPoints
	if step < time.Second {
		step = time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, slackQueryTimeout)
	defer cancel()
	res, err := n.o.Querier.QueryRange(ctx, q.plotExpr, tsdb.Range{Start: now.Add(-n.cfg.GraphRange), End: now, Step: step})
	if err != nil {
		q.err = err
		n.graphFailed(log, "query", q.plotExpr, err)
		return q
	}
	switch v := res.Value.(type) {
	case model.Matrix:
		q.matrix = v
	case model.Vector:
		for _, s := range v {
			q.matrix = append(q.matrix, &model.SampleStream{Metric: s.Metric, Values: []model.SamplePair{{Timestamp: s.Timestamp, Value: s.Value}}})
		}
	}
	return q
}

// values returns the latest queried value of each alert, by fingerprint:
// the series whose labels all match the alert's (the most specific one),
// or the only series.
func (q *slackQueried) values(alerts []*amalert.Alert) map[model.Fingerprint]string {
	if q == nil || q.err != nil || len(q.matrix) == 0 {
		return nil
	}
	out := map[model.Fingerprint]string{}
	for _, a := range alerts {
		var best *model.SampleStream
		for _, ss := range q.matrix {
			match := true
			for k, v := range ss.Metric {
				if k != model.MetricNameLabel && a.Labels[k] != v {
					match = false
					break
				}
			}
			if match && (best == nil || len(ss.Metric) > len(best.Metric)) {
				best = ss
			}
		}
		if best == nil && len(q.matrix) == 1 {
			best = q.matrix[0]
		}
		if best == nil {
			continue
		}
		for i := len(best.Values) - 1; i >= 0; i-- {
			if v := float64(best.Values[i].Value); !math.IsNaN(v) && !math.IsInf(v, 0) {
				out[a.Fingerprint()] = strconv.FormatFloat(v, 'g', 4, 64)
				break
			}
		}
	}
	return out
}

func (n *SlackNotifier) graphFailed(log *slog.Logger, step, expr string, err error) {
	n.m.graphFailures.Inc()
	log.Warn("slack: no graph (the message is sent without)", "step", step, "expr", expr, "err", err)
}

// postGraph renders the queried series and uploads the PNG into the
// message's thread. Failures are logged and counted, never returned: the
// message is already there.
func (n *SlackNotifier) postGraph(ctx context.Context, log *slog.Logger, ref slackMessageRef, q *slackQueried) {
	ctx, cancel := context.WithTimeout(ctx, slackGraphTimeout)
	defer cancel()
	png, err := RenderGraph(slackTruncate(q.alertName+": "+q.plotExpr, 120), slackGraphSeries(q.matrix), q.threshold, slackGraphWidth, slackGraphHeight)
	if err != nil {
		n.graphFailed(log, "render", q.plotExpr, err)
		return
	}
	_, err = n.api.UploadFileContext(ctx, slack.UploadFileParameters{
		Reader:          bytes.NewReader(png),
		FileSize:        len(png),
		Filename:        "graph.png",
		Title:           slackTruncate(q.plotExpr, 200),
		AltTxt:          slackTruncate("graph of "+q.plotExpr, 1000),
		Channel:         ref.Channel,
		ThreadTimestamp: ref.TS,
	})
	n.count("files.upload", err)
	if err != nil {
		n.graphFailed(log, "upload", q.plotExpr, err)
	}
}

// slackFirstFiring returns the first alert still firing at now, or nil.
func slackFirstFiring(alerts []*amalert.Alert, now time.Time) *amalert.Alert {
	for _, a := range alerts {
		if !a.ResolvedAt(now) {
			return a
		}
	}
	return nil
}

// slackMessage is the Block Kit message of a group's notification.
type slackMessage struct {
	text        string
	color       string
	blocks      []slack.Block
	labels      []slack.Block
	firing      []*amalert.Alert
	resolved    []*amalert.Alert
	allResolved bool
}

func (m slackMessage) options() []slack.MsgOption {
	return []slack.MsgOption{
		slack.MsgOptionText(m.text, true),
		slack.MsgOptionBlocks(m.blocks...),
		// Block Kit has no colour; a legacy attachment holding the labels
		// gives the message its severity bar.
		slack.MsgOptionAttachments(slack.Attachment{Color: m.color, Fallback: m.text, Blocks: slack.Blocks{BlockSet: m.labels}}),
	}
}

// slackSeverity is how a severity looks.
func slackSeverity(sev string, resolved bool) (emoji, color string) {
	if resolved {
		return ":white_check_mark:", "#2eb886"
	}
	switch strings.ToLower(sev) {
	case "critical", "page", "error":
		return ":red_circle:", "#d00000"
	case "warning", "warn":
		return ":warning:", "#f2c744"
	case "info", "none":
		return ":information_source:", "#439fe0"
	}
	return ":large_orange_circle:", "#ff8c00"
}

// slackBuildMessage builds the group's message. It is pure, so the layout
// is tested without a server.
// values are queried current values by fingerprint, shown when an alert
// has no "value" annotation.
func slackBuildMessage(cfg SlackConfig, groupKey string, groupLabels model.LabelSet, alerts []*amalert.Alert, now time.Time, values map[model.Fingerprint]string) slackMessage {
	var m slackMessage
	for _, a := range alerts {
		if a.ResolvedAt(now) {
			m.resolved = append(m.resolved, a)
		} else {
			m.firing = append(m.firing, a)
		}
	}
	m.allResolved = len(m.firing) == 0
	first := alerts[0]
	if len(m.firing) > 0 {
		first = m.firing[0]
	}
	name := first.Name()
	sev := string(first.Labels["severity"])
	emoji, color := slackSeverity(sev, m.allResolved)
	m.color = color

	state := fmt.Sprintf("FIRING:%d", len(m.firing))
	if m.allResolved {
		state = "RESOLVED"
	}
	header := fmt.Sprintf("%s %s · %s", emoji, state, name)
	if sev != "" {
		header = fmt.Sprintf("%s %s · %s · %s", emoji, state, strings.ToUpper(sev), name)
	}
	m.text = slackTruncate(fmt.Sprintf("[%s] %s: %s", state, name, first.Annotations["summary"]), 300)

	blocks := []slack.Block{
		slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, slackTruncate(header, slackMaxHeader), true, false)),
	}
	summary := string(first.Annotations["summary"])
	desc := string(first.Annotations["description"])
	var body strings.Builder
	if summary != "" {
		body.WriteString("*" + slackEscape(summary) + "*")
	}
	if desc != "" {
		if body.Len() > 0 {
			body.WriteString("\n")
		}
		body.WriteString(slackEscape(desc))
	}
	if body.Len() > 0 {
		blocks = append(blocks, slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, slackTruncate(body.String(), slackMaxSectionText), false, false), nil, nil, slack.SectionBlockOptionBlockID("opspilot_summary")))
	}

	field := func(k, v string) *slack.TextBlockObject {
		return slack.NewTextBlockObject(slack.MarkdownType, slackTruncate("*"+k+"*\n"+v, slackMaxFieldText), false, false)
	}
	var fields []*slack.TextBlockObject
	if sev != "" {
		fields = append(fields, field("Severity", slackEscape(sev)))
	}
	if v := slackValue(first, values); v != "" {
		fields = append(fields, field("Value", slackEscape(v)))
	}
	fields = append(fields, field("Firing", fmt.Sprint(len(m.firing))), field("Resolved", fmt.Sprint(len(m.resolved))))
	fields = append(fields, field("Started", slackDate(slackEarliestStart(alerts))))
	if m.allResolved {
		fields = append(fields, field("Resolved at", slackDate(slackLatestEnd(alerts))))
	}
	blocks = append(blocks, slack.NewSectionBlock(nil, fields, nil, slack.SectionBlockOptionBlockID("opspilot_fields")))

	if lines := slackAlertLines(alerts, groupLabels, now, values); lines != "" {
		blocks = append(blocks, slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, lines, false, false), nil, nil, slack.SectionBlockOptionBlockID("opspilot_alerts")))
	}

	if !m.allResolved {
		ref := AlertRef{Fingerprint: first.Fingerprint().String(), GroupKey: groupKey, Labels: labelMap(groupLabels)}
		if _, ok := ref.Labels["alertname"]; !ok && name != "" {
			ref.Labels["alertname"] = name
		}
		value := EncodeSlackActionValue(ref)
		ack := slack.NewButtonBlockElement(SlackActionAck, value, slack.NewTextBlockObject(slack.PlainTextType, "Acknowledge", false, false)).WithStyle(slack.StylePrimary)
		sil := slack.NewButtonBlockElement(SlackActionSilence1h, value, slack.NewTextBlockObject(slack.PlainTextType, "Silence 1h", false, false))
		elems := []slack.BlockElement{ack, sil}
		if rb := slackAnnotation(alerts, "runbook"); rb != "" {
			elems = append(elems, slack.NewButtonBlockElement(SlackActionRunbook, value, slack.NewTextBlockObject(slack.PlainTextType, "Run runbook", false, false)))
		}
		if u := slackDashboardURL(cfg.DashboardURL, slackAnnotation(alerts, "dashboard")); u != "" && len(u) <= slackMaxURL {
			b := slack.NewButtonBlockElement(SlackActionDashboard, "", slack.NewTextBlockObject(slack.PlainTextType, "Open dashboard", false, false))
			b.URL = u
			elems = append(elems, b)
		}
		blocks = append(blocks, slack.NewActionBlock("opspilot_actions", elems...))
	} else {
		blocks = append(blocks, slack.NewContextBlock("opspilot_resolved", slack.NewTextBlockObject(slack.MarkdownType, ":white_check_mark: Resolved "+slackDate(slackLatestEnd(alerts)), false, false)))
	}
	m.blocks = blocks

	if len(groupLabels) > 0 {
		m.labels = []slack.Block{slack.NewContextBlock("opspilot_labels", slack.NewTextBlockObject(slack.MarkdownType, slackTruncate(slackLabelsInline(groupLabels, nil), slackMaxFieldText), false, false))}
	}
	return m
}

// slackAlertLines lists the group's alerts, one line each, by the labels
// that are not the group's: "• :red_circle: `instance=a` 0.05".
func slackAlertLines(alerts []*amalert.Alert, groupLabels model.LabelSet, now time.Time, values map[model.Fingerprint]string) string {
	var b strings.Builder
	for i, a := range alerts {
		if i == slackMaxAlertLines {
			fmt.Fprintf(&b, "… and %d more", len(alerts)-i)
			break
		}
		mark := ":red_circle:"
		if a.ResolvedAt(now) {
			mark = ":white_check_mark:"
		}
		skip := map[model.LabelName]bool{"alertname": true, "severity": true}
		for k := range groupLabels {
			skip[k] = true
		}
		line := "• " + mark + " " + slackLabelsInline(a.Labels, skip)
		if v := slackValue(a, values); v != "" {
			line += " — " + slackEscape(v)
		}
		b.WriteString(slackTruncate(line, 280) + "\n")
	}
	return slackTruncate(strings.TrimSuffix(b.String(), "\n"), slackMaxSectionText)
}

// slackValue is a's "value" annotation, else its queried value.
func slackValue(a *amalert.Alert, values map[model.Fingerprint]string) string {
	if v := a.Annotations["value"]; v != "" {
		return string(v)
	}
	return values[a.Fingerprint()]
}

// slackLabelsInline renders labels as `k=v` code spans, sorted, leaving out
// skip.
func slackLabelsInline(ls model.LabelSet, skip map[model.LabelName]bool) string {
	keys := make([]string, 0, len(ls))
	for k := range ls {
		if !skip[k] {
			keys = append(keys, string(k))
		}
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = "`" + slackEscape(strings.ReplaceAll(k+"="+string(ls[model.LabelName(k)]), "`", "'")) + "`"
	}
	return strings.Join(parts, " ")
}

// slackEscape escapes Slack mrkdwn's control characters.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// slackDate renders t in the reader's time zone, with a UTC fallback.
func slackDate(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return fmt.Sprintf("<!date^%d^{date_short_pretty} {time_secs}|%s>", t.Unix(), t.UTC().Format("2006-01-02 15:04:05 UTC"))
}

func slackEarliestStart(alerts []*amalert.Alert) time.Time {
	var t time.Time
	for _, a := range alerts {
		if !a.StartsAt.IsZero() && (t.IsZero() || a.StartsAt.Before(t)) {
			t = a.StartsAt
		}
	}
	return t
}

func slackLatestEnd(alerts []*amalert.Alert) time.Time {
	var t time.Time
	for _, a := range alerts {
		if a.EndsAt.After(t) {
			t = a.EndsAt
		}
	}
	return t
}

// slackAnnotation returns the first non-empty annotation name of alerts.
func slackAnnotation(alerts []*amalert.Alert, name model.LabelName) string {
	for _, a := range alerts {
		if v := a.Annotations[name]; v != "" {
			return string(v)
		}
	}
	return ""
}

// slackDashboardURL joins an alert's dashboard annotation to the configured
// base; an absolute annotation wins; "" when there is neither.
func slackDashboardURL(base, annotation string) string {
	if annotation != "" {
		if u, err := url.Parse(annotation); err == nil && u.IsAbs() {
			return annotation
		}
		if base == "" {
			return ""
		}
		b, err := url.Parse(base)
		if err != nil {
			return ""
		}
		if !strings.HasSuffix(b.Path, "/") {
			b.Path += "/"
		}
		ref, err := url.Parse(strings.TrimPrefix(annotation, "/"))
		if err != nil {
			return ""
		}
		return b.ResolveReference(ref).String()
	}
	return base
}

// slackActionValue is a button's value: enough for the interaction handler
// to find the alert. Short keys keep it under Slack's 2000 characters.
type slackActionValue struct {
	GroupKey    string            `json:"g,omitempty"`
	Fingerprint string            `json:"f"`
	Labels      map[string]string `json:"l,omitempty"`
}

// EncodeSlackActionValue encodes ref as a button value of at most 2000
// characters (Slack's limit): when the labels make it longer, the longest
// labels are left out (alertname last), then the group key; the
// fingerprint always stays.
func EncodeSlackActionValue(ref AlertRef) string {
	v := slackActionValue{GroupKey: ref.GroupKey, Fingerprint: ref.Fingerprint, Labels: map[string]string{}}
	for k, val := range ref.Labels {
		v.Labels[k] = val
	}
	for {
		b, err := json.Marshal(v)
		if err == nil && len(b) <= slackMaxButtonValue {
			return string(b)
		}
		// Drop the biggest part: the longest label (alertname last) or
		// the group key.
		label := slackLongestLabel(v.Labels)
		switch {
		case v.GroupKey != "" && (label == "" || len(v.GroupKey) > len(label)+len(v.Labels[label])):
			v.GroupKey = ""
		case label != "":
			delete(v.Labels, label)
		default:
			v.Fingerprint = slackTruncate(v.Fingerprint, 64)
			b, _ := json.Marshal(v)
			return string(b)
		}
	}
}

func slackLongestLabel(ls map[string]string) string {
	best, bestLen := "", -1
	for k, v := range ls {
		l := len(k) + len(v)
		if k == "alertname" && len(ls) > 1 {
			continue
		}
		if l > bestLen || (l == bestLen && k < best) {
			best, bestLen = k, l
		}
	}
	return best
}

// DecodeSlackActionValue decodes a button value made by
// EncodeSlackActionValue.
func DecodeSlackActionValue(s string) (AlertRef, error) {
	if len(s) > slackMaxButtonValue {
		return AlertRef{}, fmt.Errorf("button value is %d bytes, more than Slack's %d", len(s), slackMaxButtonValue)
	}
	var v slackActionValue
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return AlertRef{}, fmt.Errorf("button value is not an opspilot alert reference: %w", err)
	}
	if v.Fingerprint == "" {
		return AlertRef{}, errors.New("button value has no alert fingerprint")
	}
	return AlertRef{Fingerprint: v.Fingerprint, GroupKey: v.GroupKey, Labels: v.Labels}, nil
}

// slackMetrics are the notifier's self-metrics, shared by all Slack
// notifiers on one registry.
type slackMetrics struct {
	requests      *prometheus.CounterVec
	graphFailures prometheus.Counter
}

func newSlackMetrics(reg prometheus.Registerer) (*slackMetrics, error) {
	m := &slackMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opspilot_alerting_slack_requests_total",
			Help: "Slack Web API calls by method and result (ok, error, ratelimited).",
		}, []string{"method", "result"}),
		graphFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "opspilot_alerting_slack_graph_failures_total",
			Help: "Graphs that could not be queried, rendered or uploaded (the message was sent without).",
		}),
	}
	if reg == nil {
		return m, nil
	}
	// Several receivers (and a reloaded pipeline) share one registry: reuse
	// the collectors already registered.
	if err := reg.Register(m.requests); err != nil {
		are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err)
		if !ok {
			return nil, fmt.Errorf("slack metrics: %w", err)
		}
		m.requests = are.ExistingCollector.(*prometheus.CounterVec)
	}
	if err := reg.Register(m.graphFailures); err != nil {
		are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err)
		if !ok {
			return nil, fmt.Errorf("slack metrics: %w", err)
		}
		m.graphFailures = are.ExistingCollector.(prometheus.Counter)
	}
	return m, nil
}
