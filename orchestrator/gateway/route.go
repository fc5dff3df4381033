package gateway

import (
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"opspilot/orchestrator/model"
)

// backend is one endpoint with the requests outstanding on it. A backend
// outlives set changes as long as its instance keeps its address, so the
// counts stay true across revisions.
type backend struct {
	ep          model.Endpoint
	outstanding atomic.Int64
	// removed is set when the endpoint leaves the set; drained is then
	// called when its last outstanding request ends.
	removed atomic.Bool
	drained func()
	// connectFailures counts connection attempts that failed in a row
	// (refused, unreachable, timed out); a response resets it.
	connectFailures atomic.Int32
	// ejectedUntil (Unix nanoseconds) keeps the backend out of picks
	// after EjectAfter connect failures in a row; 0 when it never was.
	ejectedUntil atomic.Int64
	// progress (Unix nanoseconds) is when the backend last answered, or
	// became busy after being idle; see stalled.
	progress atomic.Int64
}

// begin counts a request starting on the backend at now.
func (b *backend) begin(now int64) {
	if b.outstanding.Add(1) == 1 {
		b.progress.Store(now) // busy from idle: the wait starts now
	}
}

// stalled reports whether the backend has requests outstanding but has
// not answered anything for longer than after (nanoseconds): the sign of
// a host whose network went dark under kept-alive connections, where no
// connect fails to tell. after <= 0 never stalls.
func (b *backend) stalled(now, after int64) bool {
	return after > 0 && b.outstanding.Load() > 0 && now-b.progress.Load() > after
}

// ejected reports whether the backend is out of rotation at now (Unix
// nanoseconds).
func (b *backend) ejected(now int64) bool { return b.ejectedUntil.Load() > now }

// connectFailed records a failed connection attempt at now and reports
// whether it ejected the backend (until now+d): after `after` failures in
// a row, and again on the first failure after an ejection ended, since
// nothing succeeded in between. A failure while ejected (an attempt that
// started before) extends the ejection without counting as a new one.
// after < 1 never ejects.
func (b *backend) connectFailed(now time.Time, after int, d time.Duration) bool {
	n := b.connectFailures.Add(1)
	if after < 1 || int(n) < after {
		return false
	}
	was := b.ejected(now.UnixNano())
	b.ejectedUntil.Store(now.Add(d).UnixNano())
	return !was
}

// answered records that the backend responded at now: it is healthy.
func (b *backend) answered(now int64) {
	b.progress.Store(now)
	if b.connectFailures.Load() != 0 {
		b.connectFailures.Store(0)
	}
}

func (b *backend) release() {
	if b.outstanding.Add(-1) == 0 && b.removed.Load() {
		b.drained()
	}
}

// backendKey identifies an endpoint across sets.
func backendKey(ep model.Endpoint) string { return ep.Instance + "@" + ep.Address }

// table is the routing state built from one endpoint set.
type table struct {
	set      *model.EndpointSet // nil until the source has one
	services map[string][]*backend
	// known holds every service seen since the gateway started: a service
	// whose last instance went away answers 503 (no ready instance), not
	// 404, because the server lists ready instances only.
	known map[string]bool
	// names is the sorted service list for error messages.
	names []string
}

// buildTable makes the table for set, reusing prev's backends. New
// backends call drained when, after leaving a later set, their last
// request ends; idle reports whether a backend of prev left this set
// with nothing outstanding.
func buildTable(set *model.EndpointSet, prev *table, drained func()) (t *table, idle bool) {
	t = &table{set: set, services: map[string][]*backend{}, known: map[string]bool{}}
	old := map[string]*backend{}
	if prev != nil {
		for name := range prev.known {
			t.known[name] = true
		}
		for _, bs := range prev.services {
			for _, b := range bs {
				old[backendKey(b.ep)] = b
			}
		}
	}
	kept := map[*backend]bool{}
	if set != nil {
		for svc, eps := range set.Services {
			t.known[svc] = true
			bs := make([]*backend, 0, len(eps))
			for _, ep := range eps {
				if ep.Address == "" { // no declared port: nothing to send to
					continue
				}
				// A backend is read by requests routed with the old table,
				// so it is reused only when unchanged, never updated.
				b := old[backendKey(ep)]
				if b == nil || !sameEndpoint(b.ep, ep) {
					b = &backend{ep: ep, drained: drained}
				}
				bs = append(bs, b)
				kept[b] = true
			}
			t.services[svc] = bs
		}
	}
	for _, b := range old {
		if !kept[b] {
			b.removed.Store(true)
			if b.outstanding.Load() == 0 {
				idle = true
			}
		}
	}
	for name := range t.known {
		t.names = append(t.names, name)
	}
	slices.Sort(t.names)
	return t, idle
}

