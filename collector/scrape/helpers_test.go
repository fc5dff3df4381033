package scrape

import (
	"math"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/value"

	"opspilot/tsdb"
)

// recorder is a Sink that keeps every batch.
type recorder struct {
	mu      sync.Mutex
	batches [][]tsdb.TimeSeries
}

func (r *recorder) sink(tss []tsdb.TimeSeries) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches = append(r.batches, tss)
	return nil
}

func (r *recorder) snapshot() [][]tsdb.TimeSeries {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]tsdb.TimeSeries(nil), r.batches...)
}

func (r *recorder) calls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.batches)
}

// labelMap returns the labels of ts as a map.
func labelMap(ts tsdb.TimeSeries) map[string]string {
	m := make(map[string]string, len(ts.Labels))
	for _, l := range ts.Labels {
		m[l.Name] = l.Value
	}
	return m
}

// labelString is a stable rendering of the labels, for messages.
func labelString(ts tsdb.TimeSeries) string {
	parts := make([]string, 0, len(ts.Labels))
	for _, l := range ts.Labels {
		parts = append(parts, l.Name+"="+l.Value)
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, ",") + "}"
}

// matches reports whether ts has every label in want.
func matches(ts tsdb.TimeSeries, want map[string]string) bool {
	m := labelMap(ts)
	for k, v := range want {
		if m[k] != v {
			return false
		}
	}
	return true
}

// find returns the non-stale samples of all series matching want.
func find(batches [][]tsdb.TimeSeries, want map[string]string) []tsdb.Sample {
	var out []tsdb.Sample
	for _, b := range batches {
		for _, ts := range b {
			if !matches(ts, want) {
				continue
			}
			for _, s := range ts.Samples {
				if !value.IsStaleNaN(s.Value) {
					out = append(out, s)
				}
			}
		}
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func hasValue(samples []tsdb.Sample, v float64) bool {
	for _, s := range samples {
		if s.Value == v || (math.IsNaN(v) && math.IsNaN(s.Value)) {
			return true
		}
	}
	return false
}
