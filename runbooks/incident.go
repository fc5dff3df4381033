package runbooks

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"opspilot/alerting"
)

// Incident states, in the order an incident normally goes through them.
const (
	IncidentOpen         = "open"
	IncidentAcknowledged = "acknowledged"
	IncidentMitigated    = "mitigated"
	IncidentResolved     = "resolved"
)

// Incident is what an alert group becomes: its alerts, who handled it
// and when, and a timeline of everything that happened.
type Incident struct {
	ID string `json:"id"`
	// Key groups alerts into one incident: alertname and service (the
	// default route's group_by).
	Key         string   `json:"key"`
	Title       string   `json:"title"`
	Severity    string   `json:"severity"`
	Services    []string `json:"services"`
	Datacenters []string `json:"datacenters,omitempty"`
	State       string   `json:"state"`
	// GroupKey is the Alertmanager group of the first notification: its
	// Slack message's thread is the incident's thread.
	GroupKey string `json:"group_key,omitempty"`

	Started        time.Time `json:"started"`
	Notified       time.Time `json:"notified,omitzero"`
	Acknowledged   time.Time `json:"acknowledged,omitzero"`
	AcknowledgedBy string    `json:"acknowledged_by,omitempty"`
	Mitigated      time.Time `json:"mitigated,omitzero"`
	MitigatedBy    string    `json:"mitigated_by,omitempty"`
	Resolved       time.Time `json:"resolved,omitzero"`

	// Alerts by fingerprint: true while firing.
	Alerts   map[string]bool `json:"alerts"`
	Timeline []TimelineEntry `json:"timeline"`
}

// TimelineEntry is one thing that happened to an incident.
type TimelineEntry struct {
	Time time.Time `json:"time"`
	// Type: an alert event type (fired, notified, acknowledged, silenced,
	// resolved), "step" for a runbook step, or the incident's own
	// transitions ("opened", "mitigated", "closed").
	Type    string `json:"type"`
	Who     string `json:"who,omitempty"`
	Message string `json:"message"`
}

// Summary is what is posted and stored when an incident resolves.
type Summary struct {
	ID, Title, Severity, State string
	// GroupKey is the incident's alert group (its Slack thread).
	GroupKey          string
	Services          []string
	Started, Resolved time.Time
	// Time to detect (first alert fired → first notification), to
	// acknowledge, to mitigate and to resolve, each from Started; zero
	// when it did not happen.
	TimeToNotify, TimeToAcknowledge, TimeToMitigate, TimeToResolve time.Duration
	// Actions are the timeline's steps and human actions.
	Actions []TimelineEntry
	// Hints are root-cause hints (the analyzer's), filled by the caller.
	Hints []string
}

// Tracker turns alert events and runbook step results into incidents.
// It is pure state: the caller stores and posts what it returns. Safe
// for concurrent use.
type Tracker struct {
	mu     sync.Mutex
	open   map[string]*Incident // by key
	byID   map[string]*Incident
	byFP   map[string]*Incident // a firing alert's incident
	seq    int
	prefix string
}

// NewTracker starts with no incidents; IDs are prefix-N ("inc-20261127-1").
func NewTracker(prefix string) *Tracker {
	return &Tracker{open: map[string]*Incident{}, byID: map[string]*Incident{}, byFP: map[string]*Incident{}, prefix: prefix}
}

// Restore puts back incidents loaded from the store (open ones resume).
func (t *Tracker) Restore(incs []*Incident) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, inc := range incs {
		t.byID[inc.ID] = inc
		if inc.State != IncidentResolved {
			t.open[inc.Key] = inc
			for fp, firing := range inc.Alerts {
				if firing {
					t.byFP[fp] = inc
				}
			}
		}
		var n int
		if _, err := fmt.Sscanf(strings.TrimPrefix(inc.ID, t.prefix+"-"), "%d", &n); err == nil && n > t.seq {
			t.seq = n
		}
	}
}

// IncidentKey is the incident an alert belongs to.
func IncidentKey(labels map[string]string) string {
	return labels["alertname"] + "/" + labels["service"]
}

// Change is what an observation did to an incident.
type Change struct {
	Incident *Incident // a copy, safe to keep
	// Opened, or the new State; Closed when it resolved with this event.
	Opened, Closed bool
	State          string
}

