// Package alerting evaluates Prometheus/vmalert-style rules against the
// TSDB and routes the resulting alerts through Alertmanager's libraries
// (routes, grouping, inhibition, silences) to chat (Slack Block Kit) and the
// console, within seconds of a breach.
//
// It may import opspilot/tsdb, Prometheus' rule and Alertmanager's packages
// and slack-go. It must not import the orchestrator or autoscaler.
//
// Filled by the alerting issue; this file reserves the package.
package alerting
