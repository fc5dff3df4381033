package rootcause

import (
	"fmt"
	"math"
	"time"
)

// Label names used in the TSDB; SeriesFromLabels reads them.
const (
	LabelMetric     = "__name__"
	LabelService    = "service"
	LabelInstance   = "instance"
	LabelNode       = "node"
	LabelDatacenter = "datacenter"
)

// Hint kinds.
const (
	KindService    = "service"
	KindNode       = "node"
	KindDatacenter = "datacenter"
)

// Series identifies the anomalous series by the labels that matter for
// root-cause analysis. Empty fields are unknown.
type Series struct {
	Metric     string `json:"metric,omitempty"`
	Service    string `json:"service,omitempty"`
	Instance   string `json:"instance,omitempty"`
	Node       string `json:"node,omitempty"`
	Datacenter string `json:"datacenter,omitempty"`
}

// SeriesFromLabels picks the root-cause labels out of a TSDB label set.
func SeriesFromLabels(labels map[string]string) Series {
	return Series{
		Metric:     labels[LabelMetric],
		Service:    labels[LabelService],
		Instance:   labels[LabelInstance],
		Node:       labels[LabelNode],
		Datacenter: labels[LabelDatacenter],
	}
}

// Anomaly is one anomalous series: when it started, how strong it got and
// when it was last seen anomalous.
type Anomaly struct {
	Series Series `json:"series"`
	// Onset is the first anomalous point.
	Onset time.Time `json:"onset"`
	// Peak is the highest anomaly score in [0,1] (analyzer calibration).
	Peak float64 `json:"peak"`
	// Last is the latest anomalous point; before Onset means "same as Onset".
	Last time.Time `json:"last"`
}

// Instance is one running instance in the placement inventory.
type Instance struct {
	Service    string `json:"service"`
	Instance   string `json:"instance,omitempty"`
	Node       string `json:"node,omitempty"`
	Datacenter string `json:"datacenter,omitempty"`
}

// Topology is what Correlate and Rank know about the system besides the
// anomalies. Every field is optional; each one missing weakens one signal.
type Topology struct {
	// Calls maps a caller service to the services it calls.
	Calls map[string][]string `json:"calls,omitempty"`
	// Weights optionally maps caller → callee → relative traffic (e.g.
	// requests); it decides which of several anomalous callees gets more
	// blame. Missing entries weigh 1.
	Weights map[string]map[string]float64 `json:"weights,omitempty"`
	// Instances is the placement inventory: every instance, healthy or
	// not. It lets Rank see that a service's instances on other nodes are
	// normal, and fills in node and datacenter for anomalies that carry
	// only service and instance labels.
	Instances []Instance `json:"instances,omitempty"`
}

