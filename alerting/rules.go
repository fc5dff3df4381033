package alerting

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/template"
	"go.yaml.in/yaml/v3"
)

// RuleSet is a set of checked rule files, ready for the Evaluator.
type RuleSet struct {
	// Files are in the order the patterns named them, each once.
	Files []RuleFile
}

// RuleFile is one checked rule file.
type RuleFile struct {
	Path   string
	Groups []rulefmt.RuleGroup
}

// Paths returns the files' paths.
func (s *RuleSet) Paths() []string {
	out := make([]string, len(s.Files))
	for i, f := range s.Files {
		out[i] = f.Path
	}
	return out
}

// Count returns the number of groups and rules in the set.
func (s *RuleSet) Count() (groups, rules int) {
	for _, f := range s.Files {
		g, r := f.Count()
		groups += g
		rules += r
	}
	return groups, rules
}

// Count returns the number of groups and rules in the file.
func (f *RuleFile) Count() (groups, rules int) {
	for _, g := range f.Groups {
		rules += len(g.Rules)
	}
	return len(f.Groups), rules
}

// RuleError is one problem in a rule file, located to the line and column
// of the YAML node at fault.
type RuleError struct {
	File string
	// Line and Column are 1-based; 0 when unknown.
	Line, Column int
	// Group is the group's name, empty for a problem outside any group.
	Group string
	// Rule is the rule's 1-based index in its group, 0 for a problem
	// outside any rule; RuleName is its alert or record name.
	Rule     int
	RuleKind string // "alert" or "record"
	RuleName string
	// Field is the YAML key at fault ("for", "labels.severity").
	Field string
	// Msg says what is wrong and how to fix it.
	Msg string
}

