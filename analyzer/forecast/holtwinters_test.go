package forecast

import (
	"errors"
	"math"
	"reflect"
	"testing"
	"time"
)

const (
	pointsPerDay  = 288
	pointsPerWeek = 7 * pointsPerDay
)

// dayAhead fits on the first trainDays days, then for each later day
// forecasts the whole day from the previous day's end, scores it, and
// feeds the day's values to the model. It returns the MAE of the model,
// of the daily (y[t-1d]) and weekly (y[t-7d]) seasonal-naive forecasts,
// and the coverage of the 95% intervals.
func dayAhead(t *testing.T, ts []time.Time, vs []float64, trainDays int, cfg Config) (mae, maeDaily, maeWeekly, coverage float64) {
	t.Helper()
	n := trainDays * pointsPerDay
	h, err := Fit(ts[:n], vs[:n], cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("params: %+v", h.Params())
	var count, covered int
	for start := n; start+pointsPerDay <= len(vs); start += pointsPerDay {
		pts := h.Forecast(ts[start-1], 24*time.Hour, 0.95)
		if len(pts) != pointsPerDay {
			t.Fatalf("day-ahead forecast has %d points, want %d", len(pts), pointsPerDay)
		}
		for j, p := range pts {
			i := start + j
			if !p.T.Equal(ts[i]) {
				t.Fatalf("point %d at %s, want %s", j, p.T, ts[i])
			}
			y := vs[i]
			mae += math.Abs(y - p.Mean)
			maeDaily += math.Abs(y - vs[i-pointsPerDay])
			maeWeekly += math.Abs(y - vs[i-pointsPerWeek])
			if y >= p.Lower && y <= p.Upper {
				covered++
			}
			count++
		}
		for i := start; i < start+pointsPerDay; i++ {
			h.Update(ts[i], vs[i])
		}
	}
	c := float64(count)
	return mae / c, maeDaily / c, maeWeekly / c, float64(covered) / c
}

func TestForecastBeatsSeasonalNaive(t *testing.T) {
	ts, vs := synth(4*pointsPerWeek, step5m, 3, 1)
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"double seasonal", Config{}},
		{"damped", Config{Damped: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mae, daily, weekly, cov := dayAhead(t, ts, vs, 21, tc.cfg)
			t.Logf("MAE %.3f, daily naive %.3f (ratio %.3f), weekly naive %.3f (ratio %.3f), coverage %.3f",
				mae, daily, mae/daily, weekly, mae/weekly, cov)
			if mae/daily >= 1 || mae/weekly >= 1 {
				t.Errorf("MAE ratio to seasonal naive: daily %.3f, weekly %.3f; want < 1", mae/daily, mae/weekly)
			}
		})
	}
}

func TestIntervalCoverage(t *testing.T) {
	ts, vs := synth(4*pointsPerWeek, step5m, 3, 2)
	_, _, _, cov := dayAhead(t, ts, vs, 21, Config{})
	t.Logf("day-ahead 95%% coverage %.3f", cov)
	if cov < 0.85 || cov > 0.99 {
		t.Errorf("day-ahead 95%% interval coverage %.3f, want in [0.85, 0.99]", cov)
	}

	n := 21 * pointsPerDay
	h, err := Fit(ts[:n], vs[:n], Config{})
	if err != nil {
		t.Fatal(err)
	}
	var in int
	for i := n; i < len(vs); i++ {
		_, lo, hi := h.Update(ts[i], vs[i])
		if vs[i] >= lo && vs[i] <= hi {
			in++
		}
	}
	cov = float64(in) / float64(len(vs)-n)
	t.Logf("one-step 95%% coverage %.3f", cov)
	if cov < 0.85 || cov > 0.99 {
		t.Errorf("one-step 95%% interval coverage %.3f, want in [0.85, 0.99]", cov)
	}
}

