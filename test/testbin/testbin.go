// Package testbin gives tests real binaries to run: opspilot itself and the
// tools pinned in go.mod (VictoriaMetrics single-node, promtool), built
// through the Go build cache, and helpers to start them on free loopback
// ports and stop them again.
//
// It is imported only by tests.
package testbin

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	mu    sync.Mutex
	built = map[string]string{}
)

// Tool returns the path of a binary named in go.mod's tool directives (or
// "opspilot"), building it once per test process; `go tool -n` keeps the
// linked binary in the build cache, so later runs do not link again.
func Tool(t testing.TB, name string) string {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if p, ok := built[name]; ok {
		return p
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("building %s needs the go command on PATH: %v", name, err)
	}
	cmd := exec.Command(goBin, "tool", "-n", name)
	cmd.Dir = ModuleRoot(t)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go tool -n %s: %v\n%s", name, err, stderr.String())
	}
	p := strings.TrimSpace(string(out))
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("go tool -n %s printed %q, which does not exist: %v", name, p, err)
	}
	built[name] = p
	return p
}

// ModuleRoot is the directory holding go.mod.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatal("not inside the opspilot module")
	}
	return filepath.Dir(gomod)
}

// FreeAddr returns a loopback HOST:PORT nobody listens on right now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// Process is a started binary with its output captured.
type Process struct {
	Cmd    *exec.Cmd
	Stdout *SyncBuffer
	Stderr *SyncBuffer
	done   chan struct{}
	err    error
}

// Start runs bin with args; when the test ends the process gets SIGINT,
// and SIGKILL if it has not exited 10 s later.
func Start(t testing.TB, bin string, args ...string) *Process {
	t.Helper()
	p := &Process{Cmd: exec.Command(bin, args...), Stdout: &SyncBuffer{}, Stderr: &SyncBuffer{}, done: make(chan struct{})}
	p.Cmd.Stdout = p.Stdout
	p.Cmd.Stderr = p.Stderr
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		p.err = p.Cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if p.Exited() {
			return
		}
		// Ask first: opspilot then stops its own children (VictoriaLogs,
		// instances), which a SIGKILL leaves to die on their own, still
		// writing into the test's temporary directory while it is removed.
		_ = p.Cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.Cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits up to d for the process to end and returns its exit error.
func (p *Process) Wait(d time.Duration) (error, bool) {
	select {
	case <-p.done:
		return p.err, true
	case <-time.After(d):
		return nil, false
	}
}

// Done is closed when the process ends.
func (p *Process) Done() <-chan struct{} { return p.done }

// WaitHealthy polls url until it answers 200 or d passes.
func WaitHealthy(t testing.TB, url string, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s did not answer 200 within %s (last error: %v)", url, d, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// VictoriaMetrics starts the real single-node VictoriaMetrics binary on a
// free loopback port with its data in a temporary directory, and returns its
// base URL once /health answers.
func VictoriaMetrics(t testing.TB, extraArgs ...string) (string, *Process) {
	t.Helper()
	bin := Tool(t, "victoria-metrics")
	addr := FreeAddr(t)
	args := append([]string{
		"-storageDataPath=" + t.TempDir(),
		"-httpListenAddr=" + addr,
		"-search.latencyOffset=1s",
		"-loggerLevel=WARN",
		"-memory.allowedPercent=10",
	}, extraArgs...)
	p := Start(t, bin, args...)
	scheme := "http"
	for _, a := range extraArgs {
		if a == "-tls" || a == "-tls=true" {
			scheme = "https"
		}
	}
	base := fmt.Sprintf("%s://%s", scheme, addr)
	if scheme == "http" {
		WaitHealthy(t, base+"/health", 30*time.Second)
	} else {
		waitListening(t, addr, 30*time.Second)
	}
	return base, p
}

// SyncBuffer is a bytes.Buffer safe for a writer process and a reading test.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func waitListening(t testing.TB, addr string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s after %s: %v", addr, d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
