package scrape

import (
	"bytes"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/VictoriaMetrics/lib/prompb"
	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"opspilot/config"
	"opspilot/tsdb"
)

func remoteWriteBody(tss []tsdb.TimeSeries) []byte {
	wr := prompb.WriteRequest{Timeseries: tss}
	return snappy.Encode(nil, wr.MarshalProtobuf(nil))
}

func post(t *testing.T, url, contentType string, body []byte) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// pushServer serves a PushHandler with the given metric relabel YAML.
func pushServer(t *testing.T, relabelYAML string, maxBody int64, sink Sink) (*httptest.Server, *PushHandler) {
	t.Helper()
	var cfg Config
	if err := config.Parse("push.yaml", []byte(relabelYAML), &cfg); err != nil {
		t.Fatal(err)
	}
	h, err := NewPushHandler(sink, cfg.MetricRelabelConfigs, maxBody, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, h
}

const pushRelabel = `
metric_relabel_configs:
  - source_labels: [__name__]
    regex: debug_.*
    action: drop
  - source_labels: [shop]
    target_label: store
  - regex: shop
    action: labeldrop
`

func TestPushRemoteWrite(t *testing.T) {
	var rec recorder
	srv, h := pushServer(t, pushRelabel, 0, rec.sink)
	in := []tsdb.TimeSeries{
		{Labels: []tsdb.Label{{Name: "__name__", Value: "orders_total"}, {Name: "shop", Value: "a"}}, Samples: []tsdb.Sample{{Value: 1, Timestamp: 1000}, {Value: 2.5, Timestamp: 2000}}},
		{Labels: []tsdb.Label{{Name: "__name__", Value: "debug_x"}}, Samples: []tsdb.Sample{{Value: 9, Timestamp: 1000}}},
		{Labels: []tsdb.Label{{Name: "__name__", Value: "temp"}, {Name: "room", Value: "b"}}, Samples: []tsdb.Sample{{Value: math.Inf(-1), Timestamp: 3000}}},
	}
	code, _, body := post(t, srv.URL+"/prefix"+RemoteWritePath, "application/x-protobuf", remoteWriteBody(in))
	if code != http.StatusNoContent {
		t.Fatalf("status %d (%s), want 204", code, body)
	}
	want := [][]tsdb.TimeSeries{{
		{Labels: []tsdb.Label{{Name: "__name__", Value: "orders_total"}, {Name: "store", Value: "a"}}, Samples: []tsdb.Sample{{Value: 1, Timestamp: 1000}, {Value: 2.5, Timestamp: 2000}}},
		{Labels: []tsdb.Label{{Name: "__name__", Value: "temp"}, {Name: "room", Value: "b"}}, Samples: []tsdb.Sample{{Value: math.Inf(-1), Timestamp: 3000}}},
	}}
	if got := rec.snapshot(); !reflect.DeepEqual(got, want) {
		t.Errorf("sink got %+v\nwant %+v", got, want)
	}
	if got := testutil.ToFloat64(h.metrics.samples.WithLabelValues("remote_write", "accepted")); got != 3 {
		t.Errorf("accepted samples = %v, want 3", got)
	}
	if got := testutil.ToFloat64(h.metrics.samples.WithLabelValues("remote_write", "dropped")); got != 1 {
		t.Errorf("dropped samples = %v, want 1", got)
	}
}

func TestPushText(t *testing.T) {
	var rec recorder
	srv, h := pushServer(t, pushRelabel, 0, rec.sink)
	h.now = func() time.Time { return time.UnixMilli(5000) }
	text := `# HELP orders_total Orders.
# TYPE orders_total counter
orders_total{shop="a"} 42 1700000000000
debug_y 1
queue_depth 3.5`
	code, _, body := post(t, srv.URL+ImportTextPath, "text/plain", []byte(text))
	if code != http.StatusNoContent {
		t.Fatalf("status %d (%s), want 204", code, body)
	}
	want := [][]tsdb.TimeSeries{{
		{Labels: []tsdb.Label{{Name: "__name__", Value: "orders_total"}, {Name: "store", Value: "a"}}, Samples: []tsdb.Sample{{Value: 42, Timestamp: 1700000000000}}},
		{Labels: []tsdb.Label{{Name: "__name__", Value: "queue_depth"}}, Samples: []tsdb.Sample{{Value: 3.5, Timestamp: 5000}}},
	}}
	if got := rec.snapshot(); !reflect.DeepEqual(got, want) {
		t.Errorf("sink got %+v\nwant %+v", got, want)
	}
}

func TestPushScraperHandler(t *testing.T) {
	var rec recorder
	s, err := New(Config{}, rec.sink, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.PushHandler())
	defer srv.Close()
	if code, _, body := post(t, srv.URL+ImportTextPath, "", []byte("kpi 1\n")); code != http.StatusNoContent {
		t.Fatalf("status %d (%s)", code, body)
	}
	if rec.calls() != 1 {
		t.Errorf("sink calls = %d, want 1", rec.calls())
	}
}

func TestPushMalformed(t *testing.T) {
	var rec recorder
	srv, h := pushServer(t, "", 1024, rec.sink)
	valid := remoteWriteBody([]tsdb.TimeSeries{{Labels: []tsdb.Label{{Name: "__name__", Value: "a"}}, Samples: []tsdb.Sample{{Value: 1, Timestamp: 1}}}})
	tests := []struct {
		name, path, format string
		body               []byte
		code               int
		result, reason     string
	}{
		{"garbage protobuf", RemoteWritePath, "remote_write", snappy.Encode(nil, []byte{0x0a, 0xff, 0xff, 0xff, 0x7f, 1, 2}), 400, "malformed", "not a remote write protobuf"},
		{"bad snappy", RemoteWritePath, "remote_write", []byte("this is not snappy at all"), 400, "malformed", "snappy"},
		{"missing metric name", RemoteWritePath, "remote_write", remoteWriteBody([]tsdb.TimeSeries{{Labels: []tsdb.Label{{Name: "job", Value: "x"}}, Samples: []tsdb.Sample{{Value: 1}}}}), 400, "malformed", "no metric name"},
		{"empty body remote write", RemoteWritePath, "remote_write", nil, 400, "malformed", "empty request body"},
		{"huge body remote write", RemoteWritePath, "remote_write", bytes.Repeat(valid, 200), 413, "too_large", "larger than the limit of 1024 bytes"},
		{"huge decompressed body", RemoteWritePath, "remote_write", snappy.Encode(nil, make([]byte, 4096)), 413, "too_large", "decompressed"},
		{"bad text line", ImportTextPath, "text", []byte("ok 1\nthis is { not valid\n"), 400, "malformed", "cannot parse the Prometheus text format"},
		{"bad text value", ImportTextPath, "text", []byte("metric abc\n"), 400, "malformed", "cannot parse"},
		{"empty body text", ImportTextPath, "text", nil, 400, "malformed", "empty request body"},
		{"huge body text", ImportTextPath, "text", bytes.Repeat([]byte("metric 1\n"), 1000), 413, "too_large", "larger than the limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := testutil.ToFloat64(h.metrics.requests.WithLabelValues(tc.format, tc.result))
			code, _, body := post(t, srv.URL+tc.path, "", tc.body)
			if code != tc.code || !strings.Contains(body, tc.reason) {
				t.Errorf("got %d %q, want %d containing %q", code, body, tc.code, tc.reason)
			}
			if got := testutil.ToFloat64(h.metrics.requests.WithLabelValues(tc.format, tc.result)); got != before+1 {
				t.Errorf("requests{format=%s,result=%s} = %v, want %v", tc.format, tc.result, got, before+1)
			}
		})
	}
	if n := rec.calls(); n != 0 {
		t.Errorf("sink called %d times for malformed requests", n)
	}
	if code, _, _ := post(t, srv.URL+"/metrics", "", []byte("x 1\n")); code != http.StatusNotFound {
		t.Errorf("unknown path: status %d, want 404", code)
	}
	resp, err := http.Get(srv.URL + ImportTextPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: status %d, want 405", resp.StatusCode)
	}
}

