package model

import (
	"strconv"
	"time"
)

// Datacenter is a failure domain: a site or region whose nodes fail
// together.
type Datacenter struct {
	Name string `yaml:"name" json:"name"`
}

// Node is a machine running the opspilot agent.
type Node struct {
	Name       string `yaml:"name" json:"name"`
	Datacenter string `yaml:"datacenter" json:"datacenter"`
	// Partition groups nodes within a datacenter (e.g. "db", "web");
	// services may be restricted to partitions. Empty means none.
	Partition string            `yaml:"partition,omitempty" json:"partition,omitempty"`
	Labels    map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
	Capacity  Resources         `yaml:"capacity,omitempty" json:"capacity"`
	// Allocated is computed, not configured: the requests of the instances
	// currently on the node.
	Allocated Resources `yaml:"-" json:"allocated"`
	// Address is the host name or IP other machines reach the node's
	// instances at; the agent reports it when it joins.
	Address string `yaml:"address,omitempty" json:"address,omitempty"`
	// Unschedulable (cordoned, or drained) keeps new instances off the node.
	Unschedulable bool `yaml:"unschedulable,omitempty" json:"unschedulable,omitempty"`
	// Status is set by the control plane, not configured.
	Status NodeStatus `yaml:"-" json:"status"`
}

// Node states.
const (
	NodeReady = "ready"
	NodeLost  = "lost"
)

// NodeStatus is what the control plane knows of a node's agent.
type NodeStatus struct {
	// State is "ready" while heartbeats arrive and "lost" after none came
	// for the configured timeout.
	State string `json:"state,omitempty"`
	// Since is when State last changed.
	Since time.Time `json:"since,omitzero"`
	// AgentVersion is the version of opspilot the agent runs.
	AgentVersion string `json:"agent_version,omitempty"`
	// Runtimes the agent can run ("process", "docker").
	Runtimes []string `json:"runtimes,omitempty"`
}

// Free returns Capacity minus Allocated.
func (n *Node) Free() Resources { return n.Capacity.Sub(n.Allocated) }

// Tenant is a team or customer owning services. Its quota bounds the sum of
// its instances' requests.
type Tenant struct {
	Name string `yaml:"name" json:"name"`
	// Quota caps the summed requests of the tenant's instances. A zero
	// amount means no limit for that resource.
	Quota Resources `yaml:"quota,omitempty" json:"quota"`
	// Weight is the tenant's share in fair allocation when capacity is
	// short; a tenant with weight 2 gets twice the dominant share of one
	// with weight 1. Zero means 1.
	Weight float64 `yaml:"weight,omitempty" json:"weight,omitempty"`
}

// EffectiveWeight returns Weight, or 1 when Weight is not positive.
func (t *Tenant) EffectiveWeight() float64 {
	if t.Weight > 0 {
		return t.Weight
	}
	return 1
}

// Runtimes.
const (
	RuntimeProcess = "process"
	RuntimeDocker  = "docker"
)

// Placement strategies.
const (
	StrategySpread  = "spread"
	StrategyBinpack = "binpack"
)

// Service is a user's workload: how to run it and where.
type Service struct {
	Name   string `yaml:"name" json:"name"`
	Tenant string `yaml:"tenant,omitempty" json:"tenant,omitempty"`
	// Runtime is "process" (Command is run by the agent) or "docker"
	// (Image is run as a container, with Command as its arguments).
	Runtime   string            `yaml:"runtime" json:"runtime"`
	Command   []string          `yaml:"command,omitempty" json:"command,omitempty"`
	Image     string            `yaml:"image,omitempty" json:"image,omitempty"`
	Env       map[string]string `yaml:"env,omitempty" json:"env,omitempty"`
	Requests  Resources         `yaml:"requests,omitempty" json:"requests"`
	Limits    Resources         `yaml:"limits,omitempty" json:"limits"`
	Replicas  int               `yaml:"replicas" json:"replicas"`
	Ports     []Port            `yaml:"ports,omitempty" json:"ports,omitempty"`
	Liveness  *Probe            `yaml:"liveness,omitempty" json:"liveness,omitempty"`
	Readiness *Probe            `yaml:"readiness,omitempty" json:"readiness,omitempty"`
	// Metrics, when set, has the node's agent scrape each running
	// instance's Prometheus endpoint, labelling the samples with service,
	// instance (the instance ID) and tenant.
	Metrics   *MetricsEndpoint `yaml:"metrics,omitempty" json:"metrics,omitempty"`
	Placement Placement        `yaml:"placement,omitempty" json:"placement"`
	// Configs mounts files from the named config libraries (kind Config)
	// into each instance.
	Configs []ConfigMount `yaml:"configs,omitempty" json:"configs,omitempty"`
	// Rollout bounds how a new version replaces the old one.
	Rollout RolloutStrategy `yaml:"rollout,omitempty" json:"rollout"`
	// StopGrace is how long an instance has between SIGTERM and SIGKILL;
	// zero means DefaultStopGrace.
	StopGrace time.Duration `yaml:"stop_grace,omitempty" json:"stop_grace,omitempty"`
	// DrainDelay is how long an instance keeps running after it left the
	// endpoints, so gateways stop sending before it is told to stop; zero
	// means DefaultDrainDelay.
	DrainDelay time.Duration `yaml:"drain_delay,omitempty" json:"drain_delay,omitempty"`
}

