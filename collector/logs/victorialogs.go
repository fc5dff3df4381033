package logs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// VictoriaLogsBinary is the executable name FindVictoriaLogs looks for.
const VictoriaLogsBinary = "victoria-logs"

// VictoriaLogsRetention is the retention StartVictoriaLogs configures.
const VictoriaLogsRetention = "7d"

// VictoriaLogs is a VictoriaLogs server running as a child process.
type VictoriaLogs struct {
	addr string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // set before done closes

	stopOnce sync.Once
	stopErr  error
}

// StartVictoriaLogs starts bin with its data in dataDir, listening on addr
// (HOST:PORT), and returns once /health answers. ctx bounds the start only;
// Stop ends the process. Its output goes to log.
func StartVictoriaLogs(ctx context.Context, bin, dataDir, addr string, log *slog.Logger) (*VictoriaLogs, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("victoria-logs data directory: %w", err)
	}
	// VictoriaLogs exits on a busy port; say so clearly instead.
	if ln, err := net.Listen("tcp", addr); err != nil {
		return nil, fmt.Errorf("victoria-logs cannot listen on %s: %w; choose another address", addr, err)
	} else {
		_ = ln.Close()
	}
	cmd := exec.Command(bin,
		"-storageDataPath="+dataDir,
		"-httpListenAddr="+addr,
		"-loggerLevel=WARN",
		"-retentionPeriod="+VictoriaLogsRetention,
	)
	out := &logWriter{log: log.With("component", "victoria-logs")}
	cmd.Stdout = out
	cmd.Stderr = out
	// The log store must not outlive opspilot: after a kill -9 an orphan
	// would keep the data directory locked and the next start would fail.
	stopWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	v := &VictoriaLogs{addr: addr, cmd: cmd, done: make(chan struct{})}
	go func() {
		v.err = cmd.Wait()
		out.flush()
		close(v.done)
	}()

	health := "http://" + addr + "/health"
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, health, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return v, nil
			}
		}
		select {
		case <-v.done:
			return nil, fmt.Errorf("victoria-logs exited while starting (%v); last output: %s", v.err, out.tail())
		case <-ctx.Done():
			_ = v.Stop()
			return nil, fmt.Errorf("victoria-logs on %s not healthy: %w", addr, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// URL is the base URL of the server, e.g. http://127.0.0.1:9428.
func (v *VictoriaLogs) URL() string { return "http://" + v.addr }

// InsertURL is the Elasticsearch-compatible base for Config.URL.
func (v *VictoriaLogs) InsertURL() string { return v.URL() + "/insert/elasticsearch" }

// Done is closed when the process has ended.
func (v *VictoriaLogs) Done() <-chan struct{} { return v.done }

// Stop sends SIGTERM, waits up to 10 s for a clean shutdown (VictoriaLogs
// flushes its in-memory parts), then kills the process.
func (v *VictoriaLogs) Stop() error {
	v.stopOnce.Do(func() {
		select {
		case <-v.done:
			return
		default:
		}
		_ = v.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-v.done:
		case <-time.After(10 * time.Second):
			_ = v.cmd.Process.Kill()
			<-v.done
			v.stopErr = errors.New("victoria-logs did not stop within 10s of SIGTERM and was killed")
		}
	})
	return v.stopErr
}

// FindVictoriaLogs returns the path of a victoria-logs binary: next to the
// running executable, on PATH, or built from the opspilot module's tool
// directive when a Go toolchain and the module are at hand.
func FindVictoriaLogs() (string, error) {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), VictoriaLogsBinary)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := exec.LookPath(VictoriaLogsBinary); err == nil {
		return p, nil
	}
	p, err := buildVictoriaLogs()
	if err == nil {
		return p, nil
	}
	return "", fmt.Errorf("victoria-logs not found next to the opspilot executable or on PATH, and it could not be built (%v); "+
		"install it with `go install github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs@v1.52.1`, "+
		"or download it from https://github.com/VictoriaMetrics/VictoriaLogs/releases and put it on PATH, "+
		"or point opspilot at an existing log store", err)
}

func buildVictoriaLogs() (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", errors.New("no go command on PATH")
	}
	out, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("the working directory is not inside the opspilot module")
	}
	cmd := exec.Command(goBin, "tool", "-n", VictoriaLogsBinary)
	cmd.Dir = filepath.Dir(gomod)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err = cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go tool -n %s: %v: %s", VictoriaLogsBinary, err, strings.TrimSpace(stderr.String()))
	}
	p := strings.TrimSpace(string(out))
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("go tool -n %s printed %q: %w", VictoriaLogsBinary, p, err)
	}
	return p, nil
}

// logWriter turns a child's output into log records, one per line, and
// keeps the last lines for error messages.
type logWriter struct {
	log *slog.Logger

	mu      sync.Mutex
	partial []byte
	last    []string
}

func (w *logWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, b...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		w.lineLocked(string(w.partial[:i]))
		w.partial = w.partial[i+1:]
	}
	return len(b), nil
}

func (w *logWriter) lineLocked(s string) {
	if s = strings.TrimSpace(s); s == "" {
		return
	}
	w.log.Warn(s)
	w.last = append(w.last, s)
	if len(w.last) > 5 {
		w.last = w.last[1:]
	}
}

func (w *logWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lineLocked(string(w.partial))
	w.partial = nil
}

func (w *logWriter) tail() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.last, " | ")
}

var _ io.Writer = (*logWriter)(nil)
