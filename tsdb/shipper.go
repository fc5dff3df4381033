package tsdb

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/util/fmtutil"
)

// MetricsShipper writes a Gatherer's metrics into the store on an interval:
// opspilot's self-monitoring goes into the same TSDB users query, so
// `opspilot query opspilot_build_info` works without a Prometheus scraping us.
type MetricsShipper struct {
	Gatherer prometheus.Gatherer
	Client   *Client
	Interval time.Duration
	// Labels are added to every series, typically job and instance.
	Labels map[string]string
	// Extra, if set, writes more metrics in the Prometheus text format
	// (VictoriaMetrics' own vm_* metrics).
	Extra func(io.Writer)
	Log   *slog.Logger

	shipped, failures prometheus.Counter
	skipFirst         bool
}

// Skip makes Run wait one interval before its first round (the caller
// just shipped one with ShipOnce).
func (s *MetricsShipper) Skip() { s.skipFirst = true }

// NewMetricsShipper returns a shipper and registers its own counters on reg.
func NewMetricsShipper(g prometheus.Gatherer, c *Client, interval time.Duration, labels map[string]string, reg prometheus.Registerer, log *slog.Logger) *MetricsShipper {
	s := &MetricsShipper{Gatherer: g, Client: c, Interval: interval, Labels: labels, Log: log}
	s.shipped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "opspilot_selfmon_shipped_samples_total",
		Help: "Self-monitoring samples written into the TSDB.",
	})
	s.failures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "opspilot_selfmon_failures_total",
		Help: "Self-monitoring rounds that could not be written (retried next round).",
	})
	if reg != nil {
		s.shipped = register(reg, s.shipped)
		s.failures = register(reg, s.failures)
	}
	return s
}

// Run ships once at once, then every Interval, until ctx ends. A failed
// round is logged and counted; the next round writes fresh values.
func (s *MetricsShipper) Run(ctx context.Context) error {
	t := time.NewTicker(s.Interval)
	defer t.Stop()
	if s.skipFirst {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
	for {
		if n, err := s.ShipOnce(ctx, time.Now()); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.failures.Inc()
			s.Log.Warn("self-monitoring: cannot write metrics into the TSDB", "err", err)
		} else {
			s.shipped.Add(float64(n))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// ShipOnce gathers and writes one round stamped now; it returns how many
// samples were written.
func (s *MetricsShipper) ShipOnce(ctx context.Context, now time.Time) (int, error) {
	series, err := s.Collect(now)
	if err != nil {
		return 0, err
	}
	if err := s.Client.Write(ctx, series); err != nil {
		return 0, err
	}
	return len(series), nil
}

// Collect gathers one round as remote-write series, plus an `up` series
// worth 1, as Prometheus records for a target it scraped.
func (s *MetricsShipper) Collect(now time.Time) ([]TimeSeries, error) {
	mfs, err := s.Gatherer.Gather()
	if err != nil {
		return nil, fmt.Errorf("gather self-metrics: %w", err)
	}
	byName := make(map[string]*dto.MetricFamily, len(mfs)+1)
	for _, mf := range mfs {
		byName[mf.GetName()] = mf
	}
	if s.Extra != nil {
		var buf bytes.Buffer
		s.Extra(&buf)
		parser := expfmt.NewTextParser(model.UTF8Validation)
		extra, err := parser.TextToMetricFamilies(&buf)
		if err != nil {
			return nil, fmt.Errorf("parse extra self-metrics: %w", err)
		}
		for name, mf := range extra {
			if _, dup := byName[name]; !dup {
				byName[name] = mf
			}
		}
	}
	up := 1.0
	byName["up"] = &dto.MetricFamily{
		Name:   ptr("up"),
		Type:   dto.MetricType_GAUGE.Enum(),
		Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: &up}}},
	}
	ms := now.UnixMilli()
	for _, mf := range byName {
		for _, m := range mf.Metric {
			m.TimestampMs = &ms
		}
	}
	wr, err := fmtutil.MetricFamiliesToWriteRequest(byName, s.Labels)
	if err != nil {
		return nil, fmt.Errorf("convert self-metrics: %w", err)
	}
	out := make([]TimeSeries, len(wr.Timeseries))
	for i, ts := range wr.Timeseries {
		labels := make([]Label, len(ts.Labels))
		for j, l := range ts.Labels {
			labels[j] = Label{Name: l.Name, Value: l.Value}
		}
		samples := make([]Sample, len(ts.Samples))
		for j, smp := range ts.Samples {
			samples[j] = Sample{Timestamp: smp.Timestamp, Value: smp.Value}
		}
		out[i] = TimeSeries{Labels: labels, Samples: samples}
	}
	return out, nil
}

func ptr[T any](v T) *T { return &v }
