package bench

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/VictoriaMetrics/lib/prompb"
	"github.com/golang/snappy"

	"opspilot/api"
	"opspilot/tsdb"
)

// Ingestion benchmark: the same data written into the same embedded
// VictoriaMetrics two ways, in the same process and run:
//
//   - vm-encode: the baseline, VictoriaMetrics' own remote-write path as
//     vmagent drives it: each request encoded in the loop with
//     VictoriaMetrics' prompb marshaller + golang/snappy and POSTed straight
//     to VictoriaMetrics' remote-write handler, 2 requests in flight.
//   - raw: the wire-only ceiling: the same bodies pre-encoded outside the
//     timer, POSTed the same way. No sender can reach it; it shows what the
//     encoding costs on a CPU that ingestion already saturates.
//   - client: opspilot's tsdb.Client.Write (batching, encoding, retries,
//     metrics, 2 requests in flight) through opspilot's HTTP server
//     (auth middleware, instrumentation) in local mode.
//
// Run: go test ./bench -run '^$' -bench Ingest -benchtime 5x -count 3

const (
	benchSeries           = 10_000
	benchSamplesPerSeries = 100
	benchBatch            = 10_000 // samples per request, both paths
	benchConcurrency      = 2
)

var (
	store      *tsdb.Embedded
	rawURL     string // VictoriaMetrics' handler alone
	opspilotSv string // opspilot's API server in front of it
)

func TestMain(m *testing.M) {
	flag.Parse()
	if !benchmarking() {
		// Plain `go test ./...` only compiles this package.
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "opspilot-bench-")
	if err != nil {
		panic(err)
	}
	cfg := tsdb.DefaultConfig().Embedded
	cfg.DataDir = dir
	cfg.LogLevel = "error"
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err = tsdb.StartEmbedded(cfg, log)
	if err != nil {
		panic(err)
	}
	rawURL = serve(store.Handler())

	acfg := api.DefaultConfig()
	acfg.HTTPAddr = "127.0.0.1:0"
	acfg.LocalMode = true
	srv, err := api.New(acfg, api.Options{TSDB: store.Handler(), Log: log})
	if err != nil {
		panic(err)
	}
	if err := srv.Listen(); err != nil {
		panic(err)
	}
	srv.SetReady(true)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _ = srv.Serve(ctx) }()
	opspilotSv = srv.URL()

	code := m.Run()
	cancel()
	store.Stop()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func benchmarking() bool {
	f := flag.Lookup("test.bench")
	return f != nil && f.Value.String() != ""
}

func serve(h http.Handler) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/prometheus/", h)
	go func() { _ = http.Serve(ln, mux) }()
	return "http://" + ln.Addr().String()
}

// dataset is benchSeries series × benchSamplesPerSeries samples, 15 s apart,
// ending now, with the label shape of a container metric.
func dataset() []tsdb.TimeSeries {
	end := time.Now().UnixMilli()
	out := make([]tsdb.TimeSeries, benchSeries)
	for i := range out {
		ts := tsdb.TimeSeries{Labels: []tsdb.Label{
			{Name: "__name__", Value: "bench_container_cpu_usage_seconds_total"},
			{Name: "datacenter", Value: fmt.Sprintf("dc%d", i%3)},
			{Name: "node", Value: fmt.Sprintf("node-%04d", i%1200)},
			{Name: "service", Value: fmt.Sprintf("svc-%03d", i%250)},
			{Name: "instance", Value: fmt.Sprintf("svc-%03d-%05d", i%250, i)},
		}}
		ts.Samples = make([]tsdb.Sample, benchSamplesPerSeries)
		for j := range ts.Samples {
			ts.Samples[j] = tsdb.Sample{
				Timestamp: end - int64(benchSamplesPerSeries-1-j)*15_000,
				Value:     float64(i*benchSamplesPerSeries + j),
			}
		}
		out[i] = ts
	}
	return out
}

