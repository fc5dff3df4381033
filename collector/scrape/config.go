package scrape

import (
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/relabel"

	"opspilot/config"
)

// Defaults for the zero values of Target and Config.
const (
	DefaultInterval         = 15 * time.Second
	DefaultTimeout          = 10 * time.Second // capped at the interval
	MinInterval             = time.Second
	DefaultPushMaxBodyBytes = 32 << 20
)

// Target is one endpoint to scrape.
type Target struct {
	// Service, Instance and Tenant become the labels service, instance and
	// tenant of every scraped series (and job = Service, Prometheus'
	// convention, unless Labels sets job). Service is required; an empty
	// Instance defaults to the URL's host:port, an empty Tenant adds no
	// label.
	Service  string `yaml:"service"`
	Instance string `yaml:"instance"`
	Tenant   string `yaml:"tenant"`
	// URL is the full URL including path and query, e.g.
	// http://127.0.0.1:8080/metrics. User info becomes basic auth.
	URL string `yaml:"url"`
	// Interval between scrapes, at least 1s; 0 means 15s.
	Interval time.Duration `yaml:"interval"`
	// Timeout of one scrape, at most Interval; 0 means min(10s, Interval).
	Timeout time.Duration `yaml:"timeout"`
	// Labels are added to every series of the target.
	Labels map[string]string `yaml:"labels"`
}

// Config configures a Scraper.
type Config struct {
	Targets []Target `yaml:"targets"`
	// RelabelConfigs apply to targets before scraping, with Prometheus'
	// relabel_configs semantics (meta labels: __address__, __scheme__,
	// __metrics_path__, __param_<name>, __scrape_interval__,
	// __scrape_timeout__; dropping a target stops it being scraped).
	RelabelConfigs []*relabel.Config `yaml:"relabel_configs"`
	// MetricRelabelConfigs apply to every scraped and pushed sample, with
	// Prometheus' metric_relabel_configs semantics.
	MetricRelabelConfigs []*relabel.Config `yaml:"metric_relabel_configs"`
	// PushMaxBodyBytes limits a push request body, both as sent and after
	// snappy decompression; 0 means 32 MiB.
	PushMaxBodyBytes int64 `yaml:"push_max_body_bytes"`
}

// interval returns the effective scrape interval.
func (t *Target) interval() time.Duration {
	if t.Interval == 0 {
		return DefaultInterval
	}
	return t.Interval
}

// timeout returns the effective scrape timeout.
func (t *Target) timeout() time.Duration {
	if t.Timeout == 0 {
		return min(DefaultTimeout, t.interval())
	}
	return t.Timeout
}

// key identifies a target: two targets with the same key would write the
// same series. It is also the Prometheus job (scrape pool) name.
func (t *Target) key() string {
	inst := t.Instance
	if inst == "" {
		if u, err := url.Parse(t.URL); err == nil {
			inst = u.Host
		}
	}
	return t.Tenant + "/" + t.Service + "/" + inst
}

var labelNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// reservedLabels are set from Target fields and may not be in Labels.
var reservedLabels = map[string]string{"service": "service", "instance": "instance", "tenant": "tenant"}

// Validate reports every problem in c, with YAML field paths.
func (c *Config) Validate() []config.Problem {
	ps := validateTargets(c.Targets)
	ps = append(ps, validateRelabel("relabel_configs", c.RelabelConfigs)...)
	ps = append(ps, validateRelabel("metric_relabel_configs", c.MetricRelabelConfigs)...)
	if c.PushMaxBodyBytes < 0 {
		ps = append(ps, config.Problem{Field: "push_max_body_bytes", Msg: "must not be negative; 0 means 32 MiB"})
	}
	return ps
}

