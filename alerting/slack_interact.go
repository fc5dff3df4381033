package alerting

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/slack-go/slack"
)

// Limits of an interaction request: Slack's payloads are a few KiB, and it
// gives up on an answer after 3 seconds.
const (
	slackMaxInteractionBody = 1 << 20
	// slackInteractionBudget bounds the action and the thread reply
	// together, so Slack gets its answer within its 3 seconds.
	slackInteractionBudget = 2700 * time.Millisecond
)

// SlackInteractionHandler serves Slack's interactivity requests (the
// buttons of alert messages): it checks the request's signature, decodes
// the payload and calls Actions. Build it with NewSlackInteractionHandler,
// or directly to set Replies.
type SlackInteractionHandler struct {
	// Secret is the app's signing secret (SlackConfig.LoadSigningSecret).
	Secret  string
	Actions Actions
	Log     *slog.Logger
	// Replies, if set, posts what happened as a reply in the alert
	// message's thread (SlackNotifier.Client), so the channel sees who
	// acknowledged or silenced it.
	Replies *slack.Client

	once     sync.Once
	verifier *SlackVerifier // refuses replays too
}

// NewSlackInteractionHandler returns the handler of Slack's interactivity
// request URL. Requests must carry a valid X-Slack-Signature for secret and
// an X-Slack-Request-Timestamp within 5 minutes (401 otherwise); a payload
// that is not an opspilot button click gets 400 with the reason.
func NewSlackInteractionHandler(secret string, actions Actions, log *slog.Logger) http.Handler {
	return &SlackInteractionHandler{Secret: secret, Actions: actions, Log: log}
}

// slackInteractionReply is the handler's answer: Slack ignores the body of
// a block_actions answer, but it is what a person or test reading it sees,
// in the shape of a response_url message.
type slackInteractionReply struct {
	OK              bool   `json:"ok"`
	ResponseType    string `json:"response_type,omitempty"`
	ReplaceOriginal bool   `json:"replace_original"`
	Text            string `json:"text"`
	Error           string `json:"error,omitempty"`
}

// ServeHTTP implements http.Handler.
func (h *SlackInteractionHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	log := h.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		slackInteractionError(w, http.StatusMethodNotAllowed, "Slack interactions are POST requests; set this URL as the app's Interactivity Request URL")
		return
	}
	if h.Secret == "" || h.Actions == nil {
		slackInteractionError(w, http.StatusServiceUnavailable, "Slack interactions are not configured: set signing_secret_file of the slack receiver")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, slackMaxInteractionBody))
	if err != nil {
		slackInteractionError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("cannot read the body (at most %d bytes): %v", slackMaxInteractionBody, err))
		return
	}
	h.once.Do(func() { h.verifier = &SlackVerifier{Secret: h.Secret} })
	if reason := h.verifier.Check(r.Header, body); reason != "" {
		log.Warn("slack interaction rejected", "reason", reason, "remote", r.RemoteAddr)
		slackInteractionError(w, http.StatusUnauthorized, reason)
		return
	}
	cb, action, ref, err := SlackDecodeInteraction(body)
	if err != nil {
		log.Warn("slack interaction: bad payload", "err", err)
		slackInteractionError(w, http.StatusBadRequest, err.Error())
		return
	}
	if action == SlackActionDashboard {
		// A URL button: Slack opens the link and still tells us.
		slackInteractionJSON(w, http.StatusOK, slackInteractionReply{OK: true, Text: "opening the dashboard"})
		return
	}

	who := "slack:" + cb.User.ID
	name := cb.User.Name
	if name == "" {
		name = cb.User.ID
	}
	ctx, cancel := context.WithTimeout(r.Context(), slackInteractionBudget)
	defer cancel()
	var text string
	switch action {
	case SlackActionAck:
		err = h.Actions.Acknowledge(ctx, ref, who)
		text = fmt.Sprintf(":eyes: <@%s> acknowledged the alert", cb.User.ID)
	case SlackActionSilence1h:
		var id string
		id, err = h.Actions.SilenceFor(ctx, ref, time.Hour, who, "silenced from Slack by "+name)
		text = fmt.Sprintf(":mute: <@%s> silenced the alert for 1h (silence %s)", cb.User.ID, id)
	case SlackActionRunbook:
		var res string
		res, err = h.Actions.RunRunbook(ctx, ref, who)
		text = fmt.Sprintf(":gear: <@%s> started the runbook: %s", cb.User.ID, res)
	}
	if err != nil {
		log.Warn("slack interaction: action failed", "action", action, "who", who, "fingerprint", ref.Fingerprint, "err", err)
		text = fmt.Sprintf(":x: %s by <@%s> failed: %v", slackActionName(action), cb.User.ID, err)
	} else {
		log.Info("slack interaction", "action", action, "who", who, "fingerprint", ref.Fingerprint, "group_key", ref.GroupKey)
	}
	h.reply(ctx, log, cb, text)
	rep := slackInteractionReply{OK: err == nil, ResponseType: "in_channel", Text: text}
	if err != nil {
		rep.ResponseType, rep.Error = "ephemeral", err.Error()
	}
	slackInteractionJSON(w, http.StatusOK, rep)
}

