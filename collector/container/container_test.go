package container

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"opspilot/test/testbin"

	containertypes "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"opspilot/tsdb"
)

var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fixtureCollector returns a Collector over testdata/<tree> whose /proc is
// testdata/proc.
func fixtureCollector(t testing.TB, tree string) *Collector {
	t.Helper()
	c, err := New(Config{CgroupRoot: filepath.Join("testdata", tree)})
	if err != nil {
		t.Fatal(err)
	}
	c.procRoot = filepath.Join("testdata", "proc")
	return c
}

func labelValue(ts tsdb.TimeSeries, name string) string {
	for _, l := range ts.Labels {
		if l.Name == name {
			return l.Value
		}
	}
	return ""
}

// find returns the values of the series named name whose labels include
// all of match ("k", "v", …).
func find(series []tsdb.TimeSeries, name string, match ...string) []float64 {
	var out []float64
next:
	for _, ts := range series {
		if labelValue(ts, "__name__") != name {
			continue
		}
		for i := 0; i+1 < len(match); i += 2 {
			if labelValue(ts, match[i]) != match[i+1] {
				continue next
			}
		}
		out = append(out, ts.Samples[0].Value)
	}
	return out
}

type want struct {
	name  string
	match []string
	value float64
}

func checkExact(t *testing.T, series []tsdb.TimeSeries, instance string, wants []want) {
	t.Helper()
	for _, w := range wants {
		got := find(series, w.name, append([]string{"instance", instance}, w.match...)...)
		if len(got) != 1 {
			t.Errorf("%s %s%v: got %d series %v, want 1 with %v", instance, w.name, w.match, len(got), got, w.value)
			continue
		}
		if math.Abs(got[0]-w.value) > 1e-9*math.Max(1, math.Abs(w.value)) {
			t.Errorf("%s %s%v = %v, want %v", instance, w.name, w.match, got[0], w.value)
		}
	}
}

func checkAbsent(t *testing.T, series []tsdb.TimeSeries, instance string, names ...string) {
	t.Helper()
	for _, n := range names {
		if got := find(series, n, "instance", instance); len(got) != 0 {
			t.Errorf("%s %s: got %v, want no series (its file is malformed or absent)", instance, n, got)
		}
	}
}

func commonSeries(t *testing.T, series []tsdb.TimeSeries, instance string, restarts int) {
	t.Helper()
	checkExact(t, series, instance, []want{
		{"container_restarts_total", nil, float64(restarts)},
		{"container_last_seen", nil, float64(testNow.Unix())},
	})
	if st := find(series, "container_start_time_seconds", "instance", instance); len(st) != 1 || st[0] <= 0 {
		t.Errorf("%s container_start_time_seconds = %v, want one positive value", instance, st)
	}
	for _, ts := range series {
		if labelValue(ts, "instance") == instance {
			if len(ts.Samples) != 1 || ts.Samples[0].Timestamp != testNow.UnixMilli() {
				t.Errorf("%s: samples %v, want one at %d", labelValue(ts, "__name__"), ts.Samples, testNow.UnixMilli())
			}
		}
	}
}

