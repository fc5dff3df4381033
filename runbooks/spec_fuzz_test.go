package runbooks

import (
	"context"
	"errors"
	"testing"
	"time"

	"opspilot/config"
	examples "opspilot/examples/runbooks"
)

// FuzzRunbookYAML: arbitrary files never panic the parser, Validate or a
// dry run of what they define; every error names the file and says
// something; every runbook Parse returns is valid.
func FuzzRunbookYAML(f *testing.F) {
	f.Add(examples.BillingErrors)
	f.Add([]byte("kind: Runbook\nname: r\nsteps: [{name: a, if: '{{ .params.x }}', notify: {message: '{{ .steps.a.message }}'}}]\n"))
	f.Add([]byte("kind: Runbook\nname: r\nparams: [{name: n, type: int, default: '2'}]\nsteps:\n  - {name: s, scale: {service: billing, multiply: 1e300, max: 0}}\n  - {name: w, wait_until: {expr: up, timeout: 1ns, interval: 1ns}}\n"))
	f.Add([]byte("kind: Runbook\nname: r\nparams: [{name: n, type: int}]\nsteps:\n  - {name: s, scale: {service: billing, replicas: '{{ .params.n }}', max: \"7\"}}\n  - {name: t, scale: {service: billing, add: !!binary aGk=, multiply: .inf}}\n"))
	f.Add([]byte("kind: Runbook\nname: r\ntrigger: {alerts: ['a=~\"(\"'], auto: true}\nsteps: [{name: x, exec: {command: ['{{ range .steps }}{{ end }}']}}]\n---\nkind: Other\n"))
	f.Add([]byte("kind: Runbook\nname: r\nsteps: [{name: h, http: {url: 'http://{{ .alert.labels.host }}', expect_status: 99}}, {name: a, approve: {roles: [x]}}]\n"))
	f.Add([]byte("- a\n- b\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rbs, err := Parse("fuzz.yaml", data)
		if err != nil {
			var es config.Errors
			if !errors.As(err, &es) {
				t.Fatalf("error %v (%T) is not config.Errors", err, err)
			}
			for _, e := range es {
				if e.File != "fuzz.yaml" || e.Msg == "" {
					t.Fatalf("error without file or message: %+v", e)
				}
			}
			return
		}
		for _, rb := range rbs {
			if ps := rb.Validate(); len(ps) > 0 {
				t.Fatalf("Parse returned an invalid runbook: %v", ps)
			}
			// A dry run touches nothing and waits for nothing.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			e := NewEngine(EngineOptions{
				Querier:      &fakeQuerier{},
				Orchestrator: &fakeOrchestrator{replicas: map[string]int{}},
				Logs:         &fakeLogs{},
			})
			res, _ := e.Run(ctx, rb, RunRequest{DryRun: true, Params: nil})
			cancel()
			if res != nil && len(res.Steps) > len(rb.Steps) {
				t.Fatalf("%d results for %d steps", len(res.Steps), len(rb.Steps))
			}
		}
	})
}
