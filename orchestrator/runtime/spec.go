package runtime

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"opspilot/orchestrator/model"
)

// Spec is everything needed to run one instance on this node.
type Spec struct {
	// InstanceID names the instance, e.g. "billing-7f3kq". It is also the
	// instance directory's name, the Docker container's name (which the
	// container collector reports as the instance label) and the cgroup
	// leaf's name, so it must match [a-zA-Z0-9][a-zA-Z0-9_.-]*.
	InstanceID string
	Service    string
	Tenant     string
	Version    string
	// Node and Datacenter are passed to the instance as OPSPILOT_NODE and
	// OPSPILOT_DATACENTER when set; the Manager fills them from its config
	// when empty.
	Node       string
	Datacenter string
	// Runtime is model.RuntimeProcess or model.RuntimeDocker.
	Runtime string
	// Command is the argv of a process, or the arguments (Cmd) of a
	// container; it may be empty for a container. $PORT, ${PORT_HTTP} and
	// every other variable of the instance's environment are expanded in
	// it; variables the instance does not have are left as written.
	Command []string
	// Image is the Docker image; it must already be on the node.
	Image string
	// Env is added to the instance's environment.
	Env map[string]string
	// Limits caps CPU (millicores) and memory (bytes); zero means
	// unlimited.
	Limits model.Resources
	// Ports are the declared ports. Each gets a host port (see PortKey).
	Ports []model.Port
	// Files maps a path relative to the instance directory to its
	// content; they are (re)written before every start. Files are
	// readable by everyone on the node (0644): put no secrets here that
	// other local users must not read.
	Files map[string]string
	// Liveness failing FailureThreshold times in a row restarts the
	// instance; Readiness decides between running and ready.
	Liveness  *model.Probe
	Readiness *model.Probe
	// StopGrace is the time between SIGTERM and SIGKILL; zero means
	// model.DefaultStopGrace.
	StopGrace time.Duration
	// Metrics, when set, is the endpoint the node's agent scrapes while
	// the instance runs (see Manager.ScrapeTargets); its port is one of
	// Ports.
	Metrics *model.MetricsEndpoint
}

// Files the runtimes write into every instance directory; Spec.Files must
// not use these names.
const (
	StdoutFile = "stdout.log"
	StderrFile = "stderr.log"
	// markerFile marks a directory as an instance directory, so Cleanup
	// only ever removes directories this package created.
	markerFile = ".opspilot-instance"
)

var instanceIDPattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)

