package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"opspilot/collector/container"
	"opspilot/collector/logs"
	"opspilot/collector/scrape"
	"opspilot/orchestrator/model"
)

// ManagerConfig configures a Manager. Zero fields mean their defaults,
// except Dir and Runtimes, which are required.
type ManagerConfig struct {
	// Dir holds one directory per instance (Dir/INSTANCE_ID), with its
	// files and logs.
	Dir string
	// Runtimes by name (model.RuntimeProcess, model.RuntimeDocker); an
	// instance whose runtime is missing is reported failed.
	Runtimes map[string]Runtime
	// Host is the address reported in Status.Address: where other
	// machines reach the instances' host ports (default "127.0.0.1").
	Host string
	// ProbeHost is where probes reach the host ports from the agent
	// (default "127.0.0.1").
	ProbeHost string
	// Node and Datacenter fill Spec.Node and Spec.Datacenter when empty.
	Node       string
	Datacenter string
	// Log defaults to slog.Default().
	Log *slog.Logger
	// OnChange is called whenever any instance's status changes, from a
	// goroutine of the Manager's, one call at a time; changes during a
	// call are coalesced into one more call. Optional.
	OnChange func()
	// Backoff is the crash-restart schedule (defaults: see Backoff).
	Backoff Backoff
	// StartupProbeInterval is the readiness probe's period until an
	// instance is first ready after a start (default
	// DefaultStartupProbeInterval).
	StartupProbeInterval time.Duration

	// probe replaces Probe in tests.
	probe func(context.Context, model.Probe, ProbeTarget) error
}

func (c ManagerConfig) withDefaults() (ManagerConfig, error) {
	if c.Dir == "" {
		return c, errors.New("runtime manager: Dir is required: the directory for instance files and logs")
	}
	if len(c.Runtimes) == 0 {
		return c, errors.New("runtime manager: at least one runtime is required (NewProcess, NewDocker)")
	}
	for name, rt := range c.Runtimes {
		if rt == nil || rt.Name() != name {
			return c, fmt.Errorf("runtime manager: Runtimes[%q] must be a runtime named %q", name, name)
		}
	}
	if c.Host == "" {
		c.Host = "127.0.0.1"
	}
	if c.ProbeHost == "" {
		c.ProbeHost = "127.0.0.1"
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	c.Backoff = c.Backoff.withDefaults()
	if c.StartupProbeInterval <= 0 {
		c.StartupProbeInterval = DefaultStartupProbeInterval
	}
	return c, nil
}

// Assignment is one instance the node should have.
type Assignment struct {
	Spec Spec
	// Stop asks for the instance to be stopped (and then reported as
	// stopped): at StopAt when set (its drain delay), at once otherwise.
	Stop   bool
	StopAt time.Time
}

// Manager runs a node's instances: Sync says which, Statuses reports on
// them. Its methods are safe for concurrent use.
type Manager struct {
	cfg        ManagerConfig
	ctx        context.Context // ends when Close gives up waiting: kills instances
	cancel     context.CancelFunc
	wg         sync.WaitGroup // supervisors
	notifyDone chan struct{}
	changed    chan struct{}

	mu        sync.Mutex
	closed    bool
	instances map[string]*entry
	usedPorts map[int]bool
}

// entry is one known instance.
type entry struct {
	spec  Spec
	dir   string
	ports map[string]int
	sv    *Supervisor // nil when it was never started
	// static is the status of an instance without a supervisor: wanted
	// stopped before it ever started, or impossible to start.
	static Status
}

func (e *entry) status() Status {
	if e.sv != nil {
		return e.sv.Status()
	}
	return e.static
}

func (e *entry) finished() bool {
	if e.sv == nil {
		return true
	}
	select {
	case <-e.sv.Done():
		return true
	default:
		return false
	}
}

// NewManager validates cfg, creates Dir and starts the goroutine that
// calls OnChange. Close stops it.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("runtime manager: create instance directory root: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Manager{
		cfg: cfg, ctx: ctx, cancel: cancel,
		notifyDone: make(chan struct{}),
		changed:    make(chan struct{}, 1),
		instances:  map[string]*entry{},
		usedPorts:  map[int]bool{},
	}
	go m.notifier()
	return m, nil
}

// notifier calls OnChange after changes, never concurrently with itself,
// so supervisors never block on the agent.
func (m *Manager) notifier() {
	defer close(m.notifyDone)
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-m.changed:
			if m.cfg.OnChange != nil {
				m.cfg.OnChange()
			}
		}
	}
}

