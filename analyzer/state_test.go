package analyzer

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// statefulModels are every model the online analyzer may checkpoint.
var statefulModels = map[string]func() Model{
	"ewma":        func() Model { return NewEWMA(EWMAConfig{}) },
	"cusum":       func() Model { return NewCUSUM(CUSUMConfig{}) },
	"novelty":     func() Model { return NewNovelty(NoveltyConfig{}) },
	"robustz":     func() Model { return NewRobustZ(RobustZConfig{}) },
	"seasonal":    func() Model { return NewSeasonal(SeasonalConfig{}) },
	"differenced": func() Model { return NewDifferenced(NewEWMA(EWMAConfig{})) },
	"quantiledamp": func() Model {
		return NewQuantileDamp(NewCUSUM(CUSUMConfig{}), QuantileDampConfig{Ref: 0.005})
	},
	"default":     NewDefaultEnsemble,
	"online":      NewOnlineModel,
	"holtwinters": func() Model { return NewHoltWinters(HoltWintersConfig{}) },
	"bocpd":       func() Model { return NewBOCPD(BOCPDConfig{}) },
	"pattern":     func() Model { return NewPattern(PatternConfig{}) },
	"context":     func() Model { return NewContext(ContextConfig{}) },
	"artime":      func() Model { return NewARTime(ARTimeConfig{Probation: 300}) },
	// a small store replacing categories all along, by their matches
	"artime-credit": func() Model {
		return NewARTime(ARTimeConfig{Probation: 300, MaxCategories: 8, MatchCredit: 20})
	},
	"decompose": func() Model { return NewDecompose(DecomposeConfig{Period: 288}) },
	"detecting": func() Model { return NewDecompose(DecomposeConfig{}) },
}

// stateSeries is a noisy daily wave at 5-minute steps with a level shift
// and a spike, so every model's state moves.
func stateSeries(n int) ([]time.Time, []float64) {
	rng := rand.New(rand.NewPCG(7, 7))
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ts, vs := make([]time.Time, n), make([]float64, n)
	for i := range n {
		ts[i] = t0.Add(time.Duration(i) * 5 * time.Minute)
		vs[i] = 50 + 10*math.Sin(2*math.Pi*float64(i)/288) + rng.NormFloat64()
		if i > n/2 {
			vs[i] += 15
		}
		if i == n*3/4 {
			vs[i] = 400
		}
	}
	return ts, vs
}

// A model restored from saved state scores the following points exactly
// as the model that never stopped.
func TestStateRoundTripGivesSameScores(t *testing.T) {
	ts, vs := stateSeries(2000)
	for name, newModel := range statefulModels {
		t.Run(name, func(t *testing.T) {
			for _, cut := range []int{0, 1, 20, 700, 1400} {
				a := newModel()
				for i := range cut {
					a.Observe(ts[i], vs[i])
				}
				b, err := MarshalState(a)
				if err != nil {
					t.Fatal(err)
				}
				restored := newModel()
				if err := UnmarshalState(restored, b); err != nil {
					t.Fatalf("cut %d: %v", cut, err)
				}
				for i := cut; i < len(vs); i++ {
					want, got := a.Observe(ts[i], vs[i]), restored.Observe(ts[i], vs[i])
					if !sameResult(want, got) {
						t.Fatalf("cut %d, point %d: restored model gave %+v, original %+v", cut, i, got, want)
					}
				}
			}
		})
	}
}

func sameResult(a, b Result) bool {
	eq := func(x, y float64) bool { return x == y || (math.IsNaN(x) && math.IsNaN(y)) }
	return eq(a.Score, b.Score) && eq(a.Expected, b.Expected) && eq(a.Lower, b.Lower) && eq(a.Upper, b.Upper)
}

// State saved by a differently configured model, truncated, or foreign is
// refused with a reason, so the series starts fresh instead of misreading.
func TestStateRefusesOtherShapes(t *testing.T) {
	small := NewRobustZ(RobustZConfig{Window: 16})
	ts, vs := stateSeries(40)
	for i := range ts {
		small.Observe(ts[i], vs[i])
	}
	b, err := MarshalState(small)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		model Model
		data  []byte
		want  string
	}{
		{"other window", NewRobustZ(RobustZConfig{Window: 128}), b, "entries"},
		{"truncated", NewRobustZ(RobustZConfig{Window: 16}), b[:len(b)-5], "truncated"},
		{"another model", NewEWMA(EWMAConfig{}), b, "another shape"},
		{"not state", NewEWMA(EWMAConfig{}), []byte("hello"), "not a saved model state"},
		{"other version", NewEWMA(EWMAConfig{}), append([]byte(stateMagic), 99), "version 99"},
	} {
		err := UnmarshalState(tc.model, tc.data)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

func FuzzUnmarshalState(f *testing.F) {
	for _, newModel := range statefulModels {
		m := newModel()
		ts, vs := stateSeries(300)
		for i := range ts {
			m.Observe(ts[i], vs[i])
		}
		b, _ := MarshalState(m)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, newModel := range statefulModels {
			m := newModel()
			if UnmarshalState(m, b) == nil {
				// Whatever was accepted must still score without panicking.
				r := m.Observe(time.Unix(0, 0), 1)
				if math.IsNaN(r.Score) || r.Score < 0 || r.Score > 1 {
					t.Fatalf("%T restored from %x scores %v", m, b, r.Score)
				}
			}
		}
	})
}

func TestMultivariateStateRoundTrip(t *testing.T) {
	ts, vs := stateSeries(1200)
	vec := func(i int) []float64 { return []float64{vs[i], 2*vs[i] + math.Sin(float64(i)), 10 - vs[i]/5} }
	a := NewMultivariate(3, MultivariateConfig{})
	for i := range 600 {
		a.ObserveVec(ts[i], vec(i))
	}
	b, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	restored := NewMultivariate(3, MultivariateConfig{})
	if err := restored.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	for i := 600; i < len(vs); i++ {
		want, got := a.ObserveVec(ts[i], vec(i)), restored.ObserveVec(ts[i], vec(i))
		if want.Score != got.Score || want.Expected[1] != got.Expected[1] || want.Upper[2] != got.Upper[2] {
			t.Fatalf("point %d: restored %+v, original %+v", i, got, want)
		}
	}
	if err := NewMultivariate(2, MultivariateConfig{}).UnmarshalBinary(b); err == nil || !strings.Contains(err.Error(), "3 dimensions") {
		t.Errorf("a 2-dimensional model took a 3-dimensional state: %v", err)
	}
	if err := NewMultivariate(3, MultivariateConfig{}).UnmarshalBinary(b[:len(b)-3]); err == nil {
		t.Error("a truncated state was accepted")
	}
}
