package api

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"sigs.k8s.io/yaml"
)

//go:embed openapi.yaml
var openAPIDoc []byte

// openAPIJSON is openAPIDoc converted once, at program start: the document
// is embedded, so a conversion error is a build defect (the tests catch it).
var openAPIJSON = mustYAMLToJSON(openAPIDoc)

func mustYAMLToJSON(y []byte) []byte {
	j, err := yaml.YAMLToJSON(y)
	if err != nil {
		panic(fmt.Sprintf("api: embedded openapi.yaml does not convert to JSON: %v", err))
	}
	return j
}

// OpenAPIYAML returns the REST API's OpenAPI 3 document as served at
// /api/v1/openapi.yaml.
func OpenAPIYAML() []byte { return slices.Clone(openAPIDoc) }

// OpenAPIJSON returns the same document as JSON, as served at
// /api/v1/openapi.json.
func OpenAPIJSON() []byte { return slices.Clone(openAPIJSON) }

// Server is opspilot's HTTP front: health, the REST API, the TSDB's
// Prometheus-compatible API and the self-metrics page, behind token auth.
type Server struct {
	cfg      Config
	log      *slog.Logger
	tokens   []loadedToken
	mux      *http.ServeMux
	ready    atomic.Bool
	listener net.Listener
	srv      *http.Server
	status   func() any
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	tls      *tls.Config
	authn    func(string) (Caller, bool)
}

type loadedToken struct {
	name, role string
	secret     []byte
}

// Options are what the server serves besides its own endpoints.
type Options struct {
	// TSDB serves the Prometheus API under /prometheus/ (nil: 503).
	TSDB http.Handler
	// Status returns the JSON body of GET /api/v1/status.
	Status func() any
	// Registry holds the self-metrics served at /metrics.
	Registry *prometheus.Registry
	Log      *slog.Logger
	// Routes are more endpoints (e.g. the local agent's push API), each
	// behind the role it needs.
	Routes []Route
	// Authenticate, when set, vouches for bearer tokens that are not API
	// tokens (the orchestrator's node tokens, which may write samples).
	Authenticate func(token string) (Caller, bool)
	// TLS, when set and no certificate files are configured, serves HTTPS
	// with it (the control plane's own CA, see orchestrator/pki).
	TLS *tls.Config
}

// Route is an extra endpoint mounted by the wiring code.
type Route struct {
	Pattern, Name, Role string
	Handler             http.Handler
}

