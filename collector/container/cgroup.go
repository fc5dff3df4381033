package container

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"opspilot/internal/smallfile"
	"opspilot/tsdb"
)

// userHZ is the kernel's USER_HZ, the unit of cpuacct.stat; it is 100 on
// every Linux architecture opspilot runs on.
const userHZ = 100

// unlimitedV1 is the smallest value v1 memory.limit_in_bytes reports for
// "no limit" (PAGE_COUNTER_MAX rounded to pages, ~2^63).
const unlimitedV1 = 1 << 62

// maxFileSize bounds what is read from one cgroup or proc file.
const maxFileSize = 4 << 20

// instanceReader reads one instance's files, collecting errors.
type instanceReader struct {
	c    *Collector
	in   *Instance
	errs []error
}

// read returns the contents of path (valid until the next read), or
// ok=false when the file does not exist (a controller not enabled, an older
// kernel) or cannot be read; the latter is recorded as an error.
func (r *instanceReader) read(path string) (data []byte, ok bool) {
	data, err := r.c.readFile(path)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			r.errs = append(r.errs, err)
		}
		return nil, false
	}
	return data, true
}

// fail records that path's contents were malformed.
func (r *instanceReader) fail(path string, err error) {
	r.errs = append(r.errs, fmt.Errorf("parse %s: %w", path, err))
}

func (r *instanceReader) err() error {
	if len(r.errs) == 0 {
		return nil
	}
	return fmt.Errorf("container instance %q (service %q): %w", r.in.Instance, r.in.Service, errors.Join(r.errs...))
}

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

func (c *Collector) collectInstance(e *emitter, in *Instance, now time.Time) error {
	e.base = []tsdb.Label{
		{Name: "service", Value: in.Service},
		{Name: "instance", Value: in.Instance},
		{Name: "tenant", Value: in.Tenant},
	}
	r := instanceReader{c: c, in: in}
	var found bool
	if c.v2 {
		found = c.readV2(e, &r)
	} else {
		found = c.readV1(e, &r)
	}
	if !found {
		r.errs = append(r.errs, fmt.Errorf("cgroup %q not found under %s (has the instance exited, or is CgroupPath wrong?)", in.CgroupPath, c.cfg.CgroupRoot))
		return r.err()
	}
	e.add("container_restarts_total", float64(in.Restarts))
	e.add("container_last_seen", float64(now.Unix()))
	return r.err()
}

// readV2 reads a unified-hierarchy cgroup; false when its directory is
// missing.
func (c *Collector) readV2(e *emitter, r *instanceReader) bool {
	dir := filepath.Join(c.cfg.CgroupRoot, r.in.CgroupPath)
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		return false
	}
	file := func(name string) string { return filepath.Join(dir, name) }

	{
		p := file("cpu.stat")
		if data, ok := r.read(p); ok {
			var usage, user, sys, periods, throttled, throttledUsec uint64
			err := parseFlatKeyed(data, func(k []byte, v uint64) {
				switch string(k) {
				case "usage_usec":
					usage = v
				case "user_usec":
					user = v
				case "system_usec":
					sys = v
				case "nr_periods":
					periods = v
				case "nr_throttled":
					throttled = v
				case "throttled_usec":
					throttledUsec = v
				}
			})
			if err != nil {
				r.fail(p, err)
			} else {
				e.add("container_cpu_usage_seconds_total", float64(usage)/1e6)
				e.add("container_cpu_user_seconds_total", float64(user)/1e6)
				e.add("container_cpu_system_seconds_total", float64(sys)/1e6)
				e.add("container_cpu_cfs_periods_total", float64(periods))
				e.add("container_cpu_cfs_throttled_periods_total", float64(throttled))
				e.add("container_cpu_cfs_throttled_seconds_total", float64(throttledUsec)/1e6)
			}
		}
	}
	{
		p := file("cpu.max")
		if data, ok := r.read(p); ok {
			if quota, period, err := parseCPUMax(data); err != nil {
				r.fail(p, err)
			} else {
				e.add("container_spec_cpu_quota", float64(max(quota, 0)))
				e.add("container_spec_cpu_period", float64(period))
			}
		}
	}

	var usage uint64
	haveUsage := false
	{
		p := file("memory.current")
		if data, ok := r.read(p); ok {
			if v, err := parseUint(data); err != nil {
				r.fail(p, err)
			} else {
				usage, haveUsage = v, true
				e.add("container_memory_usage_bytes", float64(v))
			}
		}
	}
	{
		p := file("memory.stat")
		if data, ok := r.read(p); ok {
			var anon, fileBytes, inactiveFile uint64
			err := parseFlatKeyed(data, func(k []byte, v uint64) {
				switch string(k) {
				case "anon":
					anon = v
				case "file":
					fileBytes = v
				case "inactive_file":
					inactiveFile = v
				}
			})
			if err != nil {
				r.fail(p, err)
			} else {
				e.add("container_memory_rss", float64(anon))
				e.add("container_memory_cache", float64(fileBytes))
				if haveUsage {
					e.add("container_memory_working_set_bytes", float64(workingSet(usage, inactiveFile)))
				}
			}
		}
	}
	{
		p := file("memory.max")
		if data, ok := r.read(p); ok {
			if v, unlimited, err := parseMax(data); err != nil {
				r.fail(p, err)
			} else {
				if unlimited {
					v = 0
				}
				e.add("container_spec_memory_limit_bytes", float64(v))
			}
		}
	}
	{
		p := file("memory.events")
		if data, ok := r.read(p); ok {
			var oom uint64
			if err := parseFlatKeyed(data, func(k []byte, v uint64) {
				if string(k) == "oom_kill" {
					oom = v
				}
			}); err != nil {
				r.fail(p, err)
			} else {
				e.add("container_oom_events_total", float64(oom))
			}
		}
	}
	{
		p := file("io.stat")
		if data, ok := r.read(p); ok {
			mark := len(e.out)
			if err := parseIOStat(data, func(dev string, rb, wb uint64) {
				e.add("container_blkio_device_usage_total", float64(rb), tsdb.Label{Name: "device", Value: dev}, tsdb.Label{Name: "operation", Value: "Read"})
				e.add("container_blkio_device_usage_total", float64(wb), tsdb.Label{Name: "device", Value: dev}, tsdb.Label{Name: "operation", Value: "Write"})
			}); err != nil {
				e.out = e.out[:mark]
				r.fail(p, err)
			}
		}
	}
	c.readNetwork(e, r, file("cgroup.procs"))
	e.add("container_start_time_seconds", float64(changeTime(fi).Unix()))
	return true
}

