package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"opspilot/collector/container"
	"opspilot/orchestrator/model"
)

// Backoff is the restart schedule of a crashing instance: the first
// restart after a crash is immediate, each further crash in a row waits
// twice as long as the one before, starting at Initial and capped at Max.
// An instance that stayed up ResetAfter before it crashed starts over.
// There is no jitter: instances crash for their own reasons, and a fixed
// schedule is one tests can state exactly.
type Backoff struct {
	// Initial is the wait before the second restart in a row (default
	// 200ms).
	Initial time.Duration
	// Max caps the wait (default 30s).
	Max time.Duration
	// ResetAfter is how long an instance must run for its next crash to
	// count as the first again (default 10s).
	ResetAfter time.Duration
}

// Backoff defaults.
const (
	DefaultBackoffInitial    = 200 * time.Millisecond
	DefaultBackoffMax        = 30 * time.Second
	DefaultBackoffResetAfter = 10 * time.Second
)

func (b Backoff) withDefaults() Backoff {
	if b.Initial <= 0 {
		b.Initial = DefaultBackoffInitial
	}
	if b.Max <= 0 {
		b.Max = DefaultBackoffMax
	}
	if b.ResetAfter <= 0 {
		b.ResetAfter = DefaultBackoffResetAfter
	}
	return b
}

// Delay is the wait before restarting after the n-th crash in a row
// (n ≥ 1): 0, Initial, 2×Initial, 4×Initial, … at most Max.
func (b Backoff) Delay(n int) time.Duration {
	b = b.withDefaults()
	if n <= 1 {
		return 0
	}
	d := b.Initial
	for i := 2; i < n && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}

// DefaultStartupProbeInterval is how often a readiness probe runs until
// the instance is first ready.
const DefaultStartupProbeInterval = 50 * time.Millisecond

// Status is what the agent reports about one instance.
type Status struct {
	InstanceID string
	Service    string
	Tenant     string
	Version    string
	Runtime    string
	// State is one of model.StateStarting, StateRunning, StateReady,
	// StateStopping, StateStopped and StateFailed (a start failed; it is
	// retried with backoff).
	State string
	// Restarts counts the times the instance exited or was killed for
	// failing its liveness probe and was started again.
	Restarts int
	// LastExit is how the instance last ended ("exit status 1",
	// "signal: killed").
	LastExit string
	// Message explains the state: a start error, a probe failure, the
	// pending restart.
	Message string
	// Ports maps each declared port's key (PortKey) to its host port;
	// Address is where the host ports are reached.
	Ports   map[string]int
	Address string
	// PID is the main process's id on the host while it runs.
	PID int
	// Since is when State last changed; ReadySince when the instance last
	// became ready.
	Since      time.Time
	ReadySince time.Time
}

// SupervisorConfig configures a Supervisor. The Manager fills it; zero
// fields mean their defaults.
type SupervisorConfig struct {
	Spec    Spec
	Runtime Runtime
	// HostPorts maps each declared port's key to its host port; they stay
	// the same across restarts.
	HostPorts map[string]int
	// Dir is the instance directory.
	Dir string
	// Address is reported in Status.Address.
	Address string
	// ProbeHost is where probes reach the host ports (default
	// "127.0.0.1").
	ProbeHost string
	Backoff   Backoff
	// StartupProbeInterval is the readiness probe's period until the
	// instance is first ready after a start (default
	// DefaultStartupProbeInterval; never longer than the probe's period).
	StartupProbeInterval time.Duration
	// Log defaults to slog.Default().
	Log *slog.Logger
	// OnChange is called after every status change; it must not block.
	OnChange func()
	// Restarts is the count to continue from (an instance started again
	// after it was stopped).
	Restarts int

	// probe replaces Probe in tests.
	probe func(context.Context, model.Probe, ProbeTarget) error
}

// Supervisor keeps one instance running: it starts it, restarts it when it
// exits or fails its liveness probe (immediately the first time, then
// with Backoff), tracks readiness and stops it when asked.
type Supervisor struct {
	cfg  SupervisorConfig
	log  *slog.Logger
	env  []string // the instance's environment, for host exec probes
	done chan struct{}

	stopCh   chan struct{} // closed by the first Stop
	stopOnce sync.Once
	wake     chan struct{} // a Stop moved the stop time earlier

	mu     sync.Mutex
	st     supState
	stopAt time.Time
	handle Handle // the running instance, nil between runs
	gen    int    // counts starts; stale probe results are dropped
	// readyGen is the run (gen) whose readiness probe last succeeded: it
	// arms that run's liveness probe.
	readyGen int
}