func BenchmarkIngest(b *testing.B) {
	if store == nil {
		b.Skip("run with -bench so that TestMain starts the embedded store")
	}
	data := dataset()
	total := benchSeries * benchSamplesPerSeries
	// Register the series once, untimed, so that neither path pays for
	// creating them: both then measure steady-state ingestion.
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchConcurrency}}
	postAll(b, hc, rawURL+"/prometheus/api/v1/write", encodeRaw(data))

	b.Run("raw", func(b *testing.B) {
		bodies := encodeRaw(data)
		b.ResetTimer()
		for b.Loop() {
			postAll(b, hc, rawURL+"/prometheus/api/v1/write", bodies)
		}
		b.ReportMetric(float64(total)*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
	})

	b.Run("vm-encode", func(b *testing.B) {
		batches := splitRaw(data)
		b.ResetTimer()
		for b.Loop() {
			postEncoded(b, hc, rawURL+"/prometheus/api/v1/write", batches)
		}
		b.ReportMetric(float64(total)*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
	})

	b.Run("client", func(b *testing.B) {
		cfg := tsdb.DefaultClientConfig()
		cfg.MaxSamplesPerRequest = benchBatch
		cfg.WriteConcurrency = benchConcurrency
		c, err := tsdb.NewClient(tsdb.LocalEndpoints(opspilotSv), cfg, tsdb.ClientOptions{})
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for b.Loop() {
			if err := c.Write(context.Background(), data); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(total)*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
	})
}

// splitRaw cuts data into benchBatch-sample requests the way a
// remote-write sender would.
func splitRaw(data []tsdb.TimeSeries) [][]prompb.TimeSeries {
	var batches [][]prompb.TimeSeries
	var cur []prompb.TimeSeries
	n := 0
	for _, ts := range data {
		samples := ts.Samples
		for len(samples) > 0 {
			take := min(len(samples), benchBatch-n)
			cur = append(cur, prompb.TimeSeries{Labels: ts.Labels, Samples: samples[:take]})
			samples, n = samples[take:], n+take
			if n == benchBatch {
				batches, cur, n = append(batches, cur), nil, 0
			}
		}
	}
	if n > 0 {
		batches = append(batches, cur)
	}
	return batches
}

// encodeBatch is VictoriaMetrics' own encoding of one request.
func encodeBatch(wr *prompb.WriteRequest, batch []prompb.TimeSeries, buf []byte) ([]byte, []byte) {
	wr.Timeseries = batch
	buf = wr.MarshalProtobuf(buf[:0])
	wr.Timeseries = nil
	return buf, snappy.Encode(nil, buf)
}

// encodeRaw pre-encodes every request.
func encodeRaw(data []tsdb.TimeSeries) [][]byte {
	var bodies [][]byte
	var wr prompb.WriteRequest
	var buf []byte
	for _, batch := range splitRaw(data) {
		var body []byte
		buf, body = encodeBatch(&wr, batch, buf)
		bodies = append(bodies, body)
	}
	return bodies
}

// postEncoded encodes and posts batches, benchConcurrency in flight, each
// worker reusing its marshal buffer as vmagent does.
func postEncoded(b *testing.B, hc *http.Client, url string, batches [][]prompb.TimeSeries) {
	work := make(chan []prompb.TimeSeries)
	var wg sync.WaitGroup
	for range benchConcurrency {
		wg.Go(func() {
			var wr prompb.WriteRequest
			var buf []byte
			for batch := range work {
				var body []byte
				buf, body = encodeBatch(&wr, batch, buf)
				post(b, hc, url, body)
			}
		})
	}
	for _, batch := range batches {
		work <- batch
	}
	close(work)
	wg.Wait()
}

func postAll(b *testing.B, hc *http.Client, url string, bodies [][]byte) {
	work := make(chan []byte)
	var wg sync.WaitGroup
	for range benchConcurrency {
		wg.Go(func() {
			for body := range work {
				post(b, hc, url, body)
			}
		})
	}
	for _, body := range bodies {
		work <- body
	}
	close(work)
	wg.Wait()
}

func post(b *testing.B, hc *http.Client, url string, body []byte) {
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	resp, err := hc.Do(req)
	if err != nil {
		b.Error(err)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b.Errorf("write: %s", resp.Status)
	}
}

// BenchmarkIngestPaired runs the three paths back to back inside every
// iteration, rotating which goes first, and reports the median rate of each
// and the medians of the per-iteration ratios: VictoriaMetrics' background
// merges and the shared machine's noise hit all paths alike, and the median
// ignores the iterations a merge happened to land in.
//
// Run: go test ./bench -run '^$' -bench IngestPaired -benchtime 30x -count 3
func BenchmarkIngestPaired(b *testing.B) {
	if store == nil {
		b.Skip("run with -bench so that TestMain starts the embedded store")
	}
	data := dataset()
	total := float64(benchSeries * benchSamplesPerSeries)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchConcurrency}}
	bodies := encodeRaw(data)
	batches := splitRaw(data)
	postAll(b, hc, rawURL+"/prometheus/api/v1/write", bodies) // register the series, untimed
	cfg := tsdb.DefaultClientConfig()
	cfg.MaxSamplesPerRequest = benchBatch
	cfg.WriteConcurrency = benchConcurrency
	c, err := tsdb.NewClient(tsdb.LocalEndpoints(opspilotSv), cfg, tsdb.ClientOptions{})
	if err != nil {
		b.Fatal(err)
	}
	timed := func(f func()) float64 {
		t0 := time.Now()
		f()
		return time.Since(t0).Seconds()
	}
	paths := []func() float64{
		func() float64 { return timed(func() { postAll(b, hc, rawURL+"/prometheus/api/v1/write", bodies) }) },
		func() float64 {
			return timed(func() { postEncoded(b, hc, rawURL+"/prometheus/api/v1/write", batches) })
		},
		func() float64 {
			return timed(func() {
				if err := c.Write(context.Background(), data); err != nil {
					b.Fatal(err)
				}
			})
		},
	}
	var rates [3][]float64
	var vsVM, vsRaw []float64
	i := 0
	for b.Loop() {
		var secs [3]float64
		for k := range paths {
			p := (i + k) % len(paths)
			secs[p] = paths[p]()
		}
		i++
		for p := range secs {
			rates[p] = append(rates[p], total/secs[p])
		}
		vsVM = append(vsVM, secs[1]/secs[2])
		vsRaw = append(vsRaw, secs[0]/secs[2])
	}
	b.ReportMetric(median(rates[0]), "raw-samples/s")
	b.ReportMetric(median(rates[1]), "vm-encode-samples/s")
	b.ReportMetric(median(rates[2]), "client-samples/s")
	b.ReportMetric(median(vsVM), "client/vm-encode")
	b.ReportMetric(median(vsRaw), "client/raw")
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
