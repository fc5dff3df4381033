package bench

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack/slacktest"
)

// BenchmarkAlertNotify (issue 7): a sample crosses an alerting rule's
// threshold; the time from that sample being in the TSDB (the import
// acknowledged) to the Slack API call (chat.postMessage at slack-go's
// slacktest server; the real Slack is not reachable from here), on a real
// `opspilot up`. The KPI is written every second and steps at a random
// moment. Two configurations in the same run:
//
//   - opspilot: rules evaluated every 1 s, group_wait 500ms (the defaults);
//   - baseline: Prometheus and Alertmanager as commonly run — evaluation
//     every 15 s, group_wait 30 s (Alertmanager's default).
//
// Each step is a new alert group (label run), so each is a first
// notification, the case group_wait delays.
//
// Run: go test ./bench -run '^$' -bench AlertNotify -benchtime 20x -count 1
func BenchmarkAlertNotify(b *testing.B) {
	for _, c := range []struct {
		name      string
		interval  string
		groupWait string
		max       int // iterations at most (the baseline takes ~40 s each)
	}{
		{"opspilot", "1s", "500ms", 1000},
		{"baseline-15s-eval-30s-group-wait", "15s", "30s", 3},
	} {
		b.Run(c.name, func(b *testing.B) {
			lat := alertLatencies(b, c.interval, c.groupWait, min(b.N, c.max))
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(pct(lat, 50).Seconds(), "p50-s")
			b.ReportMetric(pct(lat, 95).Seconds(), "p95-s")
			b.ReportMetric(lat[len(lat)-1].Seconds(), "max-s")
			b.Logf("%s: %d notifications, sample→Slack p50 %s p95 %s max %s", c.name, len(lat), pct(lat, 50), pct(lat, 95), lat[len(lat)-1])
		})
	}
}

func pct(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p + 99) / 100
	if i > 0 {
		i--
	}
	return sorted[i]
}

func alertLatencies(b *testing.B, interval, groupWait string, n int) []time.Duration {
	posted := make(chan time.Time, 64)
	slackSrv := slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/chat.postMessage", func(w http.ResponseWriter, r *http.Request) {
			posted <- time.Now()
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"ok":true,"channel":"C1","ts":"%d.000100"}`, time.Now().UnixNano())
		})
	})
	slackSrv.Start()
	defer slackSrv.Stop()
	dir := b.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			b.Fatal(err)
		}
		return p
	}
	rules := write("bench.rules.yaml", `groups:
  - name: bench
    interval: `+interval+`
    rules:
      - alert: BenchKPIHigh
        expr: bench_kpi_tps{service="kpi"} > 1500
        labels: {severity: critical}
        annotations: {summary: "KPI at {{ $value }}"}
`)
	am := write("alertmanager.yml", `route:
  receiver: slack
  group_by: [alertname, run]
  group_wait: `+groupWait+`
  group_interval: 5s
  repeat_interval: 4h
receivers:
  - name: slack
`)
	token := write("slack-token", "xoxb-bench")
	base := upWithConfig(b, fmt.Sprintf(`agent: {logs: {enabled: false}}
analyzer: {enabled: false}
autoscaler: {enabled: false}
alerting:
  rules: {files: [%s], interval: %s}
  pipeline:
    alertmanager_config_file: %s
    slack:
      - {receiver: slack, channel: "#bench", token_file: %s, api_url: %q, graph: false}
`, rules, interval, am, token, slackSrv.GetAPIURL()))

	var (
		mu  sync.Mutex
		run = 0
		val = 1000.0
	)
	post := func(r int, v float64) time.Time {
		body := fmt.Sprintf("bench_kpi_tps{service=\"kpi\",run=\"%d\"} %g %d\n", r, v, time.Now().UnixMilli())
		resp, err := http.Post(base+"/prometheus/api/v1/import/prometheus", "text/plain", strings.NewReader(body))
		if err != nil {
			b.Error(err)
			return time.Now()
		}
		resp.Body.Close()
		return time.Now()
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			mu.Lock()
			r, v := run, val
			mu.Unlock()
			post(r, v)
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	defer func() { close(stop); <-done }()

	var out []time.Duration
	b.ResetTimer()
	for i := range n {
		// A new group at 1,000 for a few seconds, then a step to 2,000 at a
		// random moment of the sampling interval.
		mu.Lock()
		prev := run
		run, val = i+1, 1000
		mu.Unlock()
		post(prev, 0) // the previous group resolves
		time.Sleep(3 * time.Second)
		for len(posted) > 0 {
			<-posted
		}
		time.Sleep(time.Duration(rand.Int64N(int64(time.Second))))
		mu.Lock()
		val = 2000
		r := run
		mu.Unlock()
		ack := post(r, 2000)
		select {
		case at := <-posted:
			out = append(out, at.Sub(ack))
		case <-time.After(90 * time.Second):
			b.Fatalf("step %d: no Slack message within 90 s", i)
		}
	}
	b.StopTimer()
	return out
}
