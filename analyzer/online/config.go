package online

import (
	"fmt"
	"slices"
	"time"

	"github.com/VictoriaMetrics/metricsql"

	"opspilot/analyzer"
	"opspilot/analyzer/loganomaly"
	"opspilot/analyzer/rootcause"
	"opspilot/config"
)

// Query is one MetricsQL selector whose result series are scored. Name
// becomes the `for` label of the anomaly series, as in vmanomaly.
type Query struct {
	Name string `yaml:"name"`
	Expr string `yaml:"expr"`
	// Model scores each result series: ewma (default), robust-z,
	// seasonal, decompose, holt-winters, bocpd or nab (see README).
	Model string `yaml:"model,omitempty"`
}

// Config is the `analyzer:` section of opspilot.yaml.
type Config struct {
	// Enabled runs the online scorer in the control plane (default true).
	Enabled bool `yaml:"enabled"`
	// Interval is how often every query is evaluated and each series
	// scored (default 10s). Models see one point per interval.
	Interval time.Duration `yaml:"interval"`
	// Queries choose the series; default DefaultQueries (the services'
	// gateway KPIs, container CPU and memory, node load).
	Queries []Query `yaml:"queries"`
	// MaxSeries bounds the models kept (default 100000); series beyond it
	// are not scored and counted in opspilot_analyzer_series_dropped_total.
	MaxSeries int `yaml:"max_series"`
	// CheckpointInterval is how often model state is saved (default 1m);
	// it is also saved on shutdown.
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
	// StateFile holds the checkpoint; default data_dir/analyzer/models.ckpt.
	StateFile string `yaml:"state_file"`
	// MaxCatchUp bounds how far back a pass reaches for intervals it
	// missed (TSDB outage, restart): missed points up to this age are
	// scored in order, older ones are skipped (default 1h).
	MaxCatchUp time.Duration `yaml:"max_catch_up"`
	// Forget drops a series' model after it has had no data this long
	// (default 1h), so churned containers do not hold memory.
	Forget time.Duration `yaml:"forget"`
	// Joint scores several queries' series together per entity, with a
	// multivariate model. Unset: DefaultJoint (each service's requests,
	// error ratio and latency) when those queries are configured; `[]`
	// turns joint scoring off.
	Joint []Joint `yaml:"joint"`
	// RootCause tunes the root-cause hints over co-firing anomalies.
	RootCause RootCauseConfig `yaml:"root_cause"`
	// Logs turns the log store's lines into per-service log series.
	Logs LogsConfig `yaml:"logs"`
}

// LogsConfig is `analyzer.logs`: the log scanner that mines templates and
// counts lines and error lines per service in the log store
// (VictoriaLogs), writing opspilot_log_lines, opspilot_log_error_lines and
// opspilot_log_new_templates, which the log_* queries score.
type LogsConfig struct {
	// Enabled runs the scanner when a log store is known (default true).
	Enabled bool `yaml:"enabled"`
	// URL is VictoriaLogs' base URL; empty: the one `opspilot up` runs.
	URL string `yaml:"url"`
	// Interval is the bucket and pass interval (default 10s, the
	// analyzer's interval, which the default log_* queries assume).
	Interval time.Duration `yaml:"interval"`
	// Delay leaves lines this long to become searchable (default 15s).
	Delay time.Duration `yaml:"delay"`
	// MaxLookback bounds catching up after an outage (default 1h).
	MaxLookback time.Duration `yaml:"max_lookback"`
	// Filter is a LogsQL filter choosing the lines (default *).
	Filter string `yaml:"filter"`
	// ServiceField names the field that holds the service (default
	// service); LevelField the level (default level).
	ServiceField string `yaml:"service_field"`
	LevelField   string `yaml:"level_field"`
	// ErrorPattern is the regular expression that marks an error line
	// when it has no level (default: error, exception, fatal, panic,
	// fail/failed/failure as words).
	ErrorPattern string `yaml:"error_pattern"`
}

// ScannerConfig is the loganomaly configuration for these settings.
func (c LogsConfig) ScannerConfig() loganomaly.Config {
	return loganomaly.Config{URL: c.URL, Interval: c.Interval, Delay: c.Delay, MaxLookback: c.MaxLookback, Filter: c.Filter,
		ServiceField: c.ServiceField, LevelField: c.LevelField, ErrorPattern: c.ErrorPattern}
}

