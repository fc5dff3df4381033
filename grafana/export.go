package grafana

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/renameio/v2"
	"go.yaml.in/yaml/v3"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// The layout Export writes under its directory.
const (
	DashboardsDir          = "dashboards"
	DatasourceProvisioning = "provisioning/datasources/opspilot.yaml"
	DashboardProvisioning  = "provisioning/dashboards/opspilot.yaml"
)

// DatasourceName is the provisioned datasource's name in Grafana.
const DatasourceName = "opspilot"

// ExportOptions say where Grafana finds opspilot and the dashboards.
type ExportOptions struct {
	// ServerURL is opspilot's base URL as Grafana reaches it
	// (http://HOST:PORT); the datasource URL is ServerURL + /prometheus.
	ServerURL string
	// DashboardsPath is the dashboards directory as Grafana sees it (the
	// file provider's path); default the absolute path Export writes to.
	DashboardsPath string
	// TokenEnv, when set, names an environment variable of Grafana's that
	// holds an opspilot API token with the read role: the datasource sends
	// it as a bearer token (Grafana expands $VAR in provisioning files).
	TokenEnv string
}

// Validate reports what is wrong with o, saying how to fix it.
func (o ExportOptions) Validate() error {
	u, err := url.Parse(o.ServerURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("server URL %q: want http://HOST:PORT or https://HOST:PORT (opspilot's address as Grafana reaches it)", o.ServerURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("server URL %q: drop the query and fragment; give the base URL, /prometheus is added", o.ServerURL)
	}
	if o.TokenEnv != "" && !isEnvName(o.TokenEnv) {
		return fmt.Errorf("token environment variable %q: use letters, digits and _ (e.g. OPSPILOT_GRAFANA_TOKEN)", o.TokenEnv)
	}
	return nil
}

func isEnvName(s string) bool {
	for i, r := range s {
		if !(r == '_' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return s != ""
}

// DatasourceURL is the Prometheus datasource URL for an opspilot server.
func DatasourceURL(serverURL string) string {
	return strings.TrimRight(serverURL, "/") + "/prometheus"
}

// MarshalDashboard returns d as Grafana dashboard JSON: keys sorted,
// indented two spaces, ending in a newline, so the same dashboard always
// gives the same bytes.
func MarshalDashboard(d dashboard.Dashboard) ([]byte, error) {
	raw, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("marshal dashboard %s: %w", deref(d.Uid), err)
	}
	return canonicalJSON(raw)
}

// canonicalJSON re-encodes JSON with sorted keys and indentation; numbers
// keep their exact text.
func canonicalJSON(raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// DatasourceFile is Grafana's datasource provisioning file
// (provisioning/datasources/*.yaml).
type DatasourceFile struct {
	APIVersion        int                `yaml:"apiVersion"`
	DeleteDatasources []DatasourceRef    `yaml:"deleteDatasources,omitempty"`
	Datasources       []DatasourceConfig `yaml:"datasources"`
}

// DatasourceRef names a datasource to delete before provisioning.
type DatasourceRef struct {
	Name  string `yaml:"name"`
	OrgID int    `yaml:"orgId"`
}

// DatasourceConfig is one provisioned datasource.
type DatasourceConfig struct {
	Name           string            `yaml:"name"`
	UID            string            `yaml:"uid"`
	Type           string            `yaml:"type"`
	Access         string            `yaml:"access"`
	OrgID          int               `yaml:"orgId"`
	URL            string            `yaml:"url"`
	IsDefault      bool              `yaml:"isDefault"`
	Editable       bool              `yaml:"editable"`
	JSONData       map[string]any    `yaml:"jsonData"`
	SecureJSONData map[string]string `yaml:"secureJsonData,omitempty"`
}

// DashboardProviderFile is Grafana's dashboard provisioning file
// (provisioning/dashboards/*.yaml).
type DashboardProviderFile struct {
	APIVersion int                 `yaml:"apiVersion"`
	Providers  []DashboardProvider `yaml:"providers"`
}

// DashboardProvider is one file provider.
type DashboardProvider struct {
	Name                  string                   `yaml:"name"`
	OrgID                 int                      `yaml:"orgId"`
	Folder                string                   `yaml:"folder"`
	FolderUID             string                   `yaml:"folderUid"`
	Type                  string                   `yaml:"type"`
	DisableDeletion       bool                     `yaml:"disableDeletion"`
	AllowUIUpdates        bool                     `yaml:"allowUiUpdates"`
	UpdateIntervalSeconds int                      `yaml:"updateIntervalSeconds"`
	Options               DashboardProviderOptions `yaml:"options"`
}

// DashboardProviderOptions says where the dashboard files are.
type DashboardProviderOptions struct {
	Path                      string `yaml:"path"`
	FoldersFromFilesStructure bool   `yaml:"foldersFromFilesStructure"`
}

// Datasource returns the datasource provisioning file for o.
func Datasource(o ExportOptions) DatasourceFile {
	ds := DatasourceConfig{
		Name: DatasourceName, UID: DatasourceUID, Type: "prometheus", Access: "proxy", OrgID: 1,
		URL: DatasourceURL(o.ServerURL), IsDefault: true, Editable: false,
		JSONData: map[string]any{
			"prometheusType": "Prometheus",
			"httpMethod":     "POST",
			// The agents' and the self-monitoring's interval: Grafana's
			// $__rate_interval is at least four of it.
			"timeInterval": "10s",
		},
	}
	if o.TokenEnv != "" {
		ds.JSONData["httpHeaderName1"] = "Authorization"
		ds.SecureJSONData = map[string]string{"httpHeaderValue1": "Bearer ${" + o.TokenEnv + "}"}
	}
	return DatasourceFile{APIVersion: 1, Datasources: []DatasourceConfig{ds}}
}

// DashboardProvisioningFile returns the file provider pointing at the
// dashboards directory path (as Grafana sees it).
func DashboardProvisioningFile(path string) DashboardProviderFile {
	return DashboardProviderFile{APIVersion: 1, Providers: []DashboardProvider{{
		Name: "opspilot", OrgID: 1, Folder: "opspilot", FolderUID: "opspilot", Type: "file",
		DisableDeletion: false, AllowUIUpdates: false, UpdateIntervalSeconds: 30,
		Options: DashboardProviderOptions{Path: path},
	}}}
}

// Export writes every dashboard under dir/dashboards and the datasource and
// dashboard provisioning files under dir/provisioning, replacing files of
// the same names atomically. It returns the paths written, relative to dir.
func Export(dir string, o ExportOptions) ([]string, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if dir == "" {
		return nil, errors.New("export: no directory given")
	}
	boards, err := Dashboards()
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("export to %s: %w", dir, err)
	}
	if o.DashboardsPath == "" {
		o.DashboardsPath = filepath.Join(abs, DashboardsDir)
	}
	files := map[string][]byte{}
	var order []string
	add := func(name string, b []byte) {
		files[name] = b
		order = append(order, name)
	}
	for _, b := range boards {
		j, err := MarshalDashboard(b.Dashboard)
		if err != nil {
			return nil, err
		}
		add(filepath.Join(DashboardsDir, b.File), j)
	}
	dsYAML, err := marshalYAML(Datasource(o))
	if err != nil {
		return nil, err
	}
	add(DatasourceProvisioning, dsYAML)
	dbYAML, err := marshalYAML(DashboardProvisioningFile(o.DashboardsPath))
	if err != nil {
		return nil, err
	}
	add(DashboardProvisioning, dbYAML)
	for _, name := range order {
		path := filepath.Join(abs, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, fmt.Errorf("export: %w (choose a writable directory)", err)
		}
		if err := renameio.WriteFile(path, files[name], 0o644); err != nil {
			return nil, fmt.Errorf("export: write %s: %w", path, err)
		}
	}
	return order, nil
}

const yamlHeader = "# Generated by `opspilot grafana export`; regenerate instead of editing.\n"

func marshalYAML(v any) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString(yamlHeader)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("marshal provisioning file: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
