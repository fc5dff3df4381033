package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"testing"
	"time"

	"opspilot/orchestrator/model"
	"opspilot/test/testbin"
)

// Self-healing and scale-out of the orchestrator on the process runtime,
// against the same processes started by hand (the baseline): how much
// opspilot adds to the time a service's own start-up takes.
//
// Run: go test ./bench -run '^$' -bench 'CrashReplacement|ScaleOut' -benchtime 20x -count 1

// upServer runs `opspilot up` with the default configuration and returns
// its base URL.
func upServer(b *testing.B) string { return upWithConfig(b, "") }

func call(b *testing.B, method, url string, body, out any) {
	b.Helper()
	var data []byte
	if body != nil {
		data, _ = json.Marshal(body)
	}
	req, _ := http.NewRequest(method, url, bytes.NewReader(data))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b.Fatalf("%s %s: %d", method, url, resp.StatusCode)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			b.Fatal(err)
		}
	}
}

// billingService runs the demo service (its own small binary, as a
// service would ship; examples/billing/cmd/billing).
func billingService(b *testing.B, replicas int) model.Service {
	return model.Service{
		Name: "billing", Runtime: model.RuntimeProcess, Replicas: replicas,
		Command:   []string{testbin.Tool(b, "billing")},
		Requests:  model.Resources{MilliCPU: 10, MemoryBytes: 16 << 20},
		Ports:     []model.Port{{Name: "http", Port: 8080}},
		Readiness: &model.Probe{HTTP: &model.HTTPProbe{Path: "/readyz", Port: 8080}, Period: time.Second},
	}
}

func instances(b *testing.B, base string) []model.Instance {
	var is []model.Instance
	call(b, "GET", base+"/api/v1/instances?service=billing", nil, &is)
	return is
}

func readyCount(is []model.Instance) int {
	n := 0
	for _, i := range is {
		if i.Ready() {
			n++
		}
	}
	return n
}

func waitReady(b *testing.B, base string, n int, limit time.Duration) {
	b.Helper()
	start := time.Now()
	for {
		is := instances(b, base)
		if readyCount(is) == n && len(is) == n {
			return
		}
		if time.Since(start) > limit {
			b.Fatalf("%d of %d ready after %s", readyCount(is), n, limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startBilling starts the billing process by hand on a free port and
// returns it with the time until /readyz answered 200.
func startBilling(bin, addr string) (*exec.Cmd, time.Duration, error) {
	cmd := exec.Command(bin, "-addr", addr)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, 0, err
	}
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return cmd, time.Since(start), nil
			}
		}
		if time.Since(start) > 60*time.Second {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return nil, 0, fmt.Errorf("billing on %s not ready after 60 s by hand: %v", addr, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p)]
}

func report(b *testing.B, name string, ds []time.Duration) {
	b.ReportMetric(float64(percentile(ds, 0.5).Milliseconds()), name+"-p50-ms")
	b.ReportMetric(float64(percentile(ds, 0.95).Milliseconds()), name+"-p95-ms")
}

// BenchmarkCrashReplacement: kill -9 an instance's process, time until the
// API shows it ready again. Each iteration kills a different instance, so
// every crash is a first crash (an instance that crashes in a loop backs
// off on purpose). Baseline: starting the same process by hand until its
// /readyz answers.
func BenchmarkCrashReplacement(b *testing.B) {
	base := upServer(b)
	call(b, "PUT", base+"/api/v1/services/billing", billingService(b, b.N), nil)
	waitReady(b, base, b.N, 60*time.Second)
	all := instances(b, base)

	var heal, byHand []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var victim model.Instance
		call(b, "GET", base+"/api/v1/instances/"+all[i].ID, nil, &victim)
		start := time.Now()
		if err := syscall.Kill(victim.PID, syscall.SIGKILL); err != nil {
			b.Fatal(err)
		}
		for {
			var now model.Instance
			call(b, "GET", base+"/api/v1/instances/"+victim.ID, nil, &now)
			if now.Ready() && now.Restarts > victim.Restarts {
				heal = append(heal, time.Since(start))
				break
			}
			if time.Since(start) > 10*time.Second {
				b.Fatalf("instance %s not ready again after 10 s: %+v", victim.ID, now)
			}
			time.Sleep(2 * time.Millisecond)
		}
		cmd, d, err := startBilling(testbin.Tool(b, "billing"), testbin.FreeAddr(b))
		if err != nil {
			b.Fatal(err)
		}
		byHand = append(byHand, d)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	b.StopTimer()
	report(b, "heal", heal)
	report(b, "byhand", byHand)
	b.ReportMetric(float64(percentile(heal, 0.5))/float64(percentile(byHand, 0.5)), "p50-ratio")
}

// BenchmarkScaleOut: scale 0 → 100 instances, from the scale call until
// the API shows all 100 ready (then back to 0, untimed). Baseline: 100
// processes started by hand at once until every /readyz answers.
func BenchmarkScaleOut(b *testing.B) {
	const n = 100
	base := upServer(b)
	call(b, "PUT", base+"/api/v1/services/billing", billingService(b, 0), nil)
	var scale, byHand []time.Duration
	for i := 0; i < b.N; i++ {
		start := time.Now()
		call(b, "POST", base+"/api/v1/services/billing/scale", map[string]int{"replicas": n}, nil)
		waitReady(b, base, n, 60*time.Second)
		scale = append(scale, time.Since(start))
		call(b, "POST", base+"/api/v1/services/billing/scale", map[string]int{"replicas": 0}, nil)
		waitReady(b, base, 0, 60*time.Second)

		byHand = append(byHand, startByHand(b, n))
	}
	report(b, "scale", scale)
	report(b, "byhand", byHand)
	b.ReportMetric(float64(percentile(scale, 0.5))/float64(percentile(byHand, 0.5)), "p50-ratio")
	fmt.Fprintf(os.Stderr, "scale 0→%d: %v; by hand: %v\n", n, scale, byHand)
}
