package config

import (
	"encoding"
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// maxDepth bounds how deeply Parse follows nested mappings and lists. Real
// config files are a handful of levels deep; the bound only exists so that
// recursive config types or crafted input cannot exhaust the stack.
const maxDepth = 100

// position is a 1-based line and column in the file.
type position struct{ line, col int }

// decoder walks one document alongside the destination value.
type decoder struct {
	file string
	errs Errors
	// reported suppresses repeats of the same error, which happen when an
	// anchored value is used through several aliases.
	reported map[position]map[string]bool
	// where maps every field path present in the file to its position, so
	// that validation problems can be located.
	where map[string]position
	// expanding maps the alias nodes being walked to the field path where
	// they were first used, to detect an anchor that contains itself.
	expanding map[*yaml.Node]string
	// steps counts walked values; aliases can make a small file expand to
	// an enormous tree, so the walk stops past maxSteps.
	steps, maxSteps int
	// stopped is set after a problem that makes walking further pointless.
	stopped bool
}

func newDecoder(file string, size int) *decoder {
	return &decoder{
		file:      file,
		reported:  make(map[position]map[string]bool),
		where:     make(map[string]position),
		expanding: make(map[*yaml.Node]string),
		// Without aliases every value needs at least one byte of input,
		// so this is far above any legitimate document.
		maxSteps: 10*size + 10000,
	}
}

// add records an error unless the same message was already reported at
// the same position.
func (d *decoder) add(line, col int, field, msg string) {
	pos := position{line, col}
	if d.reported[pos] == nil {
		d.reported[pos] = make(map[string]bool)
	}
	if d.reported[pos][msg] {
		return
	}
	d.reported[pos][msg] = true
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Column: col, Field: field, Msg: msg})
}

func (d *decoder) addAt(n *yaml.Node, field, msg string) {
	d.add(n.Line, n.Column, field, msg)
}

// stop reports a problem after which the rest of the document is not walked.
func (d *decoder) stop(n *yaml.Node, field, msg string) {
	d.addAt(n, field, msg)
	d.stopped = true
}

// record remembers where path is in the file. Scalars are located at the
// value; mappings and lists at their key, because the value of a block
// mapping starts on the line after the key.
func (d *decoder) record(path string, key, val *yaml.Node) {
	if _, ok := d.where[path]; ok {
		return
	}
	n := val
	if key != nil && resolve(val).Kind != yaml.ScalarNode {
		n = key
	}
	d.where[path] = position{n.Line, n.Column}
}

// value decodes n into v, which must be addressable.
func (d *decoder) value(n *yaml.Node, v reflect.Value, path string, depth int) {
	if d.stopped {
		return
	}
	d.steps++
	if d.steps > d.maxSteps {
		d.stop(n, path, "the document expands to too many values through aliases (*name); use fewer aliases")
		return
	}
	if depth > maxDepth {
		d.stop(n, path, fmt.Sprintf("the document is nested more than %d levels deep", maxDepth))
		return
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			d.addAt(n, path, fmt.Sprintf("alias *%s does not refer to an anchor", clip(n.Value)))
			return
		}
		if first, ok := d.expanding[n]; ok {
			d.addAt(n, first, fmt.Sprintf("alias *%s is used inside the value it refers to; an anchored value cannot contain itself", clip(n.Value)))
			return
		}
		d.expanding[n] = path
		defer delete(d.expanding, n)
		d.value(n.Alias, v, path, depth)
		return
	}
	if isNull(n) {
		return // an empty or null value keeps the default
	}
	if !v.CanSet() {
		d.addAt(n, path, fmt.Sprintf("cannot set a value of Go type %s; this is a bug in the program's config types", v.Type()))
		return
	}
	// Pointers are allocated only now that the file sets the value, so an
	// absent optional section stays nil.
	for i := 0; v.Kind() == reflect.Pointer; i++ {
		if i > maxDepth {
			d.stop(n, path, fmt.Sprintf("cannot decode into Go type %s; this is a bug in the program's config types", v.Type()))
			return
		}
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		v = v.Elem()
	}

	t := v.Type()
	switch {
	case decodesItself(t):
		d.leaf(n, v, path)
	case t.Kind() == reflect.Struct:
		d.structure(n, v, path, depth)
	case t.Kind() == reflect.Map && t.Key().Kind() == reflect.String && !decodesItself(t.Key()):
		d.mapping(n, v, path, depth)
	case t.Kind() == reflect.Slice && t.Elem().Kind() != reflect.Uint8: // []byte takes !!binary
		d.sequence(n, v, path, depth)
	case t.Kind() == reflect.Array:
		d.array(n, v, path, depth)
	default:
		d.leaf(n, v, path)
	}
}

