package model

import (
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"opspilot/config"
)

// Validate checks the datacenter's name.
func (d *Datacenter) Validate() []config.Problem {
	return checkName(nil, "name", d.Name)
}

// Validate checks the node's names, labels and resources.
func (n *Node) Validate() []config.Problem {
	ps := checkName(nil, "name", n.Name)
	ps = checkName(ps, "datacenter", n.Datacenter)
	if n.Partition != "" {
		ps = checkName(ps, "partition", n.Partition)
	}
	ps = checkLabels(ps, "labels", n.Labels)
	ps = append(ps, config.Prefix("capacity", n.Capacity.Validate())...)
	ps = append(ps, config.Prefix("allocated", n.Allocated.Validate())...)
	return ps
}

// Validate checks the tenant's name, quota and weight.
func (t *Tenant) Validate() []config.Problem {
	ps := checkName(nil, "name", t.Name)
	ps = append(ps, config.Prefix("quota", t.Quota.Validate())...)
	if t.Weight < 0 || math.IsNaN(t.Weight) || math.IsInf(t.Weight, 0) {
		ps = append(ps, config.Problem{Field: "weight", Msg: "must be a positive number (or 0 for the default, 1)"})
	}
	return ps
}

// Validate checks the service: runtime and what it needs, resources,
// replicas, ports, probes and placement.
func (s *Service) Validate() []config.Problem {
	ps := checkName(nil, "name", s.Name)
	if s.Tenant != "" {
		ps = checkName(ps, "tenant", s.Tenant)
	}
	switch s.Runtime {
	case RuntimeProcess:
		if len(s.Command) == 0 || s.Command[0] == "" {
			ps = append(ps, config.Problem{Field: "command", Msg: `the "process" runtime needs a command to run, e.g. command: ["/usr/bin/myapp", "--port", "8080"]`})
		}
		if s.Image != "" {
			ps = append(ps, config.Problem{Field: "image", Msg: `the "process" runtime does not use an image; remove it or set runtime: docker`})
		}
	case RuntimeDocker:
		if s.Image == "" {
			ps = append(ps, config.Problem{Field: "image", Msg: `the "docker" runtime needs an image, e.g. image: nginx:1.27`})
		}
	case "":
		ps = append(ps, config.Problem{Field: "runtime", Msg: `missing; set "process" or "docker"`})
	default:
		ps = append(ps, config.Problem{Field: "runtime", Msg: fmt.Sprintf(`unknown runtime %q; use "process" or "docker"`, s.Runtime)})
	}
	for k := range s.Env {
		if !validEnvName(k) {
			ps = append(ps, config.Problem{Field: joinKey("env", k), Msg: "environment variable names are letters, digits and _, not starting with a digit"})
		}
	}
	ps = append(ps, config.Prefix("requests", s.Requests.Validate())...)
	ps = append(ps, config.Prefix("limits", s.Limits.Validate())...)
	if s.Limits.MilliCPU != 0 && s.Limits.MilliCPU < s.Requests.MilliCPU {
		ps = append(ps, config.Problem{Field: "limits.cpu", Msg: fmt.Sprintf("limit %s is below the request %s; a limit must be at least the request", s.Limits.MilliCPU, s.Requests.MilliCPU)})
	}
	if s.Limits.MemoryBytes != 0 && s.Limits.MemoryBytes < s.Requests.MemoryBytes {
		ps = append(ps, config.Problem{Field: "limits.memory", Msg: fmt.Sprintf("limit %s is below the request %s; a limit must be at least the request", s.Limits.MemoryBytes, s.Requests.MemoryBytes)})
	}
	if s.Replicas < 0 {
		ps = append(ps, config.Problem{Field: "replicas", Msg: "must not be negative"})
	}
	ps = s.validatePorts(ps)
	if s.Liveness != nil {
		ps = append(ps, config.Prefix("liveness", s.Liveness.Validate())...)
	}
	if s.Readiness != nil {
		ps = append(ps, config.Prefix("readiness", s.Readiness.Validate())...)
	}
	if s.Metrics != nil {
		ps = append(ps, config.Prefix("metrics", s.validateMetrics())...)
	}
	ps = append(ps, config.Prefix("placement", s.Placement.Validate())...)
	seen := map[string]bool{}
	for i, m := range s.Configs {
		at := "configs[" + strconv.Itoa(i) + "]"
		ps = checkName(ps, at+".name", m.Name)
		if m.Path != "" && !validRelPath(m.Path) {
			ps = append(ps, config.Problem{Field: at + ".path", Msg: `must be a relative path inside the instance directory, without ".." (e.g. config/app)`})
		}
		if seen[m.Name] {
			ps = append(ps, config.Problem{Field: at + ".name", Msg: fmt.Sprintf("config %q is mounted twice", m.Name)})
		}
		seen[m.Name] = true
	}
	r := s.Rollout
	if r.MaxSurge < 0 {
		ps = append(ps, config.Problem{Field: "rollout.max_surge", Msg: "must not be negative"})
	}
	if r.MaxUnavailable < 0 {
		ps = append(ps, config.Problem{Field: "rollout.max_unavailable", Msg: "must not be negative"})
	}
	if r.ProgressDeadline < 0 {
		ps = append(ps, config.Problem{Field: "rollout.progress_deadline", Msg: "must not be negative"})
	}
	for i, st := range r.Steps {
		at := "rollout.steps[" + strconv.Itoa(i) + "]"
		ps = checkName(ps, at+".datacenter", st.Datacenter)
		if st.Percent < 1 || st.Percent > 100 {
			ps = append(ps, config.Problem{Field: at + ".percent", Msg: fmt.Sprintf("%d is not between 1 and 100 (the share of the datacenter's instances on the new version)", st.Percent)})
		}
		for _, prev := range r.Steps[:i] {
			if prev.Datacenter == st.Datacenter && prev.Percent >= st.Percent {
				ps = append(ps, config.Problem{Field: at + ".percent", Msg: fmt.Sprintf("datacenter %s is already at %d%% in an earlier step; a later step must raise it", st.Datacenter, prev.Percent)})
			}
		}
		if w, ok := s.Placement.Datacenters[st.Datacenter]; ok && w == 0 {
			ps = append(ps, config.Problem{Field: at + ".datacenter", Msg: fmt.Sprintf("the service has weight 0 in datacenter %s, so no instance runs there to release to", st.Datacenter)})
		}
	}
	if a := r.Analysis; a.Window < 0 || a.MaxErrorRatioIncrease < 0 || a.MaxLatencyRatio < 0 || a.MinRequests < 0 {
		ps = append(ps, config.Problem{Field: "rollout.analysis", Msg: "window, max_error_ratio_increase, max_latency_ratio and min_requests must not be negative (zero means the default)"})
	}
	if s.StopGrace < 0 {
		ps = append(ps, config.Problem{Field: "stop_grace", Msg: "must not be negative"})
	}
	if s.DrainDelay < 0 {
		ps = append(ps, config.Problem{Field: "drain_delay", Msg: "must not be negative"})
	}
	return ps
}

