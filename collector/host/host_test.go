package host

import (
	"bufio"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"opspilot/tsdb"
)

// index groups series by metric name.
type index map[string][]tsdb.TimeSeries

func indexSeries(series []tsdb.TimeSeries) index {
	idx := index{}
	for _, s := range series {
		if len(s.Labels) > 0 {
			idx[s.Labels[0].Value] = append(idx[s.Labels[0].Value], s)
		}
	}
	return idx
}

func label(s tsdb.TimeSeries, name string) string {
	for _, l := range s.Labels {
		if l.Name == name {
			return l.Value
		}
	}
	return ""
}

// find returns the value of the series name{kv...}, and whether it exists.
func (idx index) find(name string, kv ...string) (float64, bool) {
next:
	for _, s := range idx[name] {
		for i := 0; i+1 < len(kv); i += 2 {
			if label(s, kv[i]) != kv[i+1] {
				continue next
			}
		}
		return s.Samples[0].Value, true
	}
	return 0, false
}

func seriesKey(s tsdb.TimeSeries) string {
	var sb strings.Builder
	for _, l := range s.Labels {
		sb.WriteString(l.Name + "\x00" + l.Value + "\x00")
	}
	return sb.String()
}

var (
	metricNameRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelNameRE  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// checkWellFormed checks the invariants every Collect result must hold.
func checkWellFormed(t *testing.T, series []tsdb.TimeSeries, now time.Time) {
	t.Helper()
	seen := map[string]bool{}
	for _, s := range series {
		if len(s.Labels) == 0 || s.Labels[0].Name != "__name__" {
			t.Errorf("series %v: first label is not __name__", s.Labels)
			continue
		}
		if !metricNameRE.MatchString(s.Labels[0].Value) {
			t.Errorf("series %v: invalid metric name", s.Labels)
		}
		rest := s.Labels[1:]
		for i, l := range rest {
			if !labelNameRE.MatchString(l.Name) || strings.HasPrefix(l.Name, "__") {
				t.Errorf("series %v: invalid label name %q", s.Labels, l.Name)
			}
			if i > 0 && rest[i-1].Name >= l.Name {
				t.Errorf("series %v: labels not sorted or repeated", s.Labels)
			}
		}
		if len(s.Samples) != 1 || s.Samples[0].Timestamp != now.UnixMilli() {
			t.Errorf("series %v: samples %v, want one stamped %d", s.Labels, s.Samples, now.UnixMilli())
		}
		k := seriesKey(s)
		if seen[k] {
			t.Errorf("series %v: duplicate label set", s.Labels)
		}
		seen[k] = true
	}
}

func collectDefault(t testing.TB) (index, []tsdb.TimeSeries, time.Time) {
	t.Helper()
	c, err := New(DefaultConfig())
	if err != nil {
		t.Fatalf("New(DefaultConfig()): %v", err)
	}
	now := time.Now()
	series, err := c.Collect(now)
	if err != nil {
		t.Fatalf("Collect on this machine: %v", err)
	}
	return indexSeries(series), series, now
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func TestCollectRealHostNames(t *testing.T) {
	idx, series, now := collectDefault(t)
	checkWellFormed(t, series, now)

	psi := fileExists("/proc/pressure")
	tests := []struct {
		name   string
		labels []string // label names besides __name__, sorted
		skip   string   // non-empty: why the check may not apply here
	}{
		{name: "node_cpu_seconds_total", labels: []string{"cpu", "mode"}},
		{name: "node_load1"}, {name: "node_load5"}, {name: "node_load15"},
		{name: "node_memory_MemTotal_bytes"}, {name: "node_memory_MemFree_bytes"},
		{name: "node_memory_MemAvailable_bytes"}, {name: "node_memory_Buffers_bytes"},
		{name: "node_memory_Cached_bytes"}, {name: "node_memory_SwapCached_bytes"},
		{name: "node_memory_Active_bytes"}, {name: "node_memory_Inactive_bytes"},
		{name: "node_memory_Active_anon_bytes"}, {name: "node_memory_Inactive_file_bytes"},
		{name: "node_memory_SwapTotal_bytes"}, {name: "node_memory_SwapFree_bytes"},
		{name: "node_memory_Dirty_bytes"}, {name: "node_memory_Writeback_bytes"},
		{name: "node_memory_AnonPages_bytes"}, {name: "node_memory_Mapped_bytes"},
		{name: "node_memory_Shmem_bytes"}, {name: "node_memory_Slab_bytes"},
		{name: "node_memory_SReclaimable_bytes"}, {name: "node_memory_SUnreclaim_bytes"},
		{name: "node_memory_KernelStack_bytes"}, {name: "node_memory_PageTables_bytes"},
		{name: "node_memory_Committed_AS_bytes"}, {name: "node_memory_VmallocUsed_bytes"},
		{name: "node_memory_HugePages_Total"}, {name: "node_memory_Hugepagesize_bytes"},
		{name: "node_vmstat_pswpin"}, {name: "node_vmstat_pswpout"}, {name: "node_vmstat_pgmajfault"},
		{name: "node_vmstat_oom_kill", skip: skipUnless(procHas("vmstat", "oom_kill "), "kernel has no oom_kill in /proc/vmstat")},
		{name: "node_disk_reads_completed_total", labels: []string{"device"}, skip: skipUnless(hasWholeDisk(), "no block device outside the default device-exclude")},
		{name: "node_disk_writes_completed_total", labels: []string{"device"}, skip: skipUnless(hasWholeDisk(), "no block device outside the default device-exclude")},
		{name: "node_disk_read_bytes_total", labels: []string{"device"}, skip: skipUnless(hasWholeDisk(), "no block device outside the default device-exclude")},
		{name: "node_disk_written_bytes_total", labels: []string{"device"}, skip: skipUnless(hasWholeDisk(), "no block device outside the default device-exclude")},
		{name: "node_disk_io_time_seconds_total", labels: []string{"device"}, skip: skipUnless(hasWholeDisk(), "no block device outside the default device-exclude")},
		{name: "node_disk_read_time_seconds_total", labels: []string{"device"}, skip: skipUnless(hasWholeDisk(), "no block device outside the default device-exclude")},
		{name: "node_disk_write_time_seconds_total", labels: []string{"device"}, skip: skipUnless(hasWholeDisk(), "no block device outside the default device-exclude")},
		{name: "node_disk_io_now", labels: []string{"device"}, skip: skipUnless(hasWholeDisk(), "no block device outside the default device-exclude")},
		{name: "node_filesystem_size_bytes", labels: []string{"device", "fstype", "mountpoint"}},
		{name: "node_filesystem_free_bytes", labels: []string{"device", "fstype", "mountpoint"}},
		{name: "node_filesystem_avail_bytes", labels: []string{"device", "fstype", "mountpoint"}},
		{name: "node_filesystem_files", labels: []string{"device", "fstype", "mountpoint"}},
		{name: "node_filesystem_files_free", labels: []string{"device", "fstype", "mountpoint"}},
		{name: "node_filesystem_readonly", labels: []string{"device", "fstype", "mountpoint"}},
		{name: "node_filesystem_device_error", labels: []string{"device", "fstype", "mountpoint"}},
		{name: "node_network_receive_bytes_total", labels: []string{"device"}},
		{name: "node_network_transmit_bytes_total", labels: []string{"device"}},
		{name: "node_network_receive_packets_total", labels: []string{"device"}},
		{name: "node_network_transmit_packets_total", labels: []string{"device"}},
		{name: "node_network_receive_errs_total", labels: []string{"device"}},
		{name: "node_network_transmit_errs_total", labels: []string{"device"}},
		{name: "node_network_receive_drop_total", labels: []string{"device"}},
		{name: "node_network_transmit_drop_total", labels: []string{"device"}},
		{name: "node_filefd_allocated"}, {name: "node_filefd_maximum"},
		{name: "node_pressure_cpu_waiting_seconds_total", skip: skipUnless(psi, "kernel has no /proc/pressure (PSI)")},
		{name: "node_pressure_memory_waiting_seconds_total", skip: skipUnless(psi, "kernel has no /proc/pressure (PSI)")},
		{name: "node_pressure_memory_stalled_seconds_total", skip: skipUnless(psi, "kernel has no /proc/pressure (PSI)")},
		{name: "node_pressure_io_waiting_seconds_total", skip: skipUnless(psi, "kernel has no /proc/pressure (PSI)")},
		{name: "node_pressure_io_stalled_seconds_total", skip: skipUnless(psi, "kernel has no /proc/pressure (PSI)")},
		{name: "node_boot_time_seconds"}, {name: "node_time_seconds"},
		{name: "node_context_switches_total"}, {name: "node_intr_total"}, {name: "node_forks_total"},
		{name: "node_procs_running"}, {name: "node_procs_blocked"},
		{name: "node_uname_info", labels: []string{"domainname", "machine", "nodename", "release", "sysname", "version"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.skip != "" {
				t.Skip(tt.skip)
			}
			got := idx[tt.name]
			if len(got) == 0 {
				t.Fatalf("no %s series", tt.name)
			}
			for _, s := range got {
				var names []string
				for _, l := range s.Labels[1:] {
					names = append(names, l.Name)
				}
				if !slices.Equal(names, tt.labels) {
					t.Errorf("%s labels %v, want %v", tt.name, names, tt.labels)
				}
				if v := s.Samples[0].Value; math.IsNaN(v) || v < 0 {
					t.Errorf("%v = %v, want a non-negative number", s.Labels, v)
				}
			}
		})
	}
	if v, _ := idx.find("node_uname_info"); v != 1 {
		t.Errorf("node_uname_info = %v, want 1", v)
	}
	if v, _ := idx.find("node_time_seconds"); math.Abs(v-float64(now.UnixNano())/1e9) > 1e-3 {
		t.Errorf("node_time_seconds = %v, want %v", v, now.Unix())
	}
}

func skipUnless(ok bool, why string) string {
	if ok {
		return ""
	}
	return why
}

// procHas reports whether /proc/<file> contains substr.
func procHas(file, substr string) bool {
	b, err := os.ReadFile("/proc/" + file)
	return err == nil && strings.Contains(string(b), substr)
}

func hasWholeDisk() bool {
	b, err := os.ReadFile("/proc/diskstats")
	if err != nil {
		return false
	}
	re := regexp.MustCompile(DefaultDiskDevicesExclude)
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 14 && !re.MatchString(f[2]) {
			return true
		}
	}
	return false
}

func TestCollectMatchesProc(t *testing.T) {
	idx, _, _ := collectDefault(t)

	t.Run("node_load1 is /proc/loadavg's first field", func(t *testing.T) {
		b, err := os.ReadFile("/proc/loadavg")
		if err != nil {
			t.Fatal(err)
		}
		want, err := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := idx.find("node_load1")
		if math.Abs(got-want) > 0.05 {
			t.Errorf("node_load1 = %v, /proc/loadavg says %v", got, want)
		}
	})

	t.Run("node_memory_MemTotal_bytes is MemTotal kB * 1024", func(t *testing.T) {
		b, err := os.ReadFile("/proc/meminfo")
		if err != nil {
			t.Fatal(err)
		}
		var kb float64
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) == 3 && f[0] == "MemTotal:" {
				kb, _ = strconv.ParseFloat(f[1], 64)
			}
		}
		if got, _ := idx.find("node_memory_MemTotal_bytes"); got != kb*1024 || kb == 0 {
			t.Errorf("node_memory_MemTotal_bytes = %v, want %v", got, kb*1024)
		}
	})

	t.Run("one idle series per CPU", func(t *testing.T) {
		f, err := os.Open("/proc/stat")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		cpus := map[string]bool{}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if name, _, _ := strings.Cut(sc.Text(), " "); strings.HasPrefix(name, "cpu") && name != "cpu" {
				cpus[strings.TrimPrefix(name, "cpu")] = true
			}
		}
		got := map[string]bool{}
		for _, s := range idx["node_cpu_seconds_total"] {
			if label(s, "mode") == "idle" {
				got[label(s, "cpu")] = true
			}
		}
		if len(got) != len(cpus) || len(cpus) == 0 {
			t.Errorf("idle series for CPUs %v, /proc/stat has %v", got, cpus)
		}
		for cpu := range cpus {
			if !got[cpu] {
				t.Errorf("no idle series for cpu %q", cpu)
			}
		}
	})

	t.Run("filesystem holding os.TempDir", func(t *testing.T) {
		dir, err := filepath.EvalSymlinks(os.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		mp, fstype := mountOf(t, dir)
		if slices.Contains(DefaultFilesystemTypesExclude(), fstype) {
			t.Skipf("%s is on %s, an excluded fstype (%s)", dir, mp, fstype)
		}
		if regexp.MustCompile(DefaultMountPointsExclude).MatchString(mp) {
			t.Skipf("%s is on %s, an excluded mount point", dir, mp)
		}
		avail, ok := idx.find("node_filesystem_avail_bytes", "mountpoint", mp, "fstype", fstype)
		if !ok {
			t.Fatalf("no node_filesystem_avail_bytes{mountpoint=%q,fstype=%q}", mp, fstype)
		}
		size, _ := idx.find("node_filesystem_size_bytes", "mountpoint", mp, "fstype", fstype)
		if avail > size || size <= 0 {
			t.Errorf("%s: avail %v, size %v; want 0 <= avail <= size", mp, avail, size)
		}
	})
}