func (d *decoder) structure(n *yaml.Node, v reflect.Value, path string, depth int) {
	sf, err := fieldsOf(v.Type())
	if err != nil {
		d.addAt(n, path, fmt.Sprintf("cannot decode into Go type %s: %v; this is a bug in the program's config types", v.Type(), err))
		return
	}
	if sf.selfDecoding {
		d.leaf(n, v, path)
		return
	}
	if n.Kind != yaml.MappingNode {
		want := "a mapping"
		if len(sf.names) > 0 {
			want += " (fields: " + strings.Join(sf.names, ", ") + ")"
		}
		if path == "" {
			d.addAt(n, path, fmt.Sprintf("the file must contain %s, got %s", want, describe(n)))
			return
		}
		d.addAt(n, path, fmt.Sprintf("expected %s, got %s", want, describe(n)))
		return
	}
	for _, e := range d.entries(n, path, depth) {
		fpath := joinKey(path, e.name)
		f, ok := sf.byName[e.name]
		if !ok && sf.inlineMap >= 0 {
			m := v.Field(sf.inlineMap)
			if m.IsNil() {
				m.Set(reflect.MakeMap(m.Type()))
			}
			ev := reflect.New(m.Type().Elem()).Elem()
			d.record(fpath, e.key, e.value)
			d.value(e.value, ev, fpath, depth+1)
			m.SetMapIndex(reflect.ValueOf(e.name), ev)
			continue
		}
		if !ok {
			d.addAt(e.key, fpath, unknownField(e.name, sf.names))
			continue
		}
		d.record(fpath, e.key, e.value)
		d.value(e.value, fieldByIndex(v, f.index), fpath, depth+1)
	}
}

func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string, depth int) {
	if n.Kind != yaml.MappingNode {
		d.addAt(n, path, fmt.Sprintf("expected a mapping (key: value lines), got %s", describe(n)))
		return
	}
	t := v.Type()
	if v.IsNil() {
		v.Set(reflect.MakeMap(t))
	}
	for _, e := range d.entries(n, path, depth) {
		epath := joinKey(path, e.name)
		k := reflect.ValueOf(e.name).Convert(t.Key())
		ev := reflect.New(t.Elem()).Elem()
		d.record(epath, e.key, e.value)
		if isNull(resolve(e.value)) {
			// Like yaml.v3: a null entry exists with the zero value, but
			// does not clear a default entry.
			if !v.MapIndex(k).IsValid() {
				v.SetMapIndex(k, ev)
			}
			continue
		}
		d.value(e.value, ev, epath, depth+1)
		v.SetMapIndex(k, ev)
	}
}

