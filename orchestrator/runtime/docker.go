package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	containertypes "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"opspilot/collector/container"
	"opspilot/orchestrator/model"
)

// Labels on every container the Docker runtime creates. The container
// collector reads LabelService and LabelTenant; Cleanup finds containers
// by LabelInstance.
const (
	LabelService  = container.LabelService
	LabelTenant   = container.LabelTenant
	LabelInstance = "opspilot.instance"
	// LabelOwner names the agent that made the container (DockerConfig.Owner).
	LabelOwner   = "opspilot.owner"
	LabelVersion = "opspilot.version"
)

// ContainerDir is where a container finds its instance directory (with
// Spec.Files), mounted read-only.
const ContainerDir = "/opspilot"

// ErrNoEngine is wrapped by NewDocker's error when no Docker engine
// answers.
var ErrNoEngine = errors.New("no Docker engine")

// DockerConfig configures the Docker runtime. Zero fields mean their
// defaults.
type DockerConfig struct {
	// Host is the engine's address, e.g. "unix:///var/run/docker.sock"
	// (default: DOCKER_HOST, else the platform's default socket).
	Host string
	// Log receives warnings about containers that could not be removed or
	// whose logs could not be copied (default slog.Default()).
	Log *slog.Logger
	// Owner, when set, labels this agent's containers (LabelOwner), and
	// Cleanup removes only containers with that label: agents sharing an
	// engine then leave each other's containers alone.
	Owner string
}

// Docker runs instances as containers of the local Docker engine. Images
// must already be on the node: opspilot uses no registry. It is safe for
// concurrent use.
type Docker struct {
	cli   *client.Client
	log   *slog.Logger
	owner string
}

// NewDocker connects to the engine and checks that it answers. When it
// does not, the error wraps ErrNoEngine and the client's connection error
// (client.IsErrConnectionFailed reports true for it).
func NewDocker(ctx context.Context, cfg DockerConfig) (*Docker, error) {
	opts := []client.Opt{client.FromEnv}
	if cfg.Host != "" {
		opts = append(opts, client.WithHost(cfg.Host))
	}
	cli, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker client for %q: %w (set DOCKER_HOST or DockerConfig.Host to a valid address)", cfg.Host, err)
	}
	if _, err := cli.Ping(ctx, client.PingOptions{}); err != nil {
		cli.Close()
		if client.IsErrConnectionFailed(err) {
			return nil, fmt.Errorf("%w at %s: start the Docker engine or point DOCKER_HOST at one; without it this node runs only process instances: %w", ErrNoEngine, cli.DaemonHost(), err)
		}
		return nil, fmt.Errorf("ping Docker engine at %s: %w", cli.DaemonHost(), err)
	}
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	return &Docker{cli: cli, log: log, owner: cfg.Owner}, nil
}

// Client returns the engine client (for tests and the agent's own checks).
func (d *Docker) Client() *client.Client { return d.cli }

// Close releases the client's connections. Running containers are not
// touched.
func (d *Docker) Close() error { return d.cli.Close() }

// Name returns model.RuntimeDocker.
func (d *Docker) Name() string { return model.RuntimeDocker }

