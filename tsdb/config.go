package tsdb

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"opspilot/config"
)

// Mode names where samples are stored.
const (
	ModeEmbedded = "embedded"
	ModeRemote   = "remote"
)

// Config is the `tsdb:` section of opspilot.yaml.
type Config struct {
	// Mode is "embedded" (VictoriaMetrics in-process) or "remote".
	Mode     string         `yaml:"mode"`
	Embedded EmbeddedConfig `yaml:"embedded"`
	Remote   RemoteConfig   `yaml:"remote"`
	Client   ClientConfig   `yaml:"client"`
}

// EmbeddedConfig configures the in-process VictoriaMetrics single-node.
type EmbeddedConfig struct {
	// DataDir holds the storage; empty means "<server data_dir>/tsdb".
	DataDir string `yaml:"data_dir"`
	// Retention is how long samples are kept (at least 1d).
	Retention model.Duration `yaml:"retention"`
	// MemoryAllowedPercent caps VictoriaMetrics' caches as a percentage of
	// the machine's memory (VictoriaMetrics' own default, 60, assumes it has
	// the machine to itself).
	MemoryAllowedPercent float64 `yaml:"memory_allowed_percent"`
	// MemoryAllowedBytes, when > 0, overrides MemoryAllowedPercent.
	MemoryAllowedBytes int64 `yaml:"memory_allowed_bytes"`
	// LatencyOffset hides samples newer than now-LatencyOffset from instant
	// queries. VictoriaMetrics defaults to 30s; control loops need fresh data.
	LatencyOffset time.Duration `yaml:"latency_offset"`
	// LogLevel is VictoriaMetrics' own log level: info, warn or error.
	LogLevel string `yaml:"log_level"`
	// FlushInterval is how often in-memory samples are saved to disk, which
	// bounds what a crash (kill -9, power loss) can lose. VictoriaMetrics
	// defaults to 5s; the minimum is 1s.
	FlushInterval time.Duration `yaml:"flush_interval"`
	// DedupInterval keeps one sample per series per interval: 1ms removes
	// exact duplicates that at-least-once delivery (agent retries after a
	// lost acknowledgement) can write. 0 disables deduplication.
	DedupInterval time.Duration `yaml:"dedup_interval"`
}

// RemoteConfig points at a remote Prometheus-compatible store.
type RemoteConfig struct {
	// URL of a VictoriaMetrics single-node or Prometheus server: writes go to
	// URL/api/v1/write, queries to URL/api/v1/query…
	URL string `yaml:"url"`
	// WriteURL overrides the remote-write endpoint.
	WriteURL string `yaml:"write_url"`
	// QueryURL overrides the query API base (the part before /api/v1/query).
	QueryURL string `yaml:"query_url"`
	// Cluster addresses a VictoriaMetrics cluster instead of URL.
	Cluster ClusterConfig `yaml:"cluster"`

	BearerToken     string          `yaml:"bearer_token"`
	BearerTokenFile string          `yaml:"bearer_token_file"`
	BasicAuth       BasicAuthConfig `yaml:"basic_auth"`
	TLS             TLSConfig       `yaml:"tls"`
	// ExtraQueryParams are added to every query request, e.g.
	// {latency_offset: 1s} for VictoriaMetrics.
	ExtraQueryParams map[string]string `yaml:"extra_query_params"`
}

// ClusterConfig is a VictoriaMetrics cluster: vminsert for writes, vmselect
// for reads, one tenant.
type ClusterConfig struct {
	InsertURL string `yaml:"insert_url"`
	SelectURL string `yaml:"select_url"`
	// Tenant is "accountID" or "accountID:projectID".
	Tenant string `yaml:"tenant"`
}

// BasicAuthConfig is HTTP basic authentication.
type BasicAuthConfig struct {
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
}

