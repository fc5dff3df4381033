// Package node is the orchestrator's side of `opspilot agent`: it joins
// the control plane with the cluster's join token, sends a heartbeat every
// second (and at once when an instance changes), long-polls its
// assignments and hands them to an Executor (orchestrator/runtime's
// Manager through an adapter), which runs the instances.
//
// While the server is unreachable the agent keeps its instances running
// and retries with backoff: a partition is not a crash. When it is back
// and its node was declared lost meanwhile, the server no longer assigns
// it the instances that were rebuilt elsewhere, and Sync stops them
// (fencing) before the agent reports anything ready.
//
// Every request to a replica has deadlines, for connecting and for the
// answer, so a replica that answers nothing at all (its network cut,
// packets dropped) costs one attempt before the next is tried, not the
// minutes the kernel takes to give up on a connection; the long-poll
// follows the heartbeats to the replica that answers them.
//
// Dependencies: orchestrator/agentproto and model, cenkalti/backoff, the
// standard library. It must not import the control plane.
package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"

	"opspilot/internal/jsonapi"
	"opspilot/orchestrator/agentproto"
	"opspilot/orchestrator/model"
)

// Executor runs the node's instances.
type Executor interface {
	// Sync makes the running instances match as (returns quickly).
	Sync(as []agentproto.Assignment)
	// Statuses reports every instance the executor knows.
	Statuses() []agentproto.InstanceStatus
}

// Config configures an Agent.
type Config struct {
	// Server is the control plane's base URL.
	Server string
	// Servers are further control-plane replicas' base URLs: on a
	// connection error (or a 502/503/504 answer) the agent moves on to
	// the next one. Server comes first when both are set.
	Servers []string
	// JoinToken is the cluster's join token.
	JoinToken string
	// StateDir keeps the node token between restarts.
	StateDir string
	// Node describes this machine (name, datacenter, partition, labels,
	// capacity, address).
	Node model.Node
	// Runtimes the executor supports.
	Runtimes     []string
	AgentVersion string
	// Client talks to the server (its TLS config trusts the server's CA).
	// When its transport is an *http.Transport (or nil: the default one)
	// the agent uses a copy bounded by DialTimeout; the caller's transport
	// is left as it is.
	Client *http.Client
	// DialTimeout bounds connecting to a replica: the TCP connect, and the
	// TLS handshake, each. Zero means 1s. A replica whose network is cut
	// (packets dropped, no reset) is then left after a second, not when
	// the kernel gives up on the connection minutes later.
	DialTimeout time.Duration
	// JoinTimeout bounds one join request to one replica (it writes the
	// node to etcd); zero means 3s. A heartbeat's request is bounded by
	// the heartbeat interval (at least DialTimeout): a dead replica costs
	// one interval before the next is tried, so the server hears from the
	// node at most two intervals apart, inside its node_timeout (3s). With
	// a single replica there is no next one, and the bound is five
	// intervals (at least 5s).
	JoinTimeout time.Duration
	// HeartbeatInterval overrides the server's suggestion when set.
	HeartbeatInterval time.Duration
	// PollTimeout is the long-poll timeout; zero means 30s. The server
	// holds a long-poll that long, so its request is bounded by
	// PollTimeout plus 5s; when the heartbeats move to another replica, a
	// long-poll in flight to the old one is given up and sent to the new
	// one at once.
	PollTimeout time.Duration
	Log         *slog.Logger
}

// Defaults of Config's zero fields, and the long-poll's grace period.
const (
	defaultDialTimeout = time.Second
	defaultJoinTimeout = 3 * time.Second
	defaultPollTimeout = 30 * time.Second
	// pollGrace is how much later than PollTimeout the server's answer to
	// a long-poll may come (network and the server's last store read).
	pollGrace = 5 * time.Second
)

// Agent is a joined node.
type Agent struct {
	cfg  Config
	exec Executor
	log  *slog.Logger

	mu        sync.Mutex
	token     string
	interval  time.Duration
	changed   chan struct{}
	joined    chan struct{}
	joinOnce  sync.Once
	lastHash  string
	heartbeat time.Time
	// current indexes cfg.Servers: the replica the agent talks to.
	current atomic.Int32
	// moved is closed when current changes (and then replaced), guarded
	// by mu: a long-poll in flight to the old replica gives up.
	moved chan struct{}
}

