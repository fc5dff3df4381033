package autoscaler

import (
	"fmt"
	"math"
	"strconv"
)

// Inputs is what Desired needs besides the policy: the service's replicas
// and instances now, and one observation per policy metric.
type Inputs struct {
	// Current is the replica count the service is set to.
	Current int
	// Instances are the service's instances that count: the loop leaves
	// out instances being stopped and failed ones, as the HPA ignores pods
	// being deleted and failed pods.
	Instances []Instance
	// Metrics holds one observation per Policy.Metrics entry, in the same
	// order; a missing entry counts as unavailable.
	Metrics []Observation
}

// Instance is one instance of the service.
type Instance struct {
	Name string
	// Ready is false while the instance is starting (not yet ready): its
	// samples are set aside, and it counts as using nothing when the
	// others ask for a scale-up.
	Ready bool
}

// Observation is the loop's reading of one metric.
type Observation struct {
	// Value is the expression's value (expression metrics) or the
	// left-hand side of the condition (threshold rules).
	Value float64
	// Samples maps instance names to their value, for resource metrics
	// (usage, in the unit of Requests: cores or bytes) and per_instance
	// metrics (the query's value for that instance).
	Samples map[string]float64
	// Requests maps instance names to what they request of the resource,
	// for resource metrics.
	Requests map[string]float64
	// Unavailable says why the value could not be read (stale, no data,
	// query failed); empty when it was read.
	Unavailable string
}

// ProposalState says whether a metric took part in the recommendation.
type ProposalState int

const (
	// Proposed: Replicas is the metric's proposal.
	Proposed ProposalState = iota
	// Abstained: the metric has no opinion this time — a threshold rule
	// whose condition is false, or a per-instance metric of a service at
	// zero.
	Abstained
	// Invalid: the metric's data is missing or unusable; see Reason.
	Invalid
)

// Proposal is what one metric asks for, and why.
type Proposal struct {
	// Metric is the metric's field path in the policy, e.g. "metrics[1]".
	Metric string        `json:"metric"`
	State  ProposalState `json:"state"`
	// Replicas is the proposed count when State is Proposed.
	Replicas int `json:"replicas"`
	// Value and Target are the compared quantities: utilisation (%) of
	// the requests, per-instance average, expression value, value per
	// replica, or the threshold rule's value and bound. Ratio is
	// Value/Target, before unready and missing instances are accounted for.
	Value  float64 `json:"value"`
	Target float64 `json:"target"`
	Ratio  float64 `json:"ratio"`
	Reason string  `json:"reason"`
}

// Recommendation is the raw result of the replica calculation, before the
// policy's behaviour (windows, rate policies, min/max) is applied.
type Recommendation struct {
	// Replicas is the largest proposal, or the current count when the
	// data does not allow a decision.
	Replicas int `json:"replicas"`
	// Proposals holds one entry per policy metric, in order.
	Proposals []Proposal `json:"proposals"`
	// Active is false when a scale-to-zero policy (min_replicas 0) finds
	// every metric at or below its activation.
	Active bool `json:"active"`
	// Reason explains Replicas in a sentence, for events.
	Reason string `json:"reason"`
}