// Service defaults.
const (
	DefaultStopGrace        = 10 * time.Second
	DefaultDrainDelay       = time.Second
	DefaultProgressDeadline = 60 * time.Second
)

// RolloutStrategy is a rolling update's shape, as in a Kubernetes
// Deployment: at most MaxSurge instances above the desired replicas and at
// most MaxUnavailable below them while versions change.
type RolloutStrategy struct {
	// MaxSurge is the number of extra instances a rollout may start; zero
	// with MaxUnavailable zero means 1.
	MaxSurge int `yaml:"max_surge,omitempty" json:"max_surge,omitempty"`
	// MaxUnavailable is how many instances may be missing; zero keeps full
	// capacity throughout.
	MaxUnavailable int `yaml:"max_unavailable,omitempty" json:"max_unavailable,omitempty"`
	// ProgressDeadline is how long a new instance may take to become ready
	// before the rollout is rolled back; zero means
	// DefaultProgressDeadline.
	ProgressDeadline time.Duration `yaml:"progress_deadline,omitempty" json:"progress_deadline,omitempty"`
	// Steps make the rollout a gray release: the new version goes first to
	// Percent of the first step's datacenter, then each later step's, and
	// each step is held for Analysis.Window while the new version's error
	// ratio and latency are compared with the old version's. A failed
	// analysis rolls back. After the last step the rest (datacenters no
	// step names included) is replaced as a plain rolling update.
	Steps []RolloutStep `yaml:"steps,omitempty" json:"steps,omitempty"`
	// Analysis is how each step is judged.
	Analysis RolloutAnalysis `yaml:"analysis,omitempty" json:"analysis,omitzero"`
}

// RolloutStep is one stage of a gray release: the share of a datacenter's
// instances that run the new version.
type RolloutStep struct {
	Datacenter string `yaml:"datacenter" json:"datacenter"`
	// Percent of the datacenter's instances (rounded up, at least one).
	Percent int `yaml:"percent" json:"percent"`
}

// RolloutAnalysis compares the new version with the old one over a window
// of live traffic, from the gateway's per-version metrics.
type RolloutAnalysis struct {
	// Window is how long each step is held and measured; zero means
	// DefaultAnalysisWindow.
	Window time.Duration `yaml:"window,omitempty" json:"window,omitempty"`
	// MaxErrorRatioIncrease fails the step when the new version's error
	// ratio (5xx answers / all) exceeds the old one's by more than this;
	// zero means DefaultMaxErrorRatioIncrease.
	MaxErrorRatioIncrease float64 `yaml:"max_error_ratio_increase,omitempty" json:"max_error_ratio_increase,omitempty"`
	// MaxLatencyRatio fails the step when the new version's p95 latency is
	// more than this multiple of the old one's; zero means
	// DefaultMaxLatencyRatio.
	MaxLatencyRatio float64 `yaml:"max_latency_ratio,omitempty" json:"max_latency_ratio,omitempty"`
	// MinRequests is how many requests the new version must have answered
	// in the window for a verdict; with fewer the step is held longer.
	// Zero means DefaultAnalysisMinRequests.
	MinRequests int `yaml:"min_requests,omitempty" json:"min_requests,omitempty"`
}

// Defaults of RolloutAnalysis.
const (
	DefaultAnalysisWindow        = 30 * time.Second
	DefaultMaxErrorRatioIncrease = 0.01
	DefaultMaxLatencyRatio       = 1.5
	DefaultAnalysisMinRequests   = 20
)

// WithDefaults returns a with zero fields set to their defaults.
func (a RolloutAnalysis) WithDefaults() RolloutAnalysis {
	if a.Window == 0 {
		a.Window = DefaultAnalysisWindow
	}
	if a.MaxErrorRatioIncrease == 0 {
		a.MaxErrorRatioIncrease = DefaultMaxErrorRatioIncrease
	}
	if a.MaxLatencyRatio == 0 {
		a.MaxLatencyRatio = DefaultMaxLatencyRatio
	}
	if a.MinRequests == 0 {
		a.MinRequests = DefaultAnalysisMinRequests
	}
	return a
}

