package grafana

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"opspilot/grafana/backfill"
	"opspilot/tsdb"
)

// The embedded VictoriaMetrics is process-wide: TestMain starts one for
// every test here and backfills a few days of demo history into it.
var (
	store    *tsdb.Embedded
	client   *tsdb.Client
	history  backfill.Stats
	startErr error
)

const historyDays = 3

func TestMain(m *testing.M) {
	// Parse the test flags before StartEmbedded marks the flag set parsed.
	flag.Parse()
	dir, err := os.MkdirTemp("", "opspilot-grafana-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		if testing.Short() || fuzzing() {
			return m.Run()
		}
		startErr = startStore(dir)
		if store != nil {
			defer store.Stop()
		}
		return m.Run()
	}()
	os.Exit(code)
}

// fuzzing reports a fuzz run (or one of its workers), which needs no store.
func fuzzing() bool {
	f, w := flag.Lookup("test.fuzz"), flag.Lookup("test.fuzzworker")
	return f != nil && f.Value.String() != "" || w != nil && w.Value.String() == "true"
}

func startStore(dir string) error {
	cfg := tsdb.DefaultConfig().Embedded
	cfg.DataDir = dir
	cfg.MemoryAllowedPercent = 5
	cfg.LogLevel = "error"
	var err error
	store, err = tsdb.StartEmbedded(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return fmt.Errorf("start the embedded TSDB: %w", err)
	}
	ccfg := tsdb.DefaultClientConfig()
	ccfg.MaxSamplesPerRequest = 50000
	client, err = tsdb.NewClient(tsdb.InProcessEndpoints(), ccfg, tsdb.ClientOptions{Transport: store.Transport()})
	if err != nil {
		return err
	}
	bcfg := backfill.DefaultConfig()
	bcfg.Days = historyDays
	bcfg.End = time.Now()
	history, err = backfill.Run(context.Background(), bcfg, client, nil)
	if err != nil {
		return fmt.Errorf("backfill: %w", err)
	}
	store.Flush()
	return nil
}

// backfilled returns the client of the store holding the demo history.
func backfilled(t *testing.T) *tsdb.Client {
	t.Helper()
	if testing.Short() || fuzzing() {
		t.Skip("-short or fuzzing: no embedded TSDB started")
	}
	if startErr != nil {
		t.Fatal(startErr)
	}
	return client
}

// BenchmarkBackfill30Days is `opspilot demo backfill --days 30` into the
// embedded TSDB, in process (the CLI adds the HTTP hop):
// go test ./grafana -run '^$' -bench Backfill30 -benchtime 1x
func BenchmarkBackfill30Days(b *testing.B) {
	if store == nil {
		b.Skip("no embedded TSDB (-short or fuzzing)")
	}
	for b.Loop() {
		cfg := backfill.DefaultConfig()
		cfg.End = time.Now()
		cfg.Seed = 7
		st, err := backfill.Run(context.Background(), cfg, client, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(st.Samples), "samples")
		b.ReportMetric(float64(st.Samples)/st.Took.Seconds(), "samples/s")
	}
}
