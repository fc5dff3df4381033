package alerting

import (
	"context"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"opspilot/tsdb"
)

// BenchmarkEvaluate10kFiringAlerts (issue 7): one rule group whose alert
// rule fires for 10,000 series, evaluated against the embedded
// VictoriaMetrics. Every evaluation sends all 10,000 alerts on (resend
// delay 1 ms). Baseline in the same run: the same evaluation with no sink;
// against it, the pipeline (Alertmanager's memory provider, dispatcher
// grouping them into 100 groups, inhibition, silences, the console
// receiver writing to io.Discard). The ratio is the cost the pipeline adds
// to the evaluation loop.
//
// Run: go test ./alerting -run '^$' -bench Evaluate10k -benchtime 20x -count 3
func BenchmarkEvaluate10kFiringAlerts(b *testing.B) {
	if store == nil {
		b.Skip("the embedded TSDB is not started in -short mode")
	}
	c := tsdb.DefaultClientConfig()
	cl, err := tsdb.NewClient(tsdb.InProcessEndpoints(), c, tsdb.ClientOptions{Transport: store.Transport()})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	series := make([]tsdb.TimeSeries, 10000)
	for i := range series {
		series[i] = tsdb.TimeSeries{Labels: []tsdb.Label{{Name: "__name__", Value: "bench_alert_value"},
			{Name: "instance", Value: fmt.Sprintf("i-%05d", i)}, {Name: "shard", Value: fmt.Sprint(i % 100)}},
			Samples: []tsdb.Sample{{Timestamp: now.UnixMilli(), Value: 1}}}
	}
	if err := cl.Write(context.Background(), series); err != nil {
		b.Fatal(err)
	}
	store.Flush()
	rulesPath := b.TempDir() + "/bench.rules.yaml"
	writeFileB(b, rulesPath, `groups:
  - name: bench
    rules:
      - alert: BenchHigh
        expr: last_over_time(bench_alert_value[1h]) > 0
        labels: {severity: warning}
        annotations: {summary: "{{ $labels.instance }} at {{ $value }}"}
`)
	amPath := b.TempDir() + "/am.yml"
	writeFileB(b, amPath, `route:
  receiver: console
  group_by: [alertname, shard]
  group_wait: 500ms
  group_interval: 5s
receivers:
  - name: console
`)
	for _, withPipeline := range []bool{false, true} {
		name := "sink=none"
		if withPipeline {
			name = "sink=pipeline"
		}
		b.Run(name, func(b *testing.B) {
			var p *Pipeline
			o := EvaluatorOptions{Querier: cl, Writer: cl}
			if withPipeline {
				pc := DefaultPipelineConfig()
				pc.Dir, pc.AlertmanagerConfigFile = b.TempDir(), amPath
				p, err = NewPipeline(pc, PipelineOptions{Console: io.Discard})
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan struct{})
				go func() { _ = p.Run(ctx); close(done) }()
				defer func() { cancel(); <-done }()
				o.Sink = p
			}
			cfg := DefaultEvaluatorConfig()
			cfg.Files, cfg.ResendDelay = []string{rulesPath}, time.Millisecond
			e, err := NewEvaluator(cfg, o)
			if err != nil {
				b.Fatal(err)
			}
			groups := e.manager.RuleGroups()
			if len(groups) != 1 {
				b.Fatalf("%d groups", len(groups))
			}
			ctx := context.Background()
			b.ResetTimer()
			for range b.N {
				e.iterate(ctx, groups[0], time.Now())
			}
			b.StopTimer()
			if n := len(groups[0].AlertingRules()[0].ActiveAlerts()); n != 10000 {
				b.Fatalf("%d active alerts, want 10000", n)
			}
			if p != nil {
				if n := len(p.Alerts(ctx)); n != 10000 {
					b.Fatalf("the pipeline holds %d alerts, want 10000", n)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/evaluation")
		})
	}
}

func writeFileB(b *testing.B, path, body string) {
	b.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		b.Fatal(err)
	}
}
