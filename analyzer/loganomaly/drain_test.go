package loganomaly

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

func TestMask(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"   \t ", ""},
		{"  hello   world\t", "hello world"},
		{"took 12ms", "took <DUR>"},
		{"took 1h2m3.5s", "took <DUR>"},
		{"latency=250µs", "latency=<DUR>"},
		{"retry 3 of 5", "retry <NUM> of <NUM>"},
		{"value -1.5e3 ok", "value <NUM> ok"},
		{"size 12KB", "size <NUM>KB"},
		{"cpu 97%", "cpu <NUM>%"},
		{"ptr 0x7ffd5a3c", "ptr <HEX>"},
		{"commit 3f2a9b1c8d", "commit <HEX>"},
		{"deadbeef cafe", "deadbeef cafe"},
		{"from 10.0.0.12:8080", "from <IP>"},
		{"from 10.0.0.12/24", "from <IP>/<NUM>"},
		{"peer fe80::1ff:fe23:4567:890a up", "peer <IP> up"},
		{"peer ::1 up", "peer <IP> up"},
		{"id 123e4567-e89b-12d3-a456-426614174000 done", "id <UUID> done"},
		{"at 2024-05-01T12:00:00.123Z start", "at <TS> start"},
		{"at 2024-05-01 12:00:00,123 start", "at <TS> <TS>,<NUM> start"},
		{"Nov 26 16:31:47 host", "Nov <NUM> <TS> host"},
		{`user="alice smith" logged in`, "user=<STR> logged in"},
		{`msg "quoted \" text" end`, "msg <STR> end"},
		{`name='bob o'neil' ok`, "name=<STR> ok"},
		{"don't stop", "don't stop"},
		{`unterminated "quote here`, `unterminated "quote here`},
		{"GET /api/v1/users/42 200", "GET /api/v1/users/<NUM> <NUM>"},
		{"pod web-7d9f8c6b5-x2x4q ready", "pod web-<HEX>-x2x4q ready"},
		{"host node-12 and node_07", "host node-<NUM> and node_<NUM>"},
		{"version v1.2.3", "version v1.<NUM>.<NUM>"},
		{"url http://host:8080/x?a=1", "url http://host:<NUM>/x?a=<NUM>"},
		{`{"a":1,"b":"x"}`, "{<STR>:<NUM>,<STR>:<STR>}"},
	} {
		if got := Mask(tc.in); got != tc.want {
			t.Errorf("Mask(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func mustDrain(t testing.TB, cfg DrainConfig) *Drain {
	t.Helper()
	d, err := NewDrain(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDrainSharesTemplatesAcrossVariables(t *testing.T) {
	d := mustDrain(t, DrainConfig{})
	groups := [][]string{
		{
			"user 1001 logged in from 10.0.0.1 in 12ms",
			"user 2002 logged in from 192.168.1.7 in 3.5s",
			"user 31337 logged in from 172.16.0.9 in 900us",
		},
		{
			"connection reset by peer fe80::1 after 3 retries",
			"connection reset by peer 10.1.2.3:443 after 17 retries",
		},
		{
			`request id=123e4567-e89b-12d3-a456-426614174000 path="/a b" status=500`,
			`request id=00000000-0000-0000-0000-000000000000 path="/c" status=404`,
		},
	}
	seen := map[uint64]int{}
	for g, lines := range groups {
		var first uint64
		for i, l := range lines {
			id, tmpl, isNew := d.Add(l)
			if i == 0 {
				first = id
				if !isNew {
					t.Errorf("group %d: first line %q was not new", g, l)
				}
				if prev, dup := seen[id]; dup {
					t.Errorf("group %d shares template %d with group %d", g, id, prev)
				}
				seen[id] = g
				continue
			}
			if id != first || isNew {
				t.Errorf("group %d line %q: template %d (new %v), want %d; template %q", g, l, id, isNew, first, tmpl)
			}
		}
	}
	if got := d.Templates(); len(got) != len(groups) {
		t.Errorf("%d templates, want %d: %v", len(got), len(groups), got)
	}
	id, tmpl, _ := d.Add("user 7 logged in from 10.9.9.9 in 1m")
	if want := "user <NUM> logged in from <IP> in <DUR>"; tmpl != want || id != 1 {
		t.Errorf("template %d %q, want 1 %q", id, tmpl, want)
	}
}

func TestDrainGeneralisesAndSeparatesShapes(t *testing.T) {
	d := mustDrain(t, DrainConfig{})
	a1, _, _ := d.Add("Started service api on port 80")
	a2, tmpl, isNew := d.Add("Started service billing on port 81")
	if a1 != a2 || isNew || tmpl != "Started service <*> on port <NUM>" {
		t.Fatalf("got %d %q new=%v; want %d with a wildcard", a2, tmpl, isNew, a1)
	}
	for _, l := range []string{
		"Stopped service api on port 80",      // different first token
		"Started service api on port 80 fast", // different length
		"disk full on /dev/sda1",              // different everything
		"worker crashed: nil pointer dereference in handler",
	} {
		if id, _, isNew := d.Add(l); id == a1 || !isNew {
			t.Errorf("%q joined template %d (new %v); want a new template", l, id, isNew)
		}
	}
	if id, _, ok := d.Match("Started service search on port 9000"); !ok || id != a1 {
		t.Errorf("Match: %d %v, want %d", id, ok, a1)
	}
	if _, _, ok := d.Match("completely unrelated words here now"); ok {
		t.Error("Match found a template for an unrelated line")
	}
}

func TestDrainBoundEvictsLeastRecentlyUsed(t *testing.T) {
	d := mustDrain(t, DrainConfig{MaxClusters: 3})
	ids := make([]uint64, 4)
	for i, l := range []string{"alpha one", "beta two three", "gamma four five six", "delta"} {
		ids[i], _, _ = d.Add(l)
		if i == 2 {
			d.Add("alpha one") // alpha becomes the most recent; beta is the oldest
		}
	}
	if d.Len() != 3 {
		t.Fatalf("%d templates, want 3", d.Len())
	}
	if _, ok := d.Template(ids[1]); ok {
		t.Error("beta survived; it was the least recently used")
	}
	for _, i := range []int{0, 2, 3} {
		if _, ok := d.Template(ids[i]); !ok {
			t.Errorf("template %d was evicted", ids[i])
		}
	}
	// An evicted shape comes back as a new template with a fresh id.
	if id, _, isNew := d.Add("beta two three"); !isNew || id != 5 {
		t.Errorf("re-added beta: id %d new %v, want 5 true", id, isNew)
	}
	// Many distinct shapes: the bound holds and the tree is pruned with them.
	d = mustDrain(t, DrainConfig{MaxClusters: 50})
	for i := range 5000 {
		d.Add(fmt.Sprintf("w%c%c shape %d", 'a'+i%26, 'a'+(i/26)%26, i%7) + strings.Repeat(" x", i%13))
	}
	if d.Len() != 50 {
		t.Errorf("%d templates, want 50", d.Len())
	}
	leaves := 0
	var walk func(n *drainNode)
	walk = func(n *drainNode) {
		leaves += len(n.leaves)
		for _, c := range n.children {
			if len(c.leaves) == 0 && len(c.children) == 0 {
				t.Errorf("empty tree node %q left behind", c.key)
			}
			walk(c)
		}
	}
	for _, n := range d.lengths {
		walk(n)
	}
	if leaves != 50 {
		t.Errorf("%d clusters in the tree, want 50", leaves)
	}
}

func TestDrainMaxChildrenUsesWildcardChild(t *testing.T) {
	d := mustDrain(t, DrainConfig{MaxChildren: 3})
	for _, w := range []string{"alpha", "beta", "gamma", "delta", "epsilon"} {
		d.Add(w + " did something")
	}
	n := d.lengths[3]
	if len(n.children) != 3 {
		t.Fatalf("%d children, want 3", len(n.children))
	}
	if _, ok := n.children[ParamToken]; !ok {
		t.Fatal("no wildcard child once the node is full")
	}
}

func TestDrainStateRoundTrip(t *testing.T) {
	lines := corpus(3000, 1)
	cfg := DrainConfig{MaxClusters: 40, MaxChildren: 5}
	orig := mustDrain(t, cfg)
	for _, l := range lines[:2000] {
		orig.Add(l)
	}
	b, err := json.Marshal(orig)
	if err != nil {
		t.Fatal(err)
	}
	restored := mustDrain(t, DrainConfig{})
	if err := json.Unmarshal(b, restored); err != nil {
		t.Fatal(err)
	}
	if restored.Config() != orig.Config() {
		t.Errorf("config %+v, want %+v", restored.Config(), orig.Config())
	}
	if fmt.Sprint(restored.Templates()) != fmt.Sprint(orig.Templates()) {
		t.Fatalf("templates differ after restore:\n%v\n%v", restored.Templates(), orig.Templates())
	}
	// Both go on identically: same ids, templates, novelty and evictions.
	for _, l := range lines[2000:] {
		i1, t1, n1 := orig.Add(l)
		i2, t2, n2 := restored.Add(l)
		if i1 != i2 || t1 != t2 || n1 != n2 {
			t.Fatalf("after restore %q: (%d %q %v) vs original (%d %q %v)", l, i2, t2, n2, i1, t1, n1)
		}
	}
	b2, _ := json.Marshal(orig)
	b3, _ := json.Marshal(restored)
	if string(b2) != string(b3) {
		t.Error("states differ after the same lines")
	}
	for _, bad := range []string{
		`{"version":99}`,
		`{"version":1,"config":{"depth":1}}`,
		`{"version":1,"next_id":2,"clusters":[{"id":5,"tokens":["a"],"path":[]}]}`,
		`{"version":1,"next_id":9,"clusters":[{"id":5,"tokens":["a","b"],"path":[]}]}`,
		`not json`,
	} {
		if err := json.Unmarshal([]byte(bad), restored); err == nil {
			t.Errorf("restoring %s: no error", bad)
		}
	}
}

func TestDrainConfigValidate(t *testing.T) {
	if err := (DrainConfig{}).Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	err := DrainConfig{Depth: 2, SimThreshold: 1.5, MaxChildren: 1, MaxClusters: -1}.Validate()
	for _, want := range []string{"depth 2", "threshold 1.5", "max children 1", "max clusters -1"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %q", err, want)
		}
	}
}

func FuzzDrain(f *testing.F) {
	for _, l := range corpus(20, 7) {
		f.Add(l, "")
	}
	f.Add(`a "b`, `'c' d="e f" 0x 1.2.3.4: ::`)
	f.Add("", "\x00\xff µs 1µ")
	f.Fuzz(func(t *testing.T, a, b string) {
		run := func() (*Drain, []uint64) {
			d := mustDrain(t, DrainConfig{MaxClusters: 3, MaxChildren: 2})
			var ids []uint64
			for _, l := range []string{a, b, b + " " + a, a, a} {
				id, tmpl, _ := d.Add(l)
				if got, ok := d.Template(id); !ok || got != tmpl {
					t.Fatalf("Add returned template %d %q; Template has %q %v", id, tmpl, got, ok)
				}
				ids = append(ids, id)
			}
			return d, ids
		}
		d1, ids1 := run()
		_, ids2 := run()
		if fmt.Sprint(ids1) != fmt.Sprint(ids2) {
			t.Fatalf("ids not deterministic: %v vs %v", ids1, ids2)
		}
		// A line added twice in a row lands in the same cluster: the first
		// Add made it the best match and merging only adds wildcards.
		if ids1[3] != ids1[4] {
			t.Fatalf("the same line %q got templates %d then %d", a, ids1[3], ids1[4])
		}
		b1, err := json.Marshal(d1)
		if err != nil {
			t.Fatal(err)
		}
		var d2 Drain
		if err := json.Unmarshal(b1, &d2); err != nil {
			t.Fatalf("restore: %v", err)
		}
		if i1, _, _ := d1.Add(b); true {
			if i2, _, _ := d2.Add(b); i1 != i2 {
				t.Fatalf("restored miner gave %d, original %d", i2, i1)
			}
		}
		if m := Mask(a); strings.Contains(m, "  ") || strings.HasPrefix(m, " ") || strings.HasSuffix(m, " ") {
			t.Fatalf("Mask(%q) = %q: whitespace not collapsed", a, m)
		}
	})
}

func FuzzErrorWord(f *testing.F) {
	for _, s := range []string{"", "error", "an Error occurred", "errors", "ERROR:", "x_error", "failed.", "FAILURE!", "paniced", "é-fatal-é", "exceptional", "ſail", "fail\u212a"} {
		f.Add(s)
	}
	re := regexp.MustCompile(DefaultErrorPattern)
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := hasErrorWord(s), re.MatchString(s); got != want {
			t.Fatalf("hasErrorWord(%q) = %v, the regexp says %v", s, got, want)
		}
	})
}
