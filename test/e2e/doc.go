// Package e2e holds opspilot's end-to-end tests: multi-process tests of the
// built opspilot binary, as a user runs it. Each test starts real `opspilot
// up` / `opspilot server` processes on free loopback ports with their data
// in temporary directories, talks to them over HTTP and through the opspilot
// CLI and Prometheus' promtool, sends them signals, and checks what a user
// relies on: start-up time, the Prometheus-compatible API, durability across
// restarts and crashes, the data-directory lock, API-token auth, and the
// CLI's output.
//
// Everything a test checks goes through the binary (its API, CLI and
// processes). Besides opspilot/test/testbin (which builds opspilot and the
// tools pinned in go.mod), the tests import opspilot's API types only to
// decode answers (orchestrator/model, alerting, …) and internal/netns,
// which puts the datacenter tests' agents on hosts of their own in network
// namespaces (those tests skip, saying why, where namespaces cannot be
// made).
//
// Run them with `go test ./test/e2e/`; like any package it runs at most
// -parallel (default GOMAXPROCS) tests at a time, so only a few servers
// run at once.
package e2e