func TestForecastIntervalsWiden(t *testing.T) {
	ts, vs := synth(3*pointsPerWeek, step5m, 3, 3)
	h, err := Fit(ts, vs, Config{})
	if err != nil {
		t.Fatal(err)
	}
	pts := h.Forecast(ts[len(ts)-1], 7*24*time.Hour, 0.95)
	if len(pts) != pointsPerWeek {
		t.Fatalf("got %d points, want %d", len(pts), pointsPerWeek)
	}
	for i := 1; i < len(pts); i++ {
		if w, prev := pts[i].Upper-pts[i].Lower, pts[i-1].Upper-pts[i-1].Lower; w < prev {
			t.Fatalf("interval narrows at %d: %v < %v", i, w, prev)
		}
	}
	if w0, wN := pts[0].Upper-pts[0].Lower, pts[len(pts)-1].Upper-pts[len(pts)-1].Lower; !(wN > w0) {
		t.Errorf("week-ahead width %v not above one-step width %v", wN, w0)
	}
}

func TestSeasonsBySpan(t *testing.T) {
	for _, tc := range []struct {
		name        string
		days        int
		cfg         Config
		wantSeasons []time.Duration
		wantDropped []time.Duration
	}{
		{"one day", 1, Config{}, nil, []time.Duration{24 * time.Hour, 168 * time.Hour}},
		{"three days", 3, Config{}, []time.Duration{24 * time.Hour}, []time.Duration{168 * time.Hour}},
		{"two weeks", 14, Config{}, []time.Duration{24 * time.Hour, 168 * time.Hour}, nil},
		{"non-seasonal", 14, Config{NonSeasonal: true}, nil, nil},
		{"unsorted config", 14, Config{Seasons: []time.Duration{168 * time.Hour, 24 * time.Hour}}, []time.Duration{24 * time.Hour, 168 * time.Hour}, nil},
		{"season below two steps", 3, Config{Seasons: []time.Duration{5 * time.Minute}}, nil, []time.Duration{5 * time.Minute}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts, vs := synth(tc.days*pointsPerDay+1, step5m, 1, 4)
			h, err := Fit(ts, vs, Config{Seasons: tc.cfg.Seasons, NonSeasonal: tc.cfg.NonSeasonal, MaxEvaluations: 200})
			if err != nil {
				t.Fatal(err)
			}
			p := h.Params()
			if !reflect.DeepEqual(p.Seasons, tc.wantSeasons) || !reflect.DeepEqual(p.Dropped, tc.wantDropped) {
				t.Errorf("seasons %v dropped %v, want %v dropped %v", p.Seasons, p.Dropped, tc.wantSeasons, tc.wantDropped)
			}
			if len(p.Gammas) != len(p.Seasons) {
				t.Errorf("%d gammas for %d seasons", len(p.Gammas), len(p.Seasons))
			}
			if p.Step != step5m {
				t.Errorf("step %s, want %s", p.Step, step5m)
			}
		})
	}
}

