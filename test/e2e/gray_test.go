package e2e

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"opspilot/orchestrator/control"
	"opspilot/orchestrator/model"
	"opspilot/test/testbin"
)

// grayWindow is each gray-release step's analysis window in this test:
// long enough for the gateway to write a few samples (every second), short
// enough to keep the test quick.
const grayWindow = 4 * time.Second

// grayBilling is the demo billing service spread 1:1 over datacenters A and
// B, released as a gray release: B at 50%, B at 100%, then A. release
// makes each spec a new version; failRatio > 0 makes its instances answer
// that share of transactions 500 (a bad release).
func grayBilling(t *testing.T, dir, release string, failRatio float64) string {
	return writeFile(t, dir, "billing-gray-"+release+".yaml", fmt.Sprintf(`kind: Service
name: billing
runtime: process
command: [%s, demo, billing, -capacity, "500", -warmup, 300ms]
env: {RELEASE: %q, BILLING_FAIL_RATIO: "%g"}
replicas: 4
requests: {cpu: 10m, memory: 32Mi}
ports: [{name: http, port: 8080}]
readiness: {http: {path: /readyz, port: 8080}, period: 1s}
placement: {datacenters: {A: 1, B: 1}}
rollout:
  max_surge: 1
  max_unavailable: 0
  progress_deadline: 20s
  steps: [{datacenter: B, percent: 50}, {datacenter: B, percent: 100}]
  analysis: {window: %s, min_requests: 10}
`, opspilotBin(t), release, failRatio, grayWindow))
}

// startGrayCluster is `opspilot server` with the embedded TSDB (the
// rollout analysis queries it) and one node agent per datacenter, A and B,
// all on loopback.
func startGrayCluster(t *testing.T) *cluster {
	t.Helper()
	c := startServerAt(t, testbin.FreeAddr(t), "analyzer: {enabled: false}\n")
	c.agent("a1", "A")
	c.agent("b1", "B")
	waitUntil(t, 30*time.Second, "nodes a1 (A) and b1 (B) joined", func() bool {
		var ns []model.Node
		return c.tryGet("/api/v1/nodes", &ns) && len(ns) == 2
	})
	return c
}

// grayWatch samples the service's instances while a release runs and
// remembers which versions ran in which datacenter, and the gray release's
// step at the moment a new version was first seen in A.
type grayWatch struct {
	c    *cluster
	stop chan struct{}
	done chan struct{}
	// seen[dc] lists the versions placed there (any state), in order of
	// first sight; stepAtA is the release's step when version v was first
	// seen in A.
	seen    map[string][]string
	stepAtA map[string]int
}

func watchGray(c *cluster) *grayWatch {
	w := &grayWatch{c: c, stop: make(chan struct{}), done: make(chan struct{}), seen: map[string][]string{}, stepAtA: map[string]int{}}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			var is []model.Instance
			if !c.tryGet("/api/v1/instances?service=billing", &is) {
				continue
			}
			var newInA []string
			for _, i := range is {
				if !slices.Contains(w.seen[i.Datacenter], i.Version) {
					w.seen[i.Datacenter] = append(w.seen[i.Datacenter], i.Version)
					if i.Datacenter == "A" {
						newInA = append(newInA, i.Version)
					}
				}
			}
			if len(newInA) == 0 {
				continue
			}
			// Read after the instances: the step can only have grown.
			var ro control.RolloutView
			step := -1
			if c.tryGet("/api/v1/services/billing/rollout", &ro) && ro.Gray != nil {
				step = ro.Gray.Step
			}
			for _, v := range newInA {
				if ro.Gray != nil && ro.Gray.Version == v {
					w.stepAtA[v] = step
				} else {
					w.stepAtA[v] = -1 // not this version's release (a rollback, or the first version)
				}
			}
		}
	}()
	return w
}

func (w *grayWatch) finish() {
	close(w.stop)
	<-w.done
}

