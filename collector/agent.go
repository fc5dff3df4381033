package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"

	"opspilot/collector/container"
	"opspilot/collector/diskqueue"
	"opspilot/collector/host"
	"opspilot/collector/logs"
	"opspilot/collector/scrape"
	"opspilot/config"
	"opspilot/tsdb"
)

// Config is the `agent:` section of opspilot.yaml.
type Config struct {
	// Datacenter and Node label everything this agent ships.
	Datacenter string `yaml:"datacenter"`
	// Node defaults to the hostname.
	Node string `yaml:"node"`
	// Interval is how often host and container metrics are collected.
	Interval time.Duration `yaml:"interval"`
	// Server is the opspilot server the agent ships to (standalone agents).
	Server ServerConfig `yaml:"server"`
	// HTTPAddr serves the push endpoints, /metrics and /healthz of a
	// standalone agent.
	HTTPAddr   string          `yaml:"http_addr"`
	Queue      QueueConfig     `yaml:"queue"`
	Host       HostConfig      `yaml:"host"`
	Containers ContainerConfig `yaml:"containers"`
	Scrape     scrape.Config   `yaml:"scrape"`
	Logs       LogsConfig      `yaml:"logs"`
	Shipper    ShipperYAML     `yaml:"shipper"`
}

// ServerConfig is where a standalone agent ships samples.
type ServerConfig struct {
	// URL of the opspilot server, e.g. https://opspilot.example:9440.
	URL string `yaml:"url"`
	// URLs are further control-plane replicas: the node agent fails over
	// between URL and these on connection errors. Samples are shipped to
	// URL, or to every replica with ShipToAll.
	URLs []string `yaml:"urls"`
	// ShipToAll ships every sample to every replica (URL and URLs), each
	// through its own disk queue, so that replicas with embedded TSDBs
	// each hold every sample and whichever leads sees them all (as both
	// Prometheus servers of an HA pair scrape everything). A replica that
	// is down gets its samples when it is back. Leave it off when the
	// replicas share a remote TSDB: it would receive every sample once per
	// replica.
	ShipToAll bool `yaml:"ship_to_all"`
	// TokenFile holds an API token with role write.
	TokenFile string `yaml:"token_file"`
	// CAFile verifies the server's TLS certificate.
	CAFile string `yaml:"ca_file"`
}

