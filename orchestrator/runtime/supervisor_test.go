package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"opspilot/collector/container"
	"opspilot/orchestrator/model"
)

// The supervisor's timing is tested with a fake runtime inside synctest
// bubbles: time only moves when every goroutine waits, so schedules are
// checked exactly and a two-minute crash loop takes microseconds.

// fakeRuntime starts fakeHandles. lifetime(n) says how long the n-th start
// (from 1) runs before it exits with status 1 by itself; negative means
// until stopped. startErr(n), when set, makes the n-th start fail.
type fakeRuntime struct {
	lifetime   func(n int) time.Duration
	startErr   func(n int) error
	ignoreTerm bool // handles ignore SIGTERM and only die of SIGKILL

	mu      sync.Mutex
	starts  []time.Time
	handles []*fakeHandle
}

func (r *fakeRuntime) Name() string { return model.RuntimeProcess }

func (r *fakeRuntime) Start(ctx context.Context, spec Spec, ports map[string]int, dir string) (Handle, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.starts = append(r.starts, time.Now())
	n := len(r.starts)
	if r.startErr != nil {
		if err := r.startErr(n); err != nil {
			return nil, err
		}
	}
	h := &fakeHandle{id: spec.InstanceID, pid: 1000 + n, done: make(chan struct{}), ignoreTerm: r.ignoreTerm}
	r.handles = append(r.handles, h)
	life := time.Duration(-1)
	if r.lifetime != nil {
		life = r.lifetime(n)
	}
	switch {
	case life == 0:
		h.end("exit status 1")
	case life > 0:
		go func() {
			t := time.NewTimer(life)
			defer t.Stop()
			select {
			case <-t.C:
				h.end("exit status 1")
			case <-h.done:
			}
		}()
	}
	return h, nil
}

// startTimes returns the start times as offsets from t0.
func (r *fakeRuntime) startTimes(t0 time.Time) []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]time.Duration, len(r.starts))
	for i, s := range r.starts {
		out[i] = s.Sub(t0)
	}
	return out
}

func (r *fakeRuntime) last() *fakeHandle {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.handles[len(r.handles)-1]
}

type fakeHandle struct {
	id         string
	pid        int
	done       chan struct{}
	once       sync.Once
	ignoreTerm bool

	mu     sync.Mutex
	exit   string
	termAt time.Time
}

func (h *fakeHandle) end(status string) {
	h.once.Do(func() {
		h.mu.Lock()
		h.exit = status
		h.mu.Unlock()
		close(h.done)
	})
}

func (h *fakeHandle) Wait() <-chan struct{} { return h.done }

func (h *fakeHandle) ExitStatus() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.exit
}

func (h *fakeHandle) PID() int { return h.pid }

func (h *fakeHandle) Cgroup() *container.Instance {
	return &container.Instance{Instance: h.id, CgroupPath: "/opspilot/" + h.id}
}

func (h *fakeHandle) terminatedAt() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.termAt
}

func (h *fakeHandle) Stop(ctx context.Context, grace time.Duration) error {
	select {
	case <-h.done:
		return nil
	default:
	}
	if grace == 0 {
		h.end("signal: killed")
		return nil
	}
	h.mu.Lock()
	if h.termAt.IsZero() {
		h.termAt = time.Now()
	}
	h.mu.Unlock()
	if !h.ignoreTerm {
		h.end("exit status 0")
		return nil
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-t.C:
		h.end("signal: killed")
		return nil
	case <-h.done:
		return nil
	case <-ctx.Done():
		h.end("signal: killed")
		return ctx.Err()
	}
}

// fakeProbes answers probes from two switches: HTTP path /live for
// liveness, /ready for readiness.
type fakeProbes struct {
	live, ready atomic.Bool
	calls       atomic.Int64
}

func (f *fakeProbes) probe(ctx context.Context, p model.Probe, t ProbeTarget) error {
	f.calls.Add(1)
	ok := false
	switch p.HTTP.Path {
	case "/live":
		ok = f.live.Load()
	case "/ready":
		ok = f.ready.Load()
	}
	if !ok {
		return errors.New("connection refused")
	}
	return nil
}

