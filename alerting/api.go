package alerting

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"opspilot/api"
)

// Routes are the pipeline's REST endpoints (documented in
// api/openapi.yaml): alerts, their events and acknowledgements, and
// silences. Mutating ones need the write role and record who and why.
func (p *Pipeline) Routes() []api.Route {
	R, W := api.RoleRead, api.RoleWrite
	return []api.Route{
		{Pattern: "GET /api/v1/alerts", Name: "alerts", Role: R, Handler: http.HandlerFunc(p.listAlerts)},
		{Pattern: "GET /api/v1/alerts/events", Name: "alert_events", Role: R, Handler: http.HandlerFunc(p.listEvents)},
		{Pattern: "POST /api/v1/alerts/{fingerprint}/ack", Name: "alert_ack", Role: W, Handler: http.HandlerFunc(p.ack)},
		{Pattern: "GET /api/v1/silences", Name: "silences", Role: R, Handler: http.HandlerFunc(p.listSilences)},
		{Pattern: "POST /api/v1/silences", Name: "silence_add", Role: W, Handler: http.HandlerFunc(p.addSilence)},
		{Pattern: "DELETE /api/v1/silences/{id}", Name: "silence_expire", Role: W, Handler: http.HandlerFunc(p.expireSilence)},
		// Slack signs these requests; the handler checks the signature.
		{Pattern: "POST /api/v1/slack/{receiver}/interactions", Name: "slack_interactions", Role: "", Handler: http.HandlerFunc(p.slackInteraction)},
	}
}

func (p *Pipeline) slackInteraction(w http.ResponseWriter, r *http.Request) {
	h, ok := p.interact[r.PathValue("receiver")]
	if !ok {
		api.WriteError(w, http.StatusNotFound, fmt.Sprintf("no Slack receiver %q with a signing secret (alerting.pipeline.slack[].signing_secret_file)", r.PathValue("receiver")))
		return
	}
	h.ServeHTTP(w, r)
}

func (p *Pipeline) listAlerts(w http.ResponseWriter, r *http.Request) {
	out := p.Alerts(r.Context())
	if out == nil {
		out = []HeldAlert{}
	}
	api.WriteJSON(w, http.StatusOK, out)
}

func (p *Pipeline) listEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := EventFilter{Fingerprint: q.Get("fingerprint"), AlertName: q.Get("alertname"), Type: q.Get("type"), Limit: 1000}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			api.WriteError(w, http.StatusBadRequest, fmt.Sprintf("limit %q: want a positive integer", s))
			return
		}
		f.Limit = n
	}
	if s := q.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			api.WriteError(w, http.StatusBadRequest, fmt.Sprintf("since %q: want an RFC 3339 time such as 2026-11-27T10:00:00Z", s))
			return
		}
		f.Since = t
	}
	api.WriteJSON(w, http.StatusOK, p.events.List(f))
}

func who(r *http.Request) string {
	if c := api.CallerFrom(r.Context()); c.Name != "" {
		return c.Name
	}
	return "anonymous"
}

func (p *Pipeline) ack(w http.ResponseWriter, r *http.Request) {
	ref := AlertRef{Fingerprint: r.PathValue("fingerprint")}
	if err := p.Acknowledge(r.Context(), ref, who(r)); err != nil {
		api.WriteError(w, http.StatusNotFound, err.Error())
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]string{"status": "acknowledged", "by": who(r)})
}

func (p *Pipeline) listSilences(w http.ResponseWriter, r *http.Request) {
	api.WriteJSON(w, http.StatusOK, p.Silences(r.Context()))
}

// silenceBody is POST /api/v1/silences: ends_at or duration.
type silenceBody struct {
	Matchers []string  `json:"matchers"`
	StartsAt time.Time `json:"starts_at"`
	EndsAt   time.Time `json:"ends_at"`
	Duration string    `json:"duration"`
	Comment  string    `json:"comment"`
}

func (p *Pipeline) addSilence(w http.ResponseWriter, r *http.Request) {
	var b silenceBody
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		api.WriteError(w, http.StatusBadRequest, "silence: "+err.Error()+` (want {"matchers":["alertname=\"X\""],"duration":"1h","comment":"why"})`)
		return
	}
	req := SilenceRequest{Matchers: b.Matchers, StartsAt: b.StartsAt, EndsAt: b.EndsAt, CreatedBy: who(r), Comment: b.Comment}
	if req.Comment == "" {
		req.Comment = api.Reason(r)
	}
	if b.Duration != "" {
		d, err := time.ParseDuration(b.Duration)
		if err != nil || d <= 0 {
			api.WriteError(w, http.StatusBadRequest, fmt.Sprintf("silence: duration %q: want a positive Go duration such as 1h or 30m", b.Duration))
			return
		}
		start := req.StartsAt
		if start.IsZero() {
			start = time.Now()
		}
		req.EndsAt = start.Add(d)
	}
	if req.Comment == "" {
		api.WriteError(w, http.StatusBadRequest, "silence: say why in comment (or --reason)")
		return
	}
	id, err := p.AddSilence(r.Context(), req)
	if err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, ErrBadSilence) {
			code = http.StatusBadRequest
		}
		api.WriteError(w, code, err.Error())
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]string{"id": id})
}

func (p *Pipeline) expireSilence(w http.ResponseWriter, r *http.Request) {
	if err := p.ExpireSilence(r.Context(), r.PathValue("id"), who(r)); err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, ErrUnknownSilence) {
			code = http.StatusNotFound
		}
		api.WriteError(w, code, err.Error())
		return
	}
	api.WriteJSON(w, http.StatusOK, map[string]string{"status": "expired"})
}