// ConfigMount puts a config library's files into each instance, under Path
// (relative to the instance's directory; default "config/NAME").
type ConfigMount struct {
	Name string `yaml:"name" json:"name"`
	Path string `yaml:"path,omitempty" json:"path,omitempty"`
}

// ConfigLibrary is a named set of files services mount.
type ConfigLibrary struct {
	Name string `yaml:"name" json:"name"`
	// Files maps file names (no directories) to their contents.
	Files map[string]string `yaml:"files" json:"files"`
}

// Port is a port an instance listens on.
type Port struct {
	Name string `yaml:"name" json:"name"`
	Port int    `yaml:"port" json:"port"`
	// Protocol is "tcp" or "udp"; empty means tcp.
	Protocol string `yaml:"protocol,omitempty" json:"protocol,omitempty"`
}

// Metrics endpoint defaults, used where a field is zero, and the shortest
// interval (those of opspilot/collector/scrape).
const (
	DefaultMetricsPath     = "/metrics"
	DefaultMetricsInterval = 15 * time.Second
	MinMetricsInterval     = time.Second
)

// MetricsEndpoint is where an instance serves its metrics in the
// Prometheus text (or OpenMetrics) format, scraped over HTTP by the
// agent of its node.
type MetricsEndpoint struct {
	// Port is the key of one of the service's declared ports: its name,
	// or its number when it has none. Empty means the first declared
	// port.
	Port string `yaml:"port,omitempty" json:"port,omitempty"`
	// Path (with an optional query) is DefaultMetricsPath when empty.
	Path string `yaml:"path,omitempty" json:"path,omitempty"`
	// Interval between scrapes, at least MinMetricsInterval; zero means
	// DefaultMetricsInterval.
	Interval time.Duration `yaml:"interval,omitempty" json:"interval,omitempty"`
	// Timeout of one scrape, at most the interval; zero means the
	// scraper's default (10s, capped at the interval).
	Timeout time.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
}

// WithDefaults returns a copy of m with an empty path and a zero interval
// set to their defaults. Port and Timeout stay as they are: the port's
// default depends on the service's ports, see PortOf.
func (m MetricsEndpoint) WithDefaults() MetricsEndpoint {
	if m.Path == "" {
		m.Path = DefaultMetricsPath
	}
	if m.Interval == 0 {
		m.Interval = DefaultMetricsInterval
	}
	return m
}

// PortOf returns the declared port m.Port names (by name, or by number
// for an unnamed port), or the first declared port when m.Port is empty;
// false when there is none.
func (m MetricsEndpoint) PortOf(declared []Port) (Port, bool) {
	if m.Port == "" {
		if len(declared) == 0 {
			return Port{}, false
		}
		return declared[0], true
	}
	for _, p := range declared {
		if p.Name == m.Port || p.Name == "" && strconv.Itoa(p.Port) == m.Port {
			return p, true
		}
	}
	return Port{}, false
}

// Probe defaults, used where a field is zero.
const (
	DefaultProbePeriod           = 10 * time.Second
	DefaultProbeTimeout          = time.Second
	DefaultProbeFailureThreshold = 3
)

// Probe checks an instance's health. Exactly one of HTTP, TCP and Exec is
// set.
type Probe struct {
	HTTP *HTTPProbe `yaml:"http,omitempty" json:"http,omitempty"`
	TCP  *TCPProbe  `yaml:"tcp,omitempty" json:"tcp,omitempty"`
	Exec *ExecProbe `yaml:"exec,omitempty" json:"exec,omitempty"`
	// Period between checks; zero means DefaultProbePeriod.
	Period time.Duration `yaml:"period,omitempty" json:"period,omitempty"`
	// Timeout of one check; zero means DefaultProbeTimeout. It must not
	// exceed the period.
	Timeout time.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	// FailureThreshold is how many consecutive failures make the instance
	// unhealthy; zero means DefaultProbeFailureThreshold.
	FailureThreshold int `yaml:"failure_threshold,omitempty" json:"failure_threshold,omitempty"`
}

// WithDefaults returns a copy of p with zero timing fields set to their
// defaults.
func (p Probe) WithDefaults() Probe {
	if p.Period == 0 {
		p.Period = DefaultProbePeriod
	}
	if p.Timeout == 0 {
		p.Timeout = min(DefaultProbeTimeout, p.Period)
	}
	if p.FailureThreshold == 0 {
		p.FailureThreshold = DefaultProbeFailureThreshold
	}
	return p
}

// HTTPProbe succeeds when GET http://instance:Port/Path answers 2xx or 3xx.
type HTTPProbe struct {
	Path string `yaml:"path" json:"path"`
	Port int    `yaml:"port" json:"port"`
}

