package analyzer

import (
	"encoding/binary"
	"math"
	"testing"
)

// artimeAlarm is the confidence at which the default ensemble's ARTime
// alarms (its alarm level 0.015 over its weight 0.025).
const artimeAlarm = 0.6

func TestHaar(t *testing.T) {
	dst, buf := make([]float64, 4), make([]float64, 4)
	haar(dst, []float64{1, 2, 3, 4}, buf)
	want := []float64{5, 2, 1 / math.Sqrt2, 1 / math.Sqrt2}
	for i := range want {
		if math.Abs(dst[i]-want[i]) > 1e-12 {
			t.Fatalf("haar = %v, want %v", dst, want)
		}
	}
}

// A window the ART has learnt resonates fully; its complement does not.
func TestFuzzyARTResonance(t *testing.T) {
	a := fuzzyART{dim: 2, max: 8}
	x := []float64{0.2, 0.6, 0.8, 0.4} // multiples of 1/255, exact in 8 bits
	a.train(x, 0.9, 0.9, true, 1)      // creates the all-ones category
	if isNew, _, _ := a.train(x, 0.9, 0.9, true, 2); !isNew {
		t.Fatal("a first window was not a new cluster")
	}
	if isNew, act, _ := a.train(x, 0.9, 0.9, true, 3); isNew || act < 0.999999 {
		t.Fatalf("the learnt window: new %v, activation %v", isNew, act)
	}
	if isNew, act, _ := a.train([]float64{0.8, 0.4, 0.2, 0.6}, 0.9, 0.9, true, 4); !isNew || act > 0.5 {
		t.Fatalf("the complement window: new %v, activation %v", isNew, act)
	}
}

// A full store replaces the least recently matched category, or, with a
// match credit, one-off windows before a shape the series keeps repeating:
// here a shape matched five times, 40 steps ago, survives three one-off
// windows with a credit of 10 steps a match and is replaced without one.
func TestFuzzyARTMatchCredit(t *testing.T) {
	shape := []float64{0.2, 0.6, 0.8, 0.4}
	oneOff := func(i int) []float64 { // far from shape and from each other
		v := float64(i) * 0.1
		return []float64{0.9 - v, 0.1 + v, 0.1 + v, 0.9 - v}
	}
	for _, tc := range []struct {
		credit uint32
		kept   bool
	}{{0, false}, {10, true}} {
		a := fuzzyART{dim: 2, max: 3, credit: tc.credit}
		a.train(shape, 0.99, 0.99, true, 1) // the all-ones category
		a.train(shape, 0.99, 0.99, true, 2) // learns shape
		for step := uint32(3); step <= 7; step++ {
			if isNew, _, _ := a.train(shape, 0.99, 0.99, true, step); isNew {
				t.Fatalf("credit %d: the learnt shape was new at step %d", tc.credit, step)
			}
		}
		// the first fills the store, the second replaces the all-ones
		// category (never matched), the third the shape or the first
		for i := range 3 {
			if isNew, _, _ := a.train(oneOff(i), 0.99, 0.99, true, uint32(47+i)); !isNew {
				t.Fatalf("credit %d: one-off window %d was not new", tc.credit, i)
			}
		}
		isNew, act, _ := a.train(shape, 0.99, 0.99, false, 50)
		if kept := act > 0.999; kept != tc.kept {
			t.Errorf("credit %d: shape kept %v (activation %.3f, new %v), want %v", tc.credit, kept, act, isNew, tc.kept)
		}
	}
}

// artimeRun scores xs with the default ensemble's ARTime.
func artimeRun(xs []float64) []Result { return run(NewARTime(defaultARTime), xs) }

// originalARTime is the default ensemble's ARTime reporting every new
// cluster, as the original does (Mismatch off).
func originalARTime() Model {
	c := defaultARTime
	c.Mismatch = false
	return NewARTime(c)
}