// New returns an agent; Run joins and serves.
func New(cfg Config, exec Executor) (*Agent, error) {
	if cfg.Server != "" && !slices.Contains(cfg.Servers, cfg.Server) {
		cfg.Servers = append([]string{cfg.Server}, cfg.Servers...)
	}
	if len(cfg.Servers) == 0 {
		return nil, errors.New("agent: no server URL; pass --server https://HOST:9440")
	}
	cfg.Server = cfg.Servers[0]
	if cfg.Node.Name == "" || cfg.Node.Datacenter == "" {
		return nil, errors.New("agent: the node needs a name and a datacenter (--node, --datacenter)")
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = defaultDialTimeout
	}
	if cfg.JoinTimeout <= 0 {
		cfg.JoinTimeout = defaultJoinTimeout
	}
	if cfg.PollTimeout <= 0 {
		cfg.PollTimeout = defaultPollTimeout
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	cfg.Client = withDialTimeout(cfg.Client, cfg.DialTimeout)
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Agent{cfg: cfg, exec: exec, log: cfg.Log, changed: make(chan struct{}, 1), joined: make(chan struct{}),
		interval: time.Second, moved: make(chan struct{})}, nil
}

// withDialTimeout returns c with a copy of its transport whose dials and
// TLS handshakes are bounded by d. The bound belongs in the transport, not
// in the request's context: the transport finishes a dial in the
// background after the request that started it gave up, and a dial to a
// black-holed address would otherwise hold a socket for minutes. A
// transport other than *http.Transport is kept as it is: the per-request
// deadlines still bound it.
func withDialTimeout(c *http.Client, d time.Duration) *http.Client {
	rt := c.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	t, ok := rt.(*http.Transport)
	if !ok {
		return c
	}
	t = t.Clone()
	bounded := func(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
		return func(ctx context.Context, network, addr string) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, d)
			defer cancel()
			return dial(ctx, network, addr)
		}
	}
	switch {
	case t.DialContext != nil:
		t.DialContext = bounded(t.DialContext)
	case t.Dial == nil: //nolint:staticcheck // a caller's (deprecated) Dial is kept as it is
		t.DialContext = (&net.Dialer{Timeout: d, KeepAlive: 30 * time.Second}).DialContext
	}
	if t.DialTLSContext != nil { // it connects and shakes hands
		t.DialTLSContext = bounded(t.DialTLSContext)
	}
	if t.TLSHandshakeTimeout <= 0 || t.TLSHandshakeTimeout > d {
		t.TLSHandshakeTimeout = d
	}
	cc := *c
	cc.Transport = t
	return &cc
}

// Changed tells the agent an instance changed state, so the next heartbeat
// goes now.
func (a *Agent) Changed() {
	select {
	case a.changed <- struct{}{}:
	default:
	}
}

// Name is the node's name.
func (a *Agent) Name() string { return a.cfg.Node.Name }

// Token is the node token (empty before the join).
func (a *Agent) Token() string { return a.currentToken() }

// Joined is closed once the node has joined.
func (a *Agent) Joined() <-chan struct{} { return a.joined }

type savedToken struct {
	Server string `json:"server"`
	Node   string `json:"node"`
	Token  string `json:"token"`
}

func (a *Agent) tokenPath() string { return filepath.Join(a.cfg.StateDir, "node-token.json") }

func (a *Agent) loadToken() {
	if a.cfg.StateDir == "" {
		return
	}
	data, err := os.ReadFile(a.tokenPath())
	if err != nil {
		return
	}
	var t savedToken
	if json.Unmarshal(data, &t) == nil && t.Server == a.cfg.Server && t.Node == a.cfg.Node.Name {
		a.token = t.Token
	}
}

func (a *Agent) saveToken(tok string) error {
	if a.cfg.StateDir == "" {
		return nil
	}
	if err := os.MkdirAll(a.cfg.StateDir, 0o700); err != nil {
		return err
	}
	data, _ := json.Marshal(savedToken{Server: a.cfg.Server, Node: a.cfg.Node.Name, Token: tok})
	for path, content := range map[string][]byte{a.tokenPath(): data, a.TokenFile(): []byte(tok + "\n")} {
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, content, 0o600); err != nil {
			return err
		}
		if err := os.Rename(tmp, path); err != nil {
			return err
		}
	}
	return nil
}

