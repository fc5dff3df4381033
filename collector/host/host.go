package host

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/procfs"
	"github.com/prometheus/procfs/blockdevice"

	"opspilot/internal/smallfile"
	"opspilot/tsdb"
)

// Defaults, matching node_exporter's flags of the same purpose.
const (
	DefaultProcPath = "/proc"
	DefaultSysPath  = "/sys"
	// DefaultMountPointsExclude is node_exporter's
	// --collector.filesystem.mount-points-exclude.
	DefaultMountPointsExclude = `^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)`
	// DefaultDiskDevicesExclude is node_exporter's
	// --collector.diskstats.device-exclude: RAM disks, loop devices, floppies
	// and partitions (the whole disk is reported instead).
	DefaultDiskDevicesExclude = `^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$`
)

// DefaultFilesystemTypesExclude returns node_exporter's
// --collector.filesystem.fs-types-exclude as a list: pseudo and read-only
// image filesystems whose sizes mean nothing to an operator.
func DefaultFilesystemTypesExclude() []string {
	return []string{
		"autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs",
		"debugfs", "devpts", "devtmpfs", "fusectl", "hugetlbfs", "iso9660",
		"mqueue", "nsfs", "overlay", "proc", "procfs", "pstore", "rpc_pipefs",
		"securityfs", "selinuxfs", "squashfs", "sysfs", "tracefs",
	}
}

// Config configures a Collector. Start from DefaultConfig.
type Config struct {
	// ProcPath is where procfs is mounted; empty means "/proc". Point it at
	// the host's procfs when the agent runs in a container.
	ProcPath string
	// SysPath is where sysfs is mounted; empty means "/sys".
	SysPath string
	// FilesystemTypesExclude lists the fstypes skipped for node_filesystem_*.
	// nil means DefaultFilesystemTypesExclude(); an empty non-nil slice
	// excludes nothing.
	FilesystemTypesExclude []string
	// MountPointsExclude is a regexp of mount points skipped for
	// node_filesystem_*; empty excludes nothing. DefaultConfig sets
	// DefaultMountPointsExclude.
	MountPointsExclude string
	// DiskDevicesExclude is a regexp of block devices skipped for
	// node_disk_*; empty excludes nothing. DefaultConfig sets
	// DefaultDiskDevicesExclude.
	DiskDevicesExclude string
	// NetworkDevicesExclude is a regexp of interfaces skipped for
	// node_network_*; empty (the default, as in node_exporter, which keeps
	// lo) excludes nothing.
	NetworkDevicesExclude string
}

// DefaultConfig returns node_exporter's defaults.
func DefaultConfig() Config {
	return Config{
		ProcPath:               DefaultProcPath,
		SysPath:                DefaultSysPath,
		FilesystemTypesExclude: DefaultFilesystemTypesExclude(),
		MountPointsExclude:     DefaultMountPointsExclude,
		DiskDevicesExclude:     DefaultDiskDevicesExclude,
	}
}

// Collector reads host metrics on demand. It is safe for concurrent use;
// concurrent Collect calls are serialised because they share read buffers.
type Collector struct {
	mu sync.Mutex

	procPath string
	proc     procfs.FS
	block    blockdevice.FS

	fsTypeExcluded map[string]bool
	mountExclude   *regexp.Regexp // nil: none
	diskExclude    *regexp.Regexp
	netExclude     *regexp.Regexp

	// Reused between calls.
	buf       []byte
	fields    [][]byte
	b         builder
	memNames  map[string]string // meminfo key without unit → metric name
	memBytes  map[string]string // meminfo key in kB → metric name (…_bytes)
	vmNames   map[string]string // vmstat key → metric name, "" when not exported
	strs      map[string]string // interned label values read from files
	seen      map[string]struct{}
	cpuIDs    []int64
	cpuLabels map[int64]string
	lastCPU   map[int64]procfs.CPUStat
}

