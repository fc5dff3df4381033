package collector

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/prometheus/client_golang/prometheus"

	"opspilot/collector/diskqueue"
	"opspilot/tsdb"
)

// Writer is where the shipper sends encoded remote-write requests;
// *tsdb.Client implements it.
type Writer interface {
	WriteEncoded(ctx context.Context, body []byte, samples int) error
}

// ShipperConfig tunes the path from collectors to the TSDB.
type ShipperConfig struct {
	// MaxSamplesPerRecord cuts appended series into queue records (and so
	// remote-write requests) of at most this many samples.
	MaxSamplesPerRecord int
	// RetryMinBackoff and RetryMaxBackoff bound the wait between attempts
	// while the TSDB is down; the shipper never gives up on a record.
	RetryMinBackoff, RetryMaxBackoff time.Duration
}

// DefaultShipperConfig returns the documented defaults.
func DefaultShipperConfig() ShipperConfig {
	return ShipperConfig{MaxSamplesPerRecord: 5000, RetryMinBackoff: 200 * time.Millisecond, RetryMaxBackoff: 10 * time.Second}
}

// Shipper moves samples to the TSDB through the disk queue: Append encodes
// them into the queue (they are safe once it returns), Run sends records in
// order and acknowledges each only after the TSDB accepted it.
type Shipper struct {
	cfg   ShipperConfig
	queue *diskqueue.Queue
	w     Writer
	log   *slog.Logger

	mu           sync.Mutex // serialises encoding into the queue
	buf, scratch []byte
	queued, sent prometheus.Counter
	dropped      *prometheus.CounterVec
	queueBytes   prometheus.GaugeFunc
	queueRecords prometheus.GaugeFunc
	sendDuration prometheus.Histogram
	sendErrors   prometheus.Counter
}

// NewShipper opens the disk queue in dir, wires it to w and registers the
// shipping metrics. Close releases the queue.
func NewShipper(cfg ShipperConfig, dir string, qopts diskqueue.Options, w Writer, reg prometheus.Registerer, log *slog.Logger) (*Shipper, error) {
	if cfg.MaxSamplesPerRecord <= 0 || cfg.RetryMinBackoff <= 0 || cfg.RetryMaxBackoff < cfg.RetryMinBackoff {
		return nil, fmt.Errorf("agent shipper: invalid config %+v", cfg)
	}
	s := &Shipper{cfg: cfg, w: w, log: log}
	s.queued = prometheus.NewCounter(prometheus.CounterOpts{Name: "opspilot_agent_samples_queued_total", Help: "Samples written into the agent's disk queue."})
	s.sent = prometheus.NewCounter(prometheus.CounterOpts{Name: "opspilot_agent_samples_sent_total", Help: "Samples the TSDB acknowledged."})
	s.dropped = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "opspilot_agent_samples_dropped_total", Help: "Samples dropped, by reason: queue_full (oldest dropped to stay under the size limit) or rejected (the TSDB refused the request as malformed)."}, []string{"reason"})
	if qopts.AckPersistInterval == 0 {
		// Persisting every acknowledgement costs a file rewrite per request;
		// a crash then resends at most 100 ms of delivered data, which the
		// TSDB deduplicates.
		qopts.AckPersistInterval = 100 * time.Millisecond
	}
	q, err := diskqueue.Open(dir, s.queueOptions(qopts))
	if err != nil {
		return nil, err
	}
	s.queue = q
	s.queueBytes = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "opspilot_agent_queue_bytes", Help: "Bytes waiting in the disk queue."}, func() float64 { return float64(q.Bytes()) })
	s.queueRecords = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "opspilot_agent_queue_records", Help: "Remote-write requests waiting in the disk queue."}, func() float64 { return float64(q.Len()) })
	s.sendDuration = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "opspilot_agent_send_duration_seconds", Help: "Time to deliver one request to the TSDB, retries included.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)})
	s.sendErrors = prometheus.NewCounter(prometheus.CounterOpts{Name: "opspilot_agent_send_errors_total", Help: "Failed delivery attempts (each is retried)."})
	s.dropped.WithLabelValues("queue_full")
	s.dropped.WithLabelValues("rejected")
	if reg != nil {
		reg.MustRegister(s.queued, s.sent, s.dropped, s.queueBytes, s.queueRecords, s.sendDuration, s.sendErrors)
	}
	return s, nil
}

// Close releases the disk queue; what was not delivered stays on disk.
func (s *Shipper) Close() error { return s.queue.Close() }

// Pending is the number of queued, undelivered requests.
func (s *Shipper) Pending() int { return s.queue.Len() }

