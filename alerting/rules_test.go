package alerting

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"

	examples "opspilot/examples/alerting"
)

func TestParseRuleFileErrors(t *testing.T) {
	t.Parallel()
	const head = "groups:\n  - name: g\n    rules:\n" // rules start on line 4, column 7
	tests := []struct {
		name, file string
		// want is the start of the first error: file:line:col: … field:
		want string
		// hint is a part of the message that says how to fix it.
		hint string
	}{
		{"negative for", head + "      - alert: A\n        expr: up == 0\n        for: -5s\n",
			`x.yaml:6:14: group "g", rule 1 (alert A): for: "-5s" is negative`, "0s or more"},
		{"negative keep_firing_for", head + "      - alert: A\n        expr: up == 0\n        keep_firing_for: -1m\n",
			`x.yaml:6:26: group "g", rule 1 (alert A): keep_firing_for: "-1m" is negative`, "0s or more"},
		{"duration without unit", head + "      - alert: A\n        expr: up == 0\n        for: 5\n",
			`x.yaml:6:14: group "g", rule 1 (alert A): for: "5" is not a duration`, "with a unit"},
		{"bad expression", head + "      - alert: A\n        expr: sum(rate(x[5m]) >\n",
			`x.yaml:5:15: group "g", rule 1 (alert A): expr: MetricsQL:`, "fix the expression"},
		{"missing expr", head + "      - alert: A\n        for: 1m\n",
			`x.yaml:4:9: group "g", rule 1 (alert A): expr: every rule needs an expression`, "expr: sum("},
		{"alert and record", head + "      - alert: A\n        record: a:b\n        expr: up\n",
			`x.yaml:5:9: group "g", rule 1 (alert A): record: a rule is either an alert or a recording rule`, "split it"},
		{"neither alert nor record", head + "      - expr: up\n",
			`x.yaml:4:9: group "g", rule 1: alert: the rule has neither alert nor record`, "record: metric:name"},
		{"invalid alert name", head + "      - alert: Billing errors\n        expr: up\n",
			`x.yaml:4:16: group "g", rule 1 (alert Billing errors): alert: "Billing errors" is not a valid alert name`, "BillingErrorRatioHigh"},
		{"invalid record name", head + "      - record: 'rate{x}'\n        expr: up\n",
			`x.yaml:4:17: group "g", rule 1 (record rate{x}): record: "rate{x}" is not a valid metric name`, "put selectors in expr"},
		{"for on a recording rule", head + "      - record: a:b\n        expr: up\n        for: 1m\n",
			`x.yaml:6:9: group "g", rule 1 (record a:b): for: only alerting rules`, "remove it"},
		{"annotations on a recording rule", head + "      - record: a:b\n        expr: up\n        annotations:\n          summary: x\n",
			`x.yaml:6:9: group "g", rule 1 (record a:b): annotations: recording rules have no annotations`, "remove them"},
		{"bad label template", head + "      - alert: A\n        expr: up\n        labels:\n          severity: '{{ $value | nosuchfunc }}'\n",
			`x.yaml:7:21: group "g", rule 1 (alert A): labels.severity: template: function "nosuchfunc" not defined`, "template_reference"},
		{"bad annotation template", head + "      - alert: A\n        expr: up\n        annotations:\n          summary: '{{ .Labels.x'\n",
			`x.yaml:7:20: group "g", rule 1 (alert A): annotations.summary: template:`, "template_reference"},
		{"bad label name", head + "      - alert: A\n        expr: up\n        labels:\n          __name__: x\n",
			`x.yaml:7:11: group "g", rule 1 (alert A): labels.__name__: not a valid name`, "letters"},
		{"unknown rule field", head + "      - alert: A\n        expr: up\n        severity: page\n",
			`x.yaml:6:9: group "g", rule 1 (alert A): severity: unknown field in a rule`, "the fields are alert, record"},
		{"unknown group field", "groups:\n  - name: g\n    evaluation_interval: 1s\n    rules: []\n",
			`x.yaml:3:5: group "g": evaluation_interval: unknown field in a group`, "interval"},
		{"negative interval", "groups:\n  - name: g\n    interval: -1s\n",
			`x.yaml:3:15: group "g": interval: "-1s" is negative`, "0s or more"},
		{"zero interval", "groups:\n  - name: g\n    interval: 0s\n",
			`x.yaml:3:15: group "g": interval: must be more than 0`, "leave it out"},
		{"empty group name", "groups:\n  - name: ''\n    rules: []\n",
			`x.yaml:2:11: name: every group needs a non-empty name`, "name: billing"},
		{"duplicate group", "groups:\n  - name: g\n  - name: g\n",
			`x.yaml:3:11: group "g": name: a group with this name is already defined at line 2`, "rename one"},
		{"field set twice", head + "      - alert: A\n        expr: up\n        expr: down\n",
			`x.yaml:6:9: group "g", rule 1 (alert A): expr: set twice (first at line 5)`, "keep one"},
		{"second rule", head + "      - alert: A\n        expr: up\n      - alert: B\n        expr: rate(x[5m]\n",
			`x.yaml:7:15: group "g", rule 2 (alert B): expr:`, "MetricsQL"},
		{"groups not a list", "groups:\n  name: g\n",
			`x.yaml:2:3: groups: is a mapping`, "- name:"},
		{"not a mapping", "- name: g\n",
			`x.yaml:1:1: a rule file is a mapping with the key groups`, "start the file with 'groups:'"},
		{"invalid YAML", "groups:\n  - name: g\n    rules: [\n",
			`x.yaml:3: did not find expected node content`, "not valid YAML"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRuleFile("x.yaml", []byte(tc.file))
			if err == nil {
				t.Fatalf("no error for\n%s", tc.file)
			}
			var re RuleErrors
			if !errors.As(err, &re) || len(re) == 0 {
				t.Fatalf("error %T %v is not a RuleErrors", err, err)
			}
			first := re[0].Error()
			if !strings.HasPrefix(first, tc.want) {
				t.Errorf("error\n  %s\nwant prefix\n  %s", first, tc.want)
			}
			if !strings.Contains(first, tc.hint) {
				t.Errorf("error %q does not say how to fix it (%q)", first, tc.hint)
			}
			if !strings.Contains(first, " — ") {
				t.Errorf("error %q has no fix after ' — '", first)
			}
		})
	}
}

