package tsdb

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/VictoriaMetrics/app/vminsert"
	vminsertcommon "github.com/VictoriaMetrics/VictoriaMetrics/app/vminsert/common"
	"github.com/VictoriaMetrics/VictoriaMetrics/app/vmselect"
	"github.com/VictoriaMetrics/VictoriaMetrics/app/vmselect/promql"
	"github.com/VictoriaMetrics/VictoriaMetrics/app/vmstorage"
	"github.com/VictoriaMetrics/VictoriaMetrics/lib/appmetrics"
	"github.com/VictoriaMetrics/VictoriaMetrics/lib/buildinfo"
	"github.com/VictoriaMetrics/VictoriaMetrics/lib/cgroup"
	"github.com/VictoriaMetrics/VictoriaMetrics/lib/fs"
	"github.com/VictoriaMetrics/VictoriaMetrics/lib/logger"
	"github.com/VictoriaMetrics/metrics"

	"opspilot/internal/dirlock"
)

// VictoriaMetricsVersion is the embedded VictoriaMetrics release.
const VictoriaMetricsVersion = "v1.151.0"

// lockFileName is opspilot's own lock in the data directory, held for the
// embedded store's lifetime; VictoriaMetrics' flock.lock would end the
// process on conflict, so we find conflicts first.
const lockFileName = "opspilot.lock"

var embeddedStarted atomic.Bool

// CrashLossWindow is how long after a write a sample may still be lost to a
// crash (kill -9, power loss): VictoriaMetrics v1.151.0 holds new rows for up
// to two 2 s ticks before they form an in-memory part, which reaches disk
// after its flush deadline on the next flush tick (flush_interval, at least
// 2 s). Measured: with flush_interval 1s samples survived from 8 s on.
func CrashLossWindow(flushInterval time.Duration) time.Duration {
	return 4*time.Second + 2*max(flushInterval, 2*time.Second)
}

// Embedded is the in-process VictoriaMetrics single-node.
type Embedded struct {
	dataDir         string
	lock            *os.File
	uncleanShutdown bool
	startDuration   time.Duration
	stopOnce        sync.Once
}

// StartEmbedded starts VictoriaMetrics in this process with its storage in
// cfg.DataDir (which must be set; see EmbeddedConfig.ResolveDataDir). It
// returns an error, instead of letting VictoriaMetrics end the process, when
// the data directory is in use or unusable. It can succeed once per process.
func StartEmbedded(cfg EmbeddedConfig, log *slog.Logger) (*Embedded, error) {
	if ps := cfg.Validate(); len(ps) > 0 {
		return nil, fmt.Errorf("embedded tsdb: %s: %s", ps[0].Field, ps[0].Msg)
	}
	if cfg.DataDir == "" {
		return nil, errors.New("embedded tsdb: data directory not set")
	}
	if !embeddedStarted.CompareAndSwap(false, true) {
		return nil, errors.New("embedded tsdb: VictoriaMetrics is already running in this process (it keeps global state and can start once)")
	}
	started := false
	defer func() {
		if !started {
			embeddedStarted.Store(false)
		}
	}()
	t0 := time.Now()
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("embedded tsdb: data directory %q: %w", cfg.DataDir, err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("embedded tsdb: create data directory: %w (choose a writable --data-dir)", err)
	}
	lock, err := lockDataDir(dir)
	if err != nil {
		return nil, err
	}
	if err := checkVMLock(dir); err != nil {
		_ = lock.Close()
		return nil, err
	}
	e := &Embedded{dataDir: dir, lock: lock}
	if _, err := os.Stat(filepath.Join(dir, appmetrics.UncleanShutdownMarkerFilename)); err == nil {
		e.uncleanShutdown = true
		log.Warn("the previous run of the embedded TSDB did not shut down cleanly; VictoriaMetrics kept what had reached disk, samples written within the loss window before the crash are lost",
			"data_dir", dir, "loss_window", CrashLossWindow(cfg.FlushInterval))
	}

	level, _ := vmLogLevel(cfg.LogLevel)
	settings := map[string]string{
		"storageDataPath":           dir,
		"retentionPeriod":           strconv.FormatInt(int64(time.Duration(cfg.Retention)/time.Hour), 10) + "h",
		"memory.allowedPercent":     strconv.FormatFloat(cfg.MemoryAllowedPercent, 'g', -1, 64),
		"search.latencyOffset":      cfg.LatencyOffset.String(),
		"loggerLevel":               level,
		"inmemoryDataFlushInterval": cfg.FlushInterval.String(),
		"dedup.minScrapeInterval":   cfg.DedupInterval.String(),
	}
	if cfg.MemoryAllowedBytes > 0 {
		settings["memory.allowedBytes"] = strconv.FormatInt(cfg.MemoryAllowedBytes, 10)
	}
	for name, value := range settings {
		if err := flag.Set(name, value); err != nil {
			_ = lock.Close()
			return nil, fmt.Errorf("embedded tsdb: set VictoriaMetrics flag -%s=%s: %w", name, value, err)
		}
	}
	// lib/memory panics unless the standard flag set has been parsed; the
	// opspilot CLI uses its own flag set, so nothing else parses it.
	if !flag.Parsed() {
		if err := flag.CommandLine.Parse(nil); err != nil {
			_ = lock.Close()
			return nil, fmt.Errorf("embedded tsdb: %w", err)
		}
	}
	buildinfo.Init()
	logger.InitNoLogFlags()

	maxConcurrent := min(cgroup.AvailableCPUs()*2, 16)
	vmstorage.Init(maxConcurrent, 10*time.Second, promql.ResetRollupResultCacheIfNeeded)
	appmetrics.MustCreateUncleanShutdownMarker(vmstorage.DataPath())
	vmselect.Init(maxConcurrent, 10*time.Second)
	vminsertcommon.StartIngestionRateLimiter(0)
	vminsert.Init()
	e.startDuration = time.Since(t0)
	started = true
	log.Info("embedded TSDB started", "engine", "VictoriaMetrics "+VictoriaMetricsVersion, "data_dir", dir,
		"retention", cfg.Retention.String(), "took", e.startDuration.Round(time.Millisecond))
	return e, nil
}

