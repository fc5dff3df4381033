package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	containertypes "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"opspilot/tsdb"
)

// dockerParallelism bounds the concurrent inspect+stats requests, so a node
// with many containers does not open as many connections to the engine.
const dockerParallelism = 4

// dockerUpMetric is 1 when the Docker engine answered the last Collect, 0
// when it is unreachable (its containers are then absent).
const dockerUpMetric = "opspilot_container_docker_up"

// Labels a Docker container may carry to name its service and tenant.
const (
	LabelService = "opspilot.service"
	LabelTenant  = "opspilot.tenant"
)

type dockerContainer struct {
	summary containertypes.Summary
	inspect containertypes.InspectResponse
	stats   containertypes.StatsResponse
	err     error
}

func (c *Collector) collectDocker(ctx context.Context, e *emitter, now time.Time) error {
	e.base = nil
	list, err := c.docker.ContainerList(ctx, client.ContainerListOptions{})
	if err != nil {
		e.add(dockerUpMetric, 0)
		if client.IsErrConnectionFailed(err) {
			return nil
		}
		return fmt.Errorf("list Docker containers at %s: %w", c.docker.DaemonHost(), err)
	}
	e.add(dockerUpMetric, 1)

	found := make([]dockerContainer, len(list.Items))
	sem := make(chan struct{}, dockerParallelism)
	var wg sync.WaitGroup
	for i := range list.Items {
		found[i].summary = list.Items[i]
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			c.fetchDocker(ctx, &found[i])
		})
	}
	wg.Wait()

	var errs []error
	for i := range found {
		d := &found[i]
		if d.err != nil {
			// A container that stopped between list and stats is no error.
			var nf interface{ NotFound() }
			if !errors.As(d.err, &nf) {
				errs = append(errs, d.err)
			}
			continue
		}
		c.emitDocker(e, d, now)
	}
	return errors.Join(errs...)
}

func (c *Collector) fetchDocker(ctx context.Context, d *dockerContainer) {
	id := d.summary.ID
	in, err := c.docker.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		d.err = fmt.Errorf("inspect Docker container %.12s: %w", id, err)
		return
	}
	d.inspect = in.Container
	st, err := c.docker.ContainerStats(ctx, id, client.ContainerStatsOptions{})
	if err != nil {
		d.err = fmt.Errorf("stats of Docker container %.12s: %w", id, err)
		return
	}
	defer st.Body.Close()
	if err := json.NewDecoder(st.Body).Decode(&d.stats); err != nil {
		d.err = fmt.Errorf("decode stats of Docker container %.12s: %w", id, err)
	}
}

