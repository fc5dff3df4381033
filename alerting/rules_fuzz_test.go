package alerting

import (
	"errors"
	"strings"
	"testing"
	"time"

	examples "opspilot/examples/alerting"
)

// FuzzParseRuleFile: no rule file makes the checker panic, and every
// problem it reports names the file (and is a RuleError).
//
//	go test -run=^$ -fuzz=FuzzParseRuleFile -fuzztime=60s ./alerting/
func FuzzParseRuleFile(f *testing.F) {
	f.Add(examples.BillingRules)
	for _, seed := range []string{
		"",
		"groups:\n",
		"groups: []\n",
		"groups:\n  - name: g\n    interval: 1s\n    rules:\n      - record: a:b\n        expr: rate(x)\n",
		"groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: WITH (x = up) x == 0\n        for: -5s\n        keep_firing_for: 1m\n",
		"groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        labels: {s: '{{ $value | humanize }}'}\n        annotations: {summary: '{{ .Labels.x'}\n",
		"groups:\n  - name: g\n  - name: g\n    limit: -1\n    query_offset: 1m\n    labels: {a: b}\n",
		"groups:\n  - &a {name: g, rules: [{alert: A, expr: up}]}\n  - *a\n",
		"groups:\n  - name: g\n    rules:\n      - alert: A\n        record: b\n\texpr: x\n",
		"- 1\n- [2]\n",
		"groups:\n  - name: [x]\n    rules: {a: b}\n",
		"groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        expr: up\n        labels:\n          __name__: x\n          ok: [1]\n",
	} {
		f.Add([]byte(seed))
	}
	const name = "fuzz.rules.yaml"
	f.Fuzz(func(t *testing.T, content []byte) {
		// A pathological input (an alias bomb) must not stall the fuzzer.
		var rf *RuleFile
		var err error
		done := make(chan struct{})
		go func() { rf, err = ParseRuleFile(name, content); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("ParseRuleFile took more than 5s on %q", content)
		}
		if err == nil {
			if rf == nil || rf.Path != name {
				t.Fatalf("no error and no file: %+v", rf)
			}
			for _, g := range rf.Groups {
				if g.Name == "" {
					t.Fatal("a group without a name passed the check")
				}
				for _, r := range g.Rules {
					if (r.Alert == "") == (r.Record == "") || r.Expr == "" || r.For < 0 || r.KeepFiringFor < 0 {
						t.Fatalf("an invalid rule passed the check: %+v", r)
					}
				}
			}
			return
		}
		var re RuleErrors
		if !errors.As(err, &re) || len(re) == 0 {
			t.Fatalf("error %T is not a RuleErrors: %v", err, err)
		}
		for _, e := range re {
			if e.File != name || !strings.HasPrefix(e.Error(), name+":") {
				t.Fatalf("error does not name the file: %q", e.Error())
			}
		}
	})
}