// supState is the changing part of Status; it is comparable, so a change
// is detected with !=.
type supState struct {
	State             string
	Restarts          int
	LastExit, Message string
	PID               int
	Since, ReadySince time.Time
}

// NewSupervisor returns a supervisor for cfg.Spec; Run starts it.
func NewSupervisor(cfg SupervisorConfig) *Supervisor {
	cfg.Backoff = cfg.Backoff.withDefaults()
	if cfg.ProbeHost == "" {
		cfg.ProbeHost = "127.0.0.1"
	}
	if cfg.StartupProbeInterval <= 0 {
		cfg.StartupProbeInterval = DefaultStartupProbeInterval
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.probe == nil {
		cfg.probe = Probe
	}
	s := &Supervisor{
		cfg:    cfg,
		log:    cfg.Log.With("instance", cfg.Spec.InstanceID, "service", cfg.Spec.Service),
		done:   make(chan struct{}),
		stopCh: make(chan struct{}),
		wake:   make(chan struct{}, 1),
		st:     supState{State: model.StatePending, Restarts: cfg.Restarts, Since: time.Now()},
	}
	s.env = envList(cfg.Spec.environ(cfg.Dir, cfg.Dir, func(p model.Port) int { return cfg.HostPorts[PortKey(p)] }))
	return s
}

// Status returns the instance's current status.
func (s *Supervisor) Status() Status {
	s.mu.Lock()
	st := s.st
	s.mu.Unlock()
	sp := &s.cfg.Spec
	return Status{
		InstanceID: sp.InstanceID, Service: sp.Service, Tenant: sp.Tenant, Version: sp.Version, Runtime: sp.Runtime,
		State: st.State, Restarts: st.Restarts, LastExit: st.LastExit, Message: st.Message,
		Ports: maps.Clone(s.cfg.HostPorts), Address: s.cfg.Address, PID: st.PID,
		Since: st.Since, ReadySince: st.ReadySince,
	}
}

// Cgroup returns the running instance's cgroup for the container
// collector, or nil.
func (s *Supervisor) Cgroup() *container.Instance {
	s.mu.Lock()
	h, restarts := s.handle, s.st.Restarts
	s.mu.Unlock()
	if h == nil {
		return nil
	}
	c := h.Cgroup()
	if c != nil {
		c.Restarts = restarts
	}
	return c
}

// Done is closed when Run has returned: the instance is stopped for good.
func (s *Supervisor) Done() <-chan struct{} { return s.done }

// Stop asks the supervisor to stop the instance: it reports
// model.StateStopping at once, keeps the instance running until at (its
// drain: gateways stop sending first; zero means now), then sends SIGTERM,
// and SIGKILL after the spec's StopGrace. A later Stop may only move the
// time earlier.
func (s *Supervisor) Stop(at time.Time) {
	if at.IsZero() {
		at = time.Now()
	}
	s.mu.Lock()
	first := true
	select {
	case <-s.stopCh:
		first = false
	default:
	}
	if first || at.Before(s.stopAt) {
		s.stopAt = at
	}
	s.mu.Unlock()
	s.stopOnce.Do(func() { close(s.stopCh) })
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Supervisor) stopTime() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopAt
}

func (s *Supervisor) stopRequested() bool {
	select {
	case <-s.stopCh:
		return true
	default:
		return false
	}
}

// update changes the status under the lock and reports a change.
func (s *Supervisor) update(fn func(st *supState)) {
	s.mu.Lock()
	old := s.st
	fn(&s.st)
	if s.st.State != old.State {
		s.st.Since = time.Now()
	}
	changed := s.st != old
	s.mu.Unlock()
	if changed && s.cfg.OnChange != nil {
		s.cfg.OnChange()
	}
}

// How one run of the instance ended.
type runEnd int

const (
	endExited    runEnd = iota // exited by itself
	endUnhealthy               // killed for failing its liveness probe
	endStopped                 // stopped on request, or the agent is shutting down
)