// RootCauseConfig is `analyzer.root_cause`: the ranking's knobs and the
// service call graph it uses.
type RootCauseConfig struct {
	rootcause.Config `yaml:",inline"`
	// Calls maps a caller service to the services it calls, e.g.
	// {billing: [payments, ledger]}; errors and latency spread from callee
	// to caller, so an anomalous callee that fired first explains them.
	Calls map[string][]string `yaml:"calls"`
	// TrafficQuery returns observed calls as series labelled caller and
	// service (callee) with a request count; they join Calls. Default: the
	// gateway's opspilot_gateway_calls_total over the last hour (requests
	// carrying X-Opspilot-Caller). Empty turns it off; a service mesh's
	// metrics work too, relabelled to caller/service.
	TrafficQuery string `yaml:"traffic_query"`
	// MinRequests ignores observed pairs with fewer requests (default 1).
	MinRequests float64 `yaml:"min_requests"`
}

// DefaultTrafficQuery is the call graph the gateway observed in the last
// hour.
const DefaultTrafficQuery = `sum by (caller, service) (increase(opspilot_gateway_calls_total[1h]))`

// DefaultQueries score what an SRE watches first: each service's request
// rate, error ratio and p95 latency at the gateway, each datacenter's
// error ratio (the control plane's datacenter health reads its anomaly
// score), each instance's CPU and
// memory, each node's load, and each service's error log lines and new
// log templates.
func DefaultQueries() []Query {
	return []Query{
		{Name: "service_requests", Expr: `sum by (service) (rate(opspilot_gateway_requests_total[1m]))`},
		{Name: "service_error_ratio", Expr: `(sum by (service) (rate(opspilot_gateway_requests_total{code=~"5.."}[1m])) or sum by (service) (rate(opspilot_gateway_requests_total[1m])) * 0) / sum by (service) (rate(opspilot_gateway_requests_total[1m]))`},
		// Per datacenter, for the control plane's datacenter health.
		{Name: "datacenter_error_ratio", Expr: `(sum by (datacenter) (rate(opspilot_gateway_requests_total{code=~"5..",datacenter!=""}[1m])) or sum by (datacenter) (rate(opspilot_gateway_requests_total{datacenter!=""}[1m])) * 0) / sum by (datacenter) (rate(opspilot_gateway_requests_total{datacenter!=""}[1m]))`},
		{Name: "service_latency_p95", Expr: `histogram_quantile(0.95, sum by (service, le) (rate(opspilot_gateway_request_duration_seconds_bucket[1m])))`},
		{Name: "container_cpu", Expr: `sum by (service, instance, node, datacenter) (rate(container_cpu_usage_seconds_total{service!=""}[1m]))`},
		{Name: "container_memory", Expr: `sum by (service, instance, node, datacenter) (container_memory_working_set_bytes{service!=""})`},
		{Name: "node_load", Expr: `node_load1`},
		// The log scanner writes one count per 10 s bucket, 15 s after it
		// ends: each pass scores the bucket that ended 30 s earlier.
		{Name: "log_error_lines", Expr: `sum by (service) (max_over_time(opspilot_log_error_lines[10s] offset 30s))`},
		{Name: "log_new_templates", Expr: `sum by (service) (max_over_time(opspilot_log_new_templates[10s] offset 30s))`},
	}
}

// DefaultConfig is the analyzer's default configuration.
func DefaultConfig() Config {
	return Config{
		Enabled:            true,
		Interval:           10 * time.Second,
		Queries:            DefaultQueries(),
		MaxSeries:          100000,
		CheckpointInterval: time.Minute,
		MaxCatchUp:         time.Hour,
		Forget:             time.Hour,
		Logs:               LogsConfig{Enabled: true, Interval: 10 * time.Second},
		RootCause:          RootCauseConfig{Config: rootcause.DefaultConfig(), TrafficQuery: DefaultTrafficQuery, MinRequests: 1},
	}
}

// Joints are the joints in effect: Joint, or when it is unset the default
// joints whose queries are all configured.
func (c Config) Joints() []Joint {
	if c.Joint != nil {
		return c.Joint
	}
	names := map[string]bool{}
	for _, q := range c.Queries {
		names[q.Name] = true
	}
	var out []Joint
	for _, j := range DefaultJoint() {
		if !slices.ContainsFunc(j.Queries, func(q string) bool { return !names[q] }) {
			out = append(out, j)
		}
	}
	return out
}

