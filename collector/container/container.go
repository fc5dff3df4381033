package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/moby/moby/client"

	"opspilot/tsdb"
)

// Instance is a workload the node runs itself (the orchestrator fills
// these).
type Instance struct {
	Service, Instance, Tenant string
	// CgroupPath is relative to the cgroup root, e.g. "/opspilot/svc-a-1":
	// the v2 path, or on v1 the same relative path under every controller.
	CgroupPath string
	// ControllerPaths (v1 only, optional) overrides CgroupPath per
	// controller ("cpu", "cpuacct", "memory", "blkio") for processes whose
	// controllers sit at different paths (see ParseProcCgroup).
	ControllerPaths map[string]string
	Restarts        int
}

// Config configures a Collector. The zero value of each field means its
// default (DefaultConfig), except Docker, whose zero value turns Docker off.
type Config struct {
	// CgroupRoot is where the cgroup filesystem is mounted
	// (default "/sys/fs/cgroup").
	CgroupRoot string
	// Docker collects every running container of a Docker engine when one
	// is reachable (default true).
	Docker bool
	// DockerHost is the engine's address, e.g. "unix:///var/run/docker.sock"
	// (default: DOCKER_HOST, else the platform's default socket).
	DockerHost string
}

// DefaultConfig returns the defaults: the standard cgroup mount, Docker on.
func DefaultConfig() Config {
	return Config{CgroupRoot: "/sys/fs/cgroup", Docker: true}
}

// Collector reads container metrics. Collect and SetInstances are safe for
// concurrent use.
type Collector struct {
	cfg      Config
	v2       bool
	procRoot string // "/proc"; tests point it at fixtures
	docker   *client.Client

	mu        sync.Mutex
	instances []Instance

	collectMu sync.Mutex // serialises Collect: it reuses buf
	buf       []byte
}

// New returns a Collector. It detects the cgroup version (v2 when
// CgroupRoot/cgroup.controllers exists) and builds the Docker client, which
// connects lazily: a missing engine is not an error.
func New(cfg Config) (*Collector, error) {
	if cfg.CgroupRoot == "" {
		cfg.CgroupRoot = DefaultConfig().CgroupRoot
	}
	c := &Collector{cfg: cfg, procRoot: "/proc", buf: make([]byte, 0, 8<<10)}
	if _, err := os.Stat(filepath.Join(cfg.CgroupRoot, "cgroup.controllers")); err == nil {
		c.v2 = true
	}
	if cfg.Docker {
		opts := []client.Opt{client.FromEnv}
		if cfg.DockerHost != "" {
			opts = append(opts, client.WithHost(cfg.DockerHost))
		}
		cl, err := client.New(opts...)
		if err != nil {
			return nil, fmt.Errorf("docker client for %q: %w (set DockerHost or DOCKER_HOST to a valid address, or turn Docker off)", cfg.DockerHost, err)
		}
		c.docker = cl
	}
	return c, nil
}

// CgroupV2 reports whether the node uses the unified (v2) hierarchy.
func (c *Collector) CgroupV2() bool { return c.v2 }

// Close releases the Docker client's connections.
func (c *Collector) Close() error {
	if c.docker != nil {
		return c.docker.Close()
	}
	return nil
}

// SetInstances replaces the node's own workloads.
func (c *Collector) SetInstances(in []Instance) {
	cp := append([]Instance(nil), in...)
	c.mu.Lock()
	c.instances = cp
	c.mu.Unlock()
}

// Collect returns one sample at now for every series of every instance and
// Docker container. Errors (a malformed or unreadable file, a Docker API
// failure) are joined and returned next to everything that could be read;
// an unreachable Docker engine is no error: its containers are absent and
// opspilot_container_docker_up is 0.
func (c *Collector) Collect(ctx context.Context, now time.Time) ([]tsdb.TimeSeries, error) {
	c.mu.Lock()
	instances := c.instances
	c.mu.Unlock()

	c.collectMu.Lock()
	defer c.collectMu.Unlock()

	e := emitter{ts: now.UnixMilli(), out: make([]tsdb.TimeSeries, 0, 24*len(instances)+1)}
	var errs []error
	for i := range instances {
		if err := ctx.Err(); err != nil {
			return e.out, err
		}
		if err := c.collectInstance(&e, &instances[i], now); err != nil {
			errs = append(errs, err)
		}
	}
	if c.docker != nil {
		if err := c.collectDocker(ctx, &e, now); err != nil {
			errs = append(errs, err)
		}
	}
	return e.out, errors.Join(errs...)
}

// emitter appends series that share a base label set.
type emitter struct {
	ts   int64
	base []tsdb.Label
	out  []tsdb.TimeSeries
}

func (e *emitter) add(name string, v float64, extra ...tsdb.Label) {
	labels := make([]tsdb.Label, 0, 1+len(e.base)+len(extra))
	labels = append(labels, tsdb.Label{Name: "__name__", Value: name})
	labels = append(labels, e.base...)
	labels = append(labels, extra...)
	e.out = append(e.out, tsdb.TimeSeries{
		Labels:  labels,
		Samples: []tsdb.Sample{{Value: v, Timestamp: e.ts}},
	})
}