// Run supervises the instance until Stop has stopped it or ctx ends, and
// returns then. Cancelling ctx kills the instance without grace (the
// agent is going away; Manager.Close stops gracefully first).
func (s *Supervisor) Run(ctx context.Context) {
	defer close(s.done)
	crashes := 0 // in a row
	for {
		if crashes > 0 {
			if d := s.cfg.Backoff.Delay(crashes); d > 0 {
				s.update(func(st *supState) {
					st.Message = fmt.Sprintf("%s; restarting in %s (%d crashes in a row)", st.Message, d, crashes)
				})
				if !s.sleep(ctx, d) {
					s.update(func(st *supState) { st.State = model.StateStopped })
					return
				}
			}
		}
		if s.stopRequested() || ctx.Err() != nil {
			s.update(func(st *supState) { st.State = model.StateStopped })
			return
		}
		s.update(func(st *supState) { st.State = model.StateStarting })
		h, err := s.cfg.Runtime.Start(ctx, s.cfg.Spec, s.cfg.HostPorts, s.cfg.Dir)
		if err != nil {
			if ctx.Err() != nil {
				s.update(func(st *supState) { st.State = model.StateStopped })
				return
			}
			crashes++
			s.log.Warn("instance failed to start", "err", err, "attempt", crashes)
			s.update(func(st *supState) {
				st.State, st.Message, st.PID = model.StateFailed, err.Error(), 0
			})
			continue
		}
		started := time.Now()
		end, reason := s.supervise(ctx, h)
		exit := h.ExitStatus()
		if end == endStopped {
			s.update(func(st *supState) {
				st.State, st.LastExit, st.PID, st.Message = model.StateStopped, exit, 0, reason
			})
			return
		}
		if time.Since(started) >= s.cfg.Backoff.ResetAfter {
			crashes = 0
		}
		crashes++
		if end == endExited {
			reason = "exited: " + exit
		} else {
			exit += ", " + reason // the exit status alone would hide why
		}
		s.log.Warn("instance ended; restarting", "reason", reason, "uptime", time.Since(started).Round(time.Millisecond), "crashes_in_a_row", crashes)
		s.update(func(st *supState) {
			st.State, st.LastExit, st.PID, st.Message = model.StateStarting, exit, 0, reason
			st.Restarts++
		})
	}
}

// sleep waits d; false when a stop or ctx ended the wait.
func (s *Supervisor) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.stopCh:
		return false
	case <-ctx.Done():
		return false
	}
}

// supervise watches one run of the instance, with its probes, until it
// exits, fails its liveness probe, or is stopped.
func (s *Supervisor) supervise(ctx context.Context, h Handle) (runEnd, string) {
	s.mu.Lock()
	s.gen++
	gen := s.gen
	s.handle = h
	s.mu.Unlock()
	sp := &s.cfg.Spec
	s.update(func(st *supState) {
		st.PID = h.PID()
		if sp.Readiness == nil {
			st.State, st.Message, st.ReadySince = model.StateReady, "", time.Now()
		} else {
			st.State, st.Message = model.StateRunning, "waiting for the readiness probe"
		}
	})

	target := ProbeTarget{Host: s.cfg.ProbeHost, Declared: sp.Ports, HostPorts: s.cfg.HostPorts, Dir: s.cfg.Dir, Env: s.env}
	if ex, ok := h.(Execer); ok {
		target.Exec = ex
	}
	pctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
		s.mu.Lock()
		s.handle = nil
		s.mu.Unlock()
	}()
	unhealthy := make(chan error, 1)
	if sp.Liveness != nil {
		p := sp.Liveness.WithDefaults()
		wg.Go(func() { s.watchLiveness(pctx, p, target, gen, unhealthy) })
	}
	if sp.Readiness != nil {
		p := sp.Readiness.WithDefaults()
		wg.Go(func() { s.watchReadiness(pctx, p, target, gen) })
	}

	select {
	case <-h.Wait():
		return endExited, ""
	case err := <-unhealthy:
		reason := "stopped because the " + err.Error()
		s.log.Warn("instance failed its liveness probe; restarting it", "err", err)
		s.update(func(st *supState) { st.Message = reason })
		s.halt(ctx, h, sp.stopGrace())
		return endUnhealthy, reason
	case <-s.stopCh:
		return endStopped, s.drainAndStop(ctx, h)
	case <-ctx.Done():
		s.halt(ctx, h, 0)
		return endStopped, "the agent is shutting down"
	}
}

