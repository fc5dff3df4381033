package autoscaler

import (
	"fmt"
	"slices"
	"time"
)

// Limit names what held a decision back from the raw recommendation; the
// loop counts decisions by it (the limited-by counters) and puts it in the
// decision's event.
type Limit string

const (
	// ScaleUpStabilized: a lower recommendation within the scale-up
	// window held the count down.
	ScaleUpStabilized Limit = "scale-up-window"
	// ScaleDownStabilized: a higher recommendation within the scale-down
	// window held the count up.
	ScaleDownStabilized Limit = "scale-down-window"
	// ScaleUpRate / ScaleDownRate: a rate policy (Decision.Policy says
	// which) allowed no larger change within its period.
	ScaleUpRate   Limit = "scale-up-policy"
	ScaleDownRate Limit = "scale-down-policy"
	// ScaleUpDisabled / ScaleDownDisabled: select_policy is Disabled.
	ScaleUpDisabled   Limit = "scale-up-disabled"
	ScaleDownDisabled Limit = "scale-down-disabled"
	// MaxReplicas / MinReplicas: the policy's bounds.
	MaxReplicas Limit = "max-replicas"
	MinReplicas Limit = "min-replicas"
)

// Decision is the result of applying a policy's behaviour.
type Decision struct {
	// Replicas is the count to scale to.
	Replicas int `json:"replicas"`
	// Recommended is the raw recommendation that went in; Stabilized is
	// it after the stabilisation windows, before rate policies and bounds.
	Recommended int `json:"recommended"`
	Stabilized  int `json:"stabilized"`
	// LimitedBy lists what changed the count on the way, in order: at
	// most one window, then at most one of a rate policy, Disabled or a
	// bound. Empty when Replicas == Recommended.
	LimitedBy []Limit `json:"limited_by"`
	// Policy is the index, within the direction's policies, of the rate
	// policy that set the limit (when LimitedBy holds ScaleUpRate or
	// ScaleDownRate), or -1.
	Policy int `json:"policy"`
	// Reason explains the decision in a sentence, for events.
	Reason string `json:"reason"`
}

// Limiter applies a policy's behaviour to raw recommendations: the
// stabilisation windows, the rate policies and the min/max bounds, the
// separate step after Desired. It holds the history that needs: the
// recommendations within the longest window and the scale changes within
// the longest policy period. Apart from that history, Apply is a pure
// function of its arguments; time is passed in, never read.
//
// One Limiter serves one service and is not safe for concurrent use. The
// policy fields may be changed between calls (a re-applied policy keeps its
// history).
type Limiter struct {
	Behavior                 Behavior
	MinReplicas, MaxReplicas int

	recommendations []stamped // raw recommendations, oldest first
	ups, downs      []stamped // replicas added / removed by past scalings
}

type stamped struct {
	at time.Time
	n  int
}

// NewLimiter returns a Limiter for the policy, with empty history.
func NewLimiter(p *Policy) *Limiter {
	return &Limiter{Behavior: p.Behavior, MinReplicas: p.MinReplicas, MaxReplicas: p.MaxReplicas}
}

