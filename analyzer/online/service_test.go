package online

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"opspilot/test/testbin"
	"opspilot/tsdb"
)

// These tests run the real single-node VictoriaMetrics binary as the TSDB.

type vm struct {
	base   string
	client *tsdb.Client
}

func startVM(t *testing.T) vm {
	t.Helper()
	base, _ := testbin.VictoriaMetrics(t)
	rc := tsdb.RemoteConfig{URL: base}
	ep, err := rc.Endpoints()
	if err != nil {
		t.Fatal(err)
	}
	cc := tsdb.DefaultClientConfig()
	cc.RetryMaxElapsed = 2 * time.Second
	c, err := tsdb.NewClient(ep, cc, tsdb.ClientOptions{Remote: &rc})
	if err != nil {
		t.Fatal(err)
	}
	return vm{base: base, client: c}
}

func (v vm) flush() {
	if resp, err := http.Get(v.base + "/internal/force_flush"); err == nil {
		_ = resp.Body.Close()
	}
}

// latencySeries is two hours of a KPI every 10 s ending at end: a 20-minute
// wave with noise, and for billing one spike 20 minutes before the end.
func latencySeries(end time.Time, service string, spikeAt time.Time) tsdb.TimeSeries {
	rng := rand.New(rand.NewPCG(1, uint64(len(service))))
	ts := tsdb.TimeSeries{Labels: []tsdb.Label{{Name: "__name__", Value: "kpi_latency_ms"}, {Name: "service", Value: service}}}
	for t := end.Add(-2 * time.Hour); !t.After(end); t = t.Add(10 * time.Second) {
		v := 100 + 5*math.Sin(2*math.Pi*end.Sub(t).Seconds()/1200) + rng.NormFloat64()
		if !spikeAt.IsZero() && t.Equal(spikeAt) {
			v = 160
		}
		ts.Samples = append(ts.Samples, tsdb.Sample{Timestamp: t.UnixMilli(), Value: v})
	}
	return ts
}

func testConfig(state string) Config {
	cfg := DefaultConfig()
	cfg.Queries = []Query{{Name: "latency", Expr: "kpi_latency_ms"}}
	cfg.MaxCatchUp = 2 * time.Hour
	cfg.StateFile = state
	return cfg
}

// recorder forwards to the real TSDB and keeps what was written.
type recorder struct {
	next Writer
	mu   sync.Mutex
	got  map[string][]tsdb.Sample // by name + labels
}

func (r *recorder) Write(ctx context.Context, series []tsdb.TimeSeries) error {
	if err := r.next.Write(ctx, series); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.got == nil {
		r.got = map[string][]tsdb.Sample{}
	}
	for _, s := range series {
		k := keyOf(s.Labels)
		r.got[k] = append(r.got[k], s.Samples...)
	}
	return nil
}

