package tsdb

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

func TestSplitBatches(t *testing.T) {
	mk := func(samples ...int) []TimeSeries {
		out := make([]TimeSeries, len(samples))
		for i, n := range samples {
			out[i] = TimeSeries{Labels: []Label{{Name: "__name__", Value: fmt.Sprint(i)}}, Samples: make([]Sample, n)}
			for j := range n {
				out[i].Samples[j] = Sample{Timestamp: int64(j), Value: float64(i)}
			}
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		samples []int
		max     int
		want    []int // samples per batch
	}{
		{"empty", nil, 10, nil},
		{"one small", []int{3}, 10, []int{3}},
		{"exact fit", []int{5, 5}, 10, []int{10}},
		{"spill", []int{6, 6}, 10, []int{10, 2}},
		{"long series split", []int{25}, 10, []int{10, 10, 5}},
		{"empty series skipped", []int{0, 4, 0}, 10, []int{4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := mk(tc.samples...)
			batches := splitBatches(in, tc.max)
			var got []int
			seen := map[string]int{}
			for _, b := range batches {
				n := 0
				for _, ts := range b {
					n += len(ts.Samples)
					// Samples stay in order: each continues where the
					// series' previous batch stopped.
					for j, s := range ts.Samples {
						if want := int64(seen[ts.Labels[0].Value] + j); s.Timestamp != want {
							t.Fatalf("series %s: sample timestamp %d, want %d", ts.Labels[0].Value, s.Timestamp, want)
						}
					}
					seen[ts.Labels[0].Value] += len(ts.Samples)
				}
				got = append(got, n)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("batch sizes: want %v, got %v", tc.want, got)
			}
			for i, n := range tc.samples {
				if seen[fmt.Sprint(i)] != n {
					t.Errorf("series %d: want %d samples kept, got %d", i, n, seen[fmt.Sprint(i)])
				}
			}
		})
	}
}

func TestRemoteEndpoints(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cfg       RemoteConfig
		write     string
		query     string
		errSubstr string
	}{
		{
			name:  "single-node",
			cfg:   RemoteConfig{URL: "http://vm:8428/"},
			write: "http://vm:8428/api/v1/write", query: "http://vm:8428",
		},
		{
			name:  "prometheus with path prefix",
			cfg:   RemoteConfig{URL: "https://prom.example:9090/prom"},
			write: "https://prom.example:9090/prom/api/v1/write", query: "https://prom.example:9090/prom",
		},
		{
			name:  "cluster default tenant",
			cfg:   RemoteConfig{Cluster: ClusterConfig{InsertURL: "http://vminsert:8480", SelectURL: "http://vmselect:8481/"}},
			write: "http://vminsert:8480/insert/0/prometheus/api/v1/write", query: "http://vmselect:8481/select/0/prometheus",
		},
		{
			name:  "cluster tenant with project",
			cfg:   RemoteConfig{Cluster: ClusterConfig{InsertURL: "http://vminsert:8480", SelectURL: "http://vmselect:8481", Tenant: "42:7"}},
			write: "http://vminsert:8480/insert/42:7/prometheus/api/v1/write", query: "http://vmselect:8481/select/42:7/prometheus",
		},
		{
			name:  "explicit overrides",
			cfg:   RemoteConfig{URL: "http://vm:8428", WriteURL: "http://agent:8429/api/v1/write"},
			write: "http://agent:8429/api/v1/write", query: "http://vm:8428",
		},
		{
			name:  "write and query urls only",
			cfg:   RemoteConfig{WriteURL: "http://a/w", QueryURL: "http://b/q/"},
			write: "http://a/w", query: "http://b/q",
		},
		{name: "nothing set", cfg: RemoteConfig{}, errSubstr: "set url"},
		{name: "half a cluster", cfg: RemoteConfig{Cluster: ClusterConfig{InsertURL: "http://i"}}, errSubstr: "both insert_url and select_url"},
		{name: "bad tenant", cfg: RemoteConfig{Cluster: ClusterConfig{InsertURL: "http://i", SelectURL: "http://s", Tenant: "a:b"}}, errSubstr: "accountID"},
		{name: "not http", cfg: RemoteConfig{URL: "ftp://vm"}, errSubstr: "http://"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ep, err := tc.cfg.Endpoints()
			if tc.errSubstr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errSubstr) {
					t.Fatalf("want error containing %q, got %v (%+v)", tc.errSubstr, err, ep)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ep.WriteURL != tc.write || ep.QueryURL != tc.query {
				t.Fatalf("got write %q query %q; want %q %q", ep.WriteURL, ep.QueryURL, tc.write, tc.query)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.Embedded.DataDir = "/x"
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		fields []string
	}{
		{"defaults are valid", func(*Config) {}, nil},
		{"unknown mode", func(c *Config) { c.Mode = "memory" }, []string{"mode"}},
		{"short retention", func(c *Config) { c.Embedded.Retention = model.Duration(time.Hour) }, []string{"embedded.retention"}},
		{"memory percent", func(c *Config) { c.Embedded.MemoryAllowedPercent = 0 }, []string{"embedded.memory_allowed_percent"}},
		{"memory bytes override percent", func(c *Config) { c.Embedded.MemoryAllowedPercent = 0; c.Embedded.MemoryAllowedBytes = 1 << 30 }, nil},
		{"log level", func(c *Config) { c.Embedded.LogLevel = "loud" }, []string{"embedded.log_level"}},
		{"remote needs a url", func(c *Config) { c.Mode = ModeRemote }, []string{"remote.url"}},
		{"remote url and cluster", func(c *Config) {
			c.Mode = ModeRemote
			c.Remote.URL = "http://vm:8428"
			c.Remote.Cluster.InsertURL = "http://i"
			c.Remote.Cluster.SelectURL = "http://s"
		}, []string{"remote.cluster"}},
		{"remote bad tenant", func(c *Config) {
			c.Mode = ModeRemote
			c.Remote.Cluster = ClusterConfig{InsertURL: "http://i", SelectURL: "http://s", Tenant: "1:2:3"}
		}, []string{"remote.cluster.tenant"}},
		{"remote two auths", func(c *Config) {
			c.Mode = ModeRemote
			c.Remote.URL = "http://vm"
			c.Remote.BearerToken = "t"
			c.Remote.BasicAuth.Username = "u"
		}, []string{"remote.basic_auth"}},
		{"remote half a client cert", func(c *Config) {
			c.Mode = ModeRemote
			c.Remote.URL = "https://vm"
			c.Remote.TLS.CertFile = "c.pem"
		}, []string{"remote.tls.key_file"}},
		{"client zero batch", func(c *Config) { c.Client.MaxSamplesPerRequest = 0 }, []string{"client.max_samples_per_request"}},
		{"client backoff order", func(c *Config) { c.Client.RetryMaxBackoff = time.Millisecond }, []string{"client.retry_max_backoff"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mutate(&c)
			var got []string
			for _, p := range c.Validate() {
				if p.Msg == "" {
					t.Errorf("problem for %s has no message", p.Field)
				}
				got = append(got, p.Field)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.fields) {
				t.Fatalf("problem fields: want %v, got %v", tc.fields, got)
			}
		})
	}
}