// Apply returns the replica count to scale to at now, given the current
// count and the raw recommendation, and records the recommendation for
// later windows. It follows the HPA (normalizeDesiredReplicasWithBehaviors):
//
//  1. Stabilisation: the count moves up only to the lowest recommendation
//     within the scale-up window, and down only to the highest within the
//     scale-down window (each window includes this recommendation).
//  2. Rate: each policy allows, from the replicas at the start of its
//     period (current minus what was added plus what was removed within
//     it), +Value instances or +Value% (rounded up) when scaling up, and
//     −Value instances or −Value% (rounded so at most Value% go) when
//     scaling down. select_policy Max takes the policy allowing the
//     largest change, Min the smallest; Disabled allows none.
//  3. Bounds: min_replicas and max_replicas. A current count outside them
//     is brought inside at once, skipping 1 and 2, as the HPA does.
//
// Call Record once the scale operation succeeded, so the rate policies
// see the change.
func (l *Limiter) Apply(now time.Time, current, recommended int) Decision {
	d := Decision{Recommended: recommended, Stabilized: recommended, Policy: -1}
	if len(l.recommendations) == 0 && l.Behavior.ScaleDown.StabilizationWindow > 0 {
		// After a restart the window has no history; seed it with the
		// current count so a restart does not skip the scale-down window
		// (the HPA's maybeInitScaleDownStabilizationWindow).
		l.recommendations = append(l.recommendations, stamped{now, current})
	}
	l.prune(now)

	switch {
	case current > l.MaxReplicas:
		l.recommendations = append(l.recommendations, stamped{now, recommended})
		d.Replicas, d.LimitedBy = l.MaxReplicas, []Limit{MaxReplicas}
		d.Reason = fmt.Sprintf("%d replicas are above max_replicas %d", current, l.MaxReplicas)
		return d
	case current < l.MinReplicas:
		l.recommendations = append(l.recommendations, stamped{now, recommended})
		d.Replicas, d.LimitedBy = l.MinReplicas, []Limit{MinReplicas}
		d.Reason = fmt.Sprintf("%d replicas are below min_replicas %d", current, l.MinReplicas)
		return d
	}

	// 1. Stabilisation windows.
	up, down := recommended, recommended
	upCutoff := now.Add(-l.Behavior.ScaleUp.StabilizationWindow)
	downCutoff := now.Add(-l.Behavior.ScaleDown.StabilizationWindow)
	for _, r := range l.recommendations {
		if r.at.After(upCutoff) {
			up = min(up, r.n)
		}
		if r.at.After(downCutoff) {
			down = max(down, r.n)
		}
	}
	l.recommendations = append(l.recommendations, stamped{now, recommended})
	// up <= recommended <= down, so this moves towards the recommendation
	// only as far as both windows agree.
	stabilized := min(max(current, up), down)
	if recommended > current && stabilized < recommended {
		d.LimitedBy = append(d.LimitedBy, ScaleUpStabilized)
	} else if recommended < current && stabilized > recommended {
		d.LimitedBy = append(d.LimitedBy, ScaleDownStabilized)
	}
	d.Stabilized = stabilized

	// 2 and 3. Rate policies and bounds.
	d.Replicas = stabilized
	switch {
	case stabilized > current:
		limit, idx := l.rateLimit(now, current, true)
		limit = max(limit, current)
		bound, why := min(limit, l.MaxReplicas), ScaleUpRate
		switch {
		case l.Behavior.ScaleUp.SelectPolicy == SelectDisabled:
			why = ScaleUpDisabled
		case l.MaxReplicas <= limit:
			why = MaxReplicas
		}
		if stabilized > bound {
			d.Replicas = bound
			d.LimitedBy = append(d.LimitedBy, why)
			if why == ScaleUpRate {
				d.Policy = idx
			}
		}
	case stabilized < current:
		limit, idx := l.rateLimit(now, current, false)
		limit = min(limit, current)
		bound, why := max(limit, l.MinReplicas), ScaleDownRate
		switch {
		case l.Behavior.ScaleDown.SelectPolicy == SelectDisabled:
			why = ScaleDownDisabled
		case l.MinReplicas >= limit:
			why = MinReplicas
		}
		if stabilized < bound {
			d.Replicas = bound
			d.LimitedBy = append(d.LimitedBy, why)
			if why == ScaleDownRate {
				d.Policy = idx
			}
		}
	}
	d.Reason = l.reason(d, current)
	return d
}

// Record notes that the service was scaled from one count to another at
// now, for the rate policies.
func (l *Limiter) Record(now time.Time, from, to int) {
	switch {
	case to > from:
		l.ups = append(l.ups, stamped{now, to - from})
	case to < from:
		l.downs = append(l.downs, stamped{now, from - to})
	}
}

