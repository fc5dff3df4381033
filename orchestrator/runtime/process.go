//go:build unix

package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"opspilot/collector/container"
	"opspilot/orchestrator/model"
)

// ProcessConfig configures the Process runtime. Zero fields mean their
// defaults.
type ProcessConfig struct {
	// CgroupRoot is where the cgroup filesystem is mounted (default
	// "/sys/fs/cgroup"); it must match the container collector's.
	CgroupRoot string
	// CgroupParent is the instances' parent cgroup, relative to the root
	// of every hierarchy (default "opspilot"): an instance's cgroup is
	// /CgroupParent/InstanceID. Cleanup removes what this parent holds, so
	// agents sharing a host need their own (opspilot/<owner>; see
	// cmd/opspilot), or they stop each other's instances.
	CgroupParent string
	// Log receives the one-time warnings about missing cgroups or limits
	// (default slog.Default()).
	Log *slog.Logger
}

func (c ProcessConfig) withDefaults() ProcessConfig {
	if c.CgroupRoot == "" {
		c.CgroupRoot = "/sys/fs/cgroup"
	}
	if c.CgroupParent == "" {
		c.CgroupParent = "opspilot"
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	return c
}

// Process runs instances as child processes of the agent, each in its own
// process group and cgroup. It is safe for concurrent use.
type Process struct {
	cfg     ProcessConfig
	cgroups *cgroupManager

	// Each problem is logged once per runtime, not once per start: a node
	// without writable cgroups would otherwise log at every restart.
	noCgroupOnce, noLimitsOnce, noMoveOnce sync.Once
}

// NewProcess returns the process runtime. It detects the cgroup version
// (v2 when CgroupRoot/cgroup.controllers exists).
func NewProcess(cfg ProcessConfig) *Process {
	cfg = cfg.withDefaults()
	return &Process{cfg: cfg, cgroups: newCgroupManager(cfg.CgroupRoot, cfg.CgroupParent)}
}

// Name returns model.RuntimeProcess.
func (p *Process) Name() string { return model.RuntimeProcess }

// Start prepares dir, then starts spec.Command there with the instance's
// environment, stdout and stderr appended to dir/stdout.log and
// dir/stderr.log, in a new process group and in the instance's cgroup with
// its limits. Without usable cgroups it starts the process anyway, without
// limits, and logs that once.
func (p *Process) Start(ctx context.Context, spec Spec, ports map[string]int, dir string) (Handle, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if spec.Runtime != model.RuntimeProcess {
		return nil, fmt.Errorf("instance %q has runtime %q, not %q", spec.InstanceID, spec.Runtime, model.RuntimeProcess)
	}
	if err := checkHostPorts(spec, ports); err != nil {
		return nil, err
	}
	if err := prepareDir(dir, spec.Files); err != nil {
		return nil, fmt.Errorf("start instance %q: %w", spec.InstanceID, err)
	}
	env := spec.environ(dir, dir, func(pt model.Port) int { return ports[PortKey(pt)] })
	argv := expandArgs(spec.Command, env)
	path, err := lookPath(argv[0], env["PATH"], dir)
	if err != nil {
		return nil, fmt.Errorf("start instance %q: %w", spec.InstanceID, err)
	}
	stdoutPath, stderrPath := LogPaths(dir)
	stdout, err := openLog(stdoutPath)
	if err != nil {
		return nil, fmt.Errorf("start instance %q: %w", spec.InstanceID, err)
	}
	stderr, err := openLog(stderrPath)
	if err != nil {
		stdout.Close()
		return nil, fmt.Errorf("start instance %q: %w", spec.InstanceID, err)
	}
	closeLogs := func() { stdout.Close(); stderr.Close() }

	cg := p.cgroup(spec)
	fd := -1
	if cg != nil {
		if fd, err = cg.openFD(); err != nil {
			p.cfg.Log.Warn("cannot open the instance's cgroup; starting outside it and moving the process in", "instance", spec.InstanceID, "err", err)
		}
	}
	newCmd := func(fd int) *exec.Cmd {
		return &exec.Cmd{
			Path: path, Args: argv, Env: envList(env), Dir: dir,
			Stdout: stdout, Stderr: stderr,
			SysProcAttr: sysProcAttr(fd),
		}
	}
	cmd := newCmd(fd)
	err = cmd.Start()
	startedInside := fd >= 0 && err == nil
	if err != nil && fd >= 0 && cloneIntoCgroupUnsupported(err) {
		// Kernels before 5.7 cannot start a process inside a cgroup
		// (CLONE_INTO_CGROUP): start it outside and move it in.
		cmd = newCmd(-1)
		err = cmd.Start()
	}
	if fd >= 0 {
		_ = syscall.Close(fd)
	}
	if err != nil {
		closeLogs()
		if cg != nil {
			_ = cg.remove()
		}
		return nil, fmt.Errorf("start instance %q: %w", spec.InstanceID, err)
	}
	pid := cmd.Process.Pid
	if cg != nil && !startedInside {
		// Between start and this write the process runs outside its
		// cgroup for a moment; children it forks in that window stay
		// outside (but in its process group, which Stop kills).
		if err := cg.addPID(pid); err != nil {
			p.noMoveOnce.Do(func() {
				p.cfg.Log.Warn("cannot move instances into their cgroups; they run without CPU and memory limits", "instance", spec.InstanceID, "err", err)
			})
		}
	}
	h := &processHandle{
		pid:      pid,
		cmd:      cmd,
		cg:       cg,
		log:      p.cfg.Log,
		instance: spec.InstanceID,
		close:    closeLogs,
		done:     make(chan struct{}),
	}
	if cg != nil {
		h.collect = &container.Instance{Service: spec.Service, Instance: spec.InstanceID, Tenant: spec.Tenant, CgroupPath: cg.rel}
	}
	go h.wait()
	return h, nil
}

// cgroup creates the instance's cgroup with its limits, or returns nil
// (and warns once) when cgroups cannot be used on this node.
func (p *Process) cgroup(spec Spec) *cgroup {
	cg, err := p.cgroups.create(spec.InstanceID)
	if err != nil {
		p.noCgroupOnce.Do(func() {
			p.cfg.Log.Warn("cannot create cgroups (the agent needs root and a writable cgroup filesystem); instances run without CPU and memory limits and the container collector cannot see them",
				"root", p.cfg.CgroupRoot, "version", p.cgroups.version(), "err", err)
		})
		return nil
	}
	if err := cg.setLimits(spec.Limits); err != nil {
		p.noLimitsOnce.Do(func() {
			p.cfg.Log.Warn("cannot apply CPU or memory limits; instances run with what could be applied", "instance", spec.InstanceID, "limits", spec.Limits.String(), "err", err)
		})
	}
	return cg
}

// Cleanup kills the processes in, and removes, every instance cgroup under
// CgroupParent whose instance keep rejects: what a crashed agent left.
// Without cgroups there is nothing to find (the processes got SIGTERM when
// the agent died).
func (p *Process) Cleanup(ctx context.Context, keep func(instanceID string) bool) error {
	var errs []error
	for _, id := range p.cgroups.leftovers() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if keep(id) {
			continue
		}
		cg := p.cgroups.existing(id)
		cg.killAll()
		if err := cg.remove(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// cloneIntoCgroupUnsupported reports whether starting inside a cgroup
// failed because the kernel or the cgroup refused clone3's
// CLONE_INTO_CGROUP, rather than because of the command.
func cloneIntoCgroupUnsupported(err error) bool {
	for _, e := range [...]syscall.Errno{syscall.ENOSYS, syscall.EINVAL, syscall.EBUSY, syscall.EPERM, syscall.EOPNOTSUPP} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// processHandle is a started process.
type processHandle struct {
	pid      int
	cmd      *exec.Cmd
	cg       *cgroup // nil without cgroups
	collect  *container.Instance
	log      *slog.Logger
	instance string
	close    func()
	done     chan struct{}

	mu   sync.Mutex
	exit string
}

// wait reaps the process, kills whatever it left (its process group and
// cgroup), removes the cgroup and closes the log files.
func (h *processHandle) wait() {
	err := h.cmd.Wait()
	status := ""
	if st := h.cmd.ProcessState; st != nil {
		status = st.String()
	} else if err != nil {
		status = err.Error()
	}
	h.mu.Lock()
	h.exit = status
	h.mu.Unlock()
	h.kill()
	if h.cg != nil {
		if err := h.cg.remove(); err != nil {
			h.log.Warn("cannot remove the cgroup of an exited instance; Cleanup will retry when the agent restarts", "instance", h.instance, "err", err)
		}
	}
	h.close()
	close(h.done)
}

func (h *processHandle) kill() {
	if err := syscall.Kill(-h.pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		h.log.Warn("cannot kill instance", "instance", h.instance, "pid", h.pid, "err", err)
	}
	if h.cg != nil {
		h.cg.killAll()
	}
}

func (h *processHandle) Wait() <-chan struct{} { return h.done }

func (h *processHandle) ExitStatus() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.exit
}

func (h *processHandle) PID() int { return h.pid }

func (h *processHandle) Cgroup() *container.Instance {
	if h.collect == nil {
		return nil
	}
	c := *h.collect
	return &c
}

// Stop signals the whole process group: SIGTERM, then SIGKILL after grace
// (at once when grace is zero).
func (h *processHandle) Stop(ctx context.Context, grace time.Duration) error {
	select {
	case <-h.done:
		return nil
	default:
	}
	if grace > 0 {
		if err := syscall.Kill(-h.pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("stop instance %q: %w", h.instance, err)
		}
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-h.done:
			return nil
		case <-t.C:
		case <-ctx.Done():
			h.kill()
			return ctx.Err()
		}
	}
	h.kill()
	select {
	case <-h.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