// Servers is URL then URLs, without repeats and trailing slashes.
func (c ServerConfig) Servers() []string {
	var out []string
	for _, u := range append([]string{c.URL}, c.URLs...) {
		u = strings.TrimRight(strings.TrimSpace(u), "/")
		if u != "" && !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out
}

// QueueConfig is the disk queue between collectors and the TSDB.
type QueueConfig struct {
	// Dir defaults to <data_dir>/agent/queue.
	Dir string `yaml:"dir"`
	// MaxBytes bounds the queue; the oldest samples are dropped beyond it.
	MaxBytes int64 `yaml:"max_bytes"`
	// Fsync makes every append survive power loss (slower); without it
	// appends survive a crash of the agent.
	Fsync bool `yaml:"fsync"`
}

// HostConfig turns host metrics on and points at procfs/sysfs.
type HostConfig struct {
	Enabled  bool   `yaml:"enabled"`
	ProcPath string `yaml:"proc_path"`
	SysPath  string `yaml:"sys_path"`
}

// ContainerConfig turns container metrics on.
type ContainerConfig struct {
	Enabled    bool   `yaml:"enabled"`
	CgroupRoot string `yaml:"cgroup_root"`
	Docker     bool   `yaml:"docker"`
	DockerHost string `yaml:"docker_host"`
	// Instances are workloads in cgroups that no orchestrator manages
	// (systemd services, hand-started processes); the orchestrator adds its
	// own instances at run time.
	Instances []CgroupInstance `yaml:"instances"`
}

// CgroupInstance is one statically configured cgroup to collect.
type CgroupInstance struct {
	Service  string `yaml:"service"`
	Instance string `yaml:"instance"`
	Tenant   string `yaml:"tenant"`
	// CgroupPath is relative to cgroup_root, e.g. /system.slice/nginx.service.
	CgroupPath string `yaml:"cgroup_path"`
}

// LogsConfig is log tailing and shipping.
type LogsConfig struct {
	Enabled bool `yaml:"enabled"`
	// URL is an Elasticsearch-compatible bulk base; empty in `opspilot up`
	// means the embedded VictoriaLogs.
	URL   string      `yaml:"url"`
	Index string      `yaml:"index"`
	Files []LogSource `yaml:"files"`
	// StateDir defaults to <data_dir>/agent/logs.
	StateDir string `yaml:"state_dir"`
}

// LogSource is one tailed file.
type LogSource struct {
	Path     string `yaml:"path"`
	Service  string `yaml:"service"`
	Instance string `yaml:"instance"`
}

// ShipperYAML tunes shipping.
type ShipperYAML struct {
	MaxSamplesPerRequest int           `yaml:"max_samples_per_request"`
	RetryMinBackoff      time.Duration `yaml:"retry_min_backoff"`
	RetryMaxBackoff      time.Duration `yaml:"retry_max_backoff"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	d := DefaultShipperConfig()
	return Config{
		Datacenter: "local",
		// node_exporter is commonly scraped every 15 s; 5 s gives rate()
		// its second point quickly and costs little (see bench/RESULTS.md).
		Interval:   5 * time.Second,
		HTTPAddr:   "127.0.0.1:9441",
		Queue:      QueueConfig{MaxBytes: 1 << 30},
		Host:       HostConfig{Enabled: true},
		Containers: ContainerConfig{Enabled: true, Docker: true},
		Logs:       LogsConfig{Enabled: true},
		Shipper: ShipperYAML{
			MaxSamplesPerRequest: d.MaxSamplesPerRecord,
			RetryMinBackoff:      d.RetryMinBackoff,
			RetryMaxBackoff:      d.RetryMaxBackoff,
		},
	}
}

// Validate implements config.Validator.
func (c Config) Validate() []config.Problem {
	var ps []config.Problem
	if c.Datacenter == "" {
		ps = append(ps, config.Problem{Field: "datacenter", Msg: "must not be empty; e.g. dc-a"})
	}
	if c.Interval < time.Second {
		ps = append(ps, config.Problem{Field: "interval", Msg: fmt.Sprintf("%s is below 1s", c.Interval)})
	}
	if c.Queue.MaxBytes < 0 {
		ps = append(ps, config.Problem{Field: "queue.max_bytes", Msg: "must not be negative; 0 means unbounded"})
	}
	if c.Shipper.MaxSamplesPerRequest <= 0 {
		ps = append(ps, config.Problem{Field: "shipper.max_samples_per_request", Msg: "must be greater than zero"})
	}
	if c.Shipper.RetryMinBackoff <= 0 || c.Shipper.RetryMaxBackoff < c.Shipper.RetryMinBackoff {
		ps = append(ps, config.Problem{Field: "shipper.retry_max_backoff", Msg: "backoffs must be positive and max ≥ min"})
	}
	for i, in := range c.Containers.Instances {
		if in.Service == "" || in.CgroupPath == "" {
			ps = append(ps, config.Problem{Field: fmt.Sprintf("containers.instances[%d]", i), Msg: "needs service and cgroup_path"})
		}
	}
	for i, f := range c.Logs.Files {
		if f.Path == "" {
			ps = append(ps, config.Problem{Field: fmt.Sprintf("logs.files[%d].path", i), Msg: "a tailed file needs a path"})
		}
	}
	ps = append(ps, config.Prefix("scrape", c.Scrape.Validate())...)
	return ps
}

// Deps are what the agent needs from outside.
type Deps struct {
	// Writer receives encoded remote-write requests (a *tsdb.Client).
	Writer Writer
	// Destinations, when set, replace Writer: every sample goes to each,
	// through a disk queue of its own (ServerConfig.ShipToAll).
	Destinations []Destination
	// LogsURL overrides Config.Logs.URL (the embedded VictoriaLogs).
	LogsURL string
	// DataDir is the base for the queue and log positions.
	DataDir  string
	Registry prometheus.Registerer
	Log      *slog.Logger
}

// Destination is one place the agent ships every sample to.
type Destination struct {
	// Name tells destinations apart: the label server on the shipping
	// metrics and the suffix of the queue directory (every destination
	// but the first, which keeps the plain queue directory).
	Name   string
	Writer Writer
}

// Agent runs one node's collectors and ships what they produce.
type Agent struct {
	cfg       Config
	log       *slog.Logger
	shippers  []*Shipper // one per destination
	host      *host.Collector
	container *container.Collector
	scraper   *scrape.Scraper
	logs      *logs.Pipeline
	extra     []tsdb.Label

	// svcMu guards svcTargets, the service instances' targets last given
	// to the scraper by SetServiceTargets (with the configured ones).
	svcMu      sync.Mutex
	svcTargets []scrape.Target
	svcSet     bool

	collectErrors *prometheus.CounterVec
	scraped       prometheus.Counter
	firstRound    chan struct{}
}

// FirstRound is closed once the first host and container round is queued.
func (a *Agent) FirstRound() <-chan struct{} { return a.firstRound }

// New builds the agent; nothing runs until Run.
func New(cfg Config, d Deps) (*Agent, error) {
	if ps := cfg.Validate(); len(ps) > 0 {
		return nil, fmt.Errorf("agent config: %s: %s", ps[0].Field, ps[0].Msg)
	}
	if cfg.Node == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("agent: node name not set and hostname unknown: %w", err)
		}
		cfg.Node = h
	}
	a := &Agent{cfg: cfg, log: d.Log, firstRound: make(chan struct{}), extra: []tsdb.Label{{Name: "datacenter", Value: cfg.Datacenter}, {Name: "node", Value: cfg.Node}}}
	reg := d.Registry
	a.collectErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "opspilot_agent_collect_errors_total", Help: "Collection rounds that failed in part, by collector."}, []string{"collector"})
	a.scraped = prometheus.NewCounter(prometheus.CounterOpts{Name: "opspilot_agent_samples_collected_total", Help: "Samples produced by host and container collectors, scrapes and pushes."})
	reg.MustRegister(a.collectErrors, a.scraped)

	qdir := cfg.Queue.Dir
	if qdir == "" {
		qdir = filepath.Join(d.DataDir, "agent", "queue")
	}
	qopts := diskqueue.Options{MaxBytes: cfg.Queue.MaxBytes}
	if cfg.Queue.Fsync {
		qopts.Sync = diskqueue.SyncAlways
	}
	dests := d.Destinations
	if len(dests) == 0 {
		dests = []Destination{{Writer: d.Writer}}
	}
	for i, dst := range dests {
		dir, dreg, dlog := qdir, reg, d.Log
		if len(dests) > 1 {
			if i > 0 {
				dir = qdir + "-" + dirSafe(dst.Name)
			}
			dreg = prometheus.WrapRegistererWith(prometheus.Labels{"server": dst.Name}, reg)
			if dlog != nil {
				dlog = dlog.With("server", dst.Name)
			}
		}
		s, err := NewShipper(ShipperConfig{
			MaxSamplesPerRecord: cfg.Shipper.MaxSamplesPerRequest,
			RetryMinBackoff:     cfg.Shipper.RetryMinBackoff,
			RetryMaxBackoff:     cfg.Shipper.RetryMaxBackoff,
		}, dir, qopts, dst.Writer, dreg, dlog)
		if err != nil {
			for _, s := range a.shippers {
				s.Close()
			}
			return nil, err
		}
		a.shippers = append(a.shippers, s)
	}
	var err error
	if cfg.Host.Enabled {
		hc := host.DefaultConfig()
		if cfg.Host.ProcPath != "" {
			hc.ProcPath = cfg.Host.ProcPath
		}
		if cfg.Host.SysPath != "" {
			hc.SysPath = cfg.Host.SysPath
		}
		if a.host, err = host.New(hc); err != nil {
			return nil, err
		}
	}
	if cfg.Containers.Enabled {
		cc := container.DefaultConfig()
		if cfg.Containers.CgroupRoot != "" {
			cc.CgroupRoot = cfg.Containers.CgroupRoot
		}
		cc.Docker = cfg.Containers.Docker
		cc.DockerHost = cfg.Containers.DockerHost
		if a.container, err = container.New(cc); err != nil {
			return nil, err
		}
		var insts []container.Instance
		for _, in := range cfg.Containers.Instances {
			insts = append(insts, container.Instance{Service: in.Service, Instance: in.Instance, Tenant: in.Tenant, CgroupPath: in.CgroupPath})
		}
		a.container.SetInstances(insts)
	}
	if a.scraper, err = scrape.New(cfg.Scrape, a.Append, reg, d.Log); err != nil {
		return nil, err
	}
	logsURL := cfg.Logs.URL
	if d.LogsURL != "" {
		logsURL = d.LogsURL
	}
	if cfg.Logs.Enabled && logsURL != "" {
		state := cfg.Logs.StateDir
		if state == "" {
			state = filepath.Join(d.DataDir, "agent", "logs")
		}
		var sources []logs.Source
		for _, f := range cfg.Logs.Files {
			sources = append(sources, logs.Source{Path: f.Path, Service: f.Service, Instance: f.Instance})
		}
		if a.logs, err = logs.New(logs.Config{
			Sources: sources, StateDir: state, URL: logsURL, Index: cfg.Logs.Index,
			Datacenter: cfg.Datacenter, Node: cfg.Node,
		}, reg, d.Log); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// Pending is the number of queued, undelivered remote-write requests, over
// all destinations.
func (a *Agent) Pending() int {
	n := 0
	for _, s := range a.shippers {
		n += s.Pending()
	}
	return n
}

// dirSafe turns a destination's name (a URL) into a directory name.
func dirSafe(name string) string {
	name = strings.TrimPrefix(strings.TrimPrefix(name, "https://"), "http://")
	return strings.Map(func(r rune) rune {
		if r == '.' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '_'
	}, name)
}

// Node is the node name the agent labels its series with.
func (a *Agent) Node() string { return a.cfg.Node }

// Append labels series with datacenter and node and queues them; it is the
// sink of scrapes and pushes.
func (a *Agent) Append(series []tsdb.TimeSeries) error {
	n := 0
	for i := range series {
		series[i].Labels = withLabels(series[i].Labels, a.extra)
		n += len(series[i].Samples)
	}
	a.scraped.Add(float64(n))
	return appendAll(series, a.shippers) // encoded once for every destination
}

// withLabels adds extra labels unless the series has them already.
func withLabels(ls, extra []tsdb.Label) []tsdb.Label {
	out := make([]tsdb.Label, 0, len(ls)+len(extra))
	out = append(out, ls...)
outer:
	for _, e := range extra {
		for _, l := range ls {
			if l.Name == e.Name {
				continue outer
			}
		}
		out = append(out, e)
	}
	return out
}

// PushHandler accepts remote write and the text format from applications
// that cannot be scraped (mount at /api/v1/write and
// /api/v1/import/prometheus, with any prefix).
func (a *Agent) PushHandler() http.Handler { return a.scraper.PushHandler() }

// CollectOnce collects host and container metrics once and queues them.
func (a *Agent) CollectOnce(ctx context.Context, now time.Time) {
	if a.host != nil {
		series, err := a.host.Collect(now)
		if err != nil {
			a.collectErrors.WithLabelValues("host").Inc()
			a.log.Warn("agent: host metrics incomplete", "err", err)
		}
		if len(series) > 0 {
			if err := a.Append(series); err != nil {
				a.log.Error("agent: cannot queue host metrics", "err", err)
			}
		}
	}
	if a.container != nil {
		series, err := a.container.Collect(ctx, now)
		if err != nil {
			a.collectErrors.WithLabelValues("container").Inc()
			a.log.Debug("agent: container metrics incomplete", "err", err)
		}
		if len(series) > 0 {
			if err := a.Append(series); err != nil {
				a.log.Error("agent: cannot queue container metrics", "err", err)
			}
		}
	}
}

// Run collects, scrapes, tails and ships until ctx ends, then closes the
// queue (undelivered samples stay on disk for the next start).
func (a *Agent) Run(ctx context.Context) error {
	defer func() {
		for _, s := range a.shippers {
			s.Close()
		}
	}()
	var g run.Group
	add := func(f func(context.Context) error) {
		cctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { return f(cctx) }, func(error) { cancel() })
	}
	add(func(ctx context.Context) error {
		t := time.NewTicker(a.cfg.Interval)
		defer t.Stop()
		a.CollectOnce(ctx, time.Now())
		close(a.firstRound)
		// A second round a second later gives rate() its two points at
		// once, instead of one interval after start.
		if warm := min(time.Second, a.cfg.Interval/2); warm > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(warm):
			}
			a.CollectOnce(ctx, time.Now())
		}
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
			a.CollectOnce(ctx, time.Now())
		}
	})
	for _, s := range a.shippers {
		add(s.Run)
	}
	add(a.scraper.Run)
	if a.logs != nil {
		add(a.logs.Run)
	}
	// The first actor to return (ctx ended, or one failed) stops the rest.
	err := g.Run()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// SetInstances replaces the orchestrator-managed instances whose cgroups
// the container collector reads, in addition to the configured ones.
func (a *Agent) SetInstances(in []container.Instance) {
	if a.container == nil {
		return
	}
	all := make([]container.Instance, 0, len(a.cfg.Containers.Instances)+len(in))
	for _, c := range a.cfg.Containers.Instances {
		all = append(all, container.Instance{Service: c.Service, Instance: c.Instance, Tenant: c.Tenant, CgroupPath: c.CgroupPath})
	}
	a.container.SetInstances(append(all, in...))
}

// SetServiceTargets replaces the scrape targets of orchestrator-managed
// service instances; the scraper scrapes them with the configured
// scrape.targets. It may be called often (every heartbeat): the scraper is
// updated only when the set changed. A target that is invalid, or that
// would write the same series as a configured target or an earlier one
// (same tenant, service and instance), is left out and reported in the
// error; the others are scraped all the same.
func (a *Agent) SetServiceTargets(ts []scrape.Target) error {
	static := a.cfg.Scrape.Targets
	seen := make(map[[3]string]bool, len(static)+len(ts))
	for _, t := range static {
		seen[[3]string{t.Tenant, t.Service, t.Instance}] = true
	}
	var errs []error
	keep := make([]scrape.Target, 0, len(ts))
	for _, t := range ts {
		k := [3]string{t.Tenant, t.Service, t.Instance}
		switch ps := t.Validate(); {
		case len(ps) > 0:
			errs = append(errs, fmt.Errorf("scrape target of instance %q: %s: %s", t.Instance, ps[0].Field, ps[0].Msg))
		case t.Instance == "":
			errs = append(errs, fmt.Errorf("scrape target of service %q at %s: an instance target needs the instance id", t.Service, t.URL))
		case seen[k]:
			errs = append(errs, fmt.Errorf("scrape target of instance %q of service %q: another target has the same tenant, service and instance", t.Instance, t.Service))
		default:
			seen[k] = true
			keep = append(keep, t)
		}
	}
	a.svcMu.Lock()
	defer a.svcMu.Unlock()
	if a.svcSet && slices.EqualFunc(keep, a.svcTargets, sameTarget) {
		return errors.Join(errs...)
	}
	all := append(slices.Clip(slices.Clone(static)), keep...)
	if err := a.scraper.SetTargets(all); err != nil {
		return errors.Join(append(errs, err)...)
	}
	a.svcTargets, a.svcSet = keep, true
	return errors.Join(errs...)
}

func sameTarget(a, b scrape.Target) bool {
	return a.Service == b.Service && a.Instance == b.Instance && a.Tenant == b.Tenant && a.URL == b.URL &&
		a.Interval == b.Interval && a.Timeout == b.Timeout && maps.Equal(a.Labels, b.Labels)
}

// AddLogSource tails one more file (an instance's stdout or stderr). It is
// a no-op when log shipping is off.
func (a *Agent) AddLogSource(s logs.Source) error {
	if a.logs == nil {
		return nil
	}
	return a.logs.AddSource(s)
}
