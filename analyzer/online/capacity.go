package online

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/prometheus/common/model"

	"opspilot/analyzer/forecast"
	"opspilot/tsdb"
)

// CapacityRequest names what to forecast: a scope (a service, a datacenter
// or a group of nodes), a resource, and how much history and horizon.
type CapacityRequest struct {
	// Scope is "service", "datacenter" or "nodes" (Name is then a regular
	// expression over the node label: a node group).
	Scope string
	Name  string
	// Resource is "cpu" (cores), "memory" (bytes) or "kpi" (requests/s
	// at the gateway; needs Capacity, or a KPI capacity in config).
	Resource string
	// History is how far back usage is read (default 28 days: four weekly
	// cycles); Horizon how far ahead it is forecast (default 30 days).
	History, Horizon time.Duration
	// Threshold is the fraction of capacity that counts as exhausted
	// (default 1).
	Threshold float64
	// UsageExpr and CapacityExpr replace the built-in expressions;
	// CapacityValue, when > 0, is a fixed capacity.
	UsageExpr, CapacityExpr string
	CapacityValue           float64
}

// CapacityForecast is the answer: the expressions used and the report.
type CapacityForecast struct {
	Scope                string          `json:"scope"`
	Name                 string          `json:"name"`
	Resource             string          `json:"resource"`
	UsageExpr            string          `json:"usage_expr"`
	CapacityExpr         string          `json:"capacity_expr,omitempty"`
	Method               string          `json:"method"`
	Confidence           string          `json:"confidence"`
	Reason               string          `json:"reason,omitempty"`
	DataStart            time.Time       `json:"data_start"`
	DataEnd              time.Time       `json:"data_end"`
	StepSeconds          float64         `json:"step_seconds"`
	Current              float64         `json:"current"`
	Capacity             float64         `json:"capacity"`
	Limit                float64         `json:"limit"`
	Utilisation          float64         `json:"utilisation"`
	GrowthPerDay         float64         `json:"growth_per_day"`
	AlreadyExhausted     bool            `json:"already_exhausted"`
	ExhaustAt            *time.Time      `json:"exhaust_at,omitempty"`
	ExhaustAtPessimistic *time.Time      `json:"exhaust_at_pessimistic,omitempty"`
	Seasons              []string        `json:"seasons,omitempty"`
	Forecast             []ForecastPoint `json:"forecast"`
}

// ForecastPoint is one forecast value with its interval.
type ForecastPoint struct {
	T     time.Time `json:"t"`
	Mean  float64   `json:"mean"`
	Lower float64   `json:"lower"`
	Upper float64   `json:"upper"`
}

// errBadRequest marks caller mistakes (the API answers 400).
var errBadRequest = errors.New("bad request")

// capacityStep reads history at a resolution that keeps a fit under
// about 4,000 points: 10 minutes for four weeks.
func capacityStep(history time.Duration) time.Duration {
	step := (history / 4000).Round(time.Minute)
	return max(step, time.Minute)
}

// capacityExprs are the built-in usage and capacity expressions; window is
// the rate window (the step).
func capacityExprs(scope, name, resource, window string) (usage, capacity string, err error) {
	var sel string
	switch scope {
	case "service":
		sel = "service=" + strconv.Quote(name)
	case "datacenter":
		sel = "datacenter=" + strconv.Quote(name)
	case "nodes":
		sel = "node=~" + strconv.Quote(name)
	default:
		return "", "", fmt.Errorf("%w: scope %q: use service, datacenter or nodes", errBadRequest, scope)
	}
	if name == "" {
		return "", "", fmt.Errorf("%w: name the %s", errBadRequest, scope)
	}
	switch {
	case scope == "service" && resource == "cpu":
		return fmt.Sprintf(`sum(rate(container_cpu_usage_seconds_total{%s}[%s]))`, sel, window),
			fmt.Sprintf(`sum(container_spec_cpu_quota{%[1]s} / container_spec_cpu_period{%[1]s})`, sel), nil
	case scope == "service" && resource == "memory":
		return fmt.Sprintf(`sum(container_memory_working_set_bytes{%s})`, sel),
			fmt.Sprintf(`sum(container_spec_memory_limit_bytes{%s})`, sel), nil
	case scope == "service" && resource == "kpi":
		return fmt.Sprintf(`sum(rate(opspilot_gateway_requests_total{%s}[%s]))`, sel, window), "", nil
	case resource == "cpu":
		return fmt.Sprintf(`sum(rate(node_cpu_seconds_total{%s, mode!="idle"}[%s]))`, sel, window),
			fmt.Sprintf(`count(node_cpu_seconds_total{%s, mode="idle"})`, sel), nil
	case resource == "memory":
		return fmt.Sprintf(`sum(node_memory_MemTotal_bytes{%[1]s} - node_memory_MemAvailable_bytes{%[1]s})`, sel),
			fmt.Sprintf(`sum(node_memory_MemTotal_bytes{%s})`, sel), nil
	case resource == "kpi":
		return "", "", fmt.Errorf("%w: resource kpi is per service; for a %s pass usage= and capacity= expressions", errBadRequest, scope)
	}
	return "", "", fmt.Errorf("%w: resource %q: use cpu, memory or kpi", errBadRequest, resource)
}