// Start creates and starts a container named spec.InstanceID from
// spec.Image, replacing a container of that name a previous run left. Its
// environment carries the declared (container) port numbers in PORT and
// PORT_<NAME>, each published on 0.0.0.0 at its host port; dir, with
// spec.Files, is mounted read-only at ContainerDir; stdout and stderr are
// copied to dir/stdout.log and dir/stderr.log. The container is removed
// once it has exited.
func (d *Docker) Start(ctx context.Context, spec Spec, ports map[string]int, dir string) (Handle, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if spec.Runtime != model.RuntimeDocker {
		return nil, fmt.Errorf("instance %q has runtime %q, not %q", spec.InstanceID, spec.Runtime, model.RuntimeDocker)
	}
	if err := checkHostPorts(spec, ports); err != nil {
		return nil, err
	}
	id := spec.InstanceID
	if _, err := d.cli.ImageInspect(ctx, spec.Image); err != nil {
		if cerrdefs.IsNotFound(err) {
			return nil, fmt.Errorf("start instance %q: image %q is not on this node; opspilot uses no registry, so build it here (docker build -t %s .) or load it (docker load) before the service is placed on this node", id, spec.Image, spec.Image)
		}
		return nil, fmt.Errorf("start instance %q: inspect image %q: %w", id, spec.Image, err)
	}
	if err := prepareDir(dir, spec.Files); err != nil {
		return nil, fmt.Errorf("start instance %q: %w", id, err)
	}
	// A container of this name is a previous run's (an agent restart, a
	// failed removal): replace it, but never one opspilot did not make.
	if old, err := d.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{}); err == nil {
		if old.Container.Config == nil || old.Container.Config.Labels[LabelInstance] != id {
			return nil, fmt.Errorf("start instance %q: a container of that name exists and was not made by opspilot (no %s=%s label); remove or rename it", id, LabelInstance, id)
		}
		if _, err := d.cli.ContainerRemove(ctx, old.Container.ID, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			return nil, fmt.Errorf("start instance %q: remove the previous container: %w", id, err)
		}
	} else if !cerrdefs.IsNotFound(err) {
		return nil, fmt.Errorf("start instance %q: inspect container: %w", id, err)
	}

	env := spec.environ(ContainerDir, "", func(p model.Port) int { return p.Port })
	exposed := network.PortSet{}
	bindings := network.PortMap{}
	for _, p := range spec.Ports {
		proto := network.TCP
		if p.Protocol == "udp" {
			proto = network.UDP
		}
		cp, _ := network.PortFrom(uint16(p.Port), proto)
		exposed[cp] = struct{}{}
		bindings[cp] = append(bindings[cp], network.PortBinding{
			HostIP:   netip.IPv4Unspecified(),
			HostPort: strconv.Itoa(ports[PortKey(p)]),
		})
	}
	labels := map[string]string{
		LabelService:  spec.Service,
		LabelTenant:   spec.Tenant,
		LabelInstance: id,
		LabelOwner:    d.owner,
		LabelVersion:  spec.Version,
	}
	stopTimeout := int(math.Ceil(spec.stopGrace().Seconds()))
	cfg := &containertypes.Config{
		Image:        spec.Image,
		Env:          envList(env),
		Labels:       labels,
		ExposedPorts: exposed,
		StopTimeout:  &stopTimeout,
	}
	if len(spec.Command) > 0 {
		cfg.Cmd = expandArgs(spec.Command, env)
	}
	host := &containertypes.HostConfig{
		PortBindings: bindings,
		Resources: containertypes.Resources{
			NanoCPUs: int64(spec.Limits.MilliCPU) * 1_000_000,
			Memory:   int64(spec.Limits.MemoryBytes),
		},
		Mounts: []mount.Mount{{Type: mount.TypeBind, Source: dir, Target: ContainerDir, ReadOnly: true}},
		// The Supervisor restarts; the engine must not.
		RestartPolicy: containertypes.RestartPolicy{Name: containertypes.RestartPolicyDisabled},
	}
	created, err := d.cli.ContainerCreate(ctx, client.ContainerCreateOptions{Name: id, Config: cfg, HostConfig: host})
	if err != nil {
		return nil, fmt.Errorf("start instance %q: create container: %w", id, err)
	}
	h := &dockerHandle{
		d: d, id: id, containerID: created.ID, dir: dir,
		done: make(chan struct{}),
	}
	remove := func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_, _ = d.cli.ContainerRemove(rctx, created.ID, client.ContainerRemoveOptions{Force: true})
	}
	// Wait for the next exit before starting, so even an instant exit is
	// seen. The wait outlives ctx: it ends when the container does.
	waitCtx, cancelWait := context.WithCancel(context.Background())
	wait := d.cli.ContainerWait(waitCtx, created.ID, client.ContainerWaitOptions{Condition: containertypes.WaitConditionNextExit})
	select {
	case err := <-wait.Error:
		cancelWait()
		remove()
		return nil, fmt.Errorf("start instance %q: wait for container: %w", id, err)
	default:
	}
	if _, err := d.cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		cancelWait()
		remove()
		return nil, fmt.Errorf("start instance %q: start container: %w", id, err)
	}
	if in, err := d.cli.ContainerInspect(ctx, created.ID, client.ContainerInspectOptions{}); err == nil && in.Container.State != nil {
		h.pid = in.Container.State.Pid
	}
	logsDone := make(chan struct{})
	go func() {
		defer close(logsDone)
		h.copyLogs(waitCtx)
	}()
	go h.watch(waitCtx, cancelWait, wait, logsDone)
	return h, nil
}

