package online

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	series      prometheus.Gauge
	points      prometheus.Counter
	written     prometheus.Counter
	rejected    prometheus.Counter
	pending     prometheus.Gauge
	dropped     prometheus.Counter
	forgotten   prometheus.Counter
	queryErrors *prometheus.CounterVec
	passSeconds prometheus.Histogram
	checkpoints *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		series: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "opspilot_analyzer_series",
			Help: "Series the online analyzer keeps a model for.",
		}),
		points: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "opspilot_analyzer_points_scored_total",
			Help: "Points the online analyzer's models scored.",
		}),
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "opspilot_analyzer_samples_written_total",
			Help: "anomaly_score/expected/lower/upper samples the TSDB accepted.",
		}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "opspilot_analyzer_samples_dropped_total",
			Help: "Anomaly samples dropped: the TSDB rejected their content, or the retry buffer overflowed.",
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "opspilot_analyzer_samples_pending",
			Help: "Anomaly samples waiting for the TSDB to accept them.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "opspilot_analyzer_series_dropped_total",
			Help: "Points of new series not scored because analyzer.max_series was reached.",
		}),
		forgotten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "opspilot_analyzer_series_forgotten_total",
			Help: "Models dropped because their series had no data for analyzer.forget.",
		}),
		queryErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opspilot_analyzer_query_errors_total",
			Help: "Failed analyzer queries, by query name; the missed intervals are scored on a later pass.",
		}, []string{"for"}),
		passSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "opspilot_analyzer_pass_seconds",
			Help:    "Time one scoring pass (all queries, scoring and the write) took.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 9),
		}),
		checkpoints: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opspilot_analyzer_checkpoints_total",
			Help: "Model checkpoints written, by result (ok, error).",
		}, []string{"result"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.series, m.points, m.written, m.rejected, m.pending, m.dropped, m.forgotten, m.queryErrors, m.passSeconds, m.checkpoints} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("analyzer: register metrics: %w", err)
			}
		}
	}
	return m, nil
}
