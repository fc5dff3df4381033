package control

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"opspilot/orchestrator/model"
	"opspilot/orchestrator/scheduler"
	"opspilot/orchestrator/store"
)

// KindGray holds the progress of gray releases, one object per service
// and target version ("billing.3f2a…").
const KindGray = "grayreleases"

// GrayStatus is a gray release's progress: which step is out and since
// when it has been measured, and each judged step's verdict.
type GrayStatus struct {
	Service string `json:"service"`
	Version string `json:"version"`
	// Step is the index of the step rolled out or held now; len(steps)
	// once every step passed.
	Step int `json:"step"`
	// HeldSince is when the step's instances were all ready and its
	// analysis window started; zero while they are being replaced.
	HeldSince time.Time `json:"heldSince,omitzero"`
	// Verdicts has one line per judged step (and per inconclusive window).
	Verdicts []string `json:"verdicts,omitempty"`
}

// Comparison is the new and the old version's traffic over an analysis
// window.
type Comparison struct {
	NewRequests, OldRequests     float64
	NewErrorRatio, OldErrorRatio float64
	// P95 latencies in seconds; NaN when unknown.
	NewP95, OldP95 float64
}

// RolloutAnalyzer measures a service's two versions over a window (the
// gateway's per-version metrics in the TSDB).
type RolloutAnalyzer interface {
	Compare(ctx context.Context, service, newVersion, oldVersion string, window time.Duration) (Comparison, error)
}

// SetRolloutAnalyzer gives the controller what judges gray-release steps.
// Without one, a step is held until an analyzer is set.
func (c *Controller) SetRolloutAnalyzer(a RolloutAnalyzer) {
	c.revMu.Lock()
	c.analyzer = a
	c.revMu.Unlock()
}

// Verdicts of judge.
const (
	verdictPass = "pass"
	verdictFail = "fail"
	verdictHold = "hold"
)

// judge decides a step from a comparison: fail on an error-ratio increase
// or latency ratio over the limits, hold when the new version answered too
// few requests to tell.
func judge(cmp Comparison, a model.RolloutAnalysis) (verdict, why string) {
	a = a.WithDefaults()
	if cmp.NewRequests < float64(a.MinRequests) {
		return verdictHold, fmt.Sprintf("the new version answered %.0f requests in %s, fewer than the %d needed for a verdict", cmp.NewRequests, a.Window, a.MinRequests)
	}
	measured := fmt.Sprintf("error ratio %.2f%% vs %.2f%%", 100*cmp.NewErrorRatio, 100*cmp.OldErrorRatio)
	if !math.IsNaN(cmp.NewP95) && !math.IsNaN(cmp.OldP95) {
		measured += fmt.Sprintf(", p95 latency %s vs %s", secs(cmp.NewP95), secs(cmp.OldP95))
	}
	if d := cmp.NewErrorRatio - cmp.OldErrorRatio; d > a.MaxErrorRatioIncrease {
		return verdictFail, fmt.Sprintf("the new version's error ratio is %.2f points above the old one's (limit %.2f): %s", 100*d, 100*a.MaxErrorRatioIncrease, measured)
	}
	if !math.IsNaN(cmp.NewP95) && !math.IsNaN(cmp.OldP95) && cmp.OldP95 > 0 && cmp.NewP95/cmp.OldP95 > a.MaxLatencyRatio {
		return verdictFail, fmt.Sprintf("the new version's p95 latency is %.1f× the old one's (limit %.1f×): %s", cmp.NewP95/cmp.OldP95, a.MaxLatencyRatio, measured)
	}
	return verdictPass, measured
}

func secs(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(100 * time.Microsecond).String()
}

// grayAllowed is how many instances per datacenter may run the new
// version up to step k: each named datacenter's largest percent so far of
// its target share (scheduler.Targets), rounded up.
func grayAllowed(steps []model.RolloutStep, k int, targets map[string]int) map[string]int {
	pct := map[string]int{}
	for _, st := range steps[:min(k+1, len(steps))] {
		pct[st.Datacenter] = max(pct[st.Datacenter], st.Percent)
	}
	out := map[string]int{}
	for dc, p := range pct {
		if t := targets[dc]; t > 0 {
			out[dc] = min(t, max(1, (t*p+99)/100))
		}
	}
	return out
}

