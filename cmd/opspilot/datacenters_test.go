package main

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"opspilot/tsdb"
)

// TestDatacenterSignalsFromTheTSDB: over two minutes of gateway traffic in
// the real embedded TSDB, datacenter X answers 10% errors (over the 5%
// threshold), Y 3% with the analyzer scoring that anomalous, Z 3% with a
// normal score and W 0.5% anomalous (too small to matter): X and Y are
// degraded, each with its reason; Z and W are not.
func TestDatacenterSignalsFromTheTSDB(t *testing.T) {
	client, store := testTSDB(t)
	end := time.Now().Truncate(time.Second)
	var series []tsdb.TimeSeries
	add := func(name string, v func(k int) float64, labels ...string) {
		series = append(series, twoMinutes(end, v, append([]string{"__name__", name}, labels...)...))
	}
	for _, dc := range []struct {
		name      string
		errRatio  float64
		anomalous float64
	}{{"sigX", 0.10, 0.2}, {"sigY", 0.03, 0.99}, {"sigZ", 0.03, 0.3}, {"sigW", 0.005, 0.99}} {
		add("opspilot_gateway_requests_total", func(k int) float64 { return float64(k) * 100 * (1 - dc.errRatio) }, "service", "sigsvc", "datacenter", dc.name, "version", "v1", "code", "200")
		add("opspilot_gateway_requests_total", func(k int) float64 { return float64(k) * 100 * dc.errRatio }, "service", "sigsvc", "datacenter", dc.name, "version", "v1", "code", "503")
		add("anomaly_score", func(int) float64 { return dc.anomalous }, "for", "datacenter_error_ratio", "datacenter", dc.name)
	}
	if err := client.Write(context.Background(), series); err != nil {
		t.Fatal(err)
	}
	store.Flush()
	l := &lateTSDB{}
	l.set(client)
	var sig map[string]string
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		if sig, err = datacenterSignalsOnce(context.Background(), tsdbQuerier{l}, 0.05, end); err != nil {
			t.Fatal(err)
		}
		if len(sig) >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for dc := range sig {
		if !strings.HasPrefix(dc, "sig") {
			delete(sig, dc) // other tests' series
		}
	}
	if got := slices.Sorted(maps.Keys(sig)); !slices.Equal(got, []string{"sigX", "sigY"}) {
		t.Fatalf("degraded %v (%v), want sigX and sigY", got, sig)
	}
	if !strings.Contains(sig["sigX"], "10.0% of the requests") || !strings.Contains(sig["sigY"], "anomalous (0.99)") {
		t.Errorf("reasons: %v", sig)
	}
}
