package tsdb

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/VictoriaMetrics/lib/prompb"
	"github.com/cenkalti/backoff/v5"
	"github.com/klauspost/compress/s2"
	promapi "github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/client_golang/prometheus"
	commonconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/version"
)

// The remote-write wire types. They are VictoriaMetrics' prompb types, whose
// marshaller appends into a reused buffer without allocating.
type (
	TimeSeries = prompb.TimeSeries
	Label      = prompb.Label
	Sample     = prompb.Sample
)

// Range is the time range and resolution of a range query.
type Range = v1.Range

// Result is the answer to a query: the value and any warnings the store gave.
type Result struct {
	Value    model.Value
	Warnings []string
	// Infos are informational annotations (Prometheus 3).
	Infos []string
}

// Client writes samples to and queries a Prometheus-compatible store. It is
// safe for concurrent use.
type Client struct {
	endpoints Endpoints
	cfg       ClientConfig
	hc        *http.Client
	api       v1.API
	metrics   *clientMetrics
	bufs      sync.Pool // *writeBuffers
}

type writeBuffers struct {
	raw, block []byte
}

// ClientOptions are the optional parts of NewClient.
type ClientOptions struct {
	// Remote carries authentication, TLS and extra query parameters; nil for
	// an unauthenticated plain-HTTP store.
	Remote *RemoteConfig
	// BearerToken authenticates to an opspilot server (its API tokens).
	BearerToken string
	// Registerer receives the client's self-metrics; nil means none.
	Registerer prometheus.Registerer
	// Transport replaces the network (Embedded.Transport, or a client's
	// TLS transport); nil means HTTP. BearerToken is still sent over it.
	Transport http.RoundTripper
}

// NewClient returns a Client for ep.
func NewClient(ep Endpoints, cfg ClientConfig, opts ClientOptions) (*Client, error) {
	if ps := cfg.Validate(); len(ps) > 0 {
		return nil, fmt.Errorf("tsdb client config: %s: %s", ps[0].Field, ps[0].Msg)
	}
	hcfg := commonconfig.DefaultHTTPClientConfig
	var extra map[string]string
	if r := opts.Remote; r != nil {
		if r.BearerToken != "" {
			hcfg.BearerToken = commonconfig.Secret(r.BearerToken)
		}
		hcfg.BearerTokenFile = r.BearerTokenFile
		if r.BasicAuth.Username != "" {
			hcfg.BasicAuth = &commonconfig.BasicAuth{
				Username:     r.BasicAuth.Username,
				Password:     commonconfig.Secret(r.BasicAuth.Password),
				PasswordFile: r.BasicAuth.PasswordFile,
			}
		}
		hcfg.TLSConfig = commonconfig.TLSConfig{
			CAFile:             r.TLS.CAFile,
			CertFile:           r.TLS.CertFile,
			KeyFile:            r.TLS.KeyFile,
			ServerName:         r.TLS.ServerName,
			InsecureSkipVerify: r.TLS.InsecureSkipVerify,
		}
		extra = r.ExtraQueryParams
	}
	if opts.BearerToken != "" {
		hcfg.BearerToken = commonconfig.Secret(opts.BearerToken)
	}
	bearer := string(hcfg.BearerToken) // Validate moves it into hcfg.Authorization
	if err := hcfg.Validate(); err != nil {
		return nil, fmt.Errorf("tsdb client: %w", err)
	}
	var rt http.RoundTripper
	if opts.Transport != nil {
		// The transport replaces the network, not the authentication: the
		// CLI passes its TLS transport for the server's CA and still needs
		// its API token sent.
		rt = opts.Transport
		if bearer != "" {
			rt = commonconfig.NewAuthorizationCredentialsRoundTripper("Bearer", commonconfig.NewInlineSecret(bearer), rt)
		}
	} else {
		var err error
		rt, err = commonconfig.NewRoundTripperFromConfig(hcfg, "opspilot-tsdb")
		if err != nil {
			return nil, fmt.Errorf("tsdb client: %w", err)
		}
	}
	rt = userAgent{next: rt}
	hc := &http.Client{Transport: rt, Timeout: cfg.Timeout}
	queryHC := &http.Client{Transport: extraParams{next: rt, params: extra}, Timeout: cfg.Timeout}
	apiClient, err := promapi.NewClient(promapi.Config{Address: ep.QueryURL, Client: queryHC})
	if err != nil {
		return nil, fmt.Errorf("tsdb client: query URL %q: %w", ep.QueryURL, err)
	}
	c := &Client{
		endpoints: ep,
		cfg:       cfg,
		hc:        hc,
		api:       v1.NewAPI(apiClient),
		metrics:   newClientMetrics(opts.Registerer),
	}
	c.bufs.New = func() any { return new(writeBuffers) }
	return c, nil
}