// Desired computes the replica count the policy's metrics ask for. It is
// pure: the same policy and inputs give the same recommendation.
//
// Each metric proposes a count with the HPA's formula,
// desired = ceil(current × value / target), where the current count and the
// ratio depend on the metric's kind:
//
//   - resource: ratio = (Σ usage / Σ requests × 100) / average_utilization
//     over the ready instances with samples; per_instance: ratio =
//     (Σ samples / n) / average_value. Proposal = ceil(ratio × n). Ready
//     instances without a sample are "missing", not-ready instances are
//     set aside; when there are missing instances, or not-ready ones and a
//     scale-up, the ratio is recomputed with missing instances at the
//     target (for resource metrics, at max(100%, target) of their request)
//     on a scale-down and at 0 on a scale-up, and not-ready instances at
//     0; if that ratio is within the tolerance or reverses the
//     direction, the count stays.
//   - expression with value: ratio = value / target, proposal =
//     ceil(ratio × ready instances); from zero replicas, ceil(ratio).
//   - expression with average_value: ratio = value / (target × current),
//     proposal = ceil(value / target).
//   - threshold: while the condition holds, set, or add more than the
//     largest other proposal (at least min_replicas); otherwise abstains.
//
// A ratio within the tolerance of 1 (behavior.scale_up.tolerance above,
// behavior.scale_down.tolerance below) proposes the current count.
//
// Unlike the HPA, which sets aside unready pods only for CPU, not-ready
// instances are set aside for every kind: a starting instance serves no
// traffic, so its KPI samples say nothing about the load.
//
// The recommendation is the largest proposal; with none (only threshold
// rules, none holding) it is min_replicas. If some metric is invalid and the
// others ask for fewer replicas, the current count is kept: never scale
// down on partial data. Scale to zero (min_replicas 0): inactive → 0; at
// zero and active → at least 1.
func Desired(p *Policy, in Inputs) Recommendation {
	rec := Recommendation{Proposals: make([]Proposal, len(p.Metrics)), Active: true}
	tol := tolerances{up: p.Behavior.ScaleUp.Tolerance, down: p.Behavior.ScaleDown.Tolerance}
	ready := 0
	for _, inst := range in.Instances {
		if inst.Ready {
			ready++
		}
	}

	// Every metric but the threshold rules first: the rules' add is
	// relative to them.
	best, bestAt, invalid := -1, -1, -1
	for i := range p.Metrics {
		m := &p.Metrics[i]
		obs := Observation{Unavailable: "no observation"}
		if i < len(in.Metrics) {
			obs = in.Metrics[i]
		}
		var pr Proposal
		switch {
		case m.Threshold != nil:
			continue
		case obs.Unavailable != "":
			pr = Proposal{State: Invalid, Reason: obs.Unavailable}
		case m.Resource != nil:
			pr = perInstance(in, obs, tol, m.Resource.AverageUtilization, true)
		case m.PerInstance != nil:
			pr = perInstance(in, obs, tol, m.PerInstance.AverageValue, false)
		case m.Expression != nil:
			pr = expression(in.Current, ready, obs.Value, m.Expression, tol)
		default:
			pr = Proposal{State: Invalid, Reason: "the metric sets no kind"}
		}
		pr.Metric = metricPath(i)
		rec.Proposals[i] = pr
		switch {
		case pr.State == Invalid && invalid < 0:
			invalid = i
		case pr.State == Proposed && pr.Replicas > best:
			best, bestAt = pr.Replicas, i
		}
	}

	base := max(best, p.MinReplicas)
	firing := false
	for i := range p.Metrics {
		t := p.Metrics[i].Threshold
		if t == nil {
			continue
		}
		var obs Observation
		if i < len(in.Metrics) {
			obs = in.Metrics[i]
		} else {
			obs.Unavailable = "no observation"
		}
		pr := threshold(t, obs, base)
		pr.Metric = metricPath(i)
		rec.Proposals[i] = pr
		switch {
		case pr.State == Invalid && invalid < 0:
			invalid = i
		case pr.State == Proposed:
			firing = true
			if pr.Replicas > best {
				best, bestAt = pr.Replicas, i
			}
		}
	}

	if p.MinReplicas == 0 {
		return scaleToZero(p, in, rec, best, bestAt, invalid, firing)
	}
	if in.Current == 0 {
		// As the HPA: a service scaled to zero by hand while
		// min_replicas > 0 is left alone until someone scales it up.
		rec.Replicas = 0
		rec.Reason = "the service is at 0 replicas and min_replicas is above 0: autoscaling is paused until the service is scaled up by hand"
		return rec
	}
	return combine(p, in, rec, best, bestAt, invalid)
}

// combine turns the best proposal into the recommendation.
func combine(p *Policy, in Inputs, rec Recommendation, best, bestAt, invalid int) Recommendation {
	switch {
	case best < 0 && invalid >= 0:
		rec.Replicas = in.Current
		rec.Reason = fmt.Sprintf("no metric could be computed (%s: %s); keeping %d replicas", rec.Proposals[invalid].Metric, rec.Proposals[invalid].Reason, in.Current)
	case best < 0:
		rec.Replicas = p.MinReplicas
		rec.Reason = fmt.Sprintf("no metric asks for instances; min_replicas is %d", p.MinReplicas)
	case invalid >= 0 && best < in.Current:
		rec.Replicas = in.Current
		rec.Reason = fmt.Sprintf("%s asks for %d, but %s is unavailable (%s); not scaling down on partial data", rec.Proposals[bestAt].Metric, best, rec.Proposals[invalid].Metric, rec.Proposals[invalid].Reason)
	default:
		rec.Replicas = best
		rec.Reason = fmt.Sprintf("%s asks for %d: %s", rec.Proposals[bestAt].Metric, best, rec.Proposals[bestAt].Reason)
	}
	return rec
}

