package logs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esutil"
)

// shipper sends batches of entries through an esutil.BulkIndexer and
// acknowledges their positions once every line of a batch is stored.
type shipper struct {
	index     string
	interval  time.Duration
	maxBatch  int
	positions *positionStore
	log       *slog.Logger
	m         *metrics

	status  *statusRecorder
	indexer esutil.BulkIndexer
}

// statusRecorder remembers the status of the last bulk response: the
// indexer reports a rejected request only as an error string.
type statusRecorder struct {
	next http.RoundTripper
	last atomic.Int64
}

func (s *statusRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := s.next.RoundTrip(r)
	if err != nil {
		s.last.Store(0)
		return nil, err
	}
	s.last.Store(int64(resp.StatusCode))
	return resp, nil
}

func newShipper(cfg Config, positions *positionStore, log *slog.Logger, m *metrics) (*shipper, error) {
	status := &statusRecorder{next: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ResponseHeaderTimeout: 30 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   2,
	}}
	client, err := elasticsearch.NewClient(elasticsearch.Config{
		Addresses: []string{strings.TrimSuffix(cfg.URL, "/")},
		Transport: status,
		// The shipper retries itself, with backoff and without limit.
		DisableRetry: true,
	})
	if err != nil {
		return nil, fmt.Errorf("log store client for %s: %w", cfg.URL, err)
	}
	// VictoriaLogs reads these (Elasticsearch ignores them): message and
	// time fields, and the fields that make a log stream.
	hdr := http.Header{}
	hdr.Set("VL-Msg-Field", fieldMsg)
	hdr.Set("VL-Time-Field", fieldTime)
	hdr.Set("VL-Stream-Fields", "service,instance,node")
	indexer, err := esutil.NewBulkIndexer(esutil.BulkIndexerConfig{
		Client:     client,
		NumWorkers: 1,       // one request at a time keeps acknowledgements in order
		FlushBytes: 8 << 20, // batches are flushed explicitly
		// Flushes are explicit; the indexer's own timer would only split batches.
		FlushInterval: time.Hour,
		Header:        hdr,
	})
	if err != nil {
		return nil, fmt.Errorf("bulk indexer: %w", err)
	}
	maxBatch := min(5000, max(1, cfg.MaxBufferedLines/2))
	return &shipper{
		index: cfg.Index, interval: cfg.FlushInterval, maxBatch: maxBatch,
		positions: positions, log: log, m: m, status: status, indexer: indexer,
	}, nil
}

// run ships what arrives on in until ctx ends. A batch whose request is in
// flight when ctx ends is finished and acknowledged; lines still queued are
// not, so the next start reads them again.
func (s *shipper) run(ctx context.Context, in <-chan *entry) {
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = s.indexer.Close(closeCtx)
	}()
	ticker := time.NewTicker(s.interval)
	defer ticker.Stop()
	batch := make([]*entry, 0, s.maxBatch)
	for {
		select {
		case <-ctx.Done():
			return
		case e := <-in:
			s.m.buffered.Dec()
			batch = append(batch, e)
			if len(batch) < s.maxBatch {
				continue
			}
		case <-ticker.C:
			if len(batch) == 0 {
				continue
			}
		}
		if err := s.ship(ctx, batch); err != nil {
			return
		}
		s.ack(batch)
		clear(batch)
		batch = batch[:0]
	}
}

func (s *shipper) ack(batch []*entry) {
	updates := make(map[string]position)
	for _, e := range batch {
		updates[e.path] = e.pos
	}
	if err := s.positions.ack(updates); err != nil {
		s.log.Error("cannot persist log positions; shipped lines may be shipped again after a restart", "err", err)
	}
}

// ship sends batch until every line is stored or permanently rejected; it
// returns an error only when ctx ends first.
func (s *shipper) ship(ctx context.Context, batch []*entry) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 100 * time.Millisecond
	b.MaxInterval = 2 * time.Second
	pending := batch
	for {
		retry, rejected := s.bulk(ctx, pending)
		switch {
		case rejected && len(pending) == 1:
			s.m.failed.Inc()
			s.log.Warn("log store rejected a line; dropping it", "path", pending[0].path, "status", s.status.last.Load())
			return nil
		case rejected:
			// A store that rejects the whole request for one bad line
			// (VictoriaLogs does): split to find it.
			mid := len(pending) / 2
			if err := s.ship(ctx, pending[:mid]); err != nil {
				return err
			}
			return s.ship(ctx, pending[mid:])
		case len(retry) == 0:
			return nil
		}
		s.m.retried.Add(float64(len(retry)))
		d := b.NextBackOff()
		s.log.Debug("log store unavailable; retrying", "lines", len(retry), "in", d)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
		pending = retry
	}
}

// bulk makes one attempt. It returns the entries to try again, or rejected
// when the store refused the request as a whole with a client error.
func (s *shipper) bulk(ctx context.Context, batch []*entry) (retry []*entry, rejected bool) {
	var (
		mu       sync.Mutex
		outcome  = make([]itemOutcome, len(batch))
		flushErr error
	)
	for i, e := range batch {
		err := s.indexer.Add(context.WithoutCancel(ctx), esutil.BulkIndexerItem{
			Action: "create",
			Index:  s.index,
			Body:   bytes.NewReader(e.doc),
			OnFailure: func(_ context.Context, _ esutil.BulkIndexerItem, resp esutil.BulkIndexerResponseItem, err error) {
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					flushErr = err
					outcome[i] = itemRetry
					return
				}
				if resp.Status == http.StatusTooManyRequests || resp.Status >= 500 {
					outcome[i] = itemRetry
					return
				}
				outcome[i] = itemDropped
				// A document the store refuses will not be accepted later.
				s.m.failed.Inc()
				s.log.Warn("log store rejected a line; dropping it", "path", e.path, "status", resp.Status, "reason", resp.Error.Reason)
			},
		})
		if err != nil {
			// Only a closed indexer refuses items.
			return batch, false
		}
	}
	// The request is not cancelled with ctx, so that its outcome is known
	// and acknowledged; transport timeouts bound it.
	if err := s.indexer.Flush(context.WithoutCancel(ctx)); err != nil {
		return batch, false
	}
	mu.Lock()
	defer mu.Unlock()
	if flushErr != nil {
		status := s.status.last.Load()
		if status >= 400 && status < 500 && status != http.StatusTooManyRequests && status != http.StatusRequestTimeout {
			s.log.Warn("log store rejected a bulk request", "status", status, "lines", len(batch), "err", flushErr)
			return nil, true
		}
		if !errors.Is(flushErr, context.Canceled) {
			s.log.Debug("bulk request failed", "err", flushErr)
		}
	}
	shipped := 0
	for i, e := range batch {
		switch outcome[i] {
		case itemRetry:
			retry = append(retry, e)
		case itemStored:
			shipped++
		}
	}
	s.m.shipped.Add(float64(shipped))
	return retry, false
}

type itemOutcome uint8

const (
	itemStored itemOutcome = iota
	itemRetry
	itemDropped
)
