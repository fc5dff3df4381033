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
//   - raw: request bodies pre-encoded outside the timer (VictoriaMetrics'
//     prompb marshaller + snappy) and POSTed straight to VictoriaMetrics'
//     own remote-write handler, 2 requests in flight: the baseline.
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

// encodeRaw cuts data into benchBatch-sample requests the way a
// remote-write sender would, with VictoriaMetrics' own marshaller.
func encodeRaw(data []tsdb.TimeSeries) [][]byte {
	var bodies [][]byte
	var wr prompb.WriteRequest
	n := 0
	flush := func() {
		raw := wr.MarshalProtobuf(nil)
		bodies = append(bodies, snappy.Encode(nil, raw))
		wr.Timeseries, n = nil, 0
	}
	for _, ts := range data {
		samples := ts.Samples
		for len(samples) > 0 {
			take := min(len(samples), benchBatch-n)
			wr.Timeseries = append(wr.Timeseries, prompb.TimeSeries{Labels: ts.Labels, Samples: samples[:take]})
			samples, n = samples[take:], n+take
			if n == benchBatch {
				flush()
			}
		}
	}
	if n > 0 {
		flush()
	}
	return bodies
}

func postAll(b *testing.B, hc *http.Client, url string, bodies [][]byte) {
	work := make(chan []byte)
	var wg sync.WaitGroup
	for range benchConcurrency {
		wg.Go(func() {
			for body := range work {
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
				req.Header.Set("Content-Encoding", "snappy")
				req.Header.Set("Content-Type", "application/x-protobuf")
				resp, err := hc.Do(req)
				if err != nil {
					b.Error(err)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode/100 != 2 {
					b.Errorf("raw write: %s", resp.Status)
				}
			}
		})
	}
	for _, body := range bodies {
		work <- body
	}
	close(work)
	wg.Wait()
}

// BenchmarkIngestPaired alternates the two paths inside every iteration and
// reports the medians of their rates and of the per-iteration ratio
// client/raw: VictoriaMetrics' background merges and the shared machine's
// noise hit both paths alike, and the median ignores the iterations a merge
// happened to land in.
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
	postAll(b, hc, rawURL+"/prometheus/api/v1/write", bodies) // register the series, untimed
	cfg := tsdb.DefaultClientConfig()
	cfg.MaxSamplesPerRequest = benchBatch
	cfg.WriteConcurrency = benchConcurrency
	c, err := tsdb.NewClient(tsdb.LocalEndpoints(opspilotSv), cfg, tsdb.ClientOptions{})
	if err != nil {
		b.Fatal(err)
	}
	var rawRates, clientRates, ratios []float64
	raw := func() float64 {
		t0 := time.Now()
		postAll(b, hc, rawURL+"/prometheus/api/v1/write", bodies)
		return time.Since(t0).Seconds()
	}
	client := func() float64 {
		t0 := time.Now()
		if err := c.Write(context.Background(), data); err != nil {
			b.Fatal(err)
		}
		return time.Since(t0).Seconds()
	}
	i := 0
	for b.Loop() {
		var r, cl float64
		if i%2 == 0 { // alternate which path goes first
			r, cl = raw(), client()
		} else {
			cl, r = client(), raw()
		}
		i++
		rawRates = append(rawRates, total/r)
		clientRates = append(clientRates, total/cl)
		ratios = append(ratios, r/cl)
	}
	b.ReportMetric(median(rawRates), "raw-samples/s")
	b.ReportMetric(median(clientRates), "client-samples/s")
	b.ReportMetric(median(ratios), "client/raw")
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
