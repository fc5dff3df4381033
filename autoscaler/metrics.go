package autoscaler

import (
	"github.com/prometheus/client_golang/prometheus"
)

// loopMetrics are the loop's self-metrics, labelled by service (and
// metric, for value against target).
type loopMetrics struct {
	current, desired, recommended *prometheus.GaugeVec
	value, target                 *prometheus.GaugeVec
	latency                       *prometheus.HistogramVec
	limited, scaled, held         *prometheus.CounterVec
	errors, evaluations           *prometheus.CounterVec
	predicted                     *prometheus.GaugeVec
}

func newLoopMetrics(reg prometheus.Registerer) (*loopMetrics, error) {
	m := &loopMetrics{
		current: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "opspilot_autoscaler_current_replicas",
			Help: "Replicas of the service when the autoscaler last evaluated it."}, []string{"service"}),
		desired: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "opspilot_autoscaler_desired_replicas",
			Help: "Replicas the autoscaler decided on (after behaviour and bounds)."}, []string{"service"}),
		recommended: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "opspilot_autoscaler_recommended_replicas",
			Help: "Raw recommendation of the metrics (and prediction), before behaviour."}, []string{"service"}),
		predicted: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "opspilot_autoscaler_predicted_replicas",
			Help: "Replicas the predictive model asks for one lead time ahead (0: no prediction)."}, []string{"service"}),
		value: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "opspilot_autoscaler_metric_value",
			Help: "A policy metric's current value (utilisation %, per-instance average, expression value), to compare with opspilot_autoscaler_metric_target."}, []string{"service", "metric"}),
		target: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "opspilot_autoscaler_metric_target",
			Help: "A policy metric's target value."}, []string{"service", "metric"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "opspilot_autoscaler_decision_duration_seconds",
			Help:    "Time of one evaluation of a policy: reading its metrics, deciding and calling the scale API.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}, []string{"service"}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "opspilot_autoscaler_limited_total",
			Help: "Evaluations whose recommendation a window, rate policy or bound changed, by what limited it."}, []string{"service", "limited_by"}),
		scaled: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "opspilot_autoscaler_scalings_total",
			Help: "Scale operations the autoscaler carried out, by direction."}, []string{"service", "direction"}),
		held: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "opspilot_autoscaler_held_total",
			Help: "Evaluations that held the replicas because a metric was stale, missing or failed."}, []string{"service"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "opspilot_autoscaler_errors_total",
			Help: "Failed queries, service reads and scale calls."}, []string{"service", "op"}),
		evaluations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "opspilot_autoscaler_evaluations_total",
			Help: "Policy evaluations, by what they did: none, scaled, dry-run, held, failed."}, []string{"service", "action"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.current, m.desired, m.recommended, m.predicted, m.value, m.target,
			m.latency, m.limited, m.scaled, m.held, m.errors, m.evaluations} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// forget drops a service's series once no policy scales it.
func (m *loopMetrics) forget(service string) {
	l := prometheus.Labels{"service": service}
	for _, v := range []*prometheus.GaugeVec{m.current, m.desired, m.recommended, m.predicted, m.value, m.target} {
		v.DeletePartialMatch(l)
	}
	m.latency.DeletePartialMatch(l)
	for _, v := range []*prometheus.CounterVec{m.limited, m.scaled, m.held, m.errors, m.evaluations} {
		v.DeletePartialMatch(l)
	}
}