// Group is one incident: anomalies linked by time and by topology or host.
type Group struct {
	// Anomalies are sorted by onset, then by series.
	Anomalies []Anomaly `json:"anomalies"`
	// Start is the earliest onset; End the latest Last (or onset).
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// Hint is one ranked root-cause candidate.
type Hint struct {
	// Kind is KindService, KindNode or KindDatacenter.
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Score in [0,1]; comparable within one Rank call only.
	Score float64 `json:"score"`
	// Rank is 1 for the most likely origin.
	Rank int `json:"rank"`
	// Evidence explains the score in plain English for chat.
	Evidence []string `json:"evidence"`
}

// Config tunes Correlate and Rank. The zero value means all defaults;
// zero or invalid fields are replaced by their defaults (see DefaultConfig),
// so use Validate to reject bad user input with a message.
type Config struct {
	// Window links anomalies into one group when one starts no later than
	// Window after the other ended. Default 5m.
	Window time.Duration `yaml:"window" json:"window"`
	// OnsetTolerance absorbs detection jitter: a callee whose anomaly began
	// up to this long after its caller's still counts as explaining it.
	// Default 30s.
	OnsetTolerance time.Duration `yaml:"onset_tolerance" json:"onset_tolerance"`
	// OnsetScale is the decay of the onset term, exp(-delay/OnsetScale):
	// a candidate that started one OnsetScale after the first anomaly gets
	// 37% of the onset credit. Default 1m.
	OnsetScale time.Duration `yaml:"onset_scale" json:"onset_scale"`
	// Damping is the PageRank damping factor in (0,1). Default 0.85.
	Damping float64 `yaml:"damping" json:"damping"`
	// DependencyWeight, OnsetWeight and PeakWeight mix a service's three
	// terms; they are normalised to sum 1. All zero means the defaults
	// 0.5, 0.35 and 0.15. DependencyWeight is ignored when no two
	// anomalous services call each other.
	DependencyWeight float64 `yaml:"dependency_weight" json:"dependency_weight"`
	OnsetWeight      float64 `yaml:"onset_weight" json:"onset_weight"`
	PeakWeight       float64 `yaml:"peak_weight" json:"peak_weight"`
	// HostDiscount in (0,1] is how much of a service's score is taken away
	// when a node or datacenter fully explains it. Default 0.6.
	HostDiscount float64 `yaml:"host_discount" json:"host_discount"`
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		Window:           5 * time.Minute,
		OnsetTolerance:   30 * time.Second,
		OnsetScale:       time.Minute,
		Damping:          0.85,
		DependencyWeight: 0.5,
		OnsetWeight:      0.35,
		PeakWeight:       0.15,
		HostDiscount:     0.6,
	}
}

// Validate reports the first field that is out of range.
func (c Config) Validate() error {
	switch {
	case c.Window < 0:
		return fmt.Errorf("rootcause window %v is negative: use a positive duration such as 5m, or 0 for the default", c.Window)
	case c.OnsetTolerance < 0:
		return fmt.Errorf("rootcause onset_tolerance %v is negative: use a duration such as 30s, or 0 for the default", c.OnsetTolerance)
	case c.OnsetScale < 0:
		return fmt.Errorf("rootcause onset_scale %v is negative: use a duration such as 1m, or 0 for the default", c.OnsetScale)
	case !(c.Damping >= 0 && c.Damping < 1):
		return fmt.Errorf("rootcause damping %v is outside [0,1): use a value such as 0.85, or 0 for the default", c.Damping)
	case !validWeight(c.DependencyWeight) || !validWeight(c.OnsetWeight) || !validWeight(c.PeakWeight):
		return fmt.Errorf("rootcause weights (dependency %v, onset %v, peak %v) must be finite and non-negative", c.DependencyWeight, c.OnsetWeight, c.PeakWeight)
	case !(c.HostDiscount >= 0 && c.HostDiscount <= 1):
		return fmt.Errorf("rootcause host_discount %v is outside [0,1]: use a value such as 0.6, or 0 for the default", c.HostDiscount)
	}
	return nil
}

func validWeight(w float64) bool { return w >= 0 && !math.IsInf(w, 1) }

// withDefaults replaces zero and invalid fields by their defaults so the
// pure functions never see a bad value.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Window <= 0 {
		c.Window = d.Window
	}
	if c.OnsetTolerance <= 0 {
		c.OnsetTolerance = d.OnsetTolerance
	}
	if c.OnsetScale <= 0 {
		c.OnsetScale = d.OnsetScale
	}
	if !(c.Damping > 0 && c.Damping < 1) {
		c.Damping = d.Damping
	}
	if !validWeight(c.DependencyWeight) || !validWeight(c.OnsetWeight) || !validWeight(c.PeakWeight) ||
		c.DependencyWeight+c.OnsetWeight+c.PeakWeight == 0 {
		c.DependencyWeight, c.OnsetWeight, c.PeakWeight = d.DependencyWeight, d.OnsetWeight, d.PeakWeight
	}
	if !(c.HostDiscount > 0 && c.HostDiscount <= 1) {
		c.HostDiscount = d.HostDiscount
	}
	return c
}