func TestPushSinkFailure(t *testing.T) {
	srv, h := pushServer(t, "", 0, func([]tsdb.TimeSeries) error { return errors.New("queue full") })
	for _, tc := range []struct {
		path, format string
		body         []byte
	}{
		{RemoteWritePath, "remote_write", remoteWriteBody([]tsdb.TimeSeries{{Labels: []tsdb.Label{{Name: "__name__", Value: "a"}}, Samples: []tsdb.Sample{{Value: 1, Timestamp: 1}}}})},
		{ImportTextPath, "text", []byte("a 1\n")},
	} {
		code, hdr, body := post(t, srv.URL+tc.path, "", tc.body)
		if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" || !strings.Contains(body, "queue full") {
			t.Errorf("%s: got %d Retry-After=%q %q, want 503 with Retry-After", tc.format, code, hdr.Get("Retry-After"), body)
		}
		if got := testutil.ToFloat64(h.metrics.samples.WithLabelValues(tc.format, "rejected")); got != 1 {
			t.Errorf("%s: rejected samples = %v, want 1", tc.format, got)
		}
		if got := testutil.ToFloat64(h.metrics.requests.WithLabelValues(tc.format, "sink_error")); got != 1 {
			t.Errorf("%s: sink_error requests = %v, want 1", tc.format, got)
		}
	}
}
