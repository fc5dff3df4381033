package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// InstanceHeader names, on every proxied response, the instance that
// answered.
const InstanceHeader = "X-Opspilot-Instance"

// Config configures a Gateway. Zero values take the defaults.
type Config struct {
	// DefaultService receives requests that name no service by host or
	// path. Empty: such requests go to the only service when exactly one
	// exists, else they get 404.
	DefaultService string
	// DialTimeout bounds connecting to an endpoint; default 300ms.
	// Endpoints are near (a connect takes well under a millisecond in a
	// datacenter): a connect that takes longer means a host or network that
	// is gone and drops packets, better retried elsewhere at once.
	DialTimeout time.Duration
	// DialRetries is how many other endpoints a request tries after
	// connecting failed (refused, unreachable, timed out); default 3, -1
	// for none. Any method is retried: the instance never saw the request.
	// A retry prefers another datacenter than the failed connects': when a
	// datacenter's network fails, the first retry already leaves it.
	DialRetries int
	// EjectAfter is how many connect failures in a row take an endpoint
	// out of rotation for EjectFor, before the control plane removes it
	// (a cut datacenter takes the node timeout to be noticed); default 2,
	// -1 never ejects. When an ejection ends the endpoint gets requests
	// again; one more failure ejects it again, a response restores it.
	// When every endpoint of a service is ejected they are tried anyway.
	EjectAfter int
	// EjectFor is how long an ejection lasts; default 5s.
	EjectFor time.Duration
	// StallAfter keeps new requests away from an endpoint that has
	// requests outstanding but has answered nothing for this long (while
	// others are available); default 300ms, negative turns it off. A host whose network
	// went dark under kept-alive connections fails no connect: requests
	// written onto those connections just hang, and without this the
	// balancer would keep feeding it whenever its outstanding count looks
	// no worse than the others'. An idle endpoint is never stalled, so a
	// slow one still gets requests when it has none.
	StallAfter time.Duration
	// ResponseHeaderTimeout bounds the wait for an endpoint's response
	// headers once the request was sent (504 after it); default 30s. It is
	// the longest a legitimate request may take to start answering, so it
	// stays generous: a request sent to an instance whose network went
	// dark is not retried (it may have been processed) and waits this long.
	ResponseHeaderTimeout time.Duration
	// MaxRetryBody is the largest request body buffered so the request can
	// be retried on another endpoint; default 1 MiB. Larger bodies are
	// streamed and their requests never retried.
	MaxRetryBody int64
	// MaxIdleConnsPerEndpoint is how many keep-alive connections to one
	// endpoint are kept for reuse; default 64.
	MaxIdleConnsPerEndpoint int
}

// Defaults of Config.
const (
	DefaultDialTimeout             = 300 * time.Millisecond
	DefaultDialRetries             = 3
	DefaultEjectAfter              = 2
	DefaultEjectFor                = 5 * time.Second
	DefaultStallAfter              = 300 * time.Millisecond
	DefaultResponseHeaderTimeout   = 30 * time.Second
	DefaultMaxRetryBody            = 1 << 20
	DefaultMaxIdleConnsPerEndpoint = 64
)

func (c Config) withDefaults() Config {
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.DialRetries == 0 {
		c.DialRetries = DefaultDialRetries
	}
	if c.EjectAfter == 0 {
		c.EjectAfter = DefaultEjectAfter
	}
	if c.EjectFor == 0 {
		c.EjectFor = DefaultEjectFor
	}
	if c.StallAfter == 0 {
		c.StallAfter = DefaultStallAfter
	}
	if c.ResponseHeaderTimeout == 0 {
		c.ResponseHeaderTimeout = DefaultResponseHeaderTimeout
	}
	if c.MaxRetryBody == 0 {
		c.MaxRetryBody = DefaultMaxRetryBody
	}
	if c.MaxIdleConnsPerEndpoint == 0 {
		c.MaxIdleConnsPerEndpoint = DefaultMaxIdleConnsPerEndpoint
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.DialTimeout < 0:
		return fmt.Errorf("gateway: dial timeout %s must not be negative (e.g. 300ms)", c.DialTimeout)
	case c.ResponseHeaderTimeout < 0:
		return fmt.Errorf("gateway: response header timeout %s must not be negative (e.g. 30s)", c.ResponseHeaderTimeout)
	case c.DialRetries < -1:
		return fmt.Errorf("gateway: dial retries %d must be -1 (none) or more", c.DialRetries)
	case c.EjectAfter < -1:
		return fmt.Errorf("gateway: eject after %d must be -1 (never eject) or a number of connect failures in a row", c.EjectAfter)
	case c.EjectFor < 0:
		return fmt.Errorf("gateway: eject for %s must not be negative (e.g. 5s)", c.EjectFor)
	case c.MaxRetryBody < 0:
		return errors.New("gateway: max retry body must not be negative")
	case c.MaxIdleConnsPerEndpoint < 0:
		return errors.New("gateway: max idle connections per endpoint must not be negative")
	}
	return nil
}