func (d *decoder) sequence(n *yaml.Node, v reflect.Value, path string, depth int) {
	if n.Kind != yaml.SequenceNode {
		d.addAt(n, path, listMismatch(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		ipath := path + "[" + strconv.Itoa(i) + "]"
		d.record(ipath, nil, item)
		d.value(item, s.Index(i), ipath, depth+1)
	}
	v.Set(s)
}

func (d *decoder) array(n *yaml.Node, v reflect.Value, path string, depth int) {
	if n.Kind != yaml.SequenceNode {
		d.addAt(n, path, listMismatch(n))
		return
	}
	if len(n.Content) != v.Len() {
		d.addAt(n, path, fmt.Sprintf("expected a list of exactly %d items, got %d", v.Len(), len(n.Content)))
		return
	}
	v.Set(reflect.Zero(v.Type()))
	for i, item := range n.Content {
		ipath := path + "[" + strconv.Itoa(i) + "]"
		d.record(ipath, nil, item)
		d.value(item, v.Index(i), ipath, depth+1)
	}
}

func listMismatch(n *yaml.Node) string {
	msg := "expected a list, got " + describe(n)
	if n.Kind == yaml.ScalarNode {
		return msg + `; put each item on its own line starting with "- ", or write [a, b]`
	}
	return msg + `; start each item with "- "`
}

// entry is one key of a mapping, after merge keys have been applied.
type entry struct {
	key, value *yaml.Node
	name       string
}

// entries lists the keys of mapping n in order, reporting duplicates and
// keys that are not scalars. Keys brought in by merge keys ("<<: *base")
// come after the mapping's own keys and never override them.
func (d *decoder) entries(n *yaml.Node, path string, depth int) []entry {
	var own []entry
	var merges []*yaml.Node
	first := make(map[string]*yaml.Node)
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		k := resolve(key)
		if k.Kind != yaml.ScalarNode {
			d.addAt(key, path, fmt.Sprintf("a key must be a plain name, got %s", describe(k)))
			continue
		}
		if prev, dup := first[k.Value]; dup {
			d.addAt(key, joinKey(path, k.Value), fmt.Sprintf("%q is already set on line %d; remove one of them", clip(k.Value), prev.Line))
			continue
		}
		first[k.Value] = key
		if k.ShortTag() == "!!merge" {
			merges = append(merges, val)
			continue
		}
		own = append(own, entry{key, val, k.Value})
	}
	if len(merges) == 0 {
		return own
	}
	have := make(map[string]bool, len(own))
	for _, e := range own {
		have[e.name] = true
	}
	for _, m := range merges {
		own = d.merge(own, have, m, path, depth+1)
	}
	return own
}

// merge appends the keys of the merge-key value m that are not in have.
func (d *decoder) merge(into []entry, have map[string]bool, m *yaml.Node, path string, depth int) []entry {
	if d.stopped {
		return into
	}
	if depth > maxDepth {
		d.stop(m, path, fmt.Sprintf("merge keys (<<) are nested more than %d levels deep", maxDepth))
		return into
	}
	switch m.Kind {
	case yaml.AliasNode:
		if _, ok := d.expanding[m]; ok || m.Alias == nil {
			d.addAt(m, path, fmt.Sprintf("alias *%s cannot be merged here; an anchored value cannot merge itself", clip(m.Value)))
			return into
		}
		d.expanding[m] = path
		defer delete(d.expanding, m)
		return d.merge(into, have, m.Alias, path, depth+1)
	case yaml.MappingNode:
		for _, e := range d.entries(m, path, depth) {
			d.steps++
			if d.steps > d.maxSteps {
				d.stop(m, path, "the document expands to too many values through aliases (*name); use fewer aliases")
				return into
			}
			if !have[e.name] {
				have[e.name] = true
				into = append(into, e)
			}
		}
		return into
	case yaml.SequenceNode:
		// Earlier mappings in the list win, as in YAML's merge key spec.
		for _, item := range m.Content {
			if resolve(item).Kind != yaml.MappingNode {
				d.addAt(item, path, fmt.Sprintf("a merge key (<<) list may only hold mappings, got %s", describe(resolve(item))))
				continue
			}
			into = d.merge(into, have, item, path, depth+1)
		}
		return into
	}
	d.addAt(m, path, fmt.Sprintf("a merge key (<<) needs a mapping or a list of mappings, e.g. <<: *defaults; got %s", describe(m)))
	return into
}

// leaf lets yaml.v3 decode n into v and turns a failure into a readable
// error at n.
func (d *decoder) leaf(n *yaml.Node, v reflect.Value, path string) {
	t := v.Type()
	r := resolve(n)
	if r.Kind != yaml.ScalarNode && !d.charge(n, make(map[*yaml.Node]bool), 0) {
		d.stop(n, path, "the document expands to too many values through aliases (*name); use fewer aliases")
		return
	}
	if isInteger(t) && !decodesItself(t) && r.Kind == yaml.ScalarNode && r.ShortTag() == "!!float" {
		// yaml.v3 silently truncates 1.5 to 1 for integer fields and
		// wraps out-of-range floats; both are mistakes in a config file.
		var f float64
		if err := decodeNode(r, &f); err != nil || f != math.Trunc(f) || !fitsInteger(f, t) {
			d.addAt(n, path, mismatch(r, t))
			return
		}
	}
	err := decodeNode(n, v.Addr().Interface())
	if err == nil {
		return
	}

	var te *yaml.TypeError
	if errors.As(err, &te) {
		if isBasic(t) && !decodesItself(t) {
			d.addAt(n, path, mismatch(r, t))
			return
		}
		for _, s := range te.Errors {
			line, msg := splitLine(s)
			d.addDecodeError(n, line, path, rewriteTypeError(msg))
		}
		return
	}
	line, msg := splitLine(strings.TrimPrefix(err.Error(), "yaml: "))
	d.addDecodeError(n, line, path, msg)
}

// charge counts the values yaml.v3 will decode for n, aliases expanded,
// against the step budget, and reports whether the budget still holds.
// yaml.v3 limits aliasing within one Decode call, but a list of many aliases
// to one big value would call it many times.
func (d *decoder) charge(n *yaml.Node, active map[*yaml.Node]bool, depth int) bool {
	d.steps++
	// yaml.v3 refuses nesting deeper than 10000, so anything deeper comes
	// from chains of aliases.
	if d.steps > d.maxSteps || depth > 20000 {
		return false
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		if active[n] {
			return true // a cycle, which yaml.v3 reports itself
		}
		active[n] = true
		defer delete(active, n)
		return d.charge(n.Alias, active, depth+1)
	}
	for _, c := range n.Content {
		if !d.charge(c, active, depth+1) {
			return false
		}
	}
	return true
}

// addDecodeError reports msg from decoding n. yaml.v3 messages carry a
// line but no column; the column of n is used when the line is n's.
func (d *decoder) addDecodeError(n *yaml.Node, line int, path, msg string) {
	if msg == "" {
		msg = "invalid value"
	}
	col := 0
	if line <= 0 || line == n.Line {
		line, col = n.Line, n.Column
	}
	d.add(line, col, path, msg)
}

// decodeNode is n.Decode(ptr). yaml.v3 passes on panics from UnmarshalYAML
// and UnmarshalText methods, which can be third-party code; a config file
// must never crash the program, so they become errors at the value.
func decodeNode(n *yaml.Node, ptr any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("cannot decode this value: %v", r)
		}
	}()
	return n.Decode(ptr)
}

