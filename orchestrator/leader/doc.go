// Package leader runs the control plane's singleton loops on one replica
// at a time. Replicas campaign in an etcd election
// (go.etcd.io/etcd/client/v3/concurrency) with a session lease of a short
// TTL (2 s by default); the winner runs its loops under a context that
// ends when leadership ends.
//
// Leadership ends when this replica shuts down (it resigns, so another
// replica takes over in milliseconds), or when the lease stops being
// renewed (etcd unreachable, partition, a stalled process). The loops are
// stopped before the lease can expire at the server: the guard presumes
// leadership lost when no renewal was confirmed for TTL minus a margin
// (a quarter of the TTL), while another replica can win only after the
// server expired the lease, a full TTL after the last renewal it saw.
// This assumes renewal answers take less than the margin.
//
// Leadership is not a fence: a leader stalled longer than the margin
// between two writes can still write once after losing. The loops it
// runs are level-triggered and idempotent, so the next leader's pass
// converges whatever a late write left.
//
// Dependencies: etcd's client and its concurrency package, the Prometheus
// client (self-metrics), log/slog and opspilot/config (validation
// problems); its tests run a real etcd cluster through
// opspilot/orchestrator/store. It must not import other opspilot
// packages: cmd/opspilot wires it to the store's client.
package leader
