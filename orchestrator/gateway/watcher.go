package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/prometheus/client_golang/prometheus"

	"opspilot/orchestrator/model"
)

// WatcherConfig configures a Watcher. Zero durations take the defaults.
type WatcherConfig struct {
	// Server is the opspilot server's base URL, e.g. http://127.0.0.1:7070.
	Server string
	// Token is sent as "Authorization: Bearer TOKEN" when not empty.
	Token string
	// PollTimeout is how long the server may hold a long-poll open
	// (?timeout=); default 30s.
	PollTimeout time.Duration
	// MinBackoff is the wait after the first failed poll; it doubles (with
	// ±20% jitter) up to MaxBackoff. Defaults 100ms and 2s: a gateway
	// should notice a returning server quickly, and one request every 2s
	// costs the server nothing.
	MinBackoff time.Duration
	MaxBackoff time.Duration
}

// Defaults of WatcherConfig.
const (
	DefaultPollTimeout = 30 * time.Second
	DefaultMinBackoff  = 100 * time.Millisecond
	DefaultMaxBackoff  = 2 * time.Second
)

// pollSlack is how much longer than PollTimeout a long-poll may take before
// the watcher gives up on it (a slow server, or a dead connection that no
// RST ever announces).
const pollSlack = 10 * time.Second

func (c WatcherConfig) withDefaults() WatcherConfig {
	if c.PollTimeout == 0 {
		c.PollTimeout = DefaultPollTimeout
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	return c
}

func (c WatcherConfig) validate() error {
	switch {
	case c.Server == "":
		return errors.New("watcher: server URL is empty; pass the opspilot server's address, e.g. --server http://127.0.0.1:7070")
	case checkServerURL(c.Server) != nil:
		return fmt.Errorf("watcher: %w", checkServerURL(c.Server))
	case c.PollTimeout < time.Second || c.PollTimeout > 5*time.Minute:
		return fmt.Errorf("watcher: poll timeout %s must be between 1s and 5m (the server's limit); the default is 30s", c.PollTimeout)
	case c.MinBackoff <= 0 || c.MaxBackoff < c.MinBackoff:
		return fmt.Errorf("watcher: backoff must satisfy 0 < min (%s) <= max (%s)", c.MinBackoff, c.MaxBackoff)
	}
	return nil
}

// Watcher follows GET /api/v1/endpoints by long-polling and publishes each
// new revision. It keeps the last good set while the server is unreachable:
// routes are never emptied because the control plane is down.
type Watcher struct {
	publisher
	cfg    WatcherConfig
	url    string
	client *http.Client
	log    *slog.Logger

	errorsTotal prometheus.Counter
	revision    prometheus.Gauge
	stale       prometheus.Gauge
}

// NewWatcher returns a watcher; call Run to start it. client may be nil
// (a default client is used); its Timeout must be zero or longer than the
// poll timeout. reg and log may be nil.
func NewWatcher(cfg WatcherConfig, client *http.Client, reg prometheus.Registerer, log *slog.Logger) (*Watcher, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if client == nil {
		client = &http.Client{}
	}
	if client.Timeout != 0 && client.Timeout <= cfg.PollTimeout {
		return nil, fmt.Errorf("watcher: http client timeout %s would cut every %s long-poll; use a client without a timeout", client.Timeout, cfg.PollTimeout)
	}
	if log == nil {
		log = slog.Default()
	}
	w := &Watcher{
		cfg:    cfg,
		url:    strings.TrimRight(cfg.Server, "/") + "/api/v1/endpoints",
		client: client,
		log:    log.With("component", "gateway-watcher"),
		errorsTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "opspilot_gateway_watch_errors_total",
			Help: "Failed polls of the server's endpoints API.",
		}),
		revision: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "opspilot_gateway_endpoints_revision",
			Help: "Revision of the endpoint set the gateway routes by.",
		}),
		stale: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "opspilot_gateway_endpoints_stale",
			Help: "1 while the server is unreachable and the gateway routes by its last known endpoint set.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{w.errorsTotal, w.revision, w.stale} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("watcher: register metrics: %w", err)
			}
		}
	}
	return w, nil
}