// A spike, a level shift and a changed shape on a learnt noisy sine score
// high, where the clean series scores nothing.
func TestARTimeScoresAnomalies(t *testing.T) {
	const at, n = 2000, 3000
	// A changed shape within the range seen (here the wave stops at its
	// mean for 200 points) is a subtler anomaly: ARTime reports it with
	// less confidence, 0.65 to 0.72 here, above its NAB threshold alone
	// (0.3) but below the default ensemble's 0.6. (A wave four times as
	// fast scored 0.53 to 0.75 on 7 of 8 seeds, 0.14 on the other.) With
	// Mismatch, as in the default ensemble, a new shape whose newest value
	// stays within the learnt range is not reported at all (want -1).
	cases := map[string]struct {
		change         func(xs []float64)
		orig, mismatch float64
	}{
		"spike": {func(xs []float64) { xs[at] += 60 }, artimeAlarm, artimeAlarm},
		"level shift": {func(xs []float64) {
			for i := at; i < n; i++ {
				xs[i] += 30
			}
		}, artimeAlarm, artimeAlarm},
		"changed shape": {func(xs []float64) {
			for i := at; i < at+200; i++ {
				xs[i] = 100
			}
		}, 0.3, -1},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			for seed := uint64(1); seed <= 5; seed++ {
				xs := noisySine(n, seed)
				c.change(xs)
				for _, k := range []struct {
					name string
					new  func() Model
					want float64
				}{
					{"original", originalARTime, c.orig},
					{"mismatch", func() Model { return NewARTime(defaultARTime) }, c.mismatch},
				} {
					clean := maxScore(run(k.new(), noisySine(n, seed)), at, at+200)
					got := maxScore(run(k.new(), xs), at, at+200)
					if k.want < 0 && got > 0 {
						t.Errorf("%s, seed %d: scored %.3f", k.name, seed, got)
					}
					if k.want >= 0 && (got < k.want || clean > 0) {
						t.Errorf("%s, seed %d: scored %.3f (clean series %.3f)", k.name, seed, got, clean)
					}
				}
			}
		})
	}
}

// A clean repeating wave, noisy or not, does not alarm once learnt (with
// Mismatch, at the default ensemble's 0.6: a few new clusters of noise
// score up to 0.36 here). The original reports more new clusters of noise,
// up to 0.62 here, as its vigilances near their cap.
func TestARTimeQuietOnCleanWave(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		xs := noisySine(6000, seed)
		if s := maxScore(artimeRun(xs), 1500, len(xs)); s >= artimeAlarm {
			t.Errorf("noisy sine seed %d: scored %.3f", seed, s)
		}
		if s := maxScore(run(originalARTime(), xs), 1500, len(xs)); s >= 0.75 {
			t.Errorf("noisy sine seed %d: the original scored %.3f", seed, s)
		}
		ts, ws := dailyWave(28, seed)
		m := NewARTime(defaultARTime)
		for i := range ws {
			if r := m.Observe(ts[i], ws[i]); i >= 2*288 && r.Score >= artimeAlarm {
				t.Errorf("daily wave seed %d: point %d scored %.3f", seed, i, r.Score)
			}
		}
	}
	xs := make([]float64, 4000)
	for i := range xs {
		xs[i] = 10 * math.Sin(2*math.Pi*float64(i)/40)
	}
	if s := maxScore(run(originalARTime(), xs), 1000, len(xs)); s > 0 {
		t.Errorf("a pure sine scored %.3f", s)
	}
}

func TestARTimeContract(t *testing.T) {
	xs := noisySine(2000, 3)
	withNaN := append(append(append([]float64(nil), xs[:1000]...), math.NaN()), xs[1000:]...)
	a, b := artimeRun(xs), artimeRun(withNaN)
	if b[1000].Score != 0 || !math.IsNaN(b[1000].Expected) {
		t.Errorf("NaN scored %+v", b[1000])
	}
	for i := 1000; i < len(xs); i++ {
		if a[i] != b[i+1] {
			t.Fatalf("point %d: NaN changed the state: %+v vs %+v", i, a[i], b[i+1])
		}
	}
	for i, r := range artimeRun(append(xs, extremes...)) {
		if !(r.Score >= 0 && r.Score <= 1) {
			t.Fatalf("point %d scored %v", i, r.Score)
		}
	}
	// the probation is unscored
	if s := maxScore(a, 0, 600); s != 0 {
		t.Errorf("the probation scored %.3f", s)
	}
}

// FuzzARTime feeds arbitrary float64 sequences (8 bytes each, repeated to
// 400 points) to a short-probation ARTime: no panic, scores in [0,1].
func FuzzARTime(f *testing.F) {
	enc := func(vs ...float64) []byte {
		b := make([]byte, 8*len(vs))
		for i, v := range vs {
			binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(v))
		}
		return b
	}
	f.Add(enc(extremes...))
	f.Add(enc(noisySine(200, 1)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		xs := make([]float64, len(b)/8)
		for i := range xs {
			xs[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
		}
		for len(xs) > 0 && len(xs) < 400 {
			xs = append(xs, xs...)
		}
		m := NewARTime(ARTimeConfig{Probation: 50, MaxCategories: 16})
		for i, x := range xs {
			if r := m.Observe(t0, x); !(r.Score >= 0 && r.Score <= 1) {
				t.Fatalf("point %d (%v): score %v", i, x, r.Score)
			}
		}
	})
}
