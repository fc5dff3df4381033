package autoscaler

import (
	"encoding/json"
	"fmt"
	"net/http"

	"opspilot/api"
)

// Routes are the loop's read-only REST endpoints (documented in
// api/openapi.yaml); the policies themselves are served by the
// orchestrator's store (/api/v1/autoscalingpolicies).
func (l *Loop) Routes() []api.Route {
	return []api.Route{
		{Pattern: "GET /api/v1/autoscalers", Name: "autoscalers", Role: api.RoleRead, Handler: http.HandlerFunc(l.list)},
		{Pattern: "GET /api/v1/autoscalers/{service}", Name: "autoscaler", Role: api.RoleRead, Handler: http.HandlerFunc(l.describe)},
	}
}

// Summary is one line of GET /api/v1/autoscalers.
type Summary struct {
	Service     string  `json:"service"`
	Min         int     `json:"min_replicas"`
	Max         int     `json:"max_replicas"`
	Current     int     `json:"current"`
	Desired     int     `json:"desired"`
	Recommended int     `json:"recommended"`
	Predicted   int     `json:"predicted,omitempty"`
	Action      string  `json:"action"`
	Reason      string  `json:"reason"`
	DryRun      bool    `json:"dry_run"`
	Metrics     []Value `json:"metrics"`
}

// Value is a metric's value against its target.
type Value struct {
	Metric string  `json:"metric"`
	State  string  `json:"state"`
	Value  float64 `json:"value"`
	Target float64 `json:"target"`
}

func (l *Loop) list(w http.ResponseWriter, _ *http.Request) {
	out := []Summary{}
	for _, name := range l.Services() {
		st, ok := l.Status(name)
		if !ok {
			continue
		}
		s := Summary{Service: name, Min: st.Policy.MinReplicas, Max: st.Policy.MaxReplicas, Current: st.Last.Current,
			Desired: st.Last.Replicas, Recommended: st.Last.Recommendation.Replicas, Predicted: st.Last.Predicted,
			Action: st.Last.Action, Reason: st.Last.Decision.Reason, DryRun: st.DryRun, Metrics: []Value{}}
		for _, pr := range st.Last.Recommendation.Proposals {
			s.Metrics = append(s.Metrics, Value{Metric: pr.Metric, State: pr.State.String(), Value: pr.Value, Target: pr.Target})
		}
		out = append(out, s)
	}
	writeJSON(w, http.StatusOK, out)
}

func (l *Loop) describe(w http.ResponseWriter, r *http.Request) {
	st, ok := l.Status(r.PathValue("service"))
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"status": "error", "error": "no autoscaling policy for service " + r.PathValue("service") + " (apply one with opspilot apply -f)"})
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func writeJSON(w http.ResponseWriter, code int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}

// String names a proposal state in the API.
func (s ProposalState) String() string {
	switch s {
	case Proposed:
		return "proposed"
	case Abstained:
		return "abstained"
	}
	return "invalid"
}

// MarshalText names the state in JSON.
func (s ProposalState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a state MarshalText wrote.
func (s *ProposalState) UnmarshalText(b []byte) error {
	switch string(b) {
	case "proposed":
		*s = Proposed
	case "abstained":
		*s = Abstained
	case "invalid":
		*s = Invalid
	default:
		return fmt.Errorf("unknown proposal state %q", b)
	}
	return nil
}