// Endpoints returns the URLs the client talks to.
func (c *Client) Endpoints() Endpoints { return c.endpoints }

// Write sends series by Prometheus remote write, split into requests of at
// most max_samples_per_request samples, write_concurrency of them in flight.
// A request that fails with a network error, 429 or 5xx is retried with
// exponential backoff until retry_max_elapsed; a 4xx is not retried. Write
// returns an error if any request finally failed (the others were stored).
func (c *Client) Write(ctx context.Context, series []TimeSeries) error {
	batches := splitBatches(series, c.cfg.MaxSamplesPerRequest)
	if len(batches) == 0 {
		return nil
	}
	if len(batches) == 1 || c.cfg.WriteConcurrency == 1 {
		for _, b := range batches {
			if err := c.writeBatch(ctx, b); err != nil {
				return err
			}
		}
		return nil
	}
	work := make(chan []TimeSeries)
	errs := make(chan error, len(batches))
	var wg sync.WaitGroup
	for range min(c.cfg.WriteConcurrency, len(batches)) {
		wg.Go(func() {
			for b := range work {
				errs <- c.writeBatch(ctx, b)
			}
		})
	}
	for _, b := range batches {
		work <- b
	}
	close(work)
	wg.Wait()
	close(errs)
	var failed int
	var first error
	for err := range errs {
		if err != nil {
			failed++
			if first == nil {
				first = err
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d write requests failed: %w", failed, len(batches), first)
	}
	return nil
}

// splitBatches cuts series into slices holding at most max samples each. A
// series longer than max is split across batches.
func splitBatches(series []TimeSeries, max int) [][]TimeSeries {
	var batches [][]TimeSeries
	var cur []TimeSeries
	n := 0
	for _, ts := range series {
		samples := ts.Samples
		for len(samples) > 0 {
			take := min(len(samples), max-n)
			cur = append(cur, TimeSeries{Labels: ts.Labels, Samples: samples[:take]})
			samples = samples[take:]
			n += take
			if n == max {
				batches = append(batches, cur)
				cur, n = nil, 0
			}
		}
	}
	if len(cur) > 0 {
		batches = append(batches, cur)
	}
	return batches
}

func (c *Client) writeBatch(ctx context.Context, batch []TimeSeries) error {
	buf := c.bufs.Get().(*writeBuffers)
	defer c.bufs.Put(buf)
	buf.block, buf.raw = EncodeWriteRequest(buf.block[:0], buf.raw, batch)
	samples := 0
	for _, ts := range batch {
		samples += len(ts.Samples)
	}
	return c.WriteEncoded(ctx, buf.block, samples)
}

// WriteEncoded sends one remote-write request body that is already a
// snappy-compressed protobuf WriteRequest (as the agent's disk queue holds
// them), with the same retries as Write. samples is only for the metrics.
func (c *Client) WriteEncoded(ctx context.Context, body []byte, samples int) error {
	start := time.Now()
	err := c.retry(ctx, "remote write to "+c.endpoints.WriteURL, func() error {
		return c.postWrite(ctx, body)
	})
	c.metrics.writeDuration.Observe(time.Since(start).Seconds())
	if err != nil {
		c.metrics.writeRequests.WithLabelValues("error").Inc()
		c.metrics.failedSamples.Add(float64(samples))
		return err
	}
	c.metrics.writeRequests.WithLabelValues("ok").Inc()
	c.metrics.writtenSamples.Add(float64(samples))
	return nil
}

// EncodeWriteRequest appends series as a snappy-compressed protobuf
// WriteRequest to dst, using scratch for the uncompressed bytes; it returns
// both buffers for reuse. Compression is s2's Snappy-compatible encoder:
// the same bytes on the wire as golang/snappy in about half the CPU time.
func EncodeWriteRequest(dst, scratch []byte, series []TimeSeries) ([]byte, []byte) {
	wr := prompb.WriteRequest{Timeseries: series}
	scratch = wr.MarshalProtobuf(scratch[:0])
	n := s2.MaxEncodedLen(len(scratch))
	if cap(dst)-len(dst) < n {
		grown := make([]byte, len(dst), len(dst)+n)
		copy(grown, dst)
		dst = grown
	}
	enc := s2.EncodeSnappy(dst[len(dst):len(dst)+n], scratch)
	return dst[:len(dst)+len(enc)], scratch
}

// IsRejected reports whether the store refused the request's content (400,
// 413, 422): resending the same bytes cannot succeed. Auth failures (401,
// 403) are not rejections: they heal when the credentials are fixed.
func IsRejected(err error) bool {
	var he *HTTPError
	if !errors.As(err, &he) {
		return false
	}
	switch he.Status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity:
		return true
	}
	return false
}

func (c *Client) postWrite(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoints.WriteURL, bytes.NewReader(body))
	if err != nil {
		return backoff.Permanent(err)
	}
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := c.hc.Do(req)
	if err != nil {
		if isCertificateError(err) {
			return backoff.Permanent(fmt.Errorf("%w (check tsdb.remote.tls: ca_file, server_name)", err))
		}
		return err // other network errors are retried
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	err = &HTTPError{URL: c.endpoints.WriteURL, Status: resp.StatusCode, Body: strings.TrimSpace(string(msg))}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		if s, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && s > 0 {
			return errors.Join(err, backoff.RetryAfter(s))
		}
		return err
	case resp.StatusCode >= 500:
		return err
	default:
		return backoff.Permanent(err)
	}
}

