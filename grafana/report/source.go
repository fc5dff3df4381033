package report

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	opmodel "opspilot/orchestrator/model"
	"opspilot/tsdb"
)

// Querier reads the TSDB. *tsdb.Client satisfies it.
type Querier interface {
	Query(ctx context.Context, expr string, t time.Time) (tsdb.Result, error)
	QueryRange(ctx context.Context, expr string, r tsdb.Range) (tsdb.Result, error)
}

// ControlPlane reads what the control plane knows: its inventory, events,
// incidents and alert events. APIClient reads it from the REST API. A
// report built without one (nil) uses the TSDB alone and says so.
type ControlPlane interface {
	Nodes(ctx context.Context) ([]Node, error)
	Services(ctx context.Context) ([]Service, error)
	Instances(ctx context.Context) ([]Instance, error)
	// Events are the orchestrator's events (scaling, node loss…) since t.
	Events(ctx context.Context, since time.Time) ([]Event, error)
	// Incidents are the incidents opened by alerts, newest first.
	Incidents(ctx context.Context) ([]Incident, error)
	// AlertEvents are the alerting pipeline's events since t.
	AlertEvents(ctx context.Context, since time.Time) ([]AlertEvent, error)
}

// Node is GET /api/v1/nodes' element.
type Node struct {
	opmodel.Node
	Instances int `json:"instances"`
}

// Service is GET /api/v1/services' element (the parts reports use).
type Service struct {
	Name   string `json:"name"`
	Tenant string `json:"tenant,omitempty"`
	Status struct {
		Replicas      int `json:"replicas"`
		ReadyReplicas int `json:"readyReplicas"`
	} `json:"status"`
}

// Instance is GET /api/v1/instances' element.
type Instance = opmodel.Instance

// Event is GET /api/v1/events' element.
type Event struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"`
	Object  string    `json:"object"`
	Reason  string    `json:"reason"`
	Message string    `json:"message"`
	Who     string    `json:"who"`
}

// Incident is GET /api/v1/incidents' element (the parts reports use).
type Incident struct {
	ID          string    `json:"id"`
	Title       string    `json:"title"`
	Severity    string    `json:"severity"`
	Services    []string  `json:"services"`
	Datacenters []string  `json:"datacenters,omitempty"`
	State       string    `json:"state"`
	Started     time.Time `json:"started"`
	Resolved    time.Time `json:"resolved,omitzero"`
}

// AlertEvent is GET /api/v1/alerts/events' element.
type AlertEvent struct {
	Time        time.Time         `json:"time"`
	Type        string            `json:"type"`
	Fingerprint string            `json:"fingerprint,omitempty"`
	AlertName   string            `json:"alertname,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Message     string            `json:"message,omitempty"`
}

// APIClient reads the control plane's REST API (/api/v1). The zero HTTP
// uses http.DefaultClient.
type APIClient struct {
	// BaseURL is the server, e.g. http://127.0.0.1:9440.
	BaseURL string
	// Token is the bearer token (role read), if the server needs one.
	Token string
	HTTP  *http.Client
}

// Nodes implements ControlPlane.
func (c *APIClient) Nodes(ctx context.Context) ([]Node, error) {
	var out []Node
	return out, c.get(ctx, "/api/v1/nodes", nil, &out)
}

// Services implements ControlPlane.
func (c *APIClient) Services(ctx context.Context) ([]Service, error) {
	var out []Service
	return out, c.get(ctx, "/api/v1/services", nil, &out)
}

// Instances implements ControlPlane.
func (c *APIClient) Instances(ctx context.Context) ([]Instance, error) {
	var out []Instance
	return out, c.get(ctx, "/api/v1/instances", nil, &out)
}

// Events implements ControlPlane.
func (c *APIClient) Events(ctx context.Context, since time.Time) ([]Event, error) {
	var out []Event
	q := url.Values{"since": {since.UTC().Format(time.RFC3339)}, "limit": {"100000"}}
	return out, c.get(ctx, "/api/v1/events", q, &out)
}

// Incidents implements ControlPlane.
func (c *APIClient) Incidents(ctx context.Context) ([]Incident, error) {
	var out []Incident
	return out, c.get(ctx, "/api/v1/incidents", nil, &out)
}

// AlertEvents implements ControlPlane.
func (c *APIClient) AlertEvents(ctx context.Context, since time.Time) ([]AlertEvent, error) {
	var out []AlertEvent
	q := url.Values{"since": {since.UTC().Format(time.RFC3339)}, "limit": {"100000"}}
	return out, c.get(ctx, "/api/v1/alerts/events", q, &out)
}

func (c *APIClient) get(ctx context.Context, path string, q url.Values, out any) error {
	u := strings.TrimRight(c.BaseURL, "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(body, &e)
		if e.Error == "" {
			e.Error = strings.TrimSpace(string(body))
		}
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, e.Error)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("GET %s: decode the answer: %w", path, err)
	}
	return nil
}

// series is one labelled series of a range query.
type series struct {
	Labels model.Metric
	T      []time.Time
	V      []float64
}

func queryRange(ctx context.Context, q Querier, expr string, r tsdb.Range) ([]series, error) {
	res, err := q.QueryRange(ctx, expr, r)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", expr, err)
	}
	mat, ok := res.Value.(model.Matrix)
	if !ok {
		return nil, fmt.Errorf("query %s: got %s, want a range vector", expr, res.Value.Type())
	}
	out := make([]series, 0, len(mat))
	for _, s := range mat {
		ss := series{Labels: s.Metric, T: make([]time.Time, len(s.Values)), V: make([]float64, len(s.Values))}
		for i, p := range s.Values {
			ss.T[i], ss.V[i] = p.Timestamp.Time().UTC(), float64(p.Value)
		}
		out = append(out, ss)
	}
	return out, nil
}

// sample is one element of an instant vector.
type sample struct {
	Labels model.Metric
	V      float64
}

func queryInstant(ctx context.Context, q Querier, expr string, t time.Time) ([]sample, error) {
	res, err := q.Query(ctx, expr, t)
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", expr, err)
	}
	switch v := res.Value.(type) {
	case model.Vector:
		out := make([]sample, 0, len(v))
		for _, s := range v {
			out = append(out, sample{Labels: s.Metric, V: float64(s.Value)})
		}
		return out, nil
	case *model.Scalar:
		return []sample{{V: float64(v.Value)}}, nil
	}
	return nil, fmt.Errorf("query %s: got %s, want an instant vector", expr, res.Value.Type())
}

// labelValues lists the values of label among the series of expr at t.
func labelValues(ctx context.Context, q Querier, expr, label string, t time.Time) ([]string, error) {
	ss, err := queryInstant(ctx, q, expr, t)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, s := range ss {
		v := string(s.Labels[model.LabelName(label)])
		if v != "" && !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out, nil
}