// Error formats the problem as
// file:line:col: group "g", rule 2 (alert X): field: message — how to fix.
func (e *RuleError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ":%d", e.Column)
		}
	}
	b.WriteString(": ")
	if e.Group != "" || e.Rule > 0 {
		fmt.Fprintf(&b, "group %q", e.Group)
		if e.Rule > 0 {
			fmt.Fprintf(&b, ", rule %d", e.Rule)
			if e.RuleName != "" {
				fmt.Fprintf(&b, " (%s %s)", e.RuleKind, e.RuleName)
			}
		}
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// RuleErrors are all the problems found in a set of rule files.
type RuleErrors []*RuleError

// Error prints one problem a line.
func (es RuleErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// LoadRuleFiles reads and checks the rule files the patterns name (paths or
// filepath.Glob patterns). Group names must be unique across all files,
// because the API and the metrics name groups by name. The error, if any,
// is a RuleErrors listing every problem found.
func LoadRuleFiles(patterns []string) (*RuleSet, error) {
	var errs RuleErrors
	var paths []string
	seen := map[string]bool{}
	for _, pat := range patterns {
		matches := []string{pat}
		if strings.ContainsAny(pat, `*?[\`) {
			var err error
			matches, err = filepath.Glob(pat)
			if err != nil {
				errs = append(errs, &RuleError{File: pat, Msg: "bad glob pattern: " + err.Error() + " — see https://pkg.go.dev/path/filepath#Match for the syntax"})
				continue
			}
			if len(matches) == 0 {
				errs = append(errs, &RuleError{File: pat, Msg: "the pattern matches no file — check the directory and the extension, or remove the pattern"})
				continue
			}
			slices.Sort(matches)
		}
		for _, m := range matches {
			if !seen[m] {
				seen[m] = true
				paths = append(paths, m)
			}
		}
	}

	set := &RuleSet{}
	groupAt := map[string]string{} // group name → file:line where defined first
	for _, path := range paths {
		content, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, &RuleError{File: path, Msg: readFileHint(err)})
			continue
		}
		f, positions, err := parseRuleFile(path, content)
		if err != nil {
			var re RuleErrors
			if errors.As(err, &re) {
				errs = append(errs, re...)
			} else {
				errs = append(errs, &RuleError{File: path, Msg: err.Error()})
			}
			continue
		}
		for i, g := range f.Groups {
			pos := positions[i]
			if first, ok := groupAt[g.Name]; ok {
				errs = append(errs, &RuleError{File: path, Line: pos.Line, Column: pos.Column, Group: g.Name, Field: "name",
					Msg: fmt.Sprintf("a group with this name is already defined at %s — group names must be unique across all rule files; rename one", first)})
				continue
			}
			groupAt[g.Name] = fmt.Sprintf("%s:%d", path, pos.Line)
		}
		set.Files = append(set.Files, *f)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return set, nil
}

func readFileHint(err error) string {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "no such file — check the path (globs such as rules/*.yaml are allowed)"
	case errors.Is(err, os.ErrPermission):
		return "permission denied — make the file readable by the user opspilot runs as"
	}
	return err.Error()
}

// ParseRuleFile checks one rule file's content; path only names it in
// errors. The error, if any, is a RuleErrors.
func ParseRuleFile(path string, content []byte) (*RuleFile, error) {
	f, _, err := parseRuleFile(path, content)
	return f, err
}

// position is a YAML node's place in its file.
type position struct{ Line, Column int }

// parseRuleFile checks content node by node, so that every problem has a
// line and column, then lets Prometheus' rulefmt decode the checked file
// (and catch whatever this check does not know). It returns the groups'
// name positions for the cross-file duplicate check.
func parseRuleFile(path string, content []byte) (*RuleFile, []position, error) {
	c := &fileChecker{path: path, parser: NewMetricsQLParser()}
	var doc yaml.Node
	if err := yaml.Unmarshal(content, &doc); err != nil {
		c.yamlError(err)
		return nil, nil, c.errs
	}
	positions := c.checkDocument(&doc)
	if len(c.errs) > 0 {
		return nil, nil, c.errs
	}
	groups, errs := rulefmt.Parse(content, false, model.UTF8Validation, c.parser, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, err := range errs {
		// rulefmt's own messages start with line:col where it knows them.
		c.errs = append(c.errs, &RuleError{File: path, Msg: err.Error()})
	}
	if len(c.errs) > 0 {
		return nil, nil, c.errs
	}
	f := &RuleFile{Path: path}
	if groups != nil {
		f.Groups = groups.Groups
	}
	if len(f.Groups) != len(positions) {
		// Cannot happen: both decoded the same document.
		return nil, nil, RuleErrors{{File: path, Msg: "internal error: the file's groups were counted differently by two decoders; please report it"}}
	}
	return f, positions, nil
}

// fileChecker collects the problems of one file.
type fileChecker struct {
	path   string
	parser parser.Parser
	errs   RuleErrors
}

// ruleCtx is where in the file a problem is.
type ruleCtx struct {
	group    string
	rule     int
	kind     string
	name     string
	fieldPfx string
}

func (c *fileChecker) add(at *yaml.Node, rc ruleCtx, field, msg string) {
	e := &RuleError{File: c.path, Group: rc.group, Rule: rc.rule, RuleKind: rc.kind, RuleName: rc.name, Field: rc.fieldPfx + field, Msg: msg}
	if at != nil {
		e.Line, e.Column = at.Line, at.Column
	}
	c.errs = append(c.errs, e)
}

var yamlLineRE = regexp.MustCompile(`line (\d+)(?:, column (\d+))?: (.*)`)

// yamlError turns the YAML decoder's messages ("yaml: line 3: …") into
// located RuleErrors.
func (c *fileChecker) yamlError(err error) {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	for _, m := range msgs {
		e := &RuleError{File: c.path, Msg: strings.TrimPrefix(m, "yaml: ") + " — the file is not valid YAML; check the indentation (spaces, not tabs) and quote values containing ': ' or '#'"}
		if sm := yamlLineRE.FindStringSubmatch(m); sm != nil {
			e.Line, _ = strconv.Atoi(sm[1])
			if sm[2] != "" {
				e.Column, _ = strconv.Atoi(sm[2])
			}
			e.Msg = sm[3] + " — the file is not valid YAML; check the indentation (spaces, not tabs) and quote values containing ': ' or '#'"
		}
		c.errs = append(c.errs, e)
	}
}

func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 16; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("the scalar %q", n.Value)
	}
	return "something else"
}

// pairs returns a mapping's keys and values, reporting keys that are not
// strings, repeated or, when known is not nil, not in known.
func (c *fileChecker) pairs(m *yaml.Node, rc ruleCtx, what string, known []string) map[string][2]*yaml.Node {
	out := map[string][2]*yaml.Node{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := resolve(m.Content[i]), resolve(m.Content[i+1])
		if k == nil || k.Kind != yaml.ScalarNode {
			c.add(m.Content[i], rc, "", fmt.Sprintf("%s key is %s — keys are plain words such as name or expr", what, kindName(m.Content[i])))
			continue
		}
		if known != nil && !slices.Contains(known, k.Value) {
			c.add(k, rc, k.Value, fmt.Sprintf("unknown field in %s — the fields are %s", what, strings.Join(known, ", ")))
			continue
		}
		if prev, ok := out[k.Value]; ok {
			c.add(k, rc, k.Value, fmt.Sprintf("set twice (first at line %d) — keep one", prev[0].Line))
			continue
		}
		out[k.Value] = [2]*yaml.Node{k, v}
	}
	return out
}

var (
	groupFields = []string{"name", "interval", "query_offset", "limit", "labels", "rules"}
	ruleFields  = []string{"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}
	alertNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

func (c *fileChecker) checkDocument(doc *yaml.Node) []position {
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil // an empty file holds no groups
	}
	top := resolve(doc.Content[0])
	if isNull(top) {
		return nil
	}
	if top.Kind != yaml.MappingNode {
		c.add(top, ruleCtx{}, "", fmt.Sprintf("a rule file is a mapping with the key groups, not %s — start the file with 'groups:'", kindName(top)))
		return nil
	}
	fields := c.pairs(top, ruleCtx{}, "the file", []string{"groups"})
	kv, ok := fields["groups"]
	if !ok || isNull(kv[1]) {
		return nil
	}
	groups := kv[1]
	if groups.Kind != yaml.SequenceNode {
		c.add(groups, ruleCtx{}, "groups", fmt.Sprintf("is %s — write it as a list, one '- name: …' a group", kindName(groups)))
		return nil
	}
	var positions []position
	names := map[string]int{}
	for _, gn := range groups.Content {
		gn = resolve(gn)
		if gn.Kind != yaml.MappingNode {
			c.add(gn, ruleCtx{}, "groups", fmt.Sprintf("a group is %s — write each group as a mapping with name, interval and rules", kindName(gn)))
			continue
		}
		positions = append(positions, c.checkGroup(gn, names))
	}
	return positions
}

func (c *fileChecker) checkGroup(gn *yaml.Node, names map[string]int) position {
	pos := position{gn.Line, gn.Column}
	// Read the name first so that every problem names its group.
	var name string
	for i := 0; i+1 < len(gn.Content); i += 2 {
		if k := resolve(gn.Content[i]); k != nil && k.Value == "name" {
			if v := resolve(gn.Content[i+1]); v != nil && v.Kind == yaml.ScalarNode {
				name = v.Value
			}
		}
	}
	rc := ruleCtx{group: name}
	fields := c.pairs(gn, rc, "a group", groupFields)
	if kv, ok := fields["name"]; !ok || kv[1].Kind != yaml.ScalarNode || strings.TrimSpace(kv[1].Value) == "" {
		at := gn
		if ok {
			at = kv[1]
		}
		c.add(at, rc, "name", "every group needs a non-empty name — add one, e.g. 'name: billing'")
	} else {
		pos = position{kv[1].Line, kv[1].Column}
		if line, dup := names[name]; dup {
			c.add(kv[1], rc, "name", fmt.Sprintf("a group with this name is already defined at line %d — group names must be unique; rename one", line))
		}
		names[name] = kv[1].Line
	}
	if kv, ok := fields["interval"]; ok {
		if d, ok := c.duration(kv[1], rc, "interval"); ok && d == 0 {
			c.add(kv[1], rc, "interval", "must be more than 0 — leave it out to use the evaluator's interval (1s by default)")
		}
	}
	if kv, ok := fields["query_offset"]; ok {
		c.duration(kv[1], rc, "query_offset")
	}
	if kv, ok := fields["limit"]; ok {
		if n, err := strconv.Atoi(kv[1].Value); kv[1].Kind != yaml.ScalarNode || err != nil || n < 0 {
			c.add(kv[1], rc, "limit", "is not a whole number of 0 or more — write the most series a rule may produce, or 0 for no limit")
		}
	}
	if kv, ok := fields["labels"]; ok {
		c.labels(kv[1], rc, "labels", false)
	}
	kv, ok := fields["rules"]
	if !ok || isNull(kv[1]) {
		return pos
	}
	if kv[1].Kind != yaml.SequenceNode {
		c.add(kv[1], rc, "rules", fmt.Sprintf("is %s — write it as a list of rules, each '- alert: …' or '- record: …'", kindName(kv[1])))
		return pos
	}
	for i, rn := range kv[1].Content {
		c.checkRule(resolve(rn), ruleCtx{group: name, rule: i + 1})
	}
	return pos
}

func (c *fileChecker) checkRule(rn *yaml.Node, rc ruleCtx) {
	if rn.Kind != yaml.MappingNode {
		c.add(rn, rc, "", fmt.Sprintf("a rule is %s — write each rule as a mapping with alert or record, and expr", kindName(rn)))
		return
	}
	for i := 0; i+1 < len(rn.Content); i += 2 {
		k, v := resolve(rn.Content[i]), resolve(rn.Content[i+1])
		if k != nil && v != nil && (k.Value == "alert" || k.Value == "record") && v.Kind == yaml.ScalarNode && rc.name == "" {
			rc.kind, rc.name = k.Value, v.Value
		}
	}
	fields := c.pairs(rn, rc, "a rule", ruleFields)
	alert, isAlert := fields["alert"]
	record, isRecord := fields["record"]
	switch {
	case isAlert && isRecord:
		c.add(record[0], rc, "record", "a rule is either an alert or a recording rule — split it into two rules")
	case !isAlert && !isRecord:
		c.add(rn, rc, "alert", "the rule has neither alert nor record — add 'alert: Name' (an alerting rule) or 'record: metric:name' (a recording rule)")
	case isAlert:
		if alert[1].Kind != yaml.ScalarNode || !alertNameRE.MatchString(alert[1].Value) {
			c.add(alert[1], rc, "alert", fmt.Sprintf("%q is not a valid alert name — use letters, digits and underscores, not starting with a digit, e.g. BillingErrorRatioHigh", alert[1].Value))
		}
	case isRecord:
		if record[1].Kind != yaml.ScalarNode || !model.IsValidLegacyMetricName(record[1].Value) {
			c.add(record[1], rc, "record", fmt.Sprintf("%q is not a valid metric name — use letters, digits, '_' and ':', e.g. service:billing_transactions:rate5s; put selectors in expr", record[1].Value))
		}
	}
	if kv, ok := fields["expr"]; !ok || isNull(kv[1]) || (kv[1].Kind == yaml.ScalarNode && strings.TrimSpace(kv[1].Value) == "") {
		at := rn
		if ok {
			at = kv[1]
		}
		c.add(at, rc, "expr", "every rule needs an expression — add one, e.g. 'expr: sum(rate(http_requests_total[1m])) > 10'")
	} else if kv[1].Kind != yaml.ScalarNode {
		c.add(kv[1], rc, "expr", fmt.Sprintf("is %s — write the MetricsQL expression as a string (use | for several lines)", kindName(kv[1])))
	} else if _, err := c.parser.ParseExpr(kv[1].Value); err != nil {
		c.add(kv[1], rc, "expr", err.Error()+" — fix the expression (MetricsQL: a superset of PromQL); try it with 'opspilot query'")
	}
	for _, f := range []string{"for", "keep_firing_for"} {
		kv, ok := fields[f]
		if !ok {
			continue
		}
		d, ok := c.duration(kv[1], rc, f)
		if ok && d != 0 && isRecord && !isAlert {
			c.add(kv[0], rc, f, "only alerting rules wait or keep firing — remove it from the recording rule")
		}
	}
	if kv, ok := fields["labels"]; ok {
		c.labels(kv[1], rc, "labels", isAlert)
	}
	if kv, ok := fields["annotations"]; ok {
		if isRecord && !isAlert {
			c.add(kv[0], rc, "annotations", "recording rules have no annotations — remove them, or make the rule an alert")
		} else {
			c.labels(kv[1], rc, "annotations", isAlert)
		}
	}
}

// duration checks a Prometheus duration (30s, 1m30s, 0) that must not be
// negative.
func (c *fileChecker) duration(n *yaml.Node, rc ruleCtx, field string) (time.Duration, bool) {
	if n.Kind != yaml.ScalarNode {
		c.add(n, rc, field, fmt.Sprintf("is %s — write a duration such as 30s or 5m", kindName(n)))
		return 0, false
	}
	if strings.HasPrefix(strings.TrimSpace(n.Value), "-") {
		c.add(n, rc, field, fmt.Sprintf("%q is negative — use a duration of 0s or more", n.Value))
		return 0, false
	}
	d, err := model.ParseDuration(n.Value)
	if err != nil {
		c.add(n, rc, field, fmt.Sprintf("%q is not a duration — write a number with a unit: ms, s, m, h, d, w, y (30s, 1m30s, 0s)", n.Value))
		return 0, false
	}
	return time.Duration(d), true
}

// labels checks a map of label or annotation names to values; in alerting
// rules the values are templates and must parse.
func (c *fileChecker) labels(n *yaml.Node, rc ruleCtx, field string, templates bool) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		c.add(n, rc, field, fmt.Sprintf("is %s — write a mapping of names to values (severity: critical)", kindName(n)))
		return
	}
	c.pairs(n, rc, field, nil) // reports keys that are not words or repeat
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k == nil || v == nil || k.Kind != yaml.ScalarNode {
			continue
		}
		f := field + "." + k.Value
		if !model.UTF8Validation.IsValidLabelName(k.Value) || k.Value == model.MetricNameLabel {
			c.add(k, rc, f, "not a valid name — use letters, digits and underscores")
			continue
		}
		if v.Kind != yaml.ScalarNode {
			c.add(v, rc, f, fmt.Sprintf("is %s — write a string; quote it if it looks like a number or contains ': '", kindName(v)))
			continue
		}
		if templates {
			if err := parseTemplate(rc.name, v.Value); err != nil {
				c.add(v, rc, f, "template: "+templateMsg(err)+" — see https://prometheus.io/docs/prometheus/latest/configuration/template_reference/ ($value, $labels.name, humanize, humanizePercentage…)")
			}
		}
	}
}

var templateDefs = strings.Join([]string{
	"{{$labels := .Labels}}",
	"{{$externalLabels := .ExternalLabels}}",
	"{{$externalURL := .ExternalURL}}",
	"{{$value := .Value}}",
}, "")

// parseTemplate parses text as Prometheus does when it expands an alert's
// labels and annotations.
func parseTemplate(alert, text string) error {
	data := template.AlertTemplateData(map[string]string{}, map[string]string{}, "", promql.Sample{})
	return template.NewTemplateExpander(context.Background(), templateDefs+text, "__alert_"+alert, data,
		model.Time(time.Now().UnixMilli()), nil, nil, nil).ParseTest()
}

var templatePrefixRE = regexp.MustCompile(`^template: __alert_[^:]*:\d+:\s*`)

func templateMsg(err error) string {
	return templatePrefixRE.ReplaceAllString(err.Error(), "")
}
