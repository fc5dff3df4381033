package scrape

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/VictoriaMetrics/VictoriaMetrics/lib/prompb"
	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/prometheus/prometheus/model/textparse"

	"opspilot/tsdb"
)

// Push paths: the handler serves any path ending in one of these, so it
// can be mounted under a prefix.
const (
	RemoteWritePath = "/api/v1/write"
	ImportTextPath  = "/api/v1/import/prometheus"
)

// PushHandler accepts pushed samples:
//
//   - POST …/api/v1/write: Prometheus remote write 1.0, a snappy-compressed
//     protobuf WriteRequest;
//   - POST …/api/v1/import/prometheus: the Prometheus text format; lines
//     without a timestamp get the time the request arrived.
//
// The metric relabel configs apply to every series. A request is all or
// nothing: 204 once the sink has taken every sample; 400 with the reason
// for a malformed body (nothing is passed on); 413 for a body over the
// limit; 503 with Retry-After when the sink fails, so the pusher retries.
type PushHandler struct {
	sink    Sink
	relabel []*relabel.Config
	maxBody int64
	metrics *pushMetrics
	now     func() time.Time
}

// NewPushHandler returns a PushHandler on its own, for an agent that only
// receives pushes. metricRelabel must be valid (Config.Validate checks it);
// maxBody 0 means 32 MiB; reg nil means no metrics registration.
func NewPushHandler(sink Sink, metricRelabel []*relabel.Config, maxBody int64, reg prometheus.Registerer) (*PushHandler, error) {
	if sink == nil {
		return nil, errors.New("scrape: NewPushHandler needs a sink")
	}
	c := Config{MetricRelabelConfigs: metricRelabel, PushMaxBodyBytes: maxBody}
	if ps := c.Validate(); len(ps) > 0 {
		return nil, problemsError("push config", ps)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	return newPushHandler(sink, prepareRelabel(metricRelabel), maxBody, reg)
}

func newPushHandler(sink Sink, metricRelabel []*relabel.Config, maxBody int64, reg prometheus.Registerer) (*PushHandler, error) {
	if maxBody == 0 {
		maxBody = DefaultPushMaxBodyBytes
	}
	m, err := newPushMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &PushHandler{sink: sink, relabel: metricRelabel, maxBody: maxBody, metrics: m, now: time.Now}, nil
}

// pushError is a request failure with its HTTP status and reason.
type pushError struct {
	code   int
	result string // the result label of the requests counter
	msg    string
}

func (e *pushError) Error() string { return e.msg }

func malformed(format string, args ...any) *pushError {
	return &pushError{code: http.StatusBadRequest, result: "malformed", msg: fmt.Sprintf(format, args...)}
}

func (h *PushHandler) tooLarge(what string) *pushError {
	return &pushError{code: http.StatusRequestEntityTooLarge, result: "too_large",
		msg: fmt.Sprintf("%s is larger than the limit of %d bytes; send smaller batches", what, h.maxBody)}
}

func (h *PushHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var format string
	switch {
	case strings.HasSuffix(r.URL.Path, RemoteWritePath):
		format = "remote_write"
	case strings.HasSuffix(r.URL.Path, ImportTextPath):
		format = "text"
	default:
		http.Error(w, fmt.Sprintf("unknown push path %q: use a path ending in %s or %s", r.URL.Path, RemoteWritePath, ImportTextPath), http.StatusNotFound)
		return
	}
	n, err := h.serve(r, format)
	if err == nil {
		h.metrics.requests.WithLabelValues(format, "accepted").Inc()
		h.metrics.samples.WithLabelValues(format, "accepted").Add(float64(n))
		w.WriteHeader(http.StatusNoContent)
		return
	}
	var pe *pushError
	if !errors.As(err, &pe) {
		pe = &pushError{code: http.StatusInternalServerError, result: "error", msg: err.Error()}
	}
	h.metrics.requests.WithLabelValues(format, pe.result).Inc()
	switch pe.code {
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", http.MethodPost)
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "1")
		h.metrics.samples.WithLabelValues(format, "rejected").Add(float64(n))
	}
	http.Error(w, pe.msg, pe.code)
}