// drainAndStop reports Stopping, keeps the instance running until the stop
// time, then stops it with its grace.
func (s *Supervisor) drainAndStop(ctx context.Context, h Handle) string {
	s.update(func(st *supState) { st.State, st.Message = model.StateStopping, "" })
	for {
		at := s.stopTime()
		d := time.Until(at)
		if d <= 0 {
			break
		}
		// update holds s.mu: read the stop time before, not inside.
		s.update(func(st *supState) {
			st.Message = "draining until " + at.Format(time.RFC3339Nano)
		})
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-s.wake:
		case <-h.Wait():
			t.Stop()
			return "exited while draining"
		case <-ctx.Done():
			t.Stop()
			s.halt(ctx, h, 0)
			return "the agent is shutting down"
		}
		t.Stop()
	}
	s.update(func(st *supState) { st.Message = "" })
	s.halt(ctx, h, s.cfg.Spec.stopGrace())
	return ""
}

// halt stops the instance and returns once it has exited. When ctx ends
// (or was over already) it kills it and waits a bounded time.
func (s *Supervisor) halt(ctx context.Context, h Handle, grace time.Duration) {
	err := h.Stop(ctx, grace)
	if err == nil {
		return
	}
	if ctx.Err() == nil {
		s.log.Warn("stopping the instance failed; killing it", "err", err)
	}
	kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := h.Stop(kctx, 0); err != nil {
		s.log.Error("the instance did not exit after SIGKILL; giving up on it", "err", err, "pid", h.PID())
	}
}

// watchLiveness probes every period, starting one period after the start,
// and reports FailureThreshold failures in a row. Failures only count once
// the run has passed a probe (this one, or its readiness probe): an
// instance that is still starting is slow, not hung. One that never gets
// there stays not ready, which rollouts see (their progress deadline).
func (s *Supervisor) watchLiveness(ctx context.Context, p model.Probe, target ProbeTarget, gen int, unhealthy chan<- error) {
	t := time.NewTicker(p.Period)
	defer t.Stop()
	fails, armed := 0, false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := s.cfg.probe(ctx, p, target)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			fails, armed = 0, true
			continue
		}
		if !armed {
			s.mu.Lock()
			armed = s.readyGen == gen
			s.mu.Unlock()
			if !armed {
				s.log.Debug("liveness probe failed while starting; not counted", "err", err)
				continue
			}
		}
		fails++
		s.log.Debug("liveness probe failed", "err", err, "failures", fails, "threshold", p.FailureThreshold)
		if fails >= p.FailureThreshold {
			unhealthy <- fmt.Errorf("liveness probe failed %d times in a row: %w", fails, err)
			return
		}
	}
}

// watchReadiness probes at once and then every StartupProbeInterval until
// the first success (Ready), then every period; FailureThreshold failures
// in a row make the instance Running (not ready) again.
func (s *Supervisor) watchReadiness(ctx context.Context, p model.Probe, target ProbeTarget, gen int) {
	interval := min(s.cfg.StartupProbeInterval, p.Period)
	t := time.NewTimer(0)
	defer t.Stop()
	ready, fails := false, 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := s.cfg.probe(ctx, p, target)
		if ctx.Err() != nil {
			return
		}
		switch {
		case err == nil:
			fails = 0
			if !ready {
				ready, interval = true, p.Period
				s.setReady(gen, true, "")
			}
		case ready:
			fails++
			if fails >= p.FailureThreshold {
				ready = false
				s.setReady(gen, false, fmt.Sprintf("readiness probe failed %d times in a row: %v", fails, err))
			}
		}
		t.Reset(interval)
	}
}

// setReady moves a running instance between Running and Ready; results of
// an earlier run, or arriving while it stops, are dropped.
func (s *Supervisor) setReady(gen int, ready bool, msg string) {
	s.update(func(st *supState) {
		if s.gen != gen || (st.State != model.StateRunning && st.State != model.StateReady) {
			return
		}
		if ready {
			s.readyGen = gen
			st.State, st.Message = model.StateReady, ""
			st.ReadySince = time.Now()
		} else {
			st.State, st.Message = model.StateRunning, msg
		}
	})
}
