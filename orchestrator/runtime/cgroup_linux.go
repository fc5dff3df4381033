//go:build linux

package runtime

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"opspilot/orchestrator/model"
)

// cgroupManager creates, fills and removes the process runtime's
// per-instance cgroups: PARENT/INSTANCE under every v1 hierarchy it needs,
// or under the v2 unified hierarchy.
type cgroupManager struct {
	root   string // where the cgroup filesystem is mounted: /sys/fs/cgroup
	parent string // the instances' parent, relative to root: "opspilot"
	v2     bool
}

// newCgroupManager detects the version as the container collector does:
// v2 when root/cgroup.controllers exists (a hybrid host, with v2 mounted
// at root/unified, is v1 here).
func newCgroupManager(root, parent string) *cgroupManager {
	_, err := os.Stat(filepath.Join(root, "cgroup.controllers"))
	return &cgroupManager{root: root, parent: parent, v2: err == nil}
}

// v1Controllers are the hierarchies an instance joins on v1: cpu and memory
// carry the limits, cpuacct lets the collector read CPU usage.
var v1Controllers = [...]string{"cpu", "cpuacct", "memory"}

// cfsPeriod is the CFS period, in microseconds, CPU limits are expressed
// over (the kernel's and Docker's default).
const cfsPeriod = 100_000

// cgroup is one instance's cgroup.
type cgroup struct {
	rel  string            // "/opspilot/INSTANCE": the collector's CgroupPath
	dirs map[string]string // v1: controller -> directory; v2: "" -> directory
	v2   bool
}

func (m *cgroupManager) version() string {
	if m.v2 {
		return "v2"
	}
	return "v1"
}

// create makes the instance's cgroup directories (reusing ones a previous
// run left). It fails when none can be made: not root, a read-only
// cgroupfs, no hierarchy mounted.
func (m *cgroupManager) create(id string) (*cgroup, error) {
	cg := &cgroup{rel: "/" + path.Join(m.parent, id), dirs: map[string]string{}, v2: m.v2}
	if m.v2 {
		parent := filepath.Join(m.root, m.parent)
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return nil, fmt.Errorf("create cgroup %s: %w", parent, err)
		}
		// Children only get cpu.max and memory.max when every ancestor
		// below the root delegates the controllers (the parent may be
		// nested: opspilot/<owner>). Failing here is not fatal: the
		// instance still gets its own cgroup, and setLimits reports the
		// missing controller when a limit needs it.
		dir := m.root
		for _, part := range strings.Split(m.parent, "/") {
			dir = filepath.Join(dir, part)
			for _, c := range [...]string{"+cpu", "+memory"} {
				_ = writeCgroupFile(filepath.Join(dir, "cgroup.subtree_control"), c)
			}
		}
		dir = filepath.Join(parent, id)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("create cgroup %s: %w", dir, err)
		}
		cg.dirs[""] = dir
		return cg, nil
	}
	for _, ctl := range v1Controllers {
		hier := filepath.Join(m.root, ctl)
		if fi, err := os.Stat(hier); err != nil || !fi.IsDir() {
			continue // controller not mounted
		}
		dir := filepath.Join(hier, m.parent, id)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			_ = cg.remove()
			return nil, fmt.Errorf("create cgroup %s: %w", dir, err)
		}
		cg.dirs[ctl] = dir
	}
	if len(cg.dirs) == 0 {
		return nil, fmt.Errorf("no cpu, cpuacct or memory cgroup hierarchy is mounted under %s", m.root)
	}
	return cg, nil
}

// setLimits writes the CPU and memory limits; zero writes "unlimited", so
// a cgroup left by an earlier run with other limits is reset.
func (cg *cgroup) setLimits(l model.Resources) error {
	var errs []error
	if cg.v2 {
		dir := cg.dirs[""]
		cpu := "max " + strconv.Itoa(cfsPeriod)
		if l.MilliCPU > 0 {
			cpu = strconv.FormatInt(cfsQuota(l.MilliCPU), 10) + " " + strconv.Itoa(cfsPeriod)
		}
		errs = append(errs, writeLimit(dir, "cpu.max", cpu, l.MilliCPU > 0, "cpu"))
		mem := "max"
		if l.MemoryBytes > 0 {
			mem = strconv.FormatInt(int64(l.MemoryBytes), 10)
		}
		errs = append(errs, writeLimit(dir, "memory.max", mem, l.MemoryBytes > 0, "memory"))
		return errors.Join(errs...)
	}
	if dir, ok := cg.dirs["cpu"]; ok {
		quota := "-1"
		if l.MilliCPU > 0 {
			quota = strconv.FormatInt(cfsQuota(l.MilliCPU), 10)
		}
		errs = append(errs, writeLimit(dir, "cpu.cfs_period_us", strconv.Itoa(cfsPeriod), l.MilliCPU > 0, "cpu"))
		errs = append(errs, writeLimit(dir, "cpu.cfs_quota_us", quota, l.MilliCPU > 0, "cpu"))
	} else if l.MilliCPU > 0 {
		errs = append(errs, errors.New("no cpu cgroup hierarchy is mounted, so the CPU limit cannot be applied"))
	}
	if dir, ok := cg.dirs["memory"]; ok {
		mem := "-1"
		if l.MemoryBytes > 0 {
			mem = strconv.FormatInt(int64(l.MemoryBytes), 10)
		}
		errs = append(errs, writeLimit(dir, "memory.limit_in_bytes", mem, l.MemoryBytes > 0, "memory"))
	} else if l.MemoryBytes > 0 {
		errs = append(errs, errors.New("no memory cgroup hierarchy is mounted, so the memory limit cannot be applied"))
	}
	return errors.Join(errs...)
}