// HTTPError is a non-2xx answer from the store.
type HTTPError struct {
	URL    string
	Status int
	Body   string
}

func (e *HTTPError) Error() string {
	hint := ""
	switch e.Status {
	case http.StatusUnauthorized, http.StatusForbidden:
		hint = " (check the bearer token or basic auth for this store)"
	case http.StatusNotFound:
		hint = " (check the URL: is this a Prometheus remote-write endpoint?)"
	}
	if e.Body == "" {
		return fmt.Sprintf("%s answered %d %s%s", e.URL, e.Status, http.StatusText(e.Status), hint)
	}
	return fmt.Sprintf("%s answered %d %s: %s%s", e.URL, e.Status, http.StatusText(e.Status), e.Body, hint)
}

// retry runs op with exponential backoff until it succeeds, fails
// permanently, or the retry budget or ctx ends; the error names what was
// attempted, how often, and the last failure.
func (c *Client) retry(ctx context.Context, what string, op func() error) error {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = c.cfg.RetryMinBackoff
	b.MaxInterval = c.cfg.RetryMaxBackoff
	tries := 0
	var last error
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		tries++
		if tries > 1 {
			c.metrics.retries.Inc()
		}
		last = op()
		return struct{}{}, last
	}, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(c.cfg.RetryMaxElapsed))
	if err == nil {
		return nil
	}
	if last == nil {
		last = err
	}
	var pe *backoff.PermanentError
	if errors.As(last, &pe) {
		// Retrying cannot fix this one; earlier attempts may have met
		// transient errors.
		return fmt.Errorf("%s: %w", what, pe.Unwrap())
	}
	if tries == 1 {
		return fmt.Errorf("%s: %w", what, last)
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%s: gave up after %d attempts (%v): %w", what, tries, ctxErr, last)
	}
	return fmt.Errorf("%s: gave up after %d attempts in %s: %w", what, tries, c.cfg.RetryMaxElapsed, last)
}

// Query evaluates an instant query at t (the zero time means now).
func (c *Client) Query(ctx context.Context, expr string, t time.Time) (Result, error) {
	if t.IsZero() {
		t = time.Now()
	}
	return c.query(ctx, "query", expr, func() (model.Value, v1.Warnings, v1.Infos, error) {
		return c.api.Query(ctx, expr, t)
	})
}

// QueryRange evaluates a range query.
func (c *Client) QueryRange(ctx context.Context, expr string, r Range) (Result, error) {
	if r.Step <= 0 {
		return Result{}, fmt.Errorf("query_range %q: step must be positive, got %s", expr, r.Step)
	}
	return c.query(ctx, "query_range", expr, func() (model.Value, v1.Warnings, v1.Infos, error) {
		return c.api.QueryRange(ctx, expr, r)
	})
}

