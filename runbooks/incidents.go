package runbooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"

	"opspilot/alerting"
	"opspilot/api"
)

// IncidentStore keeps incidents (the control-plane store in `opspilot
// up`; cmd/opspilot implements it).
type IncidentStore interface {
	SaveIncident(ctx context.Context, inc *Incident) error
	LoadIncidents(ctx context.Context) ([]*Incident, error)
}

// IncidentOptions are the incident service's collaborators.
type IncidentOptions struct {
	Store IncidentStore
	// Closed is called with the summary when an incident resolves (the
	// caller posts it to chat and the console).
	Closed func(ctx context.Context, s Summary)
	// Hints returns root-cause hints for an incident's services around
	// its start (the analyzer's); nil: none.
	Hints func(ctx context.Context, inc *Incident) []string
	// Changed, if set, is called with every change (a copy), in order,
	// from the goroutine that observed it; it must not block (the
	// journal the log store gets).
	Changed func(inc *Incident)
	// Prefix of incident ids (default "inc").
	Prefix string
	Log    *slog.Logger
}

// IncidentService opens, updates and closes incidents from alert events
// (Observe is the alerting event log's listener) and keeps them in the
// store: a store outage delays the writes, it loses none.
type IncidentService struct {
	o  IncidentOptions
	tr *Tracker

	mu      sync.Mutex
	opened  func(inc *Incident, ev alerting.Event)
	pending map[string]*Incident // not yet stored, by id
	closed  []*Incident          // resolved, summary not yet sent
	wake    chan struct{}
}

// NewIncidentService restores the stored incidents.
func NewIncidentService(ctx context.Context, o IncidentOptions) (*IncidentService, error) {
	if o.Store == nil {
		return nil, errors.New("runbooks: the incident service needs a store")
	}
	if o.Prefix == "" {
		o.Prefix = "inc"
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	s := &IncidentService{o: o, tr: NewTracker(o.Prefix), pending: map[string]*Incident{}, wake: make(chan struct{}, 1)}
	incs, err := o.Store.LoadIncidents(ctx)
	if err != nil {
		return nil, fmt.Errorf("runbooks: load incidents: %w", err)
	}
	s.tr.Restore(incs)
	return s, nil
}

// Tracker is the service's incident state.
func (s *IncidentService) Tracker() *Tracker { return s.tr }

// OnOpened sets what runs when an alert opens an incident (the runbooks
// it triggers); f must not block.
func (s *IncidentService) OnOpened(f func(inc *Incident, ev alerting.Event)) {
	s.mu.Lock()
	s.opened = f
	s.mu.Unlock()
}

// Observe applies an alert event; it never blocks on the store.
func (s *IncidentService) Observe(ev alerting.Event) {
	ch, ok := s.tr.Observe(ev)
	if !ok {
		return
	}
	s.changed(ch)
	s.mu.Lock()
	opened := s.opened
	s.mu.Unlock()
	if ch.Opened && opened != nil {
		opened(ch.Incident, ev)
	}
}

// StepDone records a runbook step on an incident.
func (s *IncidentService) StepDone(id string, at time.Time, who, message string, mitigating bool) {
	if ch, ok := s.tr.StepDone(id, at, who, message, mitigating); ok {
		s.changed(ch)
	}
}

func (s *IncidentService) changed(ch Change) {
	if s.o.Changed != nil {
		s.o.Changed(ch.Incident)
	}
	s.mu.Lock()
	s.pending[ch.Incident.ID] = ch.Incident
	if ch.Closed {
		s.closed = append(s.closed, ch.Incident)
	}
	s.mu.Unlock()
	if ch.Opened {
		s.o.Log.Info("incident opened", "id", ch.Incident.ID, "title", ch.Incident.Title, "severity", ch.Incident.Severity)
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run writes changed incidents to the store (retrying with backoff while
// it fails) and sends the summaries of resolved ones, until ctx ends.
func (s *IncidentService) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			// A last attempt, bounded.
			fctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			s.flush(fctx)
			cancel()
			return nil
		case <-s.wake:
		}
		s.flush(ctx)
	}
}

func (s *IncidentService) flush(ctx context.Context) {
	s.mu.Lock()
	batch := s.pending
	s.pending = map[string]*Incident{}
	closed := s.closed
	s.closed = nil
	s.mu.Unlock()
	for _, inc := range closed {
		sum := Summarize(inc)
		if s.o.Hints != nil {
			sum.Hints = s.o.Hints(ctx, inc)
		}
		if s.o.Closed != nil {
			s.o.Closed(ctx, sum)
		}
		s.o.Log.Info("incident resolved", "id", inc.ID, "time_to_resolve", sum.TimeToResolve)
	}
	for id, inc := range batch {
		_, err := backoff.Retry(ctx, func() (struct{}, error) { return struct{}{}, s.o.Store.SaveIncident(ctx, inc) },
			backoff.WithBackOff(backoff.NewExponentialBackOff()), backoff.WithMaxElapsedTime(30*time.Second))
		if err != nil {
			s.o.Log.Warn("incident not stored yet; will retry", "id", id, "err", err)
			s.mu.Lock()
			if _, newer := s.pending[id]; !newer {
				s.pending[id] = inc
			}
			s.mu.Unlock()
			select {
			case s.wake <- struct{}{}:
			default:
			}
		}
	}
}

// Routes are the incidents' REST endpoints.
func (s *IncidentService) Routes() []api.Route {
	return []api.Route{
		{Pattern: "GET /api/v1/incidents", Name: "incidents", Role: api.RoleRead, Handler: http.HandlerFunc(s.list)},
		{Pattern: "GET /api/v1/incidents/{id}", Name: "incident", Role: api.RoleRead, Handler: http.HandlerFunc(s.show)},
	}
}

// IncidentView is GET /api/v1/incidents/{id}: the incident and its
// summary.
type IncidentView struct {
	Incident
	Summary     Summary `json:"summary"`
	SummaryText string  `json:"summary_text"`
}

func (s *IncidentService) list(w http.ResponseWriter, r *http.Request) {
	out := s.tr.List()
	if st := r.URL.Query().Get("state"); st != "" {
		kept := out[:0]
		for _, inc := range out {
			if inc.State == st || (st == "active" && inc.State != IncidentResolved) {
				kept = append(kept, inc)
			}
		}
		out = kept
	}
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n <= 0 {
			api.WriteError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: want a positive integer", l))
			return
		}
		out = out[:min(n, len(out))]
	}
	api.WriteJSON(w, http.StatusOK, out) // newest first, as List returns them
}

func (s *IncidentService) show(w http.ResponseWriter, r *http.Request) {
	inc, ok := s.tr.Get(r.PathValue("id"))
	if !ok {
		api.WriteError(w, http.StatusNotFound, "no incident "+r.PathValue("id")+" (list them with opspilot incident list)")
		return
	}
	sum := Summarize(inc)
	if s.o.Hints != nil {
		sum.Hints = s.o.Hints(r.Context(), inc)
	}
	api.WriteJSON(w, http.StatusOK, IncidentView{Incident: *inc, Summary: sum, SummaryText: sum.Text()})
}
