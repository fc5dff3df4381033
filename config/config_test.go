package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// testConfig mirrors the shape of opspilot.yaml.
type testConfig struct {
	Server     testServer        `yaml:"server"`
	TSDB       testTSDB          `yaml:"tsdb"`
	Labels     map[string]string `yaml:"labels"`
	testCommon `yaml:",inline"`
}

type testCommon struct {
	LogLevel string `yaml:"log_level"`
}

type testServer struct {
	HTTPAddr string        `yaml:"http_addr"`
	Timeout  time.Duration `yaml:"timeout"`
	Auth     struct {
		Tokens []testToken `yaml:"tokens"`
	} `yaml:"auth"`
}

type testToken struct {
	Name string `yaml:"name"`
	Role string `yaml:"role"`
}

type testTSDB struct {
	Mode     string       `yaml:"mode"`
	Embedded testEmbedded `yaml:"embedded"`
	Remote   *testRemote  `yaml:"remote"`
}

type testEmbedded struct {
	DataDir   string        `yaml:"data_dir"`
	Retention time.Duration `yaml:"retention"`
	MaxSeries int           `yaml:"max_series"`
}

type testRemote struct {
	URL      string `yaml:"url"`
	Insecure bool   `yaml:"insecure"`
}

func testDefaults() testConfig {
	var c testConfig
	c.Server.HTTPAddr = ":9090"
	c.Server.Timeout = 30 * time.Second
	c.TSDB.Mode = "embedded"
	c.TSDB.Embedded = testEmbedded{DataDir: "data", Retention: 720 * time.Hour, MaxSeries: 1_000_000}
	c.LogLevel = "info"
	return c
}

func (c *testConfig) Validate() []Problem {
	var ps []Problem
	ps = append(ps, Prefix("server", c.Server.validate())...)
	ps = append(ps, Prefix("tsdb", c.TSDB.validate())...)
	return ps
}

func (s *testServer) validate() []Problem {
	var ps []Problem
	for i, t := range s.Auth.Tokens {
		switch t.Role {
		case "read", "write", "admin":
		default:
			ps = append(ps, Problem{fmt.Sprintf("auth.tokens[%d].role", i), fmt.Sprintf("must be read, write or admin, got %q", t.Role)})
		}
	}
	return ps
}

func (t *testTSDB) validate() []Problem {
	switch t.Mode {
	case "embedded":
		if t.Embedded.Retention < 24*time.Hour {
			return []Problem{{"embedded.retention", `must be at least 24h; use e.g. "720h"`}}
		}
	case "remote":
		if t.Remote == nil || t.Remote.URL == "" {
			return []Problem{{"remote.url", "is required when mode is remote"}}
		}
	default:
		return []Problem{{"mode", `must be "embedded" or "remote"`}}
	}
	return nil
}

// wantErr is one expected error; msg is a substring of Error.Msg.
type wantErr struct {
	line, col int
	field     string
	msg       string
}

