// Package runbooks is the chat-bot and incident loop: slash commands and
// alert-triggered runbooks, approvals checked against the caller's role,
// and each incident's lifecycle and timeline.
//
// It may import opspilot/alerting (incidents start from alerts) and reaches
// the orchestrator and autoscaler only through their APIs. Pure parsing of
// runbooks and commands stays free of I/O.
//
// Filled by the runbooks issue; this file reserves the package.
package runbooks