// Validate checks what the runtimes rely on: a usable InstanceID, the
// runtime and what it needs, unique port keys, local file paths and
// well-formed probes.
func (s *Spec) Validate() error {
	var errs []error
	if !instanceIDPattern.MatchString(s.InstanceID) {
		errs = append(errs, fmt.Errorf("instance id %q: want 1-128 letters, digits, '_', '.' or '-', starting with a letter or digit (it names a directory, a container and a cgroup)", s.InstanceID))
	}
	switch s.Runtime {
	case model.RuntimeProcess:
		if len(s.Command) == 0 || s.Command[0] == "" {
			errs = append(errs, errors.New(`the "process" runtime needs a command`))
		}
	case model.RuntimeDocker:
		if s.Image == "" {
			errs = append(errs, errors.New(`the "docker" runtime needs an image`))
		}
	default:
		errs = append(errs, fmt.Errorf(`unknown runtime %q; use "process" or "docker"`, s.Runtime))
	}
	if s.Limits.MilliCPU < 0 || s.Limits.MemoryBytes < 0 {
		errs = append(errs, fmt.Errorf("limits %s: must not be negative", s.Limits))
	}
	keys := map[string]bool{}
	for _, p := range s.Ports {
		if p.Port < 1 || p.Port > 65535 {
			errs = append(errs, fmt.Errorf("port %d: want 1-65535", p.Port))
		}
		if p.Protocol != "" && p.Protocol != "tcp" && p.Protocol != "udp" {
			errs = append(errs, fmt.Errorf("port %d: unknown protocol %q; use tcp or udp", p.Port, p.Protocol))
		}
		k := PortKey(p)
		if keys[k] {
			errs = append(errs, fmt.Errorf("port key %q is declared twice; name the ports to tell them apart", k))
		}
		keys[k] = true
	}
	if s.Metrics != nil {
		if p, ok := s.Metrics.PortOf(s.Ports); !ok {
			errs = append(errs, fmt.Errorf("metrics port %q is not a declared port", s.Metrics.Port))
		} else if p.Protocol == "udp" {
			errs = append(errs, fmt.Errorf("metrics port %q is udp; metrics are scraped over HTTP", PortKey(p)))
		}
	}
	for _, rel := range slices.Sorted(maps.Keys(s.Files)) {
		switch {
		case !filepath.IsLocal(rel):
			errs = append(errs, fmt.Errorf("file %q: want a relative path inside the instance directory", rel))
		case rel == StdoutFile || rel == StderrFile || rel == markerFile:
			errs = append(errs, fmt.Errorf("file %q: the name is reserved for the runtime", rel))
		}
	}
	for _, pr := range []struct {
		name string
		p    *model.Probe
	}{{"liveness", s.Liveness}, {"readiness", s.Readiness}} {
		if pr.p == nil {
			continue
		}
		if ps := pr.p.Validate(); len(ps) > 0 {
			errs = append(errs, fmt.Errorf("%s probe: %v", pr.name, ps))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("spec of instance %q: %w", s.InstanceID, err)
	}
	return nil
}

func (s *Spec) stopGrace() time.Duration {
	if s.StopGrace > 0 {
		return s.StopGrace
	}
	return model.DefaultStopGrace
}

// PortKey is the key of a declared port in host-port maps (Status.Ports,
// model.Instance.Ports): its name, or its number when unnamed.
func PortKey(p model.Port) string {
	if p.Name != "" {
		return p.Name
	}
	return strconv.Itoa(p.Port)
}

// PortEnvName is the environment variable carrying a declared port:
// PORT_ and the name upper-cased with every other character than A-Z and
// 0-9 turned into '_' (PORT_HTTP, PORT_ADMIN_API), or PORT_ and the number
// for an unnamed port (PORT_9000).
func PortEnvName(p model.Port) string {
	if p.Name == "" {
		return "PORT_" + strconv.Itoa(p.Port)
	}
	b := []byte("PORT_" + strings.ToUpper(p.Name))
	for i := len("PORT_"); i < len(b); i++ {
		if c := b[i]; (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			b[i] = '_'
		}
	}
	return string(b)
}

// defaultPath is PATH when the agent has none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// environ builds the instance's environment, from lowest to highest
// precedence: PATH (the agent's) and HOME (the instance directory, for
// processes only), then Spec.Env, then what the agent manages (PORT*,
// OPSPILOT_*), so a service cannot accidentally shadow its own ports.
// portOf gives the port number a declared port is reachable at from inside
// the instance: the host port for a process, the declared port for a
// container.
func (s *Spec) environ(dir, home string, portOf func(model.Port) int) map[string]string {
	env := map[string]string{}
	if home != "" {
		path := os.Getenv("PATH")
		if path == "" {
			path = defaultPath
		}
		env["PATH"] = path
		env["HOME"] = home
	}
	for k, v := range s.Env {
		env[k] = v
	}
	for i, p := range s.Ports {
		n := strconv.Itoa(portOf(p))
		if i == 0 {
			env["PORT"] = n
		}
		env[PortEnvName(p)] = n
	}
	env["OPSPILOT_INSTANCE"] = s.InstanceID
	env["OPSPILOT_SERVICE"] = s.Service
	env["OPSPILOT_DIR"] = dir
	if s.Tenant != "" {
		env["OPSPILOT_TENANT"] = s.Tenant
	}
	if s.Version != "" {
		env["OPSPILOT_VERSION"] = s.Version
	}
	if s.Node != "" {
		env["OPSPILOT_NODE"] = s.Node
	}
	if s.Datacenter != "" {
		env["OPSPILOT_DATACENTER"] = s.Datacenter
	}
	return env
}

// envList renders env as sorted KEY=value pairs.
func envList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}

// expandArgs expands $NAME and ${NAME} in args over env. A variable env
// does not define is left as written ($NAME), so shell snippets such as
// `sh -c 'echo $1'` keep their own variables.
func expandArgs(args []string, env map[string]string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = os.Expand(a, func(name string) string {
			if v, ok := env[name]; ok {
				return v
			}
			return "$" + name
		})
	}
	return out
}

// prepareDir creates the instance directory, marks it and writes
// spec.Files into it.
func prepareDir(dir string, files map[string]string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create instance directory: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, markerFile), nil, 0o644); err != nil {
		return fmt.Errorf("mark instance directory: %w", err)
	}
	for _, rel := range slices.Sorted(maps.Keys(files)) {
		if !filepath.IsLocal(rel) {
			return fmt.Errorf("file %q: want a relative path inside the instance directory", rel)
		}
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("write file %q: %w", rel, err)
		}
		if err := os.WriteFile(p, []byte(files[rel]), 0o644); err != nil {
			return fmt.Errorf("write file %q: %w", rel, err)
		}
	}
	return nil
}

// checkHostPorts makes sure every declared port has a host port.
func checkHostPorts(spec Spec, ports map[string]int) error {
	for _, pt := range spec.Ports {
		if hp := ports[PortKey(pt)]; hp < 1 || hp > 65535 {
			return fmt.Errorf("start instance %q: declared port %q has no host port (got %d)", spec.InstanceID, PortKey(pt), hp)
		}
	}
	return nil
}

// lookPath finds name as the instance would: a name with a slash is
// relative to the instance directory, any other is searched in the
// instance's PATH (not the agent's).
func lookPath(name, pathList, dir string) (string, error) {
	if strings.Contains(name, "/") {
		p := name
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if err := checkExecutable(p); err != nil {
			return "", fmt.Errorf("command %q: %w", name, err)
		}
		return p, nil
	}
	for _, d := range filepath.SplitList(pathList) {
		if d == "" {
			d = "."
		}
		if !filepath.IsAbs(d) {
			d = filepath.Join(dir, d)
		}
		p := filepath.Join(d, name)
		if checkExecutable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("command %q not found in the instance's PATH %q; use an absolute path or set PATH in the service's env", name, pathList)
}

func checkExecutable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}

func openLog(p string) (*os.File, error) {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log file: %w", err)
	}
	return f, nil
}
