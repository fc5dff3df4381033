package runbooks

import (
	"strings"
	"testing"
	"time"

	"opspilot/alerting"
)

func alertEvent(typ, fp, name, service, severity string, at time.Time, who string) alerting.Event {
	return alerting.Event{Time: at, Type: typ, Fingerprint: fp, AlertName: name, Who: who,
		Labels: map[string]string{"alertname": name, "service": service, "severity": severity, "datacenter": "dc1"}}
}

// An incident's life from alert events and runbook steps: opened by the
// first alert, joined by a second of the same group, acknowledged,
// mitigated by a scale step, resolved when both alerts clear, with the
// summary's durations.
func TestTrackerIncidentLifecycle(t *testing.T) {
	tr := NewTracker("inc")
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

	ch, ok := tr.Observe(alertEvent(alerting.EventFired, "a1", "BillingErrorRatioHigh", "billing", "warning", at(0), "rules"))
	if !ok || !ch.Opened || ch.Incident.ID != "inc-1" || ch.Incident.State != IncidentOpen {
		t.Fatalf("first alert: %+v", ch)
	}
	// The same alertname and service, another instance: the same incident,
	// and its severity rises to critical.
	ch, _ = tr.Observe(alertEvent(alerting.EventFired, "a2", "BillingErrorRatioHigh", "billing", "critical", at(1), "rules"))
	if ch.Opened || ch.Incident.ID != "inc-1" || ch.Incident.Severity != "critical" || len(ch.Incident.Alerts) != 2 {
		t.Fatalf("second alert: %+v", ch.Incident)
	}
	// Another service: another incident.
	if ch, _ := tr.Observe(alertEvent(alerting.EventFired, "b1", "BillingErrorRatioHigh", "gateway", "warning", at(1), "rules")); !ch.Opened || ch.Incident.ID != "inc-2" {
		t.Fatalf("other service: %+v", ch.Incident)
	}
	notified := alertEvent(alerting.EventNotified, "a1", "BillingErrorRatioHigh", "billing", "warning", at(1.5), "alertmanager")
	notified.GroupKey = `{}:{alertname="BillingErrorRatioHigh", service="billing"}`
	if ch, _ := tr.Observe(notified); ch.Incident.GroupKey != notified.GroupKey {
		t.Errorf("the incident's group key (its Slack thread) %q", ch.Incident.GroupKey)
	}
	ch, _ = tr.Observe(alertEvent(alerting.EventAcknowledged, "a1", "BillingErrorRatioHigh", "billing", "warning", at(30), "slack:tina"))
	if ch.State != IncidentAcknowledged || ch.Incident.AcknowledgedBy != "slack:tina" {
		t.Fatalf("ack: %+v", ch.Incident)
	}
	if _, ok := tr.StepDone("inc-1", at(40), "runbook:billing-errors", "queried the error ratio: 0.05", false); !ok {
		t.Fatal("step on inc-1")
	}
	ch, _ = tr.StepDone("inc-1", at(45), "runbook:billing-errors", "scaled billing 3 → 6", true)
	if ch.State != IncidentMitigated || ch.Incident.MitigatedBy != "runbook:billing-errors" {
		t.Fatalf("mitigated: %+v", ch.Incident)
	}
	if _, ok := tr.StepDone("inc-99", at(45), "x", "y", true); ok {
		t.Error("a step on an unknown incident was accepted")
	}
	// One alert clears: still mitigated; both: resolved.
	ch, _ = tr.Observe(alertEvent(alerting.EventResolved, "a1", "BillingErrorRatioHigh", "billing", "warning", at(60), "rules"))
	if ch.Closed || ch.State != IncidentMitigated {
		t.Fatalf("one alert cleared: %+v", ch)
	}
	ch, _ = tr.Observe(alertEvent(alerting.EventResolved, "a2", "BillingErrorRatioHigh", "billing", "critical", at(75), "rules"))
	if !ch.Closed || ch.Incident.State != IncidentResolved || !ch.Incident.Resolved.Equal(at(75)) {
		t.Fatalf("all cleared: %+v", ch)
	}
	// A new firing of the same group opens a new incident.
	if ch, _ := tr.Observe(alertEvent(alerting.EventFired, "a1", "BillingErrorRatioHigh", "billing", "warning", at(100), "rules")); !ch.Opened || ch.Incident.ID != "inc-3" {
		t.Fatalf("re-fire: %+v", ch.Incident)
	}
	// Events of unknown alerts concern no incident.
	if _, ok := tr.Observe(alertEvent(alerting.EventSilenced, "zz", "X", "y", "", at(101), "ann")); ok {
		t.Error("a silence of an unknown alert changed an incident")
	}

	inc, _ := tr.Get("inc-1")
	s := Summarize(inc)
	if s.TimeToNotify != 1500*time.Millisecond || s.TimeToAcknowledge != 30*time.Second || s.TimeToMitigate != 45*time.Second || s.TimeToResolve != 75*time.Second {
		t.Errorf("durations %+v", s)
	}
	if len(s.Actions) != 4 { // ack, two steps, mitigated
		t.Errorf("actions %+v", s.Actions)
	}
	s.Hints = []string{"billing: errors rose first (onset 10:00:00)"}
	text := s.Text()
	for _, want := range []string{"Incident inc-1 resolved: BillingErrorRatioHigh on billing", "severity critical", "time to acknowledge: 30s",
		"time to mitigate:   45s", "scaled billing 3 → 6", "1. billing: errors rose first"} {
		if !strings.Contains(text, want) {
			t.Errorf("summary lacks %q:\n%s", want, text)
		}
	}
	if l := tr.List(); len(l) != 3 || l[0].ID != "inc-3" {
		t.Errorf("list %+v", l)
	}

	// A restored tracker continues the numbering and the open incidents.
	tr2 := NewTracker("inc")
	tr2.Restore(tr.List())
	if inc, ok := tr2.OfAlert("a1"); !ok || inc.ID != "inc-3" {
		t.Errorf("restored open incident: %+v", inc)
	}
	if ch, _ := tr2.Observe(alertEvent(alerting.EventFired, "c1", "Other", "billing", "info", at(200), "rules")); ch.Incident.ID != "inc-4" {
		t.Errorf("numbering after restore: %s", ch.Incident.ID)
	}
}

// Changes are copies: keeping one does not see later changes.
func TestTrackerReturnsCopies(t *testing.T) {
	tr := NewTracker("inc")
	ch, _ := tr.Observe(alertEvent(alerting.EventFired, "a1", "A", "s", "", time.Now(), "rules"))
	tr.Observe(alertEvent(alerting.EventFired, "a2", "A", "s", "", time.Now(), "rules"))
	if len(ch.Incident.Alerts) != 1 || len(ch.Incident.Timeline) != 2 {
		t.Errorf("the returned incident changed: %+v", ch.Incident)
	}
}
