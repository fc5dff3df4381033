package rootcause

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Evidence sentences are for an SRE reading chat: times are UTC clock
// times, delays are rounded to seconds, lists are capped.

const maxListed = 4

func clock(t time.Time) string { return t.UTC().Format("15:04:05") }

// humanDuration renders a non-negative delay as "40 s", "2 min 5 s" or
// "1 h 3 min".
func humanDuration(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d/time.Second))
	case d < time.Hour:
		m, s := int(d/time.Minute), int(d%time.Minute/time.Second)
		if s == 0 {
			return fmt.Sprintf("%d min", m)
		}
		return fmt.Sprintf("%d min %d s", m, s)
	default:
		h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
		if m == 0 {
			return fmt.Sprintf("%d h", h)
		}
		return fmt.Sprintf("%d h %d min", h, m)
	}
}

// describe names the series, e.g. "payments latency" or "node n7 cpu".
func describe(o *observation) string {
	var who string
	switch {
	case o.unit != "":
		who = o.unit
	case o.node != "":
		who = "node " + o.node
	default:
		who = "datacenter " + o.dc
	}
	if m := o.a.Series.Metric; m != "" && m != who {
		return who + " " + m
	}
	return who
}

// metricOf is the metric part alone, for "billing's errors".
func metricOf(o *observation) string {
	if o.a.Series.Metric != "" {
		return o.a.Series.Metric
	}
	return "anomaly"
}

