package e2e

import (
	"encoding/json"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"opspilot/autoscaler"
	"opspilot/orchestrator/control"
	"opspilot/test/testbin"
)

// TestUpDemoAutoscalesOnLoad is issue 6's done-when: `opspilot up --demo`
// deploys billing with the autoscaling policy of examples/autoscaling; a
// load step from 100 to 1,000 transactions/s (`opspilot loadgen`) makes
// `opspilot get service billing` show more replicas within 5 s, brings
// enough instances for billing's latency to return under its objective,
// and after the surge the replicas shrink again once the 30 s scale-down
// window has passed, not before.
func TestUpDemoAutoscalesOnLoad(t *testing.T) {
	dir := t.TempDir()
	addr, gwAddr := testbin.FreeAddr(t), testbin.FreeAddr(t)
	s := launch(t, addr, dir, "up", "--demo", "--data-dir", dir, "--http-addr", addr, "--logstore-addr", "127.0.0.1:0", "--gateway-addr", gwAddr)
	s.waitReady(t, 15*time.Second)
	server := "http://" + addr
	replicas := func() (int, int) {
		var v control.ServiceView
		code, body := do(t, "GET", server+"/api/v1/services/billing", "", "")
		if code != 200 || json.Unmarshal([]byte(body), &v) != nil {
			t.Fatalf("GET service billing: %d %s", code, body)
		}
		return v.Replicas, v.Status.ReadyReplicas
	}
	waitUntil(t, 60*time.Second, "billing 3/3 ready", func() bool { n, r := replicas(); return n == 3 && r == 3 })

	// 100 transactions/s: 33 per instance, under the target of 50, and the
	// policy's minimum is 3.
	base := testbin.Start(t, opspilotBin(t), "loadgen", "--server", server, "--rate", "100", "--duration", "50s")
	waitUntil(t, 30*time.Second, "the autoscaler reading billing's transactions", func() bool {
		var st autoscaler.Status
		code, body := do(t, "GET", server+"/api/v1/autoscalers/billing", "", "")
		if code != 200 || json.Unmarshal([]byte(body), &st) != nil {
			return false
		}
		pr := st.Last.Recommendation.Proposals
		return len(pr) == 2 && pr[0].State == autoscaler.Proposed && pr[0].Value > 20
	})
	if n, _ := replicas(); n != 3 {
		t.Fatalf("at 100 tx/s billing has %d replicas, want the minimum 3", n)
	}

	// The step: 900 more, 1,000 in all, for 20 s.
	stepAt := time.Now()
	surge := testbin.Start(t, opspilotBin(t), "loadgen", "--server", server, "--rate", "900", "--duration", "20s")
	took := waitUntil(t, 5*time.Second, "more than 3 replicas within 5 s of the step", func() bool { n, _ := replicas(); return n > 3 })
	t.Logf("replicas raised %s after the step", took.Round(time.Millisecond))
	if r := opspilot(t, "get", "service", "billing", "--server", server); r.code != 0 || strings.Contains(r.stdout, " 3/3 ") {
		t.Errorf("opspilot get service billing should show more than 3 replicas:\n%s", r)
	}

	// Enough instances for the latency objective: p95 under 50 ms (one
	// instance handles 100 tx/s at 5 ms; at 333 tx/s it takes ~185 ms and
	// sheds requests) and under 1% errors, before the surge ends.
	p95 := `histogram_quantile(0.95, sum by (le) (rate(billing_request_duration_seconds_bucket{service="billing"}[5s])))`
	errs := `sum(rate(billing_transactions_total{service="billing", result!="ok"}[5s]) or vector(0)) / sum(rate(billing_transactions_total{service="billing"}[5s]))`
	waitUntil(t, time.Until(stepAt.Add(19*time.Second)), "billing's p95 latency under 50 ms and errors under 1% during the surge", func() bool {
		return queryValue(t, server, "", p95) < 0.05 && queryValue(t, server, "", errs) < 0.01
	})
	peak, _ := replicas()
	t.Logf("latency objective met %s after the step with %d replicas", time.Since(stepAt).Round(time.Millisecond), peak)

	if code := waitExit(t, surge, 40*time.Second); code != 0 {
		t.Fatalf("loadgen --rate 900 exited %d:\n%s", code, tail(surge))
	}
	surgeEnd := time.Now()
	// Back at 100 tx/s: the recommendation drops within seconds, but the
	// scale-down window (30 s) holds the replicas until it has passed.
	for n, _ := replicas(); n >= peak; n, _ = replicas() {
		if time.Since(surgeEnd) > 60*time.Second {
			t.Fatalf("billing still at %d replicas 60 s after the surge", n)
		}
		peak = max(peak, n)
		time.Sleep(200 * time.Millisecond)
	}
	down := time.Since(surgeEnd)
	t.Logf("first scale-down %s after the surge ended", down.Round(time.Millisecond))
	if down < 28*time.Second {
		t.Errorf("billing scaled down %s after the surge; the 30 s scale-down window should have held it", down)
	}
	var st autoscaler.Status
	if code, body := do(t, "GET", server+"/api/v1/autoscalers/billing", "", ""); code != 200 || json.Unmarshal([]byte(body), &st) != nil {
		t.Fatalf("status: %d %s", code, body)
	}
	limited := false
	for _, d := range st.History {
		for _, l := range d.Decision.LimitedBy {
			limited = limited || l == autoscaler.ScaleDownStabilized
		}
	}
	if !limited {
		t.Errorf("no decision in the history was held by the scale-down window:\n%+v", st.History)
	}
	r := opspilot(t, "get", "events", "--server", server)
	if r.code != 0 || !strings.Contains(r.stdout, "AutoScaled") || !strings.Contains(r.stdout, "autoscaler") {
		t.Errorf("events should record the autoscaler's scalings with who=autoscaler:\n%s", r)
	}
	r = opspilot(t, "autoscaler", "describe", "billing", "--server", server)
	if r.code != 0 || !strings.Contains(r.stdout, "scaled") || !strings.Contains(r.stdout, "scale-down-window") {
		t.Errorf("autoscaler describe billing:\n%s", r)
	}
	t.Logf("autoscaler describe billing:\n%s", r.stdout)
	_ = waitExit(t, base, 60*time.Second)

	// Scaling by hand a service a policy scales is allowed, with a note
	// that the autoscaler will change it (as the HPA would).
	if r := opspilot(t, "scale", "billing", "7", "--server", server); r.code != 0 || !strings.Contains(r.stderr, "note: an autoscaling policy scales billing") {
		t.Errorf("scale an autoscaled service by hand:\n%s", r)
	}

	// The policy is an apply file like any spec: the shipped one is what
	// the demo applied, and a change shows as a diff.
	example := filepath.Join(testbin.ModuleRoot(t), "examples", "autoscaling", "billing.yaml")
	if r := opspilot(t, "apply", "-f", example, "--server", server); r.code != 0 || !strings.Contains(r.stdout, "autoscalingpolicy/billing unchanged") {
		t.Errorf("apply the demo's own policy:\n%s", r)
	}
	data, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	changed := writeFile(t, dir, "policy.yaml", strings.Replace(string(data), "max_replicas: 40", "max_replicas: 41", 1))
	if r := opspilot(t, "apply", "-f", changed, "--server", server, "--reason", "e2e"); r.code != 0 ||
		!strings.Contains(r.stdout, "autoscalingpolicy/billing configured") || !strings.Contains(r.stdout, "+max_replicas: 41") {
		t.Errorf("apply a changed policy:\n%s", r)
	}
	if r := opspilot(t, "get", "autoscalingpolicies", "--server", server); r.code != 0 || !strings.Contains(r.stdout, " 41 ") {
		t.Errorf("get autoscalingpolicies:\n%s", r)
	}
}

// queryValue runs an instant query (with token, if any) and returns its
// single value (+Inf when there is none, so "under" conditions fail).
func queryValue(t *testing.T, server, token, expr string) float64 {
	code, body := do(t, "GET", server+"/prometheus/api/v1/query?query="+url.QueryEscape(expr), token, "")
	var out struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &out) != nil || len(out.Data.Result) != 1 {
		return math.Inf(1)
	}
	s, _ := out.Data.Result[0].Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) {
		return math.Inf(1)
	}
	return v
}
