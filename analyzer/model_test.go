package analyzer

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// noisySine is a clean periodic series with Gaussian noise.
func noisySine(n int, seed uint64) []float64 {
	rng := rand.New(rand.NewPCG(seed, 1))
	xs := make([]float64, n)
	for i := range xs {
		xs[i] = 100 + 10*math.Sin(2*math.Pi*float64(i)/50) + rng.NormFloat64()
	}
	return xs
}

func run(m Model, xs []float64) []Result {
	rs := make([]Result, len(xs))
	for i, x := range xs {
		rs[i] = m.Observe(t0.Add(time.Duration(i)*time.Minute), x)
	}
	return rs
}

func maxScore(rs []Result, from, to int) float64 {
	s := 0.0
	for _, r := range rs[from:to] {
		s = math.Max(s, r.Score)
	}
	return s
}

var models = []struct {
	name      string
	new       func() Model
	shiftOnly bool // detects level shifts, not single spikes
}{
	{"robustz", func() Model { return NewRobustZ(RobustZConfig{}) }, false},
	{"ewma", func() Model { return NewEWMA(EWMAConfig{}) }, false},
	{"cusum", func() Model { return NewCUSUM(CUSUMConfig{}) }, true},
	{"novelty", func() Model { return NewNovelty(NoveltyConfig{}) }, false},
	{"differenced", func() Model { return NewDifferenced(NewRobustZ(RobustZConfig{})) }, false},
	{"ensemble", NewDefaultEnsemble, false},
}

func TestModelsFindAnomalies(t *testing.T) {
	const n, at = 1000, 700
	cases := []struct {
		name   string
		mutate func(xs []float64)
	}{
		{"spike", func(xs []float64) { xs[at] += 60 }},
		{"dip", func(xs []float64) { xs[at] -= 60 }},
		{"level shift", func(xs []float64) {
			for i := at; i < len(xs); i++ {
				xs[i] += 40
			}
		}},
	}
	for _, m := range models {
		for _, c := range cases {
			t.Run(m.name+"/"+c.name, func(t *testing.T) {
				if m.shiftOnly && c.name != "level shift" {
					t.Skip("CUSUM detects sustained shifts")
				}
				clean := run(m.new(), noisySine(n, 7))
				xs := noisySine(n, 7)
				c.mutate(xs)
				rs := run(m.new(), xs)
				base := maxScore(clean, 300, n)
				got := maxScore(rs, at, at+20)
				if got <= 2*base || got < tailScore(4) {
					t.Errorf("score near anomaly %.4f, clean max %.4f: want clearly higher", got, base)
				}
			})
		}
	}
}

func TestModelsQuietOnCleanSine(t *testing.T) {
	for _, m := range models {
		t.Run(m.name, func(t *testing.T) {
			rs := run(m.new(), noisySine(3000, 11))
			// z ~ 4.5 two-sided: rare under noise, common under anomalies.
			limit := tailScore(4.5)
			high := 0
			for _, r := range rs[300:] {
				if r.Score > limit {
					high++
				}
			}
			if high > 3 {
				t.Errorf("%d of 2700 clean points scored above %.4f", high, limit)
			}
		})
	}
}

func TestBoundsContainValues(t *testing.T) {
	for _, m := range models {
		t.Run(m.name, func(t *testing.T) {
			xs := noisySine(3000, 13)
			rs := run(m.new(), xs)
			in := 0
			for i, r := range rs[300:] {
				if r.Lower > r.Upper || math.IsNaN(r.Expected) {
					t.Fatalf("point %d: bad result %+v", i+300, r)
				}
				if x := xs[i+300]; x >= r.Lower && x <= r.Upper {
					in++
				}
			}
			if frac := float64(in) / 2700; frac < 0.95 {
				t.Errorf("bounds contain %.1f%% of values, want >= 95%%", 100*frac)
			}
		})
	}
}

func TestScoresInRange(t *testing.T) {
	xs := []float64{0, 0, 0, 1e300, -1e300, 0, math.Inf(1), math.NaN(), 0, 5}
	for i := 0; i < 100; i++ {
		xs = append(xs, float64(i%3))
	}
	for _, m := range models {
		for i, r := range run(m.new(), xs) {
			if !(r.Score >= 0 && r.Score <= 1) {
				t.Fatalf("%s point %d: score %v outside [0,1]", m.name, i, r.Score)
			}
		}
	}
}

func TestNaNLeavesStateUntouched(t *testing.T) {
	xs := noisySine(400, 21)
	withNaN := append(append(append([]float64(nil), xs[:200]...), math.NaN()), xs[200:]...)
	for _, m := range models {
		a, b := run(m.new(), xs), run(m.new(), withNaN)
		if b[200].Score != 0 {
			t.Errorf("%s: NaN scored %v", m.name, b[200].Score)
		}
		if a[399] != b[400] {
			t.Errorf("%s: state changed by NaN: %+v vs %+v", m.name, a[399], b[400])
		}
	}
}

func TestEnsembleSuppressesAfterAlarm(t *testing.T) {
	xs := noisySine(1000, 3)
	xs[600] += 80
	xs[620] += 80
	rs := run(NewDefaultEnsemble(), xs)
	if rs[600].Score < 0.02 {
		t.Fatalf("first spike scored %.4f, want an alarm", rs[600].Score)
	}
	if rs[620].Score >= rs[600].Score/2 {
		t.Errorf("second spike inside suppression scored %.4f, first %.4f: want damped", rs[620].Score, rs[600].Score)
	}
}

