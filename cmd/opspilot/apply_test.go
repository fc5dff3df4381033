package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"opspilot/autoscaler"
	"opspilot/examples/autoscaling"
	"opspilot/orchestrator/model"
)

func TestParseSpecs(t *testing.T) {
	src := `kind: Config
name: billing-conf
files: {app.toml: "x = 1"}
---
kind: Tenant
name: shop
quota: {cpu: 8, memory: 16Gi}
weight: 2
---
kind: Service
name: billing
tenant: shop
runtime: process
command: [/usr/bin/billing]
replicas: 3
requests: {cpu: 250m, memory: 128Mi}
configs: [{name: billing-conf}]
placement: {datacenters: {A: 6, B: 4}, strategy: spread}
rollout: {max_surge: 2, progress_deadline: 30s}
`
	objs, err := parseSpecs("specs.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 3 || objs[0].kind != "config" || objs[1].kind != "tenant" || objs[2].kind != "service" {
		t.Fatalf("objects: %+v", objs)
	}
	svc := objs[2].value.(model.Service)
	if svc.Requests.MilliCPU != 250 || svc.Placement.Datacenters["A"] != 6 || svc.Rollout.MaxSurge != 2 || objs[2].source != "specs.yaml:10" {
		t.Errorf("service: %+v from %s", svc, objs[2].source)
	}
	// The diff form shows quantities as people write them.
	if y := toYAML(svc); !strings.Contains(y, "memory: 128Mi") || !strings.Contains(y, "progress_deadline: 30s") {
		t.Errorf("toYAML:\n%s", y)
	}

	bad := strings.Replace(src, "replicas: 3", "replicas: -3", 1)
	bad = strings.Replace(bad, "kind: Tenant", "kind: Tenent", 1)
	_, err = parseSpecs("specs.yaml", []byte(bad))
	for _, want := range []string{`specs.yaml:5:7: kind: unknown kind "Tenent"`, "specs.yaml:15:11: replicas: must not be negative"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// TestExampleSpecs: the shipped example parses and says what it means.
func TestExampleSpecs(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "examples", "services", "billing.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := parseSpecs("billing.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 3 {
		t.Fatalf("%d objects", len(objs))
	}
	svc := objs[2].value.(model.Service)
	if svc.Placement.Datacenters["A"] != 6 || svc.Limits.MemoryBytes != 256<<20 || svc.DrainDelay != time.Second || svc.Configs[0].Name != "billing-conf" {
		t.Errorf("example service: %+v", svc)
	}
}

func FuzzParseSpecs(f *testing.F) {
	f.Add("kind: Service\nname: a\nruntime: process\ncommand: [x]\nreplicas: 1\n")
	f.Add("kind: Tenant\nname: t\nquota: {cpu: 1}\n---\nkind: Config\nname: c\nfiles: {a: b}\n")
	f.Add("kind: Service\nname: a\nruntime: docker\nimage: x\nports: [{port: 99999}]\n")
	f.Add(string(autoscaling.Billing))
	f.Add("kind: AutoscalingPolicy\nservice: a\nmax_replicas: 2\nmetrics: [{threshold: {when: 'x > 1', set: 2}}]\n")
	f.Fuzz(func(t *testing.T, s string) {
		objs, err := parseSpecs("f.yaml", []byte(s))
		if err != nil {
			if strings.TrimSpace(err.Error()) == "" {
				t.Fatal("empty error")
			}
			return
		}
		for _, o := range objs {
			if o.name == "" || o.path == "" {
				t.Fatalf("accepted an object without a name: %+v", o)
			}
		}
	})
}

// TestParseAutoscalingPolicy: the demo's policy file parses with
// Kubernetes' defaults for what it leaves out, and a wrong policy names
// the file, line and field.
func TestParseAutoscalingPolicy(t *testing.T) {
	objs, err := parseSpecs("billing.yaml", autoscaling.Billing)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 || objs[0].kind != "autoscalingpolicy" || objs[0].name != "billing" || objs[0].path != "autoscalingpolicies" {
		t.Fatalf("objects %+v", objs)
	}
	p := objs[0].value.(autoscaler.Policy)
	if p.MinReplicas != 3 || p.MaxReplicas != 40 || p.MaxDataAge != 5*time.Second || p.Metrics[0].PerInstance.AverageValue != 50 ||
		p.Metrics[1].Threshold.Add != 10 || p.Behavior.ScaleDown.StabilizationWindow != 30*time.Second ||
		p.Predictive == nil || p.Predictive.Lead != 30*time.Second {
		t.Errorf("policy %+v", p)
	}
	// Left out: the tolerance and the scale-up window keep their defaults.
	if p.Behavior.ScaleUp.Tolerance != 0.1 || p.Behavior.ScaleDown.Tolerance != 0.1 || p.Behavior.ScaleUp.StabilizationWindow != 0 {
		t.Errorf("defaults lost: %+v", p.Behavior)
	}

	bad := strings.Replace(string(autoscaling.Billing), "average_value: 50", "average_value: -50", 1)
	bad = strings.Replace(bad, "add: 10", "add: 10\n      set: 4", 1)
	bad = strings.Replace(bad, "period: 15s}]\n  scale_down", "period: 15s}]\n    select_policy: Most\n  scale_down", 1)
	_, err = parseSpecs("billing.yaml", []byte(bad))
	for _, want := range []string{
		"billing.yaml:18:22: metrics[0].per_instance.average_value:",
		"billing.yaml:21:5: metrics[1].threshold: set only one of add and set",
		"billing.yaml:36:20: behavior.scale_up.select_policy: unknown \"Most\"",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