var brokenFiles = []struct {
	name string
	yaml string
	want []wantErr
}{
	{
		name: "unknown top-level key",
		yaml: "server:\n  http_addr: \":8080\"\ntsbd:\n  mode: remote\n",
		want: []wantErr{{3, 1, "tsbd", `unknown field "tsbd"; did you mean "tsdb"? valid fields: server, tsdb, labels, log_level`}},
	},
	{
		name: "unknown nested key with suggestion",
		yaml: "tsdb:\n  embedded:\n    retension: 30d\n",
		want: []wantErr{{3, 5, "tsdb.embedded.retension", `unknown field "retension"; did you mean "retention"? valid fields: data_dir, retention, max_series`}},
	},
	{
		name: "unknown key without a close match",
		yaml: "tsdb:\n  colour: blue\n",
		want: []wantErr{{2, 3, "tsdb.colour", `unknown field "colour"; valid fields: mode, embedded, remote`}},
	},
	{
		name: "unknown key in camel case",
		yaml: "tsdb:\n  embedded:\n    dataDir: /var/lib\n",
		want: []wantErr{{3, 5, "tsdb.embedded.dataDir", `did you mean "data_dir"?`}},
	},
	{
		name: "duration is not a duration",
		yaml: "tsdb:\n  embedded:\n    retention: abc\n",
		want: []wantErr{{3, 16, "tsdb.embedded.retention", `cannot use "abc" as a duration; use a number with a unit`}},
	},
	{
		name: "duration in days",
		yaml: "tsdb:\n  embedded:\n    retention: 30d\n",
		want: []wantErr{{3, 16, "tsdb.embedded.retention", `cannot use "30d" as a duration`}},
	},
	{
		name: "duration without unit",
		yaml: "server:\n  timeout: 30\n",
		want: []wantErr{{2, 12, "server.timeout", `cannot use 30 as a duration; add a unit, e.g. "30s"`}},
	},
	{
		name: "string where a list is expected",
		yaml: "server:\n  auth:\n    tokens: abc\n",
		want: []wantErr{{3, 13, "server.auth.tokens", `expected a list, got "abc"`}},
	},
	{
		name: "mapping where a list is expected",
		yaml: "server:\n  auth:\n    tokens:\n      name: ci\n",
		want: []wantErr{{4, 7, "server.auth.tokens", `expected a list, got a mapping; start each item with "- "`}},
	},
	{
		name: "mapping where a string is expected",
		yaml: "server:\n  http_addr:\n    host: localhost\n",
		want: []wantErr{{3, 5, "server.http_addr", "expected a string, got a mapping"}},
	},
	{
		name: "string where a mapping is expected",
		yaml: "tsdb: embedded\n",
		want: []wantErr{{1, 7, "tsdb", `expected a mapping (fields: mode, embedded, remote), got "embedded"`}},
	},
	{
		name: "list where a map is expected",
		yaml: "labels: [a, b]\n",
		want: []wantErr{{1, 9, "labels", "expected a mapping (key: value lines), got a list"}},
	},
	{
		name: "wrong value type in a map",
		yaml: "labels:\n  team: [a]\n",
		want: []wantErr{{2, 9, "labels.team", "expected a string, got a list"}},
	},
	{
		name: "fractional integer",
		yaml: "tsdb:\n  embedded:\n    max_series: 1.5\n",
		want: []wantErr{{3, 17, "tsdb.embedded.max_series", "expected an integer, got 1.5"}},
	},
	{
		name: "integer is text",
		yaml: "tsdb:\n  embedded:\n    max_series: lots\n",
		want: []wantErr{{3, 17, "tsdb.embedded.max_series", `expected an integer, got "lots"`}},
	},
	{
		name: "boolean is text",
		yaml: "tsdb:\n  remote:\n    insecure: maybe\n",
		want: []wantErr{{3, 15, "tsdb.remote.insecure", `expected a boolean (true or false), got "maybe"`}},
	},
	{
		name: "duplicate key",
		yaml: "tsdb:\n  mode: embedded\n  mode: remote\n",
		want: []wantErr{{3, 3, "tsdb.mode", `"mode" is already set on line 2; remove one of them`}},
	},
	{
		name: "duplicate top-level key",
		yaml: "server: {}\ntsdb: {}\nserver: {}\n",
		want: []wantErr{{3, 1, "server", `"server" is already set on line 1`}},
	},
	{
		name: "bad indentation",
		yaml: "server:\n  http_addr: \":8080\"\n timeout: 5s\n",
		want: []wantErr{{2, 0, "", "invalid YAML: did not find expected key; check the indentation"}},
	},
	{
		name: "value with colon on the first line",
		yaml: "log_level: a: b\n",
		want: []wantErr{{1, 0, "", `invalid YAML: mapping values are not allowed in this context; quote values that contain ": "`}},
	},
	{
		name: "tab indentation",
		yaml: "server:\n\thttp_addr: x\n",
		want: []wantErr{{2, 0, "", "indent with spaces"}},
	},
	{
		name: "unclosed bracket",
		yaml: "labels: {a: b\n",
		want: []wantErr{{1, 0, "", "invalid YAML: did not find expected ',' or '}'"}},
	},
	{
		name: "invalid UTF-8",
		yaml: "server:\n  http_addr: \"\xff\"\n",
		want: []wantErr{{2, 15, "", "not valid UTF-8 (byte 0xff)"}},
	},
	{
		name: "control character",
		yaml: "log_level: de\x01bug\n",
		want: []wantErr{{1, 14, "", "character U+0001 is not allowed"}},
	},
	{
		name: "unknown anchor",
		yaml: "server: *nope\n",
		want: []wantErr{{0, 0, "", "unknown anchor 'nope' referenced; define the anchor with &name"}},
	},
	{
		name: "validation error in a list element",
		yaml: "server:\n  auth:\n    tokens:\n      - name: ci\n        role: read\n      - name: bot\n        role: superuser\n",
		want: []wantErr{{7, 15, "server.auth.tokens[1].role", `must be read, write or admin, got "superuser"`}},
	},
	{
		name: "validation error on a field set in flow style",
		yaml: "tsdb: {mode: remot}\n",
		want: []wantErr{{1, 14, "tsdb.mode", `must be "embedded" or "remote"`}},
	},
	{
		name: "validation error on a field absent from the file",
		yaml: "log_level: debug\ntsdb:\n  mode: remote\n",
		want: []wantErr{{2, 0, "tsdb.remote.url", "is required when mode is remote (not set in the file; the default applies)"}},
	},
	{
		name: "validation error on a mapping locates its key",
		yaml: "tsdb:\n  mode: remote\n  remote:\n    insecure: true\n",
		want: []wantErr{{3, 0, "tsdb.remote.url", "is required when mode is remote (not set"}},
	},
	{
		name: "several errors, all reported in file order",
		yaml: "tsdb:\n  embedded:\n    retention: soon\n  mdoe: remote\nserver:\n  timeout: 30\n  extra: 1\nlabels: [a, b]\n",
		want: []wantErr{
			{3, 16, "tsdb.embedded.retention", `cannot use "soon" as a duration`},
			{4, 3, "tsdb.mdoe", `did you mean "mode"?`},
			{6, 12, "server.timeout", "add a unit"},
			{7, 3, "server.extra", `unknown field "extra"`},
			{8, 9, "labels", "expected a mapping"},
		},
	},
	{
		name: "two documents",
		yaml: "server:\n  bogus: 1\n---\ntsdb:\n  mode: remote\n",
		want: []wantErr{
			{2, 3, "server.bogus", `unknown field "bogus"`},
			{3, 0, "", "only one YAML document is allowed"},
		},
	},
	{
		name: "second document is broken",
		yaml: "log_level: debug\n---\n[\n",
		want: []wantErr{{3, 0, "", "invalid YAML"}},
	},
	{
		name: "top level is a list",
		yaml: "- server\n- tsdb\n",
		want: []wantErr{{1, 1, "", "the file must contain a mapping (fields: server, tsdb, labels, log_level), got a list"}},
	},
	{
		name: "top level is a string",
		yaml: "hello\n",
		want: []wantErr{{1, 1, "", `the file must contain a mapping (fields: server, tsdb, labels, log_level), got "hello"`}},
	},
	{
		name: "key is not a name",
		yaml: "? [a, b]\n: 1\n",
		want: []wantErr{{1, 3, "", "a key must be a plain name, got a list"}},
	},
	{
		name: "merge key with a scalar",
		yaml: "tsdb:\n  <<: 5\n",
		want: []wantErr{{2, 7, "tsdb", "a merge key (<<) needs a mapping or a list of mappings"}},
	},
	{
		name: "merged mapping with an unknown key",
		yaml: "server:\n  auth:\n    tokens:\n      - &base {name: a, rol: read}\n      - <<: *base\n        name: b\n",
		want: []wantErr{{4, 25, "server.auth.tokens[0].rol", `unknown field "rol"; did you mean "role"?`}},
	},
	{
		name: "null list item is validated",
		yaml: "server:\n  auth:\n    tokens:\n      -\n",
		want: []wantErr{{4, 0, "server.auth.tokens[0].role", `must be read, write or admin, got "" (not set in the file; the default applies)`}},
	},
	{
		name: "map key with a dot is quoted in the path",
		yaml: "labels:\n  app.kubernetes.io/name: {x: 1}\n",
		want: []wantErr{{2, 27, `labels["app.kubernetes.io/name"]`, "expected a string, got a mapping"}},
	},
}

