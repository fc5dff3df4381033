package loadgen

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// Progress is the live state of a run, for a progress bar.
type Progress struct {
	Elapsed                   time.Duration
	Sent, OK, Failed, Dropped int
	InFlight                  int
	Rate                      float64 // offered rate scheduled now, requests/s
	SentPerSecond             float64 // requests sent per second since the previous call
	Done                      bool    // the final call: the run is over
}

// Report is the outcome of a run. Sent = OK + Failed + Aborted; Dropped
// requests were due but not sent (concurrency cap).
type Report struct {
	Target string
	// Elapsed is how long load was offered (Duration, or less if
	// cancelled); waiting for the last responses is not included.
	Elapsed time.Duration
	Sent    int
	OK      int // 2xx
	Failed  int // other statuses and transport errors
	Dropped int
	Aborted int // in flight when the run was cancelled
	// ByStatus counts responses by HTTP status.
	ByStatus map[int]int
	// Errors counts transport errors by kind: timeout, connection
	// refused, connection reset, dns, other.
	Errors map[string]int
	// ErrorSamples holds the first error text of each kind in Errors, and
	// the start of the first body of each failing status ("HTTP 503").
	ErrorSamples map[string]string
	// Latency percentiles of OK responses (nearest rank), and the maximum.
	P50, P95, P99, Max time.Duration
}

// OfferedRate is the mean offered rate over the run, sent and dropped.
func (r Report) OfferedRate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Sent+r.Dropped) / r.Elapsed.Seconds()
}

// String is a short human summary.
func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d sent in %s (%.1f/s offered), %d ok, %d failed, %d dropped",
		r.Target, r.Sent, r.Elapsed.Round(time.Millisecond), r.OfferedRate(), r.OK, r.Failed, r.Dropped)
	if r.Aborted > 0 {
		fmt.Fprintf(&b, ", %d aborted", r.Aborted)
	}
	if r.OK > 0 {
		fmt.Fprintf(&b, "\nlatency of ok requests: p50 %s, p95 %s, p99 %s, max %s",
			r.P50.Round(time.Microsecond), r.P95.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.Max.Round(time.Microsecond))
	}
	for _, code := range slices.Sorted(maps.Keys(r.ByStatus)) {
		fmt.Fprintf(&b, "\nHTTP %d: %d", code, r.ByStatus[code])
	}
	for _, kind := range slices.Sorted(maps.Keys(r.Errors)) {
		fmt.Fprintf(&b, "\n%s: %d (first: %s)", kind, r.Errors[kind], r.ErrorSamples[kind])
	}
	for _, key := range slices.Sorted(maps.Keys(r.ErrorSamples)) {
		if strings.HasPrefix(key, "HTTP ") {
			fmt.Fprintf(&b, "\nfirst %s body: %s", key, r.ErrorSamples[key])
		}
	}
	return b.String()
}

func (s *stats) report(target string, elapsed time.Duration) Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	lat := slices.Clone(s.lat)
	slices.Sort(lat)
	r := Report{
		Target: target, Elapsed: elapsed,
		Sent: int(s.sent.Load()), OK: int(s.ok.Load()), Failed: int(s.failed.Load()),
		Dropped: int(s.dropped.Load()), Aborted: int(s.aborted.Load()),
		ByStatus: maps.Clone(s.byStatus), Errors: maps.Clone(s.errors), ErrorSamples: maps.Clone(s.samples),
		P50: percentile(lat, 0.50), P95: percentile(lat, 0.95), P99: percentile(lat, 0.99),
	}
	if len(lat) > 0 {
		r.Max = lat[len(lat)-1]
	}
	return r
}

// percentile is the nearest-rank q-quantile of sorted: the smallest value
// with at least q of the values at or below it.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
