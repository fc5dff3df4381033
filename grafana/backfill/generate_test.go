package backfill

import (
	"context"
	"hash/fnv"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"opspilot/tsdb"
)

var testEnd = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// collect keeps every sample written, by series.
type collect struct {
	series map[string][]tsdb.Sample
	order  []string
}

func (c *collect) Write(_ context.Context, ss []tsdb.TimeSeries) error {
	if c.series == nil {
		c.series = map[string][]tsdb.Sample{}
	}
	for _, s := range ss {
		k := key(s.Labels)
		if _, ok := c.series[k]; !ok {
			c.order = append(c.order, k)
		}
		c.series[k] = append(c.series[k], s.Samples...)
	}
	return nil
}

func key(ls []tsdb.Label) string {
	var b strings.Builder
	for _, l := range ls {
		b.WriteString(l.Name + "=" + l.Value + ",")
	}
	return b.String()
}

func run(t *testing.T, cfg Config) (*collect, Stats) {
	t.Helper()
	var c collect
	st, err := Run(context.Background(), cfg, &c, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &c, st
}

func TestSameSeedSameHistory(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Days, cfg.End, cfg.Tiers = 3, testEnd, nil
	digest := func(c *collect) uint64 {
		h := fnv.New64a()
		for _, k := range c.order {
			h.Write([]byte(k))
			for _, s := range c.series[k] {
				h.Write([]byte(time.UnixMilli(s.Timestamp).String()))
				h.Write([]byte(formatFloat(s.Value)))
			}
		}
		return h.Sum64()
	}
	a, _ := run(t, cfg)
	b, _ := run(t, cfg)
	if digest(a) != digest(b) {
		t.Fatal("two runs with the same seed and end gave different samples")
	}
	cfg.Seed = 2
	c, _ := run(t, cfg)
	if digest(a) == digest(c) {
		t.Fatal("a different seed gave the same samples")
	}
}

func formatFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func TestHistoryShape(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Days, cfg.End, cfg.Tiers = 8, testEnd, nil // TestTimesTiers covers the tiers
	c, st := run(t, cfg)
	if want := len(cfg.Times()); st.Steps != want {
		t.Fatalf("steps = %d, want %d", st.Steps, want)
	}
	if len(st.Incidents) == 0 {
		t.Fatal("an 8-day history has no incident")
	}
	for _, in := range st.Incidents {
		if in.Start.Add(in.Duration).After(testEnd.Add(-time.Hour)) {
			t.Errorf("incident %s+%s ends within an hour of the end %s: it would leave alerts firing", in.Start, in.Duration, testEnd)
		}
	}
	if newest := st.Incidents[0]; newest.Start.Before(testEnd.Add(-6 * time.Hour)) {
		t.Errorf("the newest incident starts at %s, more than 6 h before the end: the dashboards' default range shows none", newest.Start)
	}
	var first, last int64 = math.MaxInt64, 0
	alerts := 0
	for k, samples := range c.series {
		for i, s := range samples {
			first, last = min(first, s.Timestamp), max(last, s.Timestamp)
			if math.IsNaN(s.Value) || math.IsInf(s.Value, 0) || s.Value < 0 {
				t.Fatalf("%s: bad value %v", k, s.Value)
			}
			if i > 0 && s.Timestamp <= samples[i-1].Timestamp {
				t.Fatalf("%s: timestamps not increasing at %d", k, i)
			}
			if i > 0 && (strings.Contains(k, "_total,") || strings.Contains(k, "_bucket,") || strings.Contains(k, "_count,") || strings.Contains(k, "_sum,")) && s.Value < samples[i-1].Value {
				t.Fatalf("%s: counter went down at %s: %v → %v", k, time.UnixMilli(s.Timestamp), samples[i-1].Value, s.Value)
			}
		}
		if strings.HasPrefix(k, "__name__=ALERTS,") {
			alerts += len(samples)
		}
		if !strings.Contains(k, Label+"=demo,") {
			t.Fatalf("%s lacks %s=demo", k, Label)
		}
	}
	if last != testEnd.UnixMilli() {
		t.Errorf("last sample at %s, want the end %s", time.UnixMilli(last), testEnd)
	}
	if oldest := testEnd.Add(-8 * 24 * time.Hour); !time.UnixMilli(first).After(oldest) || time.UnixMilli(first).After(oldest.Add(cfg.Step)) {
		t.Errorf("first sample at %s, want within one step after %s", time.UnixMilli(first), oldest)
	}
	if alerts == 0 {
		t.Error("no ALERTS samples although the history has incidents")
	}
}

// The newest hours are sampled finer, so Grafana's short rate windows
// over them find samples.
func TestTimesTiers(t *testing.T) {
	cfg := DefaultConfig()
	cfg.End = testEnd
	ts := cfg.Times()
	gaps := map[time.Duration]int{}
	for i := 1; i < len(ts); i++ {
		gap := ts[i].Sub(ts[i-1])
		age := testEnd.Sub(ts[i])
		want := 5 * time.Minute
		switch {
		case age < 6*time.Hour:
			want = 15 * time.Second
		case age < 72*time.Hour:
			want = time.Minute
		}
		if gap != want {
			t.Fatalf("sample at %s (age %s) follows the previous by %s, want %s", ts[i], age, gap, want)
		}
		gaps[gap]++
	}
	if ts[len(ts)-1] != testEnd {
		t.Errorf("newest sample at %s, want the end %s", ts[len(ts)-1], testEnd)
	}
	if gaps[15*time.Second] != 6*60*4 || gaps[time.Minute] != 66*60 {
		t.Errorf("steps by gap = %v", gaps)
	}
}

// The traffic follows the day: afternoons busier than nights.
func TestDailyWave(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Days, cfg.End = 2, testEnd
	w := newWorld(cfg)
	day := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC) // a Wednesday
	if peak, night := w.wave(day.Add(16*time.Hour)), w.wave(day.Add(4*time.Hour)); peak < 2*night {
		t.Errorf("16:00 traffic factor %.2f is not well above 04:00's %.2f", peak, night)
	}
	if wd, we := w.wave(day.Add(12*time.Hour)), w.wave(day.Add(3*24*time.Hour+12*time.Hour)); we >= wd {
		t.Errorf("Saturday factor %.2f is not below Wednesday's %.2f", we, wd)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		mut  func(*Config)
		want string
	}{
		{func(c *Config) { c.Days = 0 }, "days 0"},
		{func(c *Config) { c.Step = time.Second }, "step 1s"},
		{func(c *Config) { c.ChunkSteps = 0 }, "chunk steps"},
		{func(c *Config) { c.Tiers = []Tier{{Within: time.Hour, Step: time.Hour}} }, "tiers[0].step 1h"},
		{func(c *Config) {
			c.Tiers = []Tier{{Within: time.Hour, Step: time.Minute}, {Within: time.Minute, Step: time.Minute}}
		}, "newest first"},
	} {
		cfg := DefaultConfig()
		c.mut(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate() = %v, want an error about %q", err, c.want)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("the default config is invalid: %v", err)
	}
}

type discard struct{}

func (discard) Write(context.Context, []tsdb.TimeSeries) error { return nil }

// BenchmarkGenerate30Days is the generation half of `demo backfill --days 30`.
func BenchmarkGenerate30Days(b *testing.B) {
	cfg := DefaultConfig()
	cfg.End = testEnd
	for b.Loop() {
		st, err := Run(context.Background(), cfg, discard{}, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(st.Samples), "samples")
		b.ReportMetric(float64(st.Series), "series")
	}
}
