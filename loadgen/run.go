package loadgen

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Scheduler wake-ups: never busier than minWait, never idler than maxWait
// (so a rate rising from zero is noticed).
const (
	minWait = 100 * time.Microsecond
	maxWait = 50 * time.Millisecond
)

// maxLatencySamples bounds the memory for percentiles; beyond it latencies
// are reservoir-sampled.
const maxLatencySamples = 1 << 20

// Run offers load as cfg describes until cfg.Duration has passed or ctx is
// done, waits for the requests in flight (each bounded by cfg.Timeout;
// aborted when ctx is done) and reports. The schedule is open-loop: a slow
// target does not lower the offered rate; requests due while
// cfg.Concurrency are in flight are dropped and counted. An error is
// returned only for an invalid config; cancelling ctx ends the run early
// with a report of what was done. client may be nil.
func Run(ctx context.Context, cfg Config, client *http.Client) (Report, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return Report{}, err
	}
	if client == nil {
		tr := newTransport(cfg.Concurrency)
		defer tr.CloseIdleConnections()
		client = &http.Client{Transport: tr}
	}
	r := &runner{
		cfg:    cfg,
		client: client,
		base:   strings.TrimRight(cfg.Target, "/"),
		sem:    make(chan struct{}, cfg.Concurrency),
		st:     newStats(),
		kinds:  kindsFor(cfg.Mix),
	}
	return r.run(ctx), nil
}

func newTransport(concurrency int) *http.Transport {
	return &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        concurrency,
		MaxIdleConnsPerHost: concurrency, // reuse connections: an open-loop run must not exhaust ports
		IdleConnTimeout:     90 * time.Second,
	}
}

type runner struct {
	cfg    Config
	client *http.Client
	base   string
	sem    chan struct{} // one slot per request in flight
	st     *stats
	kinds  []kind
}

func (r *runner) run(ctx context.Context) Report {
	start := time.Now()
	stopProgress := r.startProgress(ctx, start)
	var wg sync.WaitGroup
	r.schedule(ctx, start, &wg)
	offered := time.Since(start)
	if r.cfg.Duration > 0 {
		offered = min(offered, r.cfg.Duration)
	}
	wg.Wait()
	stopProgress()
	return r.st.report(r.cfg.Target, offered)
}

// schedule dispatches requests on time until the run ends: it integrates
// RateAt into a token count and sends one request per whole token,
// catching up after any late wake-up.
func (r *runner) schedule(ctx context.Context, start time.Time, wg *sync.WaitGroup) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	var last time.Duration
	tokens := 0.0
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		now := time.Since(start)
		end, finished := now, false
		if r.cfg.Duration > 0 && now >= r.cfg.Duration {
			end, finished = r.cfg.Duration, true
		}
		tokens += r.cfg.requestsBetween(last, end)
		last = end
		for tokens >= 1-1e-9 { // tolerance: 100 × 10ms must be 100 requests
			tokens--
			r.dispatch(ctx, wg)
		}
		if finished {
			return
		}
		wait := maxWait
		if rate := r.cfg.RateAt(now); rate > 0 {
			wait = min(max(time.Duration((1-tokens)/rate*float64(time.Second)), minWait), maxWait)
		}
		if r.cfg.Duration > 0 {
			wait = min(wait, r.cfg.Duration-now)
		}
		timer.Reset(wait)
	}
}

func (r *runner) dispatch(ctx context.Context, wg *sync.WaitGroup) {
	select {
	case r.sem <- struct{}{}:
	default:
		r.st.dropped.Add(1)
		return
	}
	r.st.sent.Add(1)
	k := r.pick()
	wg.Go(func() {
		defer func() { <-r.sem }()
		r.do(ctx, k)
	})
}

// kind is one sort of request the mix chooses from.
type kind struct {
	name         string
	method, path string
	body         bool
	weight       float64 // cumulative, normalised to 1
}

func kindsFor(m Mix) []kind {
	all := []kind{
		{name: "pay", method: http.MethodPost, path: "/pay", body: true, weight: m.Pay},
		{name: "refund", method: http.MethodPost, path: "/refund", body: true, weight: m.Refund},
		{name: "health", method: http.MethodGet, path: "/healthz", weight: m.Health},
	}
	total := m.Pay + m.Refund + m.Health
	var out []kind
	cum := 0.0
	for _, k := range all {
		if k.weight > 0 {
			cum += k.weight / total
			k.weight = cum
			out = append(out, k)
		}
	}
	out[len(out)-1].weight = 1
	return out
}

