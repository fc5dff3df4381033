package online

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	if ps := DefaultConfig().Validate(); len(ps) != 0 {
		t.Fatalf("defaults are invalid: %v", ps)
	}
	for _, tc := range []struct {
		name   string
		mutate func(c *Config)
		field  string
		msg    string
	}{
		{"bad expr", func(c *Config) { c.Queries[1].Expr = "sum(rate(x[1m]" }, "queries[1].expr", "not valid MetricsQL"},
		{"empty expr", func(c *Config) { c.Queries[0].Expr = "" }, "queries[0].expr", "must not be empty"},
		{"duplicate name", func(c *Config) { c.Queries[2].Name = c.Queries[0].Name; c.Joint = nil }, "queries[2].name", "also the name of queries[0]"},
		{"no name", func(c *Config) { c.Queries[0].Name = ""; c.Joint = nil }, "queries[0].name", "`for` label"},
		{"joint of an unknown query", func(c *Config) { c.Joint[0].Queries[1] = "throughput" }, "joint[0].queries[1]", "not the name of a query"},
		{"joint of one query", func(c *Config) { c.Joint[0].Queries = c.Joint[0].Queries[:1] }, "joint[0].queries", "2 to 8"},
		{"joint named like a query", func(c *Config) { c.Joint[0].Name = "node_load" }, "joint[0].name", "already the name"},
		{"joint by for", func(c *Config) { c.Joint[0].By = []string{"for"} }, "joint[0].by[0]", "cannot name an entity"},
		{"unknown model", func(c *Config) { c.Queries[0].Model = "prophet" }, "queries[0].model", "holt-winters"},
		{"fast interval", func(c *Config) { c.Interval = 100 * time.Millisecond }, "interval", "below 1s"},
		{"forget too short", func(c *Config) { c.Forget = time.Second }, "forget", "shorter than interval"},
		{"no series", func(c *Config) { c.MaxSeries = 0 }, "max_series", "positive"},
		{"root cause", func(c *Config) { c.RootCause.Damping = 1.5 }, "root_cause", "damping"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Queries = DefaultQueries()
			c.Joint = DefaultJoint()
			tc.mutate(&c)
			ps := c.Validate()
			if len(ps) != 1 || ps[0].Field != tc.field || !strings.Contains(ps[0].Msg, tc.msg) {
				t.Fatalf("got %v, want one problem at %s containing %q", ps, tc.field, tc.msg)
			}
		})
	}
	// Unset joints are the defaults whose queries exist, so a config with
	// its own queries needs no joint section.
	own := DefaultConfig()
	own.Queries = []Query{{Name: "lat", Expr: "kpi_latency"}}
	if ps := own.Validate(); len(ps) != 0 || len(own.Joints()) != 0 {
		t.Errorf("own queries without joints: %v, joints %v", ps, own.Joints())
	}
	if j := DefaultConfig().Joints(); len(j) != 1 || j[0].Name != "service_kpis" {
		t.Errorf("default joints: %v", j)
	}
	off := Config{}
	if ps := off.Validate(); len(ps) != 0 {
		t.Errorf("a disabled analyzer needs no settings, got %v", ps)
	}
}