// New validates cfg and returns a Collector. It fails when ProcPath or
// SysPath is not a readable directory or a regexp does not compile.
func New(cfg Config) (*Collector, error) {
	if cfg.ProcPath == "" {
		cfg.ProcPath = DefaultProcPath
	}
	if cfg.SysPath == "" {
		cfg.SysPath = DefaultSysPath
	}
	if cfg.FilesystemTypesExclude == nil {
		cfg.FilesystemTypesExclude = DefaultFilesystemTypesExclude()
	}
	for _, p := range []struct{ field, path, what string }{
		{"ProcPath", cfg.ProcPath, "procfs"},
		{"SysPath", cfg.SysPath, "sysfs"},
	} {
		st, err := os.Stat(p.path)
		if err != nil {
			return nil, fmt.Errorf("host: Config.%s %q: %w (set it to where %s is mounted)", p.field, p.path, err, p.what)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("host: Config.%s %q is not a directory (set it to where %s is mounted)", p.field, p.path, p.what)
		}
	}
	proc, err := procfs.NewFS(cfg.ProcPath)
	if err != nil {
		return nil, fmt.Errorf("host: Config.ProcPath %q: %w", cfg.ProcPath, err)
	}
	block, err := blockdevice.NewFS(cfg.ProcPath, cfg.SysPath)
	if err != nil {
		return nil, fmt.Errorf("host: Config.ProcPath %q / SysPath %q: %w", cfg.ProcPath, cfg.SysPath, err)
	}
	c := &Collector{
		procPath:       cfg.ProcPath,
		proc:           proc,
		block:          block,
		fsTypeExcluded: make(map[string]bool, len(cfg.FilesystemTypesExclude)),
		buf:            make([]byte, 0, 16<<10),
		memNames:       make(map[string]string),
		memBytes:       make(map[string]string),
		vmNames:        make(map[string]string),
		strs:           make(map[string]string),
		seen:           make(map[string]struct{}),
		cpuLabels:      make(map[int64]string),
		lastCPU:        make(map[int64]procfs.CPUStat),
	}
	for _, t := range cfg.FilesystemTypesExclude {
		c.fsTypeExcluded[t] = true
	}
	for _, re := range []struct {
		field, expr string
		dst         **regexp.Regexp
	}{
		{"MountPointsExclude", cfg.MountPointsExclude, &c.mountExclude},
		{"DiskDevicesExclude", cfg.DiskDevicesExclude, &c.diskExclude},
		{"NetworkDevicesExclude", cfg.NetworkDevicesExclude, &c.netExclude},
	} {
		if re.expr == "" {
			continue
		}
		r, err := regexp.Compile(re.expr)
		if err != nil {
			return nil, fmt.Errorf("host: Config.%s: %w", re.field, err)
		}
		*re.dst = r
	}
	return c, nil
}

// subsystem is one group of series read from one source. A subsystem that
// fails contributes no series at all, so a half-parsed file never produces
// a partial, misleading set.
type subsystem struct {
	name    string
	collect func(c *Collector, now time.Time) error
}

var subsystems = []subsystem{
	{"stat", (*Collector).collectStat},
	{"loadavg", (*Collector).collectLoadavg},
	{"meminfo", (*Collector).collectMeminfo},
	{"vmstat", (*Collector).collectVmstat},
	{"diskstats", (*Collector).collectDiskstats},
	{"filesystem", (*Collector).collectFilesystems},
	{"netdev", (*Collector).collectNetdev},
	{"filefd", (*Collector).collectFilefd},
	{"pressure", (*Collector).collectPressure},
	{"time", (*Collector).collectTime},
	{"uname", (*Collector).collectUname},
}

// Collect reads every subsystem and returns one series per metric and label
// set, each with a single sample stamped now (milliseconds). Each series'
// labels are __name__ first, then the others sorted by name; the caller
// adds its own (datacenter, node) labels.
//
// A subsystem whose files are missing on this kernel (PSI, for instance) is
// skipped silently. A subsystem that fails otherwise is skipped and reported
// in the returned error, an errors.Join of "host: <subsystem>: <cause>"
// errors, while the other subsystems' series are still returned. The result
// is owned by the caller.
func (c *Collector) Collect(now time.Time) ([]tsdb.TimeSeries, error) {
	c.mu.Lock()
	defer c.mu.Unlock()

	c.b.start(now.UnixMilli())
	var errs []error
	for _, s := range subsystems {
		if err := c.run(s, now); err != nil {
			errs = append(errs, err)
		}
	}
	return c.b.finish(), errors.Join(errs...)
}