// spikes scores 1 on the values above 10 and 0 otherwise; it is stateless
// but saves nothing, so an Ensemble of it can be checkpointed.
type spikes struct{}

func (spikes) Observe(_ time.Time, v float64) Result {
	if v > 10 {
		return Result{Score: 1}
	}
	return Result{}
}
func (spikes) saveState(*stateWriter) {}
func (spikes) loadState(*stateReader) {}

// TestEnsembleSuppressForEndsByTime: with SuppressFor, the suppression
// after an alarm ends once that much time has passed, even if fewer than
// Suppress points have: two events 30 hours apart on an hourly series both
// alarm, while on a 5-minute series (30 points are 2.5 hours) the second
// stays damped. A checkpoint taken during the suppression restores it.
func TestEnsembleSuppressForEndsByTime(t *testing.T) {
	newEns := func(d time.Duration) *Ensemble {
		return NewEnsemble(EnsembleConfig{AlarmScore: 0.5, Suppress: 225, SuppressFor: d, Binary: true}, spikes{})
	}
	xs := make([]float64, 100)
	xs[10], xs[40] = 20, 20
	score := func(m Model, step time.Duration, from, to int) []float64 {
		var out []float64
		for i := from; i < to; i++ {
			out = append(out, m.Observe(t0.Add(time.Duration(i)*step), xs[i]).Score)
		}
		return out
	}
	for _, c := range []struct {
		name      string
		step, cap time.Duration
		second    bool
	}{
		{"hourly, 24h cap", time.Hour, 24 * time.Hour, true},
		{"hourly, no cap", time.Hour, 0, false},
		{"5-minute, 24h cap", 5 * time.Minute, 24 * time.Hour, false},
	} {
		rs := score(newEns(c.cap), c.step, 0, len(xs))
		if rs[10] < 0.5 {
			t.Errorf("%s: first event scored %v, want an alarm", c.name, rs[10])
		}
		if got := rs[40] >= 0.5; got != c.second {
			t.Errorf("%s: second event scored %v, alarm %v, want %v", c.name, rs[40], got, c.second)
		}
		if n := countAbove(rs, 0.5); n != 1+b2i(c.second) {
			t.Errorf("%s: %d alarms, want %d", c.name, n, 1+b2i(c.second))
		}
	}
	// checkpoint 20 hours into the suppression and restore into a new
	// ensemble; an event 22 hours after the alarm is still damped
	xs[32] = 20
	a := newEns(24 * time.Hour)
	score(a, time.Hour, 0, 30)
	st, err := MarshalState(a)
	if err != nil {
		t.Fatal(err)
	}
	b := newEns(24 * time.Hour)
	if err := UnmarshalState(b, st); err != nil {
		t.Fatal(err)
	}
	if b.alarmAt != a.alarmAt || b.quiet != a.quiet {
		t.Fatalf("restored alarmAt %d quiet %d, want %d %d", b.alarmAt, b.quiet, a.alarmAt, a.quiet)
	}
	ra, rb := score(a, time.Hour, 30, 100), score(b, time.Hour, 30, 100)
	if !slices.Equal(ra, rb) {
		t.Errorf("restored ensemble scores %v, original %v", rb, ra)
	}
	if ra[2] >= 0.5 || ra[10] < 0.5 {
		t.Errorf("after the checkpoint: event at 22h scored %v (want damped), at 30h %v (want an alarm)", ra[2], ra[10])
	}
}

func countAbove(xs []float64, th float64) int {
	n := 0
	for _, x := range xs {
		if x >= th {
			n++
		}
	}
	return n
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// BenchmarkNewEnsemble reports the heap bytes of one series' default
// ensemble (B/op), which is its whole per-series state.
func BenchmarkNewEnsemble(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = NewDefaultEnsemble()
	}
}

func BenchmarkEnsemble(b *testing.B) { benchEnsemble(b, NewDefaultEnsemble()) }

// BenchmarkCompactEnsemble is the default without ARTime, the baseline
// the default's cost is reported against.
func BenchmarkCompactEnsemble(b *testing.B) { benchEnsemble(b, NewCompactEnsemble()) }

func benchEnsemble(b *testing.B, m Model) {
	xs := noisySine(4096, 5)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		m.Observe(t0, xs[i&4095])
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "points/s")
}

func TestRobustZMatchesSortedMAD(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for _, w := range []int{1, 2, 5, 16} {
		m := NewRobustZ(RobustZConfig{Window: w})
		var hist []float64
		for k := 0; k < 200; k++ {
			v := math.Round(rng.NormFloat64() * 3) // ties on purpose
			if len(hist) > 0 {
				win := append([]float64(nil), hist[max(0, len(hist)-w):]...)
				slices.Sort(win)
				med := median(win)
				for i := range win {
					win[i] = math.Abs(win[i] - med)
				}
				slices.Sort(win)
				gm, gs := m.medianSigma()
				if gm != med || math.Abs(gs-1.4826*median(win)) > 1e-9 {
					t.Fatalf("w=%d k=%d: got %v,%v want %v,%v", w, k, gm, gs, med, 1.4826*median(win))
				}
			}
			m.Observe(t0, v)
			hist = append(hist, v)
		}
	}
}
