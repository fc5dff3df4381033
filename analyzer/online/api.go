package online

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"opspilot/api"
)

// Routes are the analyzer's REST endpoints (documented in api/openapi.yaml).
func (s *Service) Routes() []api.Route {
	return []api.Route{
		{Pattern: "GET /api/v1/analyzer/anomalies", Name: "analyzer_anomalies", Role: api.RoleRead, Handler: http.HandlerFunc(s.anomalies)},
	}
}

// anomalies lists scored series, highest score first. Query parameters
// min_score and limit filter; every other parameter is a label that must
// match exactly (service=billing, for=service_latency_p95).
func (s *Service) anomalies(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	minScore, limit := 0.0, 100
	match := map[string]string{}
	for k, vs := range q {
		v := vs[0]
		switch k {
		case "min_score":
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f < 0 || f > 1 {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("min_score=%q: want a number in [0,1], e.g. 0.9", v))
				return
			}
			minScore = f
		case "limit":
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("limit=%q: want a positive integer", v))
				return
			}
			limit = n
		default:
			match[k] = v
		}
	}
	all := s.Status(match)
	out := make([]SeriesStatus, 0, min(limit, len(all)))
	for _, st := range all {
		if st.Score < minScore || len(out) == limit {
			break
		}
		out = append(out, st)
	}
	writeJSON(w, http.StatusOK, map[string]any{"anomalies": out, "series": len(all)})
}

func writeJSON(w http.ResponseWriter, code int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"status": "error", "error": msg})
}
