package analyzer

import (
	"encoding/binary"
	"math"
	"runtime"
	"testing"
)

// newModels are the models added with BOCPD: the shared checks below run
// them all (the existing models' table in model_test.go is left alone).
var newModels = []struct {
	name string
	new  func() Model
}{
	{"bocpd", func() Model { return NewBOCPD(BOCPDConfig{}) }},
	{"decompose", func() Model { return NewDecompose(DecomposeConfig{Period: 50}) }},
	{"decompose-detect", func() Model { return NewDecompose(DecomposeConfig{MaxPeriod: 100}) }},
}

func TestNewModelsNaNLeavesStateUntouched(t *testing.T) {
	xs := noisySine(800, 21)
	withNaN := append(append(append([]float64(nil), xs[:400]...), math.NaN()), xs[400:]...)
	for _, m := range newModels {
		t.Run(m.name, func(t *testing.T) {
			a, b := run(m.new(), xs), run(m.new(), withNaN)
			if b[400].Score != 0 || !math.IsNaN(b[400].Expected) {
				t.Errorf("NaN scored %+v", b[400])
			}
			if a[799] != b[800] {
				t.Errorf("state changed by NaN: %+v vs %+v", a[799], b[800])
			}
		})
	}
}

func TestNewModelsFindAnomaliesOnSine(t *testing.T) {
	const at = 700
	for _, m := range newModels {
		t.Run(m.name, func(t *testing.T) {
			clean := run(m.new(), noisySine(1000, 7))
			xs := noisySine(1000, 7)
			xs[at] += 60
			got, base := maxScore(run(m.new(), xs), at, at+1), maxScore(clean, 400, 1000)
			if got < tailScore(6) || got <= 2*base {
				t.Errorf("spike scored %.4f, clean max %.4f", got, base)
			}
		})
	}
}

// extremes is a sequence that breaks naive arithmetic.
var extremes = []float64{0, 0, 0, 1e300, -1e300, 0, math.Inf(1), math.NaN(), 0, 5, math.Inf(-1),
	math.MaxFloat64, -math.MaxFloat64, math.SmallestNonzeroFloat64, 1e-300, 3, 3, 3}

// checkScores feeds xs to every new model (and to a 3-dimensional
// Multivariate, three values a vector) and fails on a score outside [0,1].
func checkScores(t testing.TB, xs []float64) {
	for _, nm := range newModels {
		m := nm.new()
		for i, x := range xs {
			if r := m.Observe(t0, x); !(r.Score >= 0 && r.Score <= 1) {
				t.Fatalf("%s point %d (%v): score %v", nm.name, i, x, r.Score)
			}
		}
	}
	mv := NewMultivariate(3, MultivariateConfig{Warmup: 3})
	for i := 0; i+3 <= len(xs); i += 3 {
		r := mv.ObserveVec(t0, xs[i:i+3])
		if !(r.Score >= 0 && r.Score <= 1) {
			t.Fatalf("multivariate vector %d %v: score %v", i/3, xs[i:i+3], r.Score)
		}
		for _, c := range r.Contrib {
			if c < 0 || c > 1 {
				t.Fatalf("multivariate vector %d %v: contrib %v", i/3, xs[i:i+3], r.Contrib)
			}
		}
	}
	_, s := DetectPeriod(xs, 2, len(xs))
	if !(s >= 0 && s <= 1) {
		t.Fatalf("DetectPeriod strength %v", s)
	}
}

func TestNewModelsScoresInRange(t *testing.T) {
	xs := append([]float64(nil), extremes...)
	for i := 0; i < 300; i++ {
		xs = append(xs, float64(i%3))
		if i%50 == 0 {
			xs = append(xs, extremes...)
		}
	}
	checkScores(t, xs)
}

// FuzzModels feeds arbitrary float64 sequences (8 bytes each) to every new
// model: no panic, every score in [0,1].
func FuzzModels(f *testing.F) {
	enc := func(vs ...float64) []byte {
		b := make([]byte, 8*len(vs))
		for i, v := range vs {
			binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(v))
		}
		return b
	}
	f.Add(enc(extremes...))
	f.Add(enc(noisySine(200, 1)...))
	f.Add(enc(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1e308, -1e308, 1))
	f.Fuzz(func(t *testing.T, b []byte) {
		xs := make([]float64, len(b)/8)
		for i := range xs {
			xs[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
		}
		// Repeat short inputs so models pass their warm-ups.
		for len(xs) > 0 && len(xs) < 400 {
			xs = append(xs, xs...)
		}
		checkScores(t, xs)
	})
}

