package online

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"opspilot/analyzer/rootcause"
	"opspilot/tsdb"
)

// kpiSeries is two hours of a noisy KPI every 10 s ending at end, raised by
// shift from `from` on.
func kpiSeries(name, service string, end, from time.Time, shift float64) tsdb.TimeSeries {
	rng := rand.New(rand.NewPCG(3, uint64(len(service))))
	ts := tsdb.TimeSeries{Labels: []tsdb.Label{{Name: "__name__", Value: name}, {Name: "service", Value: service}}}
	for t := end.Add(-2 * time.Hour); !t.After(end); t = t.Add(10 * time.Second) {
		v := 100 + rng.NormFloat64()
		if !t.Before(from) {
			v += shift
		}
		ts.Samples = append(ts.Samples, tsdb.Sample{Timestamp: t.UnixMilli(), Value: v})
	}
	return ts
}

// billing calls payments; payments' latency jumps 40 s before billing's:
// the incident names payments first, with the call as evidence.
func TestOnlineIncidentsRankTheCalleeFirst(t *testing.T) {
	v := startVM(t)
	ctx := context.Background()
	end := time.Now().Truncate(10 * time.Second).Add(-10 * time.Second)
	first := end.Add(-10 * time.Minute)
	if err := v.client.Write(ctx, []tsdb.TimeSeries{
		kpiSeries("kpi_latency_ms", "payments", end, first, 60),
		kpiSeries("kpi_latency_ms", "billing", end, first.Add(40*time.Second), 60),
		kpiSeries("kpi_latency_ms", "search", end, end.Add(time.Hour), 0), // normal
	}); err != nil {
		t.Fatal(err)
	}
	queryValue(t, v, `count(kpi_latency_ms)`, end)
	cfg := testConfig("")
	cfg.RootCause.Calls = map[string][]string{"billing": {"payments"}, "search": {"payments"}}
	s, err := New(cfg, Options{Querier: v.client, Writer: v.client, Now: func() time.Time { return end }})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Step(ctx, end.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	incs, err := s.Incidents(ctx, end.Add(-30*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(incs) != 1 {
		t.Fatalf("want one incident, got %+v", incs)
	}
	inc := incs[0]
	if len(inc.Anomalies) != 2 {
		t.Fatalf("want payments and billing in the incident, got %+v", inc.Anomalies)
	}
	if got := inc.Anomalies[0]; got.Series.Service != "payments" || got.Onset.Sub(first).Abs() > 10*time.Second {
		t.Errorf("first anomaly %+v, want payments at %s", got, first)
	}
	h := inc.Hints
	if len(h) == 0 || h[0].Kind != rootcause.KindService || h[0].Name != "payments" {
		t.Fatalf("hints %+v: want payments ranked first", h)
	}
	if !strings.Contains(inc.Summary, "payments") || !strings.Contains(strings.Join(h[0].Evidence, " "), "billing calls payments") {
		t.Errorf("evidence should name the call: %q / %q", inc.Summary, h[0].Evidence)
	}

	// The same call graph learnt from the gateway's observed calls instead
	// of configuration.
	calls := tsdb.TimeSeries{Labels: []tsdb.Label{{Name: "__name__", Value: "opspilot_gateway_calls_total"}, {Name: "caller", Value: "billing"}, {Name: "service", Value: "payments"}}}
	for i, t := 0, end.Add(-50*time.Minute); !t.After(end); i, t = i+1, t.Add(10*time.Second) {
		calls.Samples = append(calls.Samples, tsdb.Sample{Timestamp: t.UnixMilli(), Value: float64(5 * i)})
	}
	if err := v.client.Write(ctx, []tsdb.TimeSeries{calls}); err != nil {
		t.Fatal(err)
	}
	queryValue(t, v, `count(opspilot_gateway_calls_total)`, end)
	learnt := testConfig("")
	learnt.RootCause.Calls = nil
	ls, err := New(learnt, Options{Querier: v.client, Writer: nopTSDB{}, Now: func() time.Time { return end }})
	if err != nil {
		t.Fatal(err)
	}
	if err := ls.Step(ctx, end.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	incs, err = ls.Incidents(ctx, end.Add(-30*time.Minute))
	if err != nil || len(incs) != 1 || len(incs[0].Hints) == 0 || incs[0].Hints[0].Name != "payments" ||
		!strings.Contains(strings.Join(incs[0].Hints[0].Evidence, " "), "billing calls payments") {
		t.Fatalf("with the observed call graph: %+v, %v", incs, err)
	}

	// The same through the API.
	rec := httptest.NewRecorder()
	s.Routes()[1].Handler.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/analyzer/incidents?since=30m", nil))
	var body struct{ Incidents []Incident }
	if err := json.Unmarshal(rec.Body.Bytes(), &body); rec.Code != 200 || err != nil || len(body.Incidents) != 1 {
		t.Fatalf("GET incidents: %d %s", rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	s.Routes()[1].Handler.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/analyzer/incidents?since=yesterday", nil))
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "since") {
		t.Errorf("bad since: %d %s", rec.Code, rec.Body)
	}
}

// Three weeks of usage growing one core a day from 40 towards a capacity
// of 80, with a daily wave of ±3: the API forecasts exhaustion when the
// wave's peak reaches 80, about 16 days after the last point (61 used).
func TestCapacityForecastFromTSDB(t *testing.T) {
	v := startVM(t)
	ctx := context.Background()
	end := time.Now().Truncate(10 * time.Minute)
	start := end.Add(-21 * 24 * time.Hour)
	rng := rand.New(rand.NewPCG(5, 5))
	usage := tsdb.TimeSeries{Labels: []tsdb.Label{{Name: "__name__", Value: "usage_cores"}, {Name: "service", Value: "billing"}}}
	capacity := tsdb.TimeSeries{Labels: []tsdb.Label{{Name: "__name__", Value: "cap_cores"}, {Name: "service", Value: "billing"}}}
	for t := start; !t.After(end); t = t.Add(5 * time.Minute) {
		days := t.Sub(start).Hours() / 24
		u := 40 + days + 3*math.Sin(2*math.Pi*days) + 0.5*rng.NormFloat64()
		usage.Samples = append(usage.Samples, tsdb.Sample{Timestamp: t.UnixMilli(), Value: u})
		capacity.Samples = append(capacity.Samples, tsdb.Sample{Timestamp: t.UnixMilli(), Value: 80})
	}
	if err := v.client.Write(ctx, []tsdb.TimeSeries{usage, capacity}); err != nil {
		t.Fatal(err)
	}
	queryValue(t, v, `count(usage_cores)`, end)
	s, err := New(testConfig(""), Options{Querier: v.client, Writer: v.client, Now: func() time.Time { return end.Add(time.Second) }})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	s.Routes()[2].Handler.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/analyzer/capacity?name=billing&usage=usage_cores&capacity=cap_cores&history=21d&horizon=40d", nil))
	if rec.Code != 200 {
		t.Fatalf("GET capacity: %d %s", rec.Code, rec.Body)
	}
	var r CapacityForecast
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if r.Method != "holt-winters" || r.Capacity != 80 || math.Abs(r.GrowthPerDay-1) > 0.3 {
		t.Errorf("report %+v: want holt-winters, capacity 80, growth about 1/day", r)
	}
	if r.ExhaustAt == nil {
		t.Fatalf("no exhaustion forecast: %+v", r)
	}
	t.Logf("method %s confidence %s growth %.3f/day current %.2f exhaust in %.1f days (pessimistic %.1f)", r.Method, r.Confidence, r.GrowthPerDay, r.Current, r.ExhaustAt.Sub(r.DataEnd).Hours()/24, r.ExhaustAtPessimistic.Sub(r.DataEnd).Hours()/24)
	if days := r.ExhaustAt.Sub(r.DataEnd).Hours() / 24; days < 15 || days > 17.5 {
		t.Errorf("exhaustion in %.1f days, want about 16 (61 of 80 used, +1/day, daily peak +3)", days)
	}
	if r.ExhaustAtPessimistic == nil || r.ExhaustAtPessimistic.After(*r.ExhaustAt) {
		t.Errorf("the pessimistic date %v should come no later than %v", r.ExhaustAtPessimistic, r.ExhaustAt)
	}

	for _, bad := range []struct{ query, want string }{
		{"name=billing&scope=galaxy", "scope"},
		{"name=billing&resource=disk", "resource"},
		{"name=billing&usage=usage_cores&history=2x", "history"},
		{"name=billing&usage=usage_cores", "capacity"},
		{"name=billing&usage=nothing_here&capacity=1", "no data"},
		{"scope=datacenter&name=dc1&resource=kpi", "per service"},
	} {
		rec := httptest.NewRecorder()
		s.Routes()[2].Handler.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/analyzer/capacity?"+bad.query, nil))
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), bad.want) {
			t.Errorf("%s: %d %s, want 400 naming %q", bad.query, rec.Code, rec.Body, bad.want)
		}
	}
}

// Requests, latency and errors of one service move together; for ten
// minutes latency drops to its usual low-traffic level while traffic stays
// high. Each value is inside its own normal range; the joint model scores
// the broken relation.
func TestOnlineJointScoresBrokenCorrelation(t *testing.T) {
	v := startVM(t)
	ctx := context.Background()
	end := time.Now().Truncate(10 * time.Second).Add(-10 * time.Second)
	brk := end.Add(-15 * time.Minute)
	rng := rand.New(rand.NewPCG(9, 9))
	mk := func(name string) tsdb.TimeSeries {
		return tsdb.TimeSeries{Labels: []tsdb.Label{{Name: "__name__", Value: name}, {Name: "service", Value: "billing"}}}
	}
	req, lat, errs := mk("kpi_requests"), mk("kpi_latency"), mk("kpi_errors")
	for t := end.Add(-2 * time.Hour); !t.After(end); t = t.Add(10 * time.Second) {
		// The load peaks (140) when the break begins, whatever the clock.
		load := 100 + 40*math.Sin(2*math.Pi*t.Sub(brk).Seconds()/1800+math.Pi/2) + 3*rng.NormFloat64()
		l := 20 + 0.3*load + rng.NormFloat64()
		if !t.Before(brk) && t.Before(brk.Add(10*time.Minute)) {
			l = 20 + 0.3*60 + rng.NormFloat64() // latency of 60 req/s at 140 req/s
		}
		ms := t.UnixMilli()
		req.Samples = append(req.Samples, tsdb.Sample{Timestamp: ms, Value: load})
		lat.Samples = append(lat.Samples, tsdb.Sample{Timestamp: ms, Value: l})
		errs.Samples = append(errs.Samples, tsdb.Sample{Timestamp: ms, Value: 0.01*load + 0.1*rng.NormFloat64()})
	}
	if err := v.client.Write(ctx, []tsdb.TimeSeries{req, lat, errs}); err != nil {
		t.Fatal(err)
	}
	queryValue(t, v, `count({__name__=~"kpi_.*"})`, end)
	cfg := testConfig("")
	cfg.Queries = []Query{{Name: "req", Expr: "kpi_requests"}, {Name: "lat", Expr: "kpi_latency"}, {Name: "err", Expr: "kpi_errors"}}
	cfg.Joint = []Joint{{Name: "kpis", Queries: []string{"req", "lat", "err"}, By: []string{"service"}}}
	s, err := New(cfg, Options{Querier: v.client, Writer: v.client})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Step(ctx, end.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	during := queryValue(t, v, `max_over_time(anomaly_score{for="kpis", service="billing"}[10m])`, brk.Add(10*time.Minute-time.Second))
	before := queryValue(t, v, `max_over_time(anomaly_score{for="kpis", service="billing"}[60m])`, brk.Add(-time.Minute))
	t.Logf("joint score: %.3f during the break, %.3f in the hour before", during[0].Value, before[0].Value)
	if during[0].Value < 0.9 || before[0].Value >= 0.9 {
		t.Errorf("joint score %.3f during the break (want >= 0.9), %.3f before (want < 0.9)", during[0].Value, before[0].Value)
	}
	exp := queryValue(t, v, `count(anomaly_expected{for="kpis", service="billing"}) by (dimension)`, end)
	if len(exp) != 3 {
		t.Errorf("want an expected value per dimension, got %v", exp)
	}
	st := s.Status(map[string]string{"for": "kpis"})
	if len(st) != 1 || st[0].Labels["service"] != "billing" {
		t.Errorf("Status(for=kpis) = %+v", st)
	}
}
