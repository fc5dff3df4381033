package runbooks

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
	"time"
	"unicode"

	"github.com/VictoriaMetrics/metricsql"
	"github.com/prometheus/alertmanager/matcher/compat"

	"opspilot/config"
)

// Kind is the `kind` of a runbook document in apply files.
const Kind = "Runbook"

// Defaults of a runbook and its steps.
const (
	DefaultTimeout         = 10 * time.Minute // whole runbook
	DefaultStepTimeout     = time.Minute
	DefaultApprovalTimeout = 15 * time.Minute // approve steps wait for people
	DefaultLogsLimit       = 20
	DefaultWaitInterval    = time.Second
	DefaultSilenceDuration = time.Hour
	maxLogsLimit           = 10000
)

// Runbook is a named list of steps that diagnose and mitigate an incident,
// started by an alert, a chat command or a person. It is written in YAML as
//
//	kind: Runbook
//	name: billing-errors
//	trigger:
//	  alerts: ['alertname="BillingErrorRatioHigh"']
//	  command: billing-errors
//	  auto: true
//	params:
//	  - {name: factor, type: float, default: "2"}
//	steps:
//	  - name: errors
//	    query: {expr: 'sum(rate(billing_errors_total[1m]))'}
//	  - name: scale
//	    if: '{{ gt .steps.errors.value 0.01 }}'
//	    scale: {service: billing, multiply: 2, max: 40}
//
// String fields of steps are Go templates (text/template, missing keys are
// errors) over .params.NAME, .steps.STEP.OUTPUT, .alert.labels.NAME,
// .alert.annotations.NAME and .run.id / .run.who / .run.dry_run. A step
// that was skipped or did not run has no outputs, and referring to them is
// an error; `index .steps.NAME "OUTPUT"` with `with` tolerates their
// absence. lt, le, gt and ge compare any two numbers. Start from
// DefaultRunbook: keys absent from the file keep its defaults.
type Runbook struct {
	// Name identifies the runbook (letters, digits, '-', '_', '.').
	Name        string `yaml:"name" json:"name"`
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
	// Trigger says what starts the runbook besides `runbook run NAME`.
	Trigger Trigger `yaml:"trigger,omitempty" json:"trigger"`
	// Params are typed inputs, given as k=v in chat.
	Params []Param `yaml:"params,omitempty" json:"params,omitempty"`
	// Timeout bounds the whole run (default 10m).
	Timeout time.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	// DryRun makes every run a dry run: only query and logs steps execute;
	// the others report what they would do.
	DryRun bool   `yaml:"dry_run,omitempty" json:"dry_run,omitempty"`
	Steps  []Step `yaml:"steps" json:"steps"`
}

// Trigger starts a runbook from alerts or a chat command.
type Trigger struct {
	// Alerts are Alertmanager matchers, each string one or more of them
	// (`alertname="X", service="billing"`); an alert matching every
	// matcher of any one string triggers the runbook.
	Alerts []string `yaml:"alerts,omitempty" json:"alerts,omitempty"`
	// Command is the chat command name, e.g. restart-billing.
	Command string `yaml:"command,omitempty" json:"command,omitempty"`
	// Auto runs the runbook as soon as a matching alert fires; otherwise
	// the incident offers a "Run runbook" button.
	Auto bool `yaml:"auto,omitempty" json:"auto,omitempty"`
}

// Matches reports whether an alert with these labels triggers the
// runbook: every matcher of at least one of Alerts matches. A trigger
// without alerts matches nothing. Alerts that do not parse (Validate
// reports them) match nothing.
func (t Trigger) Matches(labels map[string]string) bool {
	for _, a := range t.Alerts {
		ms, err := compat.Matchers(a, "runbook")
		if err != nil || len(ms) == 0 {
			continue
		}
		all := true
		for _, m := range ms {
			all = all && m.Matches(labels[m.Name])
		}
		if all {
			return true
		}
	}
	return false
}

// Param types.
const (
	ParamString     = "string"
	ParamInt        = "int"
	ParamFloat      = "float"
	ParamDuration   = "duration"
	ParamBool       = "bool"
	ParamService    = "service"
	ParamNode       = "node"
	ParamDatacenter = "datacenter"
)

