package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"opspilot/orchestrator/model"
)

// ProbeTarget is what a probe checks: an instance's host ports and
// directory.
type ProbeTarget struct {
	// Host is where the host ports are reached from the agent, e.g.
	// "127.0.0.1".
	Host string
	// Declared are the spec's ports: a probe names a declared port by its
	// number, and HostPorts maps it (by PortKey) to the host port.
	Declared  []model.Port
	HostPorts map[string]int
	// Dir and Env are where and with what environment exec probes run on
	// the host.
	Dir string
	Env []string
	// Exec, when set, runs exec probes inside the instance instead
	// (Docker containers).
	Exec Execer
}

// probeClient never follows redirects (a 3xx is a success) and keeps no
// connections: probes must not hold sockets between checks.
var probeClient = &http.Client{
	Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

// Probe runs one check of p against t, bounded by p's timeout: an HTTP GET
// answered 2xx or 3xx, a TCP connection that opens, or a command that
// exits 0. The error says what failed.
func Probe(ctx context.Context, p model.Probe, t ProbeTarget) error {
	p = p.WithDefaults()
	ctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	switch {
	case p.HTTP != nil:
		port, err := t.hostPort(p.HTTP.Port)
		if err != nil {
			return err
		}
		path := p.HTTP.Path
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		url := "http://" + net.JoinHostPort(t.Host, strconv.Itoa(port)) + path
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("http probe: %w", err)
		}
		req.Header.Set("User-Agent", "opspilot-probe")
		resp, err := probeClient.Do(req)
		if err != nil {
			return fmt.Errorf("http probe: %w", err)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 399 {
			return fmt.Errorf("http probe: GET %s answered %s", url, resp.Status)
		}
		return nil
	case p.TCP != nil:
		port, err := t.hostPort(p.TCP.Port)
		if err != nil {
			return err
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(t.Host, strconv.Itoa(port)))
		if err != nil {
			return fmt.Errorf("tcp probe: %w", err)
		}
		c.Close()
		return nil
	case p.Exec != nil:
		if len(p.Exec.Command) == 0 {
			return errors.New("exec probe: no command")
		}
		if t.Exec != nil {
			if err := t.Exec.Exec(ctx, p.Exec.Command); err != nil {
				return fmt.Errorf("exec probe %q: %w", p.Exec.Command, err)
			}
			return nil
		}
		return execOnHost(ctx, p.Exec.Command, t.Dir, t.Env)
	default:
		return errors.New("probe has none of http, tcp and exec")
	}
}

// execOnHost runs argv in dir and reports a non-zero exit with the tail of
// its output.
func execOnHost(ctx context.Context, argv []string, dir string, env []string) error {
	pathList := defaultPath
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathList = v
		}
	}
	path, err := lookPath(argv[0], pathList, dir)
	if err != nil {
		return fmt.Errorf("exec probe: %w", err)
	}
	cmd := exec.CommandContext(ctx, path, argv[1:]...)
	cmd.Args[0] = argv[0]
	cmd.Dir = dir
	cmd.Env = env
	var out tailBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// A probe's children may keep its output open after it was killed.
	cmd.WaitDelay = 100 * time.Millisecond
	if err := cmd.Run(); err != nil {
		if msg := strings.TrimSpace(out.String()); msg != "" {
			return fmt.Errorf("exec probe %q: %w: %s", argv, err, msg)
		}
		return fmt.Errorf("exec probe %q: %w", argv, err)
	}
	return nil
}

// hostPort maps a probe's port to the host port: a declared port's number
// (0 means the first declared port).
func (t ProbeTarget) hostPort(port int) (int, error) {
	if len(t.Declared) == 0 {
		return 0, fmt.Errorf("probe port %d: the service declares no ports, so the agent cannot tell where the instance listens; declare the port", port)
	}
	for _, d := range t.Declared {
		if port == 0 || d.Port == port && (d.Protocol == "" || d.Protocol == "tcp") {
			if hp, ok := t.HostPorts[PortKey(d)]; ok {
				return hp, nil
			}
			return 0, fmt.Errorf("probe port %d: declared port %q has no host port", port, PortKey(d))
		}
	}
	declared := make([]string, len(t.Declared))
	for i, d := range t.Declared {
		declared[i] = strconv.Itoa(d.Port)
	}
	return 0, fmt.Errorf("probe port %d is not a declared tcp port (declared: %s); probes name declared ports, which the agent maps to host ports", port, strings.Join(declared, ", "))
}

// tailBuffer keeps the last 512 bytes written to it.
type tailBuffer struct{ b bytes.Buffer }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b.Write(p)
	if over := t.b.Len() - 512; over > 0 {
		t.b.Next(over)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return t.b.String() }
