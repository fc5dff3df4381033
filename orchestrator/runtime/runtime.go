package runtime

import (
	"context"
	"path/filepath"
	"time"

	"opspilot/collector/container"
)

// Runtime starts instances of one kind (processes, containers).
type Runtime interface {
	// Name is the runtime's name in Spec.Runtime: model.RuntimeProcess or
	// model.RuntimeDocker.
	Name() string
	// Start launches the instance once, in dir (created if missing, with
	// spec.Files written into it); ports maps each declared port's key
	// (PortKey) to its host port. The returned Handle's Wait channel
	// closes when the instance has exited; restarting is the Supervisor's
	// job, never the runtime's.
	Start(ctx context.Context, spec Spec, ports map[string]int, dir string) (Handle, error)
}

// Handle is one started instance.
type Handle interface {
	// Wait is closed when the instance has exited and the runtime has
	// cleaned up after it.
	Wait() <-chan struct{}
	// ExitStatus describes how the instance ended, e.g. "exit status 1"
	// or "signal: killed"; empty while it runs.
	ExitStatus() string
	// Stop sends SIGTERM, waits up to grace for the instance to exit,
	// then sends SIGKILL, and returns once it has exited. It is
	// idempotent and returns nil when the instance had already exited.
	// When ctx ends first, it kills the instance and returns ctx's error.
	Stop(ctx context.Context, grace time.Duration) error
	// PID is the instance's main process id on the host; 0 when unknown.
	PID() int
	// Cgroup is the instance's cgroup for the container collector, or nil
	// when it has none of its own (no cgroup could be created, or a Docker
	// container, which the collector finds by itself).
	Cgroup() *container.Instance
}

// Execer is implemented by handles that run commands inside the instance
// (Docker containers); exec probes use it when present and run the command
// on the host, in the instance directory, otherwise.
type Execer interface {
	// Exec runs argv inside the instance and returns nil when it exits
	// with status 0.
	Exec(ctx context.Context, argv []string) error
}

// Cleaner is implemented by runtimes that can find instances a previous
// agent left behind (the agent's instances do not outlive it, but a
// crashed agent cannot clean up).
type Cleaner interface {
	// Cleanup kills and removes every instance of this runtime whose id
	// keep rejects.
	Cleanup(ctx context.Context, keep func(instanceID string) bool) error
}

// LogPaths returns the files a runtime appends an instance's stdout and
// stderr to, for the log shipper.
func LogPaths(dir string) (stdout, stderr string) {
	return filepath.Join(dir, StdoutFile), filepath.Join(dir, StderrFile)
}