// Observe applies an alert event. It returns the change, or ok=false
// when the event concerns no incident (a notification of an alert that
// resolved before it opened one, a silence of nothing).
func (t *Tracker) Observe(ev alerting.Event) (Change, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	entry := TimelineEntry{Time: ev.Time, Type: ev.Type, Who: ev.Who, Message: eventMessage(ev)}
	switch ev.Type {
	case alerting.EventFired:
		key := IncidentKey(ev.Labels)
		inc, ok := t.open[key]
		ch := Change{}
		if !ok {
			t.seq++
			inc = &Incident{ID: fmt.Sprintf("%s-%d", t.prefix, t.seq), Key: key, Title: titleOf(ev), Severity: ev.Labels["severity"],
				State: IncidentOpen, Started: ev.Time, Alerts: map[string]bool{}}
			t.open[key], t.byID[inc.ID] = inc, inc
			inc.Timeline = append(inc.Timeline, TimelineEntry{Time: ev.Time, Type: "opened", Who: ev.Who, Message: "incident " + inc.ID + " opened: " + inc.Title})
			ch.Opened = true
		}
		inc.Alerts[ev.Fingerprint] = true
		t.byFP[ev.Fingerprint] = inc
		addUnique(&inc.Services, ev.Labels["service"])
		addUnique(&inc.Datacenters, ev.Labels["datacenter"])
		if severityRank(ev.Labels["severity"]) > severityRank(inc.Severity) {
			inc.Severity = ev.Labels["severity"]
		}
		inc.Timeline = append(inc.Timeline, entry)
		ch.Incident, ch.State = inc.clone(), inc.State
		return ch, true
	case alerting.EventResolved:
		inc := t.byFP[ev.Fingerprint]
		if inc == nil {
			return Change{}, false
		}
		delete(t.byFP, ev.Fingerprint)
		inc.Alerts[ev.Fingerprint] = false
		inc.Timeline = append(inc.Timeline, entry)
		ch := Change{State: inc.State}
		if !inc.firing() {
			inc.State, inc.Resolved = IncidentResolved, ev.Time
			delete(t.open, inc.Key)
			inc.Timeline = append(inc.Timeline, TimelineEntry{Time: ev.Time, Type: "closed", Who: ev.Who, Message: "every alert cleared; incident resolved"})
			ch.Closed, ch.State = true, IncidentResolved
		}
		ch.Incident = inc.clone()
		return ch, true
	case alerting.EventNotified, alerting.EventNotifyFailed, alerting.EventAcknowledged, alerting.EventSilenced:
		inc := t.byFP[ev.Fingerprint]
		if inc == nil {
			return Change{}, false
		}
		inc.Timeline = append(inc.Timeline, entry)
		switch {
		case ev.Type == alerting.EventNotified && inc.Notified.IsZero():
			inc.Notified, inc.GroupKey = ev.Time, ev.GroupKey
		case ev.Type == alerting.EventAcknowledged && inc.Acknowledged.IsZero():
			inc.Acknowledged, inc.AcknowledgedBy = ev.Time, ev.Who
			if inc.State == IncidentOpen {
				inc.State = IncidentAcknowledged
			}
		}
		return Change{Incident: inc.clone(), State: inc.State}, true
	}
	return Change{}, false
}

// StepDone records a runbook step on the incident; a successful mutating
// step (mitigating=true: a scale, restart, rollback, failover…) marks
// the incident mitigated.
func (t *Tracker) StepDone(id string, at time.Time, who, message string, mitigating bool) (Change, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	inc := t.byID[id]
	if inc == nil {
		return Change{}, false
	}
	inc.Timeline = append(inc.Timeline, TimelineEntry{Time: at, Type: "step", Who: who, Message: message})
	if mitigating && inc.Mitigated.IsZero() && inc.State != IncidentResolved {
		inc.Mitigated, inc.MitigatedBy, inc.State = at, who, IncidentMitigated
		inc.Timeline = append(inc.Timeline, TimelineEntry{Time: at, Type: "mitigated", Who: who, Message: "mitigated: " + message})
	}
	return Change{Incident: inc.clone(), State: inc.State}, true
}

// Get returns a copy of an incident.
func (t *Tracker) Get(id string) (*Incident, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	inc, ok := t.byID[id]
	if !ok {
		return nil, false
	}
	return inc.clone(), true
}