func (c *Client) query(ctx context.Context, endpoint, expr string, call func() (model.Value, v1.Warnings, v1.Infos, error)) (Result, error) {
	var res Result
	start := time.Now()
	err := c.retry(ctx, fmt.Sprintf("%s %q at %s", endpoint, expr, c.endpoints.QueryURL), func() error {
		v, w, infos, err := call()
		res = Result{Value: v, Warnings: w, Infos: infos}
		return classifyAPIError(err)
	})
	c.observeQuery(endpoint, start, err)
	return res, err
}

// Series returns the label sets of series matching any of matchers in [start, end].
func (c *Client) Series(ctx context.Context, matchers []string, start, end time.Time) ([]model.LabelSet, error) {
	var out []model.LabelSet
	t0 := time.Now()
	err := c.retry(ctx, fmt.Sprintf("series %q at %s", matchers, c.endpoints.QueryURL), func() error {
		var err error
		out, _, _, err = c.api.Series(ctx, matchers, start, end)
		return classifyAPIError(err)
	})
	c.observeQuery("series", t0, err)
	return out, err
}

// LabelValues returns the values of label among series matching matchers
// (all series when empty) in [start, end].
func (c *Client) LabelValues(ctx context.Context, label string, matchers []string, start, end time.Time) ([]string, error) {
	var vals model.LabelValues
	t0 := time.Now()
	err := c.retry(ctx, fmt.Sprintf("label values of %q at %s", label, c.endpoints.QueryURL), func() error {
		var err error
		vals, _, _, err = c.api.LabelValues(ctx, label, matchers, start, end)
		return classifyAPIError(err)
	})
	c.observeQuery("label_values", t0, err)
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = string(v)
	}
	return out, err
}

func (c *Client) observeQuery(endpoint string, start time.Time, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	c.metrics.queryRequests.WithLabelValues(endpoint, result).Inc()
	c.metrics.queryDuration.WithLabelValues(endpoint).Observe(time.Since(start).Seconds())
}

// classifyAPIError marks errors that another attempt cannot fix (a bad
// query, a refused token) as permanent; server errors, timeouts and network
// failures stay retryable.
func classifyAPIError(err error) error {
	if err == nil {
		return nil
	}
	var apiErr *v1.Error
	if errors.As(err, &apiErr) {
		err = withDetail(err, apiErr)
		switch apiErr.Type {
		case v1.ErrServer, v1.ErrTimeout:
			if strings.Contains(apiErr.Msg, "401") || strings.Contains(apiErr.Msg, "403") {
				return backoff.Permanent(err)
			}
			return err
		case v1.ErrClient:
			// client_golang reports 4xx without a Prometheus error body as
			// ErrClient; a 429 is worth retrying.
			if strings.Contains(apiErr.Msg, "429") {
				return err
			}
			return backoff.Permanent(err)
		default:
			return backoff.Permanent(err)
		}
	}
	if isCertificateError(err) {
		return backoff.Permanent(err)
	}
	var netErr net.Error
	var urlErr *url.Error
	if errors.As(err, &netErr) || errors.As(err, &urlErr) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return backoff.Permanent(err)
	}
	return err
}

type userAgent struct{ next http.RoundTripper }

func (u userAgent) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("User-Agent", "opspilot/"+version.Version)
	return u.next.RoundTrip(r)
}

// extraParams adds fixed query parameters (e.g. VictoriaMetrics'
// latency_offset) to every query request.
type extraParams struct {
	next   http.RoundTripper
	params map[string]string
}

// queryParamsKey carries per-call query parameters (WithQueryParams).
type queryParamsKey struct{}

// WithQueryParams returns a context whose queries carry params as extra
// query parameters, over the configured ones. The autoscaler asks
// VictoriaMetrics for latency_offset=1ms (its minimum) this way: it decides on the
// newest samples and checks their age itself.
func WithQueryParams(ctx context.Context, params map[string]string) context.Context {
	return context.WithValue(ctx, queryParamsKey{}, params)
}