type fakeSetup struct {
	rt      *fakeRuntime
	probes  *fakeProbes
	spec    Spec
	changes atomic.Int64
}

// start runs a supervisor of s.spec in the current bubble; the returned
// cancel kills it and waits for Run to return.
func (s *fakeSetup) start(t *testing.T) (*Supervisor, func()) {
	if s.probes == nil {
		s.probes = &fakeProbes{}
	}
	if s.spec.InstanceID == "" {
		s.spec = Spec{InstanceID: "fake-1", Service: "fake", Runtime: model.RuntimeProcess, Command: []string{"x"}}
	}
	sv := NewSupervisor(SupervisorConfig{
		Spec: s.spec, Runtime: s.rt, Dir: t.TempDir(),
		Log:      slog.New(slog.DiscardHandler),
		OnChange: func() { s.changes.Add(1) },
		probe:    s.probes.probe,
	})
	ctx, cancel := context.WithCancel(context.Background())
	go sv.Run(ctx)
	return sv, func() {
		cancel()
		<-sv.Done()
	}
}

func assertState(t *testing.T, sv *Supervisor, want string) Status {
	t.Helper()
	st := sv.Status()
	if st.State != want {
		t.Fatalf("state %q (message %q), want %q", st.State, st.Message, want)
	}
	return st
}

func TestSupervisorCrashLoopBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		s := &fakeSetup{rt: &fakeRuntime{lifetime: func(int) time.Duration { return 0 }}} // every start crashes at once
		sv, stop := s.start(t)
		defer stop()
		time.Sleep(2 * time.Minute)

		// The first restart is immediate; then 200ms doubling, capped at 30s.
		want := []time.Duration{0, 0}
		for d, at := 200*time.Millisecond, time.Duration(0); ; d = min(2*d, 30*time.Second) {
			at += d
			if at > 2*time.Minute {
				break
			}
			want = append(want, at)
		}
		got := s.rt.startTimes(t0)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("starts at\n%v\nwant\n%v", got, want)
		}
		st := assertState(t, sv, model.StateStarting) // waiting out the 30s
		if st.Restarts != len(got) || st.LastExit != "exit status 1" || !strings.Contains(st.Message, "restarting in 30s") {
			t.Errorf("status %+v: want %d restarts, last exit status 1, a pending restart", st, len(got))
		}
		if s.changes.Load() == 0 {
			t.Error("OnChange was never called")
		}
	})
}

func TestSupervisorBackoffResetsAfterAStableRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		lifetimes := []time.Duration{0, 0, 0, 10 * time.Second, 0, -1}
		s := &fakeSetup{rt: &fakeRuntime{lifetime: func(n int) time.Duration { return lifetimes[n-1] }}}
		sv, stop := s.start(t)
		defer stop()
		time.Sleep(time.Minute)
		ms := time.Millisecond
		// Crashes 1-3 wait 0, 200ms, 400ms; the 4th start runs 10s, so its
		// crash is a first one again (immediate), and the next waits 200ms.
		want := []time.Duration{0, 0, 200 * ms, 600 * ms, 10600 * ms, 10800 * ms}
		if got := s.rt.startTimes(t0); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("starts at %v, want %v", got, want)
		}
		if st := assertState(t, sv, model.StateReady); st.Restarts != 5 || st.PID != 1006 {
			t.Errorf("status %+v, want 5 restarts and the 6th pid", st)
		}
		if c := sv.Cgroup(); c == nil || c.Restarts != 5 {
			t.Errorf("Cgroup() = %+v, want the handle's with Restarts 5", c)
		}
	})
}

