package runbooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"

	"opspilot/alerting"
	"opspilot/api"
)

// ChatActions are what the bot's commands do; cmd/opspilot implements
// them with the orchestrator, the alerting pipeline and the runbook
// engine. who is the user's recorded name (ChatUser.Who), why the
// command's reason.
type ChatActions interface {
	Status(ctx context.Context, service string) (string, error)
	Scale(ctx context.Context, service string, replicas int, who, why string) (string, error)
	Failover(ctx context.Context, datacenter, to, who, why string) (string, error)
	Silence(ctx context.Context, matchers []string, d time.Duration, who, why string) (string, error)
	Ack(ctx context.Context, fingerprint, who string) error
	RunRunbook(ctx context.Context, name string, params map[string]string, who, why string) (string, error)
	Runbooks(ctx context.Context) ([]string, error)
	// TenantOf is the tenant of a service (an error if there is none).
	TenantOf(ctx context.Context, service string) (string, error)
}

// Bot runs chat commands: parse, check the caller's role, act, and say
// what happened (or why not) in one reply.
type Bot struct {
	RBAC      RBAC
	Actions   ChatActions
	Incidents *Tracker
	Log       *slog.Logger
	// Audit, if set, records every mutating command with who, what, why
	// and the result.
	Audit func(ctx context.Context, who, command, why, result string)
}

// ChatRequest is one command from chat.
type ChatRequest struct {
	UserID, UserName string
	Text             string
	// Alert is the fingerprint of the alert whose thread the command was
	// sent in, if known (ack without an argument uses it).
	Alert string
}

// Handle runs one command and returns the reply text.
func (b *Bot) Handle(ctx context.Context, req ChatRequest) string {
	c, err := ParseCommand(req.Text)
	if err != nil {
		return err.Error()
	}
	u, err := b.RBAC.Authorize(req.UserID, c, func(service string) (string, error) { return b.Actions.TenantOf(ctx, service) })
	if err != nil {
		b.audit(ctx, req, u, c, "refused: "+err.Error())
		return err.Error()
	}
	who := u.Who()
	out, err := b.run(ctx, c, req, who)
	if err != nil {
		out = fmt.Sprintf("%s failed: %v", c.Verb, err)
	}
	if c.Mutating() {
		b.audit(ctx, req, u, c, out)
	}
	return out
}

func (b *Bot) audit(ctx context.Context, req ChatRequest, u ChatUser, c Command, result string) {
	if b.Log != nil {
		b.Log.Info("audit", "who", u.Who(), "command", req.Text, "why", c.Reason, "result", result)
	}
	if b.Audit != nil {
		b.Audit(ctx, u.Who(), req.Text, c.Reason, result)
	}
}

func (b *Bot) run(ctx context.Context, c Command, req ChatRequest, who string) (string, error) {
	a := b.Actions
	switch c.Verb {
	case VerbHelp:
		return "Commands: " + Usage, nil
	case VerbStatus:
		return a.Status(ctx, c.Service)
	case VerbScale:
		return a.Scale(ctx, c.Service, c.Replicas, who, c.Reason)
	case VerbFailover:
		return a.Failover(ctx, c.Datacenter, c.To, who, c.Reason)
	case VerbSilence:
		return a.Silence(ctx, c.Matchers, c.Duration, who, c.Reason)
	case VerbAck:
		fp := c.Target
		if fp == "" {
			fp = req.Alert
		}
		if fp == "" {
			return "", errors.New("say which alert: `ack FINGERPRINT` (opspilot alerts lists them), or reply in the alert's thread")
		}
		if err := a.Ack(ctx, fp, who); err != nil {
			return "", err
		}
		return fmt.Sprintf("alert %s acknowledged by %s", fp, who), nil
	case VerbRunbook:
		if c.List {
			names, err := a.Runbooks(ctx)
			if err != nil {
				return "", err
			}
			if len(names) == 0 {
				return "no runbooks (apply one with opspilot apply -f)", nil
			}
			return "runbooks: " + strings.Join(names, ", "), nil
		}
		return a.RunRunbook(ctx, c.Runbook, c.Params, who, c.Reason)
	case VerbIncident:
		return b.incidentSummary(c.Target, req.Alert)
	}
	return "", fmt.Errorf("unknown command %s", c.Verb)
}

