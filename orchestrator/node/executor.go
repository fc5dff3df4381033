package node

import (
	"sync"
	"time"

	"opspilot/collector/container"
	"opspilot/collector/logs"
	"opspilot/collector/scrape"
	"opspilot/orchestrator/agentproto"
	"opspilot/orchestrator/model"
	"opspilot/orchestrator/runtime"
)

// RuntimeExecutor runs assignments on a runtime.Manager. A stop is carried
// out after the service's drain delay, measured on this node from when the
// stop was first seen (so clocks need not agree).
type RuntimeExecutor struct {
	M *runtime.Manager
	// Observe, if set, is told after every Sync and every status report
	// (each heartbeat) which cgroups, log files and metrics endpoints
	// (scrape targets) the node's instances have (for the collector).
	// After Sync alone is not enough: instances start asynchronously, so
	// their cgroups and targets appear after Sync returns.
	Observe func(cgroups []container.Instance, logFiles []logs.Source, targets []scrape.Target)

	mu        sync.Mutex
	stopSeen  map[string]time.Time
	primaries map[string]string // instance → key of its first declared port
}

// Sync implements Executor.
func (e *RuntimeExecutor) Sync(as []agentproto.Assignment) {
	e.mu.Lock()
	if e.stopSeen == nil {
		e.stopSeen, e.primaries = map[string]time.Time{}, map[string]string{}
	}
	now := time.Now()
	want := make([]runtime.Assignment, 0, len(as))
	seen := map[string]bool{}
	for _, a := range as {
		i, s := a.Instance, a.Spec
		seen[i.ID] = true
		spec := runtime.Spec{
			InstanceID: i.ID, Service: i.Service, Tenant: i.Tenant, Version: i.Version,
			Node: i.Node, Datacenter: i.Datacenter,
			Runtime: s.Runtime, Command: s.Command, Image: s.Image, Env: s.Env,
			Limits: s.Limits, Ports: s.Ports, Files: a.Files,
			Liveness: s.Liveness, Readiness: s.Readiness, StopGrace: s.StopGrace,
			Metrics: s.Metrics,
		}
		if len(s.Ports) > 0 {
			e.primaries[i.ID] = runtime.PortKey(s.Ports[0])
		}
		ra := runtime.Assignment{Spec: spec}
		if i.Desired == model.DesiredStop {
			first, ok := e.stopSeen[i.ID]
			if !ok {
				first = now
				e.stopSeen[i.ID] = now
			}
			drain := s.DrainDelay
			if drain == 0 {
				drain = model.DefaultDrainDelay
			}
			ra.Stop, ra.StopAt = true, first.Add(drain)
		}
		want = append(want, ra)
	}
	for id := range e.stopSeen {
		if !seen[id] {
			delete(e.stopSeen, id)
		}
	}
	for id := range e.primaries {
		if !seen[id] {
			delete(e.primaries, id)
		}
	}
	e.mu.Unlock()
	e.M.Sync(want)
	if e.Observe != nil {
		e.Observe(e.M.Cgroups(), e.M.LogSources(), e.M.ScrapeTargets())
	}
}

// Statuses implements Executor.
func (e *RuntimeExecutor) Statuses() []agentproto.InstanceStatus {
	if e.Observe != nil {
		e.Observe(e.M.Cgroups(), e.M.LogSources(), e.M.ScrapeTargets())
	}
	sts := e.M.Statuses()
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]agentproto.InstanceStatus, 0, len(sts))
	for _, s := range sts {
		st := agentproto.InstanceStatus{
			ID: s.InstanceID, State: s.State, Restarts: s.Restarts, LastExit: s.LastExit, Message: s.Message,
			Address: s.Address, Ports: s.Ports, PID: s.PID,
		}
		if key, ok := e.primaries[s.InstanceID]; ok {
			st.Port = s.Ports[key]
		}
		out = append(out, st)
	}
	return out
}
