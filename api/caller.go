package api

import (
	"context"
	"net/http"
)

// Caller is who made a request: the API token's name and role ("local"
// with role admin in `opspilot up`'s local mode without tokens), or a
// component of opspilot itself (the reconciler, a runbook).
type Caller struct {
	Name, Role string
}

type callerKey struct{}

// WithCaller returns ctx carrying c.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the caller stored by the server's authorization (the
// zero Caller on public routes).
func CallerFrom(ctx context.Context) Caller {
	c, _ := ctx.Value(callerKey{}).(Caller)
	return c
}

// ReasonHeader carries the caller's reason for a change (the CLI's
// --reason flag); it is recorded in the audit log and in events.
const ReasonHeader = "X-Opspilot-Reason"

// Reason returns the request's stated reason.
func Reason(r *http.Request) string { return r.Header.Get(ReasonHeader) }

// Allows reports whether role have includes role need.
func Allows(have, need string) bool { return roleAllows(have, need) }
