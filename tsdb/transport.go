package tsdb

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
)

// inProcessHost names the embedded store in URLs that never reach a socket.
const inProcessHost = "embedded.opspilot.invalid"

// InProcessEndpoints addresses the embedded store through Embedded.Transport.
func InProcessEndpoints() Endpoints {
	return LocalEndpoints("http://" + inProcessHost)
}

// Transport returns an http.RoundTripper that hands requests straight to
// the embedded store's handler: the server's own clients (self-monitoring,
// controllers) use the store without a socket and without API tokens.
func (e *Embedded) Transport() http.RoundTripper {
	h := e.Handler()
	return roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		if err := r.Context().Err(); err != nil {
			return nil, err
		}
		r2 := r.Clone(r.Context())
		r2.RemoteAddr = "in-process"
		r2.RequestURI = r.URL.RequestURI()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r2)
		resp := rec.Result()
		resp.Request = r
		return resp, nil
	})
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// ProxyHandler serves the Prometheus API of a remote store under
// /prometheus/: writes go to the write endpoint, everything else to the
// query API, with the remote store's credentials (never the caller's opspilot
// token). Grafana and promtool use the same URL in both modes.
func (c *Client) ProxyHandler() http.Handler {
	writeURL, _ := url.Parse(c.endpoints.WriteURL)
	queryURL, _ := url.Parse(c.endpoints.QueryURL)
	return &httputil.ReverseProxy{
		Transport: c.hc.Transport,
		Rewrite: func(pr *httputil.ProxyRequest) {
			path := strings.TrimPrefix(pr.In.URL.Path, "/prometheus")
			pr.Out.Header.Del("Authorization")
			if path == "/api/v1/write" || path == "/api/v1/push" {
				pr.Out.URL.Scheme, pr.Out.URL.Host, pr.Out.URL.Path = writeURL.Scheme, writeURL.Host, writeURL.Path
				pr.Out.Host = writeURL.Host
				return
			}
			pr.Out.URL.Scheme, pr.Out.URL.Host = queryURL.Scheme, queryURL.Host
			pr.Out.URL.Path = strings.TrimRight(queryURL.Path, "/") + path
			pr.Out.Host = queryURL.Host
		},
	}
}
