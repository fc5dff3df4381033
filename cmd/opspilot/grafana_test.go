package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"opspilot/grafana"
)

func runCLI(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := newRootCmd(&out, &errOut)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), errOut.String(), err
}

func datasourceURL(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, grafana.DatasourceProvisioning))
	if err != nil {
		t.Fatal(err)
	}
	var f grafana.DatasourceFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return f.Datasources[0].URL
}

// The datasource URL comes from --server, else from the config file's
// server address (https when the server serves TLS).
func TestGrafanaExportServerURL(t *testing.T) {
	cfgFile := filepath.Join(t.TempDir(), "opspilot.yaml")
	if err := os.WriteFile(cfgFile, []byte("server:\n  http_addr: 127.0.0.1:9555\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--server", "http://grafana-sees-me:9440"}, "http://grafana-sees-me:9440/prometheus"},
		{[]string{"-c", cfgFile}, "https://127.0.0.1:9555/prometheus"}, // server.auto_tls is on by default
	} {
		dir := t.TempDir()
		out, _, err := runCLI(t, append([]string{"grafana", "export", dir}, c.args...)...)
		if err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		if !strings.Contains(out, filepath.Join(dir, "dashboards", "service.json")) {
			t.Errorf("%v: output does not list the files written:\n%s", c.args, out)
		}
		if got := datasourceURL(t, dir); got != c.want {
			t.Errorf("%v: datasource url %q, want %q", c.args, got, c.want)
		}
	}
}

func TestGrafanaExportBadInput(t *testing.T) {
	_, _, err := runCLI(t, "grafana", "export", t.TempDir(), "--server", "127.0.0.1:9440")
	if err == nil || !strings.Contains(err.Error(), "want http://HOST:PORT") {
		t.Errorf("a server without a scheme: %v", err)
	}
	_, _, err = runCLI(t, "demo", "backfill", "--days", "0", "--server", "http://127.0.0.1:1")
	if err == nil || !strings.Contains(err.Error(), "days 0: use 1 to 400") {
		t.Errorf("--days 0: %v", err)
	}
}
