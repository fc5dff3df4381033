// Package api owns opspilot's HTTP front door: /healthz, the REST API under
// /api/v1 (with its OpenAPI document), the TSDB's Prometheus-compatible API
// mounted under /prometheus, and /metrics; and the bearer-token
// authentication and role checks in front of all of them (API tokens with
// roles read, write, admin; and, through Options.Authenticate, the
// orchestrator's node credentials, which may only write samples). The
// caller's name and reason travel in the request context (CallerFrom,
// Reason) for the audit log and events.
//
// It may import the standard library, client_golang, sigs.k8s.io/yaml (the
// OpenAPI document as JSON) and opspilot/config. It
// must not import controllers or clients: handlers for their resources are
// passed in by cmd/opspilot, the one wiring place.
package api
