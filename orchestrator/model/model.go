package model

import (
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
	Partition string            `yaml:"partition" json:"partition,omitempty"`
	Labels    map[string]string `yaml:"labels" json:"labels,omitempty"`
	Capacity  Resources         `yaml:"capacity" json:"capacity"`
	// Allocated is computed, not configured: the requests of the instances
	// currently on the node.
	Allocated Resources `yaml:"-" json:"allocated"`
}

// Free returns Capacity minus Allocated.
func (n *Node) Free() Resources { return n.Capacity.Sub(n.Allocated) }

// Tenant is a team or customer owning services. Its quota bounds the sum of
// its instances' requests.
type Tenant struct {
	Name string `yaml:"name" json:"name"`
	// Quota caps the summed requests of the tenant's instances. A zero
	// amount means no limit for that resource.
	Quota Resources `yaml:"quota" json:"quota"`
	// Weight is the tenant's share in fair allocation when capacity is
	// short; a tenant with weight 2 gets twice the dominant share of one
	// with weight 1. Zero means 1.
	Weight float64 `yaml:"weight" json:"weight,omitempty"`
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
	Tenant string `yaml:"tenant" json:"tenant,omitempty"`
	// Runtime is "process" (Command is run by the agent) or "docker"
	// (Image is run as a container, with Command as its arguments).
	Runtime   string            `yaml:"runtime" json:"runtime"`
	Command   []string          `yaml:"command" json:"command,omitempty"`
	Image     string            `yaml:"image" json:"image,omitempty"`
	Env       map[string]string `yaml:"env" json:"env,omitempty"`
	Requests  Resources         `yaml:"requests" json:"requests"`
	Limits    Resources         `yaml:"limits" json:"limits"`
	Replicas  int               `yaml:"replicas" json:"replicas"`
	Ports     []Port            `yaml:"ports" json:"ports,omitempty"`
	Liveness  *Probe            `yaml:"liveness" json:"liveness,omitempty"`
	Readiness *Probe            `yaml:"readiness" json:"readiness,omitempty"`
	Placement Placement         `yaml:"placement" json:"placement"`
}

// Port is a port an instance listens on.
type Port struct {
	Name string `yaml:"name" json:"name"`
	Port int    `yaml:"port" json:"port"`
	// Protocol is "tcp" or "udp"; empty means tcp.
	Protocol string `yaml:"protocol" json:"protocol,omitempty"`
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
	HTTP *HTTPProbe `yaml:"http" json:"http,omitempty"`
	TCP  *TCPProbe  `yaml:"tcp" json:"tcp,omitempty"`
	Exec *ExecProbe `yaml:"exec" json:"exec,omitempty"`
	// Period between checks; zero means DefaultProbePeriod.
	Period time.Duration `yaml:"period" json:"period,omitempty"`
	// Timeout of one check; zero means DefaultProbeTimeout. It must not
	// exceed the period.
	Timeout time.Duration `yaml:"timeout" json:"timeout,omitempty"`
	// FailureThreshold is how many consecutive failures make the instance
	// unhealthy; zero means DefaultProbeFailureThreshold.
	FailureThreshold int `yaml:"failure_threshold" json:"failure_threshold,omitempty"`
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
	Datacenters map[string]int `yaml:"datacenters" json:"datacenters,omitempty"`
	// Partitions restricts instances to nodes in these partitions; empty
	// means any.
	Partitions []string `yaml:"partitions" json:"partitions,omitempty"`
	// NodeLabels restricts instances to nodes having all these labels.
	NodeLabels map[string]string `yaml:"node_labels" json:"node_labels,omitempty"`
	// Strategy is "spread" (the default when empty) or "binpack".
	Strategy string `yaml:"strategy" json:"strategy,omitempty"`
	// AntiAffinity allows at most one instance of the service per node.
	AntiAffinity bool `yaml:"anti_affinity" json:"anti_affinity,omitempty"`
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

// Instance is one running (or wanted) copy of a service on a node.
type Instance struct {
	ID         string `yaml:"id" json:"id"`
	Service    string `yaml:"service" json:"service"`
	Version    string `yaml:"version" json:"version,omitempty"`
	Node       string `yaml:"node" json:"node,omitempty"`
	Datacenter string `yaml:"datacenter" json:"datacenter,omitempty"`
	State      string `yaml:"state" json:"state"`
	Restarts   int    `yaml:"restarts" json:"restarts,omitempty"`
	// LastExit describes how the process last ended, e.g. "exit status 1".
	LastExit string `yaml:"last_exit" json:"last_exit,omitempty"`
}

// Active reports whether the instance occupies its node: every state but
// stopped and failed.
func (i *Instance) Active() bool {
	return i.State != StateStopped && i.State != StateFailed
}