func TestGapsAndNaN(t *testing.T) {
	ts, vs := synth(3*pointsPerWeek+pointsPerDay, step5m, 3, 5)
	n := 3 * pointsPerWeek
	// A NaN block, an Inf, and six hours of points missing altogether.
	gapVs := append([]float64(nil), vs[:n]...)
	for i := 2000; i < 2100; i++ {
		gapVs[i] = math.NaN()
	}
	gapVs[3000] = math.Inf(1)
	var gts []time.Time
	var gvs []float64
	for i := range n {
		if i >= 4000 && i < 4072 {
			continue
		}
		gts, gvs = append(gts, ts[i]), append(gvs, gapVs[i])
	}
	full, err := Fit(ts[:n], vs[:n], Config{})
	if err != nil {
		t.Fatal(err)
	}
	gap, err := Fit(gts, gvs, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if p := gap.Params(); p.Slots != n || p.Observations != n-100-1-72 {
		t.Errorf("slots %d observations %d, want %d and %d", p.Slots, p.Observations, n, n-173)
	}
	score := func(h *HoltWinters) float64 {
		var mae float64
		for i, p := range h.Forecast(ts[n-1], 24*time.Hour, 0.95) {
			if !isFinite(p.Mean) || !isFinite(p.Lower) || !isFinite(p.Upper) {
				t.Fatalf("non-finite forecast %+v", p)
			}
			mae += math.Abs(p.Mean - vs[n+i])
		}
		return mae / pointsPerDay
	}
	fm, gm := score(full), score(gap)
	t.Logf("day-ahead MAE full %.3f, with gaps %.3f", fm, gm)
	if gm > 1.5*fm {
		t.Errorf("gaps raised day-ahead MAE from %.3f to %.3f", fm, gm)
	}

	// Streaming: NaN points and skipped time advance the state alike, and
	// the band is wider after a gap.
	a, b := full.Clone(), full.Clone()
	for i := n; i < n+12; i++ {
		a.Update(ts[i], math.NaN())
	}
	fc := a.Forecast(ts[n+11], step5m, 0.95)
	ea, la, ua := a.Update(ts[n+12], vs[n+12])
	if len(fc) != 1 || math.Abs(fc[0].Mean-ea) > 1e-9 || math.Abs(fc[0].Lower-la) > 1e-9 || math.Abs(fc[0].Upper-ua) > 1e-9 {
		t.Errorf("Forecast after a gap %+v disagrees with Update (%v %v %v)", fc, ea, la, ua)
	}
	eb, lb, ub := b.Update(ts[n+12], vs[n+12])
	if math.Abs(ea-eb) > 1e-9 || math.Abs(la-lb) > 1e-9 || math.Abs(ua-ub) > 1e-9 {
		t.Errorf("NaN points gave (%v %v %v), skipped time (%v %v %v)", ea, la, ua, eb, lb, ub)
	}
	c := full.Clone()
	_, lc, uc := c.Update(ts[n], vs[n])
	if !(ua-la > uc-lc) {
		t.Errorf("band after 12 missing steps %v not wider than one-step band %v", ua-la, uc-lc)
	}
	if e, lo, hi := c.Update(ts[n], vs[n]); !math.IsNaN(e) || !math.IsNaN(lo) || !math.IsNaN(hi) {
		t.Errorf("repeated timestamp gave (%v %v %v), want NaNs", e, lo, hi)
	}
}

func TestFitErrors(t *testing.T) {
	ts, vs := synth(100, step5m, 1, 6)
	nan := func(n int) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = math.NaN()
		}
		return v
	}
	dup := append([]time.Time(nil), ts...)
	dup[50] = dup[49]
	rev := append([]time.Time(nil), ts...)
	rev[10], rev[11] = rev[11], rev[10]
	huge := append([]float64(nil), vs...)
	huge[7] = 1e200
	for _, tc := range []struct {
		name string
		ts   []time.Time
		vs   []float64
		cfg  Config
		want error
	}{
		{"no points", nil, nil, Config{}, ErrNoData},
		{"length mismatch", ts, vs[:99], Config{}, ErrLengthMismatch},
		{"duplicate timestamp", dup, vs, Config{}, ErrNotIncreasing},
		{"decreasing timestamp", rev, vs, Config{}, ErrNotIncreasing},
		{"single point", ts[:1], vs[:1], Config{}, ErrTooFewPoints},
		{"two points", ts[:2], vs[:2], Config{}, ErrTooFewPoints},
		{"all NaN", ts, nan(100), Config{}, ErrTooFewPoints},
		{"too many seasons", ts, vs, Config{Seasons: []time.Duration{time.Hour, 2 * time.Hour, 3 * time.Hour}}, ErrBadConfig},
		{"zero season", ts, vs, Config{Seasons: []time.Duration{0}}, ErrBadConfig},
		{"negative step", ts, vs, Config{Step: -time.Second}, ErrBadConfig},
		{"bad level", ts, vs, Config{Level: 1.5}, ErrBadConfig},
		{"tiny step over long span", []time.Time{t0, t0.Add(time.Second), t0.Add(365 * 24 * time.Hour)}, []float64{1, 2, 3}, Config{Step: time.Nanosecond}, ErrBadConfig},
		{"huge value", ts, huge, Config{}, ErrNumerical},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := Fit(tc.ts, tc.vs, tc.cfg)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Fit error %v, want %v", err, tc.want)
			}
			if h != nil {
				t.Errorf("got a model with an error")
			}
			t.Log(err)
		})
	}
}