// rateLimit returns the most (scaling up) or fewest (scaling down)
// replicas the direction's policies allow now, and the index of the policy
// that decided it.
func (l *Limiter) rateLimit(now time.Time, current int, scaleUp bool) (int, int) {
	rules := l.Behavior.ScaleDown
	if scaleUp {
		rules = l.Behavior.ScaleUp
	}
	if rules.SelectPolicy == SelectDisabled {
		return current, -1
	}
	// Scaling up, the largest change is the highest count; scaling down,
	// the lowest. Min selects the other end.
	wantHigh := scaleUp == (rules.SelectPolicy != SelectMin)
	limit, idx := 0, -1
	for i, pol := range rules.Policies {
		cutoff := now.Add(-pol.Period)
		start := int64(current) - changedSince(l.ups, cutoff) + changedSince(l.downs, cutoff)
		v := int64(min(max(pol.Value, 0), maxPolicyValue))
		var n int64
		switch {
		case scaleUp && pol.Type == PolicyPods:
			n = start + v
		case scaleUp: // Percent, rounded up so that a small count can grow
			n = (start*(100+v) + 99) / 100
		case pol.Type == PolicyPods:
			n = start - v
		default: // Percent of the start removed at most: floor of what stays
			n = start * (100 - v) / 100
		}
		c := clampInt(n)
		if idx < 0 || wantHigh && c > limit || !wantHigh && c < limit {
			limit, idx = c, i
		}
	}
	if idx < 0 {
		return current, -1 // no policies: nothing is allowed
	}
	return limit, idx
}

func changedSince(events []stamped, cutoff time.Time) int64 {
	var n int64
	for _, e := range events {
		if e.at.After(cutoff) {
			n += int64(e.n)
		}
	}
	return n
}

// prune drops history no window or period can reach any more.
func (l *Limiter) prune(now time.Time) {
	window := max(l.Behavior.ScaleUp.StabilizationWindow, l.Behavior.ScaleDown.StabilizationWindow)
	cutoff := now.Add(-window)
	l.recommendations = slices.DeleteFunc(l.recommendations, func(r stamped) bool { return !r.at.After(cutoff) })
	var period time.Duration
	for _, r := range [...]ScalingRules{l.Behavior.ScaleUp, l.Behavior.ScaleDown} {
		for _, p := range r.Policies {
			period = max(period, p.Period)
		}
	}
	cutoff = now.Add(-period)
	old := func(e stamped) bool { return !e.at.After(cutoff) }
	l.ups = slices.DeleteFunc(l.ups, old)
	l.downs = slices.DeleteFunc(l.downs, old)
}

func (l *Limiter) reason(d Decision, current int) string {
	if len(d.LimitedBy) == 0 {
		if d.Replicas == current {
			return fmt.Sprintf("keeping %d replicas", current)
		}
		return fmt.Sprintf("scaling from %d to %d replicas", current, d.Replicas)
	}
	s := fmt.Sprintf("recommended %d, ", d.Recommended)
	for i, lim := range d.LimitedBy {
		if i > 0 {
			s += ", then "
		}
		switch lim {
		case ScaleUpStabilized:
			s += fmt.Sprintf("the scale-up window (%s) allows %d", l.Behavior.ScaleUp.StabilizationWindow, d.Stabilized)
		case ScaleDownStabilized:
			s += fmt.Sprintf("the scale-down window (%s) keeps %d", l.Behavior.ScaleDown.StabilizationWindow, d.Stabilized)
		case ScaleUpRate:
			s += describePolicy("scale_up", l.Behavior.ScaleUp.Policies, d.Policy, d.Replicas)
		case ScaleDownRate:
			s += describePolicy("scale_down", l.Behavior.ScaleDown.Policies, d.Policy, d.Replicas)
		case ScaleUpDisabled, ScaleDownDisabled:
			s += "scaling in this direction is disabled"
		case MaxReplicas:
			s += fmt.Sprintf("max_replicas is %d", l.MaxReplicas)
		case MinReplicas:
			s += fmt.Sprintf("min_replicas is %d", l.MinReplicas)
		}
	}
	return s
}

func describePolicy(dir string, pols []ScalingPolicy, i, allowed int) string {
	if i < 0 || i >= len(pols) {
		return fmt.Sprintf("%s has no policies, so it allows %d", dir, allowed)
	}
	p := pols[i]
	return fmt.Sprintf("%s.policies[%d] (%s %d per %s) allows %d", dir, i, p.Type, p.Value, p.Period, allowed)
}
