// Package grafana generates the cluster, host and service dashboards as
// code (grafana-foundation-sdk) and the provisioning files that point
// Grafana at opspilot's Prometheus API (/prometheus), plus capacity trend
// and daily inspection reports.
//
// Dashboard generation is pure (golden-file tested); reports may import
// opspilot/tsdb to read data. It must not import controllers.
//
// Filled by the Grafana issue; this file reserves the package.
package grafana
