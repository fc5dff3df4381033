package host

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// cpuModes are node_cpu_seconds_total's mode label values, in /proc/stat order.
var cpuModes = [...]string{"user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"}

// collectStat reports /proc/stat: per-CPU time and the kernel counters.
func (c *Collector) collectStat(time.Time) error {
	st, err := c.proc.Stat()
	if err != nil {
		return err
	}
	ids := c.cpuIDs[:0]
	for id := range st.CPU {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	c.cpuIDs = ids
	for id := range c.lastCPU {
		if _, ok := st.CPU[id]; !ok { // CPU went offline; start afresh if it returns
			delete(c.lastCPU, id)
		}
	}
	for _, id := range ids {
		s := st.CPU[id]
		if prev, ok := c.lastCPU[id]; ok {
			s = monotonicCPU(prev, s)
		}
		c.lastCPU[id] = s
		cpu := c.cpuLabel(id)
		for i, v := range [...]float64{s.User, s.Nice, s.System, s.Idle, s.Iowait, s.IRQ, s.SoftIRQ, s.Steal} {
			c.b.add("node_cpu_seconds_total", v, "cpu", cpu, "mode", cpuModes[i])
		}
	}
	c.b.add("node_boot_time_seconds", float64(st.BootTime))
	c.b.add("node_context_switches_total", float64(st.ContextSwitches))
	c.b.add("node_intr_total", float64(st.IRQTotal))
	c.b.add("node_forks_total", float64(st.ProcessCreated))
	c.b.add("node_procs_running", float64(st.ProcessesRunning))
	c.b.add("node_procs_blocked", float64(st.ProcessesBlocked))
	return nil
}

// monotonicCPU keeps each mode of a CPU from going backwards. The kernel's
// idle and iowait accounting can jump back slightly (NO_HZ), and a counter
// that decreases reads as a reset to rate(); node_exporter guards the same
// way.
func monotonicCPU(prev, cur procfs.CPUStat) procfs.CPUStat {
	keep := func(p, c *float64) {
		if *c < *p {
			*c = *p
		}
	}
	keep(&prev.User, &cur.User)
	keep(&prev.Nice, &cur.Nice)
	keep(&prev.System, &cur.System)
	keep(&prev.Idle, &cur.Idle)
	keep(&prev.Iowait, &cur.Iowait)
	keep(&prev.IRQ, &cur.IRQ)
	keep(&prev.SoftIRQ, &cur.SoftIRQ)
	keep(&prev.Steal, &cur.Steal)
	keep(&prev.Guest, &cur.Guest)
	keep(&prev.GuestNice, &cur.GuestNice)
	return cur
}

func (c *Collector) cpuLabel(id int64) string {
	s, ok := c.cpuLabels[id]
	if !ok {
		s = strconv.FormatInt(id, 10)
		c.cpuLabels[id] = s
	}
	return s
}

// collectLoadavg reports /proc/loadavg.
func (c *Collector) collectLoadavg(time.Time) error {
	l, err := c.proc.LoadAvg()
	if err != nil {
		return err
	}
	c.b.add("node_load1", l.Load1)
	c.b.add("node_load5", l.Load5)
	c.b.add("node_load15", l.Load15)
	return nil
}

// collectFilefd reports /proc/sys/fs/file-nr: allocated, unused, maximum.
func (c *Collector) collectFilefd(time.Time) error {
	data, err := c.readFile(c.procFile("sys/fs/file-nr"))
	if err != nil {
		return err
	}
	line, _ := nextLine(data)
	c.fields = splitFields(c.fields, line)
	if len(c.fields) != 3 {
		return errors.New("file-nr: want 3 fields (allocated, unused, maximum), got " + strconv.Itoa(len(c.fields)))
	}
	allocated, err := parseInt(c.fields[0])
	if err != nil {
		return err
	}
	maximum, err := parseInt(c.fields[2])
	if err != nil {
		return err
	}
	c.b.add("node_filefd_allocated", allocated)
	c.b.add("node_filefd_maximum", maximum)
	return nil
}

// collectPressure reports pressure stall information from /proc/pressure,
// when the kernel has it. "total" is in microseconds.
func (c *Collector) collectPressure(time.Time) error {
	var errs []error
	for _, res := range [...]string{"cpu", "memory", "io"} {
		psi, err := c.proc.PSIStatsForResource(res)
		if err != nil {
			if !isMissing(err) {
				errs = append(errs, fmt.Errorf("%s: %w", res, err))
			}
			continue
		}
		if psi.Some != nil {
			c.b.add("node_pressure_"+res+"_waiting_seconds_total", float64(psi.Some.Total)/1e6)
		}
		if psi.Full != nil && res != "cpu" {
			c.b.add("node_pressure_"+res+"_stalled_seconds_total", float64(psi.Full.Total)/1e6)
		}
	}
	return errors.Join(errs...)
}

// collectTime reports the collector's clock, which node_exporter exposes to
// detect clock skew between hosts.
func (c *Collector) collectTime(now time.Time) error {
	c.b.add("node_time_seconds", float64(now.UnixNano())/1e9)
	return nil
}

// collectUname reports node_uname_info, whose labels identify the kernel.
func (c *Collector) collectUname(time.Time) error {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return err
	}
	str := func(b []byte) string {
		if i := bytes.IndexByte(b, 0); i >= 0 {
			b = b[:i]
		}
		return labelValue(c.intern(b))
	}
	c.b.add("node_uname_info", 1,
		"domainname", str(u.Domainname[:]),
		"machine", str(u.Machine[:]),
		"nodename", str(u.Nodename[:]),
		"release", str(u.Release[:]),
		"sysname", str(u.Sysname[:]),
		"version", str(u.Version[:]),
	)
	return nil
}
