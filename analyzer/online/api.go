package online

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/common/model"

	"opspilot/analyzer/forecast"
	"opspilot/analyzer/loganomaly"

	"opspilot/api"
)

// Routes are the analyzer's REST endpoints (documented in api/openapi.yaml).
func (s *Service) Routes() []api.Route {
	return []api.Route{
		{Pattern: "GET /api/v1/analyzer/anomalies", Name: "analyzer_anomalies", Role: api.RoleRead, Handler: http.HandlerFunc(s.anomalies)},
		{Pattern: "GET /api/v1/analyzer/incidents", Name: "analyzer_incidents", Role: api.RoleRead, Handler: http.HandlerFunc(s.incidents)},
		{Pattern: "GET /api/v1/analyzer/capacity", Name: "analyzer_capacity", Role: api.RoleRead, Handler: http.HandlerFunc(s.capacity)},
		{Pattern: "GET /api/v1/analyzer/log-templates", Name: "analyzer_log_templates", Role: api.RoleRead, Handler: http.HandlerFunc(s.logTemplates)},
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

// incidents correlates recent anomalies and ranks their likely origins.
func (s *Service) incidents(w http.ResponseWriter, r *http.Request) {
	since, ok := durationParam(w, r, "since", time.Hour)
	if !ok {
		return
	}
	out, err := s.Incidents(r.Context(), s.opts.Now().Add(-since))
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("instance inventory: %v", err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"incidents": out})
}

// capacity forecasts a scope's usage against its capacity.
func (s *Service) capacity(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req := CapacityRequest{Scope: q.Get("scope"), Name: q.Get("name"), Resource: q.Get("resource"), UsageExpr: q.Get("usage")}
	if req.Scope == "" {
		req.Scope = "service"
	}
	if req.Resource == "" {
		req.Resource = "cpu"
	}
	var ok bool
	if req.History, ok = durationParam(w, r, "history", 0); !ok {
		return
	}
	if req.Horizon, ok = durationParam(w, r, "horizon", 0); !ok {
		return
	}
	if v := q.Get("threshold"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !(f > 0 && f <= 10) {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("threshold=%q: want a fraction of capacity such as 0.8", v))
			return
		}
		req.Threshold = f
	}
	if v := q.Get("capacity"); v != "" {
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			if !(f > 0) {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("capacity=%q: want a positive number or an expression", v))
				return
			}
			req.CapacityValue = f
		} else {
			req.CapacityExpr = v
		}
	}
	out, err := s.Capacity(r.Context(), req)
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, out)
	case errors.Is(err, errBadRequest), errors.Is(err, forecast.ErrBadConfig):
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, forecast.ErrTooFewPoints), errors.Is(err, forecast.ErrNoData), errors.Is(err, forecast.ErrNumerical):
		writeError(w, http.StatusUnprocessableEntity, err.Error())
	default:
		writeError(w, http.StatusServiceUnavailable, err.Error())
	}
}

// logTemplates lists a service's newest log templates (first seen, with an
// example line).
func (s *Service) logTemplates(w http.ResponseWriter, r *http.Request) {
	f := s.templates.Load()
	if f == nil {
		writeError(w, http.StatusServiceUnavailable, "the log scanner is not running: it needs a log store (analyzer.logs.url, or `opspilot up`)")
		return
	}
	svc := r.URL.Query().Get("service")
	if svc == "" {
		writeError(w, http.StatusBadRequest, "service=NAME is required")
		return
	}
	out := (*f)(svc)
	if out == nil {
		out = []loganomaly.TemplateInfo{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"templates": out})
}

// durationParam reads a Prometheus-style duration (90s, 2h, 28d).
func durationParam(w http.ResponseWriter, r *http.Request, name string, def time.Duration) (time.Duration, bool) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, true
	}
	d, err := model.ParseDuration(v)
	if err != nil || d <= 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%s=%q: want a duration such as 1h or 28d", name, v))
		return 0, false
	}
	return time.Duration(d), true
}

func writeJSON(w http.ResponseWriter, code int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"status": "error", "error": msg})
}
