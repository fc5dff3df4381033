package scrape

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	commonconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/relabel"
	promscrape "github.com/prometheus/prometheus/scrape"

	"opspilot/tsdb"
)

// Sink receives samples. It is called concurrently (one call per scrape
// of each target, and one per push request) and may keep the slice. An
// error means the samples were not taken: a pusher is told to retry, a
// scrape's samples are dropped and counted.
type Sink func([]tsdb.TimeSeries) error

// Scraper scrapes the configured targets with Prometheus' scrape manager
// and serves the push endpoints. Create it with New, start it with Run.
type Scraper struct {
	log           *slog.Logger
	targetRelabel []*relabel.Config
	metricRelabel []*relabel.Config
	metrics       *scrapeMetrics
	manager       *promscrape.Manager
	push          *PushHandler
	// tsets carries the latest target groups to the manager; it holds at
	// most one pending update, which SetTargets replaces.
	tsets chan map[string][]*targetgroup.Group

	mu      sync.Mutex
	targets []Target
	started bool
	running bool
}

// New validates cfg and builds a Scraper writing to sink. Its self-metrics
// and Prometheus' scrape metrics are registered on reg (nil: none).
func New(cfg Config, sink Sink, reg prometheus.Registerer, log *slog.Logger) (*Scraper, error) {
	if sink == nil {
		return nil, errors.New("scrape: New needs a sink")
	}
	if ps := cfg.Validate(); len(ps) > 0 {
		return nil, problemsError("scrape config", ps)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newScrapeMetrics(reg)
	if err != nil {
		return nil, err
	}
	s := &Scraper{
		log:           log,
		targetRelabel: prepareRelabel(cfg.RelabelConfigs),
		metricRelabel: prepareRelabel(cfg.MetricRelabelConfigs),
		metrics:       m,
		tsets:         make(chan map[string][]*targetgroup.Group, 1),
		targets:       cfg.Targets,
	}
	s.push, err = newPushHandler(sink, s.metricRelabel, cfg.PushMaxBodyBytes, reg)
	if err != nil {
		return nil, err
	}
	s.manager, err = promscrape.NewManager(&promscrape.Options{
		// Target updates (SetTargets) take effect within a second, and
		// the first set immediately.
		DiscoveryReloadInterval:  model.Duration(time.Second),
		DiscoveryReloadOnStartup: true,
	}, log, nil, nil, &sinkAppendable{sink: sink, metrics: m}, reg)
	if err != nil {
		return nil, fmt.Errorf("scrape: create Prometheus scrape manager: %w", err)
	}
	// Fail now, not in Run, if a target cannot become a scrape config.
	if _, _, err := s.build(cfg.Targets); err != nil {
		return nil, err
	}
	m.targets.Set(float64(len(cfg.Targets)))
	return s, nil
}

// PushHandler returns the handler for pushed samples (see PushHandler).
func (s *Scraper) PushHandler() http.Handler { return s.push }

// Run scrapes until ctx is done, then stops every scrape loop (which sends
// staleness markers for the scraped series) and returns nil.
func (s *Scraper) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("scrape: Run called twice")
	}
	s.started, s.running = true, true
	err := s.apply(s.targets)
	s.mu.Unlock()
	if err != nil {
		return err
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.manager.Run(s.tsets) // returns when Stop is called
	}()
	<-ctx.Done()

	s.mu.Lock()
	s.running = false
	s.mu.Unlock()
	s.manager.Stop()
	<-done
	return nil
}

// SetTargets replaces the targets; they are validated like
// Config.Targets. Scrape loops of unchanged targets keep running. It may
// be called before or while Run runs.
func (s *Scraper) SetTargets(ts []Target) error {
	if ps := validateTargets(ts); len(ps) > 0 {
		return problemsError("scrape targets", ps)
	}
	ts = append([]Target(nil), ts...)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		if err := s.apply(ts); err != nil {
			return err
		}
	} else if _, _, err := s.build(ts); err != nil {
		return err
	}
	s.targets = ts
	s.metrics.targets.Set(float64(len(ts)))
	return nil
}

// apply hands ts to the manager. The caller holds s.mu.
func (s *Scraper) apply(ts []Target) error {
	pc, groups, err := s.build(ts)
	if err != nil {
		return err
	}
	if err := s.manager.ApplyConfig(pc); err != nil {
		return fmt.Errorf("scrape: apply targets: %w", err)
	}
	select { // drop an update the manager has not picked up yet
	case <-s.tsets:
	default:
	}
	s.tsets <- groups
	return nil
}

// build turns targets into a Prometheus config with one scrape config
// (job) per target, since each has its own URL, interval and timeout, and
// the matching static target groups.
func (s *Scraper) build(ts []Target) (*promconfig.Config, map[string][]*targetgroup.Group, error) {
	pc, err := promconfig.Load("", s.log) // a "loaded" empty config, which ApplyConfig requires
	if err != nil {
		return nil, nil, fmt.Errorf("scrape: empty Prometheus config: %w", err)
	}
	groups := make(map[string][]*targetgroup.Group, len(ts))
	for i := range ts {
		t := &ts[i]
		job := t.key()
		sc, group, err := scrapeConfig(t, job, s.targetRelabel, s.metricRelabel)
		if err != nil {
			return nil, nil, err
		}
		if err := sc.Validate(pc.GlobalConfig); err != nil {
			return nil, nil, fmt.Errorf("scrape: target %q: %w", job, err)
		}
		pc.ScrapeConfigs = append(pc.ScrapeConfigs, sc)
		groups[job] = []*targetgroup.Group{group}
	}
	return pc, groups, nil
}

func scrapeConfig(t *Target, job string, targetRelabel, metricRelabel []*relabel.Config) (*promconfig.ScrapeConfig, *targetgroup.Group, error) {
	u, err := url.Parse(t.URL)
	if err != nil {
		return nil, nil, fmt.Errorf("scrape: target %q: url: %w", job, err)
	}
	sc := new(promconfig.ScrapeConfig)
	*sc = promconfig.DefaultScrapeConfig
	sc.JobName = job
	sc.ScrapeInterval = model.Duration(t.interval())
	sc.ScrapeTimeout = model.Duration(t.timeout())
	sc.Scheme = u.Scheme
	sc.MetricsPath = u.Path
	if sc.MetricsPath == "" {
		sc.MetricsPath = "/"
	}
	if q := u.Query(); len(q) > 0 {
		sc.Params = q
	}
	if u.User != nil {
		pw, _ := u.User.Password()
		sc.HTTPClientConfig.BasicAuth = &commonconfig.BasicAuth{Username: u.User.Username(), Password: commonconfig.Secret(pw)}
	}
	sc.RelabelConfigs = targetRelabel
	sc.MetricRelabelConfigs = metricRelabel

	ls := model.LabelSet{"job": model.LabelValue(t.Service), "service": model.LabelValue(t.Service)}
	if t.Instance != "" {
		ls["instance"] = model.LabelValue(t.Instance)
	}
	if t.Tenant != "" {
		ls["tenant"] = model.LabelValue(t.Tenant)
	}
	for k, v := range t.Labels {
		ls[model.LabelName(k)] = model.LabelValue(v)
	}
	group := &targetgroup.Group{
		Targets: []model.LabelSet{{model.AddressLabel: model.LabelValue(u.Host)}},
		Labels:  ls,
		Source:  job,
	}
	return sc, group, nil
}