func (e extraParams) RoundTrip(r *http.Request) (*http.Response, error) {
	if ps, ok := r.Context().Value(queryParamsKey{}).(map[string]string); ok && len(ps) > 0 {
		merged := maps.Clone(e.params)
		if merged == nil {
			merged = map[string]string{}
		}
		maps.Copy(merged, ps)
		e.params = merged
	}
	if len(e.params) == 0 {
		return e.next.RoundTrip(r)
	}
	r = r.Clone(r.Context())
	if r.Method == http.MethodPost && r.Header.Get("Content-Type") == "application/x-www-form-urlencoded" && r.GetBody != nil {
		body, err := r.GetBody()
		if err != nil {
			return nil, err
		}
		raw, err := io.ReadAll(body)
		if err != nil {
			return nil, err
		}
		form, err := url.ParseQuery(string(raw))
		if err != nil {
			return nil, err
		}
		for k, v := range e.params {
			if !form.Has(k) {
				form.Set(k, v)
			}
		}
		enc := form.Encode()
		r.Body = io.NopCloser(strings.NewReader(enc))
		r.ContentLength = int64(len(enc))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(enc)), nil }
		return e.next.RoundTrip(r)
	}
	q := r.URL.Query()
	for k, v := range e.params {
		if !q.Has(k) {
			q.Set(k, v)
		}
	}
	r.URL.RawQuery = q.Encode()
	return e.next.RoundTrip(r)
}

type clientMetrics struct {
	writeRequests  *prometheus.CounterVec
	writtenSamples prometheus.Counter
	failedSamples  prometheus.Counter
	retries        prometheus.Counter
	writeDuration  prometheus.Histogram
	queryRequests  *prometheus.CounterVec
	queryDuration  *prometheus.HistogramVec
}

func newClientMetrics(reg prometheus.Registerer) *clientMetrics {
	m := &clientMetrics{
		writeRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opspilot_tsdb_client_write_requests_total",
			Help: "Remote-write requests sent by the tsdb client, by final result.",
		}, []string{"result"}),
		writtenSamples: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "opspilot_tsdb_client_written_samples_total",
			Help: "Samples the store acknowledged.",
		}),
		failedSamples: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "opspilot_tsdb_client_failed_samples_total",
			Help: "Samples in write requests that finally failed.",
		}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "opspilot_tsdb_client_retries_total",
			Help: "Request attempts after the first (writes and queries).",
		}),
		writeDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "opspilot_tsdb_client_write_duration_seconds",
			Help:    "Time to store one write request, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}),
		queryRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opspilot_tsdb_client_query_requests_total",
			Help: "Query API calls by endpoint and final result.",
		}, []string{"endpoint", "result"}),
		queryDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "opspilot_tsdb_client_query_duration_seconds",
			Help:    "Query API call latency, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}, []string{"endpoint"}),
	}
	if reg != nil {
		m.writeRequests = register(reg, m.writeRequests)
		m.writtenSamples = register(reg, m.writtenSamples)
		m.failedSamples = register(reg, m.failedSamples)
		m.retries = register(reg, m.retries)
		m.writeDuration = register(reg, m.writeDuration)
		m.queryRequests = register(reg, m.queryRequests)
		m.queryDuration = register(reg, m.queryDuration)
	}
	return m
}

// register adds c to reg, or returns the collector already registered under
// the same descriptor, so that several clients can share one registry.
func register[T prometheus.Collector](reg prometheus.Registerer, c T) T {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(T); ok {
				return existing
			}
		}
		panic(fmt.Sprintf("register tsdb client metrics: %v", err))
	}
	return c
}

// isCertificateError reports TLS verification failures, which retrying
// cannot fix.
func isCertificateError(err error) bool {
	var verr *tls.CertificateVerificationError
	var uaErr x509.UnknownAuthorityError
	var hErr x509.HostnameError
	var cErr x509.CertificateInvalidError
	return errors.As(err, &verr) || errors.As(err, &uaErr) || errors.As(err, &hErr) || errors.As(err, &cErr)
}

// withDetail adds the body of an error answer that client_golang keeps in
// Detail (opspilot's and proxies' JSON or text reasons) to err's message.
func withDetail(err error, apiErr *v1.Error) error {
	detail := strings.TrimSpace(apiErr.Detail)
	if detail == "" || strings.Contains(apiErr.Msg, detail) {
		return err
	}
	var body struct {
		Error string `json:"error"`
	}
	if json.Unmarshal([]byte(detail), &body) == nil && body.Error != "" {
		detail = body.Error
	}
	if len(detail) > 512 {
		detail = detail[:512] + "…"
	}
	return fmt.Errorf("%w: %s", err, detail)
}
