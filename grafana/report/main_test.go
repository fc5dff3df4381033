package report

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"testing"
	"time"

	"opspilot/tsdb"
)

// The tests read and write the real embedded VictoriaMetrics (a
// process-wide singleton): TestMain starts it once, in-process.
var (
	store  *tsdb.Embedded
	client *tsdb.Client
)

func TestMain(m *testing.M) {
	flag.Parse() // before StartEmbedded marks the flag set parsed
	dir, err := os.MkdirTemp("", "opspilot-report-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cfg := tsdb.DefaultConfig().Embedded
	cfg.DataDir, cfg.MemoryAllowedPercent, cfg.LogLevel = dir, 5, "error"
	store, err = tsdb.StartEmbedded(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "start embedded tsdb:", err)
		os.Exit(1)
	}
	ccfg := tsdb.DefaultClientConfig()
	ccfg.RetryMaxElapsed = 5 * time.Second
	client, err = tsdb.NewClient(tsdb.InProcessEndpoints(), ccfg, tsdb.ClientOptions{Transport: store.Transport()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	store.Stop()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// gen writes series sampled every step over [start, end] and makes them
// searchable at once.
type gen struct {
	series []tsdb.TimeSeries
}

func (g *gen) add(labels map[string]string, start, end time.Time, step time.Duration, f func(t time.Time) float64) {
	var ls []tsdb.Label
	for k, v := range labels {
		ls = append(ls, tsdb.Label{Name: k, Value: v})
	}
	sort.Slice(ls, func(i, j int) bool { return ls[i].Name < ls[j].Name })
	ts := tsdb.TimeSeries{Labels: ls}
	for t := start; !t.After(end); t = t.Add(step) {
		ts.Samples = append(ts.Samples, tsdb.Sample{Timestamp: t.UnixMilli(), Value: f(t)})
	}
	g.series = append(g.series, ts)
}

func (g *gen) write(t *testing.T) {
	t.Helper()
	if err := client.Write(context.Background(), g.series); err != nil {
		t.Fatal(err)
	}
	store.Flush()
	// Brand-new series become searchable within the store's refresh of
	// its current-hour set; wait until the last one answers.
	last := g.series[len(g.series)-1]
	sel := "{"
	for i, l := range last.Labels {
		if i > 0 {
			sel += ","
		}
		sel += fmt.Sprintf("%s=%q", l.Name, l.Value)
	}
	sel += "}"
	at := time.UnixMilli(last.Samples[len(last.Samples)-1].Timestamp)
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := client.Query(context.Background(), "count(last_over_time("+sel+"[1h]))", at)
		if err == nil && res.Value.String() != "" {
			if ss, _ := queryInstant(context.Background(), client, "count(last_over_time("+sel+"[1h]))", at); len(ss) > 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("series %s not searchable after 30s (err %v)", sel, err)
		}
		time.Sleep(200 * time.Millisecond)
		store.Flush()
	}
}