// OfAlert is the incident a firing alert belongs to.
func (t *Tracker) OfAlert(fingerprint string) (*Incident, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	inc, ok := t.byFP[fingerprint]
	if !ok {
		return nil, false
	}
	return inc.clone(), true
}

// List returns copies of all incidents, newest first.
func (t *Tracker) List() []*Incident {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*Incident, 0, len(t.byID))
	for _, inc := range t.byID {
		out = append(out, inc.clone())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Started.After(out[j].Started) })
	return out
}

// Summarize computes an incident's summary.
func Summarize(inc *Incident) Summary {
	s := Summary{ID: inc.ID, Title: inc.Title, Severity: inc.Severity, State: inc.State, GroupKey: inc.GroupKey,
		Services: inc.Services, Started: inc.Started, Resolved: inc.Resolved}
	since := func(t time.Time) time.Duration {
		if t.IsZero() {
			return 0
		}
		return t.Sub(inc.Started)
	}
	s.TimeToNotify, s.TimeToAcknowledge = since(inc.Notified), since(inc.Acknowledged)
	s.TimeToMitigate, s.TimeToResolve = since(inc.Mitigated), since(inc.Resolved)
	for _, e := range inc.Timeline {
		switch e.Type {
		case "step", alerting.EventAcknowledged, alerting.EventSilenced, "mitigated":
			s.Actions = append(s.Actions, e)
		}
	}
	return s
}

// Text renders the summary for chat and `opspilot incident show`.
func (s Summary) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Incident %s %s: %s (severity %s, services %s)\n", s.ID, orNone(s.State), s.Title, orNone(s.Severity), orNone(strings.Join(s.Services, ", ")))
	fmt.Fprintf(&b, "started %s", s.Started.UTC().Format(time.RFC3339))
	if !s.Resolved.IsZero() {
		fmt.Fprintf(&b, ", resolved %s", s.Resolved.UTC().Format(time.RFC3339))
	}
	b.WriteString("\n")
	for _, d := range []struct {
		what string
		d    time.Duration
	}{{"notify", s.TimeToNotify}, {"acknowledge", s.TimeToAcknowledge}, {"mitigate", s.TimeToMitigate}, {"resolve", s.TimeToResolve}} {
		v := "—"
		if d.d > 0 {
			v = d.d.Round(100 * time.Millisecond).String()
		}
		fmt.Fprintf(&b, "time to %-11s %s\n", d.what+":", v)
	}
	if len(s.Actions) > 0 {
		b.WriteString("actions:\n")
		for _, a := range s.Actions {
			fmt.Fprintf(&b, "  %s  %s  %s\n", a.Time.UTC().Format("15:04:05"), orNone(a.Who), a.Message)
		}
	}
	if len(s.Hints) > 0 {
		b.WriteString("likely origins:\n")
		for i, h := range s.Hints {
			fmt.Fprintf(&b, "  %d. %s\n", i+1, h)
		}
	}
	return b.String()
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func (inc *Incident) clone() *Incident {
	c := *inc
	c.Services, c.Datacenters = slices.Clone(inc.Services), slices.Clone(inc.Datacenters)
	c.Timeline = slices.Clone(inc.Timeline)
	c.Alerts = maps.Clone(inc.Alerts)
	return &c
}

func titleOf(ev alerting.Event) string {
	t := ev.AlertName
	if svc := ev.Labels["service"]; svc != "" {
		t += " on " + svc
	}
	if ev.Message != "" {
		t += ": " + ev.Message
	}
	return t
}

func eventMessage(ev alerting.Event) string {
	m := ev.Type + " " + ev.AlertName
	if ev.Message != "" {
		m += ": " + ev.Message
	}
	return m
}

func addUnique(xs *[]string, x string) {
	if x != "" && !slices.Contains(*xs, x) {
		*xs = append(*xs, x)
		sort.Strings(*xs)
	}
}

func severityRank(s string) int {
	switch s {
	case "critical", "page":
		return 3
	case "warning":
		return 2
	case "info":
		return 1
	}
	return 0
}

// firing reports whether any of the incident's alerts still fires.
func (inc *Incident) firing() bool {
	for _, f := range inc.Alerts {
		if f {
			return true
		}
	}
	return false
}
