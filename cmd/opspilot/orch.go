package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pmezard/go-difflib/difflib"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	yamlv3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/yaml"

	"opspilot/autoscaler"
	"opspilot/config"
	"opspilot/orchestrator/control"
	"opspilot/orchestrator/model"
	"opspilot/runbooks"
)

// kindInfo maps the names people type to REST paths.
type kindInfo struct {
	singular, path string
	aliases        []string
}

var kinds = []kindInfo{
	{"service", "services", []string{"services", "svc"}},
	{"instance", "instances", []string{"instances", "inst"}},
	{"node", "nodes", []string{"nodes", "no"}},
	{"datacenter", "datacenters", []string{"datacenters", "dc"}},
	{"tenant", "tenants", []string{"tenants"}},
	{"config", "configs", []string{"configs", "cfg"}},
	{"event", "events", []string{"events", "ev"}},
	{"gateway", "gateways", []string{"gateways", "gw"}},
	{"endpoints", "endpoints", []string{"endpoint", "ep"}},
	{"autoscalingpolicy", control.KindAutoscalingPolicy, []string{"autoscalingpolicies", "asp", "hpa"}},
	{"runbook", control.KindRunbook, []string{"runbooks", "rb"}},
}

func lookupKind(s string) (kindInfo, error) {
	s = strings.ToLower(s)
	var names []string
	for _, k := range kinds {
		if s == k.singular || slices.Contains(k.aliases, s) {
			return k, nil
		}
		names = append(names, k.path)
	}
	return kindInfo{}, fmt.Errorf("unknown kind %q; use one of %s", s, strings.Join(names, ", "))
}

func kindNames() []string {
	var out []string
	for _, k := range kinds {
		out = append(out, k.path)
	}
	return out
}

// Documents `opspilot apply -f` accepts.
type serviceDoc struct {
	Kind          string `yaml:"kind"`
	model.Service `yaml:",inline"`
}

func (d *serviceDoc) Validate() []config.Problem { return d.Service.Validate() }

type tenantDoc struct {
	Kind         string `yaml:"kind"`
	model.Tenant `yaml:",inline"`
}

func (d *tenantDoc) Validate() []config.Problem { return d.Tenant.Validate() }

type configDoc struct {
	Kind                string `yaml:"kind"`
	model.ConfigLibrary `yaml:",inline"`
}

func (d *configDoc) Validate() []config.Problem { return d.ConfigLibrary.Validate() }

type policyDoc struct {
	Kind              string `yaml:"kind"`
	autoscaler.Policy `yaml:",inline"`
}

func (d *policyDoc) Validate() []config.Problem { return d.Policy.Validate() }

// applyObject is one object to PUT.
type applyObject struct {
	kind, name, path, source string
	value                    any
}

// parseSpecs reads apply files: kinds Service, Tenant, Config and
// AutoscalingPolicy.
func parseSpecs(name string, data []byte) ([]applyObject, error) {
	docs, err := config.ParseDocuments(name, data, func(kind string) (any, error) {
		switch strings.ToLower(kind) {
		case "service":
			return &serviceDoc{}, nil
		case "tenant":
			return &tenantDoc{}, nil
		case "config":
			return &configDoc{}, nil
		case strings.ToLower(autoscaler.Kind):
			// Keys the file leaves out keep the defaults (Kubernetes'
			// behaviour).
			return &policyDoc{Policy: autoscaler.DefaultPolicy()}, nil
		case strings.ToLower(runbooks.Kind):
			return &runbooks.Document{Runbook: runbooks.DefaultRunbook()}, nil
		}
		return nil, fmt.Errorf("unknown kind %q; opspilot apply takes Service, Tenant, Config, AutoscalingPolicy and Runbook", kind)
	})
	if err != nil {
		return nil, err
	}
	var out []applyObject
	for _, d := range docs {
		src := fmt.Sprintf("%s:%d", name, d.Line)
		switch v := d.Value.(type) {
		case *serviceDoc:
			out = append(out, applyObject{"service", v.Name, "services", src, v.Service})
		case *tenantDoc:
			out = append(out, applyObject{"tenant", v.Name, "tenants", src, v.Tenant})
		case *configDoc:
			out = append(out, applyObject{"config", v.Name, "configs", src, v.ConfigLibrary})
		case *policyDoc:
			out = append(out, applyObject{"autoscalingpolicy", v.Service, control.KindAutoscalingPolicy, src, v.Policy})
		case *runbooks.Document:
			out = append(out, applyObject{"runbook", v.Name, control.KindRunbook, src, v.Runbook})
		}
	}
	return out, nil
}

