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
	// PeerCertFile and PeerKeyFile are the embedded etcd member's peer
	// certificate (WithPeerCert).
	PeerCertFile   = "peer.crt"
	PeerKeyFile    = "peer.key"
	JoinSecretFile = "join-secret"
	JoinTokenFile  = "join-token"
)

// Lifetimes and the renewal margin of the certificates EnsureCA issues;
// the peer certificate has the server certificate's.
const (
	CAValidity         = 10 * 365 * 24 * time.Hour
	ServerCertValidity = 365 * 24 * time.Hour
	// ServerCertRenewBefore: a server or peer certificate expiring sooner
	// than this is reissued at start, so a yearly restart never runs into
	// expiry.
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
	peerLeaf   *x509.Certificate // nil without WithPeerCert
	joinSecret string
	changes    []string
}

// Option adds to what EnsureCA keeps in its directory.
type Option func(*options)

type options struct {
	peer      bool
	peerHosts []string
}

// WithPeerCert makes EnsureCA also keep peer.crt and peer.key: the
// certificate of this replica's embedded etcd member, which serves its peer
// URL and dials the other members with it (server and client
// authentication). hosts are the hosts of its peer and advertised peer
// URLs; like the server certificate it always also covers localhost,
// 127.0.0.1, ::1 and os.Hostname(), and it is reissued when it lacks a
// host or nears expiry. The members trust each other because every
// replica's DATA_DIR/pki holds the same CA.
func WithPeerCert(hosts []string) Option {
	return func(o *options) { o.peer, o.peerHosts = true, hosts }
}

// EnsureCA creates the CA, server certificate and join secret in dir on
// first start and loads them afterwards. hosts are the DNS names and IP
// addresses agents use to reach the server; the server certificate always
// also covers localhost, 127.0.0.1, ::1 and os.Hostname(). now is the
// current time (a parameter so tests can move it).
func EnsureCA(dir string, hosts []string, now time.Time, opts ...Option) (*Authority, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	wantDNS, wantIPs, err := sanNames(hosts)
	if err != nil {
		return nil, err
	}
	var peerDNS []string
	var peerIPs []ipName
	if o.peer {
		if peerDNS, peerIPs, err = sanNames(o.peerHosts); err != nil {
			return nil, err
		}
	}
	if err := ensureDir(dir); err != nil {
		return nil, err
	}
	a := &Authority{dir: dir}
	if err := a.ensureCA(now); err != nil {
		return nil, err
	}
	cert, key, err := a.ensureLeaf(serverProfile, wantDNS, wantIPs, now)
	if err != nil {
		return nil, err
	}
	a.serverLeaf = cert
	a.server = tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
	if o.peer {
		if a.peerLeaf, _, err = a.ensureLeaf(peerProfile, peerDNS, peerIPs, now); err != nil {
			return nil, err
		}
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

// ensureLeaf loads the certificate and key of profile p and reissues them
// when either is missing, they do not match, they were signed by another
// CA (the CA was regenerated), a wanted name or use is missing or expiry
// is near. Unparseable files are an error instead: they suggest a disk
// problem or a bad hand edit that the operator should see.
func (a *Authority) ensureLeaf(p leafProfile, wantDNS []string, wantIPs []ipName, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certPath, keyPath := a.path(p.certFile), a.path(p.keyFile)
	reason := ""
	certPEM, certErr := os.ReadFile(certPath)
	keyPEM, keyErr := os.ReadFile(keyPath)
	switch {
	case errors.Is(certErr, fs.ErrNotExist):
		reason = p.certFile + " is missing"
	case certErr != nil:
		return nil, nil, fmt.Errorf("pki: read %s: %w", certPath, certErr)
	case errors.Is(keyErr, fs.ErrNotExist):
		reason = p.keyFile + " is missing"
	case keyErr != nil:
		return nil, nil, fmt.Errorf("pki: read %s: %w", keyPath, keyErr)
	}
	var (
		cert *x509.Certificate
		key  *ecdsa.PrivateKey
		err  error
	)
	if reason == "" {
		if cert, err = parseCertPEM(certPEM); err != nil {
			return nil, nil, corruptLeaf(p, certPath, err)
		}
		if key, err = parseKeyPEM(keyPEM); err != nil {
			return nil, nil, corruptLeaf(p, keyPath, err)
		}
		reason = a.leafStale(p, cert, key, wantDNS, wantIPs, now)
	}
	if reason == "" {
		if err := a.tightenMode(keyPath); err != nil {
			return nil, nil, err
		}
		return cert, key, nil
	}
	key, certDER, err := a.newLeafCert(p, wantDNS, wantIPs, now)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = encodeKeyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	// Key first: a crash in between leaves a key that does not match the
	// old certificate, which the next start reissues.
	if err := writeFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return nil, nil, err
	}
	if err := writeFileAtomic(certPath, encodeCertPEM(certDER), 0o644); err != nil {
		return nil, nil, err
	}
	if cert, err = x509.ParseCertificate(certDER); err != nil {
		return nil, nil, fmt.Errorf("pki: parse the new %s: %w", p.what, err)
	}
	a.changes = append(a.changes, fmt.Sprintf("issued %s (%s), valid until %s", p.what, reason, cert.NotAfter.UTC().Format(time.RFC3339)))
	return cert, key, nil
}

// leafStale says why cert must be reissued, or "" if it can stay.
func (a *Authority) leafStale(p leafProfile, cert *x509.Certificate, key *ecdsa.PrivateKey, wantDNS []string, wantIPs []ipName, now time.Time) string {
	if !key.PublicKey.Equal(cert.PublicKey) {
		return p.keyFile + " does not match " + p.certFile
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
	if missing := missingUsages(cert, p.usages); missing != "" {
		return "it is not valid for " + missing
	}
	return ""
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

// PeerFiles are the files an embedded etcd member's peer TLS reads.
type PeerFiles struct {
	CertFile, KeyFile, TrustedCAFile string
	// NotAfter is when the peer certificate expires.
	NotAfter time.Time
}

// PeerFiles is where the peer certificate, its key and the CA are; false
// when EnsureCA ran without WithPeerCert.
func (a *Authority) PeerFiles() (PeerFiles, bool) {
	if a.peerLeaf == nil {
		return PeerFiles{}, false
	}
	return PeerFiles{
		CertFile: a.path(PeerCertFile), KeyFile: a.path(PeerKeyFile), TrustedCAFile: a.path(CACertFile),
		NotAfter: a.peerLeaf.NotAfter,
	}, true
}

func hashDER(der []byte) string {
	sum := sha256.Sum256(der)
	return hashPrefix + hex.EncodeToString(sum[:])
}

func corruptCA(path string, err error) error {
	return fmt.Errorf("pki: %s is corrupt: %v. Restore it from a backup, or delete %s and %s in %s to generate a new CA; a new CA invalidates every joined agent, which must re-join with the new join token", path, err, CACertFile, CAKeyFile, filepath.Dir(path))
}

func corruptLeaf(p leafProfile, path string, err error) error {
	return fmt.Errorf("pki: %s is corrupt: %v. Delete it and restart to have a new %s issued by the same CA; %s", path, err, p.what, p.afterDelete)
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
