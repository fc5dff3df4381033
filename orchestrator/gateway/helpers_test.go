package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"opspilot/orchestrator/model"
)

// testBackend is one service instance: a real HTTP server on loopback
// that can be stopped gracefully like a drained instance.
type testBackend struct {
	name string
	addr string
	dc   string
	srv  *http.Server
	hits atomic.Int64
	done chan struct{}
	// stopping is set when the backend is about to be shut down; a
	// request arriving after it (late) was routed to a drained endpoint.
	stopping atomic.Bool
	late     atomic.Int64
}

// echo is what the default backend handler answers.
type echo struct {
	Instance string `json:"instance"`
	Method   string `json:"method"`
	Path     string `json:"path"`
	RawPath  string `json:"raw_path"`
	Query    string `json:"query"`
	Host     string `json:"host"`
	Body     string `json:"body"`
}

// newBackend starts a backend; h nil means echo the request.
func newBackend(t *testing.T, name string, h http.HandlerFunc) *testBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &testBackend{name: name, addr: ln.Addr().String(), dc: "dc1", done: make(chan struct{})}
	if h == nil {
		h = b.echo
	}
	b.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		if b.stopping.Load() {
			b.late.Add(1)
		}
		h(w, r)
	})}
	go func() {
		defer close(b.done)
		_ = b.srv.Serve(ln)
	}()
	t.Cleanup(func() { _ = b.srv.Close(); <-b.done })
	return b
}

func (b *testBackend) echo(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(echo{Instance: b.name, Method: r.Method, Path: r.URL.Path, RawPath: r.URL.RawPath,
		Query: r.URL.RawQuery, Host: r.Host, Body: string(body)})
}

// stop shuts the backend down gracefully: in-flight requests finish.
func (b *testBackend) stop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.srv.Shutdown(ctx); err != nil {
		t.Errorf("shutdown %s: %v", b.name, err)
	}
}

func (b *testBackend) endpoint() model.Endpoint {
	return model.Endpoint{Instance: b.name, Node: "node-" + b.name, Datacenter: b.dc, Address: b.addr}
}

// refusedAddr is a loopback address nothing listens on.
func refusedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func setOf(services map[string][]*testBackend) model.EndpointSet {
	set := model.EndpointSet{Revision: 1, Services: map[string][]model.Endpoint{}}
	for svc, bs := range services {
		eps := []model.Endpoint{}
		for _, b := range bs {
			eps = append(eps, b.endpoint())
		}
		set.Services[svc] = eps
	}
	return set
}

// startGateway serves a gateway over src on loopback.
func startGateway(t *testing.T, src Source, cfg Config) (*Gateway, *httptest.Server, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	g, err := New(src, cfg, reg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = g.Run(ctx) }()
	srv := httptest.NewServer(g)
	t.Cleanup(func() {
		srv.Close()
		cancel()
		<-done
		g.CloseIdleConnections()
	})
	return g, srv, reg
}

func newClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
}

// result is one answer seen by a test client.
type result struct {
	status   int
	instance string
	body     string
	err      error
}

func send(c *http.Client, method, url, host, body string, hdr http.Header) result {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return result{err: err}
	}
	if host != "" {
		req.Host = host
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	res, err := c.Do(req)
	if err != nil {
		return result{err: err}
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return result{status: res.StatusCode, instance: res.Header.Get(InstanceHeader), body: string(b), err: err}
}

// controlPlane implements the server side of the endpoints and gateways
// API contract, and can go away and come back on the same address.
type controlPlane struct {
	token string

	mu       sync.Mutex
	set      model.EndpointSet
	changed  chan struct{}
	gateways []model.Gateway
	posts    int
	srv      *httptest.Server
	addr     string
}

func newControlPlane(t *testing.T, token string, set model.EndpointSet) *controlPlane {
	cp := &controlPlane{token: token, set: set, changed: make(chan struct{})}
	cp.start(t)
	t.Cleanup(cp.stop)
	return cp
}

func (cp *controlPlane) url() string { return "http://" + cp.addr }

// update changes the set under a new revision and wakes long-polls.
func (cp *controlPlane) update(f func(services map[string][]model.Endpoint)) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	services := map[string][]model.Endpoint{}
	for k, v := range cp.set.Services {
		services[k] = append([]model.Endpoint(nil), v...)
	}
	f(services)
	cp.set = model.EndpointSet{Revision: cp.set.Revision + 1, Services: services}
	close(cp.changed)
	cp.changed = make(chan struct{})
}

func (cp *controlPlane) start(t *testing.T) {
	t.Helper()
	addr := cp.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	for range 50 { // the old socket may linger for a moment
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(cp.handler())
	_ = srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	cp.mu.Lock()
	cp.srv, cp.addr = srv, ln.Addr().String()
	cp.mu.Unlock()
}

// stop makes the server unreachable: listener closed, connections cut.
func (cp *controlPlane) stop() {
	cp.mu.Lock()
	srv := cp.srv
	cp.srv = nil
	cp.mu.Unlock()
	if srv != nil {
		// Listener first, so no long-poll slips in between cutting the
		// connections and Close, which would wait for it.
		_ = srv.Listener.Close()
		srv.CloseClientConnections()
		srv.Close()
	}
}

func (cp *controlPlane) handler() http.Handler {
	mux := http.NewServeMux()
	auth := func(w http.ResponseWriter, r *http.Request) bool {
		if cp.token != "" && r.Header.Get("Authorization") != "Bearer "+cp.token {
			http.Error(w, `{"error":"missing or wrong bearer token"}`, http.StatusUnauthorized)
			return false
		}
		return true
	}
	mux.HandleFunc("GET /api/v1/endpoints", func(w http.ResponseWriter, r *http.Request) {
		if !auth(w, r) {
			return
		}
		wait := int64(-1)
		if v := r.URL.Query().Get("wait"); v != "" {
			var err error
			if wait, err = strconv.ParseInt(v, 10, 64); err != nil {
				http.Error(w, "bad wait", http.StatusBadRequest)
				return
			}
		}
		timeout := 30 * time.Second
		if v := r.URL.Query().Get("timeout"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				http.Error(w, "bad timeout", http.StatusBadRequest)
				return
			}
			timeout = d
		}
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		for {
			cp.mu.Lock()
			set, ch := cp.set, cp.changed
			cp.mu.Unlock()
			if set.Revision > wait {
				_ = json.NewEncoder(w).Encode(set)
				return
			}
			select {
			case <-ch:
			case <-timer.C:
				_ = json.NewEncoder(w).Encode(set)
				return
			case <-r.Context().Done():
				return
			}
		}
	})
	mux.HandleFunc("POST /api/v1/gateways", func(w http.ResponseWriter, r *http.Request) {
		if !auth(w, r) {
			return
		}
		var gw model.Gateway
		if err := json.NewDecoder(r.Body).Decode(&gw); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		cp.mu.Lock()
		cp.posts++
		cp.gateways = append(cp.gateways[:0:0], gw)
		cp.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// revision is the source's current revision, -1 without a set.
func revision(src Source) int64 {
	set, _ := src.Current()
	if set == nil {
		return -1
	}
	return set.Revision
}
