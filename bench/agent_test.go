package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"opspilot/collector"
	"opspilot/collector/diskqueue"
	"opspilot/test/testbin"
	"opspilot/tsdb"
)

// BenchmarkAgentShip: samples per second the agent's path (encode into the
// disk queue, read back, deliver, acknowledge) moves to a real
// VictoriaMetrics process, beside the same client writing directly with no
// queue (the baseline), same data, same run. Use -cpu 1 for "one core".
//
// Run: go test ./bench -run '^$' -bench AgentShip -cpu 1 -benchtime 10x -count 3
func BenchmarkAgentShip(b *testing.B) {
	base, _ := testbin.VictoriaMetrics(b)
	rc := tsdb.RemoteConfig{URL: base}
	ep, _ := rc.Endpoints()
	ccfg := tsdb.DefaultClientConfig()
	ccfg.WriteConcurrency = 1
	ccfg.MaxSamplesPerRequest = 5000
	client, err := tsdb.NewClient(ep, ccfg, tsdb.ClientOptions{})
	if err != nil {
		b.Fatal(err)
	}
	data := agentDataset(2000, 50) // 100k samples
	total := float64(2000 * 50)
	if err := client.Write(context.Background(), data); err != nil { // register series
		b.Fatal(err)
	}

	b.Run("direct", func(b *testing.B) {
		for b.Loop() {
			if err := client.Write(context.Background(), data); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(total*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
	})
	b.Run("agent-queue", func(b *testing.B) {
		sh, err := collector.NewShipper(collector.DefaultShipperConfig(), b.TempDir(), diskqueue.Options{}, client, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			b.Fatal(err)
		}
		defer sh.Close()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- sh.Run(ctx) }()
		for b.Loop() {
			if err := sh.Append(data); err != nil {
				b.Fatal(err)
			}
			for sh.Pending() > 0 {
				time.Sleep(100 * time.Microsecond)
			}
		}
		b.ReportMetric(total*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
		cancel()
		<-done
	})
}

func agentDataset(series, samples int) []tsdb.TimeSeries {
	end := time.Now().UnixMilli()
	out := make([]tsdb.TimeSeries, series)
	for i := range out {
		out[i].Labels = []tsdb.Label{
			{Name: "__name__", Value: "bench_agent_kpi"}, {Name: "service", Value: fmt.Sprintf("svc-%d", i%20)},
			{Name: "instance", Value: fmt.Sprintf("i-%d", i)}, {Name: "datacenter", Value: "dc-a"}, {Name: "node", Value: "n1"},
		}
		for j := range samples {
			out[i].Samples = append(out[i].Samples, tsdb.Sample{Timestamp: end - int64(samples-j)*1000, Value: float64(j)})
		}
	}
	return out
}

// BenchmarkAgentIdle: CPU and RSS of an `opspilot agent` process with host
// metrics, 100 containers (cgroup v2 trees generated from the container
// package's fixtures) and 10 KPI targets scraped every 10 s, beside the same
// binary with every collector off (the baseline), both over the same window.
//
// Run: go test ./bench -run '^$' -bench AgentIdle -benchtime 1x
func BenchmarkAgentIdle(b *testing.B) {
	bin := testbin.Tool(b, "opspilot")
	// A sink for the agent's remote writes: the real VictoriaMetrics.
	vm, _ := testbin.VictoriaMetrics(b)
	targets := startKPIApps(b, 10)
	cgroups := fixtureCgroups(b, 100)
	const window = 40 * time.Second

	measure := func(b *testing.B, cfgYAML string) (cpuPercent, rssMiB float64) {
		dir := b.TempDir()
		cfgPath := filepath.Join(dir, "opspilot.yaml")
		if err := os.WriteFile(cfgPath, []byte(cfgYAML), 0o600); err != nil {
			b.Fatal(err)
		}
		addr := testbin.FreeAddr(b)
		// VictoriaMetrics accepts the /prometheus prefix the agent writes to.
		p := testbin.Start(b, bin, "agent", "-c", cfgPath, "--server", vm, "--data-dir", dir, "--http-addr", addr, "--log-level", "error")
		testbin.WaitHealthy(b, "http://"+addr+"/healthz", 20*time.Second)
		time.Sleep(5 * time.Second) // past start-up
		t0, c0 := time.Now(), cpuSeconds(b, p.Cmd.Process.Pid)
		time.Sleep(window)
		c1 := cpuSeconds(b, p.Cmd.Process.Pid)
		cpu := (c1 - c0) / time.Since(t0).Seconds() * 100
		rss := float64(rssBytes(b, p.Cmd.Process.Pid)) / (1 << 20)
		_ = p.Cmd.Process.Signal(syscall.SIGTERM)
		_, _ = p.Wait(10 * time.Second)
		return cpu, rss
	}

	var scrape strings.Builder
	for i, t := range targets {
		fmt.Fprintf(&scrape, "      - {service: kpi-%d, url: %q, interval: 10s}\n", i, t)
	}
	var insts strings.Builder
	for i := range cgroups {
		fmt.Fprintf(&insts, "      - {service: svc-%d, instance: svc-%d-1, cgroup_path: /opspilot/c%03d}\n", i%20, i%20, i)
	}
	full := fmt.Sprintf(`agent:
  interval: 10s
  logs: {enabled: false}
  containers:
    enabled: true
    docker: false
    cgroup_root: %s
    instances:
%s  scrape:
    targets:
%s`, filepath.Dir(filepath.Dir(cgroups[0])), insts.String(), scrape.String())
	baseline := `agent:
  interval: 10s
  logs: {enabled: false}
  host: {enabled: false}
  containers: {enabled: false}
`
	for b.Loop() {
		bCPU, bRSS := measure(b, baseline)
		fCPU, fRSS := measure(b, full)
		b.ReportMetric(fCPU, "cpu-%-of-core")
		b.ReportMetric(fRSS, "RSS-MiB")
		b.ReportMetric(bCPU, "baseline-cpu-%")
		b.ReportMetric(bRSS, "baseline-RSS-MiB")
	}
}

// startKPIApps serves n apps with ~60 business metrics each.
func startKPIApps(b *testing.B, n int) []string {
	var urls []string
	for i := range n {
		reg := prometheus.NewRegistry()
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "billing_transactions_total", Help: "x"}, []string{"shop"})
		h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "billing_latency_seconds", Help: "x"}, []string{"op"})
		reg.MustRegister(c, h)
		for s := range 10 {
			c.WithLabelValues(strconv.Itoa(s)).Add(float64(s))
		}
		for _, op := range []string{"pay", "refund"} {
			h.WithLabelValues(op).Observe(0.1)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{})}
		go func() { _ = srv.Serve(ln) }()
		b.Cleanup(func() { _ = srv.Close() })
		urls = append(urls, fmt.Sprintf("http://%s/metrics?app=%d", ln.Addr(), i))
	}
	return urls
}