// readV1 reads a cgroup from the per-controller v1 hierarchies; false when
// none of its controller directories exists.
func (c *Collector) readV1(e *emitter, r *instanceReader) bool {
	var start time.Time
	found := false
	dirs := map[string]string{}
	for _, ctl := range [...]string{"cpu", "cpuacct", "memory", "blkio"} {
		rel := r.in.CgroupPath
		if p, ok := r.in.ControllerPaths[ctl]; ok {
			rel = p
		}
		dir := filepath.Join(c.cfg.CgroupRoot, ctl, rel)
		fi, err := os.Stat(dir)
		if err != nil || !fi.IsDir() {
			continue
		}
		dirs[ctl] = dir
		found = true
		if t := changeTime(fi); start.IsZero() || t.Before(start) {
			start = t
		}
	}
	if !found {
		return false
	}
	file := func(ctl, name string) string {
		if d, ok := dirs[ctl]; ok {
			return filepath.Join(d, name)
		}
		return ""
	}
	read := func(p string) ([]byte, bool) {
		if p == "" {
			return nil, false
		}
		return r.read(p)
	}

	{
		p := file("cpuacct", "cpuacct.usage")
		if data, ok := read(p); ok {
			if v, err := parseUint(data); err != nil {
				r.fail(p, err)
			} else {
				e.add("container_cpu_usage_seconds_total", float64(v)/1e9)
			}
		}
	}
	{
		p := file("cpuacct", "cpuacct.stat")
		if data, ok := read(p); ok {
			var user, sys uint64
			if err := parseFlatKeyed(data, func(k []byte, v uint64) {
				switch string(k) {
				case "user":
					user = v
				case "system":
					sys = v
				}
			}); err != nil {
				r.fail(p, err)
			} else {
				e.add("container_cpu_user_seconds_total", float64(user)/userHZ)
				e.add("container_cpu_system_seconds_total", float64(sys)/userHZ)
			}
		}
	}
	{
		p := file("cpu", "cpu.stat")
		if data, ok := read(p); ok {
			var periods, throttled, throttledNs uint64
			if err := parseFlatKeyed(data, func(k []byte, v uint64) {
				switch string(k) {
				case "nr_periods":
					periods = v
				case "nr_throttled":
					throttled = v
				case "throttled_time":
					throttledNs = v
				}
			}); err != nil {
				r.fail(p, err)
			} else {
				e.add("container_cpu_cfs_periods_total", float64(periods))
				e.add("container_cpu_cfs_throttled_periods_total", float64(throttled))
				e.add("container_cpu_cfs_throttled_seconds_total", float64(throttledNs)/1e9)
			}
		}
	}
	{
		p := file("cpu", "cpu.cfs_quota_us")
		if data, ok := read(p); ok {
			if v, err := parseInt(data); err != nil {
				r.fail(p, err)
			} else {
				e.add("container_spec_cpu_quota", float64(max(v, 0)))
			}
		}
	}
	{
		p := file("cpu", "cpu.cfs_period_us")
		if data, ok := read(p); ok {
			if v, err := parseUint(data); err != nil {
				r.fail(p, err)
			} else {
				e.add("container_spec_cpu_period", float64(v))
			}
		}
	}

	var usage uint64
	haveUsage := false
	{
		p := file("memory", "memory.usage_in_bytes")
		if data, ok := read(p); ok {
			if v, err := parseUint(data); err != nil {
				r.fail(p, err)
			} else {
				usage, haveUsage = v, true
				e.add("container_memory_usage_bytes", float64(v))
			}
		}
	}
	{
		p := file("memory", "memory.stat")
		if data, ok := read(p); ok {
			// total_* include descendants (what cAdvisor reports); the
			// plain keys are the fallback for kernels without hierarchy.
			var rss, cache, inactive, totalRSS, totalCache, totalInactive uint64
			var haveTotal bool
			if err := parseFlatKeyed(data, func(k []byte, v uint64) {
				switch string(k) {
				case "rss":
					rss = v
				case "cache":
					cache = v
				case "inactive_file":
					inactive = v
				case "total_rss":
					totalRSS, haveTotal = v, true
				case "total_cache":
					totalCache = v
				case "total_inactive_file":
					totalInactive = v
				}
			}); err != nil {
				r.fail(p, err)
			} else {
				if haveTotal {
					rss, cache, inactive = totalRSS, totalCache, totalInactive
				}
				e.add("container_memory_rss", float64(rss))
				e.add("container_memory_cache", float64(cache))
				if haveUsage {
					e.add("container_memory_working_set_bytes", float64(workingSet(usage, inactive)))
				}
			}
		}
	}
	{
		p := file("memory", "memory.limit_in_bytes")
		if data, ok := read(p); ok {
			if v, err := parseUint(data); err != nil {
				r.fail(p, err)
			} else {
				if v >= unlimitedV1 {
					v = 0
				}
				e.add("container_spec_memory_limit_bytes", float64(v))
			}
		}
	}
	{
		p := file("memory", "memory.oom_control")
		if data, ok := read(p); ok {
			var oom uint64
			if err := parseFlatKeyed(data, func(k []byte, v uint64) {
				if string(k) == "oom_kill" {
					oom = v
				}
			}); err != nil {
				r.fail(p, err)
			} else {
				e.add("container_oom_events_total", float64(oom))
			}
		}
	}
	{
		p := file("blkio", "blkio.throttle.io_service_bytes")
		if data, ok := read(p); ok {
			mark := len(e.out)
			if err := parseBlkio(data, func(dev, op string, v uint64) {
				e.add("container_blkio_device_usage_total", float64(v), tsdb.Label{Name: "device", Value: dev}, tsdb.Label{Name: "operation", Value: op})
			}); err != nil {
				e.out = e.out[:mark]
				r.fail(p, err)
			}
		}
	}
	procs := file("memory", "cgroup.procs")
	if procs == "" {
		procs = file("cpu", "cgroup.procs")
	}
	if procs != "" {
		c.readNetwork(e, r, procs)
	}
	e.add("container_start_time_seconds", float64(start.Unix()))
	return true
}