func (c *Collector) emitDocker(e *emitter, d *dockerContainer, now time.Time) {
	name := strings.TrimPrefix(d.inspect.Name, "/")
	if name == "" && len(d.summary.Names) > 0 {
		name = strings.TrimPrefix(d.summary.Names[0], "/")
	}
	service := d.summary.Labels[LabelService]
	if service == "" {
		service = name
	}
	e.base = []tsdb.Label{
		{Name: "service", Value: service},
		{Name: "instance", Value: name},
		{Name: "tenant", Value: d.summary.Labels[LabelTenant]},
		{Name: "name", Value: name},
		{Name: "image", Value: d.summary.Image},
		{Name: "id", Value: d.summary.ID},
	}
	s := &d.stats

	cpu := s.CPUStats
	e.add("container_cpu_usage_seconds_total", float64(cpu.CPUUsage.TotalUsage)/1e9)
	e.add("container_cpu_user_seconds_total", float64(cpu.CPUUsage.UsageInUsermode)/1e9)
	e.add("container_cpu_system_seconds_total", float64(cpu.CPUUsage.UsageInKernelmode)/1e9)
	e.add("container_cpu_cfs_periods_total", float64(cpu.ThrottlingData.Periods))
	e.add("container_cpu_cfs_throttled_periods_total", float64(cpu.ThrottlingData.ThrottledPeriods))
	e.add("container_cpu_cfs_throttled_seconds_total", float64(cpu.ThrottlingData.ThrottledTime)/1e9)

	// The engine passes the cgroup's memory.stat through: v1 keys
	// (total_rss, total_cache, total_inactive_file) or v2 ones (anon, file,
	// inactive_file).
	mem := s.MemoryStats
	rss, cache, inactive := statKey(mem.Stats, "total_rss", "anon", "rss"),
		statKey(mem.Stats, "total_cache", "file", "cache"),
		statKey(mem.Stats, "total_inactive_file", "inactive_file")
	e.add("container_memory_usage_bytes", float64(mem.Usage))
	e.add("container_memory_working_set_bytes", float64(workingSet(mem.Usage, inactive)))
	e.add("container_memory_rss", float64(rss))
	e.add("container_memory_cache", float64(cache))

	var limit, quota, period int64
	if hc := d.inspect.HostConfig; hc != nil {
		limit, quota, period = hc.Memory, hc.CPUQuota, hc.CPUPeriod
		if hc.NanoCPUs > 0 { // --cpus: the engine sets quota over a 100 ms period
			period = 100000
			quota = hc.NanoCPUs * period / 1e9
		}
	}
	if period == 0 {
		period = 100000 // the kernel's default CFS period
	}
	e.add("container_spec_memory_limit_bytes", float64(max(limit, 0)))
	e.add("container_spec_cpu_quota", float64(max(quota, 0)))
	e.add("container_spec_cpu_period", float64(period))

	if st := d.inspect.State; st != nil && st.Pid > 0 {
		if oom, ok := c.dockerOOM(st.Pid); ok {
			e.add("container_oom_events_total", float64(oom))
		}
	}

	for _, b := range s.BlkioStats.IoServiceBytesRecursive {
		var op string
		switch strings.ToLower(b.Op) {
		case "read":
			op = "Read"
		case "write":
			op = "Write"
		default:
			continue
		}
		dev := strconv.FormatUint(b.Major, 10) + ":" + strconv.FormatUint(b.Minor, 10)
		e.add("container_blkio_device_usage_total", float64(b.Value),
			tsdb.Label{Name: "device", Value: dev}, tsdb.Label{Name: "operation", Value: op})
	}
	for iface, n := range s.Networks {
		emitNetwork(e, netDev{iface: iface,
			rxBytes: n.RxBytes, rxPackets: n.RxPackets, rxErrors: n.RxErrors,
			txBytes: n.TxBytes, txPackets: n.TxPackets, txErrors: n.TxErrors})
	}
	if st := d.inspect.State; st != nil {
		if t, err := time.Parse(time.RFC3339Nano, st.StartedAt); err == nil && t.Year() > 1 {
			e.add("container_start_time_seconds", float64(t.Unix()))
		}
	}
	e.add("container_restarts_total", float64(d.inspect.RestartCount))
	e.add("container_last_seen", float64(now.Unix()))
}

// statKey returns the first of keys present in m, 0 if none is.
func statKey(m map[string]uint64, keys ...string) uint64 {
	for _, k := range keys {
		if v, ok := m[k]; ok {
			return v
		}
	}
	return 0
}

// dockerOOM reads the OOM-kill count of the cgroup holding pid, which the
// stats API does not report. ok is false when it cannot be read (another
// PID namespace, no permission): the series is then left out.
func (c *Collector) dockerOOM(pid int) (oom uint64, ok bool) {
	data, err := c.readFile(filepath.Join(c.procRoot, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return 0, false
	}
	pc, err := ParseProcCgroup(data)
	if err != nil {
		return 0, false
	}
	var p string
	if c.v2 {
		p = filepath.Join(c.cfg.CgroupRoot, pc.Unified, "memory.events")
	} else if mp, found := pc.Controllers["memory"]; found {
		p = filepath.Join(c.cfg.CgroupRoot, "memory", mp, "memory.oom_control")
	} else {
		return 0, false
	}
	if data, err = c.readFile(p); err != nil {
		return 0, false
	}
	err = parseFlatKeyed(data, func(k []byte, v uint64) {
		if string(k) == "oom_kill" {
			oom, ok = v, true
		}
	})
	return oom, ok && err == nil
}
