// Package loadgen owns `opspilot loadgen`: an open-loop HTTP load generator
// for the demo billing service behind an opspilot gateway.
//
// Run offers requests on a schedule — a mean rate shaped by a daily
// sinusoidal Wave (which can be played compressed, a day in minutes) and a
// promotion Surge — regardless of how fast the target answers: a slow
// target does not lower the offered rate, and requests due while
// Concurrency requests are in flight are dropped and counted, as real
// users would be lost. The mix defaults to 90% POST /pay and 10% POST
// /refund with bodies the billing service accepts ({"amount": 12.34,
// "shop": "shop-7"}). Run reports counts by status and error kind, and
// latency percentiles of OK responses, and calls a progress callback every
// second. Discover finds a gateway registered with the server.
//
// Rate math (Config.RateAt, Wave.Factor, Surge.Factor) is pure and
// separate from the scheduler.
//
// Dependencies: the standard library and opspilot/orchestrator/model (the
// Gateway type of GET /api/v1/gateways). It talks to the server and the
// gateway only over HTTP and must not import the gateway, the server or
// any controller. Progress bars are the command's business.
package loadgen