func TestSupervisorReadinessAndLiveness(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		s := &fakeSetup{rt: &fakeRuntime{}}
		s.spec = Spec{
			InstanceID: "web-1", Service: "web", Runtime: model.RuntimeProcess, Command: []string{"x"},
			Ports:     []model.Port{{Name: "http", Port: 8080}},
			Readiness: httpProbe("/ready", 8080, 10*time.Second, 3),
			Liveness:  httpProbe("/live", 8080, time.Second, 3),
			StopGrace: 5 * time.Second,
		}
		s.probes = &fakeProbes{}
		s.probes.live.Store(true)
		sv, stop := s.start(t)
		defer stop()

		time.Sleep(time.Second)
		assertState(t, sv, model.StateRunning)
		// Until first ready the readiness probe runs every 50ms, not 10s.
		s.probes.ready.Store(true)
		time.Sleep(60 * time.Millisecond)
		st := assertState(t, sv, model.StateReady)
		if st.ReadySince.Sub(t0) > 1050*time.Millisecond {
			t.Errorf("ready at %s, want within 50ms of the probe succeeding at 1s", st.ReadySince.Sub(t0))
		}

		// Three failures in a row at the 10s period: not ready after ~30s.
		s.probes.ready.Store(false)
		time.Sleep(25 * time.Second) // t≈26s: two failures
		assertState(t, sv, model.StateReady)
		time.Sleep(7 * time.Second) // t≈33s: three
		st = assertState(t, sv, model.StateRunning)
		if !strings.Contains(st.Message, "readiness probe failed 3 times") {
			t.Errorf("message %q", st.Message)
		}

		// Liveness: three failures at 1s (t=34,35,36) kill and restart it.
		before := time.Now()
		s.probes.live.Store(false)
		first := s.rt.last()
		time.Sleep(3500 * time.Millisecond)
		if at := first.terminatedAt(); at.IsZero() || at.Sub(before) > 3*time.Second {
			t.Fatalf("SIGTERM at %v, want within 3 failed 1s probes", at.Sub(before))
		}
		starts := s.rt.startTimes(t0)
		if len(starts) != 2 || starts[1] != first.terminatedAt().Sub(t0) {
			t.Fatalf("starts %v: want a restart the moment the unhealthy one exited (%v)", starts, first.terminatedAt().Sub(t0))
		}
		s.probes.live.Store(true)
		st = sv.Status()
		if st.Restarts != 1 || !strings.Contains(st.LastExit, "liveness probe failed 3 times") {
			t.Errorf("status %+v: want 1 restart, its liveness failure in LastExit", st)
		}
		s.probes.ready.Store(true)
		time.Sleep(100 * time.Millisecond)
		assertState(t, sv, model.StateReady)
	})
}

func TestSupervisorStopDrainsThenGrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		s := &fakeSetup{rt: &fakeRuntime{ignoreTerm: true}}
		s.spec = Spec{InstanceID: "w-1", Service: "w", Runtime: model.RuntimeProcess, Command: []string{"x"}, StopGrace: 5 * time.Second}
		sv, stop := s.start(t)
		defer stop()
		synctest.Wait()
		assertState(t, sv, model.StateReady) // no readiness probe: ready once started

		sv.Stop(t0.Add(10 * time.Second)) // drain until t=10s …
		sv.Stop(t0.Add(2 * time.Second))  // … no: until t=2s (earlier wins)
		sv.Stop(t0.Add(20 * time.Second)) // later never does
		synctest.Wait()
		if st := assertState(t, sv, model.StateStopping); !strings.Contains(st.Message, "draining") {
			t.Errorf("message %q", st.Message)
		}
		h := s.rt.last()
		time.Sleep(1900 * time.Millisecond)
		if !h.terminatedAt().IsZero() {
			t.Fatal("SIGTERM before the drain ended")
		}
		time.Sleep(200 * time.Millisecond)
		if got := h.terminatedAt().Sub(t0); got != 2*time.Second {
			t.Fatalf("SIGTERM at %s, want 2s", got)
		}
		// It ignores SIGTERM: killed after the 5s grace.
		time.Sleep(4800 * time.Millisecond) // t=6.9s
		assertState(t, sv, model.StateStopping)
		time.Sleep(200 * time.Millisecond) // t=7.1s
		st := assertState(t, sv, model.StateStopped)
		if st.LastExit != "signal: killed" || st.PID != 0 {
			t.Errorf("status %+v", st)
		}
		select {
		case <-sv.Done():
		default:
			t.Fatal("Run still running after Stopped")
		}
	})
}

func TestSupervisorStopDuringBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &fakeSetup{rt: &fakeRuntime{lifetime: func(int) time.Duration { return 0 }}}
		sv, stop := s.start(t)
		defer stop()
		time.Sleep(time.Second) // starts at 0, 0, .2, .6; the next waits until 1.4s
		sv.Stop(time.Time{})
		synctest.Wait()
		assertState(t, sv, model.StateStopped)
		<-sv.Done()
		if n := len(s.rt.startTimes(time.Now())); n != 4 {
			t.Errorf("%d starts, want 4", n)
		}
	})
}

func TestSupervisorStartFailuresRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		s := &fakeSetup{rt: &fakeRuntime{startErr: func(n int) error {
			if n <= 3 {
				return errors.New(`image "web:1" is not on this node`)
			}
			return nil
		}}}
		sv, stop := s.start(t)
		defer stop()
		time.Sleep(100 * time.Millisecond)
		if st := assertState(t, sv, model.StateFailed); !strings.Contains(st.Message, "not on this node") {
			t.Errorf("message %q", st.Message)
		}
		time.Sleep(time.Second)
		ms := time.Millisecond
		if got, want := s.rt.startTimes(t0), []time.Duration{0, 0, 200 * ms, 600 * ms}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("attempts at %v, want %v", got, want)
		}
		// Failed starts are retried but are not restarts.
		if st := assertState(t, sv, model.StateReady); st.Restarts != 0 {
			t.Errorf("restarts %d, want 0", st.Restarts)
		}
	})
}

func TestSupervisorCancelKills(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &fakeSetup{rt: &fakeRuntime{ignoreTerm: true}}
		s.spec = Spec{InstanceID: "w-1", Service: "w", Runtime: model.RuntimeProcess, Command: []string{"x"}, StopGrace: time.Hour}
		sv, stop := s.start(t)
		synctest.Wait()
		start := time.Now()
		stop() // cancels Run's context: no grace
		if d := time.Since(start); d != 0 {
			t.Errorf("cancel took %s of fake time, want an immediate kill", d)
		}
		if st := assertState(t, sv, model.StateStopped); st.LastExit != "signal: killed" || !strings.Contains(st.Message, "shutting down") {
			t.Errorf("status %+v", st)
		}
	})
}

func TestSupervisorLivenessWaitsForTheFirstSuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &fakeSetup{rt: &fakeRuntime{}}
		s.spec = Spec{
			InstanceID: "slow-1", Service: "slow", Runtime: model.RuntimeProcess, Command: []string{"x"},
			Ports:     []model.Port{{Name: "http", Port: 8080}},
			Readiness: httpProbe("/ready", 8080, time.Second, 3),
			Liveness:  httpProbe("/live", 8080, time.Second, 3),
		}
		sv, stop := s.start(t)
		defer stop()
		// A minute of start-up with both probes failing: slow, not hung.
		// (Half a period off the probe ticks, so that no probe runs at the
		// instant readiness changes: their order would be arbitrary.)
		time.Sleep(time.Minute + 500*time.Millisecond)
		if st := assertState(t, sv, model.StateRunning); st.Restarts != 0 {
			t.Fatalf("restarted while starting: %+v", st)
		}
		// Once ready, liveness failures count: killed after 3 periods.
		s.probes.ready.Store(true)
		time.Sleep(2200 * time.Millisecond)
		assertState(t, sv, model.StateReady)
		if n := len(s.rt.startTimes(time.Now())); n != 1 {
			t.Fatalf("%d starts before 3 counted failures", n)
		}
		time.Sleep(time.Second)
		if n := len(s.rt.startTimes(time.Now())); n != 2 {
			t.Fatalf("%d starts, want the restart after 3 counted failures", n)
		}
	})
}