// DataDir is the absolute storage directory.
func (e *Embedded) DataDir() string { return e.dataDir }

// UncleanShutdown reports whether the previous run did not stop cleanly.
func (e *Embedded) UncleanShutdown() bool { return e.uncleanShutdown }

// StartDuration is how long StartEmbedded took.
func (e *Embedded) StartDuration() time.Duration { return e.startDuration }

// Handler serves VictoriaMetrics' Prometheus-compatible API: remote write
// and imports (vminsert), queries, series, labels, export and vmui
// (vmselect). Mount it under /prometheus/: VictoriaMetrics accepts that
// prefix on every path.
func (e *Embedded) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if vminsert.RequestHandler(w, r) || vmselect.RequestHandler(w, r) || vmstorage.RequestHandler(w, r) {
			return
		}
		http.Error(w, fmt.Sprintf("unsupported path %s; see https://docs.victoriametrics.com/victoriametrics/url-examples/", r.URL.Path), http.StatusNotFound)
	})
}

// WriteMetrics writes VictoriaMetrics' own metrics (vm_*) in the Prometheus
// text format, without the Go and process metrics opspilot exports itself.
func (e *Embedded) WriteMetrics(w io.Writer) {
	metrics.WritePrometheus(w, false)
}

// Flush makes every sample written so far searchable now. Without it
// VictoriaMetrics shows new samples of known series after ~2 s and brand-new
// series after up to ~10 s (it refreshes its current-hour series set on a
// 10 s ticker). Read-after-write callers and tests use it.
func (e *Embedded) Flush() { vmstorage.DebugFlush() }

// Stop flushes and closes the storage and releases the data directory. It
// is safe to call more than once.
func (e *Embedded) Stop() {
	e.stopOnce.Do(func() {
		vminsertcommon.StopIngestionRateLimiter()
		vminsert.Stop()
		vmstorage.Stop()
		vmselect.Stop()
		appmetrics.MustRemoveUncleanShutdownMarker(vmstorage.DataPath())
		_ = e.lock.Close() // closing the file releases the flock
	})
}

// lockDataDir takes opspilot's lock on dir, naming the holder on conflict.
func lockDataDir(dir string) (*os.File, error) {
	f, err := dirlock.Lock(filepath.Join(dir, lockFileName))
	var inUse *dirlock.InUseError
	if errors.As(err, &inUse) {
		return nil, fmt.Errorf("embedded tsdb: data directory %s is in use by %s; stop it or choose another --data-dir", dir, inUse.Holder())
	}
	if err != nil {
		return nil, fmt.Errorf("embedded tsdb: %w", err)
	}
	return f, nil
}

// checkVMLock finds a VictoriaMetrics that is not opspilot (a standalone
// binary) using dir; VictoriaMetrics itself would end the process.
func checkVMLock(dir string) error {
	path := filepath.Join(dir, fs.FlockFilename)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("embedded tsdb: open %s: %w", path, err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return fmt.Errorf("embedded tsdb: data directory %s is locked by another VictoriaMetrics process (%s); stop it or choose another --data-dir", dir, fs.FlockFilename)
	}
	return syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}
