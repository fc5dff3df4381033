package container

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// The parsers below read the kernel's flat cgroup and procfs formats. They
// never panic on malformed input: they return an error naming the line.

var errEmpty = errors.New("empty file")

// nextLine returns the first line of data and the rest.
func nextLine(data []byte) (line, rest []byte) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return data[:i], data[i+1:]
	}
	return data, nil
}

// parseFlatKeyed reads "key value" lines (cpu.stat, memory.stat,
// memory.events, cpuacct.stat, memory.oom_control) and calls fn for each.
// Empty lines are skipped.
func parseFlatKeyed(data []byte, fn func(key []byte, val uint64)) error {
	for n := 1; len(data) > 0; n++ {
		var line []byte
		line, data = nextLine(data)
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		sp := bytes.IndexAny(line, " \t")
		if sp <= 0 {
			return fmt.Errorf("line %d: %q: want \"key value\"", n, line)
		}
		key, val := line[:sp], bytes.TrimSpace(line[sp+1:])
		v, err := strconv.ParseUint(string(val), 10, 64)
		if err != nil {
			return fmt.Errorf("line %d: %q: %w", n, line, err)
		}
		fn(key, v)
	}
	return nil
}

// parseUint reads a file holding one unsigned number (cpuacct.usage,
// memory.usage_in_bytes, memory.current, cpu.cfs_period_us).
func parseUint(data []byte) (uint64, error) {
	s := bytes.TrimSpace(data)
	if len(s) == 0 {
		return 0, errEmpty
	}
	return strconv.ParseUint(string(s), 10, 64)
}

// parseInt reads a file holding one signed number (cpu.cfs_quota_us, where
// -1 means unlimited).
func parseInt(data []byte) (int64, error) {
	s := bytes.TrimSpace(data)
	if len(s) == 0 {
		return 0, errEmpty
	}
	return strconv.ParseInt(string(s), 10, 64)
}

// parseMax reads a v2 limit file (memory.max): a number or "max".
func parseMax(data []byte) (v uint64, unlimited bool, err error) {
	s := bytes.TrimSpace(data)
	if string(s) == "max" {
		return 0, true, nil
	}
	v, err = parseUint(s)
	return v, false, err
}

// parseCPUMax reads v2 cpu.max: "$QUOTA $PERIOD", QUOTA being "max" when
// unlimited (then quota is -1).
func parseCPUMax(data []byte) (quota int64, period uint64, err error) {
	f := bytes.Fields(data)
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("%q: want \"QUOTA PERIOD\"", bytes.TrimSpace(data))
	}
	if string(f[0]) == "max" {
		quota = -1
	} else if quota, err = strconv.ParseInt(string(f[0]), 10, 64); err != nil {
		return 0, 0, err
	}
	period, err = strconv.ParseUint(string(f[1]), 10, 64)
	return quota, period, err
}

// parseIOStat reads v2 io.stat lines:
// "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0". Unknown keys are
// ignored (kernels add them); a missing key counts as 0.
func parseIOStat(data []byte, fn func(dev string, rbytes, wbytes uint64)) error {
	for n := 1; len(data) > 0; n++ {
		var line []byte
		line, data = nextLine(data)
		f := bytes.Fields(line)
		if len(f) == 0 {
			continue
		}
		if !isDevice(f[0]) {
			return fmt.Errorf("line %d: %q: want \"MAJ:MIN key=value…\"", n, line)
		}
		var r, w uint64
		for _, kv := range f[1:] {
			k, v, ok := bytes.Cut(kv, []byte{'='})
			if !ok {
				return fmt.Errorf("line %d: %q: want key=value", n, kv)
			}
			var dst *uint64
			switch string(k) {
			case "rbytes":
				dst = &r
			case "wbytes":
				dst = &w
			default:
				continue
			}
			x, err := strconv.ParseUint(string(v), 10, 64)
			if err != nil {
				return fmt.Errorf("line %d: %q: %w", n, kv, err)
			}
			*dst = x
		}
		fn(string(f[0]), r, w)
	}
	return nil
}

