package main

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"opspilot/autoscaler"
	"opspilot/orchestrator/control"
)

// instantQuerier is the part of tsdbQuerier the rollout analysis needs.
type instantQuerier interface {
	Query(ctx context.Context, expr string, at time.Time) ([]autoscaler.Sample, error)
}

// rolloutAnalyzer compares a service's two versions from the gateway's
// per-version metrics (opspilot_gateway_requests_total and
// opspilot_gateway_request_duration_seconds, labelled service and
// version): requests, the share answered 5xx, and p95 latency over the
// window. It judges gray-release steps.
type rolloutAnalyzer struct {
	q   instantQuerier
	now func() time.Time
}

func (a rolloutAnalyzer) Compare(ctx context.Context, service, newVersion, oldVersion string, window time.Duration) (control.Comparison, error) {
	var c control.Comparison
	var err error
	for _, m := range []struct {
		version        string
		reqs, errs, lt *float64
	}{{newVersion, &c.NewRequests, &c.NewErrorRatio, &c.NewP95}, {oldVersion, &c.OldRequests, &c.OldErrorRatio, &c.OldP95}} {
		sel := fmt.Sprintf(`service=%s,version=%s`, strconv.Quote(service), strconv.Quote(m.version))
		w := "[" + window.String() + "]"
		if *m.reqs, err = a.scalar(ctx, `sum(increase(opspilot_gateway_requests_total{`+sel+`}`+w+`))`, 0); err != nil {
			return c, err
		}
		failed, err := a.scalar(ctx, `sum(increase(opspilot_gateway_requests_total{`+sel+`,code=~"5.."}`+w+`))`, 0)
		if err != nil {
			return c, err
		}
		if *m.reqs > 0 {
			*m.errs = failed / *m.reqs
		}
		if *m.lt, err = a.scalar(ctx, `histogram_quantile(0.95, sum by (le) (increase(opspilot_gateway_request_duration_seconds_bucket{`+sel+`}`+w+`)))`, math.NaN()); err != nil {
			return c, err
		}
	}
	return c, nil
}

// scalar runs an aggregating query; no series gives empty.
func (a rolloutAnalyzer) scalar(ctx context.Context, expr string, empty float64) (float64, error) {
	s, err := a.q.Query(ctx, expr, a.now())
	if err != nil {
		return 0, fmt.Errorf("query %s: %w", expr, err)
	}
	if len(s) == 0 || math.IsNaN(s[0].Value) {
		return empty, nil
	}
	return s[0].Value, nil
}