// TokenFile holds the current node token alone, rewritten on every join:
// give it to clients that read a bearer token file per request (the
// sample shipper), so they follow a rejoin. Empty without a StateDir.
func (a *Agent) TokenFile() string {
	if a.cfg.StateDir == "" {
		return ""
	}
	return filepath.Join(a.cfg.StateDir, "node-token")
}

// errRejoin means the node token was refused.
var errRejoin = errors.New("node token refused")

// join registers the node, retrying until it works or ctx ends. A refused
// join token is permanent.
func (a *Agent) join(ctx context.Context) error {
	req := agentproto.JoinRequest{Token: a.cfg.JoinToken, Node: a.cfg.Node, Runtimes: a.cfg.Runtimes, AgentVersion: a.cfg.AgentVersion}
	op := func() (agentproto.JoinResponse, error) {
		var resp agentproto.JoinResponse
		err := a.call(ctx, a.cfg.JoinTimeout, http.MethodPost, "/agent/v1/join", "", req, &resp)
		var he *jsonapi.Error
		if errors.As(err, &he) && (he.Code == http.StatusUnauthorized || he.Code == http.StatusBadRequest) {
			return resp, backoff.Permanent(err)
		}
		if err != nil {
			a.log.Warn("join: server unreachable, retrying", "server", a.cfg.Server, "err", err)
		}
		return resp, err
	}
	resp, err := backoff.Retry(ctx, op, backoff.WithBackOff(retryPolicy()), backoff.WithMaxElapsedTime(0))
	if err != nil {
		return fmt.Errorf("join %s as node %s: %w", a.cfg.Server, a.cfg.Node.Name, err)
	}
	a.mu.Lock()
	a.token = resp.NodeToken
	if resp.HeartbeatInterval > 0 {
		a.interval = resp.HeartbeatInterval
	}
	if a.cfg.HeartbeatInterval > 0 {
		a.interval = a.cfg.HeartbeatInterval
	}
	a.mu.Unlock()
	if err := a.saveToken(resp.NodeToken); err != nil {
		a.log.Warn("could not keep the node token; the node joins again after a restart", "err", err)
	}
	a.log.Info("joined", "server", a.cfg.Server, "node", a.cfg.Node.Name, "datacenter", a.cfg.Node.Datacenter)
	a.joinOnce.Do(func() { close(a.joined) })
	return nil
}

func retryPolicy() *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 100 * time.Millisecond
	b.MaxInterval = 2 * time.Second
	return b
}

// Join registers the node unless a node token from an earlier join was
// kept; it retries while the server is unreachable. Run calls it.
func (a *Agent) Join(ctx context.Context) error {
	a.mu.Lock()
	if a.token == "" {
		a.loadToken()
	}
	have := a.token != ""
	a.mu.Unlock()
	if !have {
		return a.join(ctx)
	}
	a.joinOnce.Do(func() { close(a.joined) })
	return nil
}

// Run joins (or reuses the saved node token), then heartbeats and follows
// assignments until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.Join(ctx); err != nil {
		return err
	}
	errc := make(chan error, 2)
	go func() { errc <- a.heartbeats(ctx) }()
	go func() { errc <- a.follow(ctx) }()
	err := <-errc
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// rejoin joins again after the node token was refused (the server lost
// its store, or the node was deleted).
func (a *Agent) rejoin(ctx context.Context, seen string) error {
	a.mu.Lock()
	if a.token != seen {
		a.mu.Unlock()
		return nil // someone else rejoined already
	}
	a.mu.Unlock()
	a.log.Warn("node token refused; joining again")
	return a.join(ctx)
}

func (a *Agent) currentToken() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.token
}

// heartbeatAttempt bounds one heartbeat request: the interval (at least
// DialTimeout) when another replica can be tried, so a dead one costs one
// interval; with a single replica there is nowhere else to go, and a slow
// answer (a loaded server) is better than a heartbeat given up, so it
// gets five intervals (at least 5s).
func (a *Agent) heartbeatAttempt(interval time.Duration) time.Duration {
	if len(a.cfg.Servers) == 1 {
		return max(5*interval, 5*time.Second)
	}
	return max(interval, a.cfg.DialTimeout)
}