func TestParseBrokenFiles(t *testing.T) {
	for _, tc := range brokenFiles {
		t.Run(tc.name, func(t *testing.T) {
			c := testDefaults()
			err := Parse("opspilot.yaml", []byte(tc.yaml), &c)
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("Parse returned %v (%T), want Errors", err, err)
			}
			if len(es) != len(tc.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(es), len(tc.want), err)
			}
			for i, w := range tc.want {
				e := es[i]
				if e.File != "opspilot.yaml" || e.Line != w.line || e.Column != w.col || e.Field != w.field || !strings.Contains(e.Msg, w.msg) {
					t.Errorf("error %d:\n got  %d:%d %q %q\n want %d:%d %q containing %q", i, e.Line, e.Column, e.Field, e.Msg, w.line, w.col, w.field, w.msg)
				}
			}
		})
	}
}

func TestParseKeepsDefaults(t *testing.T) {
	for _, src := range []string{"", "# only a comment\n\n# and another\n", "---\n", "~\n", "---\n...\n", "log_level: info\n---\n", "---\n---\n# trailing\n"} {
		c := testDefaults()
		if err := Parse("opspilot.yaml", []byte(src), &c); err != nil {
			t.Errorf("Parse(%q): %v", src, err)
		}
		if want := testDefaults(); !reflect.DeepEqual(c, want) {
			t.Errorf("Parse(%q) changed the defaults:\n got  %+v\n want %+v", src, c, want)
		}
	}
}

