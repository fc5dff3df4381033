package grafana

import (
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// DatasourceUID is the uid of the provisioned Prometheus datasource that
// every panel and template variable reads (provisioning/datasources).
const DatasourceUID = "opspilot-prometheus"

// Dashboard UIDs: stable, so links (the alert rules' `dashboard`
// annotation, /d/opspilot-service?var-service=billing) keep working.
const (
	UIDCluster    = "opspilot-cluster"
	UIDHost       = "opspilot-host"
	UIDService    = "opspilot-service"
	UIDAutoscaler = "opspilot-autoscaler"
	UIDAlerts     = "opspilot-alerts"
	UIDSelf       = "opspilot-self"
)

// A Board is one generated dashboard.
type Board struct {
	// File is the file name under the dashboards directory.
	File      string
	Dashboard dashboard.Dashboard
}

// Dashboards builds every opspilot dashboard, in a fixed order.
func Dashboards() ([]Board, error) {
	builders := []struct {
		file string
		b    *dashboard.DashboardBuilder
	}{
		{"cluster.json", clusterDashboard()},
		{"host.json", hostDashboard()},
		{"service.json", serviceDashboard()},
		{"autoscaler.json", autoscalerDashboard()},
		{"alerts.json", alertsDashboard()},
		{"opspilot.json", selfDashboard()},
	}
	out := make([]Board, 0, len(builders))
	for _, x := range builders {
		d, err := x.b.Build()
		if err != nil {
			return nil, fmt.Errorf("build dashboard %s: %w", x.file, err)
		}
		numberPanels(&d)
		out = append(out, Board{File: x.file, Dashboard: d})
	}
	return out, nil
}

// numberPanels gives every panel and row an id in layout order, so the
// JSON does not depend on Grafana assigning them on import.
func numberPanels(d *dashboard.Dashboard) {
	id := uint32(0)
	next := func() *uint32 { id++; return cog.ToPtr(id) }
	for _, p := range d.Panels {
		switch {
		case p.Panel != nil:
			p.Panel.Id = next()
		case p.RowPanel != nil:
			p.RowPanel.Id = *next()
			for i := range p.RowPanel.Panels {
				p.RowPanel.Panels[i].Id = next()
			}
		}
	}
}

// newBoard is the frame every dashboard shares: uid, tags, a 6 h window
// refreshed every 30 s, links to the other opspilot dashboards.
func newBoard(uid, title, description string) *dashboard.DashboardBuilder {
	return dashboard.NewDashboardBuilder(title).
		Uid(uid).
		Description(description).
		Tags([]string{"opspilot"}).
		Editable().
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Refresh("30s").
		Time("now-6h", "now").
		Timezone(common.TimeZoneBrowser).
		Link(dashboard.NewDashboardLinkBuilder("opspilot").
			Type(dashboard.DashboardLinkTypeDashboards).
			Tags([]string{"opspilot"}).
			AsDropdown(true).
			IncludeVars(true).
			KeepTime(true).
			TargetBlank(false).
			Icon("external link").
			Tooltip("").
			Url(""))
}

func clusterDashboard() *dashboard.DashboardBuilder {
	const dc = `datacenter=~"$datacenter"`
	return newBoard(UIDCluster, "opspilot / Cluster overview",
		"Per datacenter: nodes, their resources, the services and instances running there, and events (instance churn, node states, alerts).").
		WithVariable(labelVariable("datacenter", "datacenter", "node_load1", "", "", true)).
		WithRow(row("Inventory")).
		WithPanel(single("Nodes", "Nodes reporting host metrics.", "none", "0",
			query(`count(node_load1{`+dc+`})`, ""))).
		WithPanel(single("Services", "Services with at least one instance reporting container metrics.", "none", "0",
			query(`count(count by (service) (container_memory_working_set_bytes{`+dc+`,service!=""}))`, ""))).
		WithPanel(single("Instances", "Instances reporting container metrics.", "none", "0",
			query(`count(container_memory_working_set_bytes{`+dc+`,service!=""})`, ""))).
		WithPanel(single("CPU used", "Share of all CPUs busy (not idle).", "percentunit", "",
			query(`1 - avg(rate(node_cpu_seconds_total{`+dc+`,mode="idle"}[$__rate_interval]))`, ""))).
		WithPanel(single("Memory used", "Share of memory not available to new work.", "percentunit", "",
			query(`1 - sum(node_memory_MemAvailable_bytes{`+dc+`}) / sum(node_memory_MemTotal_bytes{`+dc+`})`, ""))).
		WithPanel(single("Alerts firing", "Alerts firing now (all datacenters).", "none", "0",
			query(`count(ALERTS{alertstate="firing"})`, ""))).
		WithRow(row("Resources")).
		WithPanel(graph("CPU used by datacenter", "Share of the datacenter's CPUs busy.", "percentunit", 8,
			query(`1 - avg by (datacenter) (rate(node_cpu_seconds_total{`+dc+`,mode="idle"}[$__rate_interval]))`, "{{datacenter}}")).Min(0).Max(1)).
		WithPanel(graph("Memory used by datacenter", "Memory not available to new work, as a share of the total.", "percentunit", 8,
			query(`1 - sum by (datacenter) (node_memory_MemAvailable_bytes{`+dc+`}) / sum by (datacenter) (node_memory_MemTotal_bytes{`+dc+`})`, "{{datacenter}}")).Min(0).Max(1)).
		WithPanel(graph("Filesystem used by datacenter", "Used share of the nodes' filesystems.", "percentunit", 8,
			query(`1 - sum by (datacenter) (node_filesystem_avail_bytes{`+dc+`}) / sum by (datacenter) (node_filesystem_size_bytes{`+dc+`})`, "{{datacenter}}")).Min(0).Max(1)).
		WithPanel(graph("Load per node", "1-minute load average of each node.", "none", 12,
			query(`node_load1{`+dc+`}`, "{{datacenter}}/{{node}}"))).
		WithPanel(graph("Network by datacenter", "Bytes received (+) and sent (−) by the nodes.", "Bps", 12,
			query(`sum by (datacenter) (rate(node_network_receive_bytes_total{`+dc+`}[$__rate_interval]))`, "{{datacenter}} in"),
			query(`-sum by (datacenter) (rate(node_network_transmit_bytes_total{`+dc+`}[$__rate_interval]))`, "{{datacenter}} out"))).
		WithRow(row("Services")).
		WithPanel(graph("Instances per service", "Instances reporting container metrics, by service and datacenter.", "none", 12,
			query(`count by (service, datacenter) (container_memory_working_set_bytes{`+dc+`,service!=""})`, "{{service}} @ {{datacenter}}"))).
		WithPanel(graph("Requests per datacenter", "Requests the gateways answered, by the answering instance's datacenter.", "reqps", 12,
			query(`sum by (datacenter) (rate(opspilot_gateway_requests_total{`+dc+`}[$__rate_interval]))`, "{{datacenter}}"))).
		WithPanel(graph("Service CPU", "CPU seconds per second used by each service's instances.", "none", 12,
			query(`sum by (service) (rate(container_cpu_usage_seconds_total{`+dc+`,service!=""}[$__rate_interval]))`, "{{service}}"))).
		WithPanel(graph("Service memory", "Working set of each service's instances.", "bytes", 12,
			query(`sum by (service) (container_memory_working_set_bytes{`+dc+`,service!=""})`, "{{service}}"))).
		WithRow(row("Events")).
		WithPanel(graph("Instance churn", "Instances the orchestrator placed, and removed by reason (stop: asked to stop, stopped: the stop confirmed, node_lost, stop_unconfirmed).", "none", 12,
			query(`sum(increase(opspilot_orchestrator_instances_created_total[$__rate_interval]))`, "created"),
			query(`sum by (reason) (increase(opspilot_orchestrator_instances_stopped_total[$__rate_interval]))`, "stopped: {{reason}}"))).
		WithPanel(graph("Nodes by state", "Nodes the orchestrator knows, by datacenter and state (ready, lost, cordoned).", "none", 12,
			query(`sum by (datacenter, state) (opspilot_orchestrator_nodes{`+dc+`})`, "{{datacenter}} {{state}}"))).
		WithPanel(graph("Alerts firing", "Firing alerts by name.", "none", 24,
			query(`count by (alertname) (ALERTS{alertstate="firing"})`, "{{alertname}}")))
}

func hostDashboard() *dashboard.DashboardBuilder {
	const sel = `datacenter=~"$datacenter",node="$node"`
	return newBoard(UIDHost, "opspilot / Host",
		"One node: CPU, memory, load, filesystems, disks, network, and the instances it runs.").
		WithVariable(labelVariable("datacenter", "datacenter", "node_load1", "", "", true)).
		WithVariable(labelVariable("node", "node", "node_load1", `{datacenter=~"$datacenter"}`, "", false)).
		WithRow(row("CPU and memory")).
		WithPanel(graph("CPU by mode", "CPU seconds per second, by mode, over all CPUs.", "none", 12,
			query(`sum by (mode) (rate(node_cpu_seconds_total{`+sel+`,mode!="idle"}[$__rate_interval]))`, "{{mode}}")).
			Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNormal))).
		WithPanel(graph("Load", "Load averages.", "none", 12,
			query(`node_load1{`+sel+`}`, "1m"),
			query(`node_load5{`+sel+`}`, "5m"),
			query(`node_load15{`+sel+`}`, "15m"))).
		WithPanel(graph("Memory", "Total, available and used memory.", "bytes", 12,
			query(`node_memory_MemTotal_bytes{`+sel+`}`, "total"),
			query(`node_memory_MemAvailable_bytes{`+sel+`}`, "available"),
			query(`node_memory_MemTotal_bytes{`+sel+`} - node_memory_MemAvailable_bytes{`+sel+`}`, "used"))).
		WithPanel(graph("Filesystem used", "Used share of each mounted filesystem.", "percentunit", 12,
			query(`1 - node_filesystem_avail_bytes{`+sel+`} / node_filesystem_size_bytes{`+sel+`}`, "{{mountpoint}}")).Min(0).Max(1)).
		WithRow(row("Disks and network")).
		WithPanel(graph("Disk throughput", "Bytes read (+) and written (−) per second.", "Bps", 12,
			query(`sum by (device) (rate(node_disk_read_bytes_total{`+sel+`}[$__rate_interval]))`, "{{device}} read"),
			query(`-sum by (device) (rate(node_disk_written_bytes_total{`+sel+`}[$__rate_interval]))`, "{{device}} written"))).
		WithPanel(graph("Network", "Bytes received (+) and sent (−) per second.", "Bps", 12,
			query(`sum by (device) (rate(node_network_receive_bytes_total{`+sel+`}[$__rate_interval]))`, "{{device}} in"),
			query(`-sum by (device) (rate(node_network_transmit_bytes_total{`+sel+`}[$__rate_interval]))`, "{{device}} out"))).
		WithRow(row("Instances on this node")).
		WithPanel(graph("Instance CPU", "CPU seconds per second of each instance on the node.", "none", 12,
			query(`sum by (service, instance) (rate(container_cpu_usage_seconds_total{`+sel+`,service!=""}[$__rate_interval]))`, "{{instance}}"))).
		WithPanel(graph("Instance memory", "Working set of each instance on the node.", "bytes", 12,
			query(`sum by (service, instance) (container_memory_working_set_bytes{`+sel+`,service!=""})`, "{{instance}}")))
}