func TestCgroupV2Fixture(t *testing.T) {
	c := fixtureCollector(t, "v2")
	if !c.CgroupV2() {
		t.Fatal("testdata/v2 has cgroup.controllers: want v2 detected")
	}
	c.SetInstances([]Instance{
		{Service: "svc-a", Instance: "svc-a-1", Tenant: "acme", CgroupPath: "/opspilot/svc-a-1", Restarts: 3},
		{Service: "svc-b", Instance: "svc-b-1", CgroupPath: "/opspilot/svc-b-1"},
	})
	series, err := c.Collect(context.Background(), testNow)
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	checkExact(t, series, "svc-a-1", []want{
		{"container_cpu_usage_seconds_total", nil, 12.345678},
		{"container_cpu_user_seconds_total", nil, 10},
		{"container_cpu_system_seconds_total", nil, 2.345678},
		{"container_cpu_cfs_periods_total", nil, 500},
		{"container_cpu_cfs_throttled_periods_total", nil, 25},
		{"container_cpu_cfs_throttled_seconds_total", nil, 1.5},
		{"container_spec_cpu_quota", nil, 0},
		{"container_spec_cpu_period", nil, 100000},
		{"container_memory_usage_bytes", nil, 104857600},
		{"container_memory_working_set_bytes", nil, 104857600 - 20971520},
		{"container_memory_rss", nil, 52428800},
		{"container_memory_cache", nil, 41943040},
		{"container_spec_memory_limit_bytes", nil, 0},
		{"container_oom_events_total", nil, 2},
		{"container_blkio_device_usage_total", []string{"device", "8:0", "operation", "Read"}, 1048576},
		{"container_blkio_device_usage_total", []string{"device", "8:0", "operation", "Write"}, 2097152},
		{"container_blkio_device_usage_total", []string{"device", "253:1", "operation", "Read"}, 4096},
		{"container_blkio_device_usage_total", []string{"device", "253:1", "operation", "Write"}, 0},
		{"container_network_receive_bytes_total", []string{"interface", "eth0"}, 1234567},
		{"container_network_receive_packets_total", []string{"interface", "eth0"}, 8910},
		{"container_network_receive_errors_total", []string{"interface", "eth0"}, 1},
		{"container_network_transmit_bytes_total", []string{"interface", "eth0"}, 765432},
		{"container_network_transmit_packets_total", []string{"interface", "eth0"}, 4321},
		{"container_network_transmit_errors_total", []string{"interface", "eth0"}, 2},
	})
	if got := find(series, "container_network_receive_bytes_total", "interface", "lo"); len(got) != 0 {
		t.Errorf("lo must be left out, got %v", got)
	}
	commonSeries(t, series, "svc-a-1", 3)
	if len(find(series, "container_cpu_usage_seconds_total", "instance", "svc-a-1", "service", "svc-a", "tenant", "acme")) != 1 {
		t.Error("svc-a-1: want labels service=svc-a tenant=acme")
	}

	checkExact(t, series, "svc-b-1", []want{
		{"container_spec_cpu_quota", nil, 50000},
		{"container_spec_cpu_period", nil, 100000},
		{"container_memory_usage_bytes", nil, 10485760},
		{"container_memory_working_set_bytes", nil, 0}, // inactive_file > usage: floored
		{"container_spec_memory_limit_bytes", nil, 268435456},
		{"container_oom_events_total", nil, 0},
	})
	checkAbsent(t, series, "svc-b-1", "container_blkio_device_usage_total", "container_network_receive_bytes_total")
	commonSeries(t, series, "svc-b-1", 0)
}

func TestCgroupV1Fixture(t *testing.T) {
	c := fixtureCollector(t, "v1")
	if c.CgroupV2() {
		t.Fatal("testdata/v1 has no cgroup.controllers: want v1 detected")
	}
	c.SetInstances([]Instance{{Service: "svc-c", Instance: "svc-c-1", Tenant: "t1", CgroupPath: "/opspilot/svc-c-1", Restarts: 1}})
	series, err := c.Collect(context.Background(), testNow)
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	checkExact(t, series, "svc-c-1", []want{
		{"container_cpu_usage_seconds_total", nil, 98.7654321},
		{"container_cpu_user_seconds_total", nil, 80},
		{"container_cpu_system_seconds_total", nil, 15},
		{"container_cpu_cfs_periods_total", nil, 1000},
		{"container_cpu_cfs_throttled_periods_total", nil, 40},
		{"container_cpu_cfs_throttled_seconds_total", nil, 2.5},
		{"container_spec_cpu_quota", nil, 50000},
		{"container_spec_cpu_period", nil, 100000},
		{"container_memory_usage_bytes", nil, 209715200},
		{"container_memory_working_set_bytes", nil, 209715200 - 52428800},
		{"container_memory_rss", nil, 115343360},
		{"container_memory_cache", nil, 73400320},
		{"container_spec_memory_limit_bytes", nil, 0}, // 9223372036854771712 = unlimited
		{"container_oom_events_total", nil, 1},
		{"container_blkio_device_usage_total", []string{"device", "8:0", "operation", "Read"}, 123},
		{"container_blkio_device_usage_total", []string{"device", "8:0", "operation", "Write"}, 4567},
		{"container_network_receive_bytes_total", []string{"interface", "eth0"}, 1234567},
		{"container_network_transmit_errors_total", []string{"interface", "eth0"}, 2},
	})
	if got := find(series, "container_blkio_device_usage_total", "instance", "svc-c-1"); len(got) != 2 {
		t.Errorf("want only Read and Write blkio series, got %v", got)
	}
	commonSeries(t, series, "svc-c-1", 1)
}

