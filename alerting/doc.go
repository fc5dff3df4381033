// Package alerting evaluates Prometheus/vmalert-style rules against the
// TSDB and routes the resulting alerts through Alertmanager's libraries
// (routes, grouping, inhibition, silences) to chat (Slack Block Kit) and the
// console, within seconds of a breach.
//
// The parts, each in its own file:
//
//   - rules.go, metricsql_parser.go: rule files checked with Prometheus'
//     rulefmt, node by node with line:col errors; expressions parsed as
//     MetricsQL (a parser.Parser whose expressions print their own text),
//     so vmalert's syntax works and the TSDB evaluates them.
//   - evaluator.go: Prometheus' rules.Manager with a QueryFunc over the
//     TSDB, recording results and ALERTS written back, the `for` state
//     restored from ALERTS_FOR_STATE, alerts handed to an AlertSink.
//   - pipeline.go: Alertmanager in-process — provider/mem, dispatch,
//     inhibit, silence, nflog, notify, config — with opspilot's timer
//     defaults (group_wait 500ms) and its receivers added to
//     Alertmanager's by name. Written here rather than taken from
//     Alertmanager's app package because that one builds receivers only
//     from its own configuration (no Block Kit Slack, no console) and
//     serves its own HTTP API and listeners.
//   - console.go, slack.go, slack_interact.go, graph.go: the console
//     receiver; Slack Block Kit messages edited in place, graphs drawn
//     with gonum/plot, signed button clicks calling Actions.
//   - events.go, state.go, api.go: the alert events (timeline, events
//     file for the log store), the held alerts and acknowledgements kept
//     across restarts, the REST API.
//
// It may import opspilot/tsdb, opspilot/api, opspilot/config, Prometheus'
// rules, rulefmt, template and promql packages, Alertmanager's packages,
// VictoriaMetrics' metricsql, slack-go and gonum/plot. It must not import
// the orchestrator or the autoscaler.
package alerting
