// Package host reads the host's own metrics from procfs and sysfs and names
// them exactly like Prometheus' node_exporter (node_cpu_seconds_total,
// node_memory_MemAvailable_bytes, node_filesystem_avail_bytes, …), so
// dashboards and alert rules written for node_exporter work unchanged.
//
// It owns the translation from /proc and /sys files to remote-write series:
// CPU, load, memory, vmstat, disks, filesystems, network devices, file
// descriptors, pressure stall information, kernel counters and uname. The API
// is pull only: Collector.Collect reads the files when asked and returns one
// sample per series. It starts no goroutines and does no I/O other than
// reading /proc and /sys (plus statfs on mount points and uname).
//
// It may import github.com/prometheus/procfs, golang.org/x/sys and the
// series types of opspilot/tsdb. It must not import any other opspilot
// package: the agent decides when to collect, which labels (datacenter,
// node) to add and where to ship the result.
package host
