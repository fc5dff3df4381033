package scrape

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"opspilot/tsdb"
)

// sinkAppendable is the storage the Prometheus scrape manager writes to:
// each scrape is one transaction, and its Commit is one Sink call carrying
// the scraped samples and the target's report series (up, ...).
type sinkAppendable struct {
	sink    Sink
	metrics *scrapeMetrics
}

var _ storage.AppendableV2 = (*sinkAppendable)(nil)

func (a *sinkAppendable) AppenderV2(context.Context) storage.AppenderV2 {
	return &sinkAppender{a: a}
}

type sinkAppender struct {
	a          *sinkAppendable
	series     []tsdb.TimeSeries
	histograms int
	lastRef    storage.SeriesRef
}

// Append keeps float samples, staleness markers (StaleNaN) included, and
// counts and drops native histogram samples: the TSDB wire format we ship
// carries floats only.
func (s *sinkAppender) Append(ref storage.SeriesRef, ls labels.Labels, _, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, _ storage.AppendV2Options) (storage.SeriesRef, error) {
	if ref == 0 {
		ref = storage.SeriesRef(ls.Hash())
	}
	if h != nil || fh != nil {
		s.histograms++
		return ref, nil
	}
	sample := tsdb.Sample{Value: v, Timestamp: t}
	if n := len(s.series); n > 0 && ref == s.lastRef {
		s.series[n-1].Samples = append(s.series[n-1].Samples, sample)
		return ref, nil
	}
	s.lastRef = ref
	s.series = append(s.series, tsdb.TimeSeries{Labels: toTSDBLabels(ls), Samples: []tsdb.Sample{sample}})
	return ref, nil
}

func (s *sinkAppender) Commit() error {
	m := s.a.metrics
	if s.histograms > 0 {
		m.histogramsDropped.Add(float64(s.histograms))
	}
	if len(s.series) == 0 {
		return nil
	}
	n := countSamples(s.series)
	if err := s.a.sink(s.series); err != nil {
		m.sinkErrors.Inc()
		m.samples.WithLabelValues("rejected").Add(float64(n))
		return err
	}
	m.samples.WithLabelValues("accepted").Add(float64(n))
	s.series = nil
	return nil
}

func (s *sinkAppender) Rollback() error {
	s.series = nil
	return nil
}

func toTSDBLabels(ls labels.Labels) []tsdb.Label {
	out := make([]tsdb.Label, 0, ls.Len())
	ls.Range(func(l labels.Label) {
		out = append(out, tsdb.Label{Name: l.Name, Value: l.Value})
	})
	return out
}

func countSamples(tss []tsdb.TimeSeries) int {
	n := 0
	for i := range tss {
		n += len(tss[i].Samples)
	}
	return n
}

type scrapeMetrics struct {
	targets           prometheus.Gauge
	samples           *prometheus.CounterVec
	sinkErrors        prometheus.Counter
	histogramsDropped prometheus.Counter
}

func newScrapeMetrics(reg prometheus.Registerer) (*scrapeMetrics, error) {
	m := &scrapeMetrics{
		targets: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "opspilot_agent_scrape_targets",
			Help: "Targets configured for scraping, before target relabelling.",
		}),
		samples: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opspilot_agent_scrape_samples_total",
			Help: "Scraped samples (report series such as up included) by result: accepted by the sink, or rejected because the sink failed.",
		}, []string{"result"}),
		sinkErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "opspilot_agent_scrape_sink_errors_total",
			Help: "Scrapes whose samples the sink refused; those samples are lost (the next scrape gets fresh ones).",
		}),
		histogramsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "opspilot_agent_scrape_native_histograms_dropped_total",
			Help: "Native histogram samples scraped and dropped: only float samples are shipped.",
		}),
	}
	m.samples.WithLabelValues("accepted")
	m.samples.WithLabelValues("rejected")
	for _, c := range []prometheus.Collector{m.targets, m.samples, m.sinkErrors, m.histogramsDropped} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register scrape metrics: %w", err)
		}
	}
	return m, nil
}
