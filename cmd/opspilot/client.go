package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"opspilot/api"
	"opspilot/internal/jsonapi"
)

// clientFlags are the flags of every command that talks to a server's REST
// API.
type clientFlags struct {
	server, token, caFile, reason string
	timeout                       time.Duration
}

func (f *clientFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.server, "server", envOr("OPSPILOT_SERVER", "http://127.0.0.1:9440"), "opspilot server URL (default $OPSPILOT_SERVER or http://127.0.0.1:9440)")
	cmd.Flags().StringVar(&f.token, "token", "", "API token (default $OPSPILOT_TOKEN)")
	cmd.Flags().StringVar(&f.caFile, "ca-file", "", "CA certificate that signed the server's (default $OPSPILOT_CA_FILE; the server's own CA is DATA_DIR/pki/ca.crt)")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 30*time.Second, "give up on a request after this long")
}

// registerReason adds --reason to commands that change something.
func (f *clientFlags) registerReason(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.reason, "reason", "", "why: recorded with the change in events and the audit log")
}

// isTerminal reports whether w is a terminal: progress bars are drawn only
// there, not into a log file or a pipe.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// apiClient calls the REST API.
type apiClient struct {
	flags clientFlags
	http  *http.Client
}

func (f *clientFlags) client() (*apiClient, error) {
	if f.token == "" {
		f.token = os.Getenv("OPSPILOT_TOKEN")
	}
	if f.caFile == "" {
		f.caFile = os.Getenv("OPSPILOT_CA_FILE")
	}
	f.server = strings.TrimRight(f.server, "/")
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if f.caFile != "" {
		pem, err := os.ReadFile(f.caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-file %s: no PEM certificate in it", f.caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &apiClient{flags: *f, http: &http.Client{Transport: tr}}, nil
}

// apiError is a non-2xx answer.
type apiError = jsonapi.Error

func (c *apiClient) do(ctx context.Context, method, path string, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.flags.timeout)
	defer cancel()
	var h http.Header
	if c.flags.reason != "" {
		h = http.Header{api.ReasonHeader: {c.flags.reason}}
	}
	return errorHint(jsonapi.Do(ctx, c.http, method, c.flags.server+path, c.flags.token, h, body, out), c.flags.server)
}
