package jsonapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestDo(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/echo":
			if r.Header.Get("Authorization") != "Bearer tok" || r.Header.Get("X-Why") != "because" || r.Header.Get("Content-Type") != "application/json" {
				w.WriteHeader(400)
				return
			}
			var v map[string]int
			_ = json.NewDecoder(r.Body).Decode(&v)
			v["n"]++
			_ = json.NewEncoder(w).Encode(v)
		case "/refuse":
			w.WriteHeader(403)
			_, _ = w.Write([]byte(`{"status":"error","error":"role read cannot"}`))
		default:
			w.WriteHeader(502)
			_, _ = w.Write([]byte("  plain proxy error\n"))
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	var out map[string]int
	if err := Do(ctx, srv.Client(), "POST", srv.URL+"/echo", "tok", http.Header{"X-Why": {"because"}}, map[string]int{"n": 1}, &out); err != nil || out["n"] != 2 {
		t.Fatalf("echo: %v %v", out, err)
	}
	var e *Error
	if err := Do(ctx, srv.Client(), "GET", srv.URL+"/refuse", "", nil, nil, nil); !errors.As(err, &e) || e.Code != 403 || e.Msg != "role read cannot" {
		t.Errorf("refuse: %v", err)
	}
	if err := Do(ctx, srv.Client(), "GET", srv.URL+"/other", "", nil, nil, nil); !errors.As(err, &e) || e.Code != 502 || e.Msg != "plain proxy error" {
		t.Errorf("plain error body: %v", err)
	}
}