var paramTypes = []string{ParamString, ParamInt, ParamFloat, ParamDuration, ParamBool, ParamService, ParamNode, ParamDatacenter}

// Param is one typed input of a runbook.
type Param struct {
	Name string `yaml:"name" json:"name"`
	// Type is string (default), int, float, duration, bool, service, node
	// or datacenter (the last three are names checked like service names).
	Type     string `yaml:"type,omitempty" json:"type,omitempty"`
	Default  string `yaml:"default,omitempty" json:"default,omitempty"`
	Required bool   `yaml:"required,omitempty" json:"required,omitempty"`
	// Description is shown by the chat bot's help.
	Description string `yaml:"description,omitempty" json:"description,omitempty"`
}

// Step is one action of a runbook. Exactly one action key is set.
type Step struct {
	// Name is unique in the runbook and identifier-like; later steps read
	// this step's outputs as .steps.NAME.OUTPUT.
	Name string `yaml:"name" json:"name"`
	// If is a template that must render "true" or "false"; the step is
	// skipped on false, e.g. '{{ gt .steps.errors.value 0.01 }}'.
	If string `yaml:"if,omitempty" json:"if,omitempty"`
	// Timeout bounds the step (default 1m; approve steps 15m; wait_until
	// steps their own timeout).
	Timeout time.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	// ContinueOnError runs the next steps even if this one fails.
	ContinueOnError bool `yaml:"continue_on_error,omitempty" json:"continue_on_error,omitempty"`

	Query       *QueryAction       `yaml:"query,omitempty" json:"query,omitempty"`
	Logs        *LogsAction        `yaml:"logs,omitempty" json:"logs,omitempty"`
	Scale       *ScaleAction       `yaml:"scale,omitempty" json:"scale,omitempty"`
	Restart     *RestartAction     `yaml:"restart,omitempty" json:"restart,omitempty"`
	Drain       *DrainAction       `yaml:"drain,omitempty" json:"drain,omitempty"`
	RolloutUndo *RolloutUndoAction `yaml:"rollout_undo,omitempty" json:"rollout_undo,omitempty"`
	Failover    *FailoverAction    `yaml:"failover,omitempty" json:"failover,omitempty"`
	Silence     *SilenceAction     `yaml:"silence,omitempty" json:"silence,omitempty"`
	HTTP        *HTTPAction        `yaml:"http,omitempty" json:"http,omitempty"`
	WaitUntil   *WaitUntilAction   `yaml:"wait_until,omitempty" json:"wait_until,omitempty"`
	Approve     *ApproveAction     `yaml:"approve,omitempty" json:"approve,omitempty"`
	Notify      *NotifyAction      `yaml:"notify,omitempty" json:"notify,omitempty"`
	Exec        *ExecAction        `yaml:"exec,omitempty" json:"exec,omitempty"`
}

// QueryAction runs an instant MetricsQL query. Outputs: value (the first
// sample's value, absent when the result is empty) and series (count).
type QueryAction struct {
	Expr string `yaml:"expr" json:"expr"`
	// Graph asks the chat bot to post a graph of Expr.
	Graph bool `yaml:"graph,omitempty" json:"graph,omitempty"`
}

// LogsAction fetches the last Limit log lines matching a LogsQL query.
// Outputs: lines (list of strings) and count.
type LogsAction struct {
	Query string `yaml:"query" json:"query"`
	Limit int    `yaml:"limit,omitempty" json:"limit,omitempty"` // default 20
}

// ScaleAction sets a service's replicas: exactly one of Replicas, Add and
// Multiply (rounded up), capped at Max when Max > 0. Each is a number or a
// template that renders to one (replicas: '{{ .params.replicas }}').
// Outputs: previous and replicas.
type ScaleAction struct {
	Service  string  `yaml:"service" json:"service"`
	Replicas *Number `yaml:"replicas,omitempty" json:"replicas,omitempty"`
	Add      *Number `yaml:"add,omitempty" json:"add,omitempty"`
	Multiply *Number `yaml:"multiply,omitempty" json:"multiply,omitempty"`
	Max      *Number `yaml:"max,omitempty" json:"max,omitempty"`
}

// RestartAction restarts one instance.
type RestartAction struct {
	Instance string `yaml:"instance" json:"instance"`
}

