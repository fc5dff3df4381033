package scheduler

import (
	"maps"
	"testing"

	"opspilot/orchestrator/model"
)

func TestEffectiveWeights(t *testing.T) {
	known := []string{"A", "B", "C"}
	cases := []struct {
		name string
		p    model.Placement
		out  []string
		want map[string]int
	}{
		{"nothing failed over keeps the weights", model.Placement{Datacenters: map[string]int{"A": 6, "B": 4}}, nil, map[string]int{"A": 6, "B": 4}},
		{"nothing failed over, no weights", model.Placement{}, nil, nil},
		{"a datacenter outside the service does not matter", model.Placement{Datacenters: map[string]int{"A": 6, "B": 4}}, []string{"C"}, map[string]int{"A": 6, "B": 4}},
		{"lost share spreads over the others by weight", model.Placement{Datacenters: map[string]int{"A": 6, "B": 4, "C": 2}}, []string{"B"}, map[string]int{"A": 6, "B": 0, "C": 2}},
		{"DR datacenter with weight 0 takes it all", model.Placement{Datacenters: map[string]int{"A": 6, "B": 4, "C": 0}, Failover: []string{"C"}}, []string{"B"}, map[string]int{"A": 6, "B": 0, "C": 4}},
		{"priority order skips a failed-over one", model.Placement{Datacenters: map[string]int{"A": 6, "B": 4}, Failover: []string{"B", "C"}}, []string{"A", "B"}, map[string]int{"A": 0, "B": 0, "C": 10}},
		{"unknown failover datacenter is skipped", model.Placement{Datacenters: map[string]int{"A": 1, "B": 1}, Failover: []string{"Z"}}, []string{"B"}, map[string]int{"A": 1, "B": 0}},
		{"no weights: the others evenly", model.Placement{}, []string{"A"}, map[string]int{"A": 0, "B": 1, "C": 1}},
		{"only datacenter lost: every other not excluded", model.Placement{Datacenters: map[string]int{"B": 3, "C": 0}}, []string{"B"}, map[string]int{"A": 1, "B": 0, "C": 0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := map[string]bool{}
			for _, dc := range c.out {
				out[dc] = true
			}
			orig := maps.Clone(c.p.Datacenters)
			got := EffectiveWeights(c.p, known, out)
			if !maps.Equal(got, c.want) || (got == nil) != (c.want == nil) {
				t.Errorf("got %v, want %v", got, c.want)
			}
			if !maps.Equal(c.p.Datacenters, orig) {
				t.Errorf("the service's weights were modified: %v", c.p.Datacenters)
			}
		})
	}
}

func TestTargets(t *testing.T) {
	if got := Targets(7, map[string]int{"A": 6, "B": 4}, nil); !maps.Equal(got, map[string]int{"A": 4, "B": 3}) {
		t.Errorf("7 by 6:4 = %v, want A 4 B 3", got)
	}
	if got := Targets(4, nil, []string{"B", "A"}); !maps.Equal(got, map[string]int{"A": 2, "B": 2}) {
		t.Errorf("4 evenly = %v", got)
	}
	if got := Targets(4, map[string]int{"A": 1, "B": 0}, nil); !maps.Equal(got, map[string]int{"A": 4}) {
		t.Errorf("weight 0 got a share: %v", got)
	}
}