var (
	unmarshalerType     = reflect.TypeFor[yaml.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	nodeType            = reflect.TypeFor[yaml.Node]()
	durationType        = reflect.TypeFor[time.Duration]()
)

// obsoleteUnmarshaler is the yaml.v2 interface, which yaml.v3 still honours.
type obsoleteUnmarshaler interface {
	UnmarshalYAML(unmarshal func(any) error) error
}

var obsoleteUnmarshalerType = reflect.TypeFor[obsoleteUnmarshaler]()

// decodesItself reports whether values of type t are decoded as a whole by
// yaml.v3 (custom unmarshalers, interfaces, yaml.Node) rather than walked.
func decodesItself(t reflect.Type) bool {
	if t.Kind() == reflect.Interface || t == nodeType {
		return true
	}
	p := reflect.PointerTo(t)
	return p.Implements(unmarshalerType) || p.Implements(obsoleteUnmarshalerType) || p.Implements(textUnmarshalerType)
}

func resolve(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func isInteger(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return true
	}
	return false
}

func isBasic(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.String, reflect.Float32, reflect.Float64:
		return true
	}
	return isInteger(t)
}

// fitsInteger reports whether the integral float f is in the range of the
// integer type t. The bounds are powers of two, so they are exact floats.
func fitsInteger(f float64, t reflect.Type) bool {
	bits := t.Bits()
	switch t.Kind() {
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return f >= 0 && f < math.Ldexp(1, bits)
	}
	return f >= -math.Ldexp(1, bits-1) && f < math.Ldexp(1, bits-1)
}

