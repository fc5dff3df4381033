package rootcause_test

import (
	"fmt"
	"time"

	"opspilot/analyzer/rootcause"
)

func Example() {
	at := func(s int) time.Time { return time.Date(2026, 11, 26, 12, 0, s, 0, time.UTC) }
	anoms := []rootcause.Anomaly{
		{Series: rootcause.Series{Service: "billing", Metric: "errors"}, Onset: at(43), Last: at(50), Peak: 0.9},
		{Series: rootcause.Series{Service: "payments", Metric: "errors"}, Onset: at(23), Last: at(50), Peak: 0.8},
		{Series: rootcause.Series{Service: "db", Metric: "latency"}, Onset: at(3), Last: at(50), Peak: 0.6},
	}
	// Observed gateway traffic; the one-off admin call is below the floor.
	topo := rootcause.TopologyFromTraffic([]rootcause.Edge{
		{From: "billing", To: "payments", Requests: 1200},
		{From: "payments", To: "db", Requests: 5000},
		{From: "billing", To: "admin", Requests: 2},
	}, 10)
	for _, g := range rootcause.Correlate(anoms, topo, rootcause.Config{}) {
		fmt.Println(rootcause.Format(rootcause.Rank(g, topo, rootcause.Config{}), 2))
	}
	// Output:
	// 1. service db (score 0.95): first anomaly at 12:00:03 (db latency), 20 s before payments errors; payments calls db; payments' errors began 20 s after db's latency; peak score 0.60
	// 2. service payments (score 0.44): anomalous from 12:00:23 (payments errors), 20 s after the first anomaly (db latency); billing calls payments; billing's errors began 20 s after payments' errors; calls db, whose latency began 20 s before its own: likely a symptom; peak score 0.80
}
