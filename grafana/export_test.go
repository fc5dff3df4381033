package grafana

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// decodeStrict reads a provisioning file the way Grafana's YAML would be
// checked: every key must be one Grafana's provisioning format has.
func decodeStrict(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// export writes what Grafana's provisioning expects: a Prometheus
// datasource with the uid the panels use at SERVER/prometheus, and a file
// provider whose path holds the dashboards.
func TestExportWritesProvisioning(t *testing.T) {
	dir := t.TempDir()
	files, err := Export(dir, ExportOptions{ServerURL: "http://opspilot.example:9440/", TokenEnv: "OPSPILOT_GRAFANA_TOKEN"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{DatasourceProvisioning, DashboardProvisioning, filepath.Join(DashboardsDir, "service.json")} {
		if !slices.Contains(files, want) {
			t.Errorf("Export wrote %v, missing %s", files, want)
		}
	}

	var ds DatasourceFile
	decodeStrict(t, filepath.Join(dir, DatasourceProvisioning), &ds)
	if ds.APIVersion != 1 || len(ds.Datasources) != 1 {
		t.Fatalf("datasources file: apiVersion %d, %d datasources; want 1 and 1", ds.APIVersion, len(ds.Datasources))
	}
	d := ds.Datasources[0]
	if d.Type != "prometheus" || d.UID != DatasourceUID || d.URL != "http://opspilot.example:9440/prometheus" || d.Access != "proxy" {
		t.Errorf("datasource = %+v; want type prometheus, uid %s, url http://opspilot.example:9440/prometheus, access proxy", d, DatasourceUID)
	}
	if d.JSONData["httpHeaderName1"] != "Authorization" || d.SecureJSONData["httpHeaderValue1"] != "Bearer ${OPSPILOT_GRAFANA_TOKEN}" {
		t.Errorf("token header: jsonData %v, secureJsonData %v", d.JSONData, d.SecureJSONData)
	}

	var prov DashboardProviderFile
	decodeStrict(t, filepath.Join(dir, DashboardProvisioning), &prov)
	if len(prov.Providers) != 1 || prov.Providers[0].Type != "file" {
		t.Fatalf("dashboard providers = %+v; want one file provider", prov.Providers)
	}
	path := prov.Providers[0].Options.Path
	if !filepath.IsAbs(path) {
		t.Errorf("provider path %q is not absolute", path)
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		t.Fatalf("the provider's path: %v", err)
	}
	uids := 0
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(path, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		var db struct {
			UID    string `json:"uid"`
			Panels []any  `json:"panels"`
		}
		if err := json.Unmarshal(b, &db); err != nil || db.UID == "" || len(db.Panels) == 0 {
			t.Errorf("%s: not a dashboard with a uid and panels (%v)", e.Name(), err)
			continue
		}
		uids++
	}
	if uids != 6 {
		t.Errorf("the provider's path holds %d dashboards, want 6", uids)
	}

	// A second export gives the same bytes (and replaces the files).
	again := t.TempDir()
	if _, err := Export(again, ExportOptions{ServerURL: "http://opspilot.example:9440", DashboardsPath: path, TokenEnv: "OPSPILOT_GRAFANA_TOKEN"}); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		a, _ := os.ReadFile(filepath.Join(dir, f))
		b, _ := os.ReadFile(filepath.Join(again, f))
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between two exports with the same options", f)
		}
	}
}

// Without a token, the datasource sends none (opspilot up's local mode).
func TestExportWithoutToken(t *testing.T) {
	dir := t.TempDir()
	if _, err := Export(dir, ExportOptions{ServerURL: "http://127.0.0.1:9440", DashboardsPath: "/var/lib/grafana/dashboards/opspilot"}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{DatasourceProvisioning, DashboardProvisioning} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		golden(t, filepath.Join("testdata", "provisioning", filepath.Base(filepath.Dir(f))+".yaml"), b)
		if strings.Contains(string(b), "Authorization") {
			t.Errorf("%s sends an Authorization header without --token-env", f)
		}
	}
}

func TestExportRejectsBadOptions(t *testing.T) {
	for _, c := range []struct {
		o    ExportOptions
		want string
	}{
		{ExportOptions{ServerURL: ""}, "want http://HOST:PORT"},
		{ExportOptions{ServerURL: "127.0.0.1:9440"}, "want http://HOST:PORT"},
		{ExportOptions{ServerURL: "ftp://x:1"}, "want http://HOST:PORT"},
		{ExportOptions{ServerURL: "http://x:1/?a=b"}, "drop the query"},
		{ExportOptions{ServerURL: "http://x:1", TokenEnv: "MY TOKEN"}, "letters, digits and _"},
	} {
		_, err := Export(t.TempDir(), c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Export(%+v) = %v, want an error saying %q", c.o, err, c.want)
		}
	}
}

// FuzzExportOptions: any server URL and token variable either is refused
// with a reason or gives a datasource file that reads back with the URL.
func FuzzExportOptions(f *testing.F) {
	f.Add("http://127.0.0.1:9440", "")
	f.Add("https://opspilot.internal:9440/base/", "OPSPILOT_TOKEN")
	f.Add("http://[::1]:9440", "T1")
	f.Add("http://x:1/?q=1#f", "bad name")
	f.Fuzz(func(t *testing.T, server, tokenEnv string) {
		o := ExportOptions{ServerURL: server, TokenEnv: tokenEnv}
		if err := o.Validate(); err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		b, err := marshalYAML(Datasource(o))
		if err != nil {
			t.Fatal(err)
		}
		var ds DatasourceFile
		if err := yaml.Unmarshal(b, &ds); err != nil {
			t.Fatalf("the datasource file does not read back: %v\n%s", err, b)
		}
		if got := ds.Datasources[0].URL; got != DatasourceURL(server) || !strings.HasSuffix(got, "/prometheus") {
			t.Fatalf("url %q, want %q", got, DatasourceURL(server))
		}
	})
}
