// Package runbooks is the chat-bot and incident loop: slash commands and
// alert-triggered runbooks, approvals checked against the caller's role,
// and each incident's lifecycle and timeline.
//
// Parts so far:
//
//   - spec.go, engine.go, steps.go: the Runbook spec (kind: Runbook) and
//     the engine that runs its steps over small interfaces (Querier,
//     Orchestrator, Silencer, Notifier, Approver…) the wiring implements;
//   - command.go, rbac.go, chatbot.go: the chat commands, chat roles
//     (platform-admin, tenant-admin, user of a tenant's services) and the
//     Slack endpoints /slack/commands and /slack/events behind Slack's
//     signature (replays refused);
//   - approver.go: approve steps as Slack Approve / Deny buttons
//     (/slack/interactivity);
//   - incident.go, incidents.go: incidents from alert events, their
//     timeline and summary, stored through an interface, served at
//     /api/v1/incidents.
//
// It may import opspilot/alerting (incidents start from alerts),
// opspilot/api, opspilot/config, slack-go, Alertmanager's matcher and
// VictoriaMetrics' metricsql, and reaches the orchestrator and
// autoscaler only through interfaces the wiring implements. Pure parsing
// of runbooks and commands stays free of I/O.
package runbooks