// grayRollout advances a gray release by one pass: it replaces old
// instances by new ones per datacenter up to the current step, holds the
// step for the analysis window, and judges it. It reports done once every
// step passed, when the caller finishes as a plain rolling update.
func (c *Controller) grayRollout(ctx context.Context, svc *model.Service, rev Revision, cur, old []model.Instance, weights map[string]int, d dcState, req *scheduler.Request, now time.Time) (done bool, err error) {
	steps := svc.Rollout.Steps
	// Going back from a release that failed is not released gradually.
	if prev, err := store.Get[Revision](ctx, c.st, KindRevision, revisionKey(svc.Name, majorityVersion(old))); err == nil && prev.Value.Failed != "" {
		return true, nil
	}
	key := revisionKey(svc.Name, rev.Version)
	vg, err := store.Get[GrayStatus](ctx, c.st, KindGray, key)
	if errors.Is(err, store.ErrNotFound) {
		vg.Value = GrayStatus{Service: svc.Name, Version: rev.Version}
		if vg.Version, err = store.Create(ctx, c.st, KindGray, key, vg.Value); err != nil {
			return false, err
		}
		c.events.Record(ctx, Event{Kind: "service", Object: svc.Name, Reason: "GrayReleaseStarted",
			Message: fmt.Sprintf("gray release of %s version %s: %s", svc.Name, rev.Version, describeSteps(steps)), Who: whoController})
	} else if err != nil {
		return false, err
	}
	g := vg.Value
	if g.Step >= len(steps) {
		return true, nil
	}
	targets := scheduler.Targets(svc.Replicas, weights, d.known)
	allowed := grayAllowed(steps, g.Step, targets)
	curBy, oldBy := byDatacenter(cur), byDatacenter(old)
	place := map[string]int{}
	settled := true
	for _, dc := range slices.Sorted(maps.Keys(allowed)) {
		n := allowed[dc]
		if k := len(curBy[dc]); k < n {
			place[dc] = n - k
			settled = false
		}
		// Old instances in dc go once enough are ready there: the
		// datacenter keeps its share of ready instances throughout.
		olds := slices.Clone(oldBy[dc])
		slices.SortStableFunc(olds, func(a, b model.Instance) int { return boolInt(a.Ready()) - boolInt(b.Ready()) })
		ready := countReady(curBy[dc]) + countReady(olds)
		keepOld := max(targets[dc]-n, 0)
		for k, i := range olds {
			if len(olds)-k <= keepOld {
				break
			}
			if i.Ready() {
				if ready-1 < targets[dc] {
					settled = false
					break
				}
				ready--
			}
			c.stopAfter(ctx, i, now, drainDelay(svc), fmt.Sprintf("replaced by version %s (gray release step %d)", rev.Version, g.Step+1))
		}
		if countReady(curBy[dc]) < n || len(olds) > keepOld {
			settled = false
		}
	}
	if len(place) > 0 {
		total := 0
		for _, n := range place {
			total += n
		}
		req.Count = total
		req.Service.Placement.Datacenters = place
	}
	if !settled {
		return false, nil
	}
	st := steps[g.Step]
	if allowed[st.Datacenter] == 0 {
		// The step's datacenter has no share now (it failed over): hold
		// the release rather than judge a step that released nothing.
		return false, nil
	}
	a := svc.Rollout.Analysis.WithDefaults()
	if g.HeldSince.IsZero() {
		g.HeldSince = now
		if _, err := store.Update(ctx, c.st, KindGray, key, g, vg.Version); err != nil {
			return false, err
		}
		c.events.Record(ctx, Event{Kind: "service", Object: svc.Name, Reason: "GrayStepHeld",
			Message: fmt.Sprintf("gray release of %s step %d/%d: %d%% of datacenter %s (%d instance(s)) on version %s; comparing with the old version for %s",
				svc.Name, g.Step+1, len(steps), st.Percent, st.Datacenter, allowed[st.Datacenter], rev.Version, a.Window), Who: whoController})
		return false, nil
	}
	if now.Sub(g.HeldSince) < a.Window {
		return false, nil
	}
	c.revMu.Lock()
	an := c.analyzer
	c.revMu.Unlock()
	verdict, why := verdictHold, "no rollout analyzer runs on this control plane"
	if an != nil {
		cmp, err := an.Compare(ctx, svc.Name, rev.Version, majorityVersion(old), a.Window)
		if err != nil {
			why = "the analysis failed: " + err.Error()
		} else {
			verdict, why = judge(cmp, a)
		}
	}
	line := fmt.Sprintf("step %d/%d (%s at %d%%): %s — %s", g.Step+1, len(steps), st.Datacenter, st.Percent, verdict, why)
	g.Verdicts = append(g.Verdicts, line)
	switch verdict {
	case verdictFail:
		if _, err := store.Update(ctx, c.st, KindGray, key, g, vg.Version); err != nil {
			return false, err
		}
		return false, c.rollback(ctx, *svc, rev, old, "gray release "+line, now)
	case verdictPass:
		g.Step++
	}
	g.HeldSince = time.Time{} // a pass starts the next step; a hold measures a new window
	if _, err := store.Update(ctx, c.st, KindGray, key, g, vg.Version); err != nil {
		return false, err
	}
	reason := map[string]string{verdictPass: "GrayStepPassed", verdictHold: "GrayStepInconclusive"}[verdict]
	ev := Event{Kind: "service", Object: svc.Name, Reason: reason, Message: "gray release of " + svc.Name + " " + line, Who: whoController}
	if verdict == verdictHold {
		ev.Type = EventWarning
	}
	c.events.Record(ctx, ev)
	c.Poke()
	return false, nil
}