// Validate implements config.Validator: every query must have a unique name
// and parse as MetricsQL.
func (c Config) Validate() []config.Problem {
	var ps []config.Problem
	if !c.Enabled {
		return nil
	}
	if c.Interval < time.Second {
		ps = append(ps, config.Problem{Field: "interval", Msg: fmt.Sprintf("%s is below 1s; use e.g. 10s", c.Interval)})
	}
	if c.MaxSeries <= 0 {
		ps = append(ps, config.Problem{Field: "max_series", Msg: "must be positive, e.g. 100000"})
	}
	if c.CheckpointInterval < time.Second {
		ps = append(ps, config.Problem{Field: "checkpoint_interval", Msg: fmt.Sprintf("%s is below 1s; use e.g. 1m", c.CheckpointInterval)})
	}
	if c.MaxCatchUp < 0 {
		ps = append(ps, config.Problem{Field: "max_catch_up", Msg: "must not be negative; 0 scores only the current interval"})
	}
	if c.Forget < c.Interval {
		ps = append(ps, config.Problem{Field: "forget", Msg: fmt.Sprintf("%s is shorter than interval %s; use e.g. 1h", c.Forget, c.Interval)})
	}
	if err := c.RootCause.Config.Validate(); err != nil {
		ps = append(ps, config.Problem{Field: "root_cause", Msg: err.Error()})
	}
	if q := c.RootCause.TrafficQuery; q != "" {
		if _, err := metricsql.Parse(q); err != nil {
			ps = append(ps, config.Problem{Field: "root_cause.traffic_query", Msg: fmt.Sprintf("not valid MetricsQL: %v", err)})
		}
	}
	if c.RootCause.MinRequests < 0 {
		ps = append(ps, config.Problem{Field: "root_cause.min_requests", Msg: "must not be negative"})
	}
	seen := map[string]int{}
	for i, q := range c.Queries {
		f := fmt.Sprintf("queries[%d]", i)
		switch {
		case q.Name == "":
			ps = append(ps, config.Problem{Field: f + ".name", Msg: "must not be empty; it becomes the anomaly series' `for` label, e.g. billing_latency"})
		case seen[q.Name] > 0:
			ps = append(ps, config.Problem{Field: f + ".name", Msg: fmt.Sprintf("%q is also the name of queries[%d]; names must be unique", q.Name, seen[q.Name]-1)})
		default:
			seen[q.Name] = i + 1
		}
		if _, err := analyzer.NewOnlineModelNamed(q.Model); err != nil {
			ps = append(ps, config.Problem{Field: f + ".model", Msg: err.Error()})
		}
		if q.Expr == "" {
			ps = append(ps, config.Problem{Field: f + ".expr", Msg: "must not be empty; e.g. sum by (service) (rate(opspilot_gateway_requests_total[1m]))"})
		} else if _, err := metricsql.Parse(q.Expr); err != nil {
			ps = append(ps, config.Problem{Field: f + ".expr", Msg: fmt.Sprintf("not valid MetricsQL: %v", err)})
		}
	}
	if c.Logs.Enabled {
		lc := c.Logs.ScannerConfig()
		if lc.URL == "" {
			lc.URL = "http://placeholder:9428" // filled in by `opspilot up`
		}
		if err := lc.Validate(); err != nil {
			ps = append(ps, config.Problem{Field: "logs", Msg: err.Error()})
		}
	}
	for i, j := range c.Joint {
		f := fmt.Sprintf("joint[%d]", i)
		switch {
		case j.Name == "":
			ps = append(ps, config.Problem{Field: f + ".name", Msg: "must not be empty; it becomes the `for` label, e.g. service_kpis"})
		case seen[j.Name] > 0:
			ps = append(ps, config.Problem{Field: f + ".name", Msg: fmt.Sprintf("%q is already the name of a query or joint; names must be unique", j.Name)})
		default:
			seen[j.Name] = -1
		}
		if len(j.Queries) < 2 || len(j.Queries) > 8 {
			ps = append(ps, config.Problem{Field: f + ".queries", Msg: fmt.Sprintf("has %d queries; a joint scores 2 to 8 queries together", len(j.Queries))})
		}
		dup := map[string]bool{}
		for k, q := range j.Queries {
			if n := seen[q]; n <= 0 || dup[q] {
				ps = append(ps, config.Problem{Field: fmt.Sprintf("%s.queries[%d]", f, k), Msg: fmt.Sprintf("%q is not the name of a query in analyzer.queries (or is listed twice)", q)})
			}
			dup[q] = true
		}
		for k, b := range j.By {
			if b == "" || b == "for" || b == "__name__" {
				ps = append(ps, config.Problem{Field: fmt.Sprintf("%s.by[%d]", f, k), Msg: fmt.Sprintf("%q cannot name an entity; use labels such as service or instance", b)})
			}
		}
	}
	return ps
}