func TestParseRuleFileAcceptsMetricsQL(t *testing.T) {
	t.Parallel()
	for _, expr := range []string{
		`rate(billing_transactions_total)`,                        // no window: VictoriaMetrics picks the step
		`WITH (errs = rate(x{result="error"}[5s])) sum(errs) > 1`, // WITH templates
		`median_over_time(latency_seconds[1m]) > 0.5`,
		`range_median(up) < 1`,
		`rate(x[5s]) keep_metric_names > 1`,
		`up == 0 or absent(up)`, // plain PromQL still works
	} {
		file := "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: '" + strings.ReplaceAll(expr, "'", "''") + "'\n"
		f, err := ParseRuleFile("m.yaml", []byte(file))
		if err != nil {
			t.Errorf("%s: %v", expr, err)
			continue
		}
		if got := f.Groups[0].Rules[0].Expr; got != expr {
			t.Errorf("expr %q came back as %q", expr, got)
		}
	}
	// Prometheus' own loader accepts it with the MetricsQL parser, and its
	// parser would not.
	content := []byte("groups:\n  - name: g\n    rules:\n      - record: a:b\n        expr: rate(x)\n")
	if _, errs := rulefmt.Parse(content, false, model.UTF8Validation, NewMetricsQLParser(), slog.New(slog.DiscardHandler)); len(errs) > 0 {
		t.Errorf("rulefmt with the MetricsQL parser: %v", errs)
	}
	if _, errs := rulefmt.Parse(content, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler)); len(errs) == 0 {
		t.Error("Prometheus' parser accepts rate(x) without a window; the MetricsQL parser is not needed?")
	}
}

func TestMetricsQLExprIsALeafForPrometheus(t *testing.T) {
	t.Parallel()
	expr, err := NewMetricsQLParser().ParseExpr(`WITH (x = up) x`)
	if err != nil {
		t.Fatal(err)
	}
	if expr.String() != `WITH (x = up) x` {
		t.Errorf("String %q", expr.String())
	}
	// Prometheus' walker does not know the node: this is why the evaluator
	// passes noRuleDependencies. If this stops panicking, the dependency
	// analysis could be switched back on.
	func() {
		defer func() {
			if recover() == nil {
				t.Error("parser.Inspect accepted a MetricsQLExpr; revisit noRuleDependencies")
			}
		}()
		parser.Inspect(expr, func(parser.Node, []parser.Node) error { return nil })
	}()
	// With noRuleDependencies, the manager loads a group of several rules
	// (the case in which Prometheus would analyse dependencies) without
	// walking the expressions.
	set, err := LoadRuleFiles([]string{"../examples/alerting/billing.rules.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	m := rules.NewManager(&rules.ManagerOptions{
		GroupLoader: setLoader{set: set, parser: NewMetricsQLParser()}, RuleDependencyController: noRuleDependencies{},
		Parser: NewMetricsQLParser(),
	})
	if err := m.Update(DefaultRuleInterval, set.Paths(), labels.EmptyLabels(), "", nil); err != nil {
		t.Fatal(err)
	}
	if n := len(m.Rules()); n != 3 {
		t.Errorf("%d rules loaded, want 3", n)
	}
	// Not stopped: Stop waits for groups that only start with Run.
}

