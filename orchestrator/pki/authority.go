package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// File names inside the directory given to EnsureCA.
const (
	CACertFile     = "ca.crt"
	CAKeyFile      = "ca.key"
	ServerCertFile = "server.crt"
	ServerKeyFile  = "server.key"
	JoinSecretFile = "join-secret"
	JoinTokenFile  = "join-token"
)

// Lifetimes and the renewal margin of the certificates EnsureCA issues.
const (
	CAValidity         = 10 * 365 * 24 * time.Hour
	ServerCertValidity = 365 * 24 * time.Hour
	// ServerCertRenewBefore: a server certificate expiring sooner than this
	// is reissued at start, so a yearly restart never runs into expiry.
	ServerCertRenewBefore = 30 * 24 * time.Hour
	// backdate covers clocks of agents that run a little behind the server.
	backdate = time.Hour
)

// Authority is the control plane's CA, its current server certificate and
// the join secret. It is immutable once EnsureCA returns and safe for
// concurrent use.
type Authority struct {
	dir        string
	caCert     *x509.Certificate
	caKey      *ecdsa.PrivateKey
	caPEM      []byte
	caHash     string // "sha256:<hex>"
	server     tls.Certificate
	serverLeaf *x509.Certificate
	joinSecret string
	changes    []string
}

// EnsureCA creates the CA, server certificate and join secret in dir on
// first start and loads them afterwards. hosts are the DNS names and IP
// addresses agents use to reach the server; the server certificate always
// also covers localhost, 127.0.0.1, ::1 and os.Hostname(). now is the
// current time (a parameter so tests can move it).
func EnsureCA(dir string, hosts []string, now time.Time) (*Authority, error) {
	wantDNS, wantIPs, err := serverNames(hosts)
	if err != nil {
		return nil, err
	}
	if err := ensureDir(dir); err != nil {
		return nil, err
	}
	a := &Authority{dir: dir}
	if err := a.ensureCA(now); err != nil {
		return nil, err
	}
	if err := a.ensureServerCert(wantDNS, wantIPs, now); err != nil {
		return nil, err
	}
	if err := a.ensureJoinSecret(); err != nil {
		return nil, err
	}
	// join-token is a convenience copy for the operator; join-secret and
	// ca.crt are the truth, so it is rewritten whenever it differs.
	tokenPath := filepath.Join(dir, JoinTokenFile)
	want := a.JoinToken() + "\n"
	if b, err := os.ReadFile(tokenPath); err != nil || string(b) != want {
		if err := writeFileAtomic(tokenPath, []byte(want), 0o600); err != nil {
			return nil, err
		}
	} else if err := a.tightenMode(tokenPath); err != nil {
		return nil, err
	}
	return a, nil
}

// Changes lists what EnsureCA changed on disk ("created CA", "reissued
// server certificate: …"), for the caller to log. Empty when everything
// was loaded as it was.
func (a *Authority) Changes() []string { return slices.Clone(a.changes) }

// Dir is the directory the authority lives in.
func (a *Authority) Dir() string { return a.dir }

func ensureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pki: create %s: %w", dir, err)
	}
	// MkdirAll leaves an existing directory's mode alone; the keys must
	// not be listable or reachable by other users either way.
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("pki: chmod 0700 %s: %w", dir, err)
	}
	return nil
}

func (a *Authority) path(name string) string { return filepath.Join(a.dir, name) }