// serve handles one request and returns the number of samples passed to
// the sink (or, with a sink error, offered to it).
func (h *PushHandler) serve(r *http.Request, format string) (int, error) {
	if r.Method != http.MethodPost {
		return 0, &pushError{code: http.StatusMethodNotAllowed, result: "bad_method", msg: "use POST"}
	}
	body, err := h.readBody(r)
	if err != nil {
		return 0, err
	}
	var series []tsdb.TimeSeries
	var dropped int
	if format == "remote_write" {
		series, dropped, err = h.decodeRemoteWrite(r, body)
	} else {
		series, dropped, err = h.decodeText(body)
	}
	if err != nil {
		return 0, err
	}
	if dropped > 0 {
		h.metrics.samples.WithLabelValues(format, "dropped").Add(float64(dropped))
	}
	n := countSamples(series)
	if len(series) == 0 {
		return 0, nil
	}
	if err := h.sink(series); err != nil {
		return n, &pushError{code: http.StatusServiceUnavailable, result: "sink_error",
			msg: fmt.Sprintf("cannot store the samples now, retry later: %v", err)}
	}
	return n, nil
}

func (h *PushHandler) readBody(r *http.Request) ([]byte, error) {
	if r.ContentLength > h.maxBody {
		return nil, h.tooLarge("request body")
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, h.maxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, h.tooLarge("request body")
		}
		return nil, malformed("cannot read the request body: %v", err)
	}
	if len(body) == 0 {
		return nil, malformed("empty request body")
	}
	return body, nil
}

func (h *PushHandler) decodeRemoteWrite(r *http.Request, body []byte) (series []tsdb.TimeSeries, dropped int, err error) {
	if enc := r.Header.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "snappy") {
		return nil, 0, &pushError{code: http.StatusUnsupportedMediaType, result: "unsupported",
			msg: fmt.Sprintf("unsupported Content-Encoding %q: remote write bodies are snappy-compressed", enc)}
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if _, params, err := mime.ParseMediaType(ct); err == nil {
			if p := params["proto"]; p != "" && p != "prometheus.WriteRequest" {
				return nil, 0, &pushError{code: http.StatusUnsupportedMediaType, result: "unsupported",
					msg: fmt.Sprintf("unsupported remote write message %q: only remote write 1.0 (prometheus.WriteRequest) is accepted", p)}
			}
		}
	}
	size, err := snappy.DecodedLen(body)
	if err != nil {
		return nil, 0, malformed("the body is not snappy-compressed: %v", err)
	}
	if int64(size) > h.maxBody {
		return nil, 0, h.tooLarge("decompressed request body")
	}
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		return nil, 0, malformed("the body is not valid snappy: %v", err)
	}
	wru := prompb.GetWriteRequestUnmarshaler()
	defer prompb.PutWriteRequestUnmarshaler(wru)
	wr, err := unmarshalWriteRequest(wru, raw)
	if err != nil {
		return nil, 0, malformed("the body is not a remote write protobuf WriteRequest: %v", err)
	}
	sb := labels.NewScratchBuilder(16)
	lb := labels.NewBuilder(labels.EmptyLabels())
	for i := range wr.Timeseries {
		ts := &wr.Timeseries[i]
		sb.Reset()
		for _, l := range ts.Labels {
			if l.Name == "" {
				return nil, 0, malformed("series %d has a label with an empty name", i)
			}
			if !utf8.ValidString(l.Name) || !utf8.ValidString(l.Value) {
				return nil, 0, malformed("series %d has a label that is not valid UTF-8", i)
			}
			sb.Add(l.Name, l.Value)
		}
		sb.Sort()
		ls := sb.Labels()
		if err := checkSeries(ls); err != nil {
			return nil, 0, malformed("series %d %s: %v", i, ls.String(), err)
		}
		if len(ts.Samples) == 0 {
			continue
		}
		// The unmarshaler reuses its buffers: copy the samples.
		samples := append([]tsdb.Sample(nil), ts.Samples...)
		var ok bool
		if series, ok = h.relabelSeries(series, lb, ls, samples); !ok {
			dropped += len(samples)
		}
	}
	return series, dropped, nil
}