func serviceDashboard() *dashboard.DashboardBuilder {
	const svc = `service="$service"`
	anomalyBand := func(title, description, unit, forQuery, actual string) dashboardPanel {
		return band(graph(title, description, unit, 12,
			query(actual, "actual"),
			query(`anomaly_expected{for="`+forQuery+`",`+svc+`}`, "expected"),
			query(`anomaly_lower{for="`+forQuery+`",`+svc+`}`, "lower"),
			query(`anomaly_upper{for="`+forQuery+`",`+svc+`}`, "upper")))
	}
	return newBoard(UIDService, "opspilot / Service",
		"One service: its instances' CPU and memory, its requests, errors and latency at the gateway with the analyzer's normal band, its business KPIs and its replicas.").
		WithVariable(labelVariable("service", "service", "opspilot_gateway_requests_total", "", "billing", false)).
		WithRow(row("KPIs with the analyzer's normal band")).
		WithPanel(anomalyBand("Requests", "Requests per second at the gateway; the band is what the analyzer expects (anomaly_lower … anomaly_upper).", "reqps", "service_requests",
			`sum by (service) (rate(opspilot_gateway_requests_total{`+svc+`}[$__rate_interval]))`)).
		WithPanel(anomalyBand("Error ratio", "Share of requests answered 5xx; the band is what the analyzer expects.", "percentunit", "service_error_ratio",
			`(sum by (service) (rate(opspilot_gateway_requests_total{`+svc+`,code=~"5.."}[$__rate_interval])) or sum by (service) (rate(opspilot_gateway_requests_total{`+svc+`}[$__rate_interval])) * 0) / sum by (service) (rate(opspilot_gateway_requests_total{`+svc+`}[$__rate_interval]))`)).
		WithPanel(anomalyBand("Latency p95", "95th percentile of the gateway's request duration; the band is what the analyzer expects.", "s", "service_latency_p95",
			`histogram_quantile(0.95, sum by (service, le) (rate(opspilot_gateway_request_duration_seconds_bucket{`+svc+`}[$__rate_interval])))`)).
		WithPanel(graph("Anomaly score", "The analyzer's score per scored series (0 normal … 1 anomalous); alerts fire above 0.9.", "none", 12,
			query(`max by (for) (anomaly_score{`+svc+`})`, "{{for}}")).Min(0).Max(1)).
		WithRow(row("Business KPIs")).
		WithPanel(graph("Transactions", "Business transactions per second by operation and result (billing_transactions_total, scraped from the instances).", "ops", 12,
			query(`sum by (op, result) (rate(billing_transactions_total{`+svc+`}[$__rate_interval]))`, "{{op}} {{result}}"))).
		WithPanel(graph("Requests by datacenter", "Requests per second at the gateway, by the answering instance's datacenter and HTTP status.", "reqps", 12,
			query(`sum by (datacenter, code) (rate(opspilot_gateway_requests_total{`+svc+`}[$__rate_interval]))`, "{{datacenter}} {{code}}"))).
		WithRow(row("Instances")).
		WithPanel(graph("Instance CPU", "CPU seconds per second of each instance.", "none", 12,
			query(`sum by (instance, datacenter) (rate(container_cpu_usage_seconds_total{`+svc+`}[$__rate_interval]))`, "{{instance}} @ {{datacenter}}"))).
		WithPanel(graph("Instance memory", "Working set of each instance.", "bytes", 12,
			query(`sum by (instance, datacenter) (container_memory_working_set_bytes{`+svc+`})`, "{{instance}} @ {{datacenter}}"))).
		WithPanel(graph("Replicas", "Instances reporting, and what the autoscaler decided (when a policy scales the service).", "none", 24,
			query(`count(container_memory_working_set_bytes{`+svc+`})`, "reporting"),
			query(`opspilot_autoscaler_desired_replicas{`+svc+`}`, "desired")))
}