func TestParseOverridesAndKeeps(t *testing.T) {
	src := `
log_level: debug          # inline struct field
server:
  http_addr:              # null keeps the default
  timeout: 5s
  auth:
    tokens:
      - &admin {name: alice, role: admin}
      - *admin
      - <<: *admin        # merge key: own keys override merged ones
        name: bob
tsdb:
  mode: remote
  embedded: ~
  remote:
    url: http://vm:8428
labels:
  team: infra
`
	c := testDefaults()
	c.Labels = map[string]string{"env": "prod"}
	if err := Parse("opspilot.yaml", []byte(src), &c); err != nil {
		t.Fatal(err)
	}
	want := testDefaults()
	want.LogLevel = "debug"
	want.Server.Timeout = 5 * time.Second
	want.Server.Auth.Tokens = []testToken{{"alice", "admin"}, {"alice", "admin"}, {"bob", "admin"}}
	want.TSDB.Mode = "remote"
	want.TSDB.Remote = &testRemote{URL: "http://vm:8428"}
	want.Labels = map[string]string{"env": "prod", "team": "infra"} // maps merge, as in yaml.v3
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
}

func TestParseAbsentPointerStaysNil(t *testing.T) {
	c := testDefaults()
	if err := Parse("opspilot.yaml", []byte("tsdb:\n  mode: embedded\n  remote:\n"), &c); err != nil {
		t.Fatal(err)
	}
	if c.TSDB.Remote != nil {
		t.Errorf("Remote = %+v, want nil for a null section", c.TSDB.Remote)
	}
}

func TestParseReplacesLists(t *testing.T) {
	c := testDefaults()
	c.Server.Auth.Tokens = []testToken{{"default", "read"}}
	if err := Parse("opspilot.yaml", []byte("server:\n  auth:\n    tokens: []\n"), &c); err != nil {
		t.Fatal(err)
	}
	if len(c.Server.Auth.Tokens) != 0 {
		t.Errorf("tokens = %v, want the file's empty list", c.Server.Auth.Tokens)
	}
}

// level decodes itself, like prometheus' model.Duration does.
type level int