func queryValue(t *testing.T, v vm, expr string, at time.Time) model.Vector {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		v.flush()
		res, err := v.client.Query(context.Background(), expr, at)
		if err == nil {
			if vec, ok := res.Value.(model.Vector); ok && len(vec) > 0 {
				return vec
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("query %q at %s: no result (err %v)", expr, at, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestOnlineWritesAnomalySeriesForSelectedMetric(t *testing.T) {
	v := startVM(t)
	ctx := context.Background()
	end := time.Now().Truncate(10 * time.Second).Add(-10 * time.Second)
	spike := end.Add(-20 * time.Minute)
	if err := v.client.Write(ctx, []tsdb.TimeSeries{latencySeries(end, "billing", spike), latencySeries(end, "cart", time.Time{})}); err != nil {
		t.Fatal(err)
	}
	queryValue(t, v, `count(kpi_latency_ms)`, end)

	s, err := New(testConfig(""), Options{Querier: v.client, Writer: v.client})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Step(ctx, end.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	// All four series exist with the source labels and `for`.
	for _, name := range []string{MetricScore, MetricExpected, MetricLower, MetricUpper} {
		vec := queryValue(t, v, `count by (service, metric, for) (`+name+`{for="latency"})`, end)
		if len(vec) != 2 {
			t.Fatalf("%s: want series for billing and cart, got %v", name, vec)
		}
		for _, smp := range vec {
			if smp.Metric["metric"] != "kpi_latency_ms" {
				t.Errorf("%s: source name should be kept as label metric, got %v", name, smp.Metric)
			}
		}
	}
	// The spike is the highest score of billing's last 90 minutes and above
	// the alarm level; cart's clean wave never reaches it once warmed up.
	win := `[90m]`
	top := queryValue(t, v, `max_over_time(anomaly_score{service="billing"}`+win+`)`, end)
	if top[0].Value < 0.9 {
		t.Errorf("billing's spike scored %v, want >= 0.9", top[0].Value)
	}
	when := queryValue(t, v, `tmax_over_time(anomaly_score{service="billing"}`+win+`)`, end)
	if got := time.Unix(int64(when[0].Value), 0); got.Sub(spike).Abs() > 10*time.Second {
		t.Errorf("billing's top score at %s, the spike was at %s", got, spike)
	}
	clean := queryValue(t, v, `max_over_time(anomaly_score{service="cart"}`+win+`)`, end)
	if clean[0].Value >= 0.9 {
		t.Errorf("cart's clean wave scored %v, want < 0.9", clean[0].Value)
	}
	// The bounds bracket the expected value.
	band := queryValue(t, v, `anomaly_upper{service="cart"} - anomaly_lower{service="cart"}`, end)
	if band[0].Value <= 0 {
		t.Errorf("upper - lower = %v, want > 0", band[0].Value)
	}
	st := s.Status(map[string]string{"service": "cart"})
	if len(st) != 1 || st[0].Query != "latency" || st[0].Expected == nil {
		t.Fatalf("Status(service=cart) = %+v", st)
	}
}

// A restart from the checkpoint scores the rest of the series exactly as a
// process that never stopped.
func TestOnlineCheckpointRestoreGivesSameScores(t *testing.T) {
	v := startVM(t)
	ctx := context.Background()
	end := time.Now().Truncate(10 * time.Second).Add(-10 * time.Second)
	if err := v.client.Write(ctx, []tsdb.TimeSeries{latencySeries(end, "billing", end.Add(-5*time.Minute))}); err != nil {
		t.Fatal(err)
	}
	queryValue(t, v, `count(kpi_latency_ms)`, end)
	mid := end.Add(-30 * time.Minute)

	// One process, never stopped.
	whole := &recorder{next: v.client}
	a, err := New(testConfig(""), Options{Querier: v.client, Writer: whole})
	if err != nil {
		t.Fatal(err)
	}
	for _, at := range []time.Time{mid, end} {
		if err := a.Step(ctx, at.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
	}

	// Another: stops after mid, restarts from its checkpoint.
	state := filepath.Join(t.TempDir(), "analyzer", "models.ckpt")
	split := &recorder{next: v.client}
	b, err := New(testConfig(state), Options{Querier: v.client, Writer: split})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Step(ctx, mid.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := b.SaveCheckpoint(); err != nil {
		t.Fatal(err)
	}
	c, err := New(testConfig(state), Options{Querier: v.client, Writer: split})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(c.Status(nil)); n != 1 {
		t.Fatalf("restored %d series, want 1", n)
	}
	if err := c.Step(ctx, end.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if len(whole.got) != 4 || !reflect.DeepEqual(whole.got, split.got) {
		t.Fatalf("scores differ after restore:\nnever stopped: %d series\nrestarted:     %d series", len(whole.got), len(split.got))
	}
	k, _ := seriesKey("latency", model.Metric{"__name__": "kpi_latency_ms", "service": "billing"})
	if n := len(whole.got[`__name__=`+MetricScore+"\x00"+k]); n < 700 {
		t.Errorf("want every 10 s point of 2 h scored once, got %d", n)
	}

}

// switchable sends to the live TSDB or to a dead address (a real client
// whose connections are refused), to cut the TSDB off between passes.
type switchable struct {
	live, dead *tsdb.Client
	down       bool
}

func (s *switchable) cur() *tsdb.Client {
	if s.down {
		return s.dead
	}
	return s.live
}

func (s *switchable) QueryRange(ctx context.Context, expr string, r tsdb.Range) (tsdb.Result, error) {
	return s.cur().QueryRange(ctx, expr, r)
}

func (s *switchable) Write(ctx context.Context, series []tsdb.TimeSeries) error {
	return s.cur().Write(ctx, series)
}

// A TSDB outage loses no score: queries that fail are caught up by the
// next pass in order, and writes that fail are kept and sent later. Every
// 10 s point is scored exactly once.
func TestOnlineCatchesUpAfterTSDBOutage(t *testing.T) {
	v := startVM(t)
	ctx := context.Background()
	end := time.Now().Truncate(10 * time.Second).Add(-10 * time.Second)
	if err := v.client.Write(ctx, []tsdb.TimeSeries{latencySeries(end, "billing", time.Time{})}); err != nil {
		t.Fatal(err)
	}
	queryValue(t, v, `count(kpi_latency_ms)`, end)

	rc := tsdb.RemoteConfig{URL: "http://" + testbin.FreeAddr(t)}
	ep, _ := rc.Endpoints()
	cc := tsdb.DefaultClientConfig()
	cc.RetryMaxElapsed = 200 * time.Millisecond
	dead, err := tsdb.NewClient(ep, cc, tsdb.ClientOptions{Remote: &rc})
	if err != nil {
		t.Fatal(err)
	}
	sw := &switchable{live: v.client, dead: dead}
	rec := &recorder{next: sw}
	cfg := testConfig("")
	cfg.MaxCatchUp = 30 * time.Minute
	s, err := New(cfg, Options{Querier: sw, Writer: rec})
	if err != nil {
		t.Fatal(err)
	}
	passes := []struct {
		at   time.Time
		down bool
	}{
		{end.Add(-20 * time.Minute), false},
		{end.Add(-15 * time.Minute), true},  // query fails: nothing scored
		{end.Add(-10 * time.Minute), false}, // scores the missed 10 minutes
	}
	for _, p := range passes {
		sw.down = p.down
		err := s.Step(ctx, p.at.Add(time.Second))
		if p.down != (err != nil) {
			t.Fatalf("pass at %s with the TSDB down=%v: err %v", p.at.Format(time.TimeOnly), p.down, err)
		}
	}
	// Scored, but the write fails: the samples wait for the next pass.
	sw.down = false
	s.opts.Writer = &failOnce{next: rec}
	if err := s.Step(ctx, end.Add(-5*time.Minute).Add(time.Second)); err == nil {
		t.Fatal("the failed write was not reported")
	}
	s.opts.Writer = rec
	if err := s.Step(ctx, end.Add(time.Second)); err != nil {
		t.Fatal(err)
	}

	k, _ := seriesKey("latency", model.Metric{"__name__": "kpi_latency_ms", "service": "billing"})
	got := rec.got["__name__="+MetricScore+"\x00"+k]
	// From the first pass's catch-up start (30 min before it, and the two
	// intervals every range re-reads) to end.
	from := end.Add(-20*time.Minute - 30*time.Minute - relookBack*10*time.Second)
	want := int(end.Sub(from)/(10*time.Second)) + 1
	seen := map[int64]bool{}
	for _, smp := range got {
		if seen[smp.Timestamp] {
			t.Fatalf("point %s scored twice", time.UnixMilli(smp.Timestamp).Format(time.TimeOnly))
		}
		seen[smp.Timestamp] = true
	}
	if len(got) != want {
		t.Errorf("%d scores written, want every 10 s point from %s to %s (%d)", len(got), from.Format(time.TimeOnly), end.Format(time.TimeOnly), want)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Timestamp <= got[i-1].Timestamp {
			t.Fatalf("scores out of order at %d", i)
		}
	}
}

// failOnce fails its first write as a TSDB outage would.
type failOnce struct {
	next   Writer
	failed bool
}

func (f *failOnce) Write(ctx context.Context, series []tsdb.TimeSeries) error {
	if !f.failed {
		f.failed = true
		return fmt.Errorf("connection refused")
	}
	return f.next.Write(ctx, series)
}

// The API reads (Status, Incidents), checkpoints and passes run
// concurrently in the control plane; under -race this checks they share
// state safely.
func TestOnlineConcurrentReadersAndPasses(t *testing.T) {
	v := startVM(t)
	ctx := context.Background()
	end := time.Now().Truncate(10 * time.Second).Add(-10 * time.Second)
	if err := v.client.Write(ctx, []tsdb.TimeSeries{latencySeries(end, "billing", end.Add(-30*time.Minute)), latencySeries(end, "cart", time.Time{})}); err != nil {
		t.Fatal(err)
	}
	queryValue(t, v, `count(kpi_latency_ms)`, end)
	cfg := testConfig(filepath.Join(t.TempDir(), "models.ckpt"))
	cfg.MaxCatchUp = time.Hour
	s, err := New(cfg, Options{Querier: v.client, Writer: v.client})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				_ = s.Status(map[string]string{"service": "billing"})
				if _, err := s.Incidents(ctx, end.Add(-2*time.Hour)); err != nil {
					t.Error(err)
					return
				}
				if err := s.SaveCheckpoint(); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for at := end.Add(-time.Hour); !at.After(end); at = at.Add(5 * time.Minute) {
		if err := s.Step(ctx, at.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	wg.Wait()
	if n := len(s.Status(nil)); n != 2 {
		t.Errorf("%d series, want 2", n)
	}
}
