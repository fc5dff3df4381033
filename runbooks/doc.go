// Package runbooks is the chat-bot and incident loop: slash commands and
// alert-triggered runbooks, approvals checked against the caller's role,
// and each incident's lifecycle and timeline.
//
// Parts so far: command.go (the chat commands), rbac.go (chat roles:
// platform-admin, tenant-admin, user of a tenant's services),
// incident.go (the incident state machine, its timeline and summary) and
// incidents.go (the service that feeds it from the alert events, stores
// incidents and serves /api/v1/incidents).
//
// It may import opspilot/alerting (incidents start from alerts),
// opspilot/api and opspilot/config, and reaches the orchestrator and
// autoscaler only through interfaces the wiring implements. Pure parsing
// of runbooks and commands stays free of I/O.
package runbooks
