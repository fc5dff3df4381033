package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"opspilot/orchestrator/model"
)

func TestRetryDecision(t *testing.T) {
	reset := errors.New("read tcp 127.0.0.1:1->127.0.0.1:2: read: connection reset by peer")
	timeout := &timeoutErr{}
	dialTimeout := &url.Error{Op: "Get", Err: netOpDial(timeoutErr{})}
	status := func(code int) *http.Response { return &http.Response{StatusCode: code} }
	key := http.Header{"Idempotency-Key": {"k"}}
	tests := []struct {
		name       string
		method     string
		hdr        http.Header
		replayable bool
		res        *http.Response
		err        error
		want       bool
	}{
		{"refused GET", "GET", nil, true, nil, refused, true},
		{"refused POST: never reached", "POST", nil, true, nil, refused, true},
		{"dial timeout POST: never reached", "POST", nil, true, nil, dialTimeout, true},
		{"refused but body not replayable", "POST", nil, false, nil, refused, false},
		{"reset GET", "GET", nil, true, nil, reset, true},
		{"EOF DELETE", "DELETE", nil, true, nil, io.ErrUnexpectedEOF, true},
		{"reset POST: may have been processed", "POST", nil, true, nil, reset, false},
		{"reset POST with Idempotency-Key", "POST", key, true, nil, reset, true},
		{"response timeout GET: still working", "GET", nil, true, nil, timeout, false},
		{"canceled", "GET", nil, true, nil, context.Canceled, false},
		{"503 GET", "GET", nil, true, status(503), nil, true},
		{"502 HEAD", "HEAD", nil, true, status(502), nil, true},
		{"503 POST", "POST", nil, true, status(503), nil, false},
		{"503 PATCH with key", "PATCH", key, true, status(503), nil, true},
		{"500 GET: the instance's own answer", "GET", nil, true, status(500), nil, false},
		{"504 GET", "GET", nil, true, status(504), nil, false},
		{"200 GET", "GET", nil, true, status(200), nil, false},
	}
	for _, tt := range tests {
		if got := retryDecision(tt.method, tt.hdr, tt.replayable, tt.res, tt.err); got != tt.want {
			t.Errorf("%s: retry = %v, want %v", tt.name, got, tt.want)
		}
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "timeout awaiting response headers" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// netOpDial builds a dial *net.OpError around err.
func netOpDial(err error) error {
	e := *refused
	e.Err = err
	return &e
}

func TestPick(t *testing.T) {
	mk := func(loads ...int64) []*backend {
		var bs []*backend
		for i, l := range loads {
			b := &backend{ep: model.Endpoint{Instance: string(rune('a' + i))}}
			b.outstanding.Store(l)
			bs = append(bs, b)
		}
		return bs
	}
	if pick(nil, nil, 0, 0) != nil {
		t.Error("pick of nothing must be nil")
	}
	one := mk(0)
	if pick(one, one, 0, 0) != nil {
		t.Error("pick skipping the only backend must be nil")
	}
	two := mk(5, 0)
	for range 100 {
		if b := pick(two, two[1:], 0, 0); b != two[0] {
			t.Fatalf("pick skipping b = %s, want a", b.ep.Instance)
		}
		if b := pick(two, nil, 0, 0); b != two[1] {
			t.Fatalf("pick between loads 5 and 0 = %s, want the idle b", b.ep.Instance)
		}
	}
	// A datacenter to avoid is left out while another is available.
	dcs := mk(0, 0, 0)
	dcs[0].ep.Datacenter, dcs[1].ep.Datacenter, dcs[2].ep.Datacenter = "A", "A", "B"
	for range 100 {
		if b := pick(dcs, dcs[:1], 0, 0, "A"); b != dcs[2] {
			t.Fatalf("pick avoiding A = %s, want B's c", b.ep.Instance)
		}
		if b := pick(dcs, dcs[2:], 0, 0, "B"); b == nil || b == dcs[2] {
			t.Fatalf("pick avoiding B with B tried = %v, want one of A", b)
		}
	}
	// The most loaded of three is chosen only if it is drawn twice, which
	// p2c never does: it must never win.
	three := mk(9, 1, 2)
	counts := map[string]int{}
	for range 3000 {
		counts[pick(three, nil, 0, 0).ep.Instance]++
	}
	if counts["a"] != 0 || counts["b"] < 1500 {
		t.Errorf("picks %v: want a never, b (least loaded) about two thirds", counts)
	}
}

func TestBuildTableKeepsCountsAndMarksRemoved(t *testing.T) {
	a := model.Endpoint{Instance: "a", Address: "10.0.0.1:80"}
	b := model.Endpoint{Instance: "b", Address: "10.0.0.2:80"}
	noPort := model.Endpoint{Instance: "c"}
	drained := 0
	t1, _ := buildTable(&model.EndpointSet{Services: map[string][]model.Endpoint{"s": {a, b, noPort}}}, nil, func() { drained++ })
	if n := len(t1.services["s"]); n != 2 {
		t.Fatalf("%d backends, want 2 (an endpoint without address is skipped)", n)
	}
	ba, bb := t1.services["s"][0], t1.services["s"][1]
	ba.outstanding.Store(3)
	t2, idle := buildTable(&model.EndpointSet{Services: map[string][]model.Endpoint{"s": {a}}}, t1, func() { drained++ })
	if t2.services["s"][0] != ba || ba.outstanding.Load() != 3 {
		t.Error("a kept endpoint must keep its backend and outstanding count")
	}
	if !bb.removed.Load() || !idle {
		t.Error("b left the set idle: want it marked removed and idle reported")
	}
	t3, idle := buildTable(&model.EndpointSet{Services: map[string][]model.Endpoint{}}, t2, func() { drained++ })
	if idle || !ba.removed.Load() {
		t.Error("a left with requests outstanding: not idle yet, but removed")
	}
	for range 3 {
		ba.release()
	}
	if drained != 1 {
		t.Errorf("drained called %d times after a's last request, want 1", drained)
	}
	if !t3.known["s"] || len(t3.services["s"]) != 0 {
		t.Error("a service seen before stays known without endpoints (503, not 404)")
	}
}

func FuzzResolve(f *testing.F) {
	for _, s := range []string{"/billing/pay", "/", "", "/billing", "/a%2Fb/c", "//x", "/%zz/y"} {
		f.Add("billing.localhost:8080", s)
	}
	set := &model.EndpointSet{Services: map[string][]model.Endpoint{"billing": nil, "a%2Fb": nil, "": nil}}
	tab, _ := buildTable(set, nil, func() {})
	f.Fuzz(func(t *testing.T, host, rawPath string) {
		u, err := url.Parse("http://h" + rawPath)
		if err != nil || !strings.HasPrefix(u.Path, "/") {
			return
		}
		rt, ok := tab.resolve(&http.Request{Host: host, URL: u}, "")
		if ok && (rt.path == "" || rt.path[0] != '/') {
			t.Errorf("resolve(%q, %q) gave path %q, want it to start with /", host, rawPath, rt.path)
		}
		if ok && !tab.known[rt.service] {
			t.Errorf("resolve(%q, %q) chose unknown service %q", host, rawPath, rt.service)
		}
	})
}