func autoscalerDashboard() *dashboard.DashboardBuilder {
	const svc = `service=~"$service"`
	return newBoard(UIDAutoscaler, "opspilot / Autoscaler",
		"Autoscaled services: desired against current replicas, the policy metrics against their targets, and the decisions (scalings, what limited them, held evaluations).").
		WithVariable(labelVariable("service", "service", "opspilot_autoscaler_desired_replicas", "", "", true)).
		WithRow(row("Replicas")).
		WithPanel(graph("Desired vs current replicas", "Replicas the autoscaler decided on, the service had, the metrics recommended before behaviour, and the predictive model asked for.", "none", 24,
			query(`max by (service) (opspilot_autoscaler_desired_replicas{`+svc+`})`, "{{service}} desired"),
			query(`max by (service) (opspilot_autoscaler_current_replicas{`+svc+`})`, "{{service}} current"),
			query(`max by (service) (opspilot_autoscaler_recommended_replicas{`+svc+`})`, "{{service}} recommended"),
			query(`max by (service) (opspilot_autoscaler_predicted_replicas{`+svc+`})`, "{{service}} predicted"))).
		WithPanel(graph("Metric against target", "Each policy metric's value and its target.", "none", 24,
			query(`max by (service, metric) (opspilot_autoscaler_metric_value{`+svc+`})`, "{{service}} {{metric}}"),
			query(`max by (service, metric) (opspilot_autoscaler_metric_target{`+svc+`})`, "{{service}} {{metric}} target"))).
		WithRow(row("Decisions")).
		WithPanel(graph("Scalings", "Scale operations carried out, by direction.", "none", 8,
			query(`sum by (service, direction) (increase(opspilot_autoscaler_scalings_total{`+svc+`}[$__rate_interval]))`, "{{service}} {{direction}}"))).
		WithPanel(graph("Limited by", "Evaluations whose recommendation a window, rate policy or bound changed.", "none", 8,
			query(`sum by (service, limited_by) (increase(opspilot_autoscaler_limited_total{`+svc+`}[$__rate_interval]))`, "{{service}} {{limited_by}}"))).
		WithPanel(graph("Evaluations", "Policy evaluations by what they did.", "none", 8,
			query(`sum by (service, action) (increase(opspilot_autoscaler_evaluations_total{`+svc+`}[$__rate_interval]))`, "{{service}} {{action}}"))).
		WithPanel(graph("Decision latency p95", "Time to read the metrics, decide and call the scale API.", "s", 24,
			query(`histogram_quantile(0.95, sum by (service, le) (rate(opspilot_autoscaler_decision_duration_seconds_bucket{`+svc+`}[$__rate_interval])))`, "{{service}}")))
}

