package tsdb

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// TestClientSendsBearerTokenOverAnyTransport: the API token reaches the
// server whether the client dials itself or is given a transport (the
// CLI's, which trusts the server's CA), for writes and queries alike.
func TestClientSendsBearerTokenOverAnyTransport(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.URL.Path+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		if r.URL.Path == "/prometheus/api/v1/write" {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"success","data":{"resultType":"vector","result":[]}}`))
	}))
	defer srv.Close()
	for _, tc := range []struct {
		name string
		rt   http.RoundTripper
	}{{"own transport", nil}, {"given transport", http.DefaultTransport}} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			got = nil
			mu.Unlock()
			c := newTestClient(t, LocalEndpoints(srv.URL), ClientOptions{BearerToken: "api-token", Transport: tc.rt})
			if err := c.Write(context.Background(), testSeries("m", "auth", 1, 1, 1, time.Now())); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Query(context.Background(), "m", time.Now()); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(got) != 2 {
				t.Fatalf("requests %q, want a write and a query", got)
			}
			for _, g := range got {
				if want := " Bearer api-token"; len(g) < len(want) || g[len(g)-len(want):] != want {
					t.Errorf("request %q: want the Authorization header %q", g, want[1:])
				}
			}
		})
	}
}
