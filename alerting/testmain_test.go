package alerting

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"opspilot/tsdb"
)

// store is the embedded VictoriaMetrics the evaluator tests run against;
// it is a process-wide singleton, so TestMain starts one for the package.
var store *tsdb.Embedded

func TestMain(m *testing.M) {
	// Parse the test flags before StartEmbedded marks the flag set parsed.
	flag.Parse()
	if fuzzing() {
		shortenMinimization()
	}
	if testing.Short() || fuzzing() {
		// The parser tests and the fuzz workers do not need the store.
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "opspilot-alerting-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cfg := tsdb.DefaultConfig().Embedded
	cfg.DataDir = dir
	cfg.MemoryAllowedPercent = 5
	cfg.LogLevel = "error"
	store, err = tsdb.StartEmbedded(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "start embedded tsdb:", err)
		os.Exit(1)
	}
	code := m.Run()
	store.Stop()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// newStoreClient returns a client of the embedded store, without HTTP.
func newStoreClient(t *testing.T) *tsdb.Client {
	t.Helper()
	if store == nil {
		t.Skip("the embedded TSDB is not started in -short mode")
	}
	c := tsdb.DefaultClientConfig()
	c.RetryMinBackoff = time.Millisecond
	c.RetryMaxBackoff = 10 * time.Millisecond
	c.RetryMaxElapsed = time.Second
	c.Timeout = 10 * time.Second
	cl, err := tsdb.NewClient(tsdb.InProcessEndpoints(), c, tsdb.ClientOptions{Transport: store.Transport()})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// fuzzing reports whether the binary runs a fuzz target (-test.fuzz) or is
// one of its workers.
func fuzzing() bool {
	for _, name := range []string{"test.fuzz", "test.fuzzworker"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" && f.Value.String() != "false" {
			return true
		}
	}
	return false
}

// shortenMinimization sets -test.fuzzminimizetime to 3s unless the command
// line sets it. Minimising a new interesting input runs the target many
// times with the coverage of the whole binary (VictoriaMetrics and
// Prometheus are linked in); with the default 60s a 60s fuzzing run spends
// all its time minimising its first find (measured: 16 executions in 60s
// against 17,000 in 30s with 3s).
func shortenMinimization() {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.fuzzminimizetime" })
	if !set {
		_ = flag.Set("test.fuzzminimizetime", "3s")
	}
}