// workingSet is usage minus inactive file pages, floored at 0 (cAdvisor).
func workingSet(usage, inactiveFile uint64) uint64 {
	if inactiveFile > usage {
		return 0
	}
	return usage - inactiveFile
}

// readNetwork emits the network counters of the cgroup's first process,
// seen through its network namespace. Unreadable procs or net/dev (the
// process exited, no permission) are skipped silently; "lo" is left out, as
// cAdvisor does.
func (c *Collector) readNetwork(e *emitter, r *instanceReader, procsPath string) {
	data, err := c.readFile(procsPath)
	if err != nil {
		return
	}
	pid, err := firstPID(data)
	if err != nil {
		r.fail(procsPath, err)
		return
	}
	if pid == 0 {
		return
	}
	p := filepath.Join(c.procRoot, strconv.Itoa(pid), "net", "dev")
	data, err = c.readFile(p)
	if err != nil {
		return
	}
	mark := len(e.out)
	if err := parseNetDev(data, func(d netDev) {
		if d.iface == "lo" {
			return
		}
		emitNetwork(e, d)
	}); err != nil {
		e.out = e.out[:mark]
		r.fail(p, err)
	}
}

func emitNetwork(e *emitter, d netDev) {
	l := tsdb.Label{Name: "interface", Value: d.iface}
	e.add("container_network_receive_bytes_total", float64(d.rxBytes), l)
	e.add("container_network_transmit_bytes_total", float64(d.txBytes), l)
	e.add("container_network_receive_packets_total", float64(d.rxPackets), l)
	e.add("container_network_transmit_packets_total", float64(d.txPackets), l)
	e.add("container_network_receive_errors_total", float64(d.rxErrors), l)
	e.add("container_network_transmit_errors_total", float64(d.txErrors), l)
}
