package config

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
	"unicode"
)

// field is a struct field addressed by its YAML key.
type field struct {
	name  string
	index []int // field indexes from the outer struct, through ,inline structs
}

// structFields is how the keys of a mapping map onto a struct type. It
// follows yaml.v3's rules so that Parse accepts exactly what yaml.v3 would.
type structFields struct {
	byName    map[string]field
	names     []string // in declaration order, for "valid fields" lists
	inlineMap int      // index of the ,inline map field that takes unknown keys, or -1
	// selfDecoding is set when an ,inline field has its own UnmarshalYAML;
	// yaml.v3 hands it the whole mapping, so the struct cannot be walked.
	selfDecoding bool
}

type cachedFields struct {
	sf  *structFields
	err error
}

var fieldCache sync.Map // reflect.Type → cachedFields

func fieldsOf(t reflect.Type) (*structFields, error) {
	if c, ok := fieldCache.Load(t); ok {
		c := c.(cachedFields)
		return c.sf, c.err
	}
	sf, err := buildFields(t, 0)
	fieldCache.Store(t, cachedFields{sf, err})
	return sf, err
}

func buildFields(t reflect.Type, depth int) (*structFields, error) {
	// A struct that inlines a pointer to itself would recurse forever.
	if depth > 32 {
		return nil, fmt.Errorf(",inline fields of %s nest too deeply", t)
	}
	sf := &structFields{byName: make(map[string]field), inlineMap: -1}
	addField := func(f field) error {
		if _, dup := sf.byName[f.name]; dup {
			return fmt.Errorf("duplicated key %q in struct %s", f.name, t)
		}
		sf.byName[f.name] = f
		sf.names = append(sf.names, f.name)
		return nil
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		// yaml.v3 also accepts a bare tag without the yaml: key.
		if tag == "" && !strings.Contains(string(f.Tag), ":") {
			tag = string(f.Tag)
		}
		if tag == "-" {
			continue
		}
		name, flags, _ := strings.Cut(tag, ",")
		inline := false
		for _, flag := range strings.Split(flags, ",") {
			switch flag {
			case "", "omitempty", "flow":
			case "inline":
				inline = true
			default:
				return nil, fmt.Errorf("unsupported flag %q in tag %q of field %s.%s", flag, tag, t, f.Name)
			}
		}
		// Unexported fields cannot be set, except the exported fields of an
		// embedded struct value, which reflect allows.
		if !f.IsExported() && !(f.Anonymous && inline && f.Type.Kind() == reflect.Struct) {
			continue
		}
		if !inline {
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			if err := addField(field{name, []int{i}}); err != nil {
				return nil, err
			}
			continue
		}

		ft := f.Type
		if ft.Kind() == reflect.Map {
			if sf.inlineMap >= 0 {
				return nil, fmt.Errorf("multiple ,inline maps in struct %s", t)
			}
			if ft.Key() != reflect.TypeFor[string]() {
				return nil, fmt.Errorf("option ,inline needs a map with string keys in struct %s", t)
			}
			sf.inlineMap = i
			continue
		}
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() != reflect.Struct {
			return nil, fmt.Errorf("option ,inline may only be used on a struct or map field (%s.%s)", t, f.Name)
		}
		if reflect.PointerTo(ft).Implements(unmarshalerType) || reflect.PointerTo(ft).Implements(obsoleteUnmarshalerType) {
			sf.selfDecoding = true
			continue
		}
		inner, err := buildFields(ft, depth+1)
		if err != nil {
			return nil, err
		}
		sf.selfDecoding = sf.selfDecoding || inner.selfDecoding
		for _, name := range inner.names {
			g := inner.byName[name]
			if err := addField(field{name, append([]int{i}, g.index...)}); err != nil {
				return nil, err
			}
		}
	}
	return sf, nil
}

// fieldByIndex is reflect.Value.FieldByIndex, allocating nil pointers to
// ,inline structs on the way.
func fieldByIndex(v reflect.Value, index []int) reflect.Value {
	for i, x := range index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v
}

// unknownField is the message for a key that matches no field.
func unknownField(name string, valid []string) string {
	msg := fmt.Sprintf("unknown field %q", clip(name))
	if s := suggest(name, valid); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	} else {
		msg += ";"
	}
	if len(valid) == 0 {
		return msg + " this section has no fields"
	}
	return msg + " valid fields: " + strings.Join(valid, ", ")
}

// suggest returns the valid name closest to name, or "" if none is close
// enough to be a likely typo.
func suggest(name string, valid []string) string {
	if len(name) > 64 {
		return "" // not a typo of a field name; spare the quadratic distance
	}
	norm := normalize(name)
	for _, v := range valid {
		if normalize(v) == norm {
			return v // dataDir, data-dir, DATA_DIR for data_dir
		}
	}
	limit := min(max(len([]rune(name))/3, 1), 3)
	best, bestDist := "", limit+1
	for _, v := range valid {
		if d := distance(strings.ToLower(name), v); d < bestDist {
			best, bestDist = v, d
		}
	}
	return best
}

func normalize(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '_' || r == '-' {
			return -1
		}
		return unicode.ToLower(r)
	}, s)
}

// distance is the optimal string alignment distance: edits plus
// transpositions of adjacent characters, the most common typo.
func distance(a, b string) int {
	s, t := []rune(a), []rune(b)
	// Three rows of the dynamic programming table suffice.
	prev2 := make([]int, len(t)+1)
	prev := make([]int, len(t)+1)
	cur := make([]int, len(t)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(s); i++ {
		cur[0] = i
		for j := 1; j <= len(t); j++ {
			cost := 1
			if s[i-1] == t[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && s[i-1] == t[j-2] && s[i-2] == t[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(t)]
}