func sameEndpoint(a, b model.Endpoint) bool {
	return a.Instance == b.Instance && a.Address == b.Address && a.Node == b.Node &&
		a.Datacenter == b.Datacenter && a.Version == b.Version && maps.Equal(a.Ports, b.Ports)
}

// route is where a request goes: service, and the path to send.
type route struct {
	service string
	path    string // unescaped
	rawPath string // escaped form when it differs from path, as in url.URL
}

// resolve picks the service for r: the Host's first label if it names a
// service, else the first path segment (stripped from the path), else the
// default service, else the only service. ok is false when none applies.
func (t *table) resolve(r *http.Request, defaultService string) (rt route, ok bool) {
	rt.path, rt.rawPath = r.URL.Path, r.URL.RawPath
	if label := hostLabel(r.Host); label != "" && t.known[label] {
		rt.service = label
		return rt, true
	}
	if seg, rest, found := firstSegment(r.URL.EscapedPath()); found && t.known[seg] {
		rt.service = seg
		rt.path, rt.rawPath = rest, ""
		if p, err := url.PathUnescape(rest); err == nil && p != rest {
			rt.path, rt.rawPath = p, rest
		}
		return rt, true
	}
	switch {
	case defaultService != "":
		rt.service = defaultService
		return rt, true
	case len(t.known) == 1:
		rt.service = t.names[0]
		return rt, true
	}
	return rt, false
}

// hostLabel is the first DNS label of a Host header, without port.
func hostLabel(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	label, _, _ := strings.Cut(host, ".")
	return strings.ToLower(label)
}

// firstSegment splits "/billing/pay" into "billing" and "/pay"; the rest is
// "/" when nothing follows the segment.
func firstSegment(escPath string) (seg, rest string, ok bool) {
	p := strings.TrimPrefix(escPath, "/")
	if p == "" {
		return "", "", false
	}
	seg, rest, found := strings.Cut(p, "/")
	if !found {
		return seg, "/", true
	}
	return seg, "/" + rest, true
}

// pick chooses a backend by the power of two choices: two at random, the
// one with fewer outstanding requests wins. It balances like least-loaded
// without herding every gateway onto the same idle instance. Backends in
// tried (those a retry moves away from) are excluded. Ejected and stalled
// ones (at now, Unix nanoseconds; stallAfter in nanoseconds) and those in
// a datacenter in avoid (where a connect just failed: its network may be
// down) are excluded too unless nothing else is left: then trying one
// beats answering 503. nil when none is left.
func pick(bs, tried []*backend, now, stallAfter int64, avoid ...string) *backend {
	var buf [16]*backend // candidates, on the stack for most services
	cand := buf[:0]
	for pass := 0; pass < 3 && len(cand) == 0; pass++ {
		for _, b := range bs {
			switch {
			case slices.Contains(tried, b):
			case pass < 2 && (b.ejected(now) || b.stalled(now, stallAfter)):
			case pass < 1 && slices.Contains(avoid, b.ep.Datacenter):
			default:
				cand = append(cand, b)
			}
		}
	}
	switch len(cand) {
	case 0:
		return nil
	case 1:
		return cand[0]
	}
	i := rand.IntN(len(cand))
	j := rand.IntN(len(cand) - 1)
	if j >= i {
		j++
	}
	a, b := cand[i], cand[j]
	if b.outstanding.Load() < a.outstanding.Load() {
		return b
	}
	return a
}