func alertsDashboard() *dashboard.DashboardBuilder {
	return newBoard(UIDAlerts, "opspilot / Incidents and alerts",
		"Firing and pending alerts (ALERTS), what alerting did with them, and the anomalies the analyzer saw.").
		WithRow(row("Now")).
		WithPanel(single("Firing", "Alerts firing now.", "none", "0", query(`count(ALERTS{alertstate="firing"})`, ""))).
		WithPanel(single("Pending", "Alerts whose condition holds but whose `for` has not passed.", "none", "0", query(`count(ALERTS{alertstate="pending"})`, ""))).
		WithPanel(single("Anomalous series", "Series the analyzer scores above 0.9 now.", "none", "0", query(`count(anomaly_score > 0.9)`, ""))).
		WithPanel(single("Alerts fired (24 h)", "Alerts that started firing in the last 24 hours.", "none", "0",
			query(`sum(increase(opspilot_alerting_alert_transitions_total{event="fired"}[24h]))`, ""))).
		WithPanel(single("Notifications (24 h)", "Alert notifications sent in the last 24 hours.", "none", "0",
			query(`sum(increase(opspilot_alerting_alerts_sent_total[24h]))`, ""))).
		WithPanel(single("Max anomaly score", "Highest anomaly score of any series now.", "none", "", query(`max(anomaly_score)`, ""))).
		WithPanel(list("Firing alerts", "Alerts firing now, one row each, with their labels.", query(`ALERTS{alertstate="firing"}`, ""))).
		WithRow(row("History")).
		WithPanel(graph("Alerts by name", "Firing alerts over time, by name and severity.", "none", 12,
			query(`count by (alertname, severity) (ALERTS{alertstate="firing"})`, "{{alertname}} ({{severity}})"))).
		WithPanel(graph("Active for", "How long each active alert has been active (from ALERTS_FOR_STATE).", "s", 12,
			query(`max by (alertname) (time() - ALERTS_FOR_STATE)`, "{{alertname}}"))).
		WithPanel(graph("Alert events", "Alert events recorded, by type (fired, notified, acknowledged, silenced, resolved, notify-failed).", "none", 12,
			query(`sum by (type) (increase(opspilot_alerting_events_total[$__rate_interval]))`, "{{type}}"))).
		WithPanel(graph("Fired and resolved", "Alerts that started firing or resolved.", "none", 12,
			query(`sum by (event) (increase(opspilot_alerting_alert_transitions_total[$__rate_interval]))`, "{{event}}"))).
		WithPanel(graph("Anomaly scores", "Highest anomaly score per service and scored query; incidents show as runs near 1.", "none", 24,
			query(`max by (service, for) (anomaly_score{service!=""})`, "{{service}} {{for}}")).Min(0).Max(1))
}