// TCPProbe succeeds when a TCP connection to Port opens.
type TCPProbe struct {
	Port int `yaml:"port" json:"port"`
}

// ExecProbe succeeds when Command exits with status 0.
type ExecProbe struct {
	Command []string `yaml:"command" json:"command"`
}

// Placement says where a service's instances may run.
type Placement struct {
	// Datacenters maps datacenter names to weights: {A: 6, B: 4} puts 60%
	// of the instances in A. Empty means every datacenter, evenly. A zero
	// weight keeps the service out of that datacenter.
	Datacenters map[string]int `yaml:"datacenters,omitempty" json:"datacenters,omitempty"`
	// Partitions restricts instances to nodes in these partitions; empty
	// means any.
	Partitions []string `yaml:"partitions,omitempty" json:"partitions,omitempty"`
	// NodeLabels restricts instances to nodes having all these labels.
	NodeLabels map[string]string `yaml:"node_labels,omitempty" json:"node_labels,omitempty"`
	// Strategy is "spread" (the default when empty) or "binpack".
	Strategy string `yaml:"strategy,omitempty" json:"strategy,omitempty"`
	// AntiAffinity allows at most one instance of the service per node.
	AntiAffinity bool `yaml:"anti_affinity,omitempty" json:"anti_affinity,omitempty"`
	// Failover lists, in priority order, the datacenters that take over
	// the share of a datacenter that is lost or failed over: the first
	// one still in service gets it all (a disaster-recovery datacenter
	// may have weight 0 in Datacenters and still be named here). Empty:
	// the share goes to the service's other datacenters by their weights,
	// or, when it has none left, to every datacenter in service.
	Failover []string `yaml:"failover,omitempty" json:"failover,omitempty"`
}

// Instance states.
const (
	StatePending  = "pending"
	StateStarting = "starting"
	StateRunning  = "running"
	StateReady    = "ready"
	StateStopping = "stopping"
	StateStopped  = "stopped"
	StateFailed   = "failed"
)

// Desired instance states, set by the control plane.
const (
	DesiredRun  = "run"
	DesiredStop = "stop"
)

// Instance is one running (or wanted) copy of a service on a node.
type Instance struct {
	ID         string `yaml:"id" json:"id"`
	Service    string `yaml:"service" json:"service"`
	Tenant     string `yaml:"tenant,omitempty" json:"tenant,omitempty"`
	Version    string `yaml:"version,omitempty" json:"version,omitempty"`
	Node       string `yaml:"node,omitempty" json:"node,omitempty"`
	Datacenter string `yaml:"datacenter,omitempty" json:"datacenter,omitempty"`
	// Requests are copied from the service version, so node allocation
	// can be computed from instances alone.
	Requests Resources `yaml:"requests,omitempty" json:"requests"`
	// Desired is what the control plane wants: "run" or "stop".
	Desired string `yaml:"desired" json:"desired"`
	// State is what the node's agent last reported.
	State    string `yaml:"state" json:"state"`
	Restarts int    `yaml:"restarts,omitempty" json:"restarts,omitempty"`
	// LastExit describes how the process last ended, e.g. "exit status 1".
	LastExit string `yaml:"last_exit,omitempty" json:"last_exit,omitempty"`
	// Message explains the state (a probe failure, a start error).
	Message string `yaml:"message,omitempty" json:"message,omitempty"`
	// Address and Ports are where the instance serves: Ports maps each
	// declared port's name (or its number, when unnamed) to the host port.
	// Port is the host port of the first declared port (the one gateways
	// send to).
	Address string         `yaml:"address,omitempty" json:"address,omitempty"`
	Port    int            `yaml:"port,omitempty" json:"port,omitempty"`
	Ports   map[string]int `yaml:"ports,omitempty" json:"ports,omitempty"`
	// PID is the main process's id on the node, as the agent reported it.
	PID int `yaml:"pid,omitempty" json:"pid,omitempty"`
	// Created is when the control plane placed the instance; ReadySince
	// when it last became ready; StopAt when a stopping instance may be
	// signalled (after its drain delay).
	Created    time.Time `yaml:"created,omitempty" json:"created,omitzero"`
	ReadySince time.Time `yaml:"ready_since,omitempty" json:"ready_since,omitzero"`
	StopAt     time.Time `yaml:"stop_at,omitempty" json:"stop_at,omitzero"`
}

// Ready reports whether the instance should receive traffic: desired to
// run, and reported ready.
func (i *Instance) Ready() bool { return i.Desired != DesiredStop && i.State == StateReady }

// Active reports whether the instance occupies its node: every state but
// stopped and failed.
func (i *Instance) Active() bool {
	return i.State != StateStopped && i.State != StateFailed
}