func TestLoadExampleRules(t *testing.T) {
	t.Parallel()
	f, err := ParseRuleFile("billing.rules.yaml", examples.BillingRules)
	if err != nil {
		t.Fatal(err)
	}
	if g, r := f.Count(); g != 1 || r != 3 {
		t.Errorf("%d groups, %d rules; want 1, 3", g, r)
	}
	byName := map[string]rulefmt.Rule{}
	for _, r := range f.Groups[0].Rules {
		byName[r.Alert+r.Record] = r
	}
	ratio := byName["BillingErrorRatioHigh"]
	if ratio.Labels["severity"] != "critical" || ratio.Annotations["runbook"] != "billing-errors" ||
		!strings.Contains(ratio.Annotations["summary"], "humanizePercentage") || ratio.KeepFiringFor != model.Duration(5e9) {
		t.Errorf("BillingErrorRatioHigh: %+v", ratio)
	}
	if a := byName["BillingAnomaly"]; a.For != model.Duration(30e9) || a.Labels["severity"] != "warning" {
		t.Errorf("BillingAnomaly: %+v", a)
	}
	if _, ok := byName["service:billing_transactions:rate5s"]; !ok {
		t.Error("no recording rule service:billing_transactions:rate5s")
	}
	if f.Groups[0].Name != "billing" || f.Groups[0].Interval != model.Duration(1e9) {
		t.Errorf("group %q interval %s", f.Groups[0].Name, f.Groups[0].Interval)
	}
}

func TestLoadRuleFilesAcrossFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("a.rules.yaml", "groups:\n  - name: shared\n    rules:\n      - record: a:b\n        expr: up\n")
	b := write("b.rules.yaml", "# b\ngroups:\n  - name: other\n  - name: shared\n")

	_, err := LoadRuleFiles([]string{filepath.Join(dir, "*.rules.yaml")})
	var re RuleErrors
	if !errors.As(err, &re) || len(re) != 1 {
		t.Fatalf("want one error, got %v", err)
	}
	want := b + `:4:11: group "shared": name: a group with this name is already defined at ` + filepath.Join(dir, "a.rules.yaml") + ":2"
	if !strings.HasPrefix(re[0].Error(), want) {
		t.Errorf("error\n  %s\nwant prefix\n  %s", re[0], want)
	}

	set, err := LoadRuleFiles([]string{filepath.Join(dir, "a.rules.yaml"), filepath.Join(dir, "a*.yaml")})
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Files) != 1 {
		t.Errorf("a file named twice is loaded %d times", len(set.Files))
	}
	for _, pat := range []string{filepath.Join(dir, "none*.yaml"), filepath.Join(dir, "missing.yaml"), "[.yaml"} {
		_, err := LoadRuleFiles([]string{pat})
		if err == nil || !strings.HasPrefix(err.Error(), pat+": ") || !strings.Contains(err.Error(), " — ") {
			t.Errorf("%s: error %v", pat, err)
		}
	}
}

func TestEvaluatorConfigValidate(t *testing.T) {
	t.Parallel()
	if ps := DefaultEvaluatorConfig().Validate(); len(ps) != 0 {
		t.Errorf("defaults: %v", ps)
	}
	c := DefaultEvaluatorConfig()
	c.Interval = 0
	c.ResendDelay = -1
	c.OutageTolerance = -1
	c.ForGracePeriod = -1
	c.Files = []string{"rules/[.yaml"}
	got := map[string]bool{}
	for _, p := range c.Validate() {
		got[p.Field] = true
	}
	for _, f := range []string{"interval", "resend_delay", "outage_tolerance", "for_grace_period", "files[0]"} {
		if !got[f] {
			t.Errorf("no problem reported for %s (got %v)", f, got)
		}
	}
}