// Validate checks the library's name and file names.
func (l *ConfigLibrary) Validate() []config.Problem {
	ps := checkName(nil, "name", l.Name)
	total := 0
	for name, content := range l.Files {
		if name == "" || strings.ContainsAny(name, "/\\\x00") || name == "." || name == ".." {
			ps = append(ps, config.Problem{Field: joinKey("files", name), Msg: "file names are plain names without directories"})
		}
		total += len(content)
	}
	if total > 1<<20 {
		ps = append(ps, config.Problem{Field: "files", Msg: fmt.Sprintf("%d bytes in total; a config library holds at most 1 MiB", total)})
	}
	return ps
}

func validRelPath(p string) bool {
	if strings.HasPrefix(p, "/") || strings.Contains(p, "\x00") {
		return false
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." || part == "" {
			return false
		}
	}
	return true
}

func (s *Service) validatePorts(ps []config.Problem) []config.Problem {
	names := map[string]bool{}
	numbers := map[string]bool{}
	for i, p := range s.Ports {
		at := "ports[" + strconv.Itoa(i) + "]"
		if p.Name != "" {
			if names[p.Name] {
				ps = append(ps, config.Problem{Field: at + ".name", Msg: fmt.Sprintf("port name %q is used twice", p.Name)})
			}
			names[p.Name] = true
		}
		ps = checkPort(ps, at+".port", p.Port)
		proto := p.Protocol
		switch proto {
		case "":
			proto = "tcp"
		case "tcp", "udp":
		default:
			ps = append(ps, config.Problem{Field: at + ".protocol", Msg: fmt.Sprintf(`unknown protocol %q; use "tcp" or "udp"`, p.Protocol)})
		}
		key := strconv.Itoa(p.Port) + "/" + proto
		if numbers[key] {
			ps = append(ps, config.Problem{Field: at + ".port", Msg: fmt.Sprintf("port %s is listed twice", key)})
		}
		numbers[key] = true
	}
	return ps
}

