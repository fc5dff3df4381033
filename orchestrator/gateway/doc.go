// Package gateway owns the data path in front of services: it follows the
// server's endpoint set and proxies requests to ready instances.
//
// A Watcher long-polls GET /api/v1/endpoints (?wait=REV&timeout=30s),
// backs off on errors and keeps the last good set while the server is
// away, so an outage of the control plane never empties routes. A
// StaticSource serves a fixed set (tests, or a gateway without a server).
// Both implement Source: the current set plus a channel closed when it is
// replaced.
//
// Gateway is an http.Handler. It routes a request to a service by the first
// label of the Host header if it names a service (billing.localhost:8080),
// else by the first path segment (/billing/pay goes to billing as /pay),
// else to Config.DefaultService or the only service. It picks an endpoint
// by the power of two choices on outstanding requests and proxies with
// httputil.ReverseProxy over one shared Transport. When the connection
// could not be made (refused, unreachable, or not within DialTimeout,
// 300ms by default: a dark host drops packets and would hang) a request
// is retried on up to DialRetries other endpoints, any method (the
// instance never saw it), preferring another datacenter than the failed
// connects'. Idempotent requests (GET, HEAD, OPTIONS, PUT,
// DELETE, or an Idempotency-Key header) are also retried once after a
// reset connection or a 502/503; bodies up to Config.MaxRetryBody are
// buffered so they can be sent again. Passive ejection: an endpoint whose
// connects failed EjectAfter times in a row gets no requests for EjectFor
// (unless all of a service's endpoints are ejected), so a datacenter whose
// network failed stops costing dial timeouts long before the control
// plane declares its nodes lost. Requests written onto kept-alive
// connections to a dark host fail no connect; they just hang, so an
// endpoint with requests outstanding that answered nothing for StallAfter
// is passed over too while others can take the load. A request already sent to an instance
// that then went dark is not retried (it may have been processed); it
// waits for ResponseHeaderTimeout, generous by default. An endpoint that leaves the set gets no new
// requests while its in-flight ones finish, which with the server's drain
// delay makes scale-down lossless. The gateway answers 404 (JSON) for an
// unknown service and 503 for a service without a ready instance, and names
// the answering instance in X-Opspilot-Instance.
//
// Register announces a gateway to the server every 5s so `opspilot loadgen`
// can find it.
//
// Self-metrics (on the Registerer given to New and NewWatcher):
// opspilot_gateway_requests_total, _request_duration_seconds (by service, datacenter and version),
// _retries_total, _errors_total, _endpoints, _inflight_requests,
// _connect_failures_total, _ejections_total, _watch_errors_total,
// _endpoints_revision, _endpoints_stale.
//
// Dependencies: the standard library, client_golang, cenkalti/backoff and
// opspilot/orchestrator/model. It talks to the server only over HTTP and
// must not import the store, the controllers or the scheduler.
package gateway