func (a *Agent) heartbeats(ctx context.Context) error {
	for {
		a.mu.Lock()
		interval := a.interval
		a.mu.Unlock()
		tok := a.currentToken()
		var resp agentproto.HeartbeatResponse
		err := a.call(ctx, a.heartbeatAttempt(interval), http.MethodPost, "/agent/v1/nodes/"+url.PathEscape(a.cfg.Node.Name)+"/heartbeat", tok,
			agentproto.Heartbeat{Instances: a.exec.Statuses()}, &resp)
		var he *jsonapi.Error
		switch {
		case errors.As(err, &he) && he.Code == http.StatusUnauthorized, err == nil && resp.Rejoin:
			if err := a.rejoin(ctx, tok); err != nil {
				return err
			}
			continue
		case err != nil && ctx.Err() == nil:
			a.log.Debug("heartbeat failed", "err", err)
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-a.changed:
			t.Stop()
		case <-t.C:
		}
	}
}

// follow long-polls assignments and syncs the executor.
func (a *Agent) follow(ctx context.Context) error {
	b := retryPolicy()
	for ctx.Err() == nil {
		tok := a.currentToken()
		q := url.Values{"have": {a.lastHash}, "timeout": {a.cfg.PollTimeout.String()}}
		var as agentproto.Assignments
		err := a.poll(ctx, "/agent/v1/nodes/"+url.PathEscape(a.cfg.Node.Name)+"/assignments?"+q.Encode(), tok, &as)
		var he *jsonapi.Error
		switch {
		case errors.As(err, &he) && he.Code == http.StatusUnauthorized:
			if err := a.rejoin(ctx, tok); err != nil {
				return err
			}
			continue
		case errors.Is(err, errMoved):
			a.log.Debug("assignments: following the heartbeats to another replica", "server", a.cfg.Servers[a.current.Load()])
			continue
		case err != nil:
			if ctx.Err() != nil {
				return nil
			}
			d := b.NextBackOff()
			a.log.Debug("assignments: retrying", "in", d, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
			continue
		}
		b.Reset()
		if as.Hash != a.lastHash {
			a.lastHash = as.Hash
			a.exec.Sync(as.Assignments)
			a.Changed()
		}
	}
	return nil
}

// errMoved ends a long-poll whose replica is no longer the current one.
var errMoved = errors.New("the agent moved to another control-plane replica")

// poll sends one long-poll for path. It is given up with errMoved when
// current changes meanwhile (the heartbeats found the replica dead, or
// the poll itself moved on after an answer), so the assignments come from
// the replica that answers the heartbeats, not after the dead one's
// PollTimeout.
func (a *Agent) poll(ctx context.Context, path, token string, out any) error {
	a.mu.Lock()
	moved := a.moved
	a.mu.Unlock()
	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-moved:
			cancel(errMoved)
		case <-pctx.Done():
		}
	}()
	err := a.call(pctx, a.cfg.PollTimeout+pollGrace, http.MethodGet, path, token, nil, out)
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(pctx), errMoved) {
		return errMoved
	}
	return err
}

// call sends one request to the current server, bounded by attempt;
// when that one cannot be reached, does not answer in time (or answers
// 502/503/504) it tries the others in turn, and the one that answers
// becomes current. When ctx ends, call returns at once.
func (a *Agent) call(ctx context.Context, attempt time.Duration, method, path, token string, body, out any) error {
	n := len(a.cfg.Servers)
	start := int(a.current.Load())
	var err error
	for i := range n {
		idx := (start + i) % n
		actx, cancel := context.WithTimeout(ctx, attempt)
		err = jsonapi.Do(actx, a.cfg.Client, method, a.cfg.Servers[idx]+path, token, nil, body, out)
		cancel()
		if ctx.Err() != nil {
			return err
		}
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%s: no answer within %s: %w", a.cfg.Servers[idx], attempt, err)
		}
		if !failOver(err) {
			if i > 0 && err == nil {
				a.moveTo(idx)
			}
			return err
		}
	}
	return err
}

// moveTo makes cfg.Servers[idx] the current replica and tells a long-poll
// in flight to the previous one.
func (a *Agent) moveTo(idx int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if int(a.current.Swap(int32(idx))) == idx {
		return
	}
	close(a.moved)
	a.moved = make(chan struct{})
	a.log.Info("talking to another control-plane replica", "server", a.cfg.Servers[idx])
}

// failOver says whether err means "try another replica": no answer, or
// a proxy's or an unavailable server's answer.
func failOver(err error) bool {
	if err == nil {
		return false
	}
	var he *jsonapi.Error
	if errors.As(err, &he) {
		return he.Code == http.StatusBadGateway || he.Code == http.StatusServiceUnavailable || he.Code == http.StatusGatewayTimeout
	}
	return true
}