func TestCheckpointRoundTrip(t *testing.T) {
	ts, vs := synth(2*pointsPerWeek+2*pointsPerDay, step5m, 3, 7)
	n := 2 * pointsPerWeek
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"double seasonal", Config{MaxEvaluations: 300}},
		{"damped", Config{Damped: true, MaxEvaluations: 300}},
		{"non-seasonal", Config{NonSeasonal: true, MaxEvaluations: 300}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orig, err := Fit(ts[:n], vs[:n], tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			// Leave a trailing gap so the restored band width depends on it.
			for i := n; i < n+100; i++ {
				v := vs[i]
				if i >= n+95 {
					v = math.NaN()
				}
				orig.Update(ts[i], v)
			}
			data, err := orig.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var restored HoltWinters
			if err := restored.UnmarshalBinary(data); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(orig.Params(), restored.Params()) {
				t.Errorf("params differ:\n%+v\n%+v", orig.Params(), restored.Params())
			}
			from := ts[n+99]
			if a, b := orig.Forecast(from, 24*time.Hour, 0.9), restored.Forecast(from, 24*time.Hour, 0.9); !reflect.DeepEqual(a, b) {
				t.Errorf("forecasts differ after restore")
			}
			for i := n + 100; i < len(vs); i++ {
				e1, l1, u1 := orig.Update(ts[i], vs[i])
				e2, l2, u2 := restored.Update(ts[i], vs[i])
				if e1 != e2 || l1 != l2 || u1 != u2 {
					t.Fatalf("point %d: original (%v %v %v), restored (%v %v %v)", i, e1, l1, u1, e2, l2, u2)
				}
			}
			again, _ := restored.MarshalBinary()
			final, _ := orig.MarshalBinary()
			if !reflect.DeepEqual(again, final) {
				t.Errorf("checkpoints differ after identical updates")
			}
		})
	}
}

func TestUnmarshalRejectsCorrupt(t *testing.T) {
	ts, vs := synth(3*pointsPerDay, step5m, 1, 8)
	h, err := Fit(ts, vs, Config{MaxEvaluations: 100})
	if err != nil {
		t.Fatal(err)
	}
	good, _ := h.MarshalBinary()
	badAlpha := append([]byte(nil), good...)
	copy(badAlpha[4+7*8+2*8:], []byte{0, 0, 0, 0, 0, 0, 0xf8, 0x7f}) // alpha = NaN
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"bad magic", append([]byte("XXXX"), good[4:]...)},
		{"truncated", good[:len(good)-3]},
		{"trailing bytes", append(append([]byte(nil), good...), 0)},
		{"NaN alpha", badAlpha},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r HoltWinters
			if err := r.UnmarshalBinary(tc.data); !errors.Is(err, ErrBadState) {
				t.Errorf("UnmarshalBinary error %v, want ErrBadState", err)
			}
		})
	}
}

func TestOptimiser(t *testing.T) {
	t.Logf("minimize implementation: %s", minimizeImpl)
	// Rosenbrock-like bowl in 3 dimensions with the minimum at (1, 2, -1).
	f := func(x []float64) float64 {
		return (x[0]-1)*(x[0]-1) + 10*(x[1]-2)*(x[1]-2) + (x[2]+1)*(x[2]+1)
	}
	x, fx, n := minimize(f, []float64{0, 0, 0}, 2000)
	if fx > 1e-6 || math.Abs(x[0]-1) > 1e-2 || math.Abs(x[1]-2) > 1e-2 || math.Abs(x[2]+1) > 1e-2 {
		t.Errorf("minimum %v (f=%v) after %d evaluations, want (1,2,-1)", x, fx, n)
	}
	if n > 2000 {
		t.Errorf("%d evaluations over the budget of 2000", n)
	}
}