func TestMalformedFiles(t *testing.T) {
	t.Run("v2", func(t *testing.T) {
		c := fixtureCollector(t, "v2")
		c.SetInstances([]Instance{
			{Service: "svc-bad", Instance: "bad-1", CgroupPath: "/opspilot/bad-1"},
			{Service: "svc-a", Instance: "svc-a-1", CgroupPath: "/opspilot/svc-a-1"},
		})
		series, err := c.Collect(context.Background(), testNow)
		if err == nil {
			t.Fatal("want an error for bad-1's malformed files")
		}
		for _, s := range []string{`"bad-1"`, "cpu.stat", "cpu.max", "io.stat", "cgroup.procs"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error %q does not name %s", err, s)
			}
		}
		if strings.Contains(err.Error(), "svc-a-1") {
			t.Errorf("error %q blames the healthy instance", err)
		}
		checkExact(t, series, "bad-1", []want{
			{"container_memory_usage_bytes", nil, 2097152},
			{"container_memory_working_set_bytes", nil, 2097152},
			{"container_memory_rss", nil, 1048576},
			{"container_spec_memory_limit_bytes", nil, 0},
		})
		checkAbsent(t, series, "bad-1", "container_cpu_usage_seconds_total", "container_cpu_user_seconds_total",
			"container_spec_cpu_quota", "container_blkio_device_usage_total")
		commonSeries(t, series, "bad-1", 0)
		checkExact(t, series, "svc-a-1", []want{{"container_cpu_usage_seconds_total", nil, 12.345678}})
	})
	t.Run("v1", func(t *testing.T) {
		c := fixtureCollector(t, "v1")
		c.SetInstances([]Instance{{Service: "svc-bad", Instance: "bad-2", CgroupPath: "/opspilot/bad-2"}})
		series, err := c.Collect(context.Background(), testNow)
		if err == nil {
			t.Fatal("want an error for bad-2's malformed files")
		}
		for _, s := range []string{`"bad-2"`, "cpuacct.stat", "memory.usage_in_bytes", "blkio.throttle.io_service_bytes"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error %q does not name %s", err, s)
			}
		}
		checkExact(t, series, "bad-2", []want{
			{"container_cpu_usage_seconds_total", nil, 5},
			{"container_spec_cpu_quota", nil, 0}, // -1 = unlimited
			{"container_spec_cpu_period", nil, 100000},
			{"container_memory_rss", nil, 1024},
			{"container_spec_memory_limit_bytes", nil, 536870912},
		})
		checkAbsent(t, series, "bad-2", "container_cpu_user_seconds_total", "container_memory_usage_bytes",
			"container_memory_working_set_bytes", "container_blkio_device_usage_total")
		commonSeries(t, series, "bad-2", 0)
	})
	t.Run("missing cgroup", func(t *testing.T) {
		c := fixtureCollector(t, "v2")
		c.SetInstances([]Instance{{Service: "s", Instance: "gone-1", CgroupPath: "/opspilot/gone-1"}})
		series, err := c.Collect(context.Background(), testNow)
		if err == nil || !strings.Contains(err.Error(), "gone-1") || !strings.Contains(err.Error(), "not found") {
			t.Fatalf("err = %v, want a not-found error naming gone-1", err)
		}
		if len(series) != 0 {
			t.Errorf("got %d series for a missing cgroup", len(series))
		}
	})
}

func TestParseProcCgroup(t *testing.T) {
	pc, err := ParseProcCgroup([]byte("12:cpu,cpuacct:/docker/abc\n4:memory:/process_api/x\n1:name=systemd:/\n0::/user.slice\n"))
	if err != nil {
		t.Fatal(err)
	}
	if pc.Unified != "/user.slice" || pc.Controllers["cpu"] != "/docker/abc" || pc.Controllers["cpuacct"] != "/docker/abc" ||
		pc.Controllers["memory"] != "/process_api/x" {
		t.Errorf("got %+v", pc)
	}
	if _, err := ParseProcCgroup([]byte("garbage\n")); err == nil {
		t.Error("want an error for a malformed line")
	}
}