// parseBlkio reads v1 blkio.throttle.io_service_bytes lines "8:0 Read 123"
// and calls fn for the Read and Write operations; the other operations
// (Sync, Async, Discard, Total) and the trailing "Total N" line are skipped.
func parseBlkio(data []byte, fn func(dev, op string, v uint64)) error {
	for n := 1; len(data) > 0; n++ {
		var line []byte
		line, data = nextLine(data)
		f := bytes.Fields(line)
		switch {
		case len(f) == 0:
			continue
		case len(f) == 2 && string(f[0]) == "Total":
			continue
		case len(f) != 3 || !isDevice(f[0]):
			return fmt.Errorf("line %d: %q: want \"MAJ:MIN Op bytes\"", n, line)
		}
		v, err := strconv.ParseUint(string(f[2]), 10, 64)
		if err != nil {
			return fmt.Errorf("line %d: %q: %w", n, line, err)
		}
		switch string(f[1]) {
		case "Read":
			fn(string(f[0]), "Read", v)
		case "Write":
			fn(string(f[0]), "Write", v)
		}
	}
	return nil
}

// isDevice reports whether b is "MAJ:MIN".
func isDevice(b []byte) bool {
	maj, min, ok := bytes.Cut(b, []byte{':'})
	return ok && isDigits(maj) && isDigits(min)
}

func isDigits(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// netDev is one interface's counters from /proc/<pid>/net/dev.
type netDev struct {
	iface                        string
	rxBytes, rxPackets, rxErrors uint64
	txBytes, txPackets, txErrors uint64
}

// parseNetDev reads /proc/<pid>/net/dev: two header lines, then
// "iface: rx_bytes rx_packets rx_errs rx_drop rx_fifo rx_frame rx_compressed
// rx_multicast tx_bytes tx_packets tx_errs …" (16 counters).
func parseNetDev(data []byte, fn func(netDev)) error {
	for n := 1; len(data) > 0; n++ {
		var line []byte
		line, data = nextLine(data)
		if n <= 2 || len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		name, rest, ok := bytes.Cut(line, []byte{':'})
		name = bytes.TrimSpace(name)
		f := bytes.Fields(rest)
		if !ok || len(name) == 0 || len(f) < 16 {
			return fmt.Errorf("line %d: %q: want \"iface: 16 counters\"", n, line)
		}
		var v [16]uint64
		for i := range v {
			x, err := strconv.ParseUint(string(f[i]), 10, 64)
			if err != nil {
				return fmt.Errorf("line %d: %q: %w", n, f[i], err)
			}
			v[i] = x
		}
		fn(netDev{iface: string(name),
			rxBytes: v[0], rxPackets: v[1], rxErrors: v[2],
			txBytes: v[8], txPackets: v[9], txErrors: v[10]})
	}
	return nil
}

// firstPID returns the first pid listed in cgroup.procs, 0 when empty.
func firstPID(data []byte) (int, error) {
	line, _ := nextLine(data)
	line = bytes.TrimSpace(line)
	if len(line) == 0 {
		return 0, nil
	}
	pid, err := strconv.Atoi(string(line))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("%q: not a pid", line)
	}
	return pid, nil
}

// ProcCgroup is the parsed /proc/<pid>/cgroup of a process.
type ProcCgroup struct {
	// Unified is the cgroup v2 path (the "0::" line), "" when absent.
	Unified string
	// Controllers maps each v1 controller ("cpu", "cpuacct", "memory",
	// "blkio", …; comounted ones listed separately) to its path.
	Controllers map[string]string
}

// ParseProcCgroup parses /proc/<pid>/cgroup ("ID:CONTROLLERS:PATH" lines),
// to build an Instance for a process: CgroupPath = Unified on v2; on v1
// CgroupPath = Controllers["memory"] and ControllerPaths = Controllers.
func ParseProcCgroup(data []byte) (ProcCgroup, error) {
	pc := ProcCgroup{Controllers: map[string]string{}}
	for n := 1; len(data) > 0; n++ {
		var line []byte
		line, data = nextLine(data)
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		parts := bytes.SplitN(line, []byte{':'}, 3)
		if len(parts) != 3 || !isDigits(parts[0]) || len(parts[2]) == 0 || parts[2][0] != '/' {
			return pc, fmt.Errorf("line %d: %q: want \"ID:CONTROLLERS:/PATH\"", n, line)
		}
		path := string(parts[2])
		if string(parts[0]) == "0" && len(parts[1]) == 0 {
			pc.Unified = path
			continue
		}
		for _, ctl := range bytes.Split(parts[1], []byte{','}) {
			if len(ctl) > 0 {
				pc.Controllers[string(ctl)] = path
			}
		}
	}
	return pc, nil
}