func (r *runner) pick() kind {
	x := rand.Float64()
	for _, k := range r.kinds {
		if x < k.weight {
			return k
		}
	}
	return r.kinds[len(r.kinds)-1]
}

// txBody is a transaction the demo billing service accepts:
// {"amount": 12.34, "shop": "shop-7"} (amount > 0, shop <= 128 bytes).
func txBody() []byte {
	cents := 100 + rand.IntN(49900)
	b := make([]byte, 0, 48)
	b = append(b, `{"amount":`...)
	b = strconv.AppendInt(b, int64(cents/100), 10)
	b = append(b, '.', byte('0'+cents%100/10), byte('0'+cents%10))
	b = append(b, `,"shop":"shop-`...)
	b = strconv.AppendInt(b, int64(1+rand.IntN(20)), 10)
	return append(b, `"}`...)
}

// do sends one request and records its outcome.
func (r *runner) do(ctx context.Context, k kind) {
	reqCtx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	var body io.Reader
	if k.body {
		body = bytes.NewReader(txBody())
	}
	req, err := http.NewRequestWithContext(reqCtx, k.method, r.base+k.path, body)
	if err != nil {
		r.st.failure(err)
		return
	}
	req.Header.Set("User-Agent", "opspilot-loadgen")
	if k.body {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	res, err := r.client.Do(req)
	if err == nil {
		var head [256]byte
		n, _ := io.ReadFull(res.Body, head[:])
		_, err = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		if err == nil {
			r.st.response(res.StatusCode, time.Since(start), head[:n])
			return
		}
	}
	if ctx.Err() != nil { // the run was cancelled, not the target's fault
		r.st.aborted.Add(1)
		return
	}
	r.st.failure(err)
}

// errorKind sorts transport errors into the few kinds a person acts on.
func errorKind(err error) string {
	var dnsErr *net.DNSError
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection reset"
	case errors.As(err, &dnsErr):
		return "dns"
	default:
		return "other"
	}
}

// stats collects outcomes from all request goroutines.
type stats struct {
	sent, ok, failed, dropped, aborted atomic.Int64

	mu       sync.Mutex
	byStatus map[int]int
	errors   map[string]int
	samples  map[string]string
	lat      []time.Duration
	latSeen  int
}

func newStats() *stats {
	return &stats{byStatus: map[int]int{}, errors: map[string]int{}, samples: map[string]string{}}
}

func (s *stats) response(code int, latency time.Duration, head []byte) {
	ok := code >= 200 && code < 300
	if ok {
		s.ok.Add(1)
	} else {
		s.failed.Add(1)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byStatus[code]++
	if !ok {
		key := "HTTP " + strconv.Itoa(code)
		if _, seen := s.samples[key]; !seen {
			s.samples[key] = strings.TrimSpace(string(head))
		}
		return
	}
	s.latSeen++
	if len(s.lat) < maxLatencySamples {
		s.lat = append(s.lat, latency)
	} else if i := rand.IntN(s.latSeen); i < maxLatencySamples {
		s.lat[i] = latency
	}
}

func (s *stats) failure(err error) {
	s.failed.Add(1)
	kind := errorKind(err)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errors[kind]++
	if _, seen := s.samples[kind]; !seen {
		s.samples[kind] = err.Error()
	}
}

// startProgress calls cfg.Progress every interval until the returned
// function is called, which makes the final call.
func (r *runner) startProgress(ctx context.Context, start time.Time) (stop func()) {
	if r.cfg.Progress == nil {
		return func() {}
	}
	quit := make(chan struct{})
	done := make(chan struct{})
	var lastSent int64
	lastAt := time.Duration(0)
	snapshot := func(final bool) Progress {
		el := time.Since(start)
		sent := r.st.sent.Load()
		p := Progress{
			Elapsed: el, Sent: int(sent), OK: int(r.st.ok.Load()), Failed: int(r.st.failed.Load()),
			Dropped: int(r.st.dropped.Load()), InFlight: len(r.sem), Rate: r.cfg.RateAt(el), Done: final,
		}
		if d := (el - lastAt).Seconds(); d > 0 {
			p.SentPerSecond = float64(sent-lastSent) / d
		}
		lastSent, lastAt = sent, el
		return p
	}
	go func() {
		defer close(done)
		tick := time.NewTicker(r.cfg.ProgressInterval)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				r.cfg.Progress(snapshot(true))
				return
			case <-tick.C:
				r.cfg.Progress(snapshot(false))
			}
		}
	}()
	return func() { close(quit); <-done }
}