// unmarshalWriteRequest guards against a panic in the decoder: a bad body
// must cost a 400, never the agent.
func unmarshalWriteRequest(wru *prompb.WriteRequestUnmarshaler, raw []byte) (wr *prompb.WriteRequest, err error) {
	defer func() {
		if p := recover(); p != nil {
			wr, err = nil, fmt.Errorf("decoder failed: %v", p)
		}
	}()
	return wru.UnmarshalProtobuf(raw)
}

func (h *PushHandler) decodeText(body []byte) (series []tsdb.TimeSeries, dropped int, err error) {
	defer func() {
		if p := recover(); p != nil {
			series, dropped, err = nil, 0, malformed("cannot parse the Prometheus text format: parser failed: %v", p)
		}
	}()
	if body[len(body)-1] != '\n' {
		body = append(body, '\n')
	}
	now := h.now().UnixMilli()
	p := textparse.NewPromParser(body, labels.NewSymbolTable(), false)
	lb := labels.NewBuilder(labels.EmptyLabels())
	var ls labels.Labels
	for {
		et, err := p.Next()
		if errors.Is(err, io.EOF) {
			return series, dropped, nil
		}
		if err != nil {
			return nil, 0, malformed("cannot parse the Prometheus text format: %v", err)
		}
		if et != textparse.EntrySeries {
			continue // HELP, TYPE, comments
		}
		_, tsp, v := p.Series()
		p.Labels(&ls)
		if err := checkSeries(ls); err != nil {
			return nil, 0, malformed("series %s: %v", ls.String(), err)
		}
		t := now
		if tsp != nil {
			t = *tsp
		}
		var ok bool
		if series, ok = h.relabelSeries(series, lb, ls, []tsdb.Sample{{Value: v, Timestamp: t}}); !ok {
			dropped++
		}
	}
}

// checkSeries rejects label sets no store would accept.
func checkSeries(ls labels.Labels) error {
	if ls.Get(labels.MetricName) == "" {
		return errors.New("has no metric name")
	}
	if name, dup := ls.HasDuplicateLabelNames(); dup {
		return fmt.Errorf("has label %q more than once", name)
	}
	return nil
}

// relabelSeries applies the metric relabel configs to ls and appends the
// result to series; ok is false if relabelling dropped the series.
func (h *PushHandler) relabelSeries(series []tsdb.TimeSeries, lb *labels.Builder, ls labels.Labels, samples []tsdb.Sample) (_ []tsdb.TimeSeries, ok bool) {
	if len(h.relabel) > 0 {
		lb.Reset(ls)
		if !relabel.ProcessBuilder(lb, h.relabel...) {
			return series, false
		}
		ls = lb.Labels()
		if ls.IsEmpty() {
			return series, false
		}
	}
	return append(series, tsdb.TimeSeries{Labels: toTSDBLabels(ls), Samples: samples}), true
}

type pushMetrics struct {
	requests *prometheus.CounterVec
	samples  *prometheus.CounterVec
}

func newPushMetrics(reg prometheus.Registerer) (*pushMetrics, error) {
	m := &pushMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opspilot_agent_push_requests_total",
			Help: "Push requests by format (remote_write, text) and result: accepted, or rejected as malformed, too_large, unsupported, bad_method or sink_error.",
		}, []string{"format", "result"}),
		samples: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "opspilot_agent_push_samples_total",
			Help: "Pushed samples by format and result: accepted by the sink, dropped by metric relabelling, or rejected because the sink failed (the pusher retries them).",
		}, []string{"format", "result"}),
	}
	for _, f := range []string{"remote_write", "text"} {
		for _, r := range []string{"accepted", "malformed", "too_large", "sink_error"} {
			m.requests.WithLabelValues(f, r)
		}
		for _, r := range []string{"accepted", "dropped", "rejected"} {
			m.samples.WithLabelValues(f, r)
		}
	}
	for _, c := range []prometheus.Collector{m.requests, m.samples} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register push metrics: %w", err)
		}
	}
	return m, nil
}