// TLSConfig is the client side of TLS to the remote store.
type TLSConfig struct {
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// ClientConfig tunes the Client.
type ClientConfig struct {
	// Timeout bounds one HTTP request.
	Timeout time.Duration `yaml:"timeout"`
	// MaxSamplesPerRequest splits large writes into requests of this size.
	MaxSamplesPerRequest int `yaml:"max_samples_per_request"`
	// WriteConcurrency is how many write requests one Write call keeps in flight.
	WriteConcurrency int `yaml:"write_concurrency"`
	// RetryMinBackoff and RetryMaxBackoff bound the exponential backoff
	// between retries of a failed request (network error, 429 or 5xx).
	RetryMinBackoff time.Duration `yaml:"retry_min_backoff"`
	RetryMaxBackoff time.Duration `yaml:"retry_max_backoff"`
	// RetryMaxElapsed gives up on a request after this long.
	RetryMaxElapsed time.Duration `yaml:"retry_max_elapsed"`
}

// DefaultConfig returns the defaults documented in the README.
func DefaultConfig() Config {
	return Config{
		Mode: ModeEmbedded,
		Embedded: EmbeddedConfig{
			Retention:            model.Duration(30 * 24 * time.Hour),
			MemoryAllowedPercent: 20,
			LatencyOffset:        time.Second,
			LogLevel:             "warn",
			FlushInterval:        time.Second,
			DedupInterval:        time.Millisecond,
		},
		Client: DefaultClientConfig(),
	}
}

// DefaultClientConfig returns the client defaults.
func DefaultClientConfig() ClientConfig {
	return ClientConfig{
		Timeout:              30 * time.Second,
		MaxSamplesPerRequest: 10000,
		WriteConcurrency:     2,
		RetryMinBackoff:      100 * time.Millisecond,
		RetryMaxBackoff:      5 * time.Second,
		RetryMaxElapsed:      time.Minute,
	}
}

// Validate implements config.Validator.
func (c Config) Validate() []config.Problem {
	var ps []config.Problem
	switch c.Mode {
	case ModeEmbedded:
		ps = append(ps, config.Prefix("embedded", c.Embedded.Validate())...)
	case ModeRemote:
		ps = append(ps, config.Prefix("remote", c.Remote.Validate())...)
	default:
		ps = append(ps, config.Problem{Field: "mode", Msg: fmt.Sprintf("unknown mode %q; use %q or %q", c.Mode, ModeEmbedded, ModeRemote)})
	}
	return append(ps, config.Prefix("client", c.Client.Validate())...)
}

// Validate implements config.Validator.
func (c EmbeddedConfig) Validate() []config.Problem {
	var ps []config.Problem
	if time.Duration(c.Retention) < 24*time.Hour {
		ps = append(ps, config.Problem{Field: "retention", Msg: fmt.Sprintf("%s is too short: VictoriaMetrics keeps at least 1d; use e.g. \"30d\"", c.Retention)})
	}
	if c.MemoryAllowedBytes < 0 {
		ps = append(ps, config.Problem{Field: "memory_allowed_bytes", Msg: "must not be negative; use 0 to size caches by memory_allowed_percent"})
	}
	if c.MemoryAllowedBytes == 0 && (c.MemoryAllowedPercent < 1 || c.MemoryAllowedPercent > 100) {
		ps = append(ps, config.Problem{Field: "memory_allowed_percent", Msg: fmt.Sprintf("%g is outside 1..100", c.MemoryAllowedPercent)})
	}
	if c.LatencyOffset < 0 {
		ps = append(ps, config.Problem{Field: "latency_offset", Msg: "must not be negative"})
	}
	if c.DedupInterval < 0 {
		ps = append(ps, config.Problem{Field: "dedup_interval", Msg: "must not be negative; 0 disables deduplication"})
	}
	if c.FlushInterval < time.Second {
		ps = append(ps, config.Problem{Field: "flush_interval", Msg: fmt.Sprintf("%s is below VictoriaMetrics' minimum of 1s", c.FlushInterval)})
	}
	if _, err := vmLogLevel(c.LogLevel); err != nil {
		ps = append(ps, config.Problem{Field: "log_level", Msg: err.Error()})
	}
	return ps
}

// Validate implements config.Validator.
func (c RemoteConfig) Validate() []config.Problem {
	var ps []config.Problem
	checkURL := func(field, u string) {
		if u == "" {
			return
		}
		if err := validateHTTPURL(u); err != nil {
			ps = append(ps, config.Problem{Field: field, Msg: err.Error()})
		}
	}
	checkURL("url", c.URL)
	checkURL("write_url", c.WriteURL)
	checkURL("query_url", c.QueryURL)
	checkURL("cluster.insert_url", c.Cluster.InsertURL)
	checkURL("cluster.select_url", c.Cluster.SelectURL)
	clustered := c.Cluster.InsertURL != "" || c.Cluster.SelectURL != ""
	switch {
	case clustered && c.URL != "":
		ps = append(ps, config.Problem{Field: "cluster", Msg: "set either url (single-node) or cluster (vminsert/vmselect), not both"})
	case clustered && (c.Cluster.InsertURL == "" || c.Cluster.SelectURL == ""):
		ps = append(ps, config.Problem{Field: "cluster", Msg: "a cluster needs both insert_url (vminsert) and select_url (vmselect)"})
	case !clustered && c.URL == "" && (c.WriteURL == "" || c.QueryURL == ""):
		ps = append(ps, config.Problem{Field: "url", Msg: "remote mode needs url (or write_url and query_url, or cluster.insert_url and cluster.select_url)"})
	}
	if clustered {
		if err := validateTenant(c.Cluster.Tenant); err != nil {
			ps = append(ps, config.Problem{Field: "cluster.tenant", Msg: err.Error()})
		}
	}
	if c.BearerToken != "" && c.BearerTokenFile != "" {
		ps = append(ps, config.Problem{Field: "bearer_token_file", Msg: "set bearer_token or bearer_token_file, not both"})
	}
	if (c.BearerToken != "" || c.BearerTokenFile != "") && c.BasicAuth.Username != "" {
		ps = append(ps, config.Problem{Field: "basic_auth", Msg: "set a bearer token or basic_auth, not both"})
	}
	if c.BasicAuth.Password != "" && c.BasicAuth.PasswordFile != "" {
		ps = append(ps, config.Problem{Field: "basic_auth.password_file", Msg: "set password or password_file, not both"})
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		ps = append(ps, config.Problem{Field: "tls.key_file", Msg: "a client certificate needs both cert_file and key_file"})
	}
	return ps
}

// Validate implements config.Validator.
func (c ClientConfig) Validate() []config.Problem {
	var ps []config.Problem
	positive := func(field string, ok bool) {
		if !ok {
			ps = append(ps, config.Problem{Field: field, Msg: "must be greater than zero"})
		}
	}
	positive("timeout", c.Timeout > 0)
	positive("max_samples_per_request", c.MaxSamplesPerRequest > 0)
	positive("write_concurrency", c.WriteConcurrency > 0)
	positive("retry_min_backoff", c.RetryMinBackoff > 0)
	positive("retry_max_elapsed", c.RetryMaxElapsed > 0)
	if c.RetryMaxBackoff < c.RetryMinBackoff {
		ps = append(ps, config.Problem{Field: "retry_max_backoff", Msg: fmt.Sprintf("%s is smaller than retry_min_backoff (%s)", c.RetryMaxBackoff, c.RetryMinBackoff)})
	}
	return ps
}

// ResolveDataDir returns the embedded data directory, defaulting to
// serverDataDir/tsdb.
func (c EmbeddedConfig) ResolveDataDir(serverDataDir string) string {
	if c.DataDir != "" {
		return c.DataDir
	}
	return filepath.Join(serverDataDir, "tsdb")
}

func validateHTTPURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %v", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q must start with http:// or https://", raw)
	}
	if u.Host == "" {
		return fmt.Errorf("%q has no host", raw)
	}
	return nil
}

func validateTenant(t string) error {
	if t == "" {
		return nil // tenant 0
	}
	parts := strings.Split(t, ":")
	if len(parts) > 2 {
		return fmt.Errorf("tenant %q must be \"accountID\" or \"accountID:projectID\"", t)
	}
	for _, p := range parts {
		if p == "" || strings.Trim(p, "0123456789") != "" || len(p) > 10 {
			return fmt.Errorf("tenant %q must be \"accountID\" or \"accountID:projectID\" with 32-bit unsigned integers", t)
		}
	}
	return nil
}

func vmLogLevel(level string) (string, error) {
	switch strings.ToLower(level) {
	case "info":
		return "INFO", nil
	case "warn", "warning":
		return "WARN", nil
	case "error":
		return "ERROR", nil
	}
	return "", fmt.Errorf("unknown log level %q; use info, warn or error", level)
}