// TestBytesPerSeries measures the heap held per series by each new model
// after warm-up (1000 models, runtime.MemStats) against the 4 KB target.
// Under -race (make test) it measures 250, which reads about 100 bytes low
// (fixed overheads spread over fewer models) but keeps the warm-ups, which
// dominate, at 20 s instead of 80.
func TestBytesPerSeries(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 1000 models per kind")
	}
	series := 1000
	if raceEnabled {
		series = 250
	}
	kinds := []struct {
		name   string
		new    func() any
		warm   func(m any)
		budget float64
	}{
		{"bocpd", func() any { return NewBOCPD(BOCPDConfig{}) }, func(m any) {
			for _, x := range noisySine(200, 1) {
				m.(*BOCPD).Observe(t0, x)
			}
		}, 4096},
		{"decompose(period 288)", func() any { return NewDecompose(DecomposeConfig{Period: 288}) }, func(m any) {
			_, xs := dailyWave(3, 1)
			for _, x := range xs {
				m.(*Decompose).Observe(t0, x)
			}
		}, 4096},
		{"decompose(detecting, no period found)", func() any { return NewDecompose(DecomposeConfig{}) }, func(m any) {
			for _, x := range stepSeries(900, 900, 1, nil) {
				m.(*Decompose).Observe(t0, x)
			}
		}, 4096},
		// The default holds an ARTime: its store of up to 64 categories
		// (37 bytes each, full on this series) and its activation windows
		// and histogram take the ensemble from about 3,100 to about 7,100
		// bytes, outside the 4 KB target (see doc.go).
		{"default (NAB) ensemble", func() any { return NewDefaultEnsemble() }, func(m any) {
			for _, x := range noisySine(1000, 1) {
				m.(Model).Observe(t0, x)
			}
		}, 7.5 * 1024},
		{"compact (NAB) ensemble", func() any { return NewCompactEnsemble() }, func(m any) {
			for _, x := range noisySine(1000, 1) {
				m.(Model).Observe(t0, x)
			}
		}, 4096},
		{"online ewma", func() any { return NewOnlineModel() }, func(m any) {
			for _, x := range noisySine(1000, 1) {
				m.(Model).Observe(t0, x)
			}
		}, 4096},
		{"online robust-z", func() any { m, _ := NewOnlineModelNamed("robust-z"); return m }, func(m any) {
			for _, x := range noisySine(1000, 1) {
				m.(Model).Observe(t0, x)
			}
		}, 4096},
		{"online seasonal", func() any { m, _ := NewOnlineModelNamed("seasonal"); return m }, func(m any) {
			ts, xs := dailyWave(2, 1)
			for i, x := range xs {
				m.(Model).Observe(ts[i], x)
			}
		}, 4096},
		// Holt-Winters holds one index per step of each season: at 5
		// minutes, 288 daily and 2,016 weekly (the weekly one once two
		// weeks are seen); outside the 4 KB target by design.
		{"online holt-winters (daily fitted)", func() any { m, _ := NewOnlineModelNamed("holt-winters"); return m }, func(m any) {
			ts, xs := dailyWave(4, 1)
			for i, x := range xs {
				m.(Model).Observe(ts[i], x)
			}
		}, 24 << 10},
		// Until its fit (72 hours) it buffers the points: 16 bytes each
		// (Unix nanoseconds and value), plus the slices' growth room.
		{"online holt-winters (warming, 2 days buffered)", func() any { m, _ := NewOnlineModelNamed("holt-winters"); return m }, func(m any) {
			ts, xs := dailyWave(2, 1)
			for i, x := range xs {
				m.(Model).Observe(ts[i], x)
			}
		}, 16 << 10},
		{"multivariate(3)", func() any { return NewMultivariate(3, MultivariateConfig{}) }, func(m any) {
			for _, x := range kpis(100, 1) {
				m.(*Multivariate).ObserveVec(t0, x)
			}
		}, 4096},
	}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			_ = k.new() // shared tables, if any, are not per series
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			ms := make([]any, series)
			for i := range ms {
				ms[i] = k.new()
				k.warm(ms[i])
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			per := (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / float64(series)
			runtime.KeepAlive(ms)
			t.Logf("%s: %.0f bytes per series", k.name, per)
			if per > k.budget {
				t.Errorf("%.0f bytes per series, budget %.0f", per, k.budget)
			}
		})
	}
}

func benchModel(b *testing.B, m Model, xs []float64) {
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		m.Observe(t0, xs[i%len(xs)])
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "points/s")
}

func BenchmarkBOCPD(b *testing.B) { benchModel(b, NewBOCPD(BOCPDConfig{}), noisySine(4096, 5)) }

func BenchmarkDecompose(b *testing.B) {
	_, xs := dailyWave(14, 5)
	benchModel(b, NewDecompose(DecomposeConfig{Period: 288}), xs)
}

func BenchmarkMultivariate(b *testing.B) {
	xs := kpis(4096, 5)
	m := NewMultivariate(3, MultivariateConfig{})
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		m.ObserveVec(t0, xs[i&4095])
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "vectors/s")
}

func BenchmarkDetectPeriod(b *testing.B) {
	_, xs := dailyWave(3, 5)
	b.ReportAllocs()
	for b.Loop() {
		DetectPeriod(xs, 4, 288)
	}
	b.ReportMetric(float64(b.N*len(xs))/b.Elapsed().Seconds(), "points/s")
}