// toYAML renders v as apply files write it (quantities as "500m" and
// "256Mi", durations as "2s"): the form diffs are shown in.
func toYAML(v any) string {
	y, err := yamlv3.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(y)
}

func newApplyCmd() *cobra.Command {
	var (
		f      clientFlags
		files  []string
		dryRun bool
	)
	cmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Create or update services, tenants and configs from YAML files",
		Long: `apply reads YAML documents (separated by ---), each with a kind (Service,
Tenant or Config), checks them, shows what changes against the server, and
stores them. Applying the same file twice changes nothing. A change to what a
service runs (command, image, env, resources, probes, configs) rolls it out;
follow with ` + "`opspilot rollout status SERVICE`" + `.`,
		Example: `  opspilot apply -f examples/services/billing.yaml
  opspilot apply -f billing.yaml --dry-run
  opspilot apply -f billing.yaml --reason "release 1.4"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return errors.New("no file: pass -f FILE (or -f - for standard input)")
			}
			var objs []applyObject
			for _, name := range files {
				var data []byte
				var err error
				if name == "-" {
					data, err = io.ReadAll(cmd.InOrStdin())
				} else {
					data, err = os.ReadFile(name)
				}
				if err != nil {
					return err
				}
				o, err := parseSpecs(name, data)
				if err != nil {
					return err
				}
				objs = append(objs, o...)
			}
			// Configs and tenants first: services refer to them.
			slices.SortStableFunc(objs, func(a, b applyObject) int { return boolRank(a.kind == "service") - boolRank(b.kind == "service") })
			c, err := f.client()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, o := range objs {
				if err := applyOne(cmd.Context(), c, o, dryRun, out); err != nil {
					return fmt.Errorf("%s/%s (%s): %w", o.kind, o.name, o.source, err)
				}
			}
			return nil
		},
	}
	f.register(cmd)
	f.registerReason(cmd)
	cmd.Flags().StringArrayVarP(&files, "filename", "f", nil, "YAML file to apply (repeatable; - reads standard input)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "show what would change, change nothing")
	return cmd
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

func applyOne(ctx context.Context, c *apiClient, o applyObject, dryRun bool, out io.Writer) error {
	var current json.RawMessage
	err := c.do(ctx, "GET", "/api/v1/"+o.path+"/"+url.PathEscape(o.name), nil, &current)
	var ae *apiError
	exists := err == nil
	if err != nil && !(errors.As(err, &ae) && ae.Code == 404) {
		return err
	}
	before := ""
	if exists {
		// Decode into the model type, so status fields do not show.
		cur := reflectNew(o.value)
		if err := json.Unmarshal(current, cur); err != nil {
			return err
		}
		before = toYAML(cur)
	}
	after := toYAML(o.value)
	ref := o.kind + "/" + o.name
	if before == after {
		fmt.Fprintf(out, "%s unchanged\n", ref)
		return nil
	}
	diff, _ := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(before), B: difflib.SplitLines(after),
		FromFile: ref + " (server)", ToFile: ref + " (" + o.source + ")", Context: 2,
	})
	verb := "configured"
	if !exists {
		verb = "created"
	}
	if dryRun {
		fmt.Fprintf(out, "%s would be %s (dry run)\n%s", ref, verb, diff)
		return nil
	}
	var res control.ApplyResult
	if err := c.do(ctx, "PUT", "/api/v1/"+o.path+"/"+url.PathEscape(o.name), o.value, &res); err != nil {
		return err
	}
	if res.Result == "unchanged" {
		fmt.Fprintf(out, "%s unchanged\n", ref)
		return nil
	}
	fmt.Fprintf(out, "%s %s\n%s", ref, verb, diff)
	return nil
}

// reflectNew returns a pointer to a new zero value of v's type (any kind
// apply takes).
func reflectNew(v any) any { return reflect.New(reflect.TypeOf(v)).Interface() }

func newGetCmd() *cobra.Command {
	var (
		f      clientFlags
		output string
		sel    string
	)
	cmd := &cobra.Command{
		Use:   "get KIND [NAME]",
		Short: "List services, instances, nodes, datacenters, tenants, configs, events, gateways or endpoints",
		Example: `  opspilot get services
  opspilot get instances -o wide
  opspilot get instances --service billing
  opspilot get service billing -o yaml
  opspilot get events`,
		Args:      cobra.RangeArgs(1, 2),
		ValidArgs: kindNames(),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := lookupKind(args[0])
			if err != nil {
				return err
			}
			if !slices.Contains([]string{"table", "wide", "json", "yaml"}, output) {
				return fmt.Errorf("--output %q: use table, wide, json or yaml", output)
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			path := "/api/v1/" + k.path
			if len(args) == 2 {
				if k.path == "events" || k.path == "datacenters" || k.path == "gateways" || k.path == "endpoints" {
					return fmt.Errorf("get %s takes no name", k.path)
				}
				path += "/" + url.PathEscape(args[1])
			} else if sel != "" {
				if k.path != "instances" {
					return errors.New("--service filters instances only")
				}
				path += "?service=" + url.QueryEscape(sel)
			}
			var raw json.RawMessage
			if err := c.do(cmd.Context(), "GET", path, nil, &raw); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch output {
			case "json":
				var v any
				_ = json.Unmarshal(raw, &v)
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(v)
			case "yaml":
				y, err := yaml.JSONToYAML(raw)
				if err != nil {
					return err
				}
				_, err = out.Write(y)
				return err
			}
			if len(args) == 2 {
				raw = append(append([]byte("["), raw...), ']')
			}
			return printTable(out, k.path, raw, output == "wide")
		},
	}
	f.register(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, wide, json or yaml")
	cmd.Flags().StringVar(&sel, "service", "", "only this service's instances")
	_ = cmd.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"table", "wide", "json", "yaml"}, cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

func age(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s"
	case d < time.Hour:
		return strconv.Itoa(int(d.Minutes())) + "m"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d.Hours())) + "h"
	}
	return strconv.Itoa(int(d.Hours()/24)) + "d"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// printTable prints a list answer as aligned columns.
func printTable(w io.Writer, kind string, raw []byte, wide bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	defer tw.Flush()
	row := func(cols ...string) { fmt.Fprintln(tw, strings.Join(cols, "\t")) }
	switch kind {
	case "services":
		var ss []control.ServiceView
		if err := json.Unmarshal(raw, &ss); err != nil {
			return err
		}
		h := []string{"NAME", "TENANT", "RUNTIME", "READY", "UP-TO-DATE", "VERSION", "REVISION", "ROLLOUT"}
		if wide {
			h = append(h, "DATACENTERS", "RUNS")
		}
		row(h...)
		for _, s := range ss {
			c := []string{s.Name, dash(s.Tenant), s.Runtime, fmt.Sprintf("%d/%d", s.Status.ReadyReplicas, s.Replicas),
				strconv.Itoa(s.Status.UpdatedReplicas), s.Status.Version, strconv.Itoa(s.Status.Revision), s.Status.Rollout}
			if wide {
				var dcs []string
				for _, dc := range sortedMapKeys(s.Status.Datacenters) {
					dcs = append(dcs, fmt.Sprintf("%s=%d", dc, s.Status.Datacenters[dc]))
				}
				runs := s.Image
				if runs == "" {
					runs = strings.Join(s.Command, " ")
				}
				c = append(c, dash(strings.Join(dcs, ",")), runs)
			}
			row(c...)
		}
	case "instances":
		var is []model.Instance
		if err := json.Unmarshal(raw, &is); err != nil {
			return err
		}
		h := []string{"ID", "SERVICE", "NODE", "DATACENTER", "STATE", "RESTARTS", "VERSION", "AGE"}
		if wide {
			h = append(h, "DESIRED", "ADDRESS", "LAST EXIT", "MESSAGE")
		}
		row(h...)
		for _, i := range is {
			c := []string{i.ID, i.Service, i.Node, i.Datacenter, i.State, strconv.Itoa(i.Restarts), i.Version, age(i.Created)}
			if wide {
				addr := "-"
				if i.Port > 0 {
					addr = fmt.Sprintf("%s:%d", i.Address, i.Port)
				}
				c = append(c, i.Desired, addr, dash(i.LastExit), dash(i.Message))
			}
			row(c...)
		}
	case "nodes":
		var ns []control.NodeView
		if err := json.Unmarshal(raw, &ns); err != nil {
			return err
		}
		h := []string{"NAME", "DATACENTER", "STATE", "INSTANCES", "CPU (REQ/CAP)", "MEMORY (REQ/CAP)"}
		if wide {
			h = append(h, "PARTITION", "ADDRESS", "SCHEDULABLE", "RUNTIMES", "AGENT")
		}
		row(h...)
		for _, n := range ns {
			c := []string{n.Name, n.Datacenter, dash(n.Status.State), strconv.Itoa(n.Instances),
				n.Allocated.MilliCPU.String() + "/" + n.Capacity.MilliCPU.String(), n.Allocated.MemoryBytes.String() + "/" + n.Capacity.MemoryBytes.String()}
			if wide {
				c = append(c, dash(n.Partition), dash(n.Address), strconv.FormatBool(!n.Unschedulable), dash(strings.Join(n.Status.Runtimes, ",")), dash(n.Status.AgentVersion))
			}
			row(c...)
		}
	case "datacenters":
		var ds []control.DatacenterView
		if err := json.Unmarshal(raw, &ds); err != nil {
			return err
		}
		row("NAME", "HEALTH", "SERVING", "NODES (READY/ALL)", "INSTANCES", "CPU (REQ/CAP)", "MEMORY (REQ/CAP)")
		for _, d := range ds {
			serving := "yes"
			switch {
			case d.Status.FailedOver && d.Status.Manual:
				serving = "no (failed over by " + dash(d.Status.FailoverBy) + ")"
			case d.Status.FailedOver:
				serving = "no (failed over)"
			}
			row(d.Name, dash(d.Status.Health), serving, fmt.Sprintf("%d/%d", d.ReadyNodes, d.Nodes), strconv.Itoa(d.Instances),
				d.Allocated.MilliCPU.String()+"/"+d.Capacity.MilliCPU.String(), d.Allocated.MemoryBytes.String()+"/"+d.Capacity.MemoryBytes.String())
		}
	case "tenants":
		var ts []model.Tenant
		if err := json.Unmarshal(raw, &ts); err != nil {
			return err
		}
		row("NAME", "QUOTA CPU", "QUOTA MEMORY", "WEIGHT")
		for _, t := range ts {
			row(t.Name, t.Quota.MilliCPU.String(), t.Quota.MemoryBytes.String(), strconv.FormatFloat(t.EffectiveWeight(), 'g', -1, 64))
		}
	case "configs":
		var ls []model.ConfigLibrary
		if err := json.Unmarshal(raw, &ls); err != nil {
			return err
		}
		row("NAME", "FILES")
		for _, l := range ls {
			row(l.Name, strings.Join(sortedMapKeys(l.Files), ","))
		}
	case "events":
		var es []control.Event
		if err := json.Unmarshal(raw, &es); err != nil {
			return err
		}
		row("AGE", "TYPE", "OBJECT", "REASON", "WHO", "MESSAGE")
		for _, e := range es {
			msg := e.Message
			if e.Why != "" {
				msg += " (why: " + e.Why + ")"
			}
			row(age(e.Time), e.Type, e.Kind+"/"+e.Object, e.Reason, e.Who, msg)
		}
	case control.KindAutoscalingPolicy:
		var ps []autoscaler.Policy
		if err := json.Unmarshal(raw, &ps); err != nil {
			return err
		}
		row("SERVICE", "MIN", "MAX", "METRICS", "SCALE-DOWN WINDOW", "PREDICTIVE", "DRY RUN")
		for _, p := range ps {
			var ms []string
			for _, m := range p.Metrics {
				ms = append(ms, metricSummary(m))
			}
			pred := "-"
			if p.Predictive != nil {
				pred = "lead " + p.Predictive.Lead.String()
			}
			row(p.Service, strconv.Itoa(p.MinReplicas), strconv.Itoa(p.MaxReplicas), strings.Join(ms, "; "),
				p.Behavior.ScaleDown.StabilizationWindow.String(), pred, strconv.FormatBool(p.DryRun))
		}
	case control.KindRunbook:
		var bs []runbooks.Runbook
		if err := json.Unmarshal(raw, &bs); err != nil {
			return err
		}
		row("NAME", "TRIGGER", "AUTO", "STEPS", "TIMEOUT", "DESCRIPTION")
		for _, b := range bs {
			trig := slices.Clone(b.Trigger.Alerts)
			if b.Trigger.Command != "" {
				trig = append(trig, "command "+b.Trigger.Command)
			}
			var steps []string
			for _, st := range b.Steps {
				steps = append(steps, st.Name+":"+st.Action())
			}
			row(b.Name, dash(strings.Join(trig, " ")), strconv.FormatBool(b.Trigger.Auto), strings.Join(steps, " "), b.Timeout.String(), dash(b.Description))
		}
	case "gateways":
		var gs []model.Gateway
		if err := json.Unmarshal(raw, &gs); err != nil {
			return err
		}
		row("NAME", "URL", "DATACENTER")
		for _, g := range gs {
			row(g.Name, g.URL, dash(g.Datacenter))
		}
	case "endpoints":
		var sets []model.EndpointSet
		if err := json.Unmarshal(raw, &sets); err != nil {
			var one model.EndpointSet
			if err := json.Unmarshal(raw, &one); err != nil {
				return err
			}
			sets = []model.EndpointSet{one}
		}
		row("SERVICE", "INSTANCE", "ADDRESS", "DATACENTER", "NODE", "VERSION")
		for _, set := range sets {
			for _, svc := range sortedMapKeys(set.Services) {
				for _, ep := range set.Services[svc] {
					row(svc, ep.Instance, ep.Address, ep.Datacenter, ep.Node, ep.Version)
				}
			}
		}
	}
	return nil
}

func sortedMapKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func newDescribeCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "describe KIND NAME",
		Short: "Show one service, instance or node in detail, with its recent events",
		Example: `  opspilot describe service billing
  opspilot describe node node-1`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := lookupKind(args[0])
			if err != nil {
				return err
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			ctx, out, name := cmd.Context(), cmd.OutOrStdout(), args[1]
			var raw json.RawMessage
			if err := c.do(ctx, "GET", "/api/v1/"+k.path+"/"+url.PathEscape(name), nil, &raw); err != nil {
				return err
			}
			y, _ := yaml.JSONToYAML(raw)
			fmt.Fprintf(out, "%s %s\n\n%s", k.singular, name, y)
			var related string
			switch k.path {
			case "services":
				related = "/api/v1/instances?service=" + url.QueryEscape(name)
			case "nodes":
				related = "/api/v1/instances?node=" + url.QueryEscape(name)
			}
			if related != "" {
				var is json.RawMessage
				if err := c.do(ctx, "GET", related, nil, &is); err == nil {
					fmt.Fprintln(out, "\nInstances:")
					_ = printTable(out, "instances", is, true)
				}
			}
			var evs json.RawMessage
			if err := c.do(ctx, "GET", "/api/v1/events?limit=20&object="+url.QueryEscape(name), nil, &evs); err == nil {
				fmt.Fprintln(out, "\nEvents:")
				_ = printTable(out, "events", evs, false)
			}
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

func newDeleteCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "delete KIND NAME",
		Short: "Delete a service, tenant, config, node or autoscaling policy, or stop one instance (it is replaced)",
		Example: `  opspilot delete service billing --reason "decommissioned"
  opspilot delete instance billing-x7k2p
  opspilot delete autoscalingpolicy billing --reason "scale by hand tonight"`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := lookupKind(args[0])
			if err != nil {
				return err
			}
			if !slices.Contains([]string{"services", "tenants", "configs", "nodes", "instances", control.KindAutoscalingPolicy, control.KindRunbook}, k.path) {
				return fmt.Errorf("%s cannot be deleted", k.path)
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			if err := c.do(cmd.Context(), "DELETE", "/api/v1/"+k.path+"/"+url.PathEscape(args[1]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s/%s deleted\n", k.singular, args[1])
			return nil
		},
	}
	f.register(cmd)
	f.registerReason(cmd)
	return cmd
}

func newScaleCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:     "scale SERVICE REPLICAS",
		Short:   "Set a service's number of instances",
		Example: `  opspilot scale billing 10 --reason "promotion tonight"`,
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := strconv.Atoi(args[1])
			if err != nil || n < 0 {
				return fmt.Errorf("REPLICAS %q: want a whole number ≥ 0", args[1])
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			var res struct {
				From     int `json:"from"`
				Replicas int `json:"replicas"`
			}
			if err := c.do(cmd.Context(), "POST", "/api/v1/services/"+url.PathEscape(args[0])+"/scale", control.ScaleRequest{Replicas: &n}, &res); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "service/%s scaled from %d to %d\n", args[0], res.From, res.Replicas)
			// As with the HPA, a policy that scales the service will change
			// this count at its next evaluation: say so.
			var p autoscaler.Policy
			if err := c.do(cmd.Context(), "GET", "/api/v1/autoscalingpolicies/"+url.PathEscape(args[0]), nil, &p); err == nil && !p.DryRun {
				fmt.Fprintf(cmd.ErrOrStderr(), "note: an autoscaling policy scales %s (min %d, max %d) and will change this within seconds; set dry_run: true in it, or delete it (opspilot delete autoscalingpolicy %s), to scale by hand\n",
					args[0], p.MinReplicas, p.MaxReplicas, args[0])
			}
			return nil
		},
	}
	f.register(cmd)
	f.registerReason(cmd)
	return cmd
}

func newRolloutCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollout status|history|undo SERVICE",
		Short: "Follow, list or undo a service's rolling updates",
	}
	var sf clientFlags
	var wait bool
	status := &cobra.Command{
		Use:   "status SERVICE",
		Short: "Show a rollout's progress (with a progress bar) until it completes",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := sf.client()
			if err != nil {
				return err
			}
			return rolloutStatus(cmd.Context(), c, args[0], wait, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	sf.register(status)
	status.Flags().BoolVarP(&wait, "watch", "w", true, "wait for the rollout to finish")
	var hf clientFlags
	history := &cobra.Command{
		Use:   "history SERVICE",
		Short: "List a service's revisions",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := hf.client()
			if err != nil {
				return err
			}
			var ro control.RolloutView
			if err := c.do(cmd.Context(), "GET", "/api/v1/services/"+url.PathEscape(args[0])+"/rollout", nil, &ro); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 3, ' ', 0)
			fmt.Fprintln(tw, "REVISION\tVERSION\tCREATED\tCURRENT\tRUNS\tFAILED")
			for _, r := range ro.History {
				runs := r.Spec.Image
				if runs == "" {
					runs = strings.Join(r.Spec.Command, " ")
				}
				cur := ""
				if r.Version == ro.Status.Version {
					cur = "*"
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", r.Number, r.Version, r.Created.Local().Format(time.DateTime), cur, runs, dash(r.Failed))
			}
			return tw.Flush()
		},
	}
	hf.register(history)
	var uf clientFlags
	var to int
	undo := &cobra.Command{
		Use:   "undo SERVICE",
		Short: "Go back to the previous revision (or --to-revision N)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := uf.client()
			if err != nil {
				return err
			}
			var res struct {
				Revision int    `json:"revision"`
				Version  string `json:"version"`
			}
			if err := c.do(cmd.Context(), "POST", "/api/v1/services/"+url.PathEscape(args[0])+"/rollout/undo", control.UndoRequest{ToRevision: to}, &res); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "service/%s rolling back to revision %d (version %s); follow with: opspilot rollout status %s\n", args[0], res.Revision, res.Version, args[0])
			return nil
		},
	}
	uf.register(undo)
	uf.registerReason(undo)
	undo.Flags().IntVar(&to, "to-revision", 0, "the revision to go back to (default: the one before the current)")
	cmd.AddCommand(status, history, undo)
	return cmd
}

// rolloutStatus polls the rollout and draws a bar of updated, ready
// instances against the desired count.
func rolloutStatus(ctx context.Context, c *apiClient, service string, wait bool, out, errOut io.Writer) error {
	var bar *progressbar.ProgressBar
	deadline := time.Now().Add(c.flags.timeout)
	verdicts := 0
	for {
		var ro control.RolloutView
		if err := c.do(ctx, "GET", "/api/v1/services/"+url.PathEscape(service)+"/rollout", nil, &ro); err != nil {
			return err
		}
		st := ro.Status
		// A gray release: each judged step as it comes, and where it is.
		if g := ro.Gray; g != nil {
			for ; verdicts < len(g.Verdicts); verdicts++ {
				fmt.Fprintf(out, "gray release %s\n", g.Verdicts[verdicts])
			}
			if !wait && g.Step < len(ro.Steps) && st.Rollout != "complete" && !strings.HasPrefix(st.Rollout, "rolled back") {
				step := ro.Steps[g.Step]
				held := "replacing instances"
				if !g.HeldSince.IsZero() {
					held = "analysing since " + g.HeldSince.Local().Format(time.TimeOnly)
				}
				fmt.Fprintf(out, "gray release step %d/%d: %d%% of datacenter %s on version %s, %s\n", g.Step+1, len(ro.Steps), step.Percent, step.Datacenter, g.Version, held)
			}
		}
		done := st.UpdatedReplicas
		if done > st.ReadyReplicas {
			done = st.ReadyReplicas
		}
		if bar == nil && wait && st.Rollout != "complete" && isTerminal(errOut) {
			bar = progressbar.NewOptions(max(ro.Desired, 1), progressbar.OptionSetWriter(errOut),
				progressbar.OptionSetDescription(fmt.Sprintf("%s → version %s", service, st.Version)),
				progressbar.OptionShowCount(), progressbar.OptionSetWidth(30), progressbar.OptionClearOnFinish())
		}
		if bar != nil {
			_ = bar.Set(min(done, max(ro.Desired, 1)))
		}
		switch {
		case strings.HasPrefix(st.Rollout, "rolled back"):
			if bar != nil {
				_ = bar.Exit()
			}
			return fmt.Errorf("service %s: %s", service, st.Rollout)
		case st.Rollout == "complete":
			if bar != nil {
				_ = bar.Finish()
			}
			fmt.Fprintf(out, "service %s: rollout to version %s (revision %d) complete: %d/%d ready\n", service, st.Version, st.Revision, st.ReadyReplicas, ro.Desired)
			return nil
		case !wait:
			fmt.Fprintf(out, "service %s: rollout to version %s in progress: %d of %d updated, %d ready, %d stopping\n", service, st.Version, st.UpdatedReplicas, ro.Desired, st.ReadyReplicas, st.Stopping)
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("service %s: rollout not finished after %s: %d of %d updated, %d ready", service, c.flags.timeout, st.UpdatedReplicas, ro.Desired, st.ReadyReplicas)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}