// mismatch says that scalar-or-collection r cannot be used as a t.
func mismatch(r *yaml.Node, t reflect.Type) string {
	got := describe(r)
	if t == durationType {
		if r.Kind == yaml.ScalarNode && r.ShortTag() == "!!int" && isDigits(r.Value) {
			return fmt.Sprintf("cannot use %s as a duration; add a unit, e.g. \"%ss\"", got, r.Value)
		}
		return fmt.Sprintf(`cannot use %s as a duration; use a number with a unit (ns, us, ms, s, m, h), e.g. "30s" or "1h30m"`, got)
	}
	return "expected " + expected(t) + ", got " + got
}

// expected names what a value of type t looks like in YAML.
func expected(t reflect.Type) string {
	if t == durationType {
		return `a duration such as "30s"`
	}
	switch t.Kind() {
	case reflect.Bool:
		return "a boolean (true or false)"
	case reflect.Int8, reflect.Int16, reflect.Int32:
		return fmt.Sprintf("an integer from %d to %d", -1<<(t.Bits()-1), 1<<(t.Bits()-1)-1)
	case reflect.Int, reflect.Int64:
		return "an integer"
	case reflect.Uint8, reflect.Uint16, reflect.Uint32:
		return fmt.Sprintf("an integer from 0 to %d", uint64(1)<<t.Bits()-1)
	case reflect.Uint, reflect.Uint64, reflect.Uintptr:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	}
	return "a value of Go type " + t.String()
}

// describe says what n is, for "got ..." in messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "alias *" + clip(n.Value)
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!int", "!!float", "!!bool":
			if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
				return clip(n.Value)
			}
		case "!!null":
			return "an empty value"
		}
		return strconv.Quote(clip(n.Value))
	}
	return "an empty value"
}

// clip shortens s for quoting in a message.
func clip(s string) string {
	const max = 40
	if len(s) <= max {
		return s
	}
	n := 0
	for i := range s {
		if n == max {
			return s[:i] + "..."
		}
		n++
	}
	return s
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

var (
	lineRE         = regexp.MustCompile(`(?s)^line (\d+): (.*)$`)
	typeErrorRE    = regexp.MustCompile("(?s)^cannot unmarshal (!![a-z]+)(?: `(.*)`)? into (.+)$")
	duplicateKeyRE = regexp.MustCompile(`(?s)^mapping key (".*") already defined at line (\d+)$`)
)

// splitLine separates yaml.v3's "line N: " prefix from a message.
func splitLine(s string) (int, string) {
	m := lineRE.FindStringSubmatch(s)
	if m == nil {
		return 0, s
	}
	line, err := strconv.Atoi(m[1])
	if err != nil {
		return 0, m[2]
	}
	return line, m[2]
}

// rewriteTypeError turns yaml.v3's wording ("cannot unmarshal !!str `abc`
// into int") into this package's ("expected an integer, got "abc"").
func rewriteTypeError(msg string) string {
	if m := duplicateKeyRE.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("%s is already set on line %s; remove one of them", m[1], m[2])
	}
	m := typeErrorRE.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	var got string
	switch m[1] {
	case "!!map":
		got = "a mapping"
	case "!!seq":
		got = "a list"
	case "!!str":
		got = strconv.Quote(m[2])
	default:
		got = m[2]
	}
	return "expected " + expectedByName(m[3]) + ", got " + got
}

// expectedByName is expected for a Go type known only by its name, as
// printed in yaml.v3's messages.
func expectedByName(name string) string {
	switch {
	case name == "time.Duration":
		return `a duration such as "30s"`
	case name == "bool":
		return "a boolean (true or false)"
	case name == "string":
		return "a string"
	case strings.HasPrefix(name, "int"):
		return "an integer"
	case strings.HasPrefix(name, "uint"):
		return "a non-negative integer"
	case strings.HasPrefix(name, "float"):
		return "a number"
	case strings.HasPrefix(name, "[]"):
		return "a list"
	case strings.HasPrefix(name, "map["):
		return "a mapping"
	}
	return "a value of Go type " + name
}
