// Package collector is the node agent's data path (`opspilot agent`): host
// metrics from procfs/sysfs with node_exporter's names, container metrics
// from cgroups and Docker with cAdvisor's names, business KPIs scraped from
// Prometheus/OpenMetrics endpoints or pushed, relabelling, and shipping to
// the TSDB through a durable on-disk queue; logs to the log store.
//
// It may import opspilot/tsdb (to write), opspilot/config, procfs, the
// Prometheus scrape/relabel/exposition libraries and Docker's client. It
// must not import controllers (orchestrator, autoscaler, analyzer,
// alerting, runbooks): they read what the collector wrote from the TSDB.
//
// Filled by the collector issue; this file reserves the package.
package collector