// DrainAction drains a node: its instances are rebuilt elsewhere.
type DrainAction struct {
	Node string `yaml:"node" json:"node"`
}

// RolloutUndoAction rolls a service back to its previous revision.
type RolloutUndoAction struct {
	Service string `yaml:"service" json:"service"`
}

// FailoverAction moves a datacenter's services to their failover targets.
type FailoverAction struct {
	Datacenter string `yaml:"datacenter" json:"datacenter"`
}

// SilenceAction silences alerts matching Matchers for Duration (default
// 1h). Output: id.
type SilenceAction struct {
	Matchers []string      `yaml:"matchers" json:"matchers"`
	Duration time.Duration `yaml:"duration,omitempty" json:"duration,omitempty"`
	Comment  string        `yaml:"comment,omitempty" json:"comment,omitempty"`
}

// HTTPAction sends one HTTP request. ExpectStatus 0 accepts any 2xx.
// Outputs: status and body (first 4 KiB).
type HTTPAction struct {
	Method       string `yaml:"method,omitempty" json:"method,omitempty"` // default GET
	URL          string `yaml:"url" json:"url"`
	Body         string `yaml:"body,omitempty" json:"body,omitempty"`
	ExpectStatus int    `yaml:"expect_status,omitempty" json:"expect_status,omitempty"`
}

// WaitUntilAction polls a MetricsQL condition every Interval (default 1s)
// until it returns a non-empty result, for at most Timeout (default 1m).
// Outputs: value, series and waited (seconds).
type WaitUntilAction struct {
	Expr     string        `yaml:"expr" json:"expr"`
	Timeout  time.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	Interval time.Duration `yaml:"interval,omitempty" json:"interval,omitempty"`
}

// ApproveAction waits until one of Users, or a person with one of Roles,
// approves. Output: approved_by.
type ApproveAction struct {
	Roles   []string `yaml:"roles,omitempty" json:"roles,omitempty"`
	Users   []string `yaml:"users,omitempty" json:"users,omitempty"`
	Message string   `yaml:"message,omitempty" json:"message,omitempty"`
}

// NotifyAction posts Message in the incident's thread. Output: message.
type NotifyAction struct {
	Message string `yaml:"message" json:"message"`
}

// ExecAction runs a command (no shell) on the control plane. The engine
// refuses it unless an administrator set EngineOptions.AllowExec. Outputs:
// output (its last 4 KiB) and exit_code.
type ExecAction struct {
	Command []string `yaml:"command" json:"command"`
}

// DefaultRunbook returns a runbook holding every default, to decode a file
// into.
func DefaultRunbook() Runbook { return Runbook{Timeout: DefaultTimeout} }

// Document is a runbook as an apply-file document: `kind: Runbook` plus
// the runbook's keys. Decode into &Document{Runbook: DefaultRunbook()}.
type Document struct {
	Kind    string `yaml:"kind" json:"kind"`
	Runbook `yaml:",inline"`
}

// Validate checks the runbook (see Runbook.Validate).
func (d *Document) Validate() []config.Problem { return d.Runbook.Validate() }