// validateMetrics checks the metrics endpoint against the declared ports.
func (s *Service) validateMetrics() []config.Problem {
	var ps []config.Problem
	m := s.Metrics
	at := "port" // the default port is nobody's typo: report it at metrics
	if m.Port == "" {
		at = ""
	}
	if p, ok := m.PortOf(s.Ports); !ok {
		keys := make([]string, 0, len(s.Ports))
		for _, p := range s.Ports {
			if p.Name != "" {
				keys = append(keys, strconv.Quote(p.Name))
			} else {
				keys = append(keys, strconv.Quote(strconv.Itoa(p.Port)))
			}
		}
		switch {
		case len(s.Ports) == 0:
			ps = append(ps, config.Problem{Field: at, Msg: "the service declares no ports; declare the port the metrics are served on under ports, e.g. ports: [{name: http, port: 8080}]"})
		default:
			ps = append(ps, config.Problem{Field: at, Msg: fmt.Sprintf("no declared port named %q; declare it under ports or use one of %s (or leave port out for the first)", m.Port, strings.Join(keys, ", "))})
		}
	} else if p.Protocol == "udp" {
		ps = append(ps, config.Problem{Field: at, Msg: fmt.Sprintf("port %d is udp; metrics are scraped over HTTP, so use a tcp port", p.Port)})
	}
	if m.Path != "" {
		if u, err := url.Parse(m.Path); err != nil || !strings.HasPrefix(m.Path, "/") || u.Fragment != "" || u.Host != "" || strings.ContainsAny(m.Path, " \t\n") {
			ps = append(ps, config.Problem{Field: "path", Msg: fmt.Sprintf("%q is not a URL path; it must start with \"/\" (e.g. /metrics), may have a ?query and no #fragment", m.Path)})
		}
	}
	d := m.WithDefaults()
	switch {
	case m.Interval < 0:
		ps = append(ps, config.Problem{Field: "interval", Msg: "must not be negative; leave it out for 15s"})
	case d.Interval < MinMetricsInterval:
		ps = append(ps, config.Problem{Field: "interval", Msg: fmt.Sprintf("%s is below the 1s minimum; use at least 1s", m.Interval)})
	}
	switch {
	case m.Timeout < 0:
		ps = append(ps, config.Problem{Field: "timeout", Msg: "must not be negative; leave it out for the default (10s, capped at the interval)"})
	case m.Interval >= 0 && m.Timeout > d.Interval:
		ps = append(ps, config.Problem{Field: "timeout", Msg: fmt.Sprintf("%s is longer than the interval %s; a scrape must end before the next starts", m.Timeout, d.Interval)})
	}
	return ps
}

// Validate checks that exactly one kind of check is set and that the
// timings make sense.
func (p *Probe) Validate() []config.Problem {
	var ps []config.Problem
	kinds := 0
	if p.HTTP != nil {
		kinds++
		if !strings.HasPrefix(p.HTTP.Path, "/") {
			ps = append(ps, config.Problem{Field: "http.path", Msg: `must start with "/", e.g. /healthz`})
		}
		ps = checkPort(ps, "http.port", p.HTTP.Port)
	}
	if p.TCP != nil {
		kinds++
		ps = checkPort(ps, "tcp.port", p.TCP.Port)
	}
	if p.Exec != nil {
		kinds++
		if len(p.Exec.Command) == 0 || p.Exec.Command[0] == "" {
			ps = append(ps, config.Problem{Field: "exec.command", Msg: "needs a command to run"})
		}
	}
	switch {
	case kinds == 0:
		ps = append(ps, config.Problem{Msg: "set one of http, tcp or exec"})
	case kinds > 1:
		ps = append(ps, config.Problem{Msg: "set only one of http, tcp or exec"})
	}
	if p.Period < 0 {
		ps = append(ps, config.Problem{Field: "period", Msg: "must not be negative"})
	}
	if p.Timeout < 0 {
		ps = append(ps, config.Problem{Field: "timeout", Msg: "must not be negative"})
	}
	if d := p.WithDefaults(); p.Period >= 0 && p.Timeout >= 0 && d.Timeout > d.Period {
		ps = append(ps, config.Problem{Field: "timeout", Msg: fmt.Sprintf("%s is longer than the period %s; a check must end before the next starts", d.Timeout, d.Period)})
	}
	if p.FailureThreshold < 0 {
		ps = append(ps, config.Problem{Field: "failure_threshold", Msg: "must not be negative"})
	}
	return ps
}