// cfsQuota converts millicores to a quota per cfsPeriod, at least the
// kernel's minimum of 1 ms.
func cfsQuota(m model.Millicores) int64 {
	return max(int64(m)*cfsPeriod/1000, 1000)
}

// writeLimit writes one limit file. A missing file only matters when the
// limit is wanted: its controller is not enabled for the cgroup.
func writeLimit(dir, name, value string, wanted bool, controller string) error {
	p := filepath.Join(dir, name)
	err := writeCgroupFile(p, value)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrNotExist) && !wanted:
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("the %s controller is not enabled for %s (enable it in the parents' cgroup.subtree_control)", controller, dir)
	default:
		return fmt.Errorf("write %q to %s: %w", value, p, err)
	}
}

func writeCgroupFile(p, value string) error {
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// openFD opens the v2 cgroup directory for SysProcAttr.CgroupFD, so the
// process starts inside it (clone3 with CLONE_INTO_CGROUP); -1 on v1.
func (cg *cgroup) openFD() (int, error) {
	if !cg.v2 {
		return -1, nil
	}
	fd, err := unix.Open(cg.dirs[""], unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open cgroup %s: %w", cg.dirs[""], err)
	}
	return fd, nil
}

// addPID moves pid into the cgroup (every v1 hierarchy, or the v2 one when
// the process could not be started inside it).
func (cg *cgroup) addPID(pid int) error {
	var errs []error
	for _, ctl := range slices.Sorted(maps.Keys(cg.dirs)) {
		if err := writeCgroupFile(filepath.Join(cg.dirs[ctl], "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			errs = append(errs, fmt.Errorf("move pid %d into %s: %w", pid, cg.dirs[ctl], err))
		}
	}
	return errors.Join(errs...)
}

// pids lists the processes in the cgroup, over all its hierarchies.
func (cg *cgroup) pids() []int {
	var out []int
	for _, dir := range cg.dirs {
		data, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if err != nil {
			continue
		}
		for f := range bytes.FieldsSeq(data) {
			if pid, err := strconv.Atoi(string(f)); err == nil && !slices.Contains(out, pid) {
				out = append(out, pid)
			}
		}
	}
	return out
}

// killAll sends SIGKILL to every process left in the cgroup: children that
// left the process group survive their leader otherwise.
func (cg *cgroup) killAll() {
	for _, pid := range cg.pids() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// remove deletes the cgroup's directories. Killed processes leave a cgroup
// a moment after they die, so a busy directory is retried for a second.
func (cg *cgroup) remove() error {
	var errs []error
	for _, dir := range cg.dirs {
		var err error
		for range 50 {
			err = unix.Rmdir(dir)
			if err == nil || errors.Is(err, unix.ENOENT) {
				err = nil
				break
			}
			if !errors.Is(err, unix.EBUSY) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dir, err))
		}
	}
	return errors.Join(errs...)
}

// leftovers returns the instance ids that have a cgroup under the parent.
func (m *cgroupManager) leftovers() []string {
	var parents []string
	if m.v2 {
		parents = []string{filepath.Join(m.root, m.parent)}
	} else {
		for _, ctl := range v1Controllers {
			parents = append(parents, filepath.Join(m.root, ctl, m.parent))
		}
	}
	var ids []string
	for _, p := range parents {
		entries, err := os.ReadDir(p)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if e.IsDir() && !slices.Contains(ids, e.Name()) {
				ids = append(ids, e.Name())
			}
		}
	}
	slices.Sort(ids)
	return ids
}

// existing returns the cgroup of id as it exists now (for cleanup).
func (m *cgroupManager) existing(id string) *cgroup {
	cg := &cgroup{rel: "/" + path.Join(m.parent, id), dirs: map[string]string{}, v2: m.v2}
	if m.v2 {
		if dir := filepath.Join(m.root, m.parent, id); isDir(dir) {
			cg.dirs[""] = dir
		}
		return cg
	}
	for _, ctl := range v1Controllers {
		if dir := filepath.Join(m.root, ctl, m.parent, id); isDir(dir) {
			cg.dirs[ctl] = dir
		}
	}
	return cg
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// sysProcAttr puts the process in its own process group (so Stop reaches
// its children), asks the kernel to SIGTERM it when the agent dies (see
// doc.go: instances do not outlive the agent) and, on v2, starts it inside
// its cgroup.
func sysProcAttr(cgroupFD int) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if cgroupFD >= 0 {
		a.UseCgroupFD = true
		a.CgroupFD = cgroupFD
	}
	return a
}
