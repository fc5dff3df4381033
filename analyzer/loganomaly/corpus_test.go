package loganomaly

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// corpus generates a realistic mixed log corpus: web access lines, app
// key=value lines, Go and Java errors, database, kernel, scheduler and
// cache lines, in skewed proportions (a few shapes dominate, as in
// production), with variable ids, addresses, durations and quoted values.
func corpus(n int, seed uint64) []string {
	r := rand.New(rand.NewPCG(seed, 42))
	ip := func() string {
		return fmt.Sprintf("10.%d.%d.%d", r.IntN(256), r.IntN(256), r.IntN(256))
	}
	hex := func(k int) string {
		const digits = "0123456789abcdef"
		var b strings.Builder
		for range k {
			b.WriteByte(digits[r.IntN(16)])
		}
		s := b.String()
		return s[:k-1] + "7" // at least one digit, so it masks as hex
	}
	uuid := func() string {
		return fmt.Sprintf("%s-%s-4%s-a%s-%s", hex(8), hex(4), hex(3), hex(3), hex(12))
	}
	dur := func() string {
		switch r.IntN(3) {
		case 0:
			return fmt.Sprintf("%dms", r.IntN(900)+1)
		case 1:
			return fmt.Sprintf("%.3fs", r.Float64()*5)
		default:
			return fmt.Sprintf("%dus", r.IntN(900)+1)
		}
	}
	users := []string{"alice", "bob", "carol", "dave", "erin", "frank"}
	paths := []string{"/api/v1/orders", "/api/v1/users", "/healthz", "/metrics", "/api/v2/cart/items", "/login", "/static/app.js"}
	methods := []string{"GET", "GET", "GET", "POST", "PUT", "DELETE"}
	tables := []string{"orders", "users", "payments", "sessions"}
	ts := func() string {
		return fmt.Sprintf("2026-11-%02dT%02d:%02d:%02d.%03dZ", r.IntN(28)+1, r.IntN(24), r.IntN(60), r.IntN(60), r.IntN(1000))
	}
	shapes := []struct {
		weight int
		gen    func() string
	}{
		{30, func() string {
			return fmt.Sprintf(`%s - - [%s] "%s %s/%d HTTP/1.1" %d %d "-" "Mozilla/5.0" rt=%s`,
				ip(), ts(), methods[r.IntN(len(methods))], paths[r.IntN(len(paths))], r.IntN(10000),
				[]int{200, 200, 200, 201, 204, 304, 404, 500}[r.IntN(8)], r.IntN(50000), dur())
		}},
		{20, func() string {
			return fmt.Sprintf(`level=info msg="request served" method=%s path=%s status=200 duration=%s trace_id=%s user=%s`,
				methods[r.IntN(len(methods))], paths[r.IntN(len(paths))], dur(), hex(32), users[r.IntN(len(users))])
		}},
		{10, func() string {
			return fmt.Sprintf("INFO  [worker-%d] processed batch %d of %d items in %s", r.IntN(16), r.IntN(100000), r.IntN(500)+1, dur())
		}},
		{8, func() string {
			return fmt.Sprintf("DEBUG cache hit key=user:%d:profile ttl=%ds size=%dB", r.IntN(1e6), r.IntN(3600), r.IntN(1<<16))
		}},
		{6, func() string {
			return fmt.Sprintf("Connected to postgres at %s:5432 database=%s pool=%d/%d", ip(), tables[r.IntN(len(tables))], r.IntN(20), 20)
		}},
		{5, func() string {
			return fmt.Sprintf("WARN slow query took %s: SELECT * FROM %s WHERE id = %d", dur(), tables[r.IntN(len(tables))], r.IntN(1e7))
		}},
		{4, func() string {
			return fmt.Sprintf("Scheduled pod %s/web-%s-%s on node-%d", "default", hex(9), hex(5), r.IntN(40))
		}},
		{4, func() string {
			return fmt.Sprintf("session %s created for user %s from %s", uuid(), users[r.IntN(len(users))], ip())
		}},
		{3, func() string {
			return fmt.Sprintf("ERROR failed to charge order %d: payment gateway timeout after %s (attempt %d/3)", r.IntN(1e6), dur(), r.IntN(3)+1)
		}},
		{2, func() string {
			return fmt.Sprintf("kernel: [%d.%06d] eth0: link up, %d Mbps, full duplex", r.IntN(100000), r.IntN(1e6), []int{100, 1000, 10000}[r.IntN(3)])
		}},
		{2, func() string {
			return fmt.Sprintf(`java.lang.NullPointerException: Cannot invoke "String.length()" because "name" is null at com.shop.Order.total(Order.java:%d)`, r.IntN(400))
		}},
		{2, func() string {
			return fmt.Sprintf("panic: runtime error: index out of range [%d] with length %d", r.IntN(10), r.IntN(10))
		}},
		{1, func() string {
			return fmt.Sprintf("GC pause %s heap %dMB -> %dMB goroutines=%d", dur(), r.IntN(2000), r.IntN(2000), r.IntN(5000))
		}},
		{1, func() string {
			return fmt.Sprintf("certificate for %s expires in %d days", []string{"api.shop.example", "cdn.shop.example"}[r.IntN(2)], r.IntN(90))
		}},
	}
	total := 0
	for _, s := range shapes {
		total += s.weight
	}
	out := make([]string, n)
	for i := range out {
		k := r.IntN(total)
		for _, s := range shapes {
			if k < s.weight {
				out[i] = s.gen()
				break
			}
			k -= s.weight
		}
	}
	return out
}

func TestCorpusTemplates(t *testing.T) {
	d := mustDrain(t, DrainConfig{})
	for _, l := range corpus(20000, 3) {
		d.Add(l)
	}
	// 14 generated shapes; Drain may split a shape where a constant-looking
	// token varies, but it must not explode into per-line templates.
	if n := d.Len(); n < 14 || n > 40 {
		for _, tm := range d.Templates() {
			t.Log(tm)
		}
		t.Errorf("%d templates from 14 shapes", n)
	}
}

// BenchmarkDrainAdd measures mining throughput on the mixed corpus, after
// warm-up (the steady state: almost every line joins a known template).
func BenchmarkDrainAdd(b *testing.B) {
	lines := corpus(50000, 11)
	d := mustDrain(b, DrainConfig{})
	for _, l := range lines {
		d.Add(l)
	}
	bytes := 0
	for _, l := range lines {
		bytes += len(l)
	}
	b.SetBytes(int64(bytes / len(lines)))
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		d.Add(lines[i%len(lines)])
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

// BenchmarkMask isolates the masking step.
func BenchmarkMask(b *testing.B) {
	lines := corpus(50000, 11)
	var buf []byte
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		buf = maskLine(buf[:0], lines[i%len(lines)])
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}
