package alerting

import (
	"errors"
	"fmt"

	"github.com/VictoriaMetrics/metricsql"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/parser/posrange"
	"github.com/prometheus/prometheus/util/features"
)

// MetricsQLParser is a parser.Parser for Prometheus' rules package whose
// expressions are MetricsQL, the superset of PromQL VictoriaMetrics
// evaluates (rate(x) without a window, WITH templates, range_median…).
// ParseExpr validates with VictoriaMetrics' own parser and returns a
// *MetricsQLExpr that carries the text unchanged, because the rules package
// only sends expr.String() to the query function. The other methods (label
// sets, selectors) are plain PromQL and go to Prometheus' parser.
type MetricsQLParser struct {
	prom parser.Parser
}

// NewMetricsQLParser returns the parser the rule files and the evaluator use.
func NewMetricsQLParser() *MetricsQLParser {
	return &MetricsQLParser{prom: parser.NewParser(parser.Options{})}
}

var _ parser.Parser = (*MetricsQLParser)(nil)

// ParseExpr checks input is valid MetricsQL and returns it as a
// *MetricsQLExpr.
func (p *MetricsQLParser) ParseExpr(input string) (parser.Expr, error) {
	if input == "" {
		return nil, errors.New("empty expression")
	}
	parsed, err := metricsql.Parse(input)
	if err != nil {
		return nil, fmt.Errorf("MetricsQL: %w", err)
	}
	return &MetricsQLExpr{Text: input, Parsed: parsed}, nil
}

// ParseMetric parses a label set such as {a="b"} (PromQL syntax).
func (p *MetricsQLParser) ParseMetric(input string) (labels.Labels, error) {
	return p.prom.ParseMetric(input)
}

// ParseMetricSelector parses a series selector (PromQL syntax).
func (p *MetricsQLParser) ParseMetricSelector(input string) ([]*labels.Matcher, error) {
	return p.prom.ParseMetricSelector(input)
}

// ParseMetricSelectors parses series selectors (PromQL syntax).
func (p *MetricsQLParser) ParseMetricSelectors(matchers []string) ([][]*labels.Matcher, error) {
	return p.prom.ParseMetricSelectors(matchers)
}

// ParseSeriesDesc parses a promtool-style series description.
func (p *MetricsQLParser) ParseSeriesDesc(input string) (labels.Labels, []parser.SequenceValue, error) {
	return p.prom.ParseSeriesDesc(input)
}

// RegisterFeatures registers Prometheus' parser features.
func (p *MetricsQLParser) RegisterFeatures(r features.Collector) { p.prom.RegisterFeatures(r) }

// MetricsQLExpr is a rule expression validated as MetricsQL. It is a leaf
// for Prometheus: its String is the original text, which the rules package
// hands to the evaluator's query function. Prometheus' AST walkers
// (parser.Inspect, parser.Children) panic on node types they do not know,
// so the evaluator switches off the one rules-package feature that walks
// expressions (rule dependency analysis, see noRuleDependencies).
type MetricsQLExpr struct {
	// Text is the expression exactly as written in the rule file.
	Text string
	// Parsed is VictoriaMetrics' syntax tree of Text.
	Parsed metricsql.Expr
}

var _ parser.Expr = (*MetricsQLExpr)(nil)

// String returns the expression as written.
func (e *MetricsQLExpr) String() string { return e.Text }

// Pretty returns the expression as written: MetricsQL has its own
// prettifier and the rules package never prints it.
func (e *MetricsQLExpr) Pretty(int) string { return e.Text }

// PositionRange covers the whole text.
func (e *MetricsQLExpr) PositionRange() posrange.PositionRange {
	return posrange.PositionRange{Start: 0, End: posrange.Pos(len(e.Text))}
}

// Type is vector: a rule's expression must yield an instant vector or a
// scalar, which the query function turns into a vector.
func (e *MetricsQLExpr) Type() parser.ValueType { return parser.ValueTypeVector }

// PromQLExpr marks MetricsQLExpr as a parser.Expr.
func (e *MetricsQLExpr) PromQLExpr() {}