// Run polls until ctx is done, then returns nil.
func (w *Watcher) Run(ctx context.Context) error {
	b := &backoff.ExponentialBackOff{
		InitialInterval:     w.cfg.MinBackoff,
		RandomizationFactor: 0.2,
		Multiplier:          2,
		MaxInterval:         w.cfg.MaxBackoff,
	}
	// After a failure the next request is a plain GET, not a long-poll: a
	// restarted server may answer with a lower revision, which a long-poll
	// would only return after its timeout.
	inSync := false
	failures := 0
	for {
		started := time.Now()
		set, err := backoff.Retry(ctx, func() (*model.EndpointSet, error) {
			wait := int64(-1)
			if cur, _ := w.Current(); inSync && cur != nil {
				wait = cur.Revision
			}
			set, err := w.poll(ctx, wait)
			if err != nil {
				inSync = false
				if ctx.Err() == nil {
					failures++
					w.failed(err, failures)
				}
				return nil, err
			}
			return set, nil
		}, backoff.WithBackOff(b), backoff.WithMaxElapsedTime(0))
		if err != nil {
			return nil // only ctx ends Retry: the operation never fails permanently
		}
		if failures > 0 {
			w.log.Info("endpoints API reachable again", "server", w.cfg.Server, "failed_polls", failures)
			failures = 0
			w.stale.Set(0)
		}
		inSync = true
		if !w.accept(set) && time.Since(started) < w.cfg.MinBackoff {
			// An unchanged answer that came at once: the server is not
			// holding long-polls. Do not hammer it.
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(w.cfg.MinBackoff - time.Since(started)):
			}
		}
	}
}

func (w *Watcher) failed(err error, failures int) {
	w.errorsTotal.Inc()
	if failures == 1 {
		w.stale.Set(1)
		w.log.Warn("endpoints API unreachable; routing by the last known set until it answers", "server", w.cfg.Server, "err", err)
		return
	}
	w.log.Debug("endpoints poll failed", "server", w.cfg.Server, "err", err, "failed_polls", failures)
}

// accept publishes set when its revision differs from the current one
// (lower included: the server may have been rebuilt), and reports whether
// it did.
func (w *Watcher) accept(set *model.EndpointSet) bool {
	if cur, _ := w.Current(); cur != nil && cur.Revision == set.Revision {
		return false
	}
	if set.Services == nil {
		set.Services = map[string][]model.Endpoint{}
	}
	w.revision.Set(float64(set.Revision))
	w.publish(set)
	w.log.Debug("endpoints changed", "revision", set.Revision, "services", len(set.Services))
	return true
}

// poll fetches the set; wait >= 0 long-polls for a revision above wait.
func (w *Watcher) poll(ctx context.Context, wait int64) (*model.EndpointSet, error) {
	u, timeout := w.url, pollSlack
	if wait >= 0 {
		u += "?wait=" + strconv.FormatInt(wait, 10) + "&timeout=" + w.cfg.PollTimeout.String()
		timeout += w.cfg.PollTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("poll endpoints: %w", err)
	}
	setAuth(req, w.cfg.Token)
	res, err := w.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("poll endpoints: %w", err)
	}
	defer drainClose(res.Body)
	if err := checkStatus(res, w.cfg.Server); err != nil {
		return nil, fmt.Errorf("poll endpoints: %w", err)
	}
	var set model.EndpointSet
	if err := json.NewDecoder(io.LimitReader(res.Body, 64<<20)).Decode(&set); err != nil {
		return nil, fmt.Errorf("poll endpoints: decode %s: %w", u, err)
	}
	return &set, nil
}

// checkServerURL accepts an absolute http(s) URL.
func checkServerURL(s string) error {
	if u, err := url.Parse(s); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("server URL %q must be absolute http(s), e.g. http://127.0.0.1:7070", s)
	}
	return nil
}

func setAuth(req *http.Request, token string) {
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
}

// checkStatus turns a non-2xx answer into an error a person can act on.
func checkStatus(res *http.Response, server string) error {
	if res.StatusCode >= 200 && res.StatusCode < 300 {
		return nil
	}
	body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
	msg := strings.TrimSpace(string(body))
	switch res.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("%s rejected the token (HTTP %d: %s); pass the server's API token (--token)", server, res.StatusCode, msg)
	default:
		return fmt.Errorf("%s answered HTTP %d: %s", res.Request.URL.Redacted(), res.StatusCode, msg)
	}
}

// drainClose reads a little of what is left so the connection can be
// reused, then closes.
func drainClose(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 64<<10))
	_ = body.Close()
}
