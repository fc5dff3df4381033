package billing

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// maxBodyBytes bounds a /pay or /refund request body.
const maxBodyBytes = 64 << 10

// server is one billing instance: handlers, capacity model and metrics.
type server struct {
	cfg     config
	log     *slog.Logger
	now     func() time.Time
	sleep   func(ctx context.Context, d time.Duration) error
	started time.Time

	rndMu sync.Mutex
	rnd   func() float64 // uniform in [0,1); guarded by rndMu

	window   rateWindow
	draining atomic.Bool

	reg          *prometheus.Registry
	transactions *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	inflight     prometheus.Gauge
}

// serverOption adjusts a server for tests.
type serverOption func(*server)

// withClock replaces time.Now.
func withClock(now func() time.Time) serverOption { return func(s *server) { s.now = now } }

// withSleep replaces the context-aware sleep that models latency.
func withSleep(f func(ctx context.Context, d time.Duration) error) serverOption {
	return func(s *server) { s.sleep = f }
}

// withRand replaces the random source of the overload decision.
func withRand(f func() float64) serverOption { return func(s *server) { s.rnd = f } }

func newServer(cfg config, log *slog.Logger, opts ...serverOption) *server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &server{cfg: cfg, log: log, now: time.Now, sleep: sleepCtx}
	seed := cfg.seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	r := mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	s.rnd = r.Float64
	for _, o := range opts {
		o(s)
	}
	s.started = s.now()

	s.reg = prometheus.NewRegistry()
	s.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	// No instance label here: the scraper (opspilot's agent, or any
	// Prometheus) sets instance, service and tenant itself.
	kpi := prometheus.Registerer(s.reg)
	s.transactions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "billing_transactions_total",
		Help: "Billing transactions handled, by operation and result (error = shed as overloaded, abandoned, or an injected -fail-ratio fault).",
	}, []string{"op", "result"})
	s.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "billing_request_duration_seconds",
		Help:    "Time to handle a billing transaction, by operation.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2, 2.5, 5},
	}, []string{"op"})
	s.inflight = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "billing_inflight_requests",
		Help: "Billing requests (/pay, /refund) being handled now.",
	})
	capacity := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "billing_capacity_tps",
		Help: "Transactions per second this instance handles comfortably (-capacity).",
	})
	capacity.Set(cfg.capacity)
	load := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "billing_load_tps",
		Help: "Transactions offered to this instance over the last second.",
	}, func() float64 { return s.window.rate(s.now()) })
	kpi.MustRegister(s.transactions, s.duration, s.inflight, capacity, load)
	// Make the series exist from the start so rate() and alerts see zeros.
	for _, op := range []string{"pay", "refund"} {
		for _, res := range []string{"ok", "error"} {
			s.transactions.WithLabelValues(op, res)
		}
		s.duration.WithLabelValues(op)
	}
	return s
}

func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /pay", func(w http.ResponseWriter, r *http.Request) { s.transaction(w, r, "pay") })
	mux.HandleFunc("POST /refund", func(w http.ResponseWriter, r *http.Request) { s.transaction(w, r, "refund") })
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "instance": s.cfg.instance})
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg}))
	return mux
}

// readiness reports "ready", "starting" (within -warmup) or "draining".
func (s *server) readiness() string {
	switch {
	case s.draining.Load():
		return "draining"
	case s.now().Sub(s.started) < s.cfg.warmup:
		return "starting"
	default:
		return "ready"
	}
}

func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	st := s.readiness()
	code := http.StatusOK
	if st != "ready" {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]string{"status": st, "instance": s.cfg.instance})
}

// startDrain makes /readyz fail from now on.
func (s *server) startDrain() { s.draining.Store(true) }

type txRequest struct {
	Amount *float64 `json:"amount"`
	Shop   string   `json:"shop"`
}

type txResponse struct {
	ID       string  `json:"id,omitempty"`
	Result   string  `json:"result"`
	Reason   string  `json:"reason,omitempty"`
	Op       string  `json:"op,omitempty"`
	Amount   float64 `json:"amount,omitempty"`
	Shop     string  `json:"shop,omitempty"`
	Instance string  `json:"instance,omitempty"`
}

func (s *server) transaction(w http.ResponseWriter, r *http.Request, op string) {
	s.inflight.Inc()
	defer s.inflight.Dec()

	req, code, reason := decodeTx(w, r)
	if code != 0 {
		writeJSON(w, code, txResponse{Result: "error", Reason: reason, Op: op, Instance: s.cfg.instance})
		return
	}

	start := s.now()
	if s.cfg.failRatio > 0 && s.random() < s.cfg.failRatio {
		s.observe(op, "error", start)
		writeJSON(w, http.StatusInternalServerError, txResponse{Result: "error", Reason: "injected fault", Op: op, Instance: s.cfg.instance})
		return
	}
	rate := s.window.add(start)
	lat, errRate := latencyAndErrorRate(rate, s.cfg.capacity)
	if errRate > 0 && s.random() < errRate {
		s.observe(op, "error", start)
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, txResponse{Result: "error", Reason: "overloaded", Op: op, Instance: s.cfg.instance})
		return
	}
	if err := s.sleep(r.Context(), lat); err != nil {
		// The client went away mid-transaction: nobody reads the answer.
		s.observe(op, "error", start)
		return
	}
	s.observe(op, "ok", start)
	writeJSON(w, http.StatusOK, txResponse{
		ID: newID(op), Result: "ok", Op: op, Amount: *req.Amount, Shop: req.Shop, Instance: s.cfg.instance,
	})
}

func (s *server) observe(op, result string, start time.Time) {
	s.transactions.WithLabelValues(op, result).Inc()
	s.duration.WithLabelValues(op).Observe(s.now().Sub(start).Seconds())
}

func (s *server) random() float64 {
	s.rndMu.Lock()
	defer s.rndMu.Unlock()
	return s.rnd()
}

// decodeTx parses and validates a transaction body. A non-zero code is the
// client error to answer with, and reason says why.
func decodeTx(w http.ResponseWriter, r *http.Request) (txRequest, int, string) {
	var req txRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			return req, http.StatusRequestEntityTooLarge, "body larger than 64 KiB"
		case errors.Is(err, io.EOF):
			return req, http.StatusBadRequest, "empty body; want JSON like {\"amount\": 12.5, \"shop\": \"a\"}"
		default:
			return req, http.StatusBadRequest, "invalid JSON: " + err.Error()
		}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return req, http.StatusRequestEntityTooLarge, "body larger than 64 KiB"
		}
		return req, http.StatusBadRequest, "invalid JSON: data after the object"
	}
	switch {
	case req.Amount == nil:
		return req, http.StatusBadRequest, "amount is required"
	case math.IsNaN(*req.Amount) || math.IsInf(*req.Amount, 0) || *req.Amount <= 0:
		return req, http.StatusBadRequest, "amount must be a number > 0"
	case len(req.Shop) > 128:
		return req, http.StatusBadRequest, "shop longer than 128 bytes"
	}
	return req, 0, ""
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// newID returns a random transaction id such as "pay_1f2e3d4c5b6a7988".
func newID(op string) string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails since Go 1.24
	return op + "_" + hex.EncodeToString(b[:])
}

// sleepCtx sleeps for d or until ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