func (l *level) UnmarshalYAML(n *yaml.Node) error {
	switch n.Value {
	case "low":
		*l = 1
	case "high":
		*l = 2
	default:
		return fmt.Errorf("unknown level %q; use low or high", n.Value)
	}
	return nil
}

// v2Level uses the obsolete yaml.v2 unmarshaler interface.
type v2Level string

func (l *v2Level) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err != nil {
		return err
	}
	if s != "on" && s != "off" {
		return fmt.Errorf("must be on or off, got %q", s)
	}
	*l = v2Level(s)
	return nil
}

type tree struct {
	Name     string `yaml:"name"`
	Children []tree `yaml:"children"`
}

// ZoneInfo is exported so that it can be embedded by pointer.
type ZoneInfo struct {
	Zone string `yaml:"zone"`
}

// extrasConfig has one field of each kind Parse treats differently.
type extrasConfig struct {
	*ZoneInfo `yaml:",inline"`
	Level     level             `yaml:"level"`
	Old       v2Level           `yaml:"old"`
	Any       map[string]any    `yaml:"any"`
	List      []any             `yaml:"list"`
	Pair      [2]int            `yaml:"pair"`
	Small     uint8             `yaml:"small"`
	Ratio     float64           `yaml:"ratio"`
	Node      yaml.Node         `yaml:"node"`
	Rest      map[string]string `yaml:",inline"`
	Ptr       *int              `yaml:"ptr"`
	Since     time.Time         `yaml:"since"`
	Untagged  string
	Skipped   string `yaml:"-"`
	Tree      tree   `yaml:"tree"`
	T1        tree   `yaml:"t1"`
	T2        tree   `yaml:"t2"`
	T3        tree   `yaml:"t3"`
	T4        tree   `yaml:"t4"`
	T5        tree   `yaml:"t5"`
	T6        tree   `yaml:"t6"`
	T7        tree   `yaml:"t7"`
}

func TestParseExtras(t *testing.T) {
	src := `
zone: eu-1
level: high
old: "on"
any: {a: [1, 2], b: {c: d}}
pair: [3, 4]
small: 255
ratio: 0.5
node: {keep: me}
ptr: 7
since: 2024-01-02T03:04:05Z
untagged: yes
skipped: ignored
unknown_goes_to_rest: x
tree: {name: root, children: [{name: leaf}]}
`
	var c extrasConfig
	if err := Parse("x.yaml", []byte(src), &c); err != nil {
		t.Fatal(err)
	}
	if c.ZoneInfo == nil || c.Zone != "eu-1" {
		t.Errorf("inline pointer struct: %+v", c.ZoneInfo)
	}
	if c.Level != 2 || c.Old != "on" || c.Pair != [2]int{3, 4} || c.Small != 255 || c.Ratio != 0.5 || *c.Ptr != 7 {
		t.Errorf("scalars: %+v", c)
	}
	if got := fmt.Sprint(c.Any); got != "map[a:[1 2] b:map[c:d]]" {
		t.Errorf("any = %s", got)
	}
	if c.Node.Kind != yaml.MappingNode || len(c.Node.Content) != 2 {
		t.Errorf("node = %+v", c.Node)
	}
	if !c.Since.Equal(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("since = %v", c.Since)
	}
	if c.Untagged != "yes" || c.Skipped != "" {
		t.Errorf("untagged = %q, skipped = %q", c.Untagged, c.Skipped)
	}
	if c.Rest["unknown_goes_to_rest"] != "x" || c.Rest["skipped"] != "ignored" || len(c.Rest) != 2 {
		t.Errorf("rest = %v", c.Rest)
	}
	if c.Tree.Name != "root" || len(c.Tree.Children) != 1 || c.Tree.Children[0].Name != "leaf" {
		t.Errorf("tree = %+v", c.Tree)
	}
}

// deepTree nests trees deeper than Parse allows.
func deepTree() string {
	return "tree: " + strings.Repeat("{children: [", 120) + strings.Repeat("]}", 120) + "\n"
}

