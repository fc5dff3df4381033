// Package runtime runs service instances on a node for the opspilot node
// agent: it starts them, keeps them running, probes them, stops them and
// reports their state.
//
// It owns three layers:
//
//   - Runtimes start one instance once and hand back a Handle: Process
//     (a child process in its own process group and cgroup, with CPU and
//     memory limits) and Docker (a container of the local engine, through
//     the Engine API). A runtime never restarts anything.
//   - A Supervisor keeps one instance running: it restarts it when it
//     exits or fails its liveness probe, tracks readiness, and stops it
//     with its drain delay and grace.
//   - A Manager keeps the node's instances matching the assignments the
//     agent gives Sync (level-triggered: a missed update never matters),
//     allocates host ports, and reports Statuses, Cgroups (for the
//     container collector), LogSources (for the log shipper) and
//     ScrapeTargets (the metrics endpoints of running instances, for the
//     scraper).
//
// # Restarts and backoff
//
// An instance that exits for any reason while it is not being stopped —
// a crash, kill -9, the OOM killer — or fails its liveness probe
// FailureThreshold times in a row (it is then stopped with its grace) is
// started again at once: the first restart waits for nothing. Only
// repeated crashes back off: the n-th crash in a row waits Backoff.Delay(n)
// = 0, 200ms, 400ms, 800ms … capped at 30s; an instance that ran 10s
// before it crashed starts the schedule over. Every restart increments
// Status.Restarts and sets LastExit. A start that fails (a missing binary
// or image) reports StateFailed and is retried on the same schedule.
//
// The schedule is a few lines here rather than github.com/cenkalti/backoff:
// it needs no jitter, and the "first restart is immediate" and reset rules
// are the point, stated and tested exactly.
//
// Readiness: an instance is Running until its readiness probe first
// succeeds, then Ready; FailureThreshold failures in a row make it Running
// again. Until the first success the probe runs every
// StartupProbeInterval (50ms), not every period, so a restarted instance
// is ready again within a few tens of milliseconds of listening. Without a
// readiness probe an instance is Ready once started.
//
// Liveness: the probe first runs one period after a start, and its
// failures only count once the run has passed a probe (the liveness probe
// itself, or the readiness probe): a slow start is not a hang, and killing
// it would only start it again, slowly. An instance that never gets that
// far stays not ready, which a rollout's progress deadline catches.
//
// Stop: Stopping at once, the instance keeps running until the
// assignment's StopAt (its drain), then SIGTERM, SIGKILL after StopGrace,
// Stopped.
//
// Everything time-driven runs on the time package, so tests drive it with
// testing/synctest and a fake runtime; the real runtimes are tested with
// real processes and containers.
//
// # Processes
//
// A process starts in its instance directory (Dir/INSTANCE_ID, with
// Spec.Files written into it) with a clean environment: PATH, HOME (the
// instance directory), Spec.Env, then PORT (the first declared port's host
// port), PORT_<NAME> per declared port, and OPSPILOT_INSTANCE, _SERVICE,
// _TENANT, _VERSION, _NODE, _DATACENTER, _DIR. $VARS of that environment
// are expanded in the command. Stdout and stderr are appended to
// stdout.log and stderr.log there.
//
// Instances do not outlive the agent: on Linux each gets Pdeathsig
// SIGTERM, and Manager.Close stops them gracefully. Re-adopting running
// processes after an agent restart would need their state persisted and
// their exit status, which only a parent can reap, recovered; starting
// them again is simpler and as fast. What a crashed agent leaves (a
// container, a cgroup with a child that ignored SIGTERM) is removed by
// Manager.Cleanup when the agent starts again. (Pdeathsig fires when the
// OS thread that forked the child ends; Go ends threads only under
// goroutines that exit while locked to them, which this package never
// does, so at worst another package's locked goroutine causes one
// restart.)
//
// Stop signals the process group, so children die with the instance;
// whatever is left in the group or the cgroup after the main process exits
// is killed, so a restarted instance never competes with its predecessor's
// children for its port.
//
// # Cgroups
//
// Each process instance gets the cgroup /opspilot/INSTANCE_ID (the parent
// is configurable). On cgroup v1 it is created under the cpu
// (cpu.cfs_quota_us over cpu.cfs_period_us), memory
// (memory.limit_in_bytes) and cpuacct (so the collector reads CPU usage)
// hierarchies, and the pid is written to cgroup.procs right after the
// start. On v2 the limits are cpu.max and memory.max, and the process is
// started inside the cgroup (SysProcAttr.UseCgroupFD, clone3 with
// CLONE_INTO_CGROUP; kernels before 5.7 fall back to moving it). The
// cgroup is removed after the instance exits. When no cgroup can be
// created (not root, a read-only cgroupfs) the instance runs without
// limits and the runtime logs that once.
//
// The cgroup code is the few hundred lines it needs (mkdir, write a
// limit, write a pid, list and kill pids, rmdir) rather than
// github.com/containerd/cgroups: adding that module to go.mod forces
// go.etcd.io/etcd, which the store and the embedded control plane are
// built on, down to an older release.
//
// # Docker
//
// A container is named after the instance (the container collector
// reports that name as the instance label) and labelled opspilot.service,
// opspilot.tenant, opspilot.instance and opspilot.version. A leftover
// container of the same name is replaced only when it carries the
// instance's opspilot.instance label; anything else is an error. Its image must
// already be on the node: opspilot uses no registry, and Start says so
// when the image is missing. Each declared port is published on 0.0.0.0
// at its host port; inside, PORT and PORT_<NAME> carry the declared
// (container) port numbers. The instance directory is mounted read-only at
// /opspilot, and the container's output is copied to the same
// stdout.log/stderr.log files a process writes. Limits become NanoCPUs and
// Memory. The engine's restart policy is off (the Supervisor restarts),
// and the container is removed once it exited. Exec probes of containers
// run inside them through the exec API.
//
// # Probes
//
// Probe runs one check: an HTTP GET (2xx and 3xx succeed; redirects are not
// followed), a TCP connect, or a command (exit 0). A probe's port is a
// declared port's number (0: the first declared port), mapped to the
// instance's host port and reached at ProbeHost (127.0.0.1).
//
// # Dependencies
//
// It may import opspilot/orchestrator/model, opspilot/collector/container
// (the Instance type the collector takes), opspilot/collector/logs (the
// Source type the shipper takes), opspilot/collector/scrape (the Target
// type the scraper takes), Docker's Go client
// (github.com/moby/moby/client and its api types, with
// github.com/containerd/errdefs to recognise its not-found errors),
// golang.org/x/sys/unix and the standard library. It must not import the
// store, the scheduler or any controller: the agent wires it to them.
package runtime