// TestRealCgroup collects the cgroup this test process runs in.
func TestRealCgroup(t *testing.T) {
	if _, err := os.ReadDir("/sys/fs/cgroup"); err != nil {
		t.Skipf("/sys/fs/cgroup is not readable (%v): no real cgroup to collect", err)
	}
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Skipf("/proc/self/cgroup is not readable: %v", err)
	}
	pc, err := ParseProcCgroup(data)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{CgroupRoot: "/sys/fs/cgroup"})
	if err != nil {
		t.Fatal(err)
	}
	in := Instance{Service: "self", Instance: "self-1"}
	if c.CgroupV2() {
		in.CgroupPath = pc.Unified
	} else {
		in.CgroupPath = pc.Controllers["memory"]
		in.ControllerPaths = pc.Controllers
	}
	t.Logf("cgroup v2=%v path=%q controllers=%v", c.CgroupV2(), in.CgroupPath, in.ControllerPaths)
	c.SetInstances([]Instance{in})
	series, err := c.Collect(context.Background(), time.Now())
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	cpu := find(series, "container_cpu_usage_seconds_total", "instance", "self-1")
	mem := find(series, "container_memory_usage_bytes", "instance", "self-1")
	if len(cpu) != 1 || cpu[0] <= 0 {
		t.Errorf("container_cpu_usage_seconds_total = %v, want one value > 0", cpu)
	}
	if len(mem) != 1 || mem[0] <= 0 {
		t.Errorf("container_memory_usage_bytes = %v, want one value > 0", mem)
	}
	for _, ts := range series {
		t.Logf("%s %v", labelValue(ts, "__name__"), ts.Samples[0].Value)
	}
}

const e2eProgram = `package main

import (
	"os"
	"time"
)

var keep []byte

func main() {
	keep = make([]byte, 20<<20)
	for i := range keep {
		keep[i] = byte(i)
	}
	x := 0
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); {
		x++
	}
	if x < 0 {
		os.Exit(2)
	}
	time.Sleep(time.Hour)
	keep[0]++
}
`

// TestDockerEngine runs a FROM-scratch container on the real engine and
// collects it.
func TestDockerEngine(t *testing.T) {
	if testing.Short() {
		t.Skip("Docker end-to-end test skipped in -short mode")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cli, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		if client.IsErrConnectionFailed(err) {
			t.Skipf("Docker engine not reachable: %v", err)
		}
		t.Fatalf("ping Docker engine: %v", err)
	}

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(e2eProgram), 0o644); err != nil {
		t.Fatal(err)
	}
	tag := testbin.ScratchImage(t, cli, dir, "main.go", "app")
	suffix := fmt.Sprintf("%d", time.Now().UnixNano())

	name := "opspilot-e2e-" + suffix
	created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: name,
		Config: &containertypes.Config{
			Image:  tag,
			Labels: map[string]string{LabelService: "e2e-svc", LabelTenant: "e2e-tenant"},
		},
		HostConfig: &containertypes.HostConfig{},
	})
	if err != nil {
		t.Fatalf("create container: %v", err)
	}
	t.Cleanup(func() {
		if _, err := cli.ContainerRemove(context.Background(), created.ID, client.ContainerRemoveOptions{Force: true}); err != nil {
			t.Logf("remove container %s: %v", name, err)
		}
	})
	if _, err := cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatalf("start container: %v", err)
	}

	c, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var ws, cpu []float64
	var series []tsdb.TimeSeries
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		series, err = c.Collect(ctx, time.Now())
		if err != nil {
			t.Fatalf("Collect: %v", err)
		}
		ws = find(series, "container_memory_working_set_bytes", "name", name, "service", "e2e-svc", "instance", name, "tenant", "e2e-tenant", "id", created.ID)
		cpu = find(series, "container_cpu_usage_seconds_total", "name", name, "service", "e2e-svc")
		if len(ws) == 1 && ws[0] > 10<<20 && len(cpu) == 1 && cpu[0] > 0 {
			break
		}
	}
	if len(ws) != 1 || ws[0] <= 10<<20 {
		t.Errorf("container_memory_working_set_bytes{name=%q,service=e2e-svc} = %v, want one value > 10 MiB", name, ws)
	}
	if len(cpu) != 1 || cpu[0] <= 0 {
		t.Errorf("container_cpu_usage_seconds_total{name=%q} = %v, want one value > 0", name, cpu)
	}
	if up := find(series, dockerUpMetric); len(up) != 1 || up[0] != 1 {
		t.Errorf("%s = %v, want 1", dockerUpMetric, up)
	}
	for _, n := range []string{"container_memory_usage_bytes", "container_spec_cpu_period", "container_start_time_seconds",
		"container_restarts_total", "container_last_seen"} {
		if len(find(series, n, "name", name)) != 1 {
			t.Errorf("%s{name=%q} missing", n, name)
		}
	}
	if img := find(series, "container_last_seen", "name", name, "image", tag); len(img) != 1 {
		t.Errorf("container_last_seen{name=%q,image=%q} missing", name, tag)
	}
	for _, ts := range series {
		if labelValue(ts, "name") == name {
			t.Logf("%v %v", ts.Labels[0].Value, ts.Samples[0].Value)
		}
	}
}