// Cleanup removes every container labelled opspilot.instance whose
// instance keep rejects: leftovers of an agent that did not stop its
// instances.
func (d *Docker) Cleanup(ctx context.Context, keep func(instanceID string) bool) error {
	filter := make(client.Filters).Add("label", LabelInstance)
	if d.owner != "" {
		filter = filter.Add("label", LabelOwner+"="+d.owner)
	}
	list, err := d.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: filter})
	if err != nil {
		return fmt.Errorf("list opspilot containers: %w", err)
	}
	var errs []error
	for _, c := range list.Items {
		if keep(c.Labels[LabelInstance]) {
			continue
		}
		if _, err := d.cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove leftover container %s (instance %q): %w", c.ID[:min(12, len(c.ID))], c.Labels[LabelInstance], err))
		}
	}
	return errors.Join(errs...)
}

// dockerHandle is a started container.
type dockerHandle struct {
	d           *Docker
	id          string // instance id, the container's name
	containerID string
	dir         string
	pid         int
	done        chan struct{}

	mu   sync.Mutex
	exit string
}

// watch waits for the container to exit, records how, and removes it. A
// broken wait (the engine restarting) is retried while the container runs.
func (h *dockerHandle) watch(ctx context.Context, cancel context.CancelFunc, wait client.ContainerWaitResult, logsDone <-chan struct{}) {
	defer close(h.done)
	defer cancel()
	status := ""
	for status == "" {
		select {
		case r := <-wait.Result:
			status = h.describeExit(ctx, int(r.StatusCode))
			if r.Error != nil && r.Error.Message != "" {
				status += ": " + r.Error.Message
			}
		case err := <-wait.Error:
			in, ierr := h.d.cli.ContainerInspect(ctx, h.containerID, client.ContainerInspectOptions{})
			switch {
			case ierr != nil && cerrdefs.IsNotFound(ierr):
				status = "container removed"
			case ierr == nil && in.Container.State != nil && !in.Container.State.Running:
				status = h.describeExit(ctx, in.Container.State.ExitCode)
			default:
				h.d.log.Warn("lost the wait on a container; waiting again", "instance", h.id, "err", err)
				time.Sleep(500 * time.Millisecond)
				wait = h.d.cli.ContainerWait(ctx, h.containerID, client.ContainerWaitOptions{Condition: containertypes.WaitConditionNotRunning})
			}
		}
	}
	h.mu.Lock()
	h.exit = status
	h.mu.Unlock()
	// The log stream ends with the container; give it a moment to drain.
	select {
	case <-logsDone:
	case <-time.After(2 * time.Second):
	}
	rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer rcancel()
	if _, err := h.d.cli.ContainerRemove(rctx, h.containerID, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		h.d.log.Warn("cannot remove an exited container; Cleanup will when the agent restarts", "instance", h.id, "err", err)
	}
	h.d.log.Debug("container exited and was removed", "instance", h.id, "status", status)
}

