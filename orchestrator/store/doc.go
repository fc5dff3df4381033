// Package store owns the orchestrator's desired and observed state: model
// objects (datacenters, nodes, tenants, services, instances) kept in etcd as
// JSON under PREFIX/KIND/NAME, each carrying its etcd ModRevision as its
// version. It offers typed Get/List/Create/Update/Delete with optimistic
// concurrency and a Watch that resumes from a List revision, so a
// level-triggered controller never misses a change between listing and
// watching.
//
// The store either runs etcd embedded in this process (one member of a
// cluster or alone, its data directory guarded by an flock so a second
// opspilot fails with a clear error instead of blocking on bbolt) or
// connects to an external cluster. The members of an embedded cluster talk
// over http:// peer URLs, or over https:// with mutual TLS (Config.PeerTLS:
// each member presents a certificate of a CA they share and accepts only
// such certificates).
//
// Dependencies: etcd's client and server packages, zap (only to route
// etcd's logs into log/slog) and opspilot/orchestrator/model in tests and
// callers; tests use opspilot/orchestrator/pki to issue peer certificates
// as the control plane does. It must not import the scheduler, controllers or any other
// opspilot component: they import it.
package store