// Parse reads the runbooks of an apply file (documents separated by
// "---", each `kind: Runbook`). Errors name file, line, column and field.
func Parse(name string, data []byte) ([]Runbook, error) {
	docs, err := config.ParseDocuments(name, data, func(kind string) (any, error) {
		if !strings.EqualFold(kind, Kind) {
			return nil, fmt.Errorf("unknown kind %q; a runbook file holds kind: %s documents", clip(kind), Kind)
		}
		return &Document{Runbook: DefaultRunbook()}, nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]Runbook, 0, len(docs))
	seen := make(map[string]int)
	var errs config.Errors
	for _, d := range docs {
		rb := d.Value.(*Document).Runbook
		if line, dup := seen[rb.Name]; dup {
			errs = append(errs, &config.Error{File: name, Line: d.Line, Field: "name", Msg: fmt.Sprintf("runbook %q is already defined on line %d; rename one of them", rb.Name, line)})
			continue
		}
		seen[rb.Name] = d.Line
		out = append(out, rb)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return out, nil
}

var (
	identRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	commandRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	methodRE  = regexp.MustCompile(`^[A-Z]{1,16}$`)
)

// Validate checks the runbook and returns every problem with the YAML path
// of its field. It never changes the runbook.
func (rb *Runbook) Validate() []config.Problem {
	var ps []config.Problem
	add := func(field, msg string) { ps = append(ps, config.Problem{Field: field, Msg: msg}) }

	if msg := checkName(rb.Name); msg != "" {
		add("name", msg)
	}
	for i, a := range rb.Trigger.Alerts {
		if _, err := compat.Matchers(a, "runbook"); err != nil || strings.TrimSpace(a) == "" {
			add(fmt.Sprintf("trigger.alerts[%d]", i), fmt.Sprintf("not valid alert matchers (%s); write e.g. 'alertname=\"BillingErrorRatioHigh\"' or 'alertname=~\"Billing.*\", severity=\"page\"'", errText(err, "empty")))
		}
	}
	if c := rb.Trigger.Command; c != "" && !commandRE.MatchString(c) {
		add("trigger.command", fmt.Sprintf("invalid command %q: use lower-case letters, digits, '-' and '_', e.g. restart-billing", clip(c)))
	}
	if rb.Trigger.Auto && len(rb.Trigger.Alerts) == 0 {
		add("trigger.auto", "auto runs the runbook when an alert matches, so it needs trigger.alerts, e.g. alerts: ['alertname=\"BillingErrorRatioHigh\"']")
	}
	if rb.Timeout < 0 {
		add("timeout", "must be positive, e.g. timeout: 10m (0 means the default, 10m)")
	}

	params := make(map[string]bool, len(rb.Params))
	for i, p := range rb.Params {
		at := fmt.Sprintf("params[%d]", i)
		switch {
		case !identRE.MatchString(p.Name):
			add(at+".name", fmt.Sprintf("invalid param name %q: use letters, digits and '_', starting with a letter, e.g. replicas", clip(p.Name)))
		case params[p.Name]:
			add(at+".name", fmt.Sprintf("param %q is declared twice; remove one", p.Name))
		}
		params[p.Name] = true
		if !validParamType(p.Type) {
			add(at+".type", fmt.Sprintf("unknown type %q; use one of %s", clip(p.Type), strings.Join(paramTypes, ", ")))
		} else if p.Default != "" {
			if _, err := convertParam(p, p.Default); err != nil {
				add(at+".default", err.Error())
			}
		}
		if p.Required && p.Default != "" {
			add(at+".required", "a required param has no default; remove required or the default")
		}
	}

	if len(rb.Steps) == 0 {
		add("steps", "needs at least one step, e.g. - {name: errors, query: {expr: 'sum(rate(http_errors_total[1m]))'}}")
	}
	// outputs of the steps so far, for template references.
	earlier := make(map[string][]string, len(rb.Steps))
	for i, s := range rb.Steps {
		at := fmt.Sprintf("steps[%d]", i)
		ps = append(ps, config.Prefix(at, s.validate(params, earlier))...)
		if total := rb.Timeout; total > 0 {
			if s.Timeout > total {
				add(at+".timeout", fmt.Sprintf("%s is longer than the runbook's timeout %s; raise the runbook's timeout or shorten this one", s.Timeout, total))
			}
			if s.WaitUntil != nil && s.WaitUntil.Timeout > total {
				add(at+".wait_until.timeout", fmt.Sprintf("%s is longer than the runbook's timeout %s; raise the runbook's timeout or shorten this one", s.WaitUntil.Timeout, total))
			}
		}
		if identRE.MatchString(s.Name) {
			if _, dup := earlier[s.Name]; dup {
				add(at+".name", fmt.Sprintf("step %q is defined twice; step names must be unique", s.Name))
			} else {
				earlier[s.Name] = s.outputs()
			}
		}
	}
	return ps
}

// Action returns the name of the step's action key ("" when none is set,
// the first when several are).
func (s *Step) Action() string {
	a := s.actions()
	if len(a) == 0 {
		return ""
	}
	return a[0]
}

func (s *Step) actions() []string {
	var a []string
	set := func(ok bool, name string) {
		if ok {
			a = append(a, name)
		}
	}
	set(s.Query != nil, "query")
	set(s.Logs != nil, "logs")
	set(s.Scale != nil, "scale")
	set(s.Restart != nil, "restart")
	set(s.Drain != nil, "drain")
	set(s.RolloutUndo != nil, "rollout_undo")
	set(s.Failover != nil, "failover")
	set(s.Silence != nil, "silence")
	set(s.HTTP != nil, "http")
	set(s.WaitUntil != nil, "wait_until")
	set(s.Approve != nil, "approve")
	set(s.Notify != nil, "notify")
	set(s.Exec != nil, "exec")
	return a
}

const actionList = "query, logs, scale, restart, drain, rollout_undo, failover, silence, http, wait_until, approve, notify, exec"

// outputs names what .steps.NAME offers to later steps.
func (s *Step) outputs() []string {
	switch s.Action() {
	case "query":
		return []string{"value", "series"}
	case "logs":
		return []string{"lines", "count"}
	case "scale":
		return []string{"previous", "replicas"}
	case "silence":
		return []string{"id"}
	case "http":
		return []string{"status", "body"}
	case "wait_until":
		return []string{"value", "series", "waited"}
	case "approve":
		return []string{"approved_by"}
	case "notify":
		return []string{"message"}
	case "exec":
		return []string{"output", "exit_code"}
	}
	return nil
}

// templateField is one templated string of a step, with its YAML path.
type templateField struct{ field, text string }

// templates lists the step's templated strings.
func (s *Step) templates() []templateField {
	var t []templateField
	add := func(field, text string) {
		if text != "" {
			t = append(t, templateField{field, text})
		}
	}
	add("if", s.If)
	switch {
	case s.Query != nil:
		add("query.expr", s.Query.Expr)
	case s.Logs != nil:
		add("logs.query", s.Logs.Query)
	case s.Scale != nil:
		add("scale.service", s.Scale.Service)
		for _, n := range []struct {
			field string
			v     *Number
		}{{"scale.replicas", s.Scale.Replicas}, {"scale.add", s.Scale.Add}, {"scale.multiply", s.Scale.Multiply}, {"scale.max", s.Scale.Max}} {
			if n.v != nil && n.v.IsTemplate() {
				add(n.field, n.v.Text)
			}
		}
	case s.Restart != nil:
		add("restart.instance", s.Restart.Instance)
	case s.Drain != nil:
		add("drain.node", s.Drain.Node)
	case s.RolloutUndo != nil:
		add("rollout_undo.service", s.RolloutUndo.Service)
	case s.Failover != nil:
		add("failover.datacenter", s.Failover.Datacenter)
	case s.Silence != nil:
		for i, m := range s.Silence.Matchers {
			add(fmt.Sprintf("silence.matchers[%d]", i), m)
		}
		add("silence.comment", s.Silence.Comment)
	case s.HTTP != nil:
		add("http.url", s.HTTP.URL)
		add("http.body", s.HTTP.Body)
	case s.WaitUntil != nil:
		add("wait_until.expr", s.WaitUntil.Expr)
	case s.Approve != nil:
		add("approve.message", s.Approve.Message)
	case s.Notify != nil:
		add("notify.message", s.Notify.Message)
	case s.Exec != nil:
		for i, c := range s.Exec.Command {
			add(fmt.Sprintf("exec.command[%d]", i), c)
		}
	}
	return t
}

func (s *Step) validate(params map[string]bool, earlier map[string][]string) []config.Problem {
	var ps []config.Problem
	add := func(field, msg string) { ps = append(ps, config.Problem{Field: field, Msg: msg}) }

	if !identRE.MatchString(s.Name) {
		add("name", fmt.Sprintf("invalid step name %q: use letters, digits and '_', starting with a letter (later steps read .steps.NAME.OUTPUT), e.g. error_ratio", clip(s.Name)))
	}
	if s.Timeout < 0 {
		add("timeout", "must be positive, e.g. timeout: 30s (0 means the default)")
	}
	switch a := s.actions(); len(a) {
	case 0:
		add("", "needs exactly one action key: "+actionList)
	case 1:
	default:
		add(a[1], fmt.Sprintf("a step has exactly one action, and this one also has %s; split it into two steps", a[0]))
	}
	for _, tf := range s.templates() {
		if err := checkTemplate(tf.text, params, earlier); err != nil {
			add(tf.field, err.Error())
		}
	}

	switch {
	case s.Query != nil:
		ps = checkQuery(ps, "query.expr", s.Query.Expr)
	case s.Logs != nil:
		if strings.TrimSpace(s.Logs.Query) == "" {
			add("logs.query", `missing; write a LogsQL query, e.g. query: 'service:billing error'`)
		}
		if s.Logs.Limit < 0 || s.Logs.Limit > maxLogsLimit {
			add("logs.limit", fmt.Sprintf("must be between 1 and %d (0 means the default, %d)", maxLogsLimit, DefaultLogsLimit))
		}
	case s.Scale != nil:
		sc := s.Scale
		required(add, "scale.service", sc.Service, "service: billing")
		n := 0
		for _, c := range []struct {
			field   string
			v       *Number
			integer bool
			check   func(float64) string
		}{
			{"scale.replicas", sc.Replicas, true, func(f float64) string { return msgIf(f < 0, "must not be negative") }},
			{"scale.add", sc.Add, true, func(float64) string { return "" }},
			{"scale.multiply", sc.Multiply, false, func(f float64) string {
				return msgIf(!(f > 0) || math.IsInf(f, 0), "must be a positive number, e.g. multiply: 2")
			}},
			{"scale.max", sc.Max, true, func(f float64) string { return msgIf(f < 0, "must not be negative (0 means no cap)") }},
		} {
			if c.v == nil {
				continue
			}
			if c.field != "scale.max" {
				n++
			}
			f, ok, err := c.v.literal()
			switch {
			case err != nil:
				add(c.field, err.Error()+"; "+numberHint)
			case !ok:
			case c.integer && (f != math.Trunc(f) || math.Abs(f) > math.MaxInt32):
				add(c.field, fmt.Sprintf("%s: want a whole number", c.v.Text))
			default:
				if msg := c.check(f); msg != "" {
					add(c.field, msg)
				}
			}
		}
		if n != 1 {
			add("scale", "needs exactly one of replicas (set), add (change by) or multiply (factor), e.g. multiply: 2")
		}
	case s.Restart != nil:
		required(add, "restart.instance", s.Restart.Instance, "instance: billing-3")
	case s.Drain != nil:
		required(add, "drain.node", s.Drain.Node, "node: host-17")
	case s.RolloutUndo != nil:
		required(add, "rollout_undo.service", s.RolloutUndo.Service, "service: billing")
	case s.Failover != nil:
		required(add, "failover.datacenter", s.Failover.Datacenter, "datacenter: dc-a")
	case s.Silence != nil:
		if len(s.Silence.Matchers) == 0 {
			add("silence.matchers", `needs at least one matcher, e.g. matchers: ['alertname="BillingErrorRatioHigh"']`)
		}
		for i, m := range s.Silence.Matchers {
			if strings.Contains(m, "{{") {
				continue // checked when rendered
			}
			if _, err := compat.Matchers(m, "runbook"); err != nil || strings.TrimSpace(m) == "" {
				add(fmt.Sprintf("silence.matchers[%d]", i), fmt.Sprintf("not valid alert matchers (%s); write e.g. 'alertname=\"X\"'", errText(err, "empty")))
			}
		}
		if s.Silence.Duration < 0 {
			add("silence.duration", "must be positive, e.g. duration: 1h (0 means the default, 1h)")
		}
	case s.HTTP != nil:
		if m := s.HTTP.Method; m != "" && !methodRE.MatchString(m) {
			add("http.method", fmt.Sprintf("invalid method %q; use GET, POST, PUT, DELETE…", clip(m)))
		}
		u := s.HTTP.URL
		required(add, "http.url", u, "url: http://billing:8080/admin/flush")
		if u != "" && !strings.Contains(u, "{{") && !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			add("http.url", "must start with http:// or https://")
		}
		if st := s.HTTP.ExpectStatus; st != 0 && (st < 100 || st > 599) {
			add("http.expect_status", "must be an HTTP status between 100 and 599 (0 accepts any 2xx)")
		}
	case s.WaitUntil != nil:
		ps = checkQuery(ps, "wait_until.expr", s.WaitUntil.Expr)
		if s.WaitUntil.Timeout < 0 {
			add("wait_until.timeout", "must be positive, e.g. timeout: 2m (0 means the step's timeout)")
		}
		if s.WaitUntil.Interval < 0 {
			add("wait_until.interval", "must be positive, e.g. interval: 5s (0 means the default, 1s)")
		}
	case s.Approve != nil:
		if len(s.Approve.Roles) == 0 && len(s.Approve.Users) == 0 {
			add("approve", "needs roles or users who may approve, e.g. roles: [platform-admin]")
		}
	case s.Notify != nil:
		required(add, "notify.message", s.Notify.Message, "message: 'scaled billing to {{ .steps.scale.replicas }}'")
	case s.Exec != nil:
		if len(s.Exec.Command) == 0 || s.Exec.Command[0] == "" {
			add("exec.command", "needs the program and its arguments, e.g. command: [/usr/local/bin/flush-cache, billing]")
		}
	}
	return ps
}

