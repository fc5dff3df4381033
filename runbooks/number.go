package runbooks

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Number is a number in a step, written either as a YAML number
// (replicas: 4) or as a template that renders to one
// (replicas: '{{ .params.replicas }}'), so that a chat command's k=v or
// an earlier step's output can set it. A literal is checked when the
// runbook is applied, a template when the step runs.
type Number struct {
	// Text is the number or the template as written.
	Text string
}

// Num is a literal Number.
func Num[T int | float64](v T) *Number {
	return &Number{Text: strconv.FormatFloat(float64(v), 'g', -1, 64)}
}

// IsTemplate reports whether the value is a template.
func (n Number) IsTemplate() bool { return strings.Contains(n.Text, "{{") }

const numberHint = "want a number or a template that renders to one, e.g. 4 or '{{ .params.replicas }}'"

// UnmarshalYAML takes a YAML number, or a string holding a number or a
// template.
func (n *Number) UnmarshalYAML(v *yaml.Node) error {
	if v.Kind != yaml.ScalarNode {
		return errors.New(numberHint)
	}
	switch v.ShortTag() {
	case "!!int", "!!float":
	case "!!str":
		if !strings.Contains(v.Value, "{{") {
			if _, err := strconv.ParseFloat(strings.TrimSpace(v.Value), 64); err != nil {
				return fmt.Errorf("%q: %s", clip(v.Value), numberHint)
			}
		}
	default:
		return fmt.Errorf("%s value %q: %s", strings.TrimPrefix(v.ShortTag(), "!!"), clip(v.Value), numberHint)
	}
	n.Text = strings.TrimSpace(v.Value)
	return nil
}

// MarshalJSON writes a literal as a JSON number and a template as a string.
func (n Number) MarshalJSON() ([]byte, error) {
	if _, err := strconv.ParseFloat(n.Text, 64); err == nil && !n.IsTemplate() && json.Valid([]byte(n.Text)) {
		return []byte(n.Text), nil
	}
	return json.Marshal(n.Text)
}

// UnmarshalJSON takes a JSON number or string (runbooks stored before
// templates were allowed hold numbers).
func (n *Number) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		n.Text = s
		return nil
	}
	var f json.Number
	if err := json.Unmarshal(b, &f); err != nil {
		return errors.New(numberHint)
	}
	n.Text = f.String()
	return nil
}

// value renders the number (a template with render) and parses it.
func (n Number) value(render func(string) (string, error)) (float64, error) {
	text := n.Text
	if n.IsTemplate() {
		var err error
		if text, err = render(text); err != nil {
			return 0, err
		}
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(text), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%q is not a number", clip(text))
	}
	return f, nil
}

// integer is value for counts: it must be a whole number within int32.
func (n Number) integer(render func(string) (string, error)) (int, error) {
	f, err := n.value(render)
	if err != nil {
		return 0, err
	}
	if f != math.Trunc(f) || math.Abs(f) > math.MaxInt32 {
		return 0, fmt.Errorf("%s is not a whole number of replicas", strconv.FormatFloat(f, 'g', -1, 64))
	}
	return int(f), nil
}

// literal returns a non-template value for Validate; ok is false for
// templates.
func (n *Number) literal() (f float64, ok bool, err error) {
	if n == nil || n.IsTemplate() {
		return 0, false, nil
	}
	f, err = n.value(nil)
	return f, err == nil, err
}
