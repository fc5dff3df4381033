package forecast

import (
	"errors"
	"math"
	"testing"
	"time"
)

func TestExhaustion(t *testing.T) {
	end := t0.Add(21 * 24 * time.Hour)
	day := 24 * time.Hour
	flatTs, flatVs := synth(3*pointsPerWeek, step5m, 2, 9)
	for i := range flatVs { // remove the trend: 2/day
		flatVs[i] -= 2 * flatTs[i].Sub(t0).Hours() / 24
	}
	longTs, longVs := linear(3*pointsPerWeek, step5m, end, 50, 1)
	shortTs, shortVs := linear(pointsPerDay, step5m, end, 50, 1)
	weekTs, weekVs := linear(pointsPerWeek, step5m, end, 50, 1)
	capTs := []time.Time{longTs[0], longTs[1000], longTs[2000]}
	for _, tc := range []struct {
		name           string
		ts             []time.Time
		vs             []float64
		capacity       Capacity
		cfg            CapacityConfig
		wantMethod     string
		wantConfidence Confidence
		wantRemaining  time.Duration // 0: never exhausted within the horizon
		wantExhausted  bool
	}{
		{"linear 3 weeks", longTs, longVs, ConstantCapacity(80), CapacityConfig{Horizon: 40 * day}, MethodHoltWinters, ConfidenceHigh, 30 * day, false},
		{"linear 1 day", shortTs, shortVs, ConstantCapacity(80), CapacityConfig{Horizon: 40 * day}, MethodLinear, ConfidenceLow, 30 * day, false},
		{"linear 1 week", weekTs, weekVs, ConstantCapacity(80), CapacityConfig{Horizon: 40 * day}, MethodHoltWinters, ConfidenceMedium, 30 * day, false},
		{"threshold 0.8", longTs, longVs, ConstantCapacity(100), CapacityConfig{Horizon: 40 * day, Threshold: 0.8}, MethodHoltWinters, ConfidenceHigh, 30 * day, false},
		{"capacity series", longTs, longVs, CapacitySeries(capTs, []float64{60, 70, 80}), CapacityConfig{Horizon: 40 * day}, MethodHoltWinters, ConfidenceHigh, 30 * day, false},
		{"beyond horizon", longTs, longVs, ConstantCapacity(80), CapacityConfig{Horizon: 20 * day}, MethodHoltWinters, ConfidenceHigh, 0, false},
		{"never reaches", flatTs, flatVs, ConstantCapacity(200), CapacityConfig{}, MethodHoltWinters, ConfidenceHigh, 0, false},
		{"already exhausted", longTs, longVs, ConstantCapacity(40), CapacityConfig{}, MethodHoltWinters, ConfidenceHigh, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Exhaustion(tc.ts, tc.vs, tc.capacity, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s/%s: %s; growth %.4f/day; exhaust %s (%s), pessimistic %s (%s)",
				r.Method, r.Confidence, r.Reason, r.GrowthPerDay, r.ExhaustAt, r.Remaining, r.ExhaustAtPessimistic, r.RemainingPessimistic)
			if r.Method != tc.wantMethod || r.Confidence != tc.wantConfidence {
				t.Errorf("method %s confidence %s, want %s %s", r.Method, r.Confidence, tc.wantMethod, tc.wantConfidence)
			}
			if (r.Method == MethodHoltWinters) != (r.Params != nil) {
				t.Errorf("method %s with params %v", r.Method, r.Params)
			}
			if r.AlreadyExhausted != tc.wantExhausted {
				t.Errorf("AlreadyExhausted %v, want %v", r.AlreadyExhausted, tc.wantExhausted)
			}
			switch {
			case tc.wantExhausted:
				if !r.ExhaustAt.Equal(r.DataEnd) || r.Remaining != 0 {
					t.Errorf("exhausted: ExhaustAt %s remaining %s, want DataEnd and 0", r.ExhaustAt, r.Remaining)
				}
			case tc.wantRemaining == 0:
				if !r.ExhaustAt.IsZero() || r.Remaining != 0 {
					t.Errorf("ExhaustAt %s remaining %s, want none", r.ExhaustAt, r.Remaining)
				}
			default:
				if d := r.Remaining - tc.wantRemaining; d < -r.Step || d > r.Step {
					t.Errorf("remaining %s, want %s ± %s", r.Remaining, tc.wantRemaining, r.Step)
				}
				if !r.ExhaustAt.Equal(r.DataEnd.Add(r.Remaining)) {
					t.Errorf("ExhaustAt %s != DataEnd+Remaining", r.ExhaustAt)
				}
				if r.ExhaustAtPessimistic.IsZero() || r.ExhaustAtPessimistic.After(r.ExhaustAt) {
					t.Errorf("pessimistic %s after expected %s", r.ExhaustAtPessimistic, r.ExhaustAt)
				}
				if math.Abs(r.GrowthPerDay-1) > 1e-3 {
					t.Errorf("growth %.6f/day, want 1", r.GrowthPerDay)
				}
			}
			if len(r.Forecast) == 0 {
				t.Fatal("no forecast points")
			}
			if got := r.Forecast[1].T.Sub(r.Forecast[0].T); got != time.Hour {
				t.Errorf("report points %s apart, want 1h", got)
			}
			for _, p := range r.Forecast {
				if !(p.Lower <= p.Mean && p.Mean <= p.Upper) || !isFinite(p.Lower) || !isFinite(p.Upper) {
					t.Fatalf("bad point %+v", p)
				}
			}
		})
	}
}

func TestExhaustionErrors(t *testing.T) {
	ts, vs := linear(100, step5m, t0, 50, 1)
	for _, tc := range []struct {
		name     string
		ts       []time.Time
		vs       []float64
		capacity Capacity
		cfg      CapacityConfig
		want     error
	}{
		{"no data", nil, nil, ConstantCapacity(1), CapacityConfig{}, ErrNoData},
		{"mismatch", ts, vs[:3], ConstantCapacity(1), CapacityConfig{}, ErrLengthMismatch},
		{"unsorted", []time.Time{t0, t0, t0.Add(time.Minute)}, []float64{1, 2, 3}, ConstantCapacity(1), CapacityConfig{}, ErrNotIncreasing},
		{"zero capacity", ts, vs, ConstantCapacity(0), CapacityConfig{}, ErrBadConfig},
		{"NaN capacity", ts, vs, ConstantCapacity(math.NaN()), CapacityConfig{}, ErrBadConfig},
		{"capacity series mismatch", ts, vs, CapacitySeries(ts[:2], []float64{1}), CapacityConfig{}, ErrLengthMismatch},
		{"capacity series all NaN", ts, vs, CapacitySeries(ts[:1], []float64{math.NaN()}), CapacityConfig{}, ErrTooFewPoints},
		{"negative threshold", ts, vs, ConstantCapacity(1), CapacityConfig{Threshold: -1}, ErrBadConfig},
		{"bad level", ts, vs, ConstantCapacity(1), CapacityConfig{Level: 1}, ErrBadConfig},
		{"two finite points", ts[:3], []float64{1, math.NaN(), 2}, ConstantCapacity(5), CapacityConfig{}, ErrTooFewPoints},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Exhaustion(tc.ts, tc.vs, tc.capacity, tc.cfg)
			if !errors.Is(err, tc.want) || r != nil {
				t.Fatalf("got (%v, %v), want error %v", r, err, tc.want)
			}
			t.Log(err)
		})
	}
}
