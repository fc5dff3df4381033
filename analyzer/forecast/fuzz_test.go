package forecast

import (
	"encoding/binary"
	"math"
	"testing"
	"time"
)

// FuzzFit feeds arbitrary timestamps (byte deltas in seconds, 0 makes them
// non-increasing) and arbitrary float64 bits (NaN, ±Inf, huge, tiny) to
// Fit. It must never panic, and a model it returns must be finite,
// forecast finite values and survive a checkpoint round trip.
func FuzzFit(f *testing.F) {
	seed := func(vals ...float64) []byte {
		var b []byte
		for _, v := range vals {
			b = append(b, 30)
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
		}
		return b
	}
	f.Add(seed(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12), false)
	f.Add(seed(1, math.NaN(), 3, math.Inf(1), 5, math.Inf(-1), 7, 8), true)
	f.Add(seed(1e300, -1e300, 1e-300, 0, 5, 6), false)
	f.Add(seed(0, 0, 0, 0, 0, 0, 0, 0, 0, 0), true)
	f.Fuzz(func(t *testing.T, data []byte, damped bool) {
		var ts []time.Time
		var vs []float64
		now := t0
		for len(data) >= 9 {
			now = now.Add(time.Duration(data[0]) * time.Second)
			ts = append(ts, now)
			vs = append(vs, math.Float64frombits(binary.LittleEndian.Uint64(data[1:9])))
			data = data[9:]
		}
		cfg := Config{Seasons: []time.Duration{2 * time.Minute, 10 * time.Minute}, Damped: damped, MaxEvaluations: 200}
		h, err := Fit(ts, vs, cfg)
		if err != nil {
			if h != nil {
				t.Fatal("model returned with an error")
			}
			return
		}
		p := h.Params()
		for _, v := range append([]float64{p.Alpha, p.Beta, p.Phi, p.Sigma}, p.Gammas...) {
			if !isFinite(v) {
				t.Fatalf("non-finite params %+v", p)
			}
		}
		for _, pt := range h.Forecast(ts[len(ts)-1], time.Hour, 0.95) {
			if !isFinite(pt.Mean) || !isFinite(pt.Lower) || !isFinite(pt.Upper) {
				t.Fatalf("non-finite forecast %+v (params %+v)", pt, p)
			}
		}
		b, err := h.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var r HoltWinters
		if err := r.UnmarshalBinary(b); err != nil {
			t.Fatalf("restore own checkpoint: %v", err)
		}
		next := h.Next()
		e1, _, _ := h.Update(next, 1)
		e2, _, _ := r.Update(next, 1)
		if e1 != e2 && !(math.IsNaN(e1) && math.IsNaN(e2)) {
			t.Fatalf("restored model expects %v, original %v", e2, e1)
		}
	})
}

// FuzzUnmarshalBinary: corrupt checkpoints must give an error or a
// usable model, never a panic.
func FuzzUnmarshalBinary(f *testing.F) {
	ts, vs := synth(3*pointsPerDay, step5m, 1, 10)
	h, err := Fit(ts, vs, Config{Seasons: []time.Duration{time.Hour, 24 * time.Hour}, MaxEvaluations: 50})
	if err != nil {
		f.Fatal(err)
	}
	good, _ := h.MarshalBinary()
	f.Add(good)
	f.Add(good[:40])
	f.Fuzz(func(t *testing.T, data []byte) {
		var r HoltWinters
		if err := r.UnmarshalBinary(data); err != nil {
			return
		}
		r.Update(r.Next(), 1)
		r.Forecast(r.Next(), time.Hour, 0.9)
		r.Params()
	})
}
