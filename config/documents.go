package config

import (
	"bytes"
	"fmt"
	"io"
	"reflect"

	"go.yaml.in/yaml/v3"
)

// Document is one decoded document of a multi-document file.
type Document struct {
	// Kind is the document's `kind` value; Line where the document starts.
	Kind string
	Line int
	// Value is what newValue returned for Kind, decoded.
	Value any
}

// ParseDocuments decodes every document of data (separated by "---"), as
// `opspilot apply -f` files hold several objects. Each document must be a
// mapping with a `kind` key; newValue returns a pointer to a struct to
// decode that kind into (the struct must accept the `kind` key itself), or
// an error saying which kinds exist, reported at the kind's line. Problems
// from every document are returned together, each with its line; empty
// documents are skipped.
func ParseDocuments(name string, data []byte, newValue func(kind string) (any, error)) ([]Document, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var (
		docs []Document
		errs Errors
	)
	for {
		var doc yaml.Node
		err := decodeDocument(dec, &doc)
		if err == io.EOF {
			break
		}
		if err != nil {
			errs = append(errs, syntaxError(name, data, err))
			break
		}
		if emptyDocument(&doc) {
			continue
		}
		root := doc.Content[0]
		if root.Kind != yaml.MappingNode {
			errs = append(errs, &Error{File: name, Line: root.Line, Column: root.Column, Msg: "a document must be a mapping that starts with `kind:` (e.g. kind: Service)"})
			continue
		}
		var kindNode *yaml.Node
		for i := 0; i+1 < len(root.Content); i += 2 {
			if root.Content[i].Value == "kind" {
				kindNode = root.Content[i+1]
			}
		}
		if kindNode == nil || kindNode.Kind != yaml.ScalarNode || kindNode.Value == "" {
			errs = append(errs, &Error{File: name, Line: root.Line, Column: root.Column, Field: "kind", Msg: "missing; every document names its kind, e.g. kind: Service"})
			continue
		}
		dst, err := newValue(kindNode.Value)
		if err != nil {
			errs = append(errs, &Error{File: name, Line: kindNode.Line, Column: kindNode.Column, Field: "kind", Msg: err.Error()})
			continue
		}
		rv := reflect.ValueOf(dst)
		if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
			return nil, fmt.Errorf("config: ParseDocuments needs pointers to structs, got %T for kind %q", dst, kindNode.Value)
		}
		d := newDecoder(name, len(data))
		d.value(root, rv.Elem(), "", 0)
		if len(d.errs) > 0 {
			errs = append(errs, d.sorted()...)
			continue
		}
		if err := validate(d, dst); err != nil {
			errs = append(errs, err.(Errors)...)
			continue
		}
		docs = append(docs, Document{Kind: kindNode.Value, Line: root.Line, Value: dst})
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return docs, nil
}