// ensureCA loads ca.crt and ca.key, or creates both when ca.crt is absent.
// ca.key is written first, so an interrupted first start leaves ca.key
// without ca.crt; no join token can exist for such a CA, so it is replaced.
func (a *Authority) ensureCA(now time.Time) error {
	certPath, keyPath := a.path(CACertFile), a.path(CAKeyFile)
	certPEM, err := os.ReadFile(certPath)
	if errors.Is(err, fs.ErrNotExist) {
		return a.createCA(now)
	}
	if err != nil {
		return fmt.Errorf("pki: read %s: %w", certPath, err)
	}
	cert, err := parseCertPEM(certPEM)
	if err != nil {
		return corruptCA(certPath, err)
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return corruptCA(certPath, errors.New("it is not a CA certificate"))
	}
	keyPEM, err := os.ReadFile(keyPath)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("pki: %s exists but %s is missing, so no certificate can be issued. Restore %s from a backup, or delete %s to generate a new CA; a new CA invalidates every joined agent, which must re-join with the new join token", certPath, keyPath, CAKeyFile, CACertFile)
	}
	if err != nil {
		return fmt.Errorf("pki: read %s: %w", keyPath, err)
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		return corruptCA(keyPath, err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return corruptCA(keyPath, fmt.Errorf("it does not belong to %s", CACertFile))
	}
	if now.After(cert.NotAfter) {
		return fmt.Errorf("pki: the CA in %s expired on %s. Delete %s and %s to generate a new CA; every joined agent must then re-join with the new join token", certPath, cert.NotAfter.Format(time.DateOnly), CACertFile, CAKeyFile)
	}
	if err := a.tightenMode(keyPath); err != nil {
		return err
	}
	a.setCA(cert, certPEM, key)
	return nil
}

func (a *Authority) createCA(now time.Time) error {
	key, certDER, err := newCA(now)
	if err != nil {
		return err
	}
	keyPEM, err := encodeKeyPEM(key)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(a.path(CAKeyFile), keyPEM, 0o600); err != nil {
		return err
	}
	certPEM := encodeCertPEM(certDER)
	if err := writeFileAtomic(a.path(CACertFile), certPEM, 0o644); err != nil {
		return err
	}
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		return fmt.Errorf("pki: parse the new CA certificate: %w", err)
	}
	a.setCA(cert, certPEM, key)
	a.changes = append(a.changes, "created CA "+a.caHash)
	return nil
}

func (a *Authority) setCA(cert *x509.Certificate, certPEM []byte, key *ecdsa.PrivateKey) {
	a.caCert, a.caKey = cert, key
	// Serve exactly the one certificate whose hash the token carries,
	// whatever else (comments, whitespace) the file holds.
	a.caPEM = encodeCertPEM(cert.Raw)
	a.caHash = hashDER(cert.Raw)
}

// ensureServerCert loads server.crt and server.key and reissues them when
// either is missing, they do not match, they were signed by another CA
// (the CA was regenerated), a wanted name is missing or expiry is near.
// Unparseable files are an error instead: they suggest a disk problem or a
// bad hand edit that the operator should see.
func (a *Authority) ensureServerCert(wantDNS []string, wantIPs []ipName, now time.Time) error {
	certPath, keyPath := a.path(ServerCertFile), a.path(ServerKeyFile)
	reason := ""
	certPEM, certErr := os.ReadFile(certPath)
	keyPEM, keyErr := os.ReadFile(keyPath)
	switch {
	case errors.Is(certErr, fs.ErrNotExist):
		reason = ServerCertFile + " is missing"
	case certErr != nil:
		return fmt.Errorf("pki: read %s: %w", certPath, certErr)
	case errors.Is(keyErr, fs.ErrNotExist):
		reason = ServerKeyFile + " is missing"
	case keyErr != nil:
		return fmt.Errorf("pki: read %s: %w", keyPath, keyErr)
	}
	var (
		cert *x509.Certificate
		key  *ecdsa.PrivateKey
		err  error
	)
	if reason == "" {
		if cert, err = parseCertPEM(certPEM); err != nil {
			return corruptServer(certPath, err)
		}
		if key, err = parseKeyPEM(keyPEM); err != nil {
			return corruptServer(keyPath, err)
		}
		reason = a.serverCertStale(cert, key, wantDNS, wantIPs, now)
	}
	if reason == "" {
		if err := a.tightenMode(keyPath); err != nil {
			return err
		}
		a.setServer(cert, key)
		return nil
	}
	key, certDER, err := a.newServerCert(wantDNS, wantIPs, now)
	if err != nil {
		return err
	}
	keyPEM, err = encodeKeyPEM(key)
	if err != nil {
		return err
	}
	// Key first: a crash in between leaves a key that does not match the
	// old certificate, which the next start reissues.
	if err := writeFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return err
	}
	if err := writeFileAtomic(certPath, encodeCertPEM(certDER), 0o644); err != nil {
		return err
	}
	if cert, err = x509.ParseCertificate(certDER); err != nil {
		return fmt.Errorf("pki: parse the new server certificate: %w", err)
	}
	a.setServer(cert, key)
	a.changes = append(a.changes, fmt.Sprintf("issued server certificate (%s), valid until %s", reason, cert.NotAfter.UTC().Format(time.RFC3339)))
	return nil
}