// fixtureCgroups copies the container package's cgroup v2 fixture into n
// cgroup directories under a temporary root and returns their paths.
func fixtureCgroups(b *testing.B, n int) []string {
	src := filepath.Join(testbin.ModuleRoot(b), "collector", "container", "testdata", "v2", "opspilot", "svc-a-1")
	entries, err := os.ReadDir(src)
	if err != nil {
		b.Fatal(err)
	}
	root := b.TempDir()
	if err := os.WriteFile(filepath.Join(root, "cgroup.controllers"), []byte("cpu io memory pids\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	var out []string
	for i := range n {
		dir := filepath.Join(root, "opspilot", fmt.Sprintf("c%03d", i))
		if err := os.MkdirAll(dir, 0o750); err != nil {
			b.Fatal(err)
		}
		for _, e := range entries {
			if e.IsDir() {
				continue
			}
			data, err := os.ReadFile(filepath.Join(src, e.Name()))
			if err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, e.Name()), data, 0o600); err != nil {
				b.Fatal(err)
			}
		}
		out = append(out, dir)
	}
	return out
}

// cpuSeconds is utime+stime of a process, from /proc/PID/stat.
func cpuSeconds(b *testing.B, pid int) float64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name, which is in parentheses.
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return (utime + stime) / 100 // USER_HZ
}
