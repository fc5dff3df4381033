package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"opspilot/config"
)

func TestExampleConfigIsValidAndMatchesDefaults(t *testing.T) {
	cfg, err := loadFileConfig(filepath.Join("..", "..", "examples", "opspilot.yaml"))
	if err != nil {
		t.Fatalf("examples/opspilot.yaml: %v", err)
	}
	// The example documents the defaults: apart from the token it adds, it
	// must decode to exactly defaultFileConfig().
	want := defaultFileConfig()
	cfg.Server.Auth = want.Server.Auth
	if cfg.TSDB.Remote.ExtraQueryParams != nil && len(cfg.TSDB.Remote.ExtraQueryParams) == 0 {
		cfg.TSDB.Remote.ExtraQueryParams = nil
	}
	if got, exp := strings.ReplaceAll(pretty(cfg), " ", ""), strings.ReplaceAll(pretty(want), " ", ""); got != exp {
		t.Errorf("examples/opspilot.yaml drifted from the defaults:\n got  %s\n want %s", got, exp)
	}
	// The analyzer section, field by field.
	if g, w := fmt.Sprintf("%+v", cfg.Analyzer), fmt.Sprintf("%+v", want.Analyzer); strings.ReplaceAll(g, "map[]", "") != strings.ReplaceAll(w, "map[]", "") {
		t.Errorf("examples/opspilot.yaml analyzer drifted from the defaults:\n got  %s\n want %s", g, w)
	}
	if cfg.Autoscaler != want.Autoscaler {
		t.Errorf("examples/opspilot.yaml autoscaler drifted from the defaults:\n got  %+v\n want %+v", cfg.Autoscaler, want.Autoscaler)
	}
	if g, w := fmt.Sprintf("%+v", cfg.Alerting), fmt.Sprintf("%+v", want.Alerting); strings.ReplaceAll(g, "[]", "") != strings.ReplaceAll(w, "[]", "") {
		t.Errorf("examples/opspilot.yaml alerting drifted from the defaults:\n got  %s\n want %s", g, w)
	}
	if g, w := fmt.Sprintf("%+v", cfg.Runbooks), fmt.Sprintf("%+v", want.Runbooks); strings.ReplaceAll(g, "[]", "") != strings.ReplaceAll(w, "[]", "") {
		t.Errorf("examples/opspilot.yaml runbooks drifted from the defaults:\n got  %s\n want %s", g, w)
	}
	// The orchestrator and node sections, field by field.
	if g, w := fmt.Sprintf("%+v|%+v|%v", cfg.Orchestrator, cfg.Node, cfg.Server.AutoTLS), fmt.Sprintf("%+v|%+v|%v", want.Orchestrator, normalizeNode(want.Node), want.Server.AutoTLS); strings.ReplaceAll(g, "map[]", "") != strings.ReplaceAll(w, "map[]", "") {
		t.Errorf("examples/opspilot.yaml orchestrator/node drifted from the defaults:\n got  %s\n want %s", g, w)
	}
}

// normalizeNode gives the empty lists and maps the example spells out.
func normalizeNode(n NodeConfig) NodeConfig {
	if n.Labels == nil {
		n.Labels = map[string]string{}
	}
	if n.Runtimes == nil {
		n.Runtimes = []string{}
	}
	return n
}

func pretty(c FileConfig) string {
	var b bytes.Buffer
	b.WriteString(c.DataDir + "|" + c.Log.Level + "|" + c.Log.Format + "|")
	b.WriteString(c.Server.HTTPAddr + "|" + c.Server.ReadHeaderTimeout.String() + "|" + c.Server.ShutdownTimeout.String() + "|")
	b.WriteString(c.TSDB.Mode + "|" + c.TSDB.Embedded.Retention.String() + "|" + c.TSDB.Embedded.LatencyOffset.String() + "|" + c.TSDB.Embedded.LogLevel + "|")
	b.WriteString(c.TSDB.Client.Timeout.String() + "|" + c.TSDB.Client.RetryMaxElapsed.String() + "|" + c.SelfMonitoring.Interval.String())
	return b.String()
}