// describeExit says how the container ended, in the words of the process
// runtime where it can: "exit status 1", "signal: killed" (exit code
// 128+N is the engine's way of saying signal N), "OOM killed".
func (h *dockerHandle) describeExit(ctx context.Context, code int) string {
	if in, err := h.d.cli.ContainerInspect(ctx, h.containerID, client.ContainerInspectOptions{}); err == nil && in.Container.State != nil && in.Container.State.OOMKilled {
		return "OOM killed (exit status " + strconv.Itoa(code) + ")"
	}
	if code > 128 && code < 128+65 {
		return "signal: " + syscall.Signal(code-128).String()
	}
	return "exit status " + strconv.Itoa(code)
}

// copyLogs appends the container's stdout and stderr to the instance's log
// files until the container exits.
func (h *dockerHandle) copyLogs(ctx context.Context) {
	outPath, errPath := LogPaths(h.dir)
	stdout, err := openLog(outPath)
	if err != nil {
		h.d.log.Warn("cannot copy container logs", "instance", h.id, "err", err)
		return
	}
	defer stdout.Close()
	stderr, err := openLog(errPath)
	if err != nil {
		h.d.log.Warn("cannot copy container logs", "instance", h.id, "err", err)
		return
	}
	defer stderr.Close()
	rc, err := h.d.cli.ContainerLogs(ctx, h.containerID, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Follow: true})
	if err != nil {
		if ctx.Err() == nil {
			h.d.log.Warn("cannot follow container logs", "instance", h.id, "err", err)
		}
		return
	}
	defer rc.Close()
	if _, err := stdcopy.StdCopy(stdout, stderr, rc); err != nil && ctx.Err() == nil && !errors.Is(err, os.ErrClosed) {
		h.d.log.Warn("container log stream broke", "instance", h.id, "err", err)
	}
}

func (h *dockerHandle) Wait() <-chan struct{} { return h.done }

func (h *dockerHandle) ExitStatus() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.exit
}

func (h *dockerHandle) PID() int { return h.pid }

// Cgroup is nil: the container collector finds Docker containers itself.
func (h *dockerHandle) Cgroup() *container.Instance { return nil }

// Stop asks the engine to stop the container (its stop signal, SIGTERM by
// default, then SIGKILL after grace rounded up to whole seconds, the
// engine's unit) and waits until it has exited and been removed.
func (h *dockerHandle) Stop(ctx context.Context, grace time.Duration) error {
	select {
	case <-h.done:
		return nil
	default:
	}
	timeout := int(math.Ceil(grace.Seconds()))
	if _, err := h.d.cli.ContainerStop(ctx, h.containerID, client.ContainerStopOptions{Timeout: &timeout}); err != nil && !cerrdefs.IsNotFound(err) {
		if ctx.Err() != nil {
			h.forceRemove()
			return ctx.Err()
		}
		return fmt.Errorf("stop instance %q: %w", h.id, err)
	}
	select {
	case <-h.done:
		return nil
	case <-ctx.Done():
		h.forceRemove()
		return ctx.Err()
	}
}

// forceRemove kills and removes the container when a Stop ran out of time.
func (h *dockerHandle) forceRemove() {
	rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = h.d.cli.ContainerRemove(rctx, h.containerID, client.ContainerRemoveOptions{Force: true})
}

// Exec runs argv inside the container (an exec probe) and returns nil when
// it exits 0.
func (h *dockerHandle) Exec(ctx context.Context, argv []string) error {
	ex, err := h.d.cli.ExecCreate(ctx, h.containerID, client.ExecCreateOptions{Cmd: argv})
	if err != nil {
		return fmt.Errorf("create exec: %w", err)
	}
	if _, err := h.d.cli.ExecStart(ctx, ex.ID, client.ExecStartOptions{Detach: true}); err != nil {
		return fmt.Errorf("start exec: %w", err)
	}
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		in, err := h.d.cli.ExecInspect(ctx, ex.ID, client.ExecInspectOptions{})
		if err != nil {
			return fmt.Errorf("inspect exec: %w", err)
		}
		if !in.Running {
			if in.ExitCode != 0 {
				return fmt.Errorf("exit status %d", in.ExitCode)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