// queueOptions adds drop hooks that count and log what the size limit
// throws away.
func (s *Shipper) queueOptions(o diskqueue.Options) diskqueue.Options {
	o.OnDropRecord = func(rec []byte) {
		if len(rec) >= 4 {
			s.dropped.WithLabelValues("queue_full").Add(float64(binary.LittleEndian.Uint32(rec[:4])))
		}
	}
	o.OnDrop = func(records int, bytes int64) {
		s.log.Warn("agent disk queue is full: dropped the oldest samples", "requests", records, "bytes", bytes)
	}
	return o
}

// Append encodes series into queue records. When it returns nil, the
// samples survive an agent crash.
func (s *Shipper) Append(series []tsdb.TimeSeries) error { return appendAll(series, []*Shipper{s}) }

// appendAll encodes series into records once and appends each record to
// every shipper's queue (the agent's destinations, which share one
// ShipperConfig); the first shipper's buffers and lock serve the encoding.
// A queue that fails is skipped for the rest of the call and its error
// returned, while the others get every record.
func appendAll(series []tsdb.TimeSeries, ss []*Shipper) error {
	s := ss[0]
	s.mu.Lock()
	defer s.mu.Unlock()
	failed := make([]error, len(ss))
	var batch []tsdb.TimeSeries
	n := 0
	flush := func() {
		if n == 0 {
			return
		}
		s.buf = binary.LittleEndian.AppendUint32(s.buf[:0], uint32(n))
		s.buf, s.scratch = tsdb.EncodeWriteRequest(s.buf, s.scratch, batch)
		for i, d := range ss {
			if failed[i] != nil {
				continue
			}
			if failed[i] = d.queue.Append(s.buf); failed[i] == nil {
				d.queued.Add(float64(n))
			}
		}
		batch, n = batch[:0], 0
	}
	for _, ts := range series {
		samples := ts.Samples
		for len(samples) > 0 {
			take := min(len(samples), s.cfg.MaxSamplesPerRecord-n)
			batch = append(batch, tsdb.TimeSeries{Labels: ts.Labels, Samples: samples[:take]})
			samples, n = samples[take:], n+take
			if n == s.cfg.MaxSamplesPerRecord {
				flush()
			}
		}
	}
	flush()
	return errors.Join(failed...)
}

// Run delivers records in order until ctx ends. A record leaves the queue
// only once the TSDB accepted it, or refused it as malformed (counted and
// logged); while the TSDB is unreachable, slow or refuses the credentials
// the shipper retries with backoff, and records wait on disk.
func (s *Shipper) Run(ctx context.Context) error {
	for {
		rec, end, err := s.queue.Next(ctx.Done())
		if errors.Is(err, diskqueue.ErrClosed) || ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("agent shipper: %w", err)
		}
		if len(rec) < 4 {
			s.log.Error("agent shipper: skipping a corrupt queue record", "bytes", len(rec))
			_ = s.queue.Ack(end)
			continue
		}
		samples := int(binary.LittleEndian.Uint32(rec[:4]))
		body := rec[4:]
		if !s.deliver(ctx, body, samples) {
			return nil // stopping; the record stays queued
		}
		if err := s.queue.Ack(end); err != nil {
			return fmt.Errorf("agent shipper: %w", err)
		}
	}
}

func (s *Shipper) deliver(ctx context.Context, body []byte, samples int) bool {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = s.cfg.RetryMinBackoff
	b.MaxInterval = s.cfg.RetryMaxBackoff
	start := time.Now()
	for attempt := 1; ; attempt++ {
		err := s.w.WriteEncoded(ctx, body, samples)
		if err == nil {
			s.sent.Add(float64(samples))
			s.sendDuration.Observe(time.Since(start).Seconds())
			if attempt > 1 {
				s.log.Info("agent shipper: the TSDB accepts samples again", "attempts", attempt, "after", time.Since(start).Round(time.Millisecond))
			}
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if tsdb.IsRejected(err) {
			s.dropped.WithLabelValues("rejected").Add(float64(samples))
			s.log.Error("agent shipper: the TSDB rejected a request; dropping it", "samples", samples, "err", err)
			return true
		}
		s.sendErrors.Inc()
		wait := b.NextBackOff()
		if attempt == 1 || attempt%10 == 0 {
			s.log.Warn("agent shipper: cannot deliver samples; they wait in the disk queue", "attempt", attempt, "retry_in", wait.Round(time.Millisecond), "queued_bytes", s.queue.Bytes(), "err", err)
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(wait):
		}
	}
}
