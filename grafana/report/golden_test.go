package report

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to write it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\n got:\n%s\nwant:\n%s", path, got, want)
	}
}

// The chat summaries of a fixed capacity report and inspection.
func TestTextSummariesGolden(t *testing.T) {
	end := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	o := CapacityOptions{Threshold: 0.8, Horizon: 30 * 24 * time.Hour}
	grow := ResourceForecast{Resource: "cpu", Unit: "cores", Current: 70, Capacity: 96, Limit: 76.8, Utilisation: 70.0 / 96,
		Peak: 74, PeakUtilisation: 74.0 / 96, GrowthPerDay: 0.45, Confidence: "high", Needed: 40,
		ExhaustAt: end.Add(15 * 24 * time.Hour), ExhaustAtPessimistic: end.Add(11 * 24 * time.Hour)}
	grow.Recommendation = recommend("datacenter", "B", grow, end, o)
	flat := ResourceForecast{Resource: "memory", Unit: "bytes", Current: 100 << 30, Capacity: 512 << 30, Utilisation: 100.0 / 512,
		PeakUtilisation: 120.0 / 512, Confidence: "high"}
	full := ResourceForecast{Resource: "memory", Unit: "bytes", Current: 7 << 30, Capacity: 8 << 30, Utilisation: 7.0 / 8,
		PeakUtilisation: 7.5 / 8, Confidence: "high", AlreadyExhausted: true, Needed: 1 << 30}
	full.Recommendation = recommend("service", "billing", full, end, o)
	rep := &CapacityReport{Start: end.Add(-30 * 24 * time.Hour), End: end, Horizon: o.Horizon, Threshold: o.Threshold,
		Datacenters:     []Section{{Kind: "datacenter", Name: "B", Resources: []ResourceForecast{grow, flat}}},
		Services:        []Section{{Kind: "service", Name: "billing", Resources: []ResourceForecast{{Resource: "cpu", Err: "no data"}, full}}},
		Recommendations: []Recommendation{*full.Recommendation, *grow.Recommendation},
		Notes:           []string{"no node groups: nodes have no partition or labels (node.partition, node.labels)"}}
	golden(t, "capacity.txt", rep.Text())

	insp := &InspectionReport{Start: end.Add(-24 * time.Hour), End: end, Checks: []Check{
		{Name: CheckNodes, Severity: SeverityCritical, Summary: "1 of 12 nodes down",
			Findings: []Finding{{Severity: SeverityCritical, Datacenter: "B", Subject: "b-07", Detail: "state lost since 2026-11-30 03:12 UTC (14 instances)"}}},
		{Name: CheckDisks, Severity: SeverityOK, Summary: "0 filesystems over 85% used"},
		{Name: CheckAlerts, Severity: SeverityOK, Summary: "not read", Err: "GET /api/v1/alerts/events: 404 Not Found"},
	}}
	golden(t, "inspection.txt", insp.Text())
}