// mountOf returns the mount point and fstype holding dir: the longest
// matching mount point, the later one when mounted over.
func mountOf(t *testing.T, dir string) (mountpoint, fstype string) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		sep := slices.Index(f, "-")
		if len(f) < 10 || sep < 0 || sep+1 >= len(f) {
			continue
		}
		mp := unescapeMount(f[4])
		inside := dir == mp || strings.HasPrefix(dir, strings.TrimSuffix(mp, "/")+"/")
		if inside && len(mp) >= len(mountpoint) {
			mountpoint, fstype = mp, f[sep+1]
		}
	}
	if mountpoint == "" {
		t.Fatalf("no mount point holds %s", dir)
	}
	return mountpoint, fstype
}

func TestCountersNonDecreasing(t *testing.T) {
	c, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	first, err := c.Collect(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	second, err := c.Collect(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	before := map[string]float64{}
	for _, s := range first {
		before[seriesKey(s)] = s.Samples[0].Value
	}
	checked := 0
	for _, s := range second {
		if !strings.HasSuffix(s.Labels[0].Value, "_total") {
			continue
		}
		if old, ok := before[seriesKey(s)]; ok {
			checked++
			if s.Samples[0].Value < old {
				t.Errorf("%v went from %v to %v", s.Labels, old, s.Samples[0].Value)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no counters to compare")
	}
}

// writeProc writes a fixture procfs: name → content.
func writeProc(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func fixtureConfig(proc string) Config {
	cfg := DefaultConfig()
	cfg.ProcPath = proc
	return cfg
}

const (
	fixtureLoadavg = "0.50 1.25 2.00 3/456 7890\n"
	fixtureStat    = `cpu  300 20 100 4000 50 6 7 8 0 0
cpu0 100 10 50 2000 25 3 4 5 0 0
cpu1 200 10 50 2000 25 3 3 3 0 0
intr 12345 1 2 3
ctxt 67890
btime 1700000000
processes 4321
procs_running 3
procs_blocked 1
softirq 10 1 2 3 4 0 0 0 0 0 0
`
	fixtureMeminfo = `MemTotal:        2048 kB
MemFree:          512 kB
Active(anon):     100 kB
HugePages_Total:    4
Hugepagesize:    2048 kB
`
	fixtureVmstat = "nr_free_pages 1000\npgpgin 11\npswpin 22\npgmajfault 33\noom_kill 44\nnuma_hit 55\n"
	fixtureNetdev = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 100 2 0 0 0 0 0 0 100 2 0 0 0 0 0 0
  eth0: 1000 10 1 2 0 0 0 0 2000 20 3 4 0 0 0 0
`
	fixtureDiskstats = `   7       0 loop0 1 0 2 0 0 0 0 0 0 0 0 0 0 0 0 0 0
 254       0 vda 10 1 20 30 40 2 80 90 1 100 120 0 0 0 0 0 0
 254       1 vda1 10 1 20 30 40 2 80 90 1 100 120 0 0 0 0 0 0
`
)

func TestCollectFixture(t *testing.T) {
	proc := writeProc(t, map[string]string{
		"loadavg":         fixtureLoadavg,
		"stat":            fixtureStat,
		"meminfo":         fixtureMeminfo,
		"vmstat":          fixtureVmstat,
		"net/dev":         fixtureNetdev,
		"diskstats":       fixtureDiskstats,
		"sys/fs/file-nr":  "1024\t0\t65536\n",
		"pressure/cpu":    "some avg10=0.00 avg60=0.00 avg300=0.00 total=1500000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
		"pressure/memory": "some avg10=0.00 avg60=0.00 avg300=0.00 total=2000000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=1000000\n",
	})
	c, err := New(fixtureConfig(proc))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1700000100, 250e6)
	series, err := c.Collect(now)
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	checkWellFormed(t, series, now)
	idx := indexSeries(series)

	tests := []struct {
		name string
		kv   []string
		want float64
	}{
		{"node_load1", nil, 0.5},
		{"node_load5", nil, 1.25},
		{"node_load15", nil, 2},
		{"node_cpu_seconds_total", []string{"cpu", "0", "mode", "user"}, 1},
		{"node_cpu_seconds_total", []string{"cpu", "0", "mode", "idle"}, 20},
		{"node_cpu_seconds_total", []string{"cpu", "1", "mode", "user"}, 2},
		{"node_cpu_seconds_total", []string{"cpu", "1", "mode", "steal"}, 0.03},
		{"node_boot_time_seconds", nil, 1700000000},
		{"node_context_switches_total", nil, 67890},
		{"node_intr_total", nil, 12345},
		{"node_forks_total", nil, 4321},
		{"node_procs_running", nil, 3},
		{"node_procs_blocked", nil, 1},
		{"node_memory_MemTotal_bytes", nil, 2048 * 1024},
		{"node_memory_MemFree_bytes", nil, 512 * 1024},
		{"node_memory_Active_anon_bytes", nil, 100 * 1024},
		{"node_memory_HugePages_Total", nil, 4},
		{"node_memory_Hugepagesize_bytes", nil, 2048 * 1024},
		{"node_vmstat_pgpgin", nil, 11},
		{"node_vmstat_pswpin", nil, 22},
		{"node_vmstat_pgmajfault", nil, 33},
		{"node_vmstat_oom_kill", nil, 44},
		{"node_network_receive_bytes_total", []string{"device", "lo"}, 100},
		{"node_network_receive_errs_total", []string{"device", "eth0"}, 1},
		{"node_network_receive_drop_total", []string{"device", "eth0"}, 2},
		{"node_network_transmit_bytes_total", []string{"device", "eth0"}, 2000},
		{"node_network_transmit_packets_total", []string{"device", "eth0"}, 20},
		{"node_network_transmit_errs_total", []string{"device", "eth0"}, 3},
		{"node_network_transmit_drop_total", []string{"device", "eth0"}, 4},
		{"node_disk_reads_completed_total", []string{"device", "vda"}, 10},
		{"node_disk_read_bytes_total", []string{"device", "vda"}, 20 * 512},
		{"node_disk_read_time_seconds_total", []string{"device", "vda"}, 0.03},
		{"node_disk_writes_completed_total", []string{"device", "vda"}, 40},
		{"node_disk_written_bytes_total", []string{"device", "vda"}, 80 * 512},
		{"node_disk_write_time_seconds_total", []string{"device", "vda"}, 0.09},
		{"node_disk_io_now", []string{"device", "vda"}, 1},
		{"node_disk_io_time_seconds_total", []string{"device", "vda"}, 0.1},
		{"node_filefd_allocated", nil, 1024},
		{"node_filefd_maximum", nil, 65536},
		{"node_pressure_cpu_waiting_seconds_total", nil, 1.5},
		{"node_pressure_memory_waiting_seconds_total", nil, 2},
		{"node_pressure_memory_stalled_seconds_total", nil, 1},
		{"node_time_seconds", nil, 1700000100.25},
	}
	for _, tt := range tests {
		got, ok := idx.find(tt.name, tt.kv...)
		if !ok {
			t.Errorf("%s%v: missing", tt.name, tt.kv)
			continue
		}
		if math.Abs(got-tt.want) > 1e-9*math.Max(1, math.Abs(tt.want)) {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.kv, got, tt.want)
		}
	}

	absent := []struct {
		name string
		kv   []string
		why  string
	}{
		{"node_vmstat_numa_hit", nil, "not in node_exporter's default vmstat fields"},
		{"node_vmstat_nr_free_pages", nil, "not in node_exporter's default vmstat fields"},
		{"node_disk_reads_completed_total", []string{"device", "loop0"}, "loop devices are excluded"},
		{"node_disk_reads_completed_total", []string{"device", "vda1"}, "partitions are excluded"},
		{"node_pressure_cpu_stalled_seconds_total", nil, "not exported"},
		{"node_pressure_io_waiting_seconds_total", nil, "pressure/io is missing"},
		{"node_filesystem_size_bytes", nil, "self/mountinfo is missing"},
	}
	for _, tt := range absent {
		if _, ok := idx.find(tt.name, tt.kv...); ok {
			t.Errorf("%s%v present; want absent: %s", tt.name, tt.kv, tt.why)
		}
	}
	if n := len(idx["node_cpu_seconds_total"]); n != 16 {
		t.Errorf("%d node_cpu_seconds_total series, want 2 CPUs x 8 modes", n)
	}
	if n := len(idx["node_network_receive_bytes_total"]); n != 2 {
		t.Errorf("%d node_network_receive_bytes_total series, want 2 (lo kept)", n)
	}
}

func TestCollectFixtureExcludes(t *testing.T) {
	proc := writeProc(t, map[string]string{"net/dev": fixtureNetdev, "diskstats": fixtureDiskstats})
	cfg := fixtureConfig(proc)
	cfg.NetworkDevicesExclude = "^lo$"
	cfg.DiskDevicesExclude = ""
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	series, err := c.Collect(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	idx := indexSeries(series)
	if _, ok := idx.find("node_network_receive_bytes_total", "device", "lo"); ok {
		t.Error("lo reported despite NetworkDevicesExclude ^lo$")
	}
	if n := len(idx["node_disk_io_now"]); n != 3 {
		t.Errorf("%d disks, want all 3 with an empty DiskDevicesExclude", n)
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "no-such-proc")
	tests := []struct {
		name string
		cfg  func(*Config)
		want []string // substrings of the error
	}{
		{"missing ProcPath", func(c *Config) { c.ProcPath = missing }, []string{"ProcPath", missing, "no such file"}},
		{"ProcPath is a file", func(c *Config) { c.ProcPath = file }, []string{"ProcPath", file, "not a directory"}},
		{"missing SysPath", func(c *Config) { c.SysPath = missing }, []string{"SysPath", missing}},
		{"bad mount regexp", func(c *Config) { c.MountPointsExclude = "(" }, []string{"MountPointsExclude"}},
		{"bad disk regexp", func(c *Config) { c.DiskDevicesExclude = "[" }, []string{"DiskDevicesExclude"}},
		{"bad network regexp", func(c *Config) { c.NetworkDevicesExclude = "*" }, []string{"NetworkDevicesExclude"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.cfg(&cfg)
			_, err := New(cfg)
			if err == nil {
				t.Fatal("New succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestNewZeroConfigUsesDefaults(t *testing.T) {
	c, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if c.procPath != DefaultProcPath || !c.fsTypeExcluded["overlay"] {
		t.Errorf("zero Config: proc %q, overlay excluded %v; want defaults", c.procPath, c.fsTypeExcluded["overlay"])
	}
}

func TestCollectMalformed(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		errs    []string // subsystems named in the error
		absent  []string // metric names that must be missing
		present []string // metric names that must still be there
	}{
		{
			name:    "garbage loadavg",
			files:   map[string]string{"loadavg": "garbage\n", "stat": fixtureStat, "meminfo": fixtureMeminfo},
			errs:    []string{"host: loadavg:"},
			absent:  []string{"node_load1", "node_load5", "node_load15"},
			present: []string{"node_cpu_seconds_total", "node_memory_MemTotal_bytes", "node_time_seconds"},
		},
		{
			name:    "non-numeric load",
			files:   map[string]string{"loadavg": "0.1 x 0.3 1/2 3\n", "stat": fixtureStat, "meminfo": fixtureMeminfo},
			errs:    []string{"host: loadavg:"},
			absent:  []string{"node_load1"},
			present: []string{"node_cpu_seconds_total", "node_memory_MemTotal_bytes"},
		},
		{
			name:    "garbage meminfo",
			files:   map[string]string{"loadavg": fixtureLoadavg, "stat": fixtureStat, "meminfo": "MemTotal: 10 kB\n\x00\x01 garbage here\n"},
			errs:    []string{"host: meminfo: line 2"},
			absent:  []string{"node_memory_MemTotal_bytes"}, // no partial meminfo
			present: []string{"node_load1", "node_cpu_seconds_total"},
		},
		{
			name:    "meminfo value not a number",
			files:   map[string]string{"loadavg": fixtureLoadavg, "meminfo": "MemTotal: lots kB\n"},
			errs:    []string{"host: meminfo: line 1", "not an integer"},
			present: []string{"node_load1"},
		},
		{
			name:    "meminfo unknown unit",
			files:   map[string]string{"loadavg": fixtureLoadavg, "meminfo": "MemTotal: 10 MB\n"},
			errs:    []string{"host: meminfo: line 1", "unit"},
			present: []string{"node_load1"},
		},
		{
			name:    "meminfo duplicate field",
			files:   map[string]string{"loadavg": fixtureLoadavg, "meminfo": "MemTotal: 10 kB\nMemTotal: 11 kB\n"},
			errs:    []string{"host: meminfo: line 2", "twice"},
			present: []string{"node_load1"},
		},
		{
			name:    "meminfo empty field name",
			files:   map[string]string{"loadavg": fixtureLoadavg, "meminfo": ": 8 kB\n"},
			errs:    []string{"host: meminfo: line 1"},
			present: []string{"node_load1"},
		},
		{
			name:    "meminfo field making an invalid name",
			files:   map[string]string{"loadavg": fixtureLoadavg, "meminfo": "Mem-Total: 10 kB\n"},
			errs:    []string{"host: meminfo:", "valid metric name"},
			present: []string{"node_load1"},
		},
		{
			name:    "garbage stat",
			files:   map[string]string{"loadavg": fixtureLoadavg, "stat": "cpu0 x y z\nctxt nope\n", "meminfo": fixtureMeminfo},
			errs:    []string{"host: stat:"},
			absent:  []string{"node_cpu_seconds_total", "node_context_switches_total"},
			present: []string{"node_load1", "node_memory_MemTotal_bytes"},
		},
		{
			name:    "all three garbage",
			files:   map[string]string{"loadavg": "?", "stat": "ctxt ?\n", "meminfo": "?"},
			errs:    []string{"host: loadavg:", "host: stat:", "host: meminfo:"},
			present: []string{"node_time_seconds", "node_uname_info"},
		},
		{
			name:    "short net/dev line",
			files:   map[string]string{"loadavg": fixtureLoadavg, "net/dev": "h1\nh2\n eth0: 1 2 3\n"},
			errs:    []string{"host: netdev: line 3"},
			absent:  []string{"node_network_receive_bytes_total"},
			present: []string{"node_load1"},
		},
		{
			name:    "file-nr with two fields",
			files:   map[string]string{"loadavg": fixtureLoadavg, "sys/fs/file-nr": "1 2\n"},
			errs:    []string{"host: filefd:", "3 fields"},
			present: []string{"node_load1"},
		},
		{
			name:    "bad PSI line",
			files:   map[string]string{"loadavg": fixtureLoadavg, "pressure/io": "some avg10=x\n"},
			errs:    []string{"host: pressure: io:"},
			present: []string{"node_load1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(fixtureConfig(writeProc(t, tt.files)))
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			series, err := c.Collect(now)
			if err == nil {
				t.Fatal("Collect returned no error")
			}
			checkWellFormed(t, series, now)
			for _, w := range tt.errs {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "panic") {
				t.Errorf("a parser panicked: %v", err)
			}
			idx := indexSeries(series)
			for _, name := range tt.absent {
				if len(idx[name]) > 0 {
					t.Errorf("%s present after its file failed to parse", name)
				}
			}
			for _, name := range tt.present {
				if len(idx[name]) == 0 {
					t.Errorf("%s missing; a failing subsystem must not hide the others", name)
				}
			}
		})
	}
}

func TestUnescapeMount(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/", "/"},
		{`/mnt/my\040disk`, "/mnt/my disk"},
		{`/a\011b`, "/a\tb"},
		{`/back\134slash`, `/back\slash`},
		{`/not\08`, `/not\08`},
		{`/trailing\04`, `/trailing\04`},
	}
	for _, tt := range tests {
		if got := unescapeMount(tt.in); got != tt.want {
			t.Errorf("unescapeMount(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestResultOwnedByCaller checks that appending to one series' labels does
// not overwrite its neighbour and that the next Collect leaves it alone.
func TestResultOwnedByCaller(t *testing.T) {
	c, err := New(fixtureConfig(writeProc(t, map[string]string{"loadavg": fixtureLoadavg})))
	if err != nil {
		t.Fatal(err)
	}
	first, err := c.Collect(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	before := make([]string, len(first))
	for i, s := range first {
		before[i] = seriesKey(s)
	}
	first[0].Labels = append(first[0].Labels, tsdb.Label{Name: "node", Value: "x"})
	if _, err := c.Collect(time.Now()); err != nil {
		t.Fatal(err)
	}
	for i, s := range first[1:] {
		if seriesKey(s) != before[i+1] {
			t.Fatalf("series %d changed from %q to %q", i+1, before[i+1], seriesKey(s))
		}
	}
}

func FuzzCollectMalformedProc(f *testing.F) {
	for _, seed := range []string{fixtureLoadavg, fixtureStat, fixtureMeminfo, "", "\n\n", "cpu", "MemTotal:", "intr", "cpu99 1 2"} {
		f.Add([]byte(seed))
	}
	proc := f.TempDir() // one directory, rewritten per input: fuzzing is bound by file writes
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, name := range []string{"meminfo", "loadavg", "stat"} {
			if err := os.WriteFile(filepath.Join(proc, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		c, err := New(fixtureConfig(proc))
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		series, err := c.Collect(now)
		if err != nil && strings.Contains(err.Error(), "panic") {
			t.Fatalf("a parser panicked: %v", err)
		}
		checkWellFormed(t, series, now)
	})
}

func BenchmarkCollect(b *testing.B) {
	c, err := New(DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var n int
	for b.Loop() {
		series, err := c.Collect(time.Now())
		if err != nil {
			b.Fatal(err)
		}
		n = len(series)
	}
	b.ReportMetric(float64(n), "series")
}

func TestCollectFixtureFilesystems(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "gone")
	mountinfo := strings.Join([]string{
		"27 1 254:0 / / rw,relatime - ext4 /dev/vda rw",
		"27 1 254:0 / / rw,relatime - ext4 /dev/vda rw", // mounted twice: reported once
		"28 27 0:25 / /merged rw - overlay overlay rw",  // excluded fstype
		"29 27 0:26 / /dev/shm rw - tmpfs tmpfs rw",     // excluded mount point
		"30 27 0:27 / " + missing + ` ro,relatime - ext4 /dev/my\040disk rw`,
		"",
	}, "\n")
	c, err := New(fixtureConfig(writeProc(t, map[string]string{"self/mountinfo": mountinfo})))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	series, err := c.Collect(now)
	if err != nil {
		t.Fatal(err)
	}
	checkWellFormed(t, series, now)
	idx := indexSeries(series)

	tests := []struct {
		name string
		kv   []string
		want float64
		ok   bool
	}{
		{"node_filesystem_device_error", []string{"mountpoint", "/", "device", "/dev/vda", "fstype", "ext4"}, 0, true},
		{"node_filesystem_readonly", []string{"mountpoint", "/"}, 0, true},
		{"node_filesystem_device_error", []string{"mountpoint", missing, "device", "/dev/my disk"}, 1, true},
		{"node_filesystem_size_bytes", []string{"mountpoint", missing}, 0, false},
		{"node_filesystem_size_bytes", []string{"mountpoint", "/merged"}, 0, false},
		{"node_filesystem_size_bytes", []string{"mountpoint", "/dev/shm"}, 0, false},
	}
	for _, tt := range tests {
		got, ok := idx.find(tt.name, tt.kv...)
		if ok != tt.ok || (ok && got != tt.want) {
			t.Errorf("%s%v = %v (present %v), want %v (present %v)", tt.name, tt.kv, got, ok, tt.want, tt.ok)
		}
	}
	if n := len(idx["node_filesystem_size_bytes"]); n != 1 {
		t.Errorf("%d node_filesystem_size_bytes series, want 1 (/ once)", n)
	}
	size, _ := idx.find("node_filesystem_size_bytes", "mountpoint", "/")
	avail, _ := idx.find("node_filesystem_avail_bytes", "mountpoint", "/")
	if size <= 0 || avail > size {
		t.Errorf("/: size %v avail %v", size, avail)
	}
}

// TestCPUCountersNeverGoBack checks the guard against the kernel's idle and
// iowait accounting jumping backwards, which rate() would read as a reset.
func TestCPUCountersNeverGoBack(t *testing.T) {
	proc := writeProc(t, map[string]string{"stat": "cpu0 100 0 0 2000 50 0 0 0\n"})
	c, err := New(fixtureConfig(proc))
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		stat           string
		idle, user     float64
		iowaitExpected float64
	}{
		{"cpu0 100 0 0 2000 50 0 0 0\n", 20, 1, 0.5},
		{"cpu0 110 0 0 1990 40 0 0 0\n", 20, 1.1, 0.5}, // idle and iowait went back: held
		{"cpu0 120 0 0 2100 60 0 0 0\n", 21, 1.2, 0.6},
	}
	for i, st := range steps {
		if err := os.WriteFile(filepath.Join(proc, "stat"), []byte(st.stat), 0o644); err != nil {
			t.Fatal(err)
		}
		series, err := c.Collect(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		idx := indexSeries(series)
		for mode, want := range map[string]float64{"idle": st.idle, "user": st.user, "iowait": st.iowaitExpected} {
			if got, _ := idx.find("node_cpu_seconds_total", "cpu", "0", "mode", mode); math.Abs(got-want) > 1e-9 {
				t.Errorf("step %d: mode %s = %v, want %v", i, mode, got, want)
			}
		}
	}
}
