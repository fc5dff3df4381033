// Package api owns opspilot's HTTP front door: /healthz, the REST API under
// /api/v1 (with its OpenAPI document), the TSDB's Prometheus-compatible API
// mounted under /prometheus, and /metrics; and the bearer-token
// authentication and role checks in front of all of them.
//
// It may import the standard library, client_golang and opspilot/config. It
// must not import controllers or clients: handlers for their resources are
// passed in by cmd/opspilot, the one wiring place.
package api
