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
		{"duplicate name", func(c *Config) { c.Queries[2].Name = c.Queries[0].Name }, "queries[2].name", "also the name of queries[0]"},
		{"no name", func(c *Config) { c.Queries[0].Name = "" }, "queries[0].name", "`for` label"},
		{"unknown model", func(c *Config) { c.Queries[0].Model = "prophet" }, "queries[0].model", "holt-winters"},
		{"fast interval", func(c *Config) { c.Interval = 100 * time.Millisecond }, "interval", "below 1s"},
		{"forget too short", func(c *Config) { c.Forget = time.Second }, "forget", "shorter than interval"},
		{"no series", func(c *Config) { c.MaxSeries = 0 }, "max_series", "positive"},
		{"root cause", func(c *Config) { c.RootCause.Damping = 1.5 }, "root_cause", "damping"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Queries = DefaultQueries()
			tc.mutate(&c)
			ps := c.Validate()
			if len(ps) != 1 || ps[0].Field != tc.field || !strings.Contains(ps[0].Msg, tc.msg) {
				t.Fatalf("got %v, want one problem at %s containing %q", ps, tc.field, tc.msg)
			}
		})
	}
	off := Config{}
	if ps := off.Validate(); len(ps) != 0 {
		t.Errorf("a disabled analyzer needs no settings, got %v", ps)
	}
}