// Gateway is an http.Handler that routes each request to a service's ready
// endpoints (see the package documentation for the rules).
type Gateway struct {
	src       Source
	cfg       Config
	log       *slog.Logger
	m         *metrics
	transport *http.Transport
	proxy     *httputil.ReverseProxy

	mu  sync.Mutex // serialises table rebuilds
	tab atomic.Pointer[table]
}

// New returns a gateway routing by src. reg and log may be nil.
func New(src Source, cfg Config, reg prometheus.Registerer, log *slog.Logger) (*Gateway, error) {
	if src == nil {
		return nil, errors.New("gateway: no endpoint source; use a Watcher (with --server) or a StaticSource")
	}
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	g := &Gateway{src: src, cfg: cfg, log: log.With("component", "gateway"), m: m}
	g.transport = &http.Transport{
		// Endpoints are internal addresses: a proxy from the environment,
		// meant for the outside world, must not capture them.
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   cfg.MaxIdleConnsPerEndpoint,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: cfg.ResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
		// Pass encodings through untouched instead of decompressing.
		DisableCompression: true,
	}
	g.proxy = &httputil.ReverseProxy{
		Rewrite:      g.rewrite,
		Transport:    roundTripperFunc(g.roundTrip),
		ErrorHandler: g.proxyError,
		BufferPool:   &copyBuffers,
		ErrorLog:     slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
	}
	return g, nil
}