func required(add func(field, msg string), field, v, example string) {
	if strings.TrimSpace(v) == "" {
		add(field, "missing, e.g. "+example)
	}
}

func checkQuery(ps []config.Problem, field, q string) []config.Problem {
	switch {
	case strings.TrimSpace(q) == "":
		return append(ps, config.Problem{Field: field, Msg: "missing; write a MetricsQL expression"})
	case strings.Contains(q, "{{"):
		return ps // a template; the rendered query is checked by the store
	}
	if _, err := metricsql.Parse(q); err != nil {
		return append(ps, config.Problem{Field: field, Msg: fmt.Sprintf("not valid MetricsQL: %v", err)})
	}
	return ps
}

// checkName accepts what the orchestrator accepts for names: at most 63
// letters, digits, '-', '_' or '.', starting with a letter or digit.
func checkName(name string) string {
	if name == "" {
		return "missing; name the runbook, e.g. name: billing-errors"
	}
	if !validName(name) {
		return fmt.Sprintf("invalid name %q: use at most 63 letters, digits, '-', '_' or '.', starting with a letter or digit", clip(name))
	}
	return ""
}

func validName(name string) bool {
	ok := name != "" && len(name) <= 63
	for i, r := range name {
		alnum := r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r))
		ok = ok && (alnum || i > 0 && strings.ContainsRune("-_.", r))
	}
	return ok
}

