package alerting

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"opspilot/api"
)

// apiServer mounts the pipeline's routes as the API server does, with a
// caller named "ann" (the server's authorization sets it from the token).
func apiServer(t testing.TB, p *Pipeline) *httptest.Server {
	mux := http.NewServeMux()
	for _, r := range p.Routes() {
		h := r.Handler
		mux.Handle(r.Pattern, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			h.ServeHTTP(w, req.WithContext(api.WithCaller(req.Context(), api.Caller{Name: "ann", Role: api.RoleWrite})))
		}))
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func call(t testing.TB, method, url, body string) (int, string) {
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set(api.ReasonHeader, "testing")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestPipelineAPI(t *testing.T) {
	f := startPipeline(t, t.TempDir(), testAMConfig)
	defer f.stop()
	srv := apiServer(t, f.p)
	a := testAlert("ErrorsHigh", "billing", "warning", time.Now(), false)
	put(t, f.p, a)

	cases := []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"POST", "/api/v1/silences", `{`, 400, "want {"},
		{"POST", "/api/v1/silences", `{"matchers":["service=\"billing\""],"duration":"1h","extra":1}`, 400, "unknown field"},
		{"POST", "/api/v1/silences", `{"matchers":["service=\"billing\""],"duration":"-1h","comment":"x"}`, 400, "positive"},
		{"POST", "/api/v1/silences", `{"matchers":["service=~\"(\""],"duration":"1h","comment":"x"}`, 400, "matcher"},
		{"POST", "/api/v1/silences", `{"matchers":[],"duration":"1h","comment":"x"}`, 400, "at least one matcher"},
		{"DELETE", "/api/v1/silences/nope", ``, 404, "no such silence"},
		{"POST", "/api/v1/alerts/zz/ack", ``, 404, "no such alert"},
		{"GET", "/api/v1/alerts/events?limit=x", ``, 400, "limit"},
		{"GET", "/api/v1/alerts/events?since=yesterday", ``, 400, "RFC 3339"},
		{"POST", "/api/v1/alerts/" + a.Fingerprint().String() + "/ack", ``, 200, `"by": "ann"`},
	}
	for _, tc := range cases {
		code, body := call(t, tc.method, srv.URL+tc.path, tc.body)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s %s %s: %d %s, want %d with %q", tc.method, tc.path, tc.body, code, body, tc.code, tc.want)
		}
	}
	// The reason header is the comment when the body has none.
	code, body := call(t, "POST", srv.URL+"/api/v1/silences", `{"matchers":["alertname=ErrorsHigh"],"duration":"30m"}`)
	if code != 200 {
		t.Fatalf("add silence: %d %s", code, body)
	}
	var created struct{ ID string }
	_ = json.Unmarshal([]byte(body), &created)
	sils := f.p.Silences(context.Background())
	if len(sils) != 1 || sils[0].ID != created.ID || sils[0].CreatedBy != "ann" || sils[0].Comment != "testing" {
		t.Errorf("silences %+v", sils)
	}
	if code, body := call(t, "GET", srv.URL+"/api/v1/alerts", ""); code != 200 || !strings.Contains(body, `"state": "suppressed"`) || !strings.Contains(body, created.ID) {
		t.Errorf("alerts: %d %s", code, body)
	}
	if code, body := call(t, "GET", srv.URL+"/api/v1/alerts/events?type=acknowledged", ""); code != 200 || !strings.Contains(body, `"who": "ann"`) {
		t.Errorf("events: %d %s", code, body)
	}
	if code, _ := call(t, "DELETE", srv.URL+"/api/v1/silences/"+created.ID, ""); code != 200 {
		t.Errorf("expire: %d", code)
	}
}

// FuzzSilenceAPI: whatever the body, the answer is 200 or 400, never a
// panic or a 5xx.
func FuzzSilenceAPI(f *testing.F) {
	p := startPipeline(f, f.TempDir(), testAMConfig)
	defer p.stop()
	srv := apiServer(f, p.p)
	for _, s := range []string{`{"matchers":["a=b"],"duration":"1h","comment":"c"}`, `{"matchers":["a=~\"x|y\""],"ends_at":"2030-01-01T00:00:00Z","comment":"c"}`,
		`{"matchers":[""],"duration":"1h"}`, `[]`, `null`, `{"matchers":["{a=b}"],"duration":"1ns","comment":"c"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		code, resp := call(t, "POST", srv.URL+"/api/v1/silences", body)
		if code != 200 && code != 400 {
			t.Fatalf("body %q: %d %s", body, code, resp)
		}
	})
}