func byDatacenter(is []model.Instance) map[string][]model.Instance {
	out := map[string][]model.Instance{}
	for _, i := range is {
		out[i.Datacenter] = append(out[i.Datacenter], i)
	}
	return out
}

// majorityVersion is the version most of the instances run.
func majorityVersion(is []model.Instance) string {
	counts := map[string]int{}
	best := ""
	for _, i := range is {
		counts[i.Version]++
		if n := counts[i.Version]; n > counts[best] || (n == counts[best] && i.Version < best) {
			best = i.Version
		}
	}
	return best
}

func describeSteps(steps []model.RolloutStep) string {
	parts := make([]string, len(steps))
	for k, st := range steps {
		parts[k] = fmt.Sprintf("%s %d%%", st.Datacenter, st.Percent)
	}
	return strings.Join(parts, ", then ") + ", then the rest"
}

// GrayKey is the name a gray release's status is stored under.
func GrayKey(service, version string) string { return revisionKey(service, version) }

// rerelease clears a revision's failure when its version is released
// again, and forgets the failed attempt's gray release (its steps and
// verdicts), so the new attempt is analysed from its first step and a
// later release from it is gradual again.
func (c *Controller) rerelease(ctx context.Context, rev Revision) (Revision, error) {
	key := revisionKey(rev.Service, rev.Version)
	got, err := store.Get[Revision](ctx, c.st, KindRevision, key)
	if err != nil {
		return rev, err
	}
	failed := got.Value.Failed
	got.Value.Failed = ""
	if _, err := store.Update(ctx, c.st, KindRevision, key, got.Value, got.Version); err != nil {
		return rev, err
	}
	if g, err := store.Get[GrayStatus](ctx, c.st, KindGray, key); err == nil {
		if err := store.Delete(ctx, c.st, KindGray, key, g.Version); err != nil && !errors.Is(err, store.ErrNotFound) {
			return rev, err
		}
	}
	c.events.Record(ctx, Event{Kind: "service", Object: rev.Service, Reason: "Rereleased",
		Message: fmt.Sprintf("version %s of %s is released again after its rollback (%s)", rev.Version, rev.Service, failed), Who: whoController})
	return got.Value, nil
}
