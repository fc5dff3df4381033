package alerting

import (
	"context"
	"time"

	"opspilot/tsdb"
)

// Querier runs an instant MetricsQL query; *tsdb.Client satisfies it.
type Querier interface {
	Query(ctx context.Context, expr string, at time.Time) (tsdb.Result, error)
}

// RangeQuerier runs a range query (the graphs in chat messages);
// *tsdb.Client satisfies it.
type RangeQuerier interface {
	QueryRange(ctx context.Context, expr string, r tsdb.Range) (tsdb.Result, error)
}

// Writer stores samples (recording rules, ALERTS and ALERTS_FOR_STATE);
// *tsdb.Client satisfies it.
type Writer interface {
	Write(ctx context.Context, series []tsdb.TimeSeries) error
}

// Event types of an alert's life, stored for the incident timeline.
const (
	EventFired        = "fired"
	EventNotified     = "notified"
	EventAcknowledged = "acknowledged"
	EventSilenced     = "silenced"
	EventResolved     = "resolved"
	EventNotifyFailed = "notify-failed"
)

// Event is one step in an alert's life.
type Event struct {
	Time time.Time `json:"time"`
	// Type is one of the Event* constants.
	Type string `json:"type"`
	// Fingerprint identifies the alert (its label set's hash, as in
	// Alertmanager); empty for an event about a whole group.
	Fingerprint string            `json:"fingerprint,omitempty"`
	AlertName   string            `json:"alertname,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	// GroupKey is Alertmanager's aggregation group key, for notifications.
	GroupKey string `json:"group_key,omitempty"`
	Receiver string `json:"receiver,omitempty"`
	// Who did it: "rules", "alertmanager", a user name, or "slack:U123".
	Who string `json:"who,omitempty"`
	// Why, or what happened: the summary, the silence comment, the error.
	Message string `json:"message,omitempty"`
	// SilenceID is set on silenced events.
	SilenceID string `json:"silence_id,omitempty"`
}

// Recorder stores events. It must not block for long: the pipeline calls
// it inline.
type Recorder interface {
	Record(ctx context.Context, ev Event)
}

// AlertRef names an alert a person acts on from chat or the CLI.
type AlertRef struct {
	Fingerprint string
	GroupKey    string
	Labels      map[string]string
}

// Actions are what a person can do to an alert from a chat message. The
// pipeline implements them; the Slack interaction handler calls them after
// checking the request's signature.
type Actions interface {
	// Acknowledge marks the alert as being handled by who.
	Acknowledge(ctx context.Context, a AlertRef, who string) error
	// SilenceFor silences alerts with a's labels (alertname and the group's
	// labels) for d and returns the silence's id.
	SilenceFor(ctx context.Context, a AlertRef, d time.Duration, who, why string) (string, error)
	// RunRunbook starts the runbook named in the alert's annotations
	// (annotation "runbook"). It returns an error saying so when the alert
	// names none or runbooks are not configured.
	RunRunbook(ctx context.Context, a AlertRef, who string) (string, error)
}