// serverCertStale says why cert must be reissued, or "" if it can stay.
func (a *Authority) serverCertStale(cert *x509.Certificate, key *ecdsa.PrivateKey, wantDNS []string, wantIPs []ipName, now time.Time) string {
	if !key.PublicKey.Equal(cert.PublicKey) {
		return ServerKeyFile + " does not match " + ServerCertFile
	}
	if err := cert.CheckSignatureFrom(a.caCert); err != nil {
		return "it was signed by another CA"
	}
	if left := cert.NotAfter.Sub(now); left < ServerCertRenewBefore {
		return fmt.Sprintf("it expires on %s", cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if missing := missingNames(cert, wantDNS, wantIPs); missing != "" {
		return "it lacks " + missing
	}
	return ""
}

func (a *Authority) setServer(cert *x509.Certificate, key *ecdsa.PrivateKey) {
	a.serverLeaf = cert
	a.server = tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
}

// ensureJoinSecret loads join-secret or creates it.
func (a *Authority) ensureJoinSecret() error {
	p := a.path(JoinSecretFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		a.joinSecret = newSecret()
		if err := writeFileAtomic(p, []byte(a.joinSecret+"\n"), 0o600); err != nil {
			return err
		}
		a.changes = append(a.changes, "created join secret")
		return nil
	}
	if err != nil {
		return fmt.Errorf("pki: read %s: %w", p, err)
	}
	s := string(bytes.TrimSpace(b))
	if err := validSecret(s); err != nil {
		return fmt.Errorf("pki: %s is corrupt: %w. Delete it to generate a new join secret; joined agents keep working, agents joining later need the new join token", p, err)
	}
	if err := a.tightenMode(p); err != nil {
		return err
	}
	a.joinSecret = s
	return nil
}

// ServerTLSConfig is the TLS configuration for the API server: the server
// certificate signed by the CA. Each call returns a new config the caller
// may modify.
func (a *Authority) ServerTLSConfig() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{a.server},
		MinVersion:   tls.VersionTLS12,
	}
}

// CAPEM is the CA certificate, PEM encoded: public, for clients to trust.
func (a *Authority) CAPEM() []byte { return slices.Clone(a.caPEM) }

// CAHash is "sha256:" and the hex SHA-256 of the CA certificate's DER.
func (a *Authority) CAHash() string { return a.caHash }

// ServerCertNotAfter is when the current server certificate expires: worth
// exporting as a metric, since a server that runs for a year without a
// restart is not reissued one.
func (a *Authority) ServerCertNotAfter() time.Time { return a.serverLeaf.NotAfter }

func hashDER(der []byte) string {
	sum := sha256.Sum256(der)
	return hashPrefix + hex.EncodeToString(sum[:])
}

func corruptCA(path string, err error) error {
	return fmt.Errorf("pki: %s is corrupt: %v. Restore it from a backup, or delete %s and %s in %s to generate a new CA; a new CA invalidates every joined agent, which must re-join with the new join token", path, err, CACertFile, CAKeyFile, filepath.Dir(path))
}

func corruptServer(path string, err error) error {
	return fmt.Errorf("pki: %s is corrupt: %v. Delete it and restart to have a new server certificate issued by the same CA; joined agents keep working", path, err)
}

// tightenMode takes group and other permissions off a secret file that
// someone loosened (for example by copying it in with a wide umask).
func (a *Authority) tightenMode(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if fi.Mode().Perm()&0o077 == 0 {
		return nil
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return fmt.Errorf("pki: %s is readable by other users and chmod 0600 failed: %w", path, err)
	}
	a.changes = append(a.changes, fmt.Sprintf("%s was mode %#o, set to 0600", filepath.Base(path), fi.Mode().Perm()))
	return nil
}