// scaleToZero applies KEDA's activation to a min_replicas 0 policy.
func scaleToZero(p *Policy, in Inputs, rec Recommendation, best, bestAt, invalid int, firing bool) Recommendation {
	active, unknown := firing, false
	for i := range p.Metrics {
		m := &p.Metrics[i]
		if m.Expression == nil {
			continue
		}
		switch pr := rec.Proposals[i]; {
		case pr.State == Invalid:
			unknown = true
		case i < len(in.Metrics) && in.Metrics[i].Value > m.Activation:
			active = true
		}
	}
	if !active && (unknown || invalid >= 0 && in.Current > 0) {
		rec.Replicas = in.Current
		rec.Reason = fmt.Sprintf("activity unknown (%s: %s); keeping %d replicas", rec.Proposals[invalid].Metric, rec.Proposals[invalid].Reason, in.Current)
		return rec
	}
	if !active {
		rec.Active = false
		rec.Replicas = 0
		rec.Reason = "inactive: every metric is at or below its activation; scaling to zero"
		return rec
	}
	if in.Current == 0 {
		// Per-instance metrics have no instances to read yet; the
		// expressions (or a rule) decide, and at least one starts.
		rec.Replicas = max(best, 1)
		rec.Reason = fmt.Sprintf("active at zero replicas: starting %d", rec.Replicas)
		if bestAt >= 0 && best >= 1 {
			rec.Reason += fmt.Sprintf(" (%s: %s)", rec.Proposals[bestAt].Metric, rec.Proposals[bestAt].Reason)
		}
		return rec
	}
	rec = combine(p, in, rec, best, bestAt, invalid)
	if rec.Replicas < 1 {
		rec.Replicas = 1
		rec.Reason = "active: keeping at least 1 replica"
	}
	return rec
}

type tolerances struct{ up, down float64 }

// within reports whether ratio is close enough to 1 to leave the replicas
// as they are.
func (t tolerances) within(ratio float64) bool {
	return 1-t.down <= ratio && ratio <= 1+t.up
}

// perInstance is the HPA's calculation for per-pod metrics (resource
// utilisation and Pods metrics) in one function: utilisation weighs each
// sample by the instance's request, a plain average weighs each by 1.
func perInstance(in Inputs, obs Observation, tol tolerances, target float64, utilization bool) Proposal {
	pr := Proposal{State: Invalid, Target: target}
	if len(in.Instances) == 0 {
		if in.Current == 0 {
			pr.State, pr.Reason = Abstained, "no instances to measure"
			return pr
		}
		pr.Reason = "the service has no instances to measure"
		return pr
	}
	weight := func(name string) (float64, bool) {
		if !utilization {
			return 1, true
		}
		w, ok := obs.Requests[name]
		return w, ok && w > 0
	}
	scale := 1.0
	if utilization {
		scale = 100 // percent of the request
	}

	var sum, weights float64
	var counted, missing, unready []string
	for _, inst := range in.Instances {
		w, ok := weight(inst.Name)
		if !ok {
			pr.Reason = fmt.Sprintf("instance %s has no request for the resource; utilisation is undefined", inst.Name)
			return pr
		}
		v, has := obs.Samples[inst.Name]
		switch {
		case !inst.Ready:
			unready = append(unready, inst.Name)
		case !has:
			missing = append(missing, inst.Name)
		default:
			sum += v
			weights += w
			counted = append(counted, inst.Name)
		}
	}
	if len(counted) == 0 {
		pr.Reason = "no samples from ready instances"
		return pr
	}
	value := sum / weights * scale
	ratio := value / target
	pr.Value, pr.Ratio = value, ratio
	if math.IsNaN(ratio) || math.IsInf(ratio, 0) {
		pr.Reason = fmt.Sprintf("the average is %v", value)
		return pr
	}
	pr.State = Proposed

	rebalanceUnready := len(unready) > 0 && ratio > 1
	if !rebalanceUnready && len(missing) == 0 {
		if tol.within(ratio) {
			pr.Replicas = in.Current
			pr.Reason = fmt.Sprintf("%s within tolerance of target %s", num(value), num(target))
			return pr
		}
		pr.Replicas = ceilReplicas(ratio * float64(len(counted)))
		pr.Reason = fmt.Sprintf("ceil(%d × %s / %s) over %d ready instances", len(counted), num(value), num(target), len(counted))
		return pr
	}

	// Be conservative about instances without data: assume missing ones
	// run at the target on a scale-down (Kubernetes: 100% of the request,
	// or the target if that is higher) and at 0 on a scale-up, and
	// not-ready ones at 0 on a scale-up.
	n := len(counted)
	for _, name := range missing {
		w, _ := weight(name)
		switch {
		case ratio < 1:
			fill := target
			if utilization {
				fill = max(100, target)
			}
			sum += w * fill / scale
			weights += w
			n++
		case ratio > 1:
			weights += w
			n++
		}
	}
	if rebalanceUnready {
		for _, name := range unready {
			w, _ := weight(name)
			weights += w
			n++
		}
	}
	newRatio := sum / weights * scale / target
	if tol.within(newRatio) || ratio < 1 && newRatio > 1 || ratio > 1 && newRatio < 1 {
		pr.Replicas = in.Current
		pr.Reason = fmt.Sprintf("%s against target %s, but counting %d missing and %d not-ready instances the change is within tolerance or reverses",
			num(value), num(target), len(missing), len(unready))
		return pr
	}
	replicas := ceilReplicas(newRatio * float64(n))
	if newRatio < 1 && replicas > in.Current || newRatio > 1 && replicas < in.Current {
		pr.Replicas = in.Current
		pr.Reason = fmt.Sprintf("%s against target %s, but counting missing and not-ready instances reverses the direction", num(value), num(target))
		return pr
	}
	pr.Replicas = replicas
	pr.Reason = fmt.Sprintf("ceil(%d × %s / %s) counting %d missing and %d not-ready instances conservatively (measured average %s)",
		n, num(newRatio*target), num(target), len(missing), len(unready), num(value))
	return pr
}