func selfDashboard() *dashboard.DashboardBuilder {
	const job = `job="opspilot"`
	return newBoard(UIDSelf, "opspilot / Self-monitoring",
		"opspilot's own health, from the self-metrics it writes to its TSDB every 10 s: API, TSDB writes, the agents' shipping, the control loops.").
		WithRow(row("Process")).
		WithPanel(single("Up", "1 while the server ships its self-metrics.", "none", "down", query(`min(up{`+job+`})`, ""))).
		WithPanel(single("Uptime", "Time since the server started.", "s", "", query(`max(time() - opspilot_start_time_seconds{`+job+`})`, ""))).
		WithPanel(single("Resident memory", "The server's resident memory.", "bytes", "", query(`max(process_resident_memory_bytes{`+job+`})`, ""))).
		WithPanel(single("Goroutines", "Goroutines in the server.", "none", "", query(`max(go_goroutines{`+job+`})`, ""))).
		WithPanel(single("Self-metrics shipped", "Self-metric samples written per second.", "none", "", query(`sum(rate(opspilot_selfmon_shipped_samples_total{`+job+`}[$__rate_interval]))`, ""))).
		WithPanel(single("TSDB unclean shutdown", "1 if the embedded TSDB's previous run did not stop cleanly.", "none", "", query(`max(opspilot_tsdb_unclean_shutdown{`+job+`})`, ""))).
		WithRow(row("API")).
		WithPanel(graph("HTTP requests", "API requests per second by handler and status.", "reqps", 12,
			query(`sum by (handler, code) (rate(opspilot_http_requests_total{`+job+`}[$__rate_interval]))`, "{{handler}} {{code}}"))).
		WithPanel(graph("HTTP latency p95", "95th percentile of the API's request duration, by handler.", "s", 12,
			query(`histogram_quantile(0.95, sum by (handler, le) (rate(opspilot_http_request_duration_seconds_bucket{`+job+`}[$__rate_interval])))`, "{{handler}}"))).
		WithRow(row("Data path")).
		WithPanel(graph("TSDB writes", "Samples the server's TSDB clients wrote, and failed to write, per second.", "none", 12,
			query(`sum(rate(opspilot_tsdb_client_written_samples_total{`+job+`}[$__rate_interval]))`, "written"),
			query(`sum(rate(opspilot_tsdb_client_failed_samples_total{`+job+`}[$__rate_interval]))`, "failed"))).
		WithPanel(graph("Agent shipping", "Samples the node agents collected and sent per second, and their disk queue.", "none", 12,
			query(`sum by (node) (rate(opspilot_agent_samples_sent_total[$__rate_interval]))`, "{{node}} sent"),
			query(`sum by (node) (opspilot_agent_queue_records)`, "{{node}} queued records"))).
		WithRow(row("Control loops")).
		WithPanel(graph("Reconcile p95", "95th percentile of the orchestrator's reconcile pass.", "s", 8,
			query(`histogram_quantile(0.95, sum by (le) (rate(opspilot_orchestrator_reconcile_duration_seconds_bucket{`+job+`}[$__rate_interval])))`, "reconcile"))).
		WithPanel(graph("Analyzer", "Points the analyzer scored per second, and its series.", "none", 8,
			query(`sum(rate(opspilot_analyzer_points_scored_total{`+job+`}[$__rate_interval]))`, "points/s"),
			query(`sum(opspilot_analyzer_series{`+job+`})`, "series"))).
		WithPanel(graph("Alerting writes", "Rule results, ALERTS and ALERTS_FOR_STATE samples written per second.", "none", 8,
			query(`sum(rate(opspilot_alerting_written_samples_total{`+job+`}[$__rate_interval]))`, "written")))
}

// dashboardPanel is what WithPanel takes.
type dashboardPanel = cog.Builder[dashboard.Panel]
