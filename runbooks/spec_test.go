package runbooks

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"opspilot/config"
	examples "opspilot/examples/runbooks"
)

func mustParse(t *testing.T, data string) Runbook {
	t.Helper()
	rbs, err := Parse("rb.yaml", []byte(data))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(rbs) != 1 {
		t.Fatalf("got %d runbooks, want 1", len(rbs))
	}
	return rbs[0]
}

func TestParseValid(t *testing.T) {
	rb := mustParse(t, `
kind: Runbook
name: restart-billing
description: restart one billing instance
trigger:
  command: restart-billing
params:
  - {name: instance, type: string, required: true}
  - {name: wait, type: duration, default: 30s}
  - {name: n, type: int, default: 3}
steps:
  - name: before
    query: {expr: 'sum(up{service="billing"})'}
  - name: restart
    if: '{{ gt .steps.before.value 1 }}'
    timeout: 20s
    restart: {instance: '{{ .params.instance }}'}
  - name: tell
    notify: {message: 'restarted {{ .params.instance }} by {{ .run.who }}'}
`)
	if rb.Name != "restart-billing" || rb.Timeout != DefaultTimeout || len(rb.Steps) != 3 || rb.Params[2].Default != "3" {
		t.Fatalf("unexpected runbook: %+v", rb)
	}
	if got := rb.Steps[1].Action(); got != "restart" {
		t.Errorf("Action() = %q, want restart", got)
	}
}

