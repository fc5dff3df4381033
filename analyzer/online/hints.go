package online

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/prometheus/common/model"

	"opspilot/analyzer/rootcause"
	"opspilot/tsdb"
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
		if a, ok := se.anomaly(since, se.labels, se.query); ok {
			out = append(out, a)
		}
	}
	for _, js := range s.joint {
		if a, ok := js.anomaly(since, js.labels, js.joint); ok {
			out = append(out, a)
		}
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
	if q := s.cfg.RootCause.TrafficQuery; q != "" {
		observed, err := s.observedCalls(ctx, q)
		if err != nil {
			// Hints without the observed graph are still worth giving.
			s.log.Warn("analyzer: observed call graph unavailable; hints use the configured calls only", "err", err)
		}
		topo = mergeCalls(topo, observed)
	}
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

// observedCalls runs the traffic query (now) and builds the call graph
// from its caller/service series.
func (s *Service) observedCalls(ctx context.Context, q string) (rootcause.Topology, error) {
	now := s.opts.Now()
	res, err := s.opts.Querier.QueryRange(ctx, q, tsdb.Range{Start: now, End: now, Step: time.Minute})
	if err != nil {
		return rootcause.Topology{}, err
	}
	mat, _ := res.Value.(model.Matrix)
	var edges []rootcause.Edge
	for _, ss := range mat {
		if len(ss.Values) == 0 {
			continue
		}
		edges = append(edges, rootcause.Edge{From: string(ss.Metric["caller"]), To: string(ss.Metric["service"]),
			Requests: float64(ss.Values[len(ss.Values)-1].Value)})
	}
	return rootcause.TopologyFromTraffic(edges, s.cfg.RootCause.MinRequests), nil
}

// mergeCalls adds observed's calls and weights to topo's.
func mergeCalls(topo, observed rootcause.Topology) rootcause.Topology {
	if topo.Calls == nil {
		topo.Calls = map[string][]string{}
	}
	for caller, callees := range observed.Calls {
		for _, callee := range callees {
			if !slices.Contains(topo.Calls[caller], callee) {
				topo.Calls[caller] = append(topo.Calls[caller], callee)
			}
		}
	}
	if len(observed.Weights) > 0 && topo.Weights == nil {
		topo.Weights = observed.Weights
	}
	return topo
}