// Run keeps the routing table and the endpoints gauge current as the
// source changes, until ctx is done. Without Run the gateway still routes
// correctly: each request checks the source.
func (g *Gateway) Run(ctx context.Context) error {
	for {
		_, changed := g.src.Current()
		g.table()
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

// CloseIdleConnections closes the keep-alive connections to endpoints.
func (g *Gateway) CloseIdleConnections() { g.transport.CloseIdleConnections() }

// closeIdle runs when a removed endpoint has nothing outstanding. The
// Transport may hold connections to it that never carried a request (a
// dial that lost the race to a freed connection); the instance's graceful
// shutdown waits 5s for such connections, so close them now. The shared
// Transport can only close all idle connections: that costs a few
// reconnects per scale-down, which is rare.
func (g *Gateway) closeIdle() { g.transport.CloseIdleConnections() }

// table returns the routing table for the source's current set, building
// it on the first request after a change.
func (g *Gateway) table() *table {
	set, _ := g.src.Current()
	if t := g.tab.Load(); t != nil && t.set == set {
		return t
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	set, _ = g.src.Current()
	prev := g.tab.Load()
	if prev != nil && prev.set == set {
		return prev
	}
	t, idle := buildTable(set, prev, g.closeIdle)
	g.m.setEndpoints(t) // before Store: a request that sees t finds the gauge matching
	g.tab.Store(t)
	if idle {
		g.closeIdle()
	}
	if set != nil {
		g.log.Info("endpoints changed", "revision", set.Revision, "endpoints", summary(t))
	}
	return t
}

// summary is "billing=3 search=0" for logs.
func summary(t *table) string {
	var b strings.Builder
	for i, name := range t.names {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(name)
		b.WriteByte('=')
		b.WriteString(strconv.Itoa(len(t.services[name])))
	}
	return b.String()
}

// proxyState travels with a request through the ReverseProxy, in its
// context. Only the request's own goroutine touches it.
type proxyState struct {
	route      route
	body       []byte // buffered request body; nil when none
	replayable bool   // the body can be sent again
	backend    *backend
}

type stateKey struct{}

func stateFrom(ctx context.Context) *proxyState {
	st, _ := ctx.Value(stateKey{}).(*proxyState)
	return st
}

// CallerHeader names the service sending a request through the gateway
// (instances have it in $OPSPILOT_SERVICE); the gateway counts such calls
// by caller and callee, so the analyzer learns the call graph from
// traffic. Only names of known services are counted, so the header cannot
// grow the metric without bound.
const CallerHeader = "X-Opspilot-Caller"

// ServeHTTP routes r. See the package documentation.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	t := g.table()
	if t.set == nil {
		g.reject(w, start, "", http.StatusServiceUnavailable, "no_endpoint_set",
			"the gateway has not received the endpoint set from the server yet; retry in a moment")
		return
	}
	rt, ok := t.resolve(r, g.cfg.DefaultService)
	if !ok {
		seg, _, _ := firstSegment(r.URL.EscapedPath())
		g.reject(w, start, "", http.StatusNotFound, "unknown_service", fmt.Sprintf(
			"no service named by host %q or path segment %q; send to SERVICE.HOST or /SERVICE/...; services: %s",
			r.Host, seg, strings.Join(t.names, ", ")))
		return
	}
	if len(t.services[rt.service]) == 0 {
		g.reject(w, start, rt.service, http.StatusServiceUnavailable, "no_ready_instance", fmt.Sprintf(
			"service %q has no ready instance: it is starting, scaled to zero, or failing its readiness probe", rt.service))
		return
	}

	if caller := r.Header.Get(CallerHeader); caller != "" && caller != rt.service && t.known[caller] {
		g.m.calls.WithLabelValues(caller, rt.service).Inc()
	}
	st := &proxyState{route: rt}
	r = r.WithContext(context.WithValue(r.Context(), stateKey{}, st)) // a copy: the server's request stays untouched
	if err := g.bufferBody(r, st); err != nil {
		g.reject(w, start, rt.service, http.StatusBadRequest, "bad_request_body", "reading the request body: "+err.Error())
		return
	}

	rec := &statusRecorder{ResponseWriter: w}
	inflight := g.m.inflight.WithLabelValues(rt.service)
	inflight.Inc()
	defer func() { // deferred: ReverseProxy aborts with a panic when the client goes away mid-body
		inflight.Dec()
		dc, version := "", ""
		if st.backend != nil {
			dc, version = st.backend.ep.Datacenter, st.backend.ep.Version
		}
		code := rec.code
		if code == 0 {
			code = http.StatusOK
		}
		g.m.requests.WithLabelValues(rt.service, dc, version, strconv.Itoa(code)).Inc()
		g.m.duration.WithLabelValues(rt.service, dc, version).Observe(time.Since(start).Seconds())
	}()
	g.proxy.ServeHTTP(rec, r)
}

// bufferBody reads a body of up to MaxRetryBody into st so the request can
// be sent twice; a larger one is streamed (st.replayable stays false).
func (g *Gateway) bufferBody(r *http.Request, st *proxyState) error {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		st.replayable = true
		return nil
	}
	if r.ContentLength > g.cfg.MaxRetryBody {
		return nil
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, g.cfg.MaxRetryBody+1))
	if err != nil {
		return err
	}
	if int64(len(buf)) > g.cfg.MaxRetryBody { // chunked and large: stream what was read, then the rest
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(buf), r.Body), r.Body}
		return nil
	}
	st.body, st.replayable = buf, true
	r.ContentLength, r.TransferEncoding = int64(len(buf)), nil
	if len(buf) == 0 {
		st.body, r.Body = nil, http.NoBody
	}
	return nil
}

func (g *Gateway) rewrite(pr *httputil.ProxyRequest) {
	st := stateFrom(pr.Out.Context())
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = st.route.service // replaced by the chosen endpoint in roundTrip
	pr.Out.URL.Path, pr.Out.URL.RawPath = st.route.path, st.route.rawPath
	pr.SetXForwarded()
	// Out.Host stays the client's Host header.
}

