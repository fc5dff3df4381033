package online

import (
	"context"
	"maps"
	"slices"
	"time"

	"opspilot/analyzer/rootcause"
)

// rcWindow is the gap that ends an anomaly episode (root_cause.window).
func (s *Service) rcWindow() time.Duration {
	if w := s.cfg.RootCause.Window; w > 0 {
		return w
	}
	return rootcause.DefaultConfig().Window
}

// Anomalies are the anomaly episodes (consecutive alarms of one series)
// still alarming at or after since, oldest onset first.
func (s *Service) Anomalies(since time.Time) []rootcause.Anomaly {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []rootcause.Anomaly
	for _, se := range s.series {
		if se.onset.IsZero() || se.lastAlarm.Before(since) {
			continue
		}
		ls := map[string]string{}
		for _, l := range se.labels {
			ls[l.Name] = l.Value
		}
		sr := rootcause.SeriesFromLabels(ls)
		sr.Metric = se.query
		out = append(out, rootcause.Anomaly{Series: sr, Onset: se.onset, Peak: se.peak, Last: se.lastAlarm})
	}
	for _, js := range s.joint {
		if js.onset.IsZero() || js.lastAlarm.Before(since) {
			continue
		}
		ls := map[string]string{}
		for _, l := range js.labels {
			ls[l.Name] = l.Value
		}
		sr := rootcause.SeriesFromLabels(ls)
		sr.Metric = js.joint
		out = append(out, rootcause.Anomaly{Series: sr, Onset: js.onset, Peak: js.peak, Last: js.lastAlarm})
	}
	slices.SortFunc(out, func(a, b rootcause.Anomaly) int { return a.Onset.Compare(b.Onset) })
	return out
}

// Incident is one group of anomalies that fired together, with its likely
// origins ranked.
type Incident struct {
	Start     time.Time           `json:"start"`
	End       time.Time           `json:"end"`
	Anomalies []rootcause.Anomaly `json:"anomalies"`
	Hints     []rootcause.Hint    `json:"hints"`
	// Summary is the hints as a short numbered list for chat.
	Summary string `json:"summary"`
}

// Incidents correlates the episodes alarming since `since` into incidents
// and ranks each one's likely origins, newest incident first. The topology
// is the configured call graph plus, when Options.Inventory is set, where
// every instance runs.
func (s *Service) Incidents(ctx context.Context, since time.Time) ([]Incident, error) {
	anoms := s.Anomalies(since)
	if len(anoms) == 0 {
		return []Incident{}, nil
	}
	topo := rootcause.Topology{Calls: maps.Clone(s.cfg.RootCause.Calls)}
	if s.opts.Inventory != nil {
		inv, err := s.opts.Inventory(ctx)
		if err != nil {
			return nil, err
		}
		topo.Instances = inv
	}
	cfg := s.cfg.RootCause.Config
	groups := rootcause.Correlate(anoms, topo, cfg)
	out := make([]Incident, 0, len(groups))
	for i := len(groups) - 1; i >= 0; i-- {
		g := groups[i]
		hints := rootcause.Rank(g, topo, cfg)
		out = append(out, Incident{Start: g.Start, End: g.End, Anomalies: g.Anomalies, Hints: hints, Summary: rootcause.Format(hints, 3)})
	}
	return out, nil
}