// run collects one subsystem, rolling back its series when it fails. A
// panic in a parser (ours or procfs') becomes that subsystem's error rather
// than taking the agent down.
func (c *Collector) run(s subsystem, now time.Time) (err error) {
	mark := c.b.mark()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
		if err == nil {
			return
		}
		c.b.rollback(mark)
		if isMissing(err) {
			err = nil
			return
		}
		err = fmt.Errorf("host: %s: %w", s.name, err)
	}()
	return s.collect(c, now)
}

// isMissing reports whether err means "this kernel does not provide it":
// the file does not exist, or the kernel refuses the read (PSI compiled in
// but disabled with psi=0 returns EOPNOTSUPP).
func isMissing(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.EOPNOTSUPP)
}

// procFile returns the path of a file under ProcPath.
func (c *Collector) procFile(name string) string {
	return filepath.Join(c.procPath, name)
}

// maxFileSize bounds a single /proc read; the files read here are a few KB.
const maxFileSize = 4 << 20

// readFile reads a whole file into the collector's reused buffer. The
// returned bytes are valid until the next readFile.
func (c *Collector) readFile(path string) ([]byte, error) {
	var err error
	c.buf, err = smallfile.Read(c.buf, path, maxFileSize)
	if err != nil {
		return nil, err
	}
	return c.buf, nil
}

// intern returns b as a string, reusing the string from earlier calls so
// that steady-state collection does not allocate label values.
func (c *Collector) intern(b []byte) string {
	if s, ok := c.strs[string(b)]; ok {
		return s
	}
	if len(c.strs) > 10000 { // device churn or hostile input: start over
		clear(c.strs)
	}
	s := string(b)
	c.strs[s] = s
	return s
}

// builder accumulates series. Label and sample storage is carved out of
// two arenas per Collect, so a few hundred series cost a handful of
// allocations; every carved slice is capped so that a caller appending to
// one series' labels cannot overwrite its neighbour.
type builder struct {
	ts      int64
	series  []tsdb.TimeSeries
	labels  []tsdb.Label
	samples []tsdb.Sample
	// sizes of the previous result, to size the next one's arenas.
	lastSeries, lastLabels int
}

type builderMark struct{ series, labels int }

func (b *builder) start(ts int64) {
	b.ts = ts
	b.series = make([]tsdb.TimeSeries, 0, b.lastSeries+16)
	b.labels = make([]tsdb.Label, 0, b.lastLabels+32)
	b.samples = make([]tsdb.Sample, 0, b.lastSeries+16)
}

func (b *builder) mark() builderMark {
	return builderMark{len(b.series), len(b.labels)}
}

func (b *builder) rollback(m builderMark) {
	clear(b.series[m.series:])
	b.series = b.series[:m.series]
	b.samples = b.samples[:m.series]
	b.labels = b.labels[:m.labels]
}

// add appends one series. kv holds label name/value pairs, which callers
// pass already sorted by name.
func (b *builder) add(name string, value float64, kv ...string) {
	start := len(b.labels)
	b.labels = append(b.labels, tsdb.Label{Name: "__name__", Value: name})
	for i := 0; i+1 < len(kv); i += 2 {
		b.labels = append(b.labels, tsdb.Label{Name: kv[i], Value: kv[i+1]})
	}
	end := len(b.labels)
	b.series = append(b.series, tsdb.TimeSeries{Labels: b.labels[start:end:end]})
	b.samples = append(b.samples, tsdb.Sample{Value: value, Timestamp: b.ts})
}

// finish links each series to its sample and hands the result over.
func (b *builder) finish() []tsdb.TimeSeries {
	out := b.series
	for i := range out {
		out[i].Samples = b.samples[i : i+1 : i+1]
	}
	b.lastSeries, b.lastLabels = len(out), len(b.labels)
	b.series, b.labels, b.samples = nil, nil, nil
	return out
}