func (m *Manager) notify() {
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

// Sync makes the node's instances match want, level-triggered: it starts
// the wanted instances that do not run, stops (with their drain and grace)
// those marked Stop and those not in want, and forgets instances that are
// stopped and no longer wanted (removing their directories). It returns at
// once; starting and stopping happen in the background. An instance's Spec
// is fixed once it runs: a new version is a new instance.
func (m *Manager) Sync(want []Assignment) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	wanted := make(map[string]bool, len(want))
	for _, a := range want {
		id := a.Spec.InstanceID
		if wanted[id] {
			m.cfg.Log.Warn("instance assigned twice; using the first", "instance", id)
			continue
		}
		wanted[id] = true
		e := m.instances[id]
		if e == nil {
			e = &entry{spec: m.fill(a.Spec)}
			m.instances[id] = e
		}
		switch {
		case a.Stop && e.sv != nil:
			e.sv.Stop(a.StopAt)
		case a.Stop:
			if e.static.State == "" || e.static.State == model.StateFailed {
				e.static = m.staticStatus(e, model.StateStopped, "")
			}
		case e.finished():
			m.start(e, m.fill(a.Spec))
		}
	}
	for id, e := range m.instances {
		if wanted[id] {
			continue
		}
		if e.finished() {
			m.forget(id, e)
			continue
		}
		e.sv.Stop(time.Time{})
	}
	m.notify()
}

// fill sets the node's defaults in spec.
func (m *Manager) fill(spec Spec) Spec {
	if spec.Node == "" {
		spec.Node = m.cfg.Node
	}
	if spec.Datacenter == "" {
		spec.Datacenter = m.cfg.Datacenter
	}
	return spec
}

// start starts (or starts again) an instance: host ports are allocated the
// first time and kept after.
func (m *Manager) start(e *entry, spec Spec) {
	e.spec = spec
	fail := func(err error) {
		m.cfg.Log.Warn("cannot run instance", "instance", spec.InstanceID, "err", err)
		e.static = m.staticStatus(e, model.StateFailed, err.Error())
	}
	if err := spec.Validate(); err != nil {
		fail(err)
		return
	}
	rt, ok := m.cfg.Runtimes[spec.Runtime]
	if !ok {
		fail(fmt.Errorf("this node has no %q runtime (it has %s)", spec.Runtime, strings.Join(slices.Sorted(maps.Keys(m.cfg.Runtimes)), ", ")))
		return
	}
	if e.ports == nil {
		ports, err := m.allocatePorts(spec.Ports)
		if err != nil {
			fail(err)
			return
		}
		e.ports = ports
	}
	e.dir = filepath.Join(m.cfg.Dir, spec.InstanceID)
	restarts := 0
	if e.sv != nil {
		restarts = e.sv.Status().Restarts
	}
	sv := NewSupervisor(SupervisorConfig{
		Spec: spec, Runtime: rt, HostPorts: e.ports, Dir: e.dir,
		Address: m.cfg.Host, ProbeHost: m.cfg.ProbeHost,
		Backoff: m.cfg.Backoff, StartupProbeInterval: m.cfg.StartupProbeInterval,
		Log: m.cfg.Log, OnChange: m.notify, Restarts: restarts,
		probe: m.cfg.probe,
	})
	e.sv = sv
	m.wg.Go(func() { sv.Run(m.ctx) })
}

func (m *Manager) staticStatus(e *entry, state, msg string) Status {
	return Status{
		InstanceID: e.spec.InstanceID, Service: e.spec.Service, Tenant: e.spec.Tenant,
		Version: e.spec.Version, Runtime: e.spec.Runtime,
		State: state, Message: msg, Address: m.cfg.Host, Since: time.Now(),
	}
}

// forget drops a stopped instance: its ports are free again and its
// directory is removed (the log shipper has had the instance's whole stop
// to read its logs).
func (m *Manager) forget(id string, e *entry) {
	delete(m.instances, id)
	for _, p := range e.ports {
		delete(m.usedPorts, p)
	}
	if e.dir != "" {
		if err := os.RemoveAll(e.dir); err != nil {
			m.cfg.Log.Warn("cannot remove instance directory", "instance", id, "err", err)
		}
	}
}

// allocatePorts picks a free host port per declared port: one the kernel
// hands out for port 0 that this manager has not handed out already.
// Another program may still take it before the instance binds it; the
// instance then fails and is restarted, on the same port.
func (m *Manager) allocatePorts(declared []model.Port) (map[string]int, error) {
	out := make(map[string]int, len(declared))
	for _, p := range declared {
		port, err := freePort(p.Protocol, m.usedPorts)
		if err != nil {
			for _, q := range out {
				delete(m.usedPorts, q)
			}
			return nil, fmt.Errorf("allocate a host port for port %q: %w", PortKey(p), err)
		}
		m.usedPorts[port] = true
		out[PortKey(p)] = port
	}
	return out, nil
}

