package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"opspilot/alerting"
	"opspilot/api"
	"opspilot/orchestrator/control"
	"opspilot/orchestrator/store"
	"opspilot/runbooks"
)

// newChatbot builds the Slack chat-bot's endpoints over the orchestrator
// and the alerting pipeline. Without a signing secret they refuse every
// request, saying so.
func newChatbot(cfg FileConfig, creds runbooks.ChatCredentials, orch *orchestrator, alerts *alertingStack, incidents *runbooks.IncidentService, runner *runbookRunner, log *slog.Logger) *runbooks.SlackHandlers {
	acts := chatActions{orch: orch, alerts: alerts, runner: runner}
	bot := &runbooks.Bot{RBAC: cfg.Runbooks.Chat.RBAC, Actions: acts, Incidents: incidents.Tracker(), Log: log,
		Audit: func(ctx context.Context, who, command, why, result string) {
			orch.ctrl.Events().Record(ctx, control.Event{Type: control.EventNormal, Kind: "chat", Object: "slack", Reason: "ChatCommand",
				Message: command + " → " + result, Who: who, Why: why})
		}}
	h := &runbooks.SlackHandlers{Bot: bot, Verifier: &runbooks.SlackVerifier{Secret: creds.SigningSecret}, Log: log}
	if creds.BotToken != "" {
		h.Client = slack.New(creds.BotToken)
	}
	return h
}

// newSocketMode connects the chat-bot to Slack over Socket Mode when an
// app-level token and a bot token are configured; nil otherwise.
func newSocketMode(creds runbooks.ChatCredentials, bot *runbooks.Bot, approver *runbooks.SlackApprover, log *slog.Logger) (*runbooks.SocketMode, error) {
	if creds.AppToken == "" {
		return nil, nil
	}
	if creds.BotToken == "" {
		return nil, fmt.Errorf("runbooks.chat: Socket Mode needs the bot token too (bot_token_file or $SLACK_BOT_TOKEN)")
	}
	return runbooks.NewSocketMode(creds.BotToken, creds.AppToken, bot, approver, log), nil
}

// chatActions carries out chat commands.
type chatActions struct {
	orch   *orchestrator
	alerts *alertingStack
	runner *runbookRunner // nil: runbooks are not available
}

func (a chatActions) Status(ctx context.Context, service string) (string, error) {
	v, err := a.orch.ctrl.ServiceView(ctx, service)
	if err != nil {
		return "", err
	}
	s := v.Status
	out := fmt.Sprintf("%s: %d/%d ready, version %s, rollout %s", service, s.ReadyReplicas, s.Replicas, s.Version, s.Rollout)
	if len(s.Datacenters) > 0 {
		var dcs []string
		for dc, n := range s.Datacenters {
			dcs = append(dcs, fmt.Sprintf("%s %d", dc, n))
		}
		sort.Strings(dcs)
		out += " (" + strings.Join(dcs, ", ") + ")"
	}
	if steps := v.Rollout.Steps; len(steps) > 0 && s.Rollout != "complete" {
		if g, err := store.Get[control.GrayStatus](ctx, a.orch.st, control.KindGray, control.GrayKey(service, s.Version)); err == nil && g.Value.Step < len(steps) {
			out += fmt.Sprintf("; gray release step %d/%d: %d%% of datacenter %s", g.Value.Step+1, len(steps), steps[g.Value.Step].Percent, steps[g.Value.Step].Datacenter)
			if n := len(g.Value.Verdicts); n > 0 {
				out += " (last verdict: " + g.Value.Verdicts[n-1] + ")"
			}
		}
	}
	var firing []string
	for _, al := range a.alerts.pipeline.Alerts(ctx) {
		if al.Labels["service"] == service && al.State != "resolved" {
			firing = append(firing, al.Name+" ("+al.State+")")
		}
	}
	if len(firing) > 0 {
		out += "; alerts: " + strings.Join(firing, ", ")
	}
	return out, nil
}

func (a chatActions) Scale(ctx context.Context, service string, n int, who, why string) (string, error) {
	ctx = api.WithCaller(ctx, api.Caller{Name: who, Role: api.RoleWrite})
	s, err := a.orch.ctrl.Scale(ctx, service, n, who, why, nil)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("scaled %s to %d replicas", s.Name, s.Replicas), nil
}

// Failover takes a datacenter out of service; each service's failover
// policy (placement.failover) says where its share goes, so a target
// named in chat must be where the policies send it.
func (a chatActions) Failover(ctx context.Context, dc, to, who, why string) (string, error) {
	if to != "" {
		return "", fmt.Errorf("failover %s to %s: the services' placement.failover policies choose where each service goes; say `failover %s` and check them with `opspilot get services -o yaml`", dc, to, dc)
	}
	st, err := a.orch.ctrl.Failover(ctx, dc, who, why)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("datacenter %s failed over (health %s): its services are rebuilt in the other datacenters and its instances stop once replaced; `opspilot failback %s` returns it", dc, st.Health, dc), nil
}

func (a chatActions) Silence(ctx context.Context, matchers []string, d time.Duration, who, why string) (string, error) {
	if why == "" {
		why = "silenced from chat"
	}
	id, err := a.alerts.pipeline.AddSilence(ctx, alerting.SilenceRequest{Matchers: matchers, EndsAt: time.Now().Add(d), CreatedBy: who, Comment: why})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("silence %s for %s: %s", id, d, strings.Join(matchers, " ")), nil
}

func (a chatActions) Ack(ctx context.Context, fingerprint, who string) error {
	return a.alerts.pipeline.Acknowledge(ctx, alerting.AlertRef{Fingerprint: fingerprint}, who)
}

func (a chatActions) RunRunbook(ctx context.Context, name string, params map[string]string, who, why string) (string, error) {
	if a.runner == nil {
		return "", fmt.Errorf("runbook %s: runbooks are not available on this server", name)
	}
	return a.runner.run(ctx, name, params, who, why)
}

func (a chatActions) Runbooks(ctx context.Context) ([]string, error) {
	if a.runner == nil {
		return nil, nil
	}
	return a.runner.names(ctx)
}

func (a chatActions) TenantOf(ctx context.Context, service string) (string, error) {
	v, err := a.orch.ctrl.ServiceView(ctx, service)
	if errors.Is(err, store.ErrNotFound) {
		return "", fmt.Errorf("no service %s", service)
	}
	if err != nil {
		return "", err
	}
	return v.Tenant, nil
}