// Validate checks weights, partitions, labels and the strategy.
func (p *Placement) Validate() []config.Problem {
	var ps []config.Problem
	total := 0
	for _, dc := range sortedKeys(p.Datacenters) {
		w := p.Datacenters[dc]
		at := joinKey("datacenters", dc)
		ps = checkName(ps, at, dc)
		if w < 0 {
			ps = append(ps, config.Problem{Field: at, Msg: fmt.Sprintf("weight %d is negative; use 0 to keep the service out of a datacenter", w)})
		} else {
			total += w
		}
	}
	if len(p.Datacenters) > 0 && total == 0 {
		ps = append(ps, config.Problem{Field: "datacenters", Msg: "all weights are zero, so no datacenter may run the service; give at least one a positive weight, or remove datacenters to use all"})
	}
	for i, part := range p.Partitions {
		ps = checkName(ps, "partitions["+strconv.Itoa(i)+"]", part)
	}
	for i, dc := range p.Failover {
		at := "failover[" + strconv.Itoa(i) + "]"
		ps = checkName(ps, at, dc)
		if slices.Contains(p.Failover[:i], dc) {
			ps = append(ps, config.Problem{Field: at, Msg: fmt.Sprintf("datacenter %q is listed twice; list each failover datacenter once, in priority order", dc)})
		}
	}
	ps = checkLabels(ps, "node_labels", p.NodeLabels)
	switch p.Strategy {
	case "", StrategySpread, StrategyBinpack:
	default:
		ps = append(ps, config.Problem{Field: "strategy", Msg: fmt.Sprintf(`unknown strategy %q; use "spread" or "binpack"`, p.Strategy)})
	}
	return ps
}

// Validate checks the instance's identity and state.
func (i *Instance) Validate() []config.Problem {
	var ps []config.Problem
	if i.ID == "" {
		ps = append(ps, config.Problem{Field: "id", Msg: "missing"})
	}
	ps = checkName(ps, "service", i.Service)
	switch i.State {
	case StatePending, StateStarting, StateRunning, StateReady, StateStopping, StateStopped, StateFailed:
	default:
		ps = append(ps, config.Problem{Field: "state", Msg: fmt.Sprintf("unknown state %q; one of pending, starting, running, ready, stopping, stopped, failed", i.State)})
	}
	if i.Restarts < 0 {
		ps = append(ps, config.Problem{Field: "restarts", Msg: "must not be negative"})
	}
	return ps
}

// checkName accepts names of letters, digits, '-', '_' and '.', starting
// with a letter or digit, at most 63 characters.
func checkName(ps []config.Problem, field, name string) []config.Problem {
	if name == "" {
		return append(ps, config.Problem{Field: field, Msg: "missing"})
	}
	ok := len(name) <= 63
	for i, r := range name {
		if !ok {
			break
		}
		alnum := r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r))
		ok = alnum || i > 0 && strings.ContainsRune("-_.", r)
	}
	if !ok {
		return append(ps, config.Problem{Field: field, Msg: fmt.Sprintf("invalid name %q: use at most 63 letters, digits, '-', '_' or '.', starting with a letter or digit", name)})
	}
	return ps
}

func checkLabels(ps []config.Problem, field string, labels map[string]string) []config.Problem {
	for _, k := range sortedKeys(labels) {
		if k == "" || strings.ContainsAny(k, " \t\n=") {
			ps = append(ps, config.Problem{Field: joinKey(field, k), Msg: "label names must be non-empty, without spaces or '='"})
		}
	}
	return ps
}

func checkPort(ps []config.Problem, field string, port int) []config.Problem {
	if port < 1 || port > 65535 {
		return append(ps, config.Problem{Field: field, Msg: fmt.Sprintf("port %d is out of range 1-65535", port)})
	}
	return ps
}

func validEnvName(k string) bool {
	if k == "" {
		return false
	}
	for i, r := range k {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// joinKey appends a map key to a field path the way opspilot/config
// writes paths: "datacenters.B", but labels["app.kubernetes.io/name"] for
// keys that are not plain names.
func joinKey(path, key string) string {
	plain := key != ""
	for _, r := range key {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !strings.ContainsRune("_-/:@+", r) {
			plain = false
		}
	}
	if !plain {
		return path + "[" + strconv.Quote(key) + "]"
	}
	return path + "." + key
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
