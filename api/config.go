package api

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"opspilot/config"
)

// Roles, from least to most privileged. A token's role allows everything a
// lower role does.
const (
	RoleRead  = "read"  // queries, status, metrics
	RoleWrite = "write" // plus writing samples
	RoleAdmin = "admin" // plus deleting data and (later issues) every mutating action
	// RoleNode is a joined node's credential: it may write samples
	// (remote write and imports under /prometheus/) and nothing else.
	RoleNode = "node"
)

const minTokenLength = 16

func roleRank(role string) int {
	switch role {
	case RoleRead:
		return 1
	case RoleWrite:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

func roleAllows(have, need string) bool {
	if need == "" {
		return true
	}
	return roleRank(have) >= roleRank(need)
}

// Config is the `server:` section of opspilot.yaml.
type Config struct {
	// HTTPAddr is where the API, health and Prometheus endpoints listen.
	HTTPAddr string `yaml:"http_addr"`
	// TLSCertFile and TLSKeyFile, both set, serve HTTPS.
	TLSCertFile string `yaml:"tls_cert_file"`
	TLSKeyFile  string `yaml:"tls_key_file"`
	// AutoTLS serves HTTPS with the control plane's own CA (created under
	// DATA_DIR/pki on first start) when no certificate files are set.
	// `opspilot up`'s local mode serves plain HTTP on loopback instead.
	// Turn it off only behind a TLS-terminating proxy.
	AutoTLS bool `yaml:"auto_tls"`
	// TLSHosts are extra host names and IPs the automatic certificate
	// covers (the listen address, localhost and the hostname always are).
	TLSHosts []string `yaml:"tls_hosts"`
	Auth     Auth     `yaml:"auth"`
	// ReadHeaderTimeout bounds how long a client may take to send headers.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// ShutdownTimeout is how long in-flight requests get on stop.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// MaxRequestBytes caps a request body (remote write batches included).
	MaxRequestBytes int64 `yaml:"max_request_bytes"`

	// LocalMode is set by `opspilot up`: without tokens it serves on
	// loopback only, unauthenticated. Not a file setting.
	LocalMode bool `yaml:"-"`
}

// Auth lists the API tokens.
type Auth struct {
	Tokens []Token `yaml:"tokens"`
}

// Token is one API credential.
type Token struct {
	// Name identifies the caller in audit records.
	Name string `yaml:"name"`
	// Role is read, write or admin.
	Role string `yaml:"role"`
	// Token is the secret itself; prefer TokenFile.
	Token string `yaml:"token"`
	// TokenFile holds the secret (first line).
	TokenFile string `yaml:"token_file"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		HTTPAddr:          "127.0.0.1:9440",
		AutoTLS:           true,
		ReadHeaderTimeout: 10 * time.Second,
		ShutdownTimeout:   shutdownGrace,
		MaxRequestBytes:   64 << 20,
	}
}

// Validate implements config.Validator.
func (c Config) Validate() []config.Problem {
	var ps []config.Problem
	if _, port, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		ps = append(ps, config.Problem{Field: "http_addr", Msg: fmt.Sprintf("%q is not HOST:PORT (e.g. 127.0.0.1:9440)", c.HTTPAddr)})
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		ps = append(ps, config.Problem{Field: "http_addr", Msg: fmt.Sprintf("port %q is not a number in 0..65535", port)})
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		ps = append(ps, config.Problem{Field: "tls_key_file", Msg: "HTTPS needs both tls_cert_file and tls_key_file"})
	}
	if c.ReadHeaderTimeout <= 0 {
		ps = append(ps, config.Problem{Field: "read_header_timeout", Msg: "must be greater than zero"})
	}
	if c.ShutdownTimeout <= 0 {
		ps = append(ps, config.Problem{Field: "shutdown_timeout", Msg: "must be greater than zero"})
	}
	if c.MaxRequestBytes <= 0 {
		ps = append(ps, config.Problem{Field: "max_request_bytes", Msg: "must be greater than zero"})
	}
	seen := map[string]bool{}
	for i, t := range c.Auth.Tokens {
		f := fmt.Sprintf("auth.tokens[%d].", i)
		if t.Name == "" {
			ps = append(ps, config.Problem{Field: f + "name", Msg: "every token needs a name (it appears in audit records)"})
		} else if seen[t.Name] {
			ps = append(ps, config.Problem{Field: f + "name", Msg: fmt.Sprintf("token name %q is used twice", t.Name)})
		}
		seen[t.Name] = true
		if roleRank(t.Role) == 0 {
			ps = append(ps, config.Problem{Field: f + "role", Msg: fmt.Sprintf("unknown role %q; use read, write or admin", t.Role)})
		}
		switch {
		case t.Token != "" && t.TokenFile != "":
			ps = append(ps, config.Problem{Field: f + "token_file", Msg: "set token or token_file, not both"})
		case t.Token == "" && t.TokenFile == "":
			ps = append(ps, config.Problem{Field: f + "token_file", Msg: "set token_file (or token) to the secret"})
		case t.Token != "" && len(t.Token) < minTokenLength:
			ps = append(ps, config.Problem{Field: f + "token", Msg: fmt.Sprintf("shorter than %d characters; generate one with `openssl rand -hex 32`", minTokenLength)})
		}
	}
	return ps
}