// aliasBomb is a "billion laughs" document: 10^7 trees through aliases.
func aliasBomb() string {
	s := "t1: &a {children: [{}, {}, {}, {}, {}, {}, {}, {}, {}, {}]}\n"
	for i := 2; i <= 7; i++ {
		prev := "*" + string(rune('a'+i-2))
		s += fmt.Sprintf("t%d: &%c {children: [%s]}\n", i, 'a'+i-1, strings.Repeat(prev+", ", 9)+prev)
	}
	return s
}

// aliasList refers many times to one value that yaml.v3 decodes as a whole.
func aliasList() string {
	return "any: {big: &b [" + strings.Repeat("1, ", 900) + "1]}\nlist: [" + strings.Repeat("*b, ", 5000) + "*b]\n"
}

// extrasBrokenFiles cover field types beyond testConfig's. Line 0 means the
// exact position is not the point of the case.
var extrasBrokenFiles = []struct {
	name string
	yaml string
	want []wantErr
}{
	{"custom unmarshaler", "level: medium\n", []wantErr{{1, 8, "level", `unknown level "medium"; use low or high`}}},
	{"obsolete unmarshaler", "old: maybe\n", []wantErr{{1, 6, "old", `must be on or off, got "maybe"`}}},
	{"obsolete unmarshaler with wrong kind", "old: [x]\n", []wantErr{{1, 6, "old", "expected a string, got a list"}}},
	{"array length", "pair: [1, 2, 3]\n", []wantErr{{1, 7, "pair", "expected a list of exactly 2 items, got 3"}}},
	{"small integer out of range", "small: 256\n", []wantErr{{1, 8, "small", "expected an integer from 0 to 255, got 256"}}},
	{"negative float into unsigned", "small: -1.0\n", []wantErr{{1, 8, "small", "expected an integer from 0 to 255, got -1.0"}}},
	{"huge number", "small: 1e400\n", []wantErr{{1, 8, "small", `expected an integer from 0 to 255, got "1e400"`}}},
	{"number is text", "ratio: half\n", []wantErr{{1, 8, "ratio", `expected a number, got "half"`}}},
	{"duplicate key", "any:\n  a: 1\n  a: 2\n", []wantErr{{3, 3, "any.a", `"a" is already set on line 2; remove one of them`}}},
	{"duplicate key inside a value yaml.v3 decodes", "any:\n  a:\n    - x: 1\n      x: 2\n", []wantErr{{4, 0, "any.a", `"x" is already set on line 3; remove one of them`}}},
	{"nesting too deep", deepTree(), []wantErr{{0, 0, "", "the document is nested more than 100 levels deep"}}},
	{"alias cycle", "tree: &r {children: [*r]}\n", []wantErr{{1, 22, "tree.children[0]", "alias *r is used inside the value it refers to"}}},
	{"alias expansion bomb", aliasBomb(), []wantErr{{0, 0, "", "too many values through aliases"}}},
	{"many aliases to a big value", aliasList(), []wantErr{{0, 0, "", "too many values through aliases"}}},
	{"anchor inside itself in a value yaml.v3 decodes", "any: {a: &x {b: *x}}\n", []wantErr{{1, 10, "any.a", "anchor 'x' value contains itself"}}},
}

func TestParseExtrasErrors(t *testing.T) {
	for _, tc := range extrasBrokenFiles {
		t.Run(tc.name, func(t *testing.T) {
			var c extrasConfig
			err := Parse("x.yaml", []byte(tc.yaml), &c)
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("Parse returned %v, want Errors", err)
			}
			if len(es) != len(tc.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(es), len(tc.want), err)
			}
			for i, w := range tc.want {
				e := es[i]
				if w.line != 0 && (e.Line != w.line || e.Column != w.col) || w.field != "" && e.Field != w.field || !strings.Contains(e.Msg, w.msg) {
					t.Errorf("error %d:\n got  %d:%d %q %q\n want %d:%d %q containing %q", i, e.Line, e.Column, e.Field, e.Msg, w.line, w.col, w.field, w.msg)
				}
			}
		})
	}
}