// roundTrip sends the request to one endpoint and, when retryDecision
// allows, to others: up to DialRetries more after failed connects, and
// once after a failure the instance may have seen.
func (g *Gateway) roundTrip(req *http.Request) (*http.Response, error) {
	st := stateFrom(req.Context())
	var triedBuf [4]*backend
	var avoidBuf [2]string
	tried, avoid := triedBuf[:0], avoidBuf[:0]
	b := pick(g.table().services[st.route.service], nil, time.Now().UnixNano(), int64(g.cfg.StallAfter))
	if b == nil { // the last endpoint went away since ServeHTTP looked
		return nil, errNoEndpoint
	}
	dialRetries, sentRetries := 0, 0
	for {
		res, err := g.attempt(req, st, b)
		g.observe(st.route.service, b, err)
		tried = append(tried, b)
		if !retryDecision(req.Method, req.Header, st.replayable, res, err) || req.Context().Err() != nil {
			return res, err
		}
		if err != nil && notSent(err) {
			if dialRetries >= g.cfg.DialRetries {
				return res, err
			}
			dialRetries++
			if b.ep.Datacenter != "" && !slices.Contains(avoid, b.ep.Datacenter) {
				avoid = append(avoid, b.ep.Datacenter)
			}
		} else {
			if sentRetries >= 1 {
				return res, err
			}
			sentRetries++
		}
		next := pick(g.table().services[st.route.service], tried, time.Now().UnixNano(), int64(g.cfg.StallAfter), avoid...)
		if next == nil {
			return res, err
		}
		if res != nil {
			drainClose(res.Body)
		}
		g.m.retries.WithLabelValues(st.route.service).Inc()
		g.log.Debug("retrying on another endpoint", "service", st.route.service, "method", req.Method,
			"from", b.ep.Instance, "to", next.ep.Instance, "cause", failureText(res, err))
		b = next
	}
}

// observe feeds an attempt's outcome to passive ejection: failed connects
// in a row eject the endpoint, a response restores it.
func (g *Gateway) observe(service string, b *backend, err error) {
	switch {
	case err == nil:
		b.answered(time.Now().UnixNano())
	case notSent(err):
		g.m.connectFailures.WithLabelValues(service, b.ep.Datacenter).Inc()
		if b.connectFailed(time.Now(), g.cfg.EjectAfter, g.cfg.EjectFor) {
			g.m.ejections.WithLabelValues(service, b.ep.Datacenter).Inc()
			g.log.Warn("endpoint ejected after failed connects", "service", service, "instance", b.ep.Instance,
				"address", b.ep.Address, "datacenter", b.ep.Datacenter, "failures", b.connectFailures.Load(),
				"for", g.cfg.EjectFor, "err", err)
		}
	}
}

var errNoEndpoint = errors.New("no ready endpoint left")

func (g *Gateway) attempt(req *http.Request, st *proxyState, b *backend) (*http.Response, error) {
	out := req.WithContext(req.Context()) // shallow copy; the URL is copied below
	u := *req.URL
	u.Host = b.ep.Address
	out.URL = &u
	if st.body != nil {
		body := st.body
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		out.ContentLength = int64(len(body))
	}
	st.backend = b
	b.begin(time.Now().UnixNano())
	res, err := g.transport.RoundTrip(out)
	if err != nil {
		b.release()
		return nil, err
	}
	res.Header.Set(InstanceHeader, b.ep.Instance)
	if res.StatusCode == http.StatusSwitchingProtocols {
		b.release() // the upgraded connection is no longer a request; ReverseProxy needs the raw body
		return res, nil
	}
	res.Body = &releasingBody{ReadCloser: res.Body, b: b}
	return res, nil
}

// releasingBody ends a request's outstanding count on its backend when the
// response body is closed, so the balancer counts responses still being
// streamed.
type releasingBody struct {
	io.ReadCloser
	b    *backend
	done atomic.Bool
}

func (r *releasingBody) Close() error {
	if r.done.CompareAndSwap(false, true) {
		r.b.release()
	}
	return r.ReadCloser.Close()
}

// isIdempotent reports whether sending the request twice is harmless:
// an idempotent method, or an Idempotency-Key header.
func isIdempotent(method string, h http.Header) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete, http.MethodTrace:
		return true
	}
	return h.Get("Idempotency-Key") != "" || h.Get("X-Idempotency-Key") != ""
}