// reply posts text into the alert message's thread when a client is set,
// within what is left of ctx's budget.
func (h *SlackInteractionHandler) reply(ctx context.Context, log *slog.Logger, cb slack.InteractionCallback, text string) {
	if h.Replies == nil {
		return
	}
	ch := cb.Channel.ID
	if ch == "" {
		ch = cb.Container.ChannelID
	}
	ts := cb.Container.MessageTs
	if ts == "" {
		ts = cb.Message.Timestamp
	}
	if ch == "" || ts == "" {
		return
	}
	if _, _, err := h.Replies.PostMessageContext(ctx, ch, slack.MsgOptionText(text, false), slack.MsgOptionTS(ts)); err != nil {
		log.Warn("slack interaction: thread reply failed", "channel", ch, "ts", ts, "err", err)
	}
}

// slackVerify checks Slack's request signature; it returns why the request
// is rejected, or "".
func slackVerify(h http.Header, body []byte, secret string) string {
	sv, err := slack.NewSecretsVerifier(h, secret)
	switch {
	case errors.Is(err, slack.ErrMissingHeaders):
		return "missing X-Slack-Signature or X-Slack-Request-Timestamp: only Slack's signed interaction requests are accepted"
	case errors.Is(err, slack.ErrExpiredTimestamp):
		return "X-Slack-Request-Timestamp is more than 5 minutes from now: a replayed request, or this server's clock is wrong (check NTP)"
	case err != nil:
		return "bad request signature: " + err.Error() + "; check signing_secret_file holds the app's Signing Secret"
	}
	if _, err := sv.Write(body); err != nil {
		return "cannot hash the body: " + err.Error()
	}
	if err := sv.Ensure(); err != nil {
		return "the request signature does not match: check signing_secret_file holds the app's Signing Secret (Basic Information page)"
	}
	return ""
}

// SlackDecodeInteraction decodes an interaction request body (form-encoded
// payload=<JSON>) into the callback, the opspilot action id clicked and the
// alert it names. It never panics; any payload that is not a click on an
// opspilot button is an error saying why.
func SlackDecodeInteraction(body []byte) (cb slack.InteractionCallback, action string, ref AlertRef, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("cannot decode the interaction payload: %v", r)
		}
	}()
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return cb, "", ref, fmt.Errorf("the body is not form-encoded: %w", err)
	}
	payload := form.Get("payload")
	if payload == "" {
		return cb, "", ref, errors.New(`no "payload" form field: Slack sends interactions as payload=<JSON>`)
	}
	if err := json.Unmarshal([]byte(payload), &cb); err != nil {
		return cb, "", ref, fmt.Errorf("payload is not an interaction JSON: %w", err)
	}
	if cb.Type != slack.InteractionTypeBlockActions {
		return cb, "", ref, fmt.Errorf("interaction type %q is not handled: only block_actions (alert message buttons) are", cb.Type)
	}
	if cb.User.ID == "" {
		return cb, "", ref, errors.New("payload has no user id")
	}
	for _, ba := range cb.ActionCallback.BlockActions {
		if ba == nil {
			continue
		}
		switch ba.ActionID {
		case SlackActionDashboard:
			return cb, ba.ActionID, ref, nil
		case SlackActionAck, SlackActionSilence1h, SlackActionRunbook:
			ref, err := DecodeSlackActionValue(ba.Value)
			if err != nil {
				return cb, "", AlertRef{}, fmt.Errorf("action %s: %w", ba.ActionID, err)
			}
			return cb, ba.ActionID, ref, nil
		}
	}
	return cb, "", ref, errors.New("no opspilot action in the payload (expected action_id opspilot_ack, opspilot_silence_1h or opspilot_runbook)")
}

func slackActionName(action string) string {
	switch action {
	case SlackActionAck:
		return "acknowledge"
	case SlackActionSilence1h:
		return "silence 1h"
	case SlackActionRunbook:
		return "run runbook"
	}
	return action
}

func slackInteractionError(w http.ResponseWriter, code int, reason string) {
	slackInteractionJSON(w, code, slackInteractionReply{OK: false, ResponseType: "ephemeral", Text: reason, Error: reason})
}

func slackInteractionJSON(w http.ResponseWriter, code int, v slackInteractionReply) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
