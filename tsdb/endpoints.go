package tsdb

import (
	"fmt"
	"strings"
)

// Endpoints are the two URLs a Client talks to.
type Endpoints struct {
	// WriteURL receives Prometheus remote-write requests.
	WriteURL string
	// QueryURL is the Prometheus query API base: QueryURL+"/api/v1/query".
	QueryURL string
}

// LocalEndpoints addresses an opspilot server (or `opspilot up`) at base,
// e.g. "http://127.0.0.1:9440": its TSDB is served under /prometheus.
func LocalEndpoints(base string) Endpoints {
	base = strings.TrimRight(base, "/") + "/prometheus"
	return Endpoints{WriteURL: base + "/api/v1/write", QueryURL: base}
}

// Endpoints resolves the write and query URLs of a remote store:
//
//   - single-node / Prometheus: URL/api/v1/write and URL/api/v1/…
//   - VictoriaMetrics cluster: INSERT/insert/TENANT/prometheus/api/v1/write
//     and SELECT/select/TENANT/prometheus/api/v1/…
//
// WriteURL and QueryURL, when set, win over both.
func (c RemoteConfig) Endpoints() (Endpoints, error) {
	var ep Endpoints
	switch {
	case c.Cluster.InsertURL != "" || c.Cluster.SelectURL != "":
		if c.Cluster.InsertURL == "" || c.Cluster.SelectURL == "" {
			return ep, fmt.Errorf("tsdb.remote.cluster needs both insert_url and select_url")
		}
		if err := validateTenant(c.Cluster.Tenant); err != nil {
			return ep, fmt.Errorf("tsdb.remote.cluster.tenant: %w", err)
		}
		tenant := c.Cluster.Tenant
		if tenant == "" {
			tenant = "0"
		}
		ep.WriteURL = strings.TrimRight(c.Cluster.InsertURL, "/") + "/insert/" + tenant + "/prometheus/api/v1/write"
		ep.QueryURL = strings.TrimRight(c.Cluster.SelectURL, "/") + "/select/" + tenant + "/prometheus"
	case c.URL != "":
		base := strings.TrimRight(c.URL, "/")
		ep.WriteURL = base + "/api/v1/write"
		ep.QueryURL = base
	}
	if c.WriteURL != "" {
		ep.WriteURL = c.WriteURL
	}
	if c.QueryURL != "" {
		ep.QueryURL = strings.TrimRight(c.QueryURL, "/")
	}
	if ep.WriteURL == "" || ep.QueryURL == "" {
		return ep, fmt.Errorf("tsdb.remote: set url, or cluster.insert_url and cluster.select_url, or write_url and query_url")
	}
	for _, u := range []string{ep.WriteURL, ep.QueryURL} {
		if err := validateHTTPURL(u); err != nil {
			return ep, fmt.Errorf("tsdb.remote: %w", err)
		}
	}
	return ep, nil
}
