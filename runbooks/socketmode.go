package runbooks

import (
	"context"
	"log/slog"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"
)

// SocketMode serves the chat-bot over Slack's Socket Mode: opspilot opens
// a websocket to Slack with the app-level token (xapp-…), so no public
// endpoint is needed. Slash commands, mentions and approval clicks
// arrive as envelopes that are acknowledged with the reply.
type SocketMode struct {
	Bot      *Bot
	Approver *SlackApprover // nil: approval clicks are answered with an error
	Client   *socketmode.Client
	Log      *slog.Logger
}

// NewSocketMode connects with the bot token and the app-level token.
func NewSocketMode(botToken, appToken string, bot *Bot, approver *SlackApprover, log *slog.Logger, opts ...slack.Option) *SocketMode {
	api := slack.New(botToken, append([]slack.Option{slack.OptionAppLevelToken(appToken)}, opts...)...)
	return &SocketMode{Bot: bot, Approver: approver, Client: socketmode.New(api), Log: log}
}

// Run reads envelopes until ctx ends; the connection (and its reconnects)
// is socketmode's.
func (s *SocketMode) Run(ctx context.Context) error {
	go func() {
		if err := s.Client.RunContext(ctx); err != nil && ctx.Err() == nil && s.Log != nil {
			s.Log.Warn("slack socket mode stopped", "err", err)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-s.Client.Events:
			if !ok {
				return nil
			}
			s.Handle(ctx, ev, func(req socketmode.Request, payload any) {
				if err := s.Client.Ack(req, payload); err != nil && s.Log != nil {
					s.Log.Warn("slack socket mode: ack failed", "err", err)
				}
			}, s.reply)
		}
	}
}

func (s *SocketMode) reply(ctx context.Context, channel, thread, text string) {
	if _, _, err := s.Client.PostMessageContext(ctx, channel, slack.MsgOptionText(text, false), slack.MsgOptionTS(thread)); err != nil && s.Log != nil {
		s.Log.Warn("slack: reply to a mention failed", "err", err)
	}
}

// Handle answers one Socket Mode event: ack acknowledges its envelope
// (with the reply for slash commands and clicks), reply posts in a
// thread (mentions).
func (s *SocketMode) Handle(ctx context.Context, ev socketmode.Event, ack func(socketmode.Request, any), reply func(ctx context.Context, channel, thread, text string)) {
	if ev.Request == nil {
		if ev.Type == socketmode.EventTypeInvalidAuth && s.Log != nil {
			s.Log.Warn("slack socket mode: invalid app token (runbooks.chat.app_token_file or $SLACK_APP_TOKEN: an xapp- token with connections:write)")
		}
		return
	}
	switch ev.Type {
	case socketmode.EventTypeSlashCommand:
		sc, ok := ev.Data.(slack.SlashCommand)
		if !ok {
			ack(*ev.Request, nil)
			return
		}
		cctx, cancel := context.WithTimeout(ctx, 2500*time.Millisecond)
		defer cancel()
		text := s.Bot.Handle(cctx, ChatRequest{UserID: sc.UserID, UserName: sc.UserName, Text: sc.Text})
		ack(*ev.Request, map[string]any{"response_type": "in_channel", "text": text})
	case socketmode.EventTypeEventsAPI:
		ack(*ev.Request, nil)
		e, ok := ev.Data.(slackevents.EventsAPIEvent)
		if !ok || e.Type != slackevents.CallbackEvent {
			return
		}
		m, ok := e.InnerEvent.Data.(*slackevents.AppMentionEvent)
		if !ok || m.BotID != "" {
			return
		}
		req, thread := mentionRequest(m)
		reply(ctx, m.Channel, thread, s.Bot.Handle(ctx, req))
	case socketmode.EventTypeInteractive:
		cb, ok := ev.Data.(slack.InteractionCallback)
		if !ok || cb.Type != slack.InteractionTypeBlockActions || len(cb.ActionCallback.BlockActions) == 0 {
			ack(*ev.Request, nil)
			return
		}
		act := cb.ActionCallback.BlockActions[0]
		if act.ActionID != ActionApprove && act.ActionID != ActionDeny {
			ack(*ev.Request, nil)
			return
		}
		text := "Approvals are not configured on this server."
		if s.Approver != nil {
			text = s.Approver.decide(ctx, act.Value, act.ActionID == ActionApprove, cb.User.ID)
		}
		ack(*ev.Request, map[string]any{"response_type": "ephemeral", "replace_original": false, "text": text})
	default:
		ack(*ev.Request, nil)
	}
}
