// Package grafana generates opspilot's Grafana dashboards as code
// (grafana-foundation-sdk): cluster overview, host, service (KPIs with the
// analyzer's anomaly band), autoscaler, incidents and alerts, and
// opspilot's own health; and the provisioning files that point Grafana at
// opspilot's Prometheus API (SERVER/prometheus): a datasource with the uid
// every panel reads, and a file provider for the dashboards. Export writes
// both (`opspilot grafana export DIR`).
//
// Every query uses only metric names and labels the running system writes;
// the tests run each panel's queries against the embedded TSDB after a
// grafana/backfill history. Generation is pure and deterministic (sorted,
// indented JSON; stable uids and panel ids) and golden-file tested.
//
// Subpackages: backfill (the seeded demo history, `opspilot demo
// backfill`), report (capacity trend and daily inspection reports).
//
// Dependencies: the foundation SDK, the YAML and renameio libraries, the
// standard library. It must not import controllers, clients or the server.
package grafana