// New checks cfg, loads the API tokens and builds the routes. It does not
// listen yet.
func New(cfg Config, opts Options) (*Server, error) {
	if ps := cfg.Validate(); len(ps) > 0 {
		return nil, fmt.Errorf("server config: %s: %s", ps[0].Field, ps[0].Msg)
	}
	s := &Server{cfg: cfg, log: opts.Log, mux: http.NewServeMux(), status: opts.Status, reg: opts.Registry}
	if cfg.TLSCertFile == "" {
		s.tls = opts.TLS
	}
	s.authn = opts.Authenticate
	if s.log == nil {
		s.log = slog.Default()
	}
	for _, t := range cfg.Auth.Tokens {
		secret := t.Token
		if t.TokenFile != "" {
			b, err := os.ReadFile(t.TokenFile)
			if err != nil {
				return nil, fmt.Errorf("server.auth.tokens %q: read token_file: %w", t.Name, err)
			}
			secret = strings.TrimSpace(string(b))
			if len(secret) < minTokenLength {
				return nil, fmt.Errorf("server.auth.tokens %q: token in %s is shorter than %d characters; generate one with `openssl rand -hex 32`", t.Name, t.TokenFile, minTokenLength)
			}
		}
		s.tokens = append(s.tokens, loadedToken{name: t.Name, role: t.Role, secret: []byte(secret)})
	}
	if !cfg.LocalMode && len(s.tokens) == 0 {
		return nil, errors.New("server.auth.tokens: no API token configured; opspilot serves without tokens only in `opspilot up`'s local mode on a loopback address. Add a token (role read, write or admin) to server.auth.tokens")
	}
	if cfg.LocalMode && len(s.tokens) == 0 && !isLoopback(cfg.HTTPAddr) {
		return nil, fmt.Errorf("server.http_addr %s: local mode serves without API tokens, so it listens on loopback only; use 127.0.0.1:PORT or configure server.auth.tokens", cfg.HTTPAddr)
	}
	if s.reg == nil {
		s.reg = prometheus.NewRegistry()
	}
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "opspilot_http_requests_total",
		Help: "HTTP requests served, by handler and status code.",
	}, []string{"handler", "code"})
	s.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "opspilot_http_request_duration_seconds",
		Help:    "HTTP request latency by handler.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9),
	}, []string{"handler"})
	if err := s.reg.Register(s.requests); err != nil {
		return nil, err
	}
	if err := s.reg.Register(s.duration); err != nil {
		return nil, err
	}

	tsdb := opts.TSDB
	if tsdb == nil {
		tsdb = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			writeError(w, http.StatusServiceUnavailable, "this server has no TSDB attached")
		})
	}
	s.handle("/healthz", "healthz", "", http.HandlerFunc(s.healthz))
	s.handle("/metrics", "metrics", RoleRead, promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg}))
	s.handle("/prometheus/", "prometheus", RoleRead, s.whenReady(tsdb))
	s.handle("GET /api/v1/status", "status", RoleRead, http.HandlerFunc(s.statusHandler))
	// Go's profiler, for admins: go tool pprof http://HOST/debug/pprof/profile
	s.handle("GET /debug/pprof/", "pprof", RoleAdmin, http.HandlerFunc(pprof.Index))
	s.handle("GET /debug/pprof/profile", "pprof", RoleAdmin, http.HandlerFunc(pprof.Profile))
	s.handle("GET /debug/pprof/trace", "pprof", RoleAdmin, http.HandlerFunc(pprof.Trace))
	for _, rt := range opts.Routes {
		s.handle(rt.Pattern, rt.Name, rt.Role, s.whenReady(rt.Handler))
	}
	s.handle("GET /api/v1/openapi.yaml", "openapi", "", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		_, _ = w.Write(openAPIDoc)
	}))
	s.handle("GET /api/v1/openapi.json", "openapi_json", "", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openAPIJSON)
	}))
	s.handle("/api/v1/", "api_not_found", "", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no API endpoint %s %s; see /api/v1/openapi.yaml or /api/v1/openapi.json", r.Method, r.URL.Path))
	}))
	s.handle("/", "not_found", "", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			writeError(w, http.StatusNotFound, fmt.Sprintf("no page %s; the Prometheus API is under /prometheus/api/v1/, the REST API under /api/v1/ (described at /api/v1/openapi.json)", r.URL.Path))
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprint(w, "opspilot\n\n/healthz                 readiness\n/prometheus/api/v1/...  Prometheus query and remote-write API (Grafana datasource URL: this address + /prometheus)\n/prometheus/vmui/       VictoriaMetrics UI\n/api/v1/status          server status\n/api/v1/openapi.yaml    REST API description (OpenAPI 3)\n/api/v1/openapi.json    the same, as JSON\n/metrics                self-metrics\n")
	}))
	return s, nil
}

// handle mounts h at pattern behind instrumentation and, unless role is
// empty, token auth.
func (s *Server) handle(pattern, name, role string, h http.Handler) {
	if role != "" {
		h = s.authorize(role, h)
	}
	h = promhttp.InstrumentHandlerDuration(s.duration.MustCurryWith(prometheus.Labels{"handler": name}),
		promhttp.InstrumentHandlerCounter(s.requests.MustCurryWith(prometheus.Labels{"handler": name}), h))
	s.mux.Handle(pattern, h)
}

// Listen binds the HTTP address, so that a busy port is reported before
// anything else starts.
func (s *Server) Listen() error {
	ln, err := net.Listen("tcp", s.cfg.HTTPAddr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("server.http_addr %s is already in use (another opspilot?); stop that process or choose another address with --http-addr", s.cfg.HTTPAddr)
		}
		return fmt.Errorf("server.http_addr %s: %w", s.cfg.HTTPAddr, err)
	}
	s.listener = ln
	return nil
}

// Addr is the bound address (useful with port 0).
func (s *Server) Addr() string {
	if s.listener == nil {
		return s.cfg.HTTPAddr
	}
	return s.listener.Addr().String()
}

// URL is the base URL clients use.
func (s *Server) URL() string {
	scheme := "http"
	if s.cfg.TLSCertFile != "" || s.tls != nil {
		scheme = "https"
	}
	return scheme + "://" + s.Addr()
}

// SetReady flips /healthz between 503 and 200.
func (s *Server) SetReady(ready bool) { s.ready.Store(ready) }