// relative phrases b's start relative to a's: "40 s after", "at the same
// time as", "5 s before".
func relative(b, a time.Time) string {
	d := b.Sub(a).Round(time.Second)
	switch {
	case d == 0:
		return "at the same time as"
	case d > 0:
		return humanDuration(d) + " after"
	default:
		return humanDuration(-d) + " before"
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func possessive(name string) string {
	if strings.HasSuffix(name, "s") {
		return name + "'"
	}
	return name + "'s"
}

func listNames(names []string) string {
	if len(names) <= maxListed {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:maxListed], ", ") + fmt.Sprintf(" and %d more", len(names)-maxListed)
}

func score2(x float64) string { return strconv.FormatFloat(x, 'f', 2, 64) }

// onsetEvidence places o in the incident's timeline relative to the first
// anomaly of any other unit.
func (r *ranking) onsetEvidence(first *observation, same func(*observation) bool) string {
	var other *observation
	for i := range r.obs {
		if !same(&r.obs[i]) {
			other = &r.obs[i]
			break
		}
	}
	switch {
	case other == nil:
		return fmt.Sprintf("anomalous since %s (%s)", clock(first.onset), describe(first))
	case !other.onset.Before(first.onset):
		if other.onset.Equal(first.onset) {
			return fmt.Sprintf("first anomaly at %s (%s), together with %s", clock(first.onset), describe(first), describe(other))
		}
		return fmt.Sprintf("first anomaly at %s (%s), %s before %s", clock(first.onset), describe(first),
			humanDuration(other.onset.Sub(first.onset)), describe(other))
	default:
		return fmt.Sprintf("anomalous from %s (%s), %s the first anomaly (%s)", clock(first.onset), describe(first),
			relative(first.onset, other.onset), describe(other))
	}
}

func (r *ranking) serviceEvidence(s *serviceCand) []string {
	var ev []string
	ev = append(ev, r.onsetEvidence(s.first, func(o *observation) bool { return o.unit == s.name }))

	// Callers this service explains: errors and latency propagate upstream.
	var explained []*serviceCand
	for _, ci := range s.callers {
		if c := r.services[ci]; r.explains(s, c) {
			explained = append(explained, c)
		}
	}
	sortByOnset(explained)
	for k, c := range explained {
		if k == 2 {
			var rest []string
			for _, c := range explained[2:] {
				rest = append(rest, c.name)
			}
			ev = append(ev, fmt.Sprintf("%d more anomalous callers started after it (%s)", len(rest), listNames(rest)))
			break
		}
		ev = append(ev, fmt.Sprintf("%s calls %s; %s %s began %s %s %s", c.name, s.name, possessive(c.name), metricOf(c.first),
			relative(c.first.onset, s.first.onset), possessive(s.name), metricOf(s.first)))
	}

	// Callees that explain this service make it a likely symptom.
	var causes, later []*serviceCand
	for _, ei := range s.callees {
		if e := r.services[ei]; r.explains(e, s) {
			causes = append(causes, e)
		} else {
			later = append(later, e)
		}
	}
	sortByOnset(causes)
	switch {
	case len(causes) > 0:
		e := causes[0]
		ev = append(ev, fmt.Sprintf("calls %s, whose %s began %s its own: likely a symptom", e.name, metricOf(e.first),
			relative(e.first.onset, s.first.onset)))
	case len(later) > 0:
		var names []string
		for _, e := range later {
			names = append(names, e.name)
		}
		ev = append(ev, fmt.Sprintf("its anomalous callees (%s) began later, so they do not explain it", listNames(names)))
	case s.hasCall:
		ev = append(ev, fmt.Sprintf("none of its callees (%s) is anomalous: the fault is likely in %s itself", listNames(s.allCall), s.name))
	}

	peak := "peak score " + score2(s.peak)
	if s.peakTerm == 1 && len(r.services) > 1 {
		top := 0
		for _, o := range r.services {
			if o.peak == s.peak {
				top++
			}
		}
		if top == 1 {
			peak += ", the highest in the incident"
		}
	}
	ev = append(ev, peak)

	if h := s.explainer; h != nil && s.explained >= 0.2 {
		ev = append(ev, fmt.Sprintf("shares %s %s with other anomalies, which may explain it (see %s %s)", h.kind, h.name, h.kind, h.name))
	}
	return ev
}

func sortByOnset(xs []*serviceCand) {
	slices.SortFunc(xs, func(a, b *serviceCand) int {
		return cmp.Or(a.first.onset.Compare(b.first.onset), cmp.Compare(a.name, b.name))
	})
}

func (r *ranking) hostEvidence(h *hostCand) []string {
	var ev []string
	where := "on " + h.kind + " " + h.name
	if h.kind == KindDatacenter {
		where = "in datacenter " + h.name
		if h.inventoryNodes > 0 {
			ev = append(ev, fmt.Sprintf("%d of %d nodes %s %s anomalies (%s)", len(h.nodes), h.inventoryNodes, where,
				plural(len(h.nodes), "has", "have"), listNames(sortedKeys(h.nodes))))
		} else if len(h.nodes) > 0 {
			ev = append(ev, fmt.Sprintf("%d %s %s %s anomalies (%s)", len(h.nodes), plural(len(h.nodes), "node", "nodes"), where,
				plural(len(h.nodes), "has", "have"), listNames(sortedKeys(h.nodes))))
		}
	}
	if len(h.services) > 0 {
		var names []string
		for _, si := range h.services {
			names = append(names, r.services[si].name)
		}
		verb := plural(len(names), "runs ", "run ") + where
		if h.kind == KindDatacenter {
			verb = plural(len(names), "is", "are") + " anomalous " + where
		}
		ev = append(ev, fmt.Sprintf("%d of %d anomalous %s %s (%s)", len(names), len(r.services),
			plural(len(r.services), "service", "services"), verb, listNames(names)))
		if len(names) >= 2 {
			if len(r.topo.Calls) == 0 {
				ev = append(ev, "no call graph, so whether they depend on each other is unknown")
			} else if h.components == len(names) {
				ev = append(ev, "none of them calls another, so dependencies do not explain them")
			} else if h.components > 1 {
				ev = append(ev, fmt.Sprintf("they form %d independent call chains", h.components))
			} else {
				ev = append(ev, "they call each other, so a dependency may explain them instead")
			}
		}
	}
	for _, o := range h.direct {
		if h.kind == KindNode || o.node == "" {
			ev = append(ev, fmt.Sprintf("the %s's own %s was anomalous from %s, peak score %s", h.kind, metricOf(o), clock(o.onset), score2(o.peak)))
			break
		}
	}
	other := "on other nodes"
	if h.kind == KindDatacenter {
		other = "in other datacenters"
	}
	switch {
	case h.out > 0:
		ev = append(ev, fmt.Sprintf("%d of their anomalous instances %s %s too", h.out, plural(h.out, "is", "are"), other))
	case h.healthy > 0:
		ev = append(ev, fmt.Sprintf("their %d %s %s %s normal", h.healthy, plural(h.healthy, "instance", "instances"), other, plural(h.healthy, "is", "are")))
	}
	switch {
	case !h.confirmed:
		ev = append(ev, fmt.Sprintf("the inventory lists nothing %s, so they could not be checked", other))
	case h.units == r.units:
		ev = append(ev, fmt.Sprintf("services %s are normal", other))
	default:
		n := r.units - h.units
		ev = append(ev, fmt.Sprintf("%d other %s not here", n, plural(n, "anomalous service or host is", "anomalous services or hosts are")))
	}
	ev = append(ev, fmt.Sprintf("first anomaly %s at %s (%s)", where, clock(h.first.onset), describe(h.first)))
	return ev
}

func sortedKeys(m map[string]bool) []string { return slices.Sorted(maps.Keys(m)) }

// Format renders the first n hints (all when n ≤ 0) as a numbered list,
// one line per hint, for chat and runbooks. It returns "" for no hints.
func Format(hints []Hint, n int) string {
	if n <= 0 || n > len(hints) {
		n = len(hints)
	}
	var b strings.Builder
	for i, h := range hints[:n] {
		if i > 0 {
			b.WriteByte('\n')
		}
		rank := h.Rank
		if rank <= 0 {
			rank = i + 1
		}
		fmt.Fprintf(&b, "%d. %s %s (score %s)", rank, h.Kind, h.Name, score2(math.Max(0, h.Score)))
		if len(h.Evidence) > 0 {
			b.WriteString(": ")
			b.WriteString(strings.Join(h.Evidence, "; "))
		}
	}
	return b.String()
}
