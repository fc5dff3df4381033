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
// So far: model (the objects and their validation), scheduler (the pure
// placement pipeline with explanations) and store (objects in etcd with
// versions, optimistic concurrency and resumable watches). The runtimes,
// reconcilers, rollouts, endpoints and gateway follow (issues 4 and 9).
package orchestrator