func TestParseInvalid(t *testing.T) {
	head := "kind: Runbook\nname: rb\n"
	step := func(s string) string { return head + "steps:\n  - name: a\n" + s }
	tests := []struct {
		name, data string
		want       []string // each a substring of the error, with file:line:col
	}{
		{"kind", "kind: Playbook\nname: x\n", []string{`rb.yaml:1:7: kind: unknown kind "Playbook"`}},
		{"unknown field", head + "stepz: []\n", []string{`rb.yaml:3:1: stepz: unknown field "stepz"; did you mean "steps"?`}},
		{"no steps", head, []string{"rb.yaml: steps: needs at least one step"}},
		{"bad name", "kind: Runbook\nname: 'bad name'\nsteps: [{name: a, notify: {message: hi}}]\n", []string{`rb.yaml:2:7: name: invalid name "bad name"`}},
		{"no action", step("    timeout: 5s\n"), []string{"rb.yaml:4:5: steps[0]: needs exactly one action key"}},
		{"two actions", step("    notify: {message: x}\n    restart: {instance: i}\n"), []string{"rb.yaml:5:5: steps[0].notify: a step has exactly one action, and this one also has restart"}},
		{"step name", head + "steps:\n  - name: 'a-b'\n    notify: {message: x}\n", []string{`rb.yaml:4:11: steps[0].name: invalid step name "a-b"`}},
		{"duplicate step", head + "steps:\n  - {name: a, notify: {message: x}}\n  - {name: a, notify: {message: y}}\n", []string{`rb.yaml:5:12: steps[1].name: step "a" is defined twice`}},
		{"negative timeout", step("    timeout: -1s\n    notify: {message: x}\n"), []string{"rb.yaml:5:14: steps[0].timeout: must be positive"}},
		{"duration without unit", step("    timeout: 30\n    notify: {message: x}\n"), []string{`rb.yaml:5:14: steps[0].timeout: cannot use 30 as a duration; add a unit, e.g. "30s"`}},
		{"scale two", step("    scale: {service: billing, replicas: 3, add: 1}\n"), []string{"rb.yaml:5:5: steps[0].scale: needs exactly one of replicas"}},
		{"scale none", step("    scale: {service: billing}\n"), []string{"steps[0].scale: needs exactly one of replicas"}},
		{"scale multiply", step("    scale: {service: billing, multiply: 0}\n"), []string{"rb.yaml:5:41: steps[0].scale.multiply: must be a positive number"}},
		{"scale no service", step("    scale: {add: 1}\n"), []string{"steps[0].scale.service: missing"}},
		{"scale fraction", step("    scale: {service: billing, replicas: 1.5}\n"), []string{"rb.yaml:5:41: steps[0].scale.replicas: 1.5: want a whole number"}},
		{"scale word", step("    scale: {service: billing, add: many}\n"), []string{`rb.yaml:5:36: steps[0].scale.add: "many": want a number or a template that renders to one`}},
		{"scale list", step("    scale: {service: billing, replicas: [3]}\n"), []string{"rb.yaml:5:41: steps[0].scale.replicas: want a number or a template"}},
		{"scale negative max", step("    scale: {service: billing, add: 1, max: -2}\n"), []string{"rb.yaml:5:44: steps[0].scale.max: must not be negative"}},
		{"scale template param", step("    scale: {service: billing, replicas: '{{ .params.n }}'}\n"), []string{"rb.yaml:5:41: steps[0].scale.replicas: template uses .params.n, which is not declared"}},
		{"scale template syntax", step("    scale: {service: billing, multiply: '{{ .params.f '}\n"), []string{"rb.yaml:5:41: steps[0].scale.multiply: template:"}},
		{"bad query", step("    query: {expr: 'sum(rate(x[1m])'}\n"), []string{"rb.yaml:5:19: steps[0].query.expr: not valid MetricsQL"}},
		{"bad matcher", head + "trigger: {alerts: ['alertname=~\"(\"']}\nsteps: [{name: a, notify: {message: x}}]\n", []string{"rb.yaml:3:20: trigger.alerts[0]: not valid alert matchers"}},
		{"auto without alerts", head + "trigger: {auto: true}\nsteps: [{name: a, notify: {message: x}}]\n", []string{"rb.yaml:3:17: trigger.auto: auto runs the runbook when an alert matches"}},
		{"bad command", head + "trigger: {command: 'Run Me'}\nsteps: [{name: a, notify: {message: x}}]\n", []string{`rb.yaml:3:20: trigger.command: invalid command "Run Me"`}},
		{"param type", head + "params: [{name: n, type: integer}]\nsteps: [{name: a, notify: {message: x}}]\n", []string{`rb.yaml:3:26: params[0].type: unknown type "integer"; use one of string, int`}},
		{"param default", head + "params: [{name: n, type: int, default: many}]\nsteps: [{name: a, notify: {message: x}}]\n", []string{`rb.yaml:3:40: params[0].default: param n: "many" is not an integer`}},
		{"template syntax", step("    notify: {message: '{{ .params.x '}\n"), []string{"rb.yaml:5:23: steps[0].notify.message: template:"}},
		{"undeclared param", step("    notify: {message: '{{ .params.x }}'}\n"), []string{"steps[0].notify.message: template uses .params.x, which is not declared"}},
		{"later step", head + "steps:\n  - {name: a, notify: {message: '{{ .steps.b.message }}'}}\n  - {name: b, notify: {message: x}}\n", []string{"steps[0].notify.message: template uses .steps.b, which is not a step before this one"}},
		{"unknown output", head + "steps:\n  - {name: q, query: {expr: up}}\n  - {name: b, notify: {message: '{{ .steps.q.valeu }}'}}\n", []string{`steps[1].notify.message: step q has no output "valeu"; it has: value, series`}},
		{"bad if", step("    if: '{{ .nope }}'\n    notify: {message: x}\n"), []string{"rb.yaml:5:9: steps[0].if: template uses .nope; the data is .params, .steps, .alert and .run"}},
		{"approve nobody", step("    approve: {message: 'ok?'}\n"), []string{"rb.yaml:5:5: steps[0].approve: needs roles or users"}},
		{"http url", step("    http: {url: 'ftp://x'}\n"), []string{"rb.yaml:5:17: steps[0].http.url: must start with http:// or https://"}},
		{"wait interval", step("    wait_until: {expr: up, interval: -1s}\n"), []string{"steps[0].wait_until.interval: must be positive"}},
		{"step longer than runbook", head + "timeout: 1m\nsteps:\n  - {name: w, wait_until: {expr: up, timeout: 5m}}\n", []string{"rb.yaml:5:47: steps[0].wait_until.timeout: 5m0s is longer than the runbook's timeout 1m0s"}},
		{"exec empty", step("    exec: {command: []}\n"), []string{"steps[0].exec.command: needs the program"}},
		{"silence matcher", step("    silence: {matchers: ['a=~\"(\"']}\n"), []string{"steps[0].silence.matchers[0]: not valid alert matchers"}},
		{"duplicate runbook", "kind: Runbook\nname: x\nsteps: [{name: a, notify: {message: x}}]\n---\nkind: Runbook\nname: x\nsteps: [{name: a, notify: {message: x}}]\n", []string{`rb.yaml:5: name: runbook "x" is already defined on line 1`}},
		{"several problems", head + "params: [{name: 1x}]\nsteps:\n  - {name: a, logs: {query: '', limit: -1}}\n", []string{
			`rb.yaml:3:17: params[0].name: invalid param name "1x"`,
			"rb.yaml:5:29: steps[0].logs.query: missing",
			"rb.yaml:5:40: steps[0].logs.limit: must be between 1 and 10000",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("rb.yaml", []byte(tc.data))
			if err == nil {
				t.Fatalf("Parse succeeded, want errors %q", tc.want)
			}
			var es config.Errors
			if !errors.As(err, &es) {
				t.Fatalf("error %T is not config.Errors: %v", err, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\ndoes not contain\n%s", err, w)
				}
			}
		})
	}
}