// Validate reports the problems of one target, with fields relative to it.
func (t *Target) Validate() []config.Problem {
	var ps []config.Problem
	add := func(field, format string, args ...any) {
		ps = append(ps, config.Problem{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	switch {
	case t.Service == "":
		add("service", "is required")
	case !utf8.ValidString(t.Service):
		add("service", "must be valid UTF-8")
	}
	if !utf8.ValidString(t.Instance) {
		add("instance", "must be valid UTF-8")
	}
	if !utf8.ValidString(t.Tenant) {
		add("tenant", "must be valid UTF-8")
	}
	if t.URL == "" {
		add("url", `is required, e.g. "http://127.0.0.1:8080/metrics"`)
	} else if u, err := url.Parse(t.URL); err != nil {
		add("url", "is not a valid URL: %v", err)
	} else {
		switch {
		case u.Scheme != "http" && u.Scheme != "https":
			add("url", `must start with "http://" or "https://", got %q`, t.URL)
		case u.Host == "" || u.Hostname() == "":
			add("url", "has no host, e.g. %q", "http://127.0.0.1:8080/metrics")
		case u.Fragment != "":
			add("url", "must not have a #fragment")
		}
	}
	switch iv := t.interval(); {
	case iv < MinInterval:
		add("interval", "must be at least 1s, got %s", t.Interval)
	case t.Timeout < 0:
		add("timeout", "must not be negative, got %s", t.Timeout)
	case t.timeout() > iv:
		add("timeout", "must not exceed the interval (%s), got %s", iv, t.Timeout)
	}
	names := make([]string, 0, len(t.Labels))
	for name := range t.Labels {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		field := "labels." + name
		if !labelNameRE.MatchString(name) {
			add(fmt.Sprintf("labels[%q]", name), "is not a valid label name: use letters, digits and underscores, not starting with a digit")
			continue
		}
		if strings.HasPrefix(name, "__") {
			add(field, "label names starting with __ are reserved for Prometheus")
		} else if f, ok := reservedLabels[name]; ok {
			add(field, "is set by the target's %s field; set that instead", f)
		}
		if !utf8.ValidString(t.Labels[name]) {
			add(field, "must be valid UTF-8")
		}
	}
	return ps
}

func validateTargets(ts []Target) []config.Problem {
	var ps []config.Problem
	seen := make(map[string]int, len(ts))
	for i := range ts {
		prefix := fmt.Sprintf("targets[%d]", i)
		ps = append(ps, config.Prefix(prefix, ts[i].Validate())...)
		k := ts[i].key()
		if j, dup := seen[k]; dup {
			ps = append(ps, config.Problem{Field: prefix, Msg: fmt.Sprintf(
				"duplicates targets[%d] (same tenant %q, service %q and instance %q); give each target a distinct instance",
				j, ts[i].Tenant, ts[i].Service, strings.SplitN(k, "/", 3)[2])})
			continue
		}
		seen[k] = i
	}
	return ps
}

func validateRelabel(field string, rcs []*relabel.Config) []config.Problem {
	var ps []config.Problem
	for i, rc := range rcs {
		f := fmt.Sprintf("%s[%d]", field, i)
		if rc == nil {
			ps = append(ps, config.Problem{Field: f, Msg: "is empty; remove it or give it an action"})
			continue
		}
		c := *rc // Validate fills in the name validation scheme.
		if err := c.Validate(model.UTF8Validation); err != nil {
			ps = append(ps, config.Problem{Field: f, Msg: err.Error()})
		}
	}
	return ps
}

// prepareRelabel returns validated copies of rcs, ready for
// relabel.Process (which needs the name validation scheme set).
func prepareRelabel(rcs []*relabel.Config) []*relabel.Config {
	out := make([]*relabel.Config, 0, len(rcs))
	for _, rc := range rcs {
		c := *rc
		_ = c.Validate(model.UTF8Validation) // already checked by Config.Validate
		out = append(out, &c)
	}
	return out
}

// problemsError joins problems into one error.
func problemsError(what string, ps []config.Problem) error {
	msgs := make([]string, len(ps))
	for i, p := range ps {
		if p.Field != "" {
			msgs[i] = p.Field + ": " + p.Msg
		} else {
			msgs[i] = p.Msg
		}
	}
	return fmt.Errorf("%s: %s", what, strings.Join(msgs, "; "))
}
