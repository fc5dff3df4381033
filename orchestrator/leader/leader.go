package leader

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"opspilot/config"
)

// DefaultTTL is the session lease's TTL: how long a crashed or cut-off
// leader keeps leadership before another replica takes over.
const DefaultTTL = 2 * time.Second

// Config is the `orchestrator.leader:` section of opspilot.yaml.
type Config struct {
	// Election is "auto" (elect a leader when the control plane has
	// several replicas: an embedded etcd cluster of several members, or
	// an external etcd), "on" or "off" (this replica always leads).
	Election string `yaml:"election"`
	// TTL is the session lease's TTL, a whole number of seconds.
	TTL time.Duration `yaml:"ttl"`
}

// Election modes.
const (
	ElectionAuto = "auto"
	ElectionOn   = "on"
	ElectionOff  = "off"
)

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config { return Config{Election: ElectionAuto, TTL: DefaultTTL} }

// Validate implements config.Validator.
func (c Config) Validate() []config.Problem {
	var ps []config.Problem
	switch c.Election {
	case ElectionAuto, ElectionOn, ElectionOff:
	default:
		ps = append(ps, config.Problem{Field: "election", Msg: fmt.Sprintf("unknown mode %q; use auto, on or off", c.Election)})
	}
	if c.TTL < time.Second || c.TTL%time.Second != 0 {
		ps = append(ps, config.Problem{Field: "ttl", Msg: fmt.Sprintf("%s: etcd leases last whole seconds; use at least 1s, e.g. 2s", c.TTL)})
	}
	return ps
}

// Identity names a replica: its name and the URL of its API.
type Identity struct {
	Name string `json:"name"`
	URL  string `json:"url,omitempty"`
}

// Options are an Elector's parts.
type Options struct {
	// Client is the etcd client; nil makes a solo elector that always
	// leads (a single replica, or election off).
	Client *clientv3.Client
	// Key is the election's key prefix, e.g. "/opspilot/leader".
	Key string
	// Self is this replica.
	Self       Identity
	Registerer prometheus.Registerer
	Log        *slog.Logger
}

// Elector campaigns for this replica and runs the leader's loops while it
// leads. It is safe for concurrent use; Run may be called once.
type Elector struct {
	cfg  Config
	o    Options
	log  *slog.Logger
	self string // JSON of o.Self, the election value

	leading atomic.Bool
	mu      sync.Mutex
	since   time.Time

	gauge prometheus.Gauge
	terms prometheus.Counter
}

// New returns an elector. It campaigns only once Run is called.
func New(cfg Config, o Options) (*Elector, error) {
	if ps := cfg.Validate(); len(ps) > 0 {
		return nil, fmt.Errorf("orchestrator.leader.%s: %s", ps[0].Field, ps[0].Msg)
	}
	if o.Client != nil && o.Key == "" {
		return nil, errors.New("leader: no election key")
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	self, _ := json.Marshal(o.Self)
	e := &Elector{cfg: cfg, o: o, log: o.Log, self: string(self),
		gauge: prometheus.NewGauge(prometheus.GaugeOpts{Name: "opspilot_leader", Help: "1 while this replica is the control plane's leader and runs its singleton loops."}),
		terms: prometheus.NewCounter(prometheus.CounterOpts{Name: "opspilot_leader_terms_total", Help: "Times this replica became the leader."}),
	}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{e.gauge, e.terms} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("leader: register metrics: %w", err)
			}
		}
	}
	return e, nil
}

// IsLeader reports whether this replica leads now.
func (e *Elector) IsLeader() bool { return e.leading.Load() }

// Status is what /api/v1/leader answers.
type Status struct {
	// Leader is the current leader; empty Name while none is elected.
	Leader Identity `json:"leader"`
	// Self is this replica.
	Self Identity `json:"self"`
	// IsLeader is true on the leader.
	IsLeader bool `json:"is_leader"`
	// Since is when this replica became the leader (its own status only).
	Since *time.Time `json:"since,omitempty"`
	// Election is false for a solo replica.
	Election bool `json:"election"`
}

// Status reads the current leader from etcd.
func (e *Elector) Status(ctx context.Context) (Status, error) {
	st := Status{Self: e.o.Self, IsLeader: e.IsLeader(), Election: e.o.Client != nil}
	if st.IsLeader {
		e.mu.Lock()
		since := e.since
		e.mu.Unlock()
		st.Since = &since
	}
	if e.o.Client == nil {
		st.Leader = e.o.Self
		return st, nil
	}
	resp, err := e.o.Client.Get(ctx, e.o.Key+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		return st, fmt.Errorf("leader: read the election: %w", err)
	}
	if len(resp.Kvs) > 0 {
		if err := json.Unmarshal(resp.Kvs[0].Value, &st.Leader); err != nil {
			st.Leader = Identity{Name: string(resp.Kvs[0].Value)}
		}
	}
	return st, nil
}

// LeadError is a leader loop's failure: Run resigns and returns it.
type LeadError struct{ Err error }