// Capacity forecasts usage of a service, datacenter or node group from the
// TSDB's history and reports when it reaches capacity. It is the API the
// capacity reports and predictive scaling use.
func (s *Service) Capacity(ctx context.Context, req CapacityRequest) (*CapacityForecast, error) {
	if req.History == 0 {
		req.History = 28 * 24 * time.Hour
	}
	if req.History < time.Hour || req.History > 400*24*time.Hour {
		return nil, fmt.Errorf("%w: history %s: use 1h to 400d, e.g. 28d", errBadRequest, req.History)
	}
	step := capacityStep(req.History)
	window := model.Duration(step).String()
	usage, capExpr, err := capacityExprs(req.Scope, req.Name, req.Resource, window)
	if req.UsageExpr != "" {
		usage, err = req.UsageExpr, nil
		if req.Scope == "" {
			req.Scope = "custom"
		}
	}
	if err != nil {
		return nil, err
	}
	if req.CapacityExpr != "" {
		capExpr = req.CapacityExpr
	}
	if req.CapacityValue > 0 {
		capExpr = ""
	}
	if capExpr == "" && !(req.CapacityValue > 0) {
		return nil, fmt.Errorf("%w: no capacity for %s %s %s: pass capacity=NUMBER or capacity=EXPRESSION", errBadRequest, req.Scope, req.Name, req.Resource)
	}
	end := s.opts.Now().Truncate(step)
	r := tsdb.Range{Start: end.Add(-req.History), End: end, Step: step}
	ts, vs, err := s.rangeSeries(ctx, usage, r)
	if err != nil {
		return nil, fmt.Errorf("usage %s: %w", usage, err)
	}
	capacity := forecast.ConstantCapacity(req.CapacityValue)
	if capExpr != "" {
		cts, cvs, err := s.rangeSeries(ctx, capExpr, r)
		if err != nil {
			return nil, fmt.Errorf("capacity %s: %w", capExpr, err)
		}
		capacity = forecast.CapacitySeries(cts, cvs)
	}
	rep, err := forecast.Exhaustion(ts, vs, capacity, forecast.CapacityConfig{
		Model: forecast.Config{Step: step}, Horizon: req.Horizon, Threshold: req.Threshold,
	})
	if err != nil {
		return nil, err
	}
	out := &CapacityForecast{Scope: req.Scope, Name: req.Name, Resource: req.Resource, UsageExpr: usage, CapacityExpr: capExpr,
		Method: rep.Method, Confidence: string(rep.Confidence), Reason: rep.Reason, DataStart: rep.DataStart, DataEnd: rep.DataEnd,
		StepSeconds: rep.Step.Seconds(), Current: rep.Current, Capacity: rep.Capacity, Limit: rep.Limit, Utilisation: rep.Utilisation,
		GrowthPerDay: rep.GrowthPerDay, AlreadyExhausted: rep.AlreadyExhausted, Forecast: make([]ForecastPoint, 0, len(rep.Forecast))}
	if !rep.ExhaustAt.IsZero() {
		out.ExhaustAt = &rep.ExhaustAt
	}
	if !rep.ExhaustAtPessimistic.IsZero() {
		out.ExhaustAtPessimistic = &rep.ExhaustAtPessimistic
	}
	if rep.Params != nil {
		for _, d := range rep.Params.Seasons {
			out.Seasons = append(out.Seasons, model.Duration(d).String())
		}
	}
	for _, p := range rep.Forecast {
		out.Forecast = append(out.Forecast, ForecastPoint{T: p.T, Mean: finiteOr0(p.Mean), Lower: finiteOr0(p.Lower), Upper: finiteOr0(p.Upper)})
	}
	return out, nil
}

func finiteOr0(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return f
}

// rangeSeries runs expr over r and returns its one series; an expression
// that returns several is refused (aggregate it).
func (s *Service) rangeSeries(ctx context.Context, expr string, r tsdb.Range) ([]time.Time, []float64, error) {
	res, err := s.opts.Querier.QueryRange(ctx, expr, r)
	if err != nil {
		return nil, nil, err
	}
	mat, ok := res.Value.(model.Matrix)
	if !ok {
		return nil, nil, fmt.Errorf("%w: not a range vector", errBadRequest)
	}
	switch len(mat) {
	case 0:
		return nil, nil, fmt.Errorf("%w: no data in the last %s", errBadRequest, model.Duration(r.End.Sub(r.Start)))
	case 1:
	default:
		return nil, nil, fmt.Errorf("%w: %d series; aggregate to one, e.g. sum(...)", errBadRequest, len(mat))
	}
	ts := make([]time.Time, len(mat[0].Values))
	vs := make([]float64, len(mat[0].Values))
	for i, p := range mat[0].Values {
		ts[i], vs[i] = p.Timestamp.Time(), float64(p.Value)
	}
	return ts, vs, nil
}
