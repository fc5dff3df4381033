package bench

import (
	"bufio"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"opspilot/test/testbin"
)

// Start-up time and idle memory of `opspilot up`, beside the standalone
// VictoriaMetrics single-node binary (the baseline) started the same way.
//
// Run: go test ./bench -run '^$' -bench Startup -benchtime 5x -count 3

func BenchmarkStartup(b *testing.B) {
	b.Run("victoria-metrics", func(b *testing.B) {
		bin := testbin.Tool(b, "victoria-metrics")
		measureStartup(b, func(b *testing.B, addr string) (*testbin.Process, time.Duration) {
			start := time.Now()
			p := testbin.Start(b, bin, "-storageDataPath="+b.TempDir(), "-httpListenAddr="+addr, "-loggerLevel=WARN")
			// Poll as tightly as opspilot's ready line is watched below.
			for {
				resp, err := http.Get("http://" + addr + "/health")
				if err == nil {
					_ = resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						return p, time.Since(start)
					}
				}
				if time.Since(start) > 10*time.Second || p.Exited() {
					b.Fatalf("victoria-metrics not healthy: %v %s", err, p.Stderr)
				}
				time.Sleep(time.Millisecond)
			}
		})
	})
	b.Run("opspilot-up", func(b *testing.B) {
		bin := testbin.Tool(b, "opspilot")
		measureStartup(b, func(b *testing.B, addr string) (*testbin.Process, time.Duration) {
			start := time.Now()
			p := testbin.Start(b, bin, "up", "--data-dir", b.TempDir(), "--http-addr", addr)
			for !strings.Contains(p.Stdout.String(), "opspilot ready on") {
				if time.Since(start) > 10*time.Second || p.Exited() {
					b.Fatalf("no ready line: %s %s", p.Stdout, p.Stderr)
				}
				time.Sleep(time.Millisecond)
			}
			ready := time.Since(start)
			// The ready line must mean ready.
			resp, err := http.Get("http://" + addr + "/healthz")
			if err != nil || resp.StatusCode != http.StatusOK {
				b.Fatalf("ready line printed but /healthz not 200: %v %v", resp, err)
			}
			_ = resp.Body.Close()
			return p, ready
		})
	})
}

// measureStartup starts b.N instances one after another, reporting the mean
// time to ready and the resident memory once idle (after 5 s of the last).
func measureStartup(b *testing.B, start func(*testing.B, string) (*testbin.Process, time.Duration)) {
	var total time.Duration
	var last *testbin.Process
	for i := 0; i < b.N; i++ {
		if last != nil {
			_ = last.Cmd.Process.Kill()
			<-last.Done()
		}
		p, d := start(b, testbin.FreeAddr(b))
		total += d
		last = p
	}
	b.StopTimer()
	time.Sleep(5 * time.Second)
	rss := rssBytes(b, last.Cmd.Process.Pid)
	_ = last.Cmd.Process.Kill()
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms-to-ready")
	b.ReportMetric(float64(rss)/(1<<20), "idle-RSS-MiB")
	b.ReportMetric(0, "ns/op")
}

func rssBytes(b *testing.B, pid int) int64 {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatal("no VmRSS in /proc status")
	return 0
}