func freePort(protocol string, used map[int]bool) (int, error) {
	for range 100 {
		var port int
		if protocol == "udp" {
			c, err := net.ListenPacket("udp", ":0")
			if err != nil {
				return 0, err
			}
			port = c.LocalAddr().(*net.UDPAddr).Port
			c.Close()
		} else {
			l, err := net.Listen("tcp", ":0")
			if err != nil {
				return 0, err
			}
			port = l.Addr().(*net.TCPAddr).Port
			l.Close()
		}
		if !used[port] {
			return port, nil
		}
	}
	return 0, errors.New("no free port after 100 tries")
}

// Statuses returns one status per known instance, sorted by id: running
// ones, and stopped or failed ones until a Sync no longer wants them.
func (m *Manager) Statuses() []Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Status, 0, len(m.instances))
	for _, id := range slices.Sorted(maps.Keys(m.instances)) {
		out = append(out, m.instances[id].status())
	}
	return out
}

// Cgroups returns the cgroups of the running process instances, for the
// container collector's SetInstances.
func (m *Manager) Cgroups() []container.Instance {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []container.Instance
	for _, id := range slices.Sorted(maps.Keys(m.instances)) {
		if e := m.instances[id]; e.sv != nil {
			if c := e.sv.Cgroup(); c != nil {
				out = append(out, *c)
			}
		}
	}
	return out
}

// LogSources returns the stdout and stderr files of every known instance
// (both runtimes write them), for the log shipper.
func (m *Manager) LogSources() []logs.Source {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []logs.Source
	for _, id := range slices.Sorted(maps.Keys(m.instances)) {
		e := m.instances[id]
		if e.dir == "" {
			continue
		}
		stdout, stderr := LogPaths(e.dir)
		out = append(out,
			logs.Source{Path: stdout, Service: e.spec.Service, Instance: id},
			logs.Source{Path: stderr, Service: e.spec.Service, Instance: id})
	}
	return out
}

// ScrapeTargets returns, sorted by instance id, one scrape target per
// instance whose spec has a metrics endpoint and which is running or
// ready: labelled with its service, instance id and tenant, at ProbeHost
// (where the agent reaches the host ports, as probes do) and the host
// port of the metrics port. Starting, stopping (draining included),
// stopped and failed instances have none, so the scraper stops scraping an
// instance as soon as it is asked to stop.
func (m *Manager) ScrapeTargets() []scrape.Target {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []scrape.Target
	for _, id := range slices.Sorted(maps.Keys(m.instances)) {
		e := m.instances[id]
		if e.sv == nil || e.spec.Metrics == nil {
			continue
		}
		if st := e.sv.Status().State; st != model.StateRunning && st != model.StateReady {
			continue
		}
		me := e.spec.Metrics.WithDefaults()
		p, ok := me.PortOf(e.spec.Ports)
		if !ok {
			continue // Spec.Validate refused it; it never ran
		}
		hp := e.ports[PortKey(p)]
		if hp < 1 {
			continue
		}
		out = append(out, scrape.Target{
			Service: e.spec.Service, Instance: id, Tenant: e.spec.Tenant,
			URL:      "http://" + net.JoinHostPort(m.cfg.ProbeHost, strconv.Itoa(hp)) + me.Path,
			Interval: me.Interval, Timeout: me.Timeout,
		})
	}
	return out
}

// Cleanup removes what an earlier agent left on the node and this manager
// does not know: containers and cgroups of the runtimes that implement
// Cleaner, and instance directories under Dir. Call it before the first
// Sync after the agent starts.
func (m *Manager) Cleanup(ctx context.Context) error {
	m.mu.Lock()
	known := make(map[string]bool, len(m.instances))
	for id := range m.instances {
		known[id] = true
	}
	m.mu.Unlock()
	keep := func(id string) bool { return known[id] }
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(m.cfg.Runtimes)) {
		if c, ok := m.cfg.Runtimes[name].(Cleaner); ok {
			if err := c.Cleanup(ctx, keep); err != nil {
				errs = append(errs, fmt.Errorf("clean up %s instances: %w", name, err))
			}
		}
	}
	dirs, err := os.ReadDir(m.cfg.Dir)
	if err != nil {
		errs = append(errs, fmt.Errorf("list instance directories: %w", err))
	}
	for _, d := range dirs {
		if !d.IsDir() || keep(d.Name()) {
			continue
		}
		dir := filepath.Join(m.cfg.Dir, d.Name())
		if _, err := os.Stat(filepath.Join(dir, markerFile)); err != nil {
			continue // not ours
		}
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("remove leftover instance directory: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Close stops every instance gracefully and waits; when ctx ends first it
// kills the rest. Sync does nothing afterwards.
func (m *Manager) Close(ctx context.Context) {
	m.mu.Lock()
	m.closed = true
	for _, e := range m.instances {
		if e.sv != nil {
			e.sv.Stop(time.Time{})
		}
	}
	m.mu.Unlock()
	done := make(chan struct{})
	go func() {
		m.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		m.cfg.Log.Warn("instances did not stop in time; killing them")
		m.cancel()
		<-done
	}
	m.cancel()
	<-m.notifyDone
}