func validParamType(t string) bool {
	if t == "" {
		return true
	}
	for _, pt := range paramTypes {
		if t == pt {
			return true
		}
	}
	return false
}

// convertParam turns the text of a param into its typed value.
func convertParam(p Param, s string) (any, error) {
	switch p.Type {
	case ParamInt:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("param %s: %q is not an integer", p.Name, clip(s))
		}
		return n, nil
	case ParamFloat:
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("param %s: %q is not a number", p.Name, clip(s))
		}
		return f, nil
	case ParamDuration:
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("param %s: %q is not a positive duration such as 30s or 5m", p.Name, clip(s))
		}
		return d, nil
	case ParamBool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("param %s: %q is not true or false", p.Name, clip(s))
		}
		return b, nil
	case ParamService, ParamNode, ParamDatacenter:
		if !validName(s) {
			return nil, fmt.Errorf("param %s: %q is not a %s name (letters, digits, '-', '_', '.', at most 63)", p.Name, clip(s), p.Type)
		}
		return s, nil
	}
	return s, nil
}

// templateFuncs replace text/template's lt, le, gt and ge with versions
// that compare any two numbers (a query's float value with an integer
// literal), which the built-ins refuse.
var templateFuncs = template.FuncMap{
	"lt": func(a, b any) (bool, error) { c, err := compare(a, b); return c < 0, err },
	"le": func(a, b any) (bool, error) { c, err := compare(a, b); return c <= 0, err },
	"gt": func(a, b any) (bool, error) { c, err := compare(a, b); return c > 0, err },
	"ge": func(a, b any) (bool, error) { c, err := compare(a, b); return c >= 0, err },
}

