package runbooks

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"opspilot/alerting"
)

// fakeIncidentStore stands for the control-plane store; it fails the
// first failures saves, as an etcd outage would.
type fakeIncidentStore struct {
	mu       sync.Mutex
	failures int
	saved    map[string]*Incident
	loaded   []*Incident
}

func (f *fakeIncidentStore) SaveIncident(_ context.Context, inc *Incident) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failures > 0 {
		f.failures--
		return errors.New("etcd unavailable")
	}
	f.saved[inc.ID] = inc
	return nil
}

func (f *fakeIncidentStore) LoadIncidents(context.Context) ([]*Incident, error) { return f.loaded, nil }

func (f *fakeIncidentStore) get(id string) *Incident {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.saved[id]
}

// A store outage delays the incident's writes and loses nothing: the last
// state (resolved, with its whole timeline) is stored once the store is
// back, and the summary is sent once.
func TestIncidentServiceStoresThroughAnOutageWithFakeStore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &fakeIncidentStore{failures: 5, saved: map[string]*Incident{}}
		var (
			mu        sync.Mutex
			summaries []Summary
		)
		s, err := NewIncidentService(context.Background(), IncidentOptions{Store: st,
			Closed: func(_ context.Context, sum Summary) { mu.Lock(); summaries = append(summaries, sum); mu.Unlock() },
			Hints:  func(context.Context, *Incident) []string { return []string{"billing"} }})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- s.Run(ctx) }()
		t0 := time.Now()
		s.Observe(alertEvent(alerting.EventFired, "a1", "BillingErrorRatioHigh", "billing", "critical", t0, "rules"))
		s.StepDone("inc-1", t0.Add(5*time.Second), "runbook:billing-errors", "scaled billing 3 → 6", true)
		s.Observe(alertEvent(alerting.EventResolved, "a1", "BillingErrorRatioHigh", "billing", "critical", t0.Add(20*time.Second), "rules"))
		time.Sleep(time.Minute)
		synctest.Wait()
		got := st.get("inc-1")
		if got == nil || got.State != IncidentResolved || len(got.Timeline) != 6 {
			t.Fatalf("stored incident %+v", got)
		}
		mu.Lock()
		if len(summaries) != 1 || summaries[0].TimeToMitigate != 5*time.Second || summaries[0].Hints[0] != "billing" {
			t.Errorf("summaries %+v", summaries)
		}
		mu.Unlock()

		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

func TestIncidentAPI(t *testing.T) {
	st := &fakeIncidentStore{saved: map[string]*Incident{}}
	s, err := NewIncidentService(context.Background(), IncidentOptions{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	s.Observe(alertEvent(alerting.EventFired, "a1", "BillingErrorRatioHigh", "billing", "critical", t0, "rules"))
	s.Observe(alertEvent(alerting.EventFired, "b1", "Slow", "gateway", "warning", t0.Add(time.Second), "rules"))
	s.Observe(alertEvent(alerting.EventResolved, "b1", "Slow", "gateway", "warning", t0.Add(2*time.Second), "rules"))
	mux := http.NewServeMux()
	for _, rt := range s.Routes() {
		mux.Handle(rt.Pattern, rt.Handler)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}
	code, body := get("/api/v1/incidents?state=active")
	var list []Incident
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list) != 1 || list[0].ID != "inc-1" {
		t.Errorf("active incidents: %d %s", code, body)
	}
	if code, body := get("/api/v1/incidents/inc-2"); code != 200 || !strings.Contains(body, "Incident inc-2 resolved: Slow on gateway") {
		t.Errorf("show: %d %s", code, body)
	}
	if code, _ := get("/api/v1/incidents/inc-9"); code != 404 {
		t.Errorf("unknown incident: %d", code)
	}
	if code, _ := get("/api/v1/incidents?limit=x"); code != 400 {
		t.Errorf("bad limit: %d", code)
	}
}
