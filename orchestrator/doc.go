// Package orchestrator runs users' services on node agents: the model
// (datacenters, nodes, tenants, services, instances) stored in etcd, the
// scheduler (a pure pipeline of feasibility checks and rankers that
// explains every placement and refusal), level-triggered reconcilers for
// self-healing and rolling/gray releases, failover between datacenters,
// and service endpoints.
//
// The scheduler imports nothing but the model. Reconcilers may import
// etcd's client and opspilot/tsdb. It must not import the autoscaler,
// alerting or runbooks: they call its API.
//
// Packages: model (the objects and their validation), scheduler (the pure
// placement pipeline with explanations), store (objects in etcd with
// versions, optimistic concurrency and resumable watches), control (the
// level-triggered reconciler, rolling updates and rollback, node tracking,
// the REST API, events, endpoints and the agent protocol's server side),
// agentproto (the agent protocol's messages), node (the agent's side:
// join, heartbeats, assignments), runtime (process and docker runtimes,
// probes, supervision), gateway (the HTTP gateway over endpoints) and pki
// (the control plane's CA and join tokens). Datacenter failover, gray
// release across datacenters and control-plane HA follow (issue 9).
package orchestrator