func compare(a, b any) (int, error) {
	fa, oka := number(a)
	fb, okb := number(b)
	if oka && okb {
		switch {
		case fa < fb:
			return -1, nil
		case fa > fb:
			return 1, nil
		}
		return 0, nil
	}
	sa, oka := a.(string)
	sb, okb := b.(string)
	if oka && okb {
		return strings.Compare(sa, sb), nil
	}
	return 0, fmt.Errorf("cannot compare %v (%T) with %v (%T)", a, a, b, b)
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case float64:
		return n, true
	case time.Duration:
		return n.Seconds(), true
	}
	return 0, false
}

// newTemplate parses text with the runbook functions.
func newTemplate(text string) (*template.Template, error) {
	return template.New("").Option("missingkey=error").Funcs(templateFuncs).Parse(text)
}

// checkTemplate parses text and checks the data it refers to: declared
// params, steps defined earlier, and outputs those steps have.
func checkTemplate(text string, params map[string]bool, earlier map[string][]string) error {
	if !strings.Contains(text, "{{") {
		return nil
	}
	t, err := newTemplate(text)
	if err != nil {
		return fmt.Errorf("template: %s", strings.TrimPrefix(err.Error(), "template: :"))
	}
	var first error
	if rangesOverNumber(t.Tree.Root) {
		return errors.New("template ranges over a number; range over a list (e.g. .steps.logs.lines) instead")
	}
	walkFields(t.Tree.Root, func(ident []string) {
		if first != nil || len(ident) == 0 {
			return
		}
		switch ident[0] {
		case "params":
			if len(ident) > 1 && !params[ident[1]] {
				first = fmt.Errorf("template uses .params.%s, which is not declared under params", ident[1])
			}
		case "steps":
			if len(ident) < 2 {
				return
			}
			outs, ok := earlier[ident[1]]
			if !ok {
				first = fmt.Errorf("template uses .steps.%s, which is not a step before this one; a step reads the outputs of earlier steps", ident[1])
				return
			}
			if len(ident) > 2 && !contains(outs, ident[2]) {
				first = fmt.Errorf("step %s has no output %q; it has: %s", ident[1], ident[2], strings.Join(outs, ", "))
			}
		case "alert", "run":
		default:
			first = fmt.Errorf("template uses .%s; the data is .params, .steps, .alert and .run", ident[0])
		}
	})
	return first
}

