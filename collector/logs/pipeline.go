package logs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Source is one tailed file and the labels its lines carry.
type Source struct {
	Path     string
	Service  string
	Instance string
}

// Config configures a Pipeline.
type Config struct {
	// Sources are the files tailed from the start; AddSource adds more.
	Sources []Source
	// StateDir holds the acknowledged read positions (log-positions.json).
	StateDir string
	// URL is an Elasticsearch-compatible bulk base, e.g.
	// http://127.0.0.1:9428/insert/elasticsearch for VictoriaLogs.
	URL string
	// Index is the _index of every document. Default "opspilot-logs".
	Index string
	// Datacenter and Node label every line.
	Datacenter, Node string
	// FlushInterval is the longest a read line waits before a bulk
	// request. Default 1s.
	FlushInterval time.Duration
	// MaxBufferedLines bounds lines read but not yet acknowledged; reading
	// pauses while it is reached. Default 10000.
	MaxBufferedLines int
}

// Defaults.
const (
	DefaultIndex            = "opspilot-logs"
	DefaultFlushInterval    = time.Second
	DefaultMaxBufferedLines = 10000
)

func (c *Config) applyDefaults() error {
	if c.Index == "" {
		c.Index = DefaultIndex
	}
	if c.FlushInterval <= 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.MaxBufferedLines <= 0 {
		c.MaxBufferedLines = DefaultMaxBufferedLines
	}
	if c.URL == "" {
		return errors.New("logs: URL of the log store is empty; set it to an Elasticsearch-compatible base such as http://127.0.0.1:9428/insert/elasticsearch")
	}
	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("logs: URL %q is not an http(s) URL such as http://127.0.0.1:9428/insert/elasticsearch", c.URL)
	}
	if c.StateDir == "" {
		return errors.New("logs: StateDir is empty; it is needed to remember read positions across restarts")
	}
	seen := map[string]bool{}
	for _, s := range c.Sources {
		if err := checkSource(s); err != nil {
			return err
		}
		if seen[s.Path] {
			return fmt.Errorf("logs: source path %q is configured twice", s.Path)
		}
		seen[s.Path] = true
	}
	return nil
}

func checkSource(s Source) error {
	if s.Path == "" {
		return errors.New("logs: a source has an empty path")
	}
	return nil
}

type metrics struct {
	read, shipped, failed, retried prometheus.Counter
	buffered                       prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		read: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "opspilot_agent_log_lines_read_total", Help: "Log lines read from tailed files."}),
		shipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "opspilot_agent_log_lines_shipped_total", Help: "Log lines stored by the log store."}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "opspilot_agent_log_lines_failed_total", Help: "Log lines the log store rejected permanently (dropped)."}),
		retried: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "opspilot_agent_log_lines_retried_total", Help: "Log lines sent again after a failed attempt."}),
		buffered: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "opspilot_agent_log_lines_buffered", Help: "Log lines read and waiting to be batched."}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.read, m.shipped, m.failed, m.retried, m.buffered} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register log metrics: %w", err)
			}
		}
	}
	return m, nil
}

// Pipeline tails sources and ships their lines to the log store.
type Pipeline struct {
	cfg       Config
	log       *slog.Logger
	m         *metrics
	positions *positionStore
	shipper   *shipper
	queue     chan *entry

	mu      sync.Mutex
	runCtx  context.Context // set while Run runs
	wg      sync.WaitGroup
	sources map[string]*runningSource
}

type runningSource struct {
	src    Source
	cancel context.CancelFunc // nil until started
}

// New checks cfg, loads the persisted positions and registers the
// opspilot_agent_log_* metrics on reg (nil: not registered).
func New(cfg Config, reg prometheus.Registerer, log *slog.Logger) (*Pipeline, error) {
	if err := cfg.applyDefaults(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	positions, err := openPositionStore(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	sh, err := newShipper(cfg, positions, log, m)
	if err != nil {
		return nil, err
	}
	p := &Pipeline{
		cfg: cfg, log: log, m: m, positions: positions, shipper: sh,
		// The shipper holds up to one batch besides the queue.
		queue:   make(chan *entry, max(1, cfg.MaxBufferedLines-sh.maxBatch)),
		sources: map[string]*runningSource{},
	}
	for _, s := range cfg.Sources {
		p.sources[s.Path] = &runningSource{src: s}
	}
	return p, nil
}

// Run tails and ships until ctx ends, then returns nil once reading and
// shipping stopped; positions of everything shipped are persisted by then.
// A Pipeline runs once.
func (p *Pipeline) Run(ctx context.Context) error {
	p.mu.Lock()
	if p.runCtx != nil {
		p.mu.Unlock()
		return errors.New("logs: pipeline already ran")
	}
	p.runCtx = ctx
	for _, rs := range p.sources {
		p.startLocked(rs)
	}
	p.mu.Unlock()

	p.shipper.run(ctx, p.queue)
	p.wg.Wait()
	return nil
}

// AddSource starts tailing another file (an instance's stdout, say); before
// Run it is added to the sources Run starts.
func (p *Pipeline) AddSource(s Source) error {
	if err := checkSource(s); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.sources[s.Path]; ok {
		return fmt.Errorf("logs: %q is already tailed", s.Path)
	}
	rs := &runningSource{src: s}
	p.sources[s.Path] = rs
	if p.runCtx != nil && p.runCtx.Err() == nil {
		p.startLocked(rs)
	}
	return nil
}

// RemoveSource stops tailing path; its position stays, so adding it again
// resumes where shipping stopped.
func (p *Pipeline) RemoveSource(path string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if rs, ok := p.sources[path]; ok {
		if rs.cancel != nil {
			rs.cancel()
		}
		delete(p.sources, path)
	}
}

func (p *Pipeline) startLocked(rs *runningSource) {
	ctx, cancel := context.WithCancel(p.runCtx)
	rs.cancel = cancel
	start, resume := p.positions.get(rs.src.Path)
	t := &fileTailer{
		src: rs.src,
		labels: map[string]string{
			"service": rs.src.Service, "instance": rs.src.Instance,
			"datacenter": p.cfg.Datacenter, "node": p.cfg.Node, "file": rs.src.Path,
		},
		start: start, resume: resume, out: p.queue, log: p.log, m: p.m,
	}
	p.wg.Go(func() {
		defer cancel()
		t.run(ctx)
	})
}
