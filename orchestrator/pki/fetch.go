package pki

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// CAPath is where the API server serves CAHandler, and FetchCA fetches
// from. It must be reachable without authentication: the agent fetches it
// before it has any credential.
const CAPath = "/api/v1/pki/ca.crt"

// maxCABytes bounds what FetchCA reads from a server it does not trust yet.
const maxCABytes = 64 << 10

// CAHandler serves the CA certificate as PEM to GET and HEAD. The CA is
// public; an agent checks it against the hash in its join token.
func CAHandler(a *Authority) http.Handler {
	body := a.CAPEM()
	length := strconv.Itoa(len(body))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Header().Set("Content-Length", length)
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(body)
	})
}

// ClientTLSConfig verifies servers against pool (from FetchCA) only.
func ClientTLSConfig(pool *x509.CertPool) *tls.Config {
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// ErrCAMismatch: the server's CA is not the one the join token names.
var ErrCAMismatch = errors.New("CA mismatch")

// FetchCA fetches the CA certificate from serverURL (https://HOST:PORT)
// and trusts it only if
//
//   - the SHA-256 of its DER equals caHash ("sha256:<hex>" as returned by
//     ParseJoinToken, or bare hex), and
//   - the certificate the server presented on that same connection chains
//     to it and covers the host in serverURL.
//
// That one request skips normal certificate verification: the hash is
// what makes it safe. It returns a pool holding just the CA, for
// ClientTLSConfig and every later connection, and the CA as PEM for the
// caller to save.
func FetchCA(ctx context.Context, serverURL, caHash string) (*x509.CertPool, []byte, error) {
	want, err := decodeHash(caHash)
	if err != nil {
		return nil, nil, err
	}
	u, err := url.Parse(serverURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, nil, fmt.Errorf("pki: server URL %q: want https://HOST:PORT", serverURL)
	}
	caURL := *u
	caURL.Path = strings.TrimSuffix(u.Path, "/") + CAPath
	caURL.RawPath, caURL.RawQuery, caURL.Fragment = "", "", ""

	// A transport of its own, closed on return: no connection made without
	// verification is ever reused for anything else.
	tr := &http.Transport{
		Proxy:           http.ProxyFromEnvironment,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, //nolint:gosec // checked against the join token's hash below
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport: tr,
		// The CA must come from the server the agent was pointed at.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, caURL.String(), nil)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: fetch CA: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: fetch CA from %s: %w", caURL.Redacted(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("pki: fetch CA from %s: %s; is %s an opspilot server with node join support?", caURL.Redacted(), resp.Status, u.Host)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxCABytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("pki: fetch CA from %s: %w", caURL.Redacted(), err)
	}
	if len(body) > maxCABytes {
		return nil, nil, fmt.Errorf("pki: fetch CA from %s: larger than %d bytes, not a CA certificate", caURL.Redacted(), maxCABytes)
	}
	ca, err := parseCertPEM(body)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: fetch CA from %s: the response is not a PEM certificate (%v)", caURL.Redacted(), err)
	}
	got := sha256.Sum256(ca.Raw)
	if subtle.ConstantTimeCompare(got[:], want) != 1 {
		return nil, nil, fmt.Errorf("pki: the CA served by %s has hash %s, but the join token expects %s%x (%w). "+
			"Either the token belongs to another server or to this server before its CA was regenerated (copy the current token from DATA_DIR/pki/join-token), "+
			"or a man-in-the-middle is intercepting the connection: do not join until you know which",
			u.Host, hashDER(ca.Raw), hashPrefix, want, ErrCAMismatch)
	}
	if !ca.IsCA {
		return nil, nil, fmt.Errorf("pki: the certificate served by %s matches the join token but is not a CA certificate", u.Host)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if resp.TLS == nil {
		return nil, nil, errors.New("pki: fetch CA: the connection was not TLS")
	}
	if err := verifyServer(resp.TLS.PeerCertificates, pool, u.Hostname()); err != nil {
		return nil, nil, err
	}
	return pool, encodeCertPEM(ca.Raw), nil
}

// verifyServer checks the certificates a server presented: chained to the
// CA in pool (else someone other than the CA's owner is answering) and
// valid for host.
func verifyServer(certs []*x509.Certificate, pool *x509.CertPool, host string) error {
	if len(certs) == 0 {
		return errors.New("pki: the server presented no TLS certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	leaf := certs[0]
	opts := x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if _, err := leaf.Verify(opts); err != nil {
		return fmt.Errorf("pki: %s served the CA from the join token, but its TLS certificate is not signed by that CA (%v): a man-in-the-middle may be relaying the public CA; do not join", host, err)
	}
	if err := leaf.VerifyHostname(host); err != nil {
		return fmt.Errorf("pki: the server's certificate is signed by the right CA but does not cover %q (%v); add %q to the server's TLS host names and restart it (the certificate is reissued at start), or connect by a name it covers", host, err, host)
	}
	return nil
}

// decodeHash accepts "sha256:<hex>" or bare hex, in either case.
func decodeHash(h string) ([]byte, error) {
	s := strings.ToLower(strings.TrimSpace(h))
	s = strings.TrimPrefix(s, hashPrefix)
	if !isLowerHex(s, hashHexLen) {
		return nil, fmt.Errorf("pki: CA hash must be sha256: and %d hex digits, as in the join token", hashHexLen)
	}
	b, _ := hex.DecodeString(s)
	return b, nil
}

// FetchCAFromAny is FetchCA from the first of serverURLs (the
// control-plane replicas) that answers, each attempt given 5 s, trying the
// list again for up to total: an agent whose first replica is unreachable
// still starts. A CA that does not match the token ends it at once.
func FetchCAFromAny(ctx context.Context, serverURLs []string, caHash string, total time.Duration) (*x509.CertPool, []byte, error) {
	if len(serverURLs) == 0 {
		return nil, nil, errors.New("pki: no server URL to fetch the CA from")
	}
	ctx, cancel := context.WithTimeout(ctx, total)
	defer cancel()
	var last []error
	for {
		last = last[:0]
		for _, s := range serverURLs {
			actx, acancel := context.WithTimeout(ctx, fetchAttempt)
			pool, pem, err := FetchCA(actx, strings.TrimRight(s, "/"), caHash)
			acancel()
			if err == nil || errors.Is(err, ErrCAMismatch) {
				return pool, pem, err
			}
			last = append(last, err)
		}
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("pki: no control-plane replica gave its CA within %s: %w", total, errors.Join(last...))
		case <-time.After(time.Second):
		}
	}
}

// fetchAttempt bounds one CA fetch from one replica in FetchCAFromAny.
const fetchAttempt = 5 * time.Second