func TestTemplateReferences(t *testing.T) {
	earlier := map[string][]string{"q": {"value", "series"}}
	params := map[string]bool{"svc": true}
	ok := []string{
		"plain text",
		"{{ .params.svc }}",
		"{{ .steps.q.value }}",
		"{{ .steps.q }}",
		"{{ .alert.labels.service }} {{ .alert.annotations.summary }}",
		"{{ .run.id }} {{ .run.who }} {{ .run.dry_run }}",
		`{{ with index .steps.q "value" }}{{ printf "%.2f" . }}{{ end }}`,
		"{{ range .steps.q.value }}{{ .whatever }}{{ end }}",
		"{{ if and (gt .steps.q.series 0) (lt .steps.q.value 0.5) }}x{{ end }}",
	}
	for _, s := range ok {
		if err := checkTemplate(s, params, earlier); err != nil {
			t.Errorf("checkTemplate(%q) = %v, want nil", s, err)
		}
	}
	bad := map[string]string{
		"{{ .params.other }}":             "not declared",
		"{{ .steps.x.value }}":            "not a step before this one",
		"{{ .steps.q.lines }}":            `no output "lines"`,
		"{{ .foo }}":                      "the data is .params",
		"{{ if .steps.nope }}x{{ end }}":  "not a step before",
		"{{ range 100000000 }}x{{ end }}": "ranges over a number",
		"{{ nofunc 1 }}":                  `function "nofunc" not defined`,
	}
	for s, want := range bad {
		err := checkTemplate(s, params, earlier)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("checkTemplate(%q) = %v, want an error containing %q", s, err, want)
		}
	}
}

func TestCompareFuncs(t *testing.T) {
	tests := []struct {
		tmpl string
		data map[string]any
		want string
	}{
		{"{{ gt .v 0 }}", map[string]any{"v": 0.5}, "true"},
		{"{{ lt .v 1 }}", map[string]any{"v": 0.5}, "true"},
		{"{{ ge .v 2 }}", map[string]any{"v": int64(2)}, "true"},
		{"{{ le .v 0.01 }}", map[string]any{"v": 3}, "false"},
		{`{{ lt .v "b" }}`, map[string]any{"v": "a"}, "true"},
		{"{{ eq .v 2 }}", map[string]any{"v": 2}, "true"},
	}
	for _, tc := range tests {
		tpl, err := newTemplate(tc.tmpl)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		if err := tpl.Execute(&b, tc.data); err != nil {
			t.Fatalf("%s: %v", tc.tmpl, err)
		}
		if b.String() != tc.want {
			t.Errorf("%s with %v = %s, want %s", tc.tmpl, tc.data, b.String(), tc.want)
		}
	}
	tpl, _ := newTemplate(`{{ gt .v "x" }}`)
	if err := tpl.Execute(new(strings.Builder), map[string]any{"v": 1.0}); err == nil || !strings.Contains(err.Error(), "cannot compare") {
		t.Errorf("comparing a number with a string: err = %v", err)
	}
}

func TestExampleBillingErrors(t *testing.T) {
	rbs, err := Parse("examples/runbooks/billing-errors.yaml", examples.BillingErrors)
	if err != nil {
		t.Fatalf("the example does not parse:\n%v", err)
	}
	if len(rbs) != 1 {
		t.Fatalf("got %d runbooks", len(rbs))
	}
	rb := rbs[0]
	if rb.Name != "billing-errors" || !rb.Trigger.Auto || len(rb.Trigger.Alerts) != 1 {
		t.Errorf("trigger: %+v", rb.Trigger)
	}
	var actions []string
	for _, s := range rb.Steps {
		actions = append(actions, s.Action())
	}
	if got, want := strings.Join(actions, ","), "query,query,scale,wait_until,notify"; got != want {
		t.Errorf("actions = %s, want %s", got, want)
	}
	sc := rb.Steps[2].Scale
	if sc.Service != "billing" || sc.Multiply == nil || sc.Multiply.Text != "2" || sc.Max == nil || sc.Max.Text != "40" {
		t.Errorf("scale step: %+v", sc)
	}
}