// retryDecision says whether a failed attempt may be repeated on another
// endpoint: never without a replayable body; always when the connection
// was never made (the instance never saw the request); for idempotent
// requests also after a reset connection or a 502/503 (a draining or
// overloaded instance). Timeouts are not retried: the instance may still
// be working on it, and a retry would double the wait.
func retryDecision(method string, h http.Header, replayable bool, res *http.Response, err error) bool {
	if !replayable {
		return false
	}
	if err != nil {
		switch {
		case notSent(err): // before timeouts: a dial timeout never reached the instance either
			return true
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded), isTimeout(err):
			return false
		default:
			return isIdempotent(method, h)
		}
	}
	return (res.StatusCode == http.StatusBadGateway || res.StatusCode == http.StatusServiceUnavailable) && isIdempotent(method, h)
}

// notSent reports whether err happened before the request left the
// gateway: connecting failed (refused, unreachable, dial timeout).
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func failureText(res *http.Response, err error) string {
	if err != nil {
		return err.Error()
	}
	return res.Status
}

// proxyError answers a request whose last attempt got no response.
func (g *Gateway) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	st := stateFrom(r.Context())
	instance := ""
	if st.backend != nil {
		instance = st.backend.ep.Instance
	}
	var status int
	var reason, msg string
	switch {
	case r.Context().Err() != nil:
		g.m.errors.WithLabelValues(st.route.service, "client_canceled").Inc()
		w.WriteHeader(499) // nginx's "client closed request": nobody reads it, the metrics do
		return
	case errors.Is(err, errNoEndpoint):
		status, reason = http.StatusServiceUnavailable, "no_ready_instance"
		msg = fmt.Sprintf("service %q has no ready instance", st.route.service)
	case isTimeout(err) && !notSent(err):
		status, reason = http.StatusGatewayTimeout, "upstream_timeout"
		msg = fmt.Sprintf("instance %s of service %q did not answer within %s", instance, st.route.service, g.cfg.ResponseHeaderTimeout)
	case notSent(err):
		status, reason = http.StatusBadGateway, "connect_failed"
		msg = fmt.Sprintf("cannot connect to service %q: %v", st.route.service, err)
	default:
		status, reason = http.StatusBadGateway, "upstream_failed"
		msg = fmt.Sprintf("instance %s of service %q failed before answering: %v", instance, st.route.service, err)
	}
	g.m.errors.WithLabelValues(st.route.service, reason).Inc()
	g.log.Debug("proxy error", "service", st.route.service, "instance", instance, "reason", reason, "err", err)
	writeError(w, status, errorBody{Error: msg, Reason: reason, Service: st.route.service, Instance: instance})
}

// reject answers a request the gateway could not route.
func (g *Gateway) reject(w http.ResponseWriter, start time.Time, service string, status int, reason, msg string) {
	g.m.errors.WithLabelValues(service, reason).Inc()
	g.m.requests.WithLabelValues(service, "", "", strconv.Itoa(status)).Inc()
	g.m.duration.WithLabelValues(service, "", "").Observe(time.Since(start).Seconds())
	writeError(w, status, errorBody{Error: msg, Reason: reason, Service: service})
}

// errorBody is the JSON the gateway answers with when it cannot proxy.
type errorBody struct {
	Error    string `json:"error"`
	Reason   string `json:"reason"`
	Service  string `json:"service,omitempty"`
	Instance string `json:"instance,omitempty"`
}

func writeError(w http.ResponseWriter, status int, body errorBody) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	if status == http.StatusServiceUnavailable {
		h.Set("Retry-After", "1")
	}
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(body)
}

// statusRecorder remembers the status written; Unwrap lets ReverseProxy's
// ResponseController reach Flush and Hijack.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// copyBuffers recycles ReverseProxy's 32 KiB copy buffers; arrays, not
// slices, go in the pool so Put does not allocate.
var copyBuffers bufferPool

const copyBufferSize = 32 << 10

type bufferPool struct{ p sync.Pool }

func (bp *bufferPool) Get() []byte {
	if v, ok := bp.p.Get().(*[copyBufferSize]byte); ok {
		return v[:]
	}
	return new([copyBufferSize]byte)[:]
}

func (bp *bufferPool) Put(b []byte) {
	if len(b) == copyBufferSize {
		bp.p.Put((*[copyBufferSize]byte)(b))
	}
}