// Serve serves until ctx ends, then shuts down gracefully within
// cfg.ShutdownTimeout. Listen must have been called.
func (s *Server) Serve(ctx context.Context) error {
	if s.listener == nil {
		return errors.New("api server: Serve before Listen")
	}
	s.srv = &http.Server{
		Handler:           http.MaxBytesHandler(s.mux, s.cfg.MaxRequestBytes),
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() {
		var err error
		switch {
		case s.cfg.TLSCertFile != "":
			err = s.srv.ServeTLS(s.listener, s.cfg.TLSCertFile, s.cfg.TLSKeyFile)
		case s.tls != nil:
			s.srv.TLSConfig = s.tls
			err = s.srv.ServeTLS(s.listener, "", "")
		default:
			err = s.srv.Serve(s.listener)
		}
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		errc <- err
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.ready.Store(false)
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		_ = s.srv.Close()
	}
	return <-errc
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	if !s.ready.Load() {
		writeError(w, http.StatusServiceUnavailable, "starting")
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

func (s *Server) whenReady(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.ready.Load() {
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, "opspilot is starting; retry in a second")
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (s *Server) statusHandler(w http.ResponseWriter, _ *http.Request) {
	var body any = map[string]any{}
	if s.status != nil {
		body = s.status()
	}
	writeJSON(w, http.StatusOK, body)
}

// authorize lets a request through when its bearer token has at least the
// route's role (mutating TSDB paths need write). In local mode without
// tokens every request on the loopback listener is allowed.
func (s *Server) authorize(role string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		need := role
		if need == RoleRead && isMutatingTSDBPath(r.URL.Path) {
			need = RoleWrite
		}
		if s.cfg.LocalMode && len(s.tokens) == 0 {
			h.ServeHTTP(w, r.WithContext(WithCaller(r.Context(), Caller{Name: "local", Role: RoleAdmin})))
			return
		}
		tok, ok := bearer(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="opspilot"`)
			writeError(w, http.StatusUnauthorized, "missing API token: send `Authorization: Bearer TOKEN` (opspilot CLI: --token or OPSPILOT_TOKEN)")
			return
		}
		t := s.lookup(tok)
		if t == nil && s.authn != nil {
			if c, ok := s.authn(tok); ok {
				t = &loadedToken{name: c.Name, role: c.Role}
			}
		}
		if t == nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="opspilot", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "unknown API token")
			return
		}
		if t.role == RoleNode {
			// A node's credential writes samples, nothing else.
			if r.Method != http.MethodPost || !isSampleWritePath(r.URL.Path) {
				writeError(w, http.StatusForbidden, fmt.Sprintf("%s is a node credential: it may only write samples, not %s %s", t.name, r.Method, r.URL.Path))
				return
			}
			h.ServeHTTP(w, r.WithContext(WithCaller(r.Context(), Caller{Name: t.name, Role: t.role})))
			return
		}
		if !roleAllows(t.role, need) {
			writeError(w, http.StatusForbidden, fmt.Sprintf("token %q has role %s; %s %s needs role %s", t.name, t.role, r.Method, r.URL.Path, need))
			return
		}
		if need != RoleRead {
			// Who did what, and why when the caller says (the CLI sends
			// --reason as X-Opspilot-Reason).
			s.log.Info("audit", "token", t.name, "role", t.role, "method", r.Method, "path", r.URL.Path,
				"remote", r.RemoteAddr, "reason", r.Header.Get("X-Opspilot-Reason"))
		}
		h.ServeHTTP(w, r.WithContext(WithCaller(r.Context(), Caller{Name: t.name, Role: t.role})))
	})
}

func (s *Server) lookup(tok string) *loadedToken {
	var found *loadedToken
	for i := range s.tokens {
		// Compare against every token so timing does not reveal which matched.
		if subtle.ConstantTimeCompare(s.tokens[i].secret, []byte(tok)) == 1 {
			found = &s.tokens[i]
		}
	}
	return found
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	const prefix = "Bearer "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	return strings.TrimSpace(h[len(prefix):]), true
}

// isMutatingTSDBPath reports the VictoriaMetrics paths that change data.
// isSampleWritePath is remote write or an import under /prometheus/.
func isSampleWritePath(path string) bool {
	if !strings.HasPrefix(path, "/prometheus/") {
		return false
	}
	for _, p := range []string{"/api/v1/write", "/api/v1/import", "/api/v1/push"} {
		if strings.Contains(path, p) {
			return true
		}
	}
	return false
}

func isMutatingTSDBPath(path string) bool {
	for _, p := range []string{"/api/v1/write", "/api/v1/push", "/api/v1/import", "/api/v1/admin/", "/write", "/influx/", "/datadog/", "/opentelemetry/", "/newrelic/", "/internal/", "/snapshot/"} {
		if strings.Contains(path, p) {
			return true
		}
	}
	return false
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func writeJSON(w http.ResponseWriter, code int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(body)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"status": "error", "error": msg})
}

// shutdownGrace is the default time in-flight requests get on stop.
const shutdownGrace = 10 * time.Second

// WriteJSON writes body as indented JSON with status code; for routes
// mounted by other packages.
func WriteJSON(w http.ResponseWriter, code int, body any) { writeJSON(w, code, body) }

// WriteError writes {"status":"error","error":msg} with status code.
func WriteError(w http.ResponseWriter, code int, msg string) { writeError(w, code, msg) }
