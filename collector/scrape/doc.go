// Package scrape is the node agent's business-KPI intake: it scrapes
// Prometheus/OpenMetrics endpoints and accepts pushed samples, and hands
// every float sample to a Sink as []tsdb.TimeSeries.
//
// Scraping is Prometheus' own scrape manager (github.com/prometheus/
// prometheus/scrape) fed with static target groups built from Config, and
// writing into an in-memory storage.AppendableV2 that turns each scrape's
// transaction into one Sink call. That gives the exact Prometheus semantics
// for the text, OpenMetrics and protobuf formats, relabel_configs and
// metric_relabel_configs, staleness markers and the synthetic per-target
// series up, scrape_duration_seconds, scrape_samples_scraped,
// scrape_samples_post_metric_relabeling and scrape_series_added.
//
// Pushing is an http.Handler for Prometheus remote write (snappy protobuf,
// decoded with VictoriaMetrics' lib/prompb) and the Prometheus text
// format (parsed with Prometheus' textparse); the metric relabel configs
// apply to pushed samples too.
//
// It owns: the scrape/push configuration (Config, Target), the Scraper and
// PushHandler, and their self-metrics (opspilot_agent_scrape_*,
// opspilot_agent_push_*, plus Prometheus' prometheus_target_* scrape
// metrics).
//
// It may import: Prometheus' scrape, config, discovery/targetgroup,
// model/{labels,relabel,textparse,value} and storage packages,
// client_golang, VictoriaMetrics' lib/prompb, snappy, opspilot/tsdb (for the
// wire types only) and opspilot/config. It must not import any other
// opspilot package: the shipping queue, the orchestrator and the rest of
// the agent meet it only through Sink and SetTargets.
package scrape
