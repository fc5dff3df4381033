package gateway

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the gateway's self-metrics. Label datacenter is the
// answering endpoint's datacenter ("" when no endpoint answered).
type metrics struct {
	requests  *prometheus.CounterVec   // service, datacenter, code
	duration  *prometheus.HistogramVec // service, datacenter
	retries   *prometheus.CounterVec   // service
	errors    *prometheus.CounterVec   // service, reason
	endpoints *prometheus.GaugeVec     // service, datacenter
	inflight  *prometheus.GaugeVec     // service
	calls     *prometheus.CounterVec   // caller, service

	connectFailures *prometheus.CounterVec // service, datacenter
	ejections       *prometheus.CounterVec // service, datacenter

	// endpointSeries are the label pairs endpoints holds; guarded by the
	// gateway's table lock.
	endpointSeries map[struct{ service, datacenter string }]bool
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opspilot_gateway_requests_total",
			Help: "Requests answered by the gateway, by service, answering endpoint's datacenter and version, and HTTP status (499: the client went away).",
		}, []string{"service", "datacenter", "version", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "opspilot_gateway_request_duration_seconds",
			Help:    "Time from receiving a request to finishing its response, retries included.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"service", "datacenter", "version"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opspilot_gateway_retries_total",
			Help: "Requests sent a second time to another endpoint after a connection failure or a 502/503.",
		}, []string{"service"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opspilot_gateway_errors_total",
			Help: "Requests the gateway answered itself with an error, by reason (unknown_service, no_ready_instance, no_endpoint_set, connect_failed, upstream_failed, upstream_timeout, client_canceled, bad_request_body).",
		}, []string{"service", "reason"}),
		endpoints: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "opspilot_gateway_endpoints",
			Help: "Ready endpoints the gateway routes to, by service and datacenter.",
		}, []string{"service", "datacenter"}),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "opspilot_gateway_inflight_requests",
			Help: "Requests being proxied now, by service.",
		}, []string{"service"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opspilot_gateway_calls_total",
			Help: "Requests from one service to another: those whose " + CallerHeader + " header names a service the gateway knows (the observed call graph for root-cause hints).",
		}, []string{"caller", "service"}),
		connectFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opspilot_gateway_connect_failures_total",
			Help: "Connections to an endpoint that could not be made (refused, unreachable, timed out), by service and the endpoint's datacenter.",
		}, []string{"service", "datacenter"}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opspilot_gateway_ejections_total",
			Help: "Endpoints taken out of rotation after failed connects in a row, by service and datacenter.",
		}, []string{"service", "datacenter"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.duration, m.retries, m.errors, m.endpoints, m.inflight, m.calls, m.connectFailures, m.ejections} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("gateway: register metrics: %w", err)
			}
		}
	}
	return m, nil
}

// setEndpoints makes the endpoints gauge describe t. Series are set, and
// only vanished ones deleted, so a scrape never sees a passing zero.
func (m *metrics) setEndpoints(t *table) {
	type key struct{ service, datacenter string }
	counts := map[key]float64{}
	for svc := range t.known {
		bs := t.services[svc]
		if len(bs) == 0 {
			counts[key{svc, ""}] = 0
		}
		for _, b := range bs {
			counts[key{svc, b.ep.Datacenter}]++
		}
	}
	for k := range m.endpointSeries {
		if _, ok := counts[k]; !ok {
			m.endpoints.DeleteLabelValues(k.service, k.datacenter)
		}
	}
	m.endpointSeries = map[struct{ service, datacenter string }]bool{}
	for k, n := range counts {
		m.endpoints.WithLabelValues(k.service, k.datacenter).Set(n)
		m.endpointSeries[k] = true
	}
}