// unsetRequired has a default that is invalid and a Validate that says so.
type unsetRequired struct {
	Cluster struct {
		Name string `yaml:"name"`
	} `yaml:"cluster"`
}

func (u *unsetRequired) Validate() []Problem {
	if u.Cluster.Name == "" {
		return []Problem{{"cluster.name", "is required"}, {"", "the file is incomplete"}}
	}
	return nil
}

func TestValidationWithoutPosition(t *testing.T) {
	var u unsetRequired
	err := Parse("c.yaml", []byte("# nothing here\n"), &u)
	want := "c.yaml: cluster.name: is required (not set in the file; the default applies)\nc.yaml: the file is incomplete"
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

func TestParseRejectsBadDestination(t *testing.T) {
	var nilPtr *testConfig
	for _, dst := range []any{nil, testConfig{}, nilPtr, new(int), new(map[string]any)} {
		err := Parse("x.yaml", []byte("a: 1\n"), dst)
		var es Errors
		if !errors.As(err, &es) || len(es) != 1 || !strings.Contains(es[0].Msg, "non-nil pointer to a struct") {
			t.Errorf("Parse into %T: %v", dst, err)
		}
	}
}

type badTag struct {
	A string `yaml:"a,required"`
}

type dupName struct {
	A string `yaml:"x"`
	B string `yaml:"x"`
}

func TestParseBadConfigType(t *testing.T) {
	for _, dst := range []any{&badTag{}, &dupName{}} {
		err := Parse("x.yaml", []byte("x: 1\n"), dst)
		if err == nil || !strings.Contains(err.Error(), "bug in the program's config types") {
			t.Errorf("Parse into %T: %v", dst, err)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "opspilot.yaml")
	if err := os.WriteFile(path, []byte("log_level: warn\nlog_levle: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := testDefaults()
	err := Load(path, &c)
	want := path + `:2:1: log_levle: unknown field "log_levle"; did you mean "log_level"? valid fields: server, tsdb, labels, log_level`
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
	if c.LogLevel != "warn" {
		t.Errorf("log_level = %q", c.LogLevel)
	}
	if err := Load(filepath.Join(dir, "missing.yaml"), &c); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want fs.ErrNotExist", err)
	}
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		e    Error
		want string
	}{
		{Error{"opspilot.yaml", 12, 3, "tsdb.embedded.retention", `must be at least 1d; use e.g. "30d"`}, `opspilot.yaml:12:3: tsdb.embedded.retention: must be at least 1d; use e.g. "30d"`},
		{Error{"opspilot.yaml", 12, 0, "tsdb", "bad"}, "opspilot.yaml:12: tsdb: bad"},
		{Error{"opspilot.yaml", 0, 0, "tsdb", "bad"}, "opspilot.yaml: tsdb: bad"},
		{Error{"opspilot.yaml", 4, 1, "", "bad"}, "opspilot.yaml:4:1: bad"},
		{Error{"", 0, 0, "", "bad"}, "bad"},
	}
	for _, tc := range tests {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
	es := Errors{&tests[0].e, &tests[1].e}
	if got, want := es.Error(), tests[0].want+"\n"+tests[1].want; got != want {
		t.Errorf("Errors.Error() = %q, want %q", got, want)
	}
	var e *Error
	if !errors.As(error(es), &e) || e != &tests[0].e {
		t.Errorf("errors.As did not find the first *Error")
	}
}

func TestPrefix(t *testing.T) {
	in := []Problem{{"url", "a"}, {"", "b"}, {"[1].role", "c"}}
	got := Prefix("remote", in)
	want := []Problem{{"remote.url", "a"}, {"remote", "b"}, {"remote[1].role", "c"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Prefix = %v, want %v", got, want)
	}
	if in[0].Field != "url" {
		t.Errorf("Prefix modified its input")
	}
	if got := Prefix("x", nil); got != nil {
		t.Errorf("Prefix of nothing = %v", got)
	}
	if got := Prefix("", in); !reflect.DeepEqual(got, in) {
		t.Errorf("empty prefix changed the problems: %v", got)
	}
}

func TestSplitPath(t *testing.T) {
	tests := map[string][]string{
		"":                             nil,
		"a":                            {"a"},
		"a.b[1].c":                     {"a", ".b", "[1]", ".c"},
		`labels["a.b"].x`:              {"labels", `["a.b"]`, ".x"},
		`labels["a\"]b"]`:              {"labels", `["a\"]b"]`},
		"a..b":                         {"a", ".", ".b"},
		"a[":                           {"a", "["},
		`a["x`:                         {"a", `["x`},
		"[0]":                          {"[0]"},
		"server.auth.tokens[10].role.": {"server", ".auth", ".tokens", "[10]", ".role", "."},
	}
	for in, want := range tests {
		got := splitPath(in)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("splitPath(%q) = %q, want %q", in, got, want)
		}
		if strings.Join(got, "") != in {
			t.Errorf("splitPath(%q) does not rebuild the path", in)
		}
	}
}

func TestSuggest(t *testing.T) {
	valid := []string{"http_addr", "timeout", "auth", "data_dir", "retention"}
	tests := map[string]string{
		"retension": "retention",
		"timeuot":   "timeout",
		"HTTP_ADDR": "http_addr",
		"httpAddr":  "http_addr",
		"auht":      "auth",
		"zzz":       "",
		"colour":    "",
		"":          "",
	}
	for in, want := range tests {
		if got := suggest(in, valid); got != want {
			t.Errorf("suggest(%q) = %q, want %q", in, got, want)
		}
	}
}

// plainConfig has testConfig's fields but no Validate method, so every
// error it gets comes from decoding.
type plainConfig testConfig

type fuzzConfig struct {
	plainConfig `yaml:",inline"`
	Extras      extrasConfig `yaml:"extras"`
	List        []any        `yaml:"list"`
	Nested      map[string][]map[string]int
}

func FuzzParse(f *testing.F) {
	for _, tc := range brokenFiles {
		f.Add([]byte(tc.yaml))
	}
	for _, tc := range extrasBrokenFiles {
		f.Add([]byte("extras:\n" + indent(tc.yaml)))
	}
	f.Add([]byte("server:\n  auth:\n    tokens:\n      - &a {name: x, role: read}\n      - <<: [*a, {role: write}]\n"))
	f.Add([]byte("extras: {zone: z, level: low, tree: &t {children: [*t]}, pair: [1, 2], any: {x: *t}}\n"))
	f.Add([]byte("nested: {a: [{b: 1}, {c: 2.5}]}\nlist: [1, a, {b: c}]\n"))
	f.Add([]byte("\ufeffserver: {http_addr: !!binary aGVsbG8=}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := testDefaults()
		checkErrors(t, Parse("v.yaml", data, &c), false)
		p := plainConfig(testDefaults())
		checkErrors(t, Parse("v.yaml", data, &p), true)
		var fc fuzzConfig
		checkErrors(t, Parse("v.yaml", data, &fc), true)
	})
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n  ") + "\n"
}

// checkErrors checks the promises Parse makes about its errors.
func checkErrors(t *testing.T, err error, decodeOnly bool) {
	t.Helper()
	if err == nil {
		return
	}
	es, ok := err.(Errors)
	if !ok || len(es) == 0 {
		t.Fatalf("Parse returned %T %v, want non-empty Errors", err, err)
	}
	for i, e := range es {
		if e == nil || e.File != "v.yaml" || e.Msg == "" || e.Line < 0 || e.Column < 0 {
			t.Fatalf("malformed error %d: %#v", i, e)
		}
		if decodeOnly && e.Field != "" && e.Line < 1 {
			t.Fatalf("decode error without a line: %v", e)
		}
		if i > 0 && (es[i-1].Line > e.Line || es[i-1].Line == e.Line && es[i-1].Column > e.Column) {
			t.Fatalf("errors not sorted:\n%v", err)
		}
	}
	_ = err.Error()
}
