package analyzer

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// kinds of anomaly injected on day 6 of an 8-day, 5-minute daily wave
// (amplitude 10, noise sigma 1). The online models alarm at 5 sigma.
var anomalyKinds = map[string]func(xs []float64, at int){
	"spike": func(xs []float64, at int) { xs[at] += 40 },
	"dip":   func(xs []float64, at int) { xs[at] -= 40 },
	"level shift": func(xs []float64, at int) {
		for i := at; i < len(xs); i++ {
			xs[i] += 30
		}
	},
	"variance change": func(xs []float64, at int) {
		rng := rand.New(rand.NewPCG(3, 3))
		for i := at; i < at+288; i++ {
			xs[i] += 6 * rng.NormFloat64()
		}
	},
	// The evening trough stays at the daily peak's level for two hours:
	// every value is within the series' range.
	"seasonality break": func(xs []float64, at int) {
		start := at - at%288 + 216
		for i := start; i < start+24; i++ {
			xs[i] += 20
		}
	},
	"flatline": func(xs []float64, at int) {
		for i := at; i < at+96; i++ {
			xs[i] = xs[at]
		}
	},
}

// detects is what each online model must find; the rest is not its job
// (a time-of-day break is invisible to a model without seasons). Every
// model must stay quiet on the clean wave.
var detects = map[string][]string{
	"ewma":         {"spike", "dip", "level shift"},
	"robust-z":     {"spike", "dip", "level shift", "variance change"},
	"seasonal":     {"spike", "dip", "level shift", "variance change", "seasonality break"},
	"decompose":    {"spike", "dip", "level shift", "variance change", "seasonality break", "flatline"},
	"holt-winters": {"spike", "dip", "level shift", "variance change", "seasonality break", "flatline"},
	"bocpd":        {"spike", "dip", "level shift"},
	"nab":          {"spike", "dip", "level shift"},
	"nab-compact":  {"spike", "dip", "level shift"},
}

func TestOnlineModelsOnKnownAnomalies(t *testing.T) {
	const at = 6*288 + 100
	for _, name := range OnlineModelNames() {
		want, ok := detects[name]
		if !ok {
			t.Fatalf("model %s has no expectations in this test", name)
		}
		// False alarms on a clean wave are rare: at most one point in the
		// 3 x 4 days after warm-up (3,456 points) of three noise draws.
		t.Run(name+"/clean wave", func(t *testing.T) {
			var alarms []string
			for _, seed := range []uint64{21, 1, 2} {
				ts, xs := dailyWave(8, seed)
				m, _ := NewOnlineModelNamed(name)
				for i := range xs {
					if r := m.Observe(ts[i], xs[i]); i >= 4*288 && r.Score >= AlarmLevel {
						alarms = append(alarms, fmt.Sprintf("seed %d point %d: %.3f", seed, i, r.Score))
					}
				}
			}
			if len(alarms) > 1 {
				t.Errorf("clean waves scored >= %.1f at %d points, want at most 1: %v", AlarmLevel, len(alarms), alarms)
			}
		})
		for kind, inject := range anomalyKinds {
			if !strings.Contains(","+strings.Join(want, ",")+",", ","+kind+",") {
				continue
			}
			t.Run(name+"/"+kind, func(t *testing.T) {
				ts, xs := dailyWave(8, 21)
				inject(xs, at)
				m, _ := NewOnlineModelNamed(name)
				from := at
				if kind == "seasonality break" {
					from = at - at%288 + 216
				}
				hi := 0.0
				for i := range xs {
					r := m.Observe(ts[i], xs[i])
					if i >= from && i < from+288 {
						hi = math.Max(hi, r.Score)
					}
				}
				if hi < AlarmLevel {
					t.Errorf("%s scored at most %.3f in the day after it began, want >= %.1f", kind, hi, AlarmLevel)
				}
			})
		}
	}
}

// The model names in config map to working models; an unknown name says
// which exist.
func TestNewOnlineModelNamed(t *testing.T) {
	for _, name := range append(OnlineModelNames(), "") {
		m, err := NewOnlineModelNamed(name)
		if err != nil || m == nil {
			t.Fatalf("%q: %v", name, err)
		}
		if _, err := MarshalState(m); err != nil {
			t.Errorf("%q cannot be checkpointed: %v", name, err)
		}
		m.Observe(time.Unix(0, 0), 1)
	}
	if _, err := NewOnlineModelNamed("prophet"); err == nil || !strings.Contains(err.Error(), "holt-winters") {
		t.Errorf("unknown model: %v", err)
	}
}

// BenchmarkOnlineModels measures each online model's cost per point on a
// 5-minute daily wave, against ewma (the O(1) baseline) in the same run.
func BenchmarkOnlineModels(b *testing.B) {
	ts, xs := dailyWave(8, 5)
	for _, name := range OnlineModelNames() {
		b.Run(name, func(b *testing.B) {
			m, _ := NewOnlineModelNamed(name)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				k := i % len(xs)
				// Timestamps keep increasing across laps of the wave.
				m.Observe(ts[k].Add(time.Duration(i/len(xs))*8*24*time.Hour), xs[k])
				i++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "points/s")
		})
	}
}

// A perfectly steady series does not alarm on a change smaller than
// MinRelativeChange, and its band is at least that wide; a larger jump
// still alarms.
func TestOnlineModelsIgnoreTinyChanges(t *testing.T) {
	for _, name := range OnlineModelNames() {
		t.Run(name, func(t *testing.T) {
			m, _ := NewOnlineModelNamed(name)
			var r Result
			for i := range 2000 {
				r = m.Observe(t0.Add(time.Duration(i)*5*time.Minute), 40) // a week: past every warm-up
			}
			if r.Upper-r.Lower < 2*MinRelativeChange*40*0.999 {
				t.Errorf("band [%v, %v] on a steady 40 is narrower than ±%.0f%%", r.Lower, r.Upper, 100*MinRelativeChange)
			}
			small := m.Observe(t0.Add(2000*5*time.Minute), 41)
			if small.Score >= AlarmLevel {
				t.Errorf("40 → 41 (2.5%%) scored %.3f, want < %.1f", small.Score, AlarmLevel)
			}
			if name == "nab" || name == "nab-compact" {
				return // the NAB detectors damp after their first alarm; their jump test is TestModelsFindAnomalies
			}
			big := m.Observe(t0.Add(2001*5*time.Minute), 60)
			if big.Score < AlarmLevel {
				t.Errorf("40 → 60 scored %.3f, want >= %.1f", big.Score, AlarmLevel)
			}
		})
	}
}