// TestScaleCountsFromTemplates: a scale step's numbers may come from a
// param (a chat command's k=v) or an earlier step; literals keep their
// JSON number form in the store, templates their text.
func TestScaleCountsFromTemplates(t *testing.T) {
	rb := mustParse(t, `
kind: Runbook
name: scale-to
trigger: {command: scale-to}
params:
  - {name: service, type: service, required: true}
  - {name: replicas, type: int, required: true}
  - {name: cap, type: int, default: "40"}
steps:
  - name: scale
    scale: {service: '{{ .params.service }}', replicas: '{{ .params.replicas }}', max: '{{ .params.cap }}'}
  - name: more
    scale: {service: '{{ .params.service }}', add: 2, max: 50}
`)
	sc := rb.Steps[0].Scale
	if sc.Replicas == nil || sc.Replicas.Text != "{{ .params.replicas }}" || !sc.Replicas.IsTemplate() || sc.Max.Text != "{{ .params.cap }}" {
		t.Fatalf("templated scale step: %+v", sc)
	}
	data, err := json.Marshal(rb.Steps)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"replicas":"{{ .params.replicas }}"`, `"add":2`, `"max":50`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("stored JSON %s lacks %s", data, want)
		}
	}
	var back []Step
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if back[1].Scale.Add.Text != "2" || back[0].Scale.Replicas.Text != "{{ .params.replicas }}" {
		t.Errorf("JSON round trip: %+v %+v", back[0].Scale, back[1].Scale)
	}
	// A runbook stored before templates were allowed has numbers.
	var old ScaleAction
	if err := json.Unmarshal([]byte(`{"service":"billing","multiply":1.5,"max":40}`), &old); err != nil || old.Multiply.Text != "1.5" || old.Max.Text != "40" {
		t.Errorf("old stored scale step: %+v, %v", old, err)
	}
}

func TestParamConversion(t *testing.T) {
	rb := Runbook{Name: "p", Params: []Param{
		{Name: "n", Type: ParamInt, Default: "2"},
		{Name: "f", Type: ParamFloat},
		{Name: "d", Type: ParamDuration, Default: "1m"},
		{Name: "b", Type: ParamBool},
		{Name: "svc", Type: ParamService, Required: true, Description: "the service"},
	}, Steps: []Step{{Name: "a", Notify: &NotifyAction{Message: "x"}}}}
	if _, err := typedParams(rb, nil); err == nil || !strings.Contains(err.Error(), "param svc is required; give it as svc=VALUE (the service)") {
		t.Errorf("missing required: %v", err)
	}
	if _, err := typedParams(rb, map[string]string{"svc": "billing", "x": "1"}); err == nil || !strings.Contains(err.Error(), `unknown param "x"; this runbook takes: n, f, d, b, svc`) {
		t.Errorf("unknown param: %v", err)
	}
	if _, err := typedParams(rb, map[string]string{"svc": "bad name"}); err == nil || !strings.Contains(err.Error(), "not a service name") {
		t.Errorf("bad service: %v", err)
	}
	got, err := typedParams(rb, map[string]string{"svc": "billing", "f": "0.5", "b": "true"})
	if err != nil {
		t.Fatal(err)
	}
	if got["n"] != int64(2) || got["f"] != 0.5 || got["d"].(interface{ Minutes() float64 }).Minutes() != 1 || got["b"] != true || got["svc"] != "billing" {
		t.Errorf("params = %v", got)
	}
}

func TestTriggerMatches(t *testing.T) {
	tr := Trigger{Alerts: []string{`alertname="BillingErrorRatioHigh"`, `alertname=~"Billing.*", severity="critical"`}}
	tests := []struct {
		labels map[string]string
		want   bool
	}{
		{map[string]string{"alertname": "BillingErrorRatioHigh", "service": "billing"}, true},
		{map[string]string{"alertname": "BillingAnomaly", "severity": "critical"}, true},
		{map[string]string{"alertname": "BillingAnomaly", "severity": "warning"}, false},
		{map[string]string{"alertname": "Other"}, false},
		{nil, false},
	}
	for _, tc := range tests {
		if got := tr.Matches(tc.labels); got != tc.want {
			t.Errorf("Matches(%v) = %v, want %v", tc.labels, got, tc.want)
		}
	}
	if (Trigger{}).Matches(map[string]string{"alertname": "X"}) {
		t.Error("a trigger without alerts matched")
	}
	if (Trigger{Alerts: []string{`a=~"("`}}).Matches(map[string]string{"a": "("}) {
		t.Error("an invalid matcher matched")
	}
}
