package config

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Problem is a validation finding reported by a component's Validate method.
// Field is a dotted path relative to the value Validate was called on, using
// YAML key names, with list indexes in brackets: "remote.url",
// "auth.tokens[1].role". Empty Field means the value itself.
type Problem struct {
	Field, Msg string
}

// Validator is implemented by config structs that check their own values
// after decoding.
type Validator interface {
	Validate() []Problem
}

// Prefix returns problems with prefix+"." prepended to each Field (helper for
// composing sections). A Field that is empty becomes prefix itself, and a
// Field that starts with a list index ("[2].name") is appended without a dot.
// ps is not modified.
func Prefix(prefix string, ps []Problem) []Problem {
	if len(ps) == 0 {
		return nil
	}
	out := make([]Problem, len(ps))
	for i, p := range ps {
		switch {
		case prefix == "":
		case p.Field == "":
			p.Field = prefix
		case p.Field[0] == '[':
			p.Field = prefix + p.Field
		default:
			p.Field = prefix + "." + p.Field
		}
		out[i] = p
	}
	return out
}

// Error is one problem located in a file. Line and Column are 1-based; zero
// means unknown (for example a validation problem about a field whose
// default applies and none of whose parents appear in the file).
type Error struct {
	File         string
	Line, Column int
	Field, Msg   string
}

// Error formats e as "file:line:col: field: msg", leaving out the parts
// that are unknown or empty.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
		if e.Column > 0 {
			b.WriteString(":" + strconv.Itoa(e.Column))
		}
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one file, sorted by line then column.
type Errors []*Error

// Error joins the messages of all errors, one per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As reach the individual *Error values.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// Load reads path and calls Parse with name = path. A file that cannot be
// read is reported with the error from os.ReadFile, so callers can test it
// with errors.Is(err, fs.ErrNotExist).
func Load(path string, dst any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return Parse(path, data, dst)
}

// Parse decodes data (named name in messages) into dst, which must be a
// non-nil pointer to a struct that already holds defaults: keys absent from
// the document, and keys whose value is null, keep their defaults.
//
// It returns nil or an Errors value with all problems found. If decoding
// succeeded and dst implements Validator, the problems returned by Validate
// are reported too, located at the fields they name. On error dst may have
// been partly updated.
func Parse(name string, data []byte, dst any) error {
	rv := reflect.ValueOf(dst)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		return Errors{{File: name, Msg: fmt.Sprintf("config: Parse needs a non-nil pointer to a struct, got %T", dst)}}
	}

	d := newDecoder(name, len(data))
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	switch err := decodeDocument(dec, &doc); {
	case err == io.EOF:
		// Empty or comment-only file: all defaults apply.
		return validate(d, dst)
	case err != nil:
		return Errors{syntaxError(name, data, err)}
	}

	// A second document is almost always a concatenation mistake, and
	// silently ignoring it would drop configuration. Empty documents left
	// by a trailing "---" are harmless and allowed.
	for {
		var next yaml.Node
		err := decodeDocument(dec, &next)
		if err == io.EOF {
			break
		}
		if err != nil {
			d.errs = append(d.errs, syntaxError(name, data, err))
			break
		}
		if !emptyDocument(&next) {
			d.add(next.Line, 0, "", `only one YAML document is allowed; remove the "---" line and the document after it, or move it to a file of its own`)
			break
		}
	}

	if len(doc.Content) == 1 {
		d.value(doc.Content[0], rv.Elem(), "", 0)
	}
	if len(d.errs) > 0 {
		return d.sorted()
	}
	return validate(d, dst)
}

// decodeDocument reads the next document. yaml.v3 only panics on its own
// bugs, but a config loader should report those as errors rather than
// crash the program.
func decodeDocument(dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: cannot parse the file: %v", r)
		}
	}()
	return dec.Decode(n)
}

// emptyDocument reports whether doc has no content at all, as after a
// trailing "---". An explicit null ("~") is content.
func emptyDocument(doc *yaml.Node) bool {
	if len(doc.Content) == 0 {
		return true
	}
	n := doc.Content[0]
	return n.Kind == yaml.ScalarNode && n.Value == "" && n.ShortTag() == "!!null" && n.Anchor == "" && n.Style == 0
}

// validate runs dst's Validate method, if any, and locates each problem.
func validate(d *decoder, dst any) error {
	v, ok := dst.(Validator)
	if !ok {
		return nil
	}
	for _, p := range v.Validate() {
		e := &Error{File: d.file, Field: p.Field, Msg: p.Msg}
		if pos, ok := d.where[p.Field]; ok {
			e.Line, e.Column = pos.line, pos.col
		} else if p.Field != "" {
			// The field is not in the file, so point at the closest part of
			// the file that encloses it; that is where it would be added.
			segs := splitPath(p.Field)
			for i := len(segs) - 1; i > 0; i-- {
				if pos, ok := d.where[strings.Join(segs[:i], "")]; ok {
					e.Line = pos.line
					break
				}
			}
			e.Msg += " (not set in the file; the default applies)"
		}
		d.errs = append(d.errs, e)
	}
	if len(d.errs) == 0 {
		return nil
	}
	return d.sorted()
}

// sorted returns the collected errors ordered by position. The sort is
// stable so that errors on the same spot stay in the order they were found.
func (d *decoder) sorted() Errors {
	es := d.errs
	sort.SliceStable(es, func(i, j int) bool {
		if es[i].Line != es[j].Line {
			return es[i].Line < es[j].Line
		}
		return es[i].Column < es[j].Column
	})
	return es
}
