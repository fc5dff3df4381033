package e2e

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"opspilot/test/testbin"
)

// TestConfigCheckCLI: `opspilot config check` passes a good file and points
// at the line, field and likely fix of a typo.
func TestConfigCheckCLI(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yaml", tokenConfig(filepath.Join(dir, "data"), "127.0.0.1:9440"))
	bad := writeFile(t, dir, "bad.yaml", "server:\n  http_adr: x\n")

	r := opspilot(t, "config", "check", good)
	if r.code != 0 || strings.TrimSpace(r.stdout) != good+": ok" {
		t.Errorf("config check on a good file: want exit 0 and %q\n%s", good+": ok", r)
	}

	r = opspilot(t, "config", "check", bad)
	if r.code != 1 {
		t.Errorf("config check on a file with a typo: exit code %d, want 1\n%s", r.code, r)
	}
	for _, want := range []string{bad + ":2:", "server.http_adr", `did you mean "http_addr"`} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("config check stderr lacks %q\n%s", want, r)
		}
	}
	// file:line:col: field: message
	if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(bad) + `:2:\d+: server\.http_adr: .+`).MatchString(r.stderr) {
		t.Errorf("config check: want a line FILE:2:COL: server.http_adr: MESSAGE\n%s", r)
	}

	// Several files: each good one is confirmed, the run still fails.
	r = opspilot(t, "config", "check", good, bad)
	if r.code != 1 || !strings.Contains(r.stdout, good+": ok") || !strings.Contains(r.stderr, bad+":2:") {
		t.Errorf("config check good bad: want %q on stdout, the error on stderr and exit 1\n%s", good+": ok", r)
	}
}

// TestCLIHelpAndCompletion: the command list, shell completion and version.
func TestCLIHelpAndCompletion(t *testing.T) {
	t.Parallel()
	r := opspilot(t, "--help")
	if r.code != 0 {
		t.Fatalf("opspilot --help:\n%s", r)
	}
	for _, cmd := range []string{"up", "server", "query", "config", "version", "completion"} {
		if !regexp.MustCompile(`(?m)^\s+` + cmd + `\s+\S`).MatchString(r.stdout) {
			t.Errorf("opspilot --help does not list the %s command\n%s", cmd, r.stdout)
		}
	}

	r = opspilot(t, "completion", "bash")
	if r.code != 0 || !strings.Contains(r.stdout, "__start_opspilot()") || !strings.Contains(r.stdout, "complete -o default -F __start_opspilot opspilot") {
		t.Errorf("opspilot completion bash: want a script defining and registering __start_opspilot\n%s", lastLines(r.String(), 20))
	}
	if bash, err := exec.LookPath("bash"); err == nil && r.code == 0 {
		script := writeFile(t, t.TempDir(), "opspilot.bash", r.stdout)
		if out, err := exec.Command(bash, "-n", script).CombinedOutput(); err != nil {
			t.Errorf("bash -n on the completion script: %v\n%s", err, out)
		}
	}

	r = opspilot(t, "version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "opspilot, version ") {
		t.Errorf("opspilot version: want a first line starting %q\n%s", "opspilot, version ", r)
	}
}

// TestQueryServerDown: querying a server that is not running fails fast
// with exit code 1 and says what to do.
func TestQueryServerDown(t *testing.T) {
	t.Parallel()
	base := "http://" + testbin.FreeAddr(t)
	start := time.Now()
	r := opspilot(t, "query", "--server", base, "up")
	if r.code != 1 {
		t.Errorf("opspilot query against a stopped server: exit code %d, want 1\n%s", r.code, r)
	}
	if !strings.Contains(r.stderr, "connection refused") || !strings.Contains(r.stderr, "opspilot up") {
		t.Errorf("opspilot query against a stopped server: want the connection error and the hint to start `opspilot up`\n%s", r)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("opspilot query against a stopped server took %s to fail, want under 10s", took.Round(time.Millisecond))
	}
}