// billingEvents lists the service's events, oldest first.
func (c *cluster) billingEvents() []control.Event {
	var evs []control.Event
	c.get("/api/v1/events?object=billing&limit=10000", &evs)
	slices.SortStableFunc(evs, func(a, b control.Event) int { return a.Time.Compare(b.Time) })
	return evs
}

// runningVersions is the versions of the service's instances meant to run,
// by datacenter, and how many of them are ready.
func (c *cluster) runningVersions() (byDC map[string]map[string]int, ready int) {
	byDC = map[string]map[string]int{}
	for _, i := range c.instances("billing") {
		if i.Desired != model.DesiredRun {
			continue
		}
		if byDC[i.Datacenter] == nil {
			byDC[i.Datacenter] = map[string]int{}
		}
		byDC[i.Datacenter][i.Version]++
		if i.Ready() {
			ready++
		}
	}
	return byDC, ready
}

// TestGrayReleaseThroughGatewayPromotesGoodAndRollsBackBad runs a gray
// release end to end through real processes: `opspilot server` (embedded
// TSDB, the real rollout analysis), a node agent in each of datacenters A
// and B, billing with 2 instances in each, `opspilot gateway` in front
// (writing its per-version metrics into the server's TSDB every second)
// and `opspilot loadgen` sending steady traffic through it. Steps: B at
// 50%, B at 100%, then A; a 4 s analysis window.
//
//   - A good version: each of B's steps gets a passing verdict with the
//     measured error ratios, A gets no instance of the new version before
//     B's last step passed, the release completes everywhere, and no
//     request fails.
//   - A bad version (its instances answer half the transactions 500):
//     B's first step fails on the error ratio, the release rolls back
//     (RolloutFailed with the numbers; `opspilot rollout status` and the
//     REST rollout view say why), the good version runs everywhere again
//     and A never ran the bad one.
func TestGrayReleaseThroughGatewayPromotesGoodAndRollsBackBad(t *testing.T) {
	// Not parallel: it runs many processes.
	start := time.Now()
	c := startGrayCluster(t)
	if r := c.cli("apply", "-f", grayBilling(t, c.dir, "1", 0)); r.code != 0 {
		t.Fatalf("apply v1: %s", r)
	}
	split := func() bool {
		by, ready := c.runningVersions()
		return ready == 4 && len(by["A"]) == 1 && len(by["B"]) == 1 && sum(by["A"]) == 2 && sum(by["B"]) == 2
	}
	waitUntil(t, 30*time.Second, "billing v1: 2 ready in A, 2 in B", split)
	v1, _ := c.status("billing")

	gwAddr := testbin.FreeAddr(t)
	gw := testbin.Start(t, opspilotBin(t), "gateway", "--server", c.base, "--ca-file", c.caFile, "--token", adminToken,
		"--listen", gwAddr, "--name", "gw-gray", "--metrics-interval", "1s")
	waitForOutput(t, gw, gw.Stdout, "listening on", time.Now(), startTimeout)
	lg := testbin.Start(t, opspilotBin(t), "loadgen", "--target", "http://"+gwAddr+"/billing", "--rate", "60", "--duration", "10m", "--quiet")
	defer func() {
		if t.Failed() {
			t.Logf("gateway:\n%s\n%s\nserver:\n%s", gatewayMetrics("http://"+gwAddr), tail(gw), tail(c.srv))
		}
	}()
	// The old version's traffic is in the TSDB before the release starts.
	time.Sleep(2 * time.Second)
	ready := time.Since(start)

	// 1. A good version passes B's steps, then goes to A.
	good := time.Now()
	w := watchGray(c)
	if r := c.cli("apply", "-f", grayBilling(t, c.dir, "2", 0), "--reason", "release 2"); r.code != 0 {
		t.Fatalf("apply v2: %s", r)
	}
	rs := testbin.Start(t, opspilotBin(t), "rollout", "status", "billing", "--timeout", "90s",
		"--server", c.base, "--ca-file", c.caFile, "--token", adminToken)
	if code := waitExit(t, rs, 95*time.Second); code != 0 {
		t.Fatalf("rollout status of the good release: exit %d\n%s", code, tail(rs))
	}
	w.finish()
	v2, _ := c.status("billing")
	goodTook := time.Since(good)
	t.Logf("good release (%s → %s) in %s; rollout status:\n%s", v1.Version, v2.Version, goodTook.Round(time.Millisecond), rs.Stdout.String())
	out := rs.Stdout.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^gray release step 1/2 \(B at 50%\): pass — error ratio \d+\.\d\d% vs \d+\.\d\d%, p95 latency \S+ vs \S+$`),
		regexp.MustCompile(`(?m)^gray release step 2/2 \(B at 100%\): pass — error ratio \d+\.\d\d% vs \d+\.\d\d%, p95 latency \S+ vs \S+$`),
		regexp.MustCompile(`(?m)^service billing: rollout to version ` + v2.Version + ` \(revision 2\) complete: 4/4 ready$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("rollout status has no line matching %s", want)
		}
	}
	if step, ok := w.stepAtA[v2.Version]; !ok || step != 2 {
		t.Errorf("version %s first seen in A at gray step %d (seen: %v), want only after both of B's steps passed (step 2)", v2.Version, step, w.seen)
	}
	var ro control.RolloutView
	c.get("/api/v1/services/billing/rollout", &ro)
	if ro.Gray == nil || ro.Gray.Version != v2.Version || ro.Gray.Step != 2 || len(ro.Gray.Verdicts) < 2 {
		t.Errorf("REST rollout view after the good release: %+v, want version %s at step 2 with both verdicts", ro.Gray, v2.Version)
	}
	// Events: both steps passed, with their numbers, before any instance
	// of v2 was placed in A.
	var passed1, passed2 time.Time
	for _, e := range c.billingEvents() {
		switch {
		case e.Reason == "GrayStepPassed" && strings.Contains(e.Message, "step 1/2 (B at 50%): pass — error ratio"):
			passed1 = e.Time
		case e.Reason == "GrayStepPassed" && strings.Contains(e.Message, "step 2/2 (B at 100%): pass — error ratio"):
			passed2 = e.Time
		case e.Reason == "Placed" && strings.Contains(e.Message, "version "+v2.Version) && strings.Contains(e.Message, "→a1"):
			if passed2.IsZero() || e.Time.Before(passed2) {
				t.Errorf("%s placed v2 in A before B's step 2/2 passed (%s): %s", e.Time.Format(time.StampMilli), passed2.Format(time.StampMilli), e.Message)
			}
		case e.Reason == "RolloutFailed":
			t.Errorf("the good release failed: %s", e.Message)
		}
	}
	if passed1.IsZero() || passed2.IsZero() || passed2.Before(passed1) {
		t.Errorf("GrayStepPassed events: step 1/2 at %s, step 2/2 at %s; want both, in order", passed1.Format(time.StampMilli), passed2.Format(time.StampMilli))
	}
	waitUntil(t, 10*time.Second, "v2 everywhere: 2 ready in A, 2 in B", func() bool {
		by, ready := c.runningVersions()
		return ready == 4 && by["A"][v2.Version] == 2 && by["B"][v2.Version] == 2 && len(by["A"]) == 1 && len(by["B"]) == 1
	})
	rep := stopLoadgen(t, lg)
	t.Logf("loadgen during the good release: %s", strings.TrimSpace(rep.text))
	if rep.failed > 0 || rep.ok < 100 {
		t.Errorf("loadgen during the good release: %d ok, %d failed; want no failure", rep.ok, rep.failed)
	}

	// 2. A bad version fails B's first step and rolls back.
	lg = testbin.Start(t, opspilotBin(t), "loadgen", "--target", "http://"+gwAddr+"/billing", "--rate", "60", "--duration", "10m", "--quiet")
	bad := time.Now()
	w = watchGray(c)
	if r := c.cli("apply", "-f", grayBilling(t, c.dir, "3", 0.5), "--reason", "release 3"); r.code != 0 {
		t.Fatalf("apply v3: %s", r)
	}
	v3, _ := c.status("billing")
	if v3.Version == v2.Version {
		t.Fatalf("the bad spec did not make a new version: %+v", v3)
	}
	r := run(t, 95*time.Second, nil, opspilotBin(t), "rollout", "status", "billing", "--timeout", "90s",
		"--server", c.base, "--ca-file", c.caFile, "--token", adminToken)
	badTook := time.Since(bad)
	t.Logf("bad release (%s) rolled back in %s; rollout status:\n%s", v3.Version, badTook.Round(time.Millisecond), r)
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "rolled back: gray release step 1/2 (B at 50%): fail — the new version's error ratio is") {
		t.Errorf("rollout status of the bad release: want a failure that says step 1/2 failed on the error ratio\n%s", r)
	}
	waitUntil(t, 20*time.Second, "v2 everywhere again: 2 ready in A, 2 in B, no v3 left", func() bool {
		by, ready := c.runningVersions()
		return ready == 4 && by["A"][v2.Version] == 2 && by["B"][v2.Version] == 2 && len(by["A"]) == 1 && len(by["B"]) == 1
	})
	restored := time.Since(bad)
	waitUntil(t, 15*time.Second, "the bad version's instance stopped and gone", func() bool {
		for _, i := range c.instances("billing") {
			if i.Version == v3.Version {
				return false
			}
		}
		return true
	})
	w.finish()
	if slices.Contains(w.seen["A"], v3.Version) {
		t.Errorf("datacenter A ran the bad version %s (seen in A: %v)", v3.Version, w.seen["A"])
	}
	if !slices.Contains(w.seen["B"], v3.Version) {
		t.Errorf("the bad version %s never ran in B (seen in B: %v): the test did not exercise the analysis", v3.Version, w.seen["B"])
	}
	var failed []control.Event
	for _, e := range c.billingEvents() {
		if e.Reason == "Placed" && strings.Contains(e.Message, "version "+v3.Version) && strings.Contains(e.Message, "→a1") {
			t.Errorf("the bad version was placed in A: %s", e.Message)
		}
		if e.Reason == "RolloutFailed" {
			failed = append(failed, e)
		}
	}
	if len(failed) != 1 || !strings.Contains(failed[0].Message, "version "+v3.Version+" failed: gray release step 1/2 (B at 50%): fail") ||
		!strings.Contains(failed[0].Message, "error ratio") || !strings.Contains(failed[0].Message, "rolled back to version "+v2.Version) {
		t.Errorf("want one RolloutFailed event for %s with the error ratios, rolled back to %s; got %+v", v3.Version, v2.Version, failed)
	} else {
		t.Logf("RolloutFailed: %s", failed[0].Message)
	}
	c.get("/api/v1/services/billing/rollout", &ro)
	if !strings.HasPrefix(ro.Status.Rollout, "rolled back: gray release step 1/2") {
		t.Errorf("REST rollout view's status after the bad release: %q, want rolled back with the verdict", ro.Status.Rollout)
	}
	if ro.Gray == nil || ro.Gray.Version != v3.Version || len(ro.Gray.Verdicts) == 0 || !strings.Contains(ro.Gray.Verdicts[len(ro.Gray.Verdicts)-1], ": fail — ") {
		t.Errorf("REST rollout view's gray release after the bad release: %+v, want the failed release of %s with its failing verdict", ro.Gray, v3.Version)
	}
	rep = stopLoadgen(t, lg)
	t.Logf("loadgen during the bad release: %s", strings.TrimSpace(rep.text))
	t.Logf("timings: cluster, v1 and load ready %s; good release %s; bad release rolled back %s, v2 everywhere again %s; total %s",
		ready.Round(time.Millisecond), goodTook.Round(time.Millisecond), badTook.Round(time.Millisecond), restored.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
