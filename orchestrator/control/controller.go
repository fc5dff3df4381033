package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"opspilot/config"
	"opspilot/orchestrator/model"
	"opspilot/orchestrator/store"
)

// Config is the `orchestrator:` section of opspilot.yaml.
type Config struct {
	// NodeTimeout is how long a node may go without heartbeats before it is
	// lost and its instances are rebuilt elsewhere.
	NodeTimeout time.Duration `yaml:"node_timeout"`
	// Resync is the period of the full reconcile that runs even when
	// nothing changed.
	Resync time.Duration `yaml:"resync"`
	// EventTTL is how long events are kept.
	EventTTL time.Duration `yaml:"event_ttl"`
	// CrashLoopRestarts is how many restarts of a new, never-ready instance
	// fail a rollout (it is rolled back).
	CrashLoopRestarts int `yaml:"crash_loop_restarts"`
	// Datacenters says when a datacenter is lost and how its services
	// fail over and back.
	Datacenters DatacenterConfig `yaml:"datacenters"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{NodeTimeout: 3 * time.Second, Resync: time.Second, EventTTL: 7 * 24 * time.Hour, CrashLoopRestarts: 3, Datacenters: DefaultDatacenterConfig()}
}

// Validate implements config.Validator.
func (c Config) Validate() []config.Problem {
	var ps []config.Problem
	if c.NodeTimeout < 500*time.Millisecond {
		ps = append(ps, config.Problem{Field: "node_timeout", Msg: "must be at least 500ms (agents heartbeat every second; 3s is the default)"})
	}
	if c.Resync < 100*time.Millisecond {
		ps = append(ps, config.Problem{Field: "resync", Msg: "must be at least 100ms"})
	}
	if c.EventTTL < time.Minute {
		ps = append(ps, config.Problem{Field: "event_ttl", Msg: "must be at least 1m"})
	}
	if c.CrashLoopRestarts < 1 {
		ps = append(ps, config.Problem{Field: "crash_loop_restarts", Msg: "must be at least 1"})
	}
	return append(ps, config.Prefix("datacenters", c.Datacenters.Validate())...)
}

// Who the controller's own decisions are recorded as.
const whoController = "controller"

// Controller keeps the cluster at its desired state: it places, replaces,
// rolls and stops instances, tracks nodes by their heartbeats, and serves
// the agent protocol, the REST API and the endpoints.
type Controller struct {
	st     *store.Store
	cfg    Config
	log    *slog.Logger
	events *Events
	now    func() time.Time

	poke  chan struct{}
	nodes *nodeTracker
	view  *view
	// viewShared: RunView keeps the view, not Run (control-plane replicas).
	viewShared atomic.Bool
	relay      atomic.Pointer[heartbeatRelay]

	revMu sync.Mutex
	revs  revisionCache
	// analyzer judges gray-release steps (guarded by revMu).
	analyzer RolloutAnalyzer

	sigMu   sync.Mutex
	signals map[string]string // datacenter → why it is degraded

	gwMu     sync.Mutex
	gateways map[string]gatewayEntry

	// unschedulable remembers the last refusal per service, so it is an
	// event once, not once a second.
	unschedulable map[string]string

	nodeAuth nodeAuthCache

	m metrics
}

type metrics struct {
	reconciles   prometheus.Counter
	reconcileDur prometheus.Histogram
	created      prometheus.Counter
	stopped      *prometheus.CounterVec
	nodesGauge   *prometheus.GaugeVec
	rollbacks    prometheus.Counter
	dcHealth     *prometheus.GaugeVec
	dcFailedOver *prometheus.GaugeVec
}

// New builds a controller on st. reg may be nil.
func New(st *store.Store, cfg Config, reg prometheus.Registerer, log *slog.Logger) (*Controller, error) {
	if ps := cfg.Validate(); len(ps) > 0 {
		return nil, fmt.Errorf("orchestrator.%s: %s", ps[0].Field, ps[0].Msg)
	}
	if log == nil {
		log = slog.Default()
	}
	c := &Controller{
		st: st, cfg: cfg, log: log, now: time.Now,
		events:        newEvents(st, cfg.EventTTL, log),
		poke:          make(chan struct{}, 1),
		view:          newView(),
		revs:          revisionCache{st: st},
		gateways:      map[string]gatewayEntry{},
		unschedulable: map[string]string{},
	}
	c.nodes = newNodeTracker(cfg.NodeTimeout, c.now())
	c.m = metrics{
		reconciles: prometheus.NewCounter(prometheus.CounterOpts{Name: "opspilot_orchestrator_reconciles_total", Help: "Full reconcile passes."}),
		reconcileDur: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "opspilot_orchestrator_reconcile_duration_seconds", Help: "Duration of a reconcile pass.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9)}),
		created:    prometheus.NewCounter(prometheus.CounterOpts{Name: "opspilot_orchestrator_instances_created_total", Help: "Instances placed on nodes."}),
		stopped:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "opspilot_orchestrator_instances_stopped_total", Help: "Instances stopped or removed, by reason."}, []string{"reason"}),
		nodesGauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "opspilot_orchestrator_nodes", Help: "Nodes by datacenter and state."}, []string{"datacenter", "state"}),
		rollbacks:  prometheus.NewCounter(prometheus.CounterOpts{Name: "opspilot_orchestrator_rollbacks_total", Help: "Rollouts rolled back automatically."}),
		dcHealth: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "opspilot_datacenter_health",
			Help: "1 for the datacenter's current health (healthy, degraded or lost), 0 for the others."}, []string{"datacenter", "health"}),
		dcFailedOver: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "opspilot_datacenter_failed_over",
			Help: "1 while the datacenter is failed over (its services run elsewhere)."}, []string{"datacenter"}),
	}
	if reg != nil {
		for _, col := range []prometheus.Collector{c.m.reconciles, c.m.reconcileDur, c.m.created, c.m.stopped, c.m.nodesGauge, c.m.rollbacks, c.m.dcHealth, c.m.dcFailedOver} {
			if err := reg.Register(col); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

// Events returns the event recorder, for other components' decisions.
func (c *Controller) Events() *Events { return c.events }

// Poke asks for a reconcile pass soon.
func (c *Controller) Poke() {
	select {
	case c.poke <- struct{}{}:
	default:
	}
}

// Run reconciles until ctx ends: on every change to services, instances,
// nodes or tenants, when a node is lost or returns, and every Resync.
func (c *Controller) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	if !c.viewShared.Load() {
		go func() { errc <- c.view.run(ctx, c.st, c.Poke) }()
	}
	go c.watchPoke(ctx, store.KindService, store.KindTenant, KindConfig)

	resync := time.NewTicker(c.cfg.Resync)
	defer resync.Stop()
	check := time.NewTicker(c.cfg.NodeTimeout / 10)
	defer check.Stop()
	c.Poke()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			if ctx.Err() != nil {
				return nil
			}
			return err
		case <-check.C:
			if c.nodes.changed(c.now()) {
				c.Poke()
			}
			continue
		case <-resync.C:
		case <-c.poke:
		}
		start := time.Now()
		if err := c.reconcile(ctx); err != nil && ctx.Err() == nil {
			c.log.Warn("reconcile", "err", err)
		}
		c.m.reconciles.Inc()
		c.m.reconcileDur.Observe(time.Since(start).Seconds())
	}
}

// watchPoke pokes the reconciler on every change to the kinds (the view
// covers instances and nodes).
func (c *Controller) watchPoke(ctx context.Context, kinds ...string) {
	for _, kind := range kinds {
		go func() {
			for ctx.Err() == nil {
				for ev := range store.Watch(ctx, c.st, kind, 0) {
					if ev.Type != store.EventReset {
						c.Poke()
					}
				}
				select {
				case <-ctx.Done():
				case <-time.After(100 * time.Millisecond):
				}
			}
		}()
	}
}

// mutateInstance applies f to the stored instance and writes it back,
// retrying on version conflicts. f returns false to write nothing.
func mutateInstance(ctx context.Context, st *store.Store, id string, f func(*model.Instance) bool) error {
	for attempt := 0; ; attempt++ {
		got, err := store.Get[model.Instance](ctx, st, store.KindInstance, id)
		if err != nil {
			return err
		}
		if !f(&got.Value) {
			return nil
		}
		_, err = store.Update(ctx, st, store.KindInstance, id, got.Value, got.Version)
		if err == nil || !errors.Is(err, store.ErrConflict) || attempt >= 5 {
			return err
		}
	}
}

// mutateService is mutateInstance for services.
func mutateService(ctx context.Context, st *store.Store, name string, f func(*model.Service) error) (model.Service, error) {
	for attempt := 0; ; attempt++ {
		got, err := store.Get[model.Service](ctx, st, store.KindService, name)
		if err != nil {
			return model.Service{}, err
		}
		if err := f(&got.Value); err != nil {
			return model.Service{}, err
		}
		_, err = store.Update(ctx, st, store.KindService, name, got.Value, got.Version)
		if err == nil || !errors.Is(err, store.ErrConflict) || attempt >= 5 {
			return got.Value, err
		}
	}
}
