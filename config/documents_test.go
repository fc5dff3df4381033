package config

import (
	"fmt"
	"strings"
	"testing"
)

type docA struct {
	Kind  string `yaml:"kind"`
	Name  string `yaml:"name"`
	Count int    `yaml:"count"`
}

func (d *docA) Validate() []Problem {
	if d.Count < 0 {
		return []Problem{{Field: "count", Msg: "must not be negative"}}
	}
	return nil
}

type docB struct {
	Kind  string            `yaml:"kind"`
	Files map[string]string `yaml:"files"`
}

func newDoc(kind string) (any, error) {
	switch kind {
	case "A":
		return &docA{}, nil
	case "B":
		return &docB{}, nil
	}
	return nil, fmt.Errorf("unknown kind %q; use A or B", kind)
}

func TestParseDocuments(t *testing.T) {
	src := "kind: A\nname: x\ncount: 2\n---\n# comment only\n---\nkind: B\nfiles: {a: b}\n---\n"
	docs, err := ParseDocuments("f.yaml", []byte(src), newDoc)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 || docs[0].Value.(*docA).Count != 2 || docs[1].Value.(*docB).Files["a"] != "b" || docs[1].Line != 7 {
		t.Fatalf("docs = %+v", docs)
	}

	bad := "kind: A\nname: x\ncount: -1\n---\nkind: C\n---\nkind: A\nnmae: y\n---\n- 1\n---\nname: z\n"
	_, err = ParseDocuments("f.yaml", []byte(bad), newDoc)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"f.yaml:3:8: count: must not be negative",
		`f.yaml:5:7: kind: unknown kind "C"; use A or B`,
		"f.yaml:8:1",
		`did you mean "name"`,
		"f.yaml:10:1: a document must be a mapping",
		"f.yaml:12:1: kind: missing",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func FuzzParseDocuments(f *testing.F) {
	f.Add("kind: A\nname: x\n---\nkind: B\nfiles: {a: b}\n")
	f.Add("kind: [\n")
	f.Add("---\n---\nkind: A\ncount: 1e99\n")
	f.Fuzz(func(t *testing.T, s string) {
		docs, err := ParseDocuments("f.yaml", []byte(s), newDoc)
		if err != nil && len(docs) > 0 {
			t.Fatal("documents returned with an error")
		}
		if err != nil && strings.TrimSpace(err.Error()) == "" {
			t.Fatal("empty error")
		}
	})
}
