package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esutil"
	"github.com/prometheus/client_golang/prometheus"

	"opspilot/collector/logs"
	"opspilot/test/testbin"
)

// BenchmarkLogShip: log lines per second the agent's pipeline tails, parses
// and ships into a real VictoriaLogs, beside go-elasticsearch's BulkIndexer
// sending the same lines as ready-made documents (the baseline: no tailing,
// no parsing, no position bookkeeping), same store, same run.
//
// Run: go test ./bench -run '^$' -bench LogShip -benchtime 3x
func BenchmarkLogShip(b *testing.B) {
	bin := testbin.Tool(b, "victoria-logs")
	dir := b.TempDir()
	vl, err := logs.StartVictoriaLogs(context.Background(), bin, filepath.Join(dir, "vl"), testbin.FreeAddr(b), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer vl.Stop()
	const n = 20000
	line := func(i int) string {
		return fmt.Sprintf(`{"level":"info","msg":"order %d accepted","shop":"s%d","latency_ms":%d}`, i, i%50, i%300)
	}

	b.Run("bulk-indexer", func(b *testing.B) {
		es, err := elasticsearch.NewClient(elasticsearch.Config{Addresses: []string{vl.InsertURL()}})
		if err != nil {
			b.Fatal(err)
		}
		for round := 0; b.Loop(); round++ {
			bi, err := esutil.NewBulkIndexer(esutil.BulkIndexerConfig{Client: es, NumWorkers: 1, FlushInterval: time.Second})
			if err != nil {
				b.Fatal(err)
			}
			for i := range n {
				doc, _ := json.Marshal(map[string]any{"_msg": fmt.Sprintf("order %d accepted", i), "level": "info", "service": "bench-raw", "round": round, "_time": time.Now().Format(time.RFC3339Nano)})
				if err := bi.Add(context.Background(), esutil.BulkIndexerItem{Action: "create", Index: "opspilot-logs", Body: bytes.NewReader(doc)}); err != nil {
					b.Fatal(err)
				}
			}
			if err := bi.Close(context.Background()); err != nil {
				b.Fatal(err)
			}
			if st := bi.Stats(); st.NumFailed > 0 {
				b.Fatalf("%d documents failed", st.NumFailed)
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
	})

	b.Run("agent-pipeline", func(b *testing.B) {
		for round := 0; b.Loop(); round++ {
			b.StopTimer()
			rdir := b.TempDir() // fresh file and positions every round
			path := filepath.Join(rdir, "app.log")
			var sb strings.Builder
			for i := range n {
				sb.WriteString(line(i))
				sb.WriteByte('\n')
			}
			if err := os.WriteFile(path, []byte(sb.String()), 0o600); err != nil {
				b.Fatal(err)
			}
			reg := prometheus.NewRegistry()
			p, err := logs.New(logs.Config{
				Sources:  []logs.Source{{Path: path, Service: "bench", Instance: fmt.Sprint(round)}},
				StateDir: filepath.Join(rdir, "state"), URL: vl.InsertURL(), Datacenter: "dc", Node: "n",
			}, reg, slog.New(slog.DiscardHandler))
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			b.StartTimer()
			go func() { done <- p.Run(ctx) }()
			shipped := func() float64 {
				mfs, _ := reg.Gather()
				for _, mf := range mfs {
					if mf.GetName() == "opspilot_agent_log_lines_shipped_total" {
						return mf.GetMetric()[0].GetCounter().GetValue()
					}
				}
				return 0
			}
			deadline := time.Now().Add(60 * time.Second)
			for shipped() < n {
				if time.Now().After(deadline) {
					b.Fatalf("only %v of %d lines shipped in 60 s", shipped(), n)
				}
				time.Sleep(5 * time.Millisecond)
			}
			b.StopTimer()
			cancel()
			<-done
			b.StartTimer()
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
	})
}