func TestDockerUnreachable(t *testing.T) {
	c, err := New(Config{CgroupRoot: filepath.Join("testdata", "v2"), Docker: true,
		DockerHost: "unix://" + filepath.Join(t.TempDir(), "no-docker.sock")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.procRoot = filepath.Join("testdata", "proc")
	c.SetInstances([]Instance{{Service: "svc-a", Instance: "svc-a-1", CgroupPath: "/opspilot/svc-a-1"}})
	series, err := c.Collect(context.Background(), testNow)
	if err != nil {
		t.Fatalf("an unreachable engine must not fail Collect: %v", err)
	}
	if up := find(series, dockerUpMetric); len(up) != 1 || up[0] != 0 {
		t.Errorf("%s = %v, want 0", dockerUpMetric, up)
	}
	checkExact(t, series, "svc-a-1", []want{{"container_cpu_usage_seconds_total", nil, 12.345678}})
}

func FuzzParseCgroupFile(f *testing.F) {
	filepath.WalkDir("testdata", func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if data, err := os.ReadFile(p); err == nil {
				f.Add(data)
			}
		}
		return nil
	})
	f.Add([]byte("max"))
	f.Add([]byte("8:0 rbytes=1 wbytes=2\n\n8:16 rbytes=x\n"))
	f.Add([]byte("0::/\n1:cpu,cpuacct:/a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = parseFlatKeyed(data, func([]byte, uint64) {})
		_, _ = parseUint(data)
		_, _ = parseInt(data)
		_, _, _ = parseMax(data)
		_, _, _ = parseCPUMax(data)
		_ = parseIOStat(data, func(dev string, _, _ uint64) {
			if !isDevice([]byte(dev)) {
				t.Fatalf("io.stat device %q is not MAJ:MIN", dev)
			}
		})
		_ = parseBlkio(data, func(dev, op string, _ uint64) {
			if op != "Read" && op != "Write" {
				t.Fatalf("blkio op %q", op)
			}
		})
		_ = parseNetDev(data, func(netDev) {})
		_, _ = firstPID(data)
		_, _ = ParseProcCgroup(data)
	})
}

// BenchmarkCollect collects 100 cgroup v2 instances built from the svc-a-1
// fixture (the idle-agent target: 100 containers at < 2% of a core every
// 10 s, i.e. < 200 ms of CPU per Collect).
func BenchmarkCollect(b *testing.B) {
	root := b.TempDir()
	if err := os.WriteFile(filepath.Join(root, "cgroup.controllers"), []byte("cpu io memory pids\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	src := filepath.Join("testdata", "v2", "opspilot", "svc-a-1")
	files, err := os.ReadDir(src)
	if err != nil {
		b.Fatal(err)
	}
	instances := make([]Instance, 100)
	for i := range instances {
		rel := fmt.Sprintf("/opspilot/svc-%d", i)
		dir := filepath.Join(root, rel)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for _, f := range files {
			data, err := os.ReadFile(filepath.Join(src, f.Name()))
			if err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, f.Name()), data, 0o644); err != nil {
				b.Fatal(err)
			}
		}
		instances[i] = Instance{Service: "svc", Instance: fmt.Sprintf("svc-%d", i), CgroupPath: rel}
	}
	c, err := New(Config{CgroupRoot: root})
	if err != nil {
		b.Fatal(err)
	}
	c.procRoot = filepath.Join("testdata", "proc")
	c.SetInstances(instances)
	ctx := context.Background()
	var n int
	b.ReportAllocs()
	for b.Loop() {
		series, err := c.Collect(ctx, testNow)
		if err != nil {
			b.Fatal(err)
		}
		n = len(series)
	}
	b.ReportMetric(float64(n), "series/op")
}
