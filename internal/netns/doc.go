// Package netns builds small virtual networks of hosts for multi-host tests
// and benchmarks: each host is a Linux network namespace joined to a bridge
// in the root namespace by a veth pair, so processes started "on" a host
// (through `ip netns exec`) have their own address, their own ports and
// their own link that can be cut, like separate machines in a datacenter.
//
// A Network owns a switch namespace holding a bridge, and a veth from the
// root namespace to that bridge with the first address of the network's
// own /24 (taken from Config.Pool, 10.77.0.0/16 by default, skipping
// subnets already in use in the root namespace). Processes in the root
// namespace (a server, a gateway, a load generator) reach the hosts
// through it and the hosts reach them at Network.Gateway(). The bridge is
// kept out of the root namespace so traffic between hosts never meets the
// machine's firewall. Cut takes down the switch end of hosts' veths: their
// packets, and packets to them, are dropped without an answer (no RST, no
// ICMP), as when a datacenter's network fails.
//
// Every name a Network creates starts with its run id, "opn" + the owning
// process's PID in base 36 + "_" + a per-process counter, short enough for
// Linux's 15-byte interface names. Close removes everything; Sweep removes
// what runs of processes that no longer exist left behind (a test killed
// mid-run never runs its cleanup).
//
// It needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) and iproute2's `ip`.
// Available says why a network cannot be made here, so tests skip with that
// message.
//
// It imports only the standard library and shells out to `ip`; it must not
// import opspilot's own packages (it is test infrastructure, used by
// test/e2e and bench).
package netns