// expression is the HPA's calculation for External metrics.
func expression(current, ready int, value float64, e *ExpressionMetric, tol tolerances) Proposal {
	if math.IsNaN(value) || math.IsInf(value, 0) {
		return Proposal{State: Invalid, Value: value, Reason: fmt.Sprintf("the expression's value is %v", value)}
	}
	if e.AverageValue > 0 {
		pr := Proposal{State: Proposed, Target: e.AverageValue, Value: value}
		if current > 0 {
			pr.Value = value / float64(current)
		}
		pr.Ratio = pr.Value / e.AverageValue
		if current > 0 && tol.within(pr.Ratio) {
			pr.Replicas = current
			pr.Reason = fmt.Sprintf("%s per replica within tolerance of target %s", num(pr.Value), num(e.AverageValue))
			return pr
		}
		pr.Replicas = ceilReplicas(value / e.AverageValue)
		pr.Reason = fmt.Sprintf("ceil(%s / %s)", num(value), num(e.AverageValue))
		return pr
	}
	pr := Proposal{State: Proposed, Target: e.Value, Value: value, Ratio: value / e.Value}
	switch {
	case current == 0:
		pr.Replicas = ceilReplicas(pr.Ratio)
		pr.Reason = fmt.Sprintf("ceil(%s / %s) from zero replicas", num(value), num(e.Value))
	case tol.within(pr.Ratio):
		pr.Replicas = current
		pr.Reason = fmt.Sprintf("%s within tolerance of target %s", num(value), num(e.Value))
	case ready == 0:
		pr = Proposal{State: Invalid, Target: e.Value, Value: value, Ratio: pr.Ratio, Reason: "no ready instance to scale the ratio by"}
	default:
		pr.Replicas = ceilReplicas(pr.Ratio * float64(ready))
		pr.Reason = fmt.Sprintf("ceil(%d ready × %s / %s)", ready, num(value), num(e.Value))
	}
	return pr
}

// threshold evaluates a KPI rule; base is what the other metrics ask for
// (at least min_replicas).
func threshold(t *ThresholdRule, obs Observation, base int) Proposal {
	c, err := ParseCondition(t.When)
	if err != nil {
		return Proposal{State: Invalid, Reason: err.Error()}
	}
	pr := Proposal{Value: obs.Value, Target: c.Value}
	switch {
	case obs.Unavailable != "":
		pr.State, pr.Reason = Invalid, obs.Unavailable
	case math.IsNaN(obs.Value):
		pr.State, pr.Reason = Invalid, "the expression's value is NaN"
	case !c.Holds(obs.Value):
		pr.State = Abstained
		pr.Reason = fmt.Sprintf("%s %s %s does not hold", num(obs.Value), c.Op, num(c.Value))
	case t.Set > 0:
		pr.State, pr.Replicas = Proposed, t.Set
		pr.Reason = fmt.Sprintf("%s %s %s holds: set %d", num(obs.Value), c.Op, num(c.Value), t.Set)
	default:
		pr.State, pr.Replicas = Proposed, clampInt(int64(base)+int64(t.Add))
		pr.Reason = fmt.Sprintf("%s %s %s holds: %d + %d", num(obs.Value), c.Op, num(c.Value), base, t.Add)
	}
	return pr
}

// maxReplicas bounds every computed count, so that absurd metric values
// cannot overflow.
const maxReplicas = math.MaxInt32

func ceilReplicas(f float64) int {
	switch {
	case math.IsNaN(f) || f <= 0:
		return 0
	case f >= maxReplicas:
		return maxReplicas
	}
	return int(math.Ceil(f))
}

func clampInt(v int64) int {
	return int(min(max(v, 0), maxReplicas))
}

func metricPath(i int) string { return "metrics[" + strconv.Itoa(i) + "]" }

// num formats a metric value for reasons: 60000, 9.091, 0.18, 1.5e+300.
func num(f float64) string {
	if math.Abs(f) < 1e15 {
		return strconv.FormatFloat(math.Round(f*1000)/1000, 'f', -1, 64)
	}
	return strconv.FormatFloat(f, 'g', 4, 64)
}