func (b *Bot) incidentSummary(id, alert string) (string, error) {
	if b.Incidents == nil {
		return "", errors.New("incidents are not tracked on this server")
	}
	var (
		inc *Incident
		ok  bool
	)
	switch {
	case id != "":
		inc, ok = b.Incidents.Get(id)
	case alert != "":
		inc, ok = b.Incidents.OfAlert(alert)
	default:
		if l := b.Incidents.List(); len(l) > 0 {
			inc, ok = l[0], true
		}
	}
	if !ok {
		return "", errors.New("no such incident (`incident summary ID`; opspilot incident list)")
	}
	return Summarize(inc).Text(), nil
}

// SlackVerifier is alerting's: signature, 5-minute window, no replays.
type SlackVerifier = alerting.SlackVerifier

// ErrReplayed is a signed request that was already accepted once.
var ErrReplayed = alerting.ErrSlackReplayed

// SlackHandlers serve the chat-bot's Slack endpoints: slash commands and
// the Events API (app mentions).
type SlackHandlers struct {
	Bot      *Bot
	Verifier *SlackVerifier
	// Client posts replies to mentions (the bot token); nil: mentions
	// are answered in the log only.
	Client *slack.Client
	Log    *slog.Logger
}

// Routes are POST /slack/commands and POST /slack/events; Slack signs
// them, so they take no API token.
func (h *SlackHandlers) Routes() []api.Route {
	return []api.Route{
		{Pattern: "POST /slack/commands", Name: "slack_commands", Role: "", Handler: http.HandlerFunc(h.commands)},
		{Pattern: "POST /slack/events", Name: "slack_events", Role: "", Handler: http.HandlerFunc(h.events)},
	}
}

func (h *SlackHandlers) commands(w http.ResponseWriter, r *http.Request) {
	if _, err := h.Verifier.Verify(r); err != nil {
		api.WriteError(w, http.StatusUnauthorized, "slack signature: "+err.Error())
		return
	}
	sc, err := slack.SlashCommandParse(r)
	if err != nil {
		api.WriteError(w, http.StatusBadRequest, "slash command: "+err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2500*time.Millisecond)
	defer cancel()
	reply := h.Bot.Handle(ctx, ChatRequest{UserID: sc.UserID, UserName: sc.UserName, Text: sc.Text})
	api.WriteJSON(w, http.StatusOK, map[string]string{"response_type": "in_channel", "text": reply})
}

func (h *SlackHandlers) events(w http.ResponseWriter, r *http.Request) {
	body, err := h.Verifier.Verify(r)
	if err != nil {
		api.WriteError(w, http.StatusUnauthorized, "slack signature: "+err.Error())
		return
	}
	ev, err := slackevents.ParseEvent(json.RawMessage(body), slackevents.OptionNoVerifyToken())
	if err != nil {
		api.WriteError(w, http.StatusBadRequest, "slack event: "+err.Error())
		return
	}
	switch ev.Type {
	case slackevents.URLVerification:
		var ch slackevents.ChallengeResponse
		if err := json.Unmarshal(body, &ch); err != nil {
			api.WriteError(w, http.StatusBadRequest, "url_verification: "+err.Error())
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte(ch.Challenge))
		return
	case slackevents.CallbackEvent:
		if m, ok := ev.InnerEvent.Data.(*slackevents.AppMentionEvent); ok && m.BotID == "" {
			// Answer Slack at once; the command runs after.
			go h.mention(m)
		}
	}
	w.WriteHeader(http.StatusOK)
}

func (h *SlackHandlers) mention(m *slackevents.AppMentionEvent) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, thread := mentionRequest(m)
	reply := h.Bot.Handle(ctx, req)
	if h.Client == nil {
		return
	}
	if _, _, err := h.Client.PostMessageContext(ctx, m.Channel, slack.MsgOptionText(reply, false), slack.MsgOptionTS(thread)); err != nil && h.Log != nil {
		h.Log.Warn("slack: reply to a mention failed", "err", err)
	}
}

// mentionRequest is the command of a mention ("<@UBOT> scale billing 5"
// → "scale billing 5") and the thread to answer in.
func mentionRequest(m *slackevents.AppMentionEvent) (ChatRequest, string) {
	text := m.Text
	if i := strings.Index(text, ">"); strings.HasPrefix(strings.TrimSpace(text), "<@") && i >= 0 {
		text = text[i+1:]
	}
	thread := m.ThreadTimeStamp
	if thread == "" {
		thread = m.TimeStamp
	}
	return ChatRequest{UserID: m.User, Text: strings.TrimSpace(text)}, thread
}