func (e *LeadError) Error() string { return "leader loops: " + e.Err.Error() }
func (e *LeadError) Unwrap() error { return e.Err }

// ErrLost is the cause of a lead context that ended because leadership
// was lost (not because of shutdown).
var ErrLost = errors.New("leadership lost")

// Run campaigns until ctx ends. Each time this replica wins it calls lead
// with a context that ends when leadership does (context.Cause is ErrLost
// then), waits for lead to return and, if ctx still runs, campaigns again.
// lead must return promptly once its context ends. A lead that returns an
// error while leading ends Run with a *LeadError, after resigning. On
// shutdown (ctx ends) the leader resigns so another replica takes over at
// once.
func (e *Elector) Run(ctx context.Context, lead func(context.Context) error) error {
	if e.o.Client == nil {
		e.become(true)
		defer e.become(false)
		if err := lead(ctx); err != nil && ctx.Err() == nil {
			return &LeadError{Err: err}
		}
		return nil
	}
	retry := 100 * time.Millisecond
	for {
		err := e.term(ctx, lead)
		var le *LeadError
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.As(err, &le):
			return err
		case err == nil:
			retry = 100 * time.Millisecond
		default:
			e.log.Warn("leader election: campaigning again", "in", retry, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(retry):
		}
		retry = min(2*retry, e.cfg.TTL)
	}
}

func (e *Elector) become(leading bool) {
	e.mu.Lock()
	if leading {
		e.since = time.Now()
	}
	e.mu.Unlock()
	e.leading.Store(leading)
	if leading {
		e.gauge.Set(1)
		e.terms.Inc()
	} else {
		e.gauge.Set(0)
	}
}

// term is one session: campaign, lead, step down.
func (e *Elector) term(ctx context.Context, lead func(context.Context) error) error {
	tctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	ttl := int64(e.cfg.TTL / time.Second)
	granted := time.Now()
	grant, err := e.o.Client.Grant(tctx, ttl)
	if err != nil {
		return fmt.Errorf("grant a %ds lease: %w", ttl, err)
	}
	// The lease is revoked when the term ends, whatever the reason: a
	// replica that stops campaigning must not hold the election.
	defer func() {
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		_, _ = e.o.Client.Revoke(rctx, grant.ID)
		rcancel()
	}()
	ka, err := e.o.Client.KeepAlive(tctx, grant.ID)
	if err != nil {
		return fmt.Errorf("keep the lease alive: %w", err)
	}
	guardDone := make(chan struct{})
	go func() {
		defer close(guardDone)
		if reason := guard(tctx, ka, granted, e.cfg.TTL-e.cfg.TTL/4); reason != "" {
			cancel(fmt.Errorf("%w: %s", ErrLost, reason))
		}
	}()
	defer func() { cancel(nil); <-guardDone }()
	sess, err := concurrency.NewSession(e.o.Client, concurrency.WithLease(grant.ID), concurrency.WithTTL(int(ttl)), concurrency.WithContext(tctx))
	if err != nil {
		return fmt.Errorf("open an election session: %w", err)
	}
	defer sess.Orphan()
	el := concurrency.NewElection(sess, e.o.Key)
	if err := el.Campaign(tctx, e.self); err != nil {
		if cause := context.Cause(tctx); cause != nil && ctx.Err() == nil {
			return cause
		}
		return fmt.Errorf("campaign: %w", err)
	}
	e.become(true)
	e.log.Info("this replica is the leader now", "replica", e.o.Self.Name)
	leadErr := lead(tctx)
	e.become(false)
	cause := context.Cause(tctx)
	switch {
	case errors.Is(cause, ErrLost):
		e.log.Warn("leadership lost; the leader loops stopped", "err", cause)
		return cause
	case ctx.Err() != nil:
		e.resign(ctx, el)
		e.log.Info("resigned leadership at shutdown", "replica", e.o.Self.Name)
		return nil
	case leadErr != nil:
		e.resign(ctx, el)
		return &LeadError{Err: leadErr}
	default:
		e.resign(ctx, el)
		return nil
	}
}

func (e *Elector) resign(ctx context.Context, el *concurrency.Election) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	if err := el.Resign(rctx); err != nil {
		e.log.Warn("resign leadership; the lease is revoked instead", "err", err)
	}
}

// guard watches the lease's renewals and returns why leadership must be
// presumed lost: no renewal confirmed within safe of the last one (or of
// start), or the keep-alive ended. It returns "" when ctx ends first.
func guard(ctx context.Context, renewals <-chan *clientv3.LeaseKeepAliveResponse, start time.Time, safe time.Duration) string {
	last := start
	t := time.NewTimer(time.Until(last.Add(safe)))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ""
		case r, ok := <-renewals:
			if !ok {
				if ctx.Err() != nil {
					return ""
				}
				return "the lease keep-alive ended (lease expired or etcd unreachable)"
			}
			if r == nil {
				continue
			}
			last = time.Now()
			t.Reset(safe)
		case <-t.C:
			return fmt.Sprintf("no lease renewal confirmed for %s", time.Since(last).Round(time.Millisecond))
		}
	}
}