// msgIf is msg when bad, else "".
func msgIf(bad bool, msg string) string {
	if bad {
		return msg
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// walkFields calls f with the identifiers of every field reference on the
// template's top-level dot (inside range and with, dot is something else).
func walkFields(n parse.Node, f func([]string)) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			walkFields(c, f)
		}
	case *parse.ActionNode:
		walkFields(n.Pipe, f)
	case *parse.PipeNode:
		if n == nil {
			return
		}
		for _, c := range n.Cmds {
			walkFields(c, f)
		}
	case *parse.CommandNode:
		for _, a := range n.Args {
			walkFields(a, f)
		}
	case *parse.FieldNode:
		f(n.Ident)
	case *parse.ChainNode:
		walkFields(n.Node, f)
	case *parse.IfNode:
		walkFields(n.Pipe, f)
		walkFields(n.List, f)
		walkFields(n.ElseList, f)
	case *parse.RangeNode:
		walkFields(n.Pipe, f)
		walkFields(n.ElseList, f)
	case *parse.WithNode:
		walkFields(n.Pipe, f)
		walkFields(n.ElseList, f)
	case *parse.TemplateNode:
		walkFields(n.Pipe, f)
	}
}

// rangesOverNumber reports a {{ range N }} with a literal N anywhere in
// the tree: Go templates can loop over integers, and a large literal
// would stall the engine.
func rangesOverNumber(n parse.Node) bool {
	found := false
	var walk func(parse.Node)
	walk = func(n parse.Node) {
		switch n := n.(type) {
		case *parse.ListNode:
			if n == nil {
				return
			}
			for _, c := range n.Nodes {
				walk(c)
			}
		case *parse.IfNode:
			walk(n.List)
			walk(n.ElseList)
		case *parse.WithNode:
			walk(n.List)
			walk(n.ElseList)
		case *parse.RangeNode:
			if n.Pipe != nil {
				for _, c := range n.Pipe.Cmds {
					for _, a := range c.Args {
						if _, ok := a.(*parse.NumberNode); ok {
							found = true
						}
					}
				}
			}
			walk(n.List)
			walk(n.ElseList)
		}
	}
	walk(n)
	return found
}

func errText(err error, otherwise string) string {
	if err != nil {
		return err.Error()
	}
	return otherwise
}

// clip shortens a value quoted in a message.
func clip(s string) string {
	if r := []rune(s); len(r) > 40 {
		return string(r[:40]) + "…"
	}
	return s
}
