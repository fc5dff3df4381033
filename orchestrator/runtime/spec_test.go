package runtime

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"opspilot/orchestrator/model"
)

func TestPortEnvName(t *testing.T) {
	for _, tc := range []struct {
		port model.Port
		want string
	}{
		{model.Port{Name: "http", Port: 8080}, "PORT_HTTP"},
		{model.Port{Name: "admin-api", Port: 1}, "PORT_ADMIN_API"},
		{model.Port{Name: "grpc.v2", Port: 1}, "PORT_GRPC_V2"},
		{model.Port{Name: "Metrics9", Port: 1}, "PORT_METRICS9"},
		{model.Port{Port: 9000}, "PORT_9000"},
	} {
		if got := PortEnvName(tc.port); got != tc.want {
			t.Errorf("PortEnvName(%+v) = %q, want %q", tc.port, got, tc.want)
		}
	}
}

func TestPortKey(t *testing.T) {
	if got := PortKey(model.Port{Name: "http", Port: 80}); got != "http" {
		t.Errorf("named: %q", got)
	}
	if got := PortKey(model.Port{Port: 9000}); got != "9000" {
		t.Errorf("unnamed: %q", got)
	}
}

func TestExpandArgs(t *testing.T) {
	env := map[string]string{"PORT": "31000", "PORT_HTTP": "31000", "PORT_ADMIN": "31001", "EMPTY": ""}
	for _, tc := range []struct{ in, want string }{
		{"--port=$PORT", "--port=31000"},
		{"--admin=${PORT_ADMIN}", "--admin=31001"},
		{"${PORT_HTTP}:$PORT_ADMIN", "31000:31001"},
		{"$UNDEFINED", "$UNDEFINED"},   // not ours: left as written
		{"${UNDEFINED}", "$UNDEFINED"}, // same variable, for a shell
		{"echo $1 $?", "echo $1 $?"},   // shell specials stay
		{"$(date)", "$(date)"},         // no name: untouched
		{"x=$EMPTY.", "x=."},           // defined but empty
		{"cost: 5$", "cost: 5$"},       // trailing dollar
		{"plain", "plain"},
	} {
		got := expandArgs([]string{tc.in}, env)[0]
		if got != tc.want {
			t.Errorf("expand %q = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestEnviron(t *testing.T) {
	spec := Spec{
		InstanceID: "i-1", Service: "billing", Tenant: "acme", Version: "v7", Node: "n1", Datacenter: "dc-a",
		Env:   map[string]string{"PORT": "1", "GREETING": "hi", "PATH": "/custom/bin"},
		Ports: []model.Port{{Name: "http", Port: 8080}, {Port: 9000}},
	}
	hostPorts := map[string]int{"http": 31000, "9000": 31001}
	env := spec.environ("/var/lib/i-1", "/var/lib/i-1", func(p model.Port) int { return hostPorts[PortKey(p)] })
	want := map[string]string{
		"PATH": "/custom/bin", "HOME": "/var/lib/i-1", "GREETING": "hi",
		"PORT": "31000", "PORT_HTTP": "31000", "PORT_9000": "31001", // PORT is the agent's, not Env's
		"OPSPILOT_INSTANCE": "i-1", "OPSPILOT_SERVICE": "billing", "OPSPILOT_TENANT": "acme",
		"OPSPILOT_VERSION": "v7", "OPSPILOT_NODE": "n1", "OPSPILOT_DATACENTER": "dc-a",
		"OPSPILOT_DIR": "/var/lib/i-1",
	}
	if !reflect.DeepEqual(env, want) {
		t.Errorf("environ =\n%v\nwant\n%v", env, want)
	}
	// Containers: declared ports, no PATH or HOME (the image's).
	cenv := spec.environ("/opspilot", "", func(p model.Port) int { return p.Port })
	if cenv["PORT"] != "8080" || cenv["PORT_9000"] != "9000" || cenv["HOME"] != "" || cenv["OPSPILOT_DIR"] != "/opspilot" {
		t.Errorf("container environ = %v", cenv)
	}
}

func TestSpecValidate(t *testing.T) {
	ok := Spec{InstanceID: "web-1", Service: "web", Runtime: model.RuntimeProcess, Command: []string{"/bin/true"}}
	for _, tc := range []struct {
		name    string
		mutate  func(*Spec)
		wantErr string
	}{
		{"valid", func(*Spec) {}, ""},
		{"docker", func(s *Spec) { s.Runtime, s.Command, s.Image = model.RuntimeDocker, nil, "web:1" }, ""},
		{"empty id", func(s *Spec) { s.InstanceID = "" }, "instance id"},
		{"id with slash", func(s *Spec) { s.InstanceID = "../etc" }, "instance id"},
		{"no command", func(s *Spec) { s.Command = nil }, "needs a command"},
		{"docker without image", func(s *Spec) { s.Runtime = model.RuntimeDocker }, "needs an image"},
		{"unknown runtime", func(s *Spec) { s.Runtime = "vm" }, "unknown runtime"},
		{"file escapes", func(s *Spec) { s.Files = map[string]string{"../x": ""} }, "relative path"},
		{"absolute file", func(s *Spec) { s.Files = map[string]string{"/etc/passwd": ""} }, "relative path"},
		{"reserved file", func(s *Spec) { s.Files = map[string]string{"stdout.log": ""} }, "reserved"},
		{"duplicate port key", func(s *Spec) { s.Ports = []model.Port{{Port: 80}, {Port: 80, Protocol: "udp"}} }, "declared twice"},
		{"bad port", func(s *Spec) { s.Ports = []model.Port{{Port: 70000}} }, "1-65535"},
		{"bad probe", func(s *Spec) { s.Readiness = &model.Probe{} }, "readiness probe"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := ok
			tc.mutate(&s)
			err := s.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestPrepareDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "inst")
	files := map[string]string{"app.conf": "a=1\n", "config/nested/x.yaml": "x: 2\n"}
	if err := prepareDir(dir, files); err != nil {
		t.Fatal(err)
	}
	for rel, want := range files {
		got, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", rel, got, err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, markerFile)); err != nil {
		t.Errorf("marker missing: %v", err)
	}
}

func TestBackoffDelay(t *testing.T) {
	var b Backoff // defaults: 200ms doubling to 30s
	want := []time.Duration{0, 0, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
		1600 * time.Millisecond, 3200 * time.Millisecond, 6400 * time.Millisecond, 12800 * time.Millisecond,
		25600 * time.Millisecond, 30 * time.Second, 30 * time.Second}
	for n := 1; n < len(want); n++ {
		if got := b.Delay(n); got != want[n] {
			t.Errorf("Delay(%d) = %s, want %s", n, got, want[n])
		}
	}
	if got := b.Delay(1000); got != 30*time.Second {
		t.Errorf("Delay(1000) = %s, want the cap", got)
	}
	custom := Backoff{Initial: time.Second, Max: 3 * time.Second}
	for n, w := range map[int]time.Duration{1: 0, 2: time.Second, 3: 2 * time.Second, 4: 3 * time.Second, 5: 3 * time.Second} {
		if got := custom.Delay(n); got != w {
			t.Errorf("custom Delay(%d) = %s, want %s", n, got, w)
		}
	}
}