func TestConfigErrorsNameLineAndField(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want []string // "line:field:substring" per error, in order
	}{
		{
			name: "typo in a key",
			yaml: "server:\n  http_adr: 127.0.0.1:1\n",
			want: []string{`2:server.http_adr:did you mean "http_addr"`},
		},
		{
			name: "analyzer query that is not MetricsQL, and an unknown model",
			yaml: "analyzer:\n  queries:\n    - name: lat\n      expr: rate(x[1m]\n      model: prophet\n",
			want: []string{`4:analyzer.queries[0].expr:not valid MetricsQL`, `5:analyzer.queries[0].model:unknown model "prophet"`},
		},
		{
			name: "cluster member not in its initial cluster, bad leader ttl",
			yaml: "orchestrator:\n  leader:\n    ttl: 1500ms\n  store:\n    name: cp-x\n    client_url: http://127.0.0.1:2379\n    peer_url: http://127.0.0.1:2380\n    initial_cluster: cp-a=http://127.0.0.1:2380,cp-b=http://127.0.0.1:2381\n",
			want: []string{`3:orchestrator.leader.ttl:whole seconds`, `8:orchestrator.store.initial_cluster:not this member "cp-x"`},
		},
		{
			name: "https peer URL with an http member",
			yaml: "orchestrator:\n  store:\n    name: cp-a\n    client_url: http://127.0.0.1:2379\n    peer_url: https://127.0.0.1:2380\n    initial_cluster: cp-a=https://127.0.0.1:2380,cp-b=http://127.0.0.1:2381\n",
			want: []string{`6:orchestrator.store.initial_cluster:member "cp-b"'s peer URL http://127.0.0.1:2381 is not https://, but peer TLS is on`},
		},
		{
			name: "https advertised, http listened",
			yaml: "orchestrator:\n  store:\n    peer_url: http://127.0.0.1:2380\n    advertise_peer_url: https://10.0.0.1:2380\n",
			want: []string{`4:orchestrator.store.advertise_peer_url:make peer_url https:// too`},
		},
		{
			name: "unknown section",
			yaml: "tsbd:\n  mode: embedded\n",
			want: []string{`1:tsbd:did you mean "tsdb"`},
		},
		{
			name: "retention not a duration",
			yaml: "tsdb:\n  embedded:\n    retention: forever\n",
			want: []string{`3:tsdb.embedded.retention:`},
		},
		{
			name: "retention too short",
			yaml: "tsdb:\n  embedded:\n    retention: 2h\n",
			want: []string{`3:tsdb.embedded.retention:at least 1d`},
		},
		{
			name: "unknown tsdb mode",
			yaml: "data_dir: /tmp/x\ntsdb:\n  mode: cloud\n",
			want: []string{`3:tsdb.mode:unknown mode "cloud"`},
		},
		{
			name: "remote without url",
			yaml: "tsdb:\n  mode: remote\n  remote:\n    bearer_token: x\n",
			want: []string{`3:tsdb.remote.url:remote mode needs url`},
		},
		{
			name: "bad tenant",
			yaml: "tsdb:\n  mode: remote\n  remote:\n    cluster:\n      insert_url: http://vminsert:8480\n      select_url: http://vmselect:8481\n      tenant: team-a\n",
			want: []string{`7:tsdb.remote.cluster.tenant:accountID`},
		},
		{
			name: "http addr without port",
			yaml: "server:\n  http_addr: localhost\n",
			want: []string{`2:server.http_addr:HOST:PORT`},
		},
		{
			name: "second token with a bad role and no secret",
			yaml: "server:\n  auth:\n    tokens:\n      - name: a\n        role: admin\n        token: 0123456789abcdef0123\n      - name: b\n        role: root\n",
			want: []string{`8:server.auth.tokens[1].role:unknown role "root"`, `7:server.auth.tokens[1].token_file:set token_file`},
		},
		{
			name: "list where a mapping belongs",
			yaml: "log:\n  - level: info\n",
			want: []string{`2:log:`},
		},
		{
			name: "self monitoring too often",
			yaml: "self_monitoring:\n  interval: 100ms\n",
			want: []string{`2:self_monitoring.interval:below 1s`},
		},
		{
			name: "negative number for bytes",
			yaml: "server:\n  max_request_bytes: -1\n",
			want: []string{`2:server.max_request_bytes:greater than zero`},
		},
		{
			name: "several problems at once",
			yaml: "log:\n  level: chatty\n  format: xml\nserver:\n  shutdown_timeout: 0s\n",
			want: []string{`2:log.level:unknown level`, `3:log.format:unknown format`, `5:server.shutdown_timeout:greater than zero`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "opspilot.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := loadFileConfig(path)
			var es config.Errors
			if !errors.As(err, &es) {
				t.Fatalf("want config.Errors, got %v", err)
			}
			if len(es) != len(tc.want) {
				t.Fatalf("want %d errors, got %d:\n%v", len(tc.want), len(es), err)
			}
			for _, w := range tc.want {
				parts := strings.SplitN(w, ":", 3)
				found := false
				for _, e := range es {
					if e.File == path && strings.Contains(e.Msg, parts[2]) && e.Field == parts[1] && strconv.Itoa(e.Line) == parts[0] {
						found = true
					}
				}
				if !found {
					t.Errorf("no error at line %s field %s containing %q; got:\n%v", parts[0], parts[1], parts[2], err)
				}
			}
			if !strings.HasPrefix(err.Error(), path+":") {
				t.Errorf("error should start with the file name: %v", err)
			}
		})
	}
}

func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"1795693704", "1795693704.5", "2026-11-26T10:00:00Z", "2026-11-26T10:00:00+02:00", "", "now", "1e300", "-1", "NaN"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tm, err := parseTime(s)
		if err != nil {
			if !strings.Contains(err.Error(), "RFC 3339") {
				t.Fatalf("error for %q does not say what is accepted: %v", s, err)
			}
			return
		}
		// An accepted RFC 3339 time means exactly that instant.
		if want, perr := time.Parse(time.RFC3339, s); perr == nil && !want.Equal(tm) {
			t.Fatalf("%q parsed as %v, want %v", s, tm, want)
		}
	})
}

func TestParseTime(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"1795693704", time.Unix(1795693704, 0), true},
		{"1795693704.25", time.Unix(1795693704, 250_000_000), true},
		{"2026-11-26T10:00:00Z", time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC), true},
		{"yesterday", time.Time{}, false},
		{"NaN", time.Time{}, false},
		{"1e300", time.Time{}, false},
		{"-5", time.Time{}, false},
	} {
		got, err := parseTime(tc.in)
		if (err == nil) != tc.ok || (tc.ok && !got.Equal(tc.want)) {
			t.Errorf("parseTime(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
