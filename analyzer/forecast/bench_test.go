package forecast

import (
	"testing"
	"time"
)

func BenchmarkFit4Weeks5m(b *testing.B) {
	ts, vs := synth(4*pointsPerWeek, step5m, 3, 11)
	b.ReportAllocs()
	var evals int
	for b.Loop() {
		h, err := Fit(ts, vs, Config{})
		if err != nil {
			b.Fatal(err)
		}
		evals = h.Params().Evaluations
	}
	b.ReportMetric(float64(evals), "evals/op")
}

func BenchmarkUpdate(b *testing.B) {
	ts, vs := synth(4*pointsPerWeek, step5m, 3, 12)
	h, err := Fit(ts[:3*pointsPerWeek], vs[:3*pointsPerWeek], Config{MaxEvaluations: 300})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	t := ts[len(ts)-1]
	i := 0
	for b.Loop() {
		t = t.Add(step5m)
		h.Update(t, vs[i%len(vs)])
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "points/s")
}

func BenchmarkForecast30Days(b *testing.B) {
	ts, vs := synth(4*pointsPerWeek, step5m, 3, 13)
	h, err := Fit(ts, vs, Config{MaxEvaluations: 300})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		h.Forecast(ts[len(ts)-1], 30*24*time.Hour, 0.95)
	}
}
