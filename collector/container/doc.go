// Package container collects per-container metrics with cAdvisor's names
// (container_cpu_usage_seconds_total, container_memory_working_set_bytes, …)
// for the workloads the node runs itself — read straight from their cgroups,
// v1 or v2 — and for every running container of a Docker engine when one is
// reachable (through the engine's stats and inspect APIs).
//
// It owns the small parsers for the flat cgroup files (cpu.stat,
// memory.stat, io.stat, cpuacct.*, blkio.*, …), /proc/<pid>/net/dev and
// /proc/<pid>/cgroup; no cgroup library is in go.mod.
//
// It may import Docker's Go client (github.com/moby/moby/client and its api
// types), opspilot/tsdb for the wire types only, and golang.org/x/sys. It
// must not import any other opspilot package: the agent wires it, adds the
// datacenter/node labels and ships the series.
package container
