package report

import (
	"bytes"
	"context"
	stdhtml "html"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// growthDC is a datacenter of 16 cores whose busy CPU grows linearly with
// a daily wave: busy(d) = 4 + 0.4 d + 0.5 sin(2πd) cores, d in days since
// the start of its history. It is written as node_cpu_seconds_total
// counters, as the agent writes them.
const (
	growthDC    = "dc-growth"
	growthCores = 16
)

func growthBusy(d float64) float64 { return 4 + 0.4*d + 0.5*math.Sin(2*math.Pi*d) }

// growthBusyIntegral is ∫0..s busy in core-seconds, s in seconds.
func growthBusyIntegral(s float64) float64 {
	const day = 86400.0
	return 4*s + 0.4*s*s/(2*day) + 0.5*day/(2*math.Pi)*(1-math.Cos(2*math.Pi*s/day))
}

var (
	growthOnce  sync.Once
	growthStart time.Time
	growthEnd   time.Time
)

// writeGrowth writes 10 days of the growth datacenter's history ending
// now (once per test binary).
func writeGrowth(t *testing.T) {
	t.Helper()
	growthOnce.Do(func() {
		growthEnd = time.Now().UTC().Truncate(time.Minute)
		growthStart = growthEnd.Add(-10 * 24 * time.Hour)
		var g gen
		step := 2 * time.Minute
		base := map[string]string{"datacenter": growthDC, "node": "growth-1"}
		with := func(kv ...string) map[string]string {
			m := map[string]string{}
			for k, v := range base {
				m[k] = v
			}
			for i := 0; i < len(kv); i += 2 {
				m[kv[i]] = kv[i+1]
			}
			return m
		}
		g.add(with("__name__", "node_cpu_seconds_total", "cpu", "0", "mode", "user"), growthStart, growthEnd, step, func(tt time.Time) float64 {
			return growthBusyIntegral(tt.Sub(growthStart).Seconds())
		})
		for c := range growthCores {
			g.add(with("__name__", "node_cpu_seconds_total", "cpu", strconv.Itoa(c), "mode", "idle"), growthStart, growthEnd, step, func(tt time.Time) float64 {
				return tt.Sub(growthStart).Seconds() / 2
			})
		}
		g.add(with("__name__", "node_memory_MemTotal_bytes"), growthStart, growthEnd, step, func(time.Time) float64 { return 64 << 30 })
		g.add(with("__name__", "node_memory_MemAvailable_bytes"), growthStart, growthEnd, step, func(time.Time) float64 { return 40 << 30 })
		g.write(t)
	})
}

// growthExhaustion is when busy CPU first reaches limit cores, found on the
// true function at one-minute resolution.
func growthExhaustion(limit float64) time.Time {
	for tt := growthEnd; tt.Before(growthEnd.Add(60 * 24 * time.Hour)); tt = tt.Add(time.Minute) {
		if growthBusy(tt.Sub(growthStart).Hours()/24) >= limit {
			return tt
		}
	}
	return time.Time{}
}

func buildGrowthReport(t *testing.T) *CapacityReport {
	t.Helper()
	writeGrowth(t)
	var calls, lastTotal int
	rep, err := BuildCapacity(context.Background(), client, nil, CapacityOptions{
		Range: 10 * 24 * time.Hour, Horizon: 30 * 24 * time.Hour, Threshold: 0.8, Now: growthEnd,
		Progress: func(done, total int, _ string) { calls, lastTotal = done, total },
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls == 0 || calls != lastTotal {
		t.Errorf("progress reported %d of %d steps; want every step reported", calls, lastTotal)
	}
	return rep
}

func findSection(secs []Section, name string) *Section {
	for i := range secs {
		if secs[i].Name == name {
			return &secs[i]
		}
	}
	return nil
}

func TestCapacityForecastHitsKnownExhaustionDate(t *testing.T) {
	rep := buildGrowthReport(t)
	dc := findSection(rep.Datacenters, growthDC)
	if dc == nil {
		t.Fatalf("no section for datacenter %s; datacenters %v, notes %v", growthDC, rep.Datacenters, rep.Notes)
	}
	cpu := dc.Resources[0]
	if cpu.Resource != "cpu" || cpu.Err != "" {
		t.Fatalf("cpu forecast: %+v", cpu)
	}
	if cpu.Capacity != growthCores {
		t.Errorf("capacity %v cores, want %d (the idle series counted)", cpu.Capacity, growthCores)
	}
	want := growthExhaustion(0.8 * growthCores)
	remaining := want.Sub(growthEnd)
	if cpu.ExhaustAt.IsZero() {
		t.Fatalf("no exhaustion forecast; want about %s (in %s); report: %+v", want, remaining, cpu)
	}
	off := cpu.ExhaustAt.Sub(want)
	t.Logf("exhaustion: forecast %s, true %s, off by %s of %s remaining (%.1f%%); growth %.3f cores/day, method %s, confidence %s",
		cpu.ExhaustAt.Format(time.RFC3339), want.Format(time.RFC3339), off.Round(time.Minute), remaining.Round(time.Minute),
		100*math.Abs(off.Hours())/remaining.Hours(), cpu.GrowthPerDay, cpu.Method, cpu.Confidence)
	if math.Abs(off.Hours()) > 0.1*remaining.Hours() {
		t.Errorf("forecast exhaustion %s is %s off the true %s: more than 10%% of the %s remaining", cpu.ExhaustAt, off, want, remaining)
	}
	if math.Abs(cpu.GrowthPerDay-0.4) > 0.1 {
		t.Errorf("growth %.3f cores/day, want about 0.4", cpu.GrowthPerDay)
	}
	// The recommendation names the date, the datacenter and the cores to
	// add, and is listed at the top.
	rec := cpu.Recommendation
	if rec == nil {
		t.Fatal("no recommendation for a datacenter that runs out within the horizon")
	}
	m := regexp.MustCompile(`^datacenter dc-growth needs (\d+) more cores by (\d{4}-\d{2}-\d{2}) at current growth`).FindStringSubmatch(rec.Text)
	if m == nil {
		t.Fatalf("recommendation %q does not say how many cores by when", rec.Text)
	}
	named, _ := time.Parse(time.DateOnly, m[2])
	if math.Abs(named.Sub(want.Truncate(24*time.Hour)).Hours()) > 0.1*remaining.Hours()+24 {
		t.Errorf("recommendation names %s, the true exhaustion is %s", m[2], want.Format(time.DateOnly))
	}
	// Busy CPU at the horizon's end (day 40) is about 20 cores; at 80%
	// that needs 25 cores, 9 more than the 16 there are.
	if n, _ := strconv.Atoi(m[1]); n < 7 || n > 11 {
		t.Errorf("recommendation asks for %d more cores, want about 9 (busy ~20 cores at the horizon, 80%% limit)", n)
	}
	found := false
	for _, r := range rep.Recommendations {
		found = found || r.Text == rec.Text
	}
	if !found {
		t.Errorf("the recommendation is not in the report's list: %v", rep.Recommendations)
	}
	if !strings.Contains(rep.Text(), rec.Text) {
		t.Errorf("the chat text lacks the recommendation:\n%s", rep.Text())
	}
	// Peak: the highest busy value of the history (day 10 minus the wave).
	if cpu.Peak < 8 || cpu.Peak > 8.6 || cpu.PeakAt.Before(growthEnd.Add(-24*time.Hour)) {
		t.Errorf("peak %.2f cores at %s, want about 8.4 within the last day", cpu.Peak, cpu.PeakAt)
	}
	// Memory is flat at 24 of 64 GiB: no recommendation.
	if mem := dc.Resources[1]; mem.Err != "" || mem.Recommendation != nil || math.Abs(mem.Utilisation-0.375) > 0.01 {
		t.Errorf("memory: err %q, utilisation %.3f, recommendation %v; want 0.375 and none", mem.Err, mem.Utilisation, mem.Recommendation)
	}
}

func TestCapacityHTMLIsSelfContained(t *testing.T) {
	rep := buildGrowthReport(t)
	var buf bytes.Buffer
	if err := rep.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	// Attribute values are HTML-escaped ("+" as &#43;); the browser reads
	// them unescaped.
	html := stdhtml.UnescapeString(buf.String())
	if n := strings.Count(html, `src="data:image/svg+xml;base64,`); n < 2 {
		t.Errorf("%d inline charts, want at least the growth datacenter's two", n)
	}
	for _, bad := range []string{`src="http`, `href="http`, "<script"} {
		if strings.Contains(html, bad) {
			t.Errorf("the report refers to %s: it must be self-contained", bad)
		}
	}
	if !strings.Contains(html, "needs") || !strings.Contains(html, "Datacenter dc-growth") {
		t.Error("the HTML lacks the recommendation or the datacenter section")
	}
}

func TestCapacityOptionsValidate(t *testing.T) {
	for _, o := range []CapacityOptions{{Range: time.Minute}, {Threshold: 1.5}, {Horizon: -time.Hour}, {Threshold: math.NaN()}} {
		if err := o.Validate(); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
	if err := (CapacityOptions{}).Validate(); err != nil {
		t.Errorf("zero options: %v", err)
	}
}

func TestNodeGroupsByPartitionAndLabel(t *testing.T) {
	mk := func(name, dc, part string, labels map[string]string) Node {
		var n Node
		n.Name, n.Datacenter, n.Partition, n.Labels = name, dc, part, labels
		return n
	}
	got := nodeGroups([]Node{
		mk("a1", "A", "db", map[string]string{"zone": "z1"}),
		mk("a2", "A", "db", nil),
		mk("a3", "A", "", map[string]string{"zone": "z1"}),
		mk("b1", "B", "", nil),
	})
	var s []string
	for _, g := range got {
		s = append(s, g.name+":"+strings.Join(g.nodes, ",")+":"+g.regexp())
	}
	want := "A/db:a1,a2:a1|a2 A/zone=z1:a1,a3:a1|a3"
	if strings.Join(s, " ") != want {
		t.Errorf("groups %v, want %s", s, want)
	}
}
