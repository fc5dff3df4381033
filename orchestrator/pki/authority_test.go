package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2031, 3, 1, 12, 0, 0, 0, time.UTC)

func mustEnsure(t *testing.T, dir string, hosts []string, now time.Time) *Authority {
	t.Helper()
	a, err := EnsureCA(dir, hosts, now)
	if err != nil {
		t.Fatalf("EnsureCA: %v", err)
	}
	return a
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseCertPEM(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

// snapshot reads every file in dir, to prove a later call changed nothing.
func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = b
	}
	return m
}

func TestEnsureCACreatesFilesThenReusesThem(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	hosts := []string{"Ops.Example.com", "10.0.0.5", "[fd00::5]", " "}
	a := mustEnsure(t, dir, hosts, t0)
	if len(a.Changes()) == 0 {
		t.Error("first start reported no changes")
	}

	wantModes := map[string]fs.FileMode{
		CACertFile: 0o644, CAKeyFile: 0o600, ServerCertFile: 0o644, ServerKeyFile: 0o600,
		JoinSecretFile: 0o600, JoinTokenFile: 0o600,
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != len(wantModes) {
		t.Errorf("files in %s: %v; want exactly %d (no leftover temporary files)", dir, names, len(wantModes))
	}
	for name, mode := range wantModes {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %#o, want %#o", name, fi.Mode().Perm(), mode)
		}
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("dir mode: %v %v, want 0700", fi.Mode().Perm(), err)
	}

	ca := readCert(t, filepath.Join(dir, CACertFile))
	if ca.Subject.CommonName != CACommonName || !ca.IsCA || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("CA: CN %q IsCA %v usage %v", ca.Subject.CommonName, ca.IsCA, ca.KeyUsage)
	}
	if pub, ok := ca.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("CA key: %T, want ECDSA P-256", ca.PublicKey)
	}
	if got := ca.NotAfter.Sub(t0); got != CAValidity {
		t.Errorf("CA valid for %v after now, want %v", got, CAValidity)
	}
	sum := sha256.Sum256(ca.Raw)
	if want := "sha256:" + hex.EncodeToString(sum[:]); a.CAHash() != want {
		t.Errorf("CAHash %q, want %q", a.CAHash(), want)
	}
	if !bytes.Equal(a.CAPEM(), encodeCertPEM(ca.Raw)) {
		t.Error("CAPEM is not ca.crt")
	}

	srv := readCert(t, filepath.Join(dir, ServerCertFile))
	if err := srv.CheckSignatureFrom(ca); err != nil {
		t.Errorf("server certificate not signed by the CA: %v", err)
	}
	if !srv.NotAfter.Equal(t0.Add(ServerCertValidity)) || !a.ServerCertNotAfter().Equal(srv.NotAfter) {
		t.Errorf("server NotAfter %v (reported %v), want now+1y", srv.NotAfter, a.ServerCertNotAfter())
	}
	wantDNS := []string{"localhost", "ops.example.com"}
	if hn, err := os.Hostname(); err == nil && validDNSName(hn) == nil {
		wantDNS = append(wantDNS, strings.ToLower(hn))
	}
	for _, d := range wantDNS {
		if !slices.Contains(srv.DNSNames, d) {
			t.Errorf("server DNS SANs %v lack %q", srv.DNSNames, d)
		}
	}
	for _, ip := range []string{"127.0.0.1", "::1", "10.0.0.5", "fd00::5"} {
		if !slices.ContainsFunc(srv.IPAddresses, func(have net.IP) bool { return have.Equal(net.ParseIP(ip)) }) {
			t.Errorf("server IP SANs %v lack %s", srv.IPAddresses, ip)
		}
	}

	tok, err := os.ReadFile(filepath.Join(dir, JoinTokenFile))
	if err != nil || string(tok) != a.JoinToken()+"\n" {
		t.Errorf("join-token file %q (%v), want the join token", tok, err)
	}

	before := snapshot(t, dir)
	b := mustEnsure(t, dir, hosts, t0.Add(24*time.Hour))
	if b.CAHash() != a.CAHash() || b.JoinToken() != a.JoinToken() {
		t.Error("second start changed the CA or the join token")
	}
	if !b.ServerCertNotAfter().Equal(a.ServerCertNotAfter()) {
		t.Error("second start reissued a good server certificate")
	}
	if len(b.Changes()) != 0 {
		t.Errorf("second start reported changes %q", b.Changes())
	}
	after := snapshot(t, dir)
	for name, content := range before {
		if !bytes.Equal(after[name], content) {
			t.Errorf("second start rewrote %s", name)
		}
	}
}

func TestEnsureCAReissuesServerCertKeepingCA(t *testing.T) {
	hosts := []string{"ops.example.com"}
	tests := []struct {
		name    string
		hosts   []string
		now     time.Time
		mutate  func(t *testing.T, dir string)
		reissue bool
		newCA   bool
	}{
		{name: "unchanged", hosts: hosts, now: t0.Add(time.Hour)},
		{name: "fewer names are still covered", hosts: nil, now: t0.Add(time.Hour)},
		{name: "new DNS name", hosts: append(slices.Clone(hosts), "new.example.com"), now: t0.Add(time.Hour), reissue: true},
		{name: "new IP", hosts: append(slices.Clone(hosts), "192.0.2.7"), now: t0.Add(time.Hour), reissue: true},
		{name: "expires in 35 days", hosts: hosts, now: t0.Add(ServerCertValidity - 35*24*time.Hour)},
		{name: "expires in 25 days", hosts: hosts, now: t0.Add(ServerCertValidity - 25*24*time.Hour), reissue: true},
		{name: "expired", hosts: hosts, now: t0.Add(2 * ServerCertValidity), reissue: true},
		{name: "server.key missing", hosts: hosts, now: t0, reissue: true, mutate: func(t *testing.T, dir string) {
			rm(t, dir, ServerKeyFile)
		}},
		{name: "server.crt missing", hosts: hosts, now: t0, reissue: true, mutate: func(t *testing.T, dir string) {
			rm(t, dir, ServerCertFile)
		}},
		{name: "server.key from another pair", hosts: hosts, now: t0, reissue: true, mutate: func(t *testing.T, dir string) {
			other := mustEnsure(t, t.TempDir(), nil, t0)
			copyFile(t, filepath.Join(other.Dir(), ServerKeyFile), filepath.Join(dir, ServerKeyFile))
		}},
		{name: "CA deleted to regenerate", hosts: hosts, now: t0, reissue: true, newCA: true, mutate: func(t *testing.T, dir string) {
			rm(t, dir, CACertFile)
			rm(t, dir, CAKeyFile)
		}},
		{name: "interrupted first start left ca.key alone", hosts: hosts, now: t0, reissue: true, newCA: true, mutate: func(t *testing.T, dir string) {
			rm(t, dir, CACertFile)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			a := mustEnsure(t, dir, hosts, t0)
			if tt.mutate != nil {
				tt.mutate(t, dir)
			}
			b := mustEnsure(t, dir, tt.hosts, tt.now)
			if gotNew := b.CAHash() != a.CAHash(); gotNew != tt.newCA {
				t.Errorf("new CA: %v, want %v", gotNew, tt.newCA)
			}
			_, secretA, _ := ParseJoinToken(a.JoinToken())
			_, secretB, _ := ParseJoinToken(b.JoinToken())
			if secretA != secretB {
				t.Error("the join secret changed")
			}
			srv := readCert(t, filepath.Join(dir, ServerCertFile))
			reissued := !srv.NotAfter.Equal(a.ServerCertNotAfter()) || !bytes.Equal(srv.Raw, a.serverLeaf.Raw)
			if reissued != tt.reissue {
				t.Fatalf("reissued: %v, want %v (changes %q)", reissued, tt.reissue, b.Changes())
			}
			if !tt.reissue {
				return
			}
			if len(b.Changes()) == 0 {
				t.Error("a reissue was not reported in Changes")
			}
			ca := readCert(t, filepath.Join(dir, CACertFile))
			if err := srv.CheckSignatureFrom(ca); err != nil {
				t.Errorf("reissued certificate not signed by the CA on disk: %v", err)
			}
			if want := tt.now.Add(ServerCertValidity); !srv.NotAfter.Equal(want) {
				t.Errorf("reissued NotAfter %v, want %v", srv.NotAfter, want)
			}
			dns, ips := mustNames(t, tt.hosts)
			if m := missingNames(srv, dns, ips); m != "" {
				t.Errorf("reissued certificate lacks %s", m)
			}
			// Reissued once, then stable.
			c := mustEnsure(t, dir, tt.hosts, tt.now)
			if len(c.Changes()) != 0 {
				t.Errorf("third start changed %q", c.Changes())
			}
		})
	}
}

func TestEnsureCATightensLoosenedModes(t *testing.T) {
	dir := t.TempDir()
	mustEnsure(t, dir, nil, t0)
	for _, name := range []string{CAKeyFile, ServerKeyFile, JoinSecretFile, JoinTokenFile} {
		if err := os.Chmod(filepath.Join(dir, name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	a := mustEnsure(t, dir, nil, t0)
	if len(a.Changes()) != 4 {
		t.Errorf("changes %q, want one per loosened file", a.Changes())
	}
	for _, name := range []string{CAKeyFile, ServerKeyFile, JoinSecretFile, JoinTokenFile, "."} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: mode %v (%v), want no group/other access", name, fi.Mode().Perm(), err)
		}
	}
}

func TestEnsureCAErrorsNameTheFileAndTheFix(t *testing.T) {
	garbage := []byte("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n")
	caFix := []string{"delete ca.crt and ca.key", "invalidates every joined agent", "re-join"}
	serverFix := []string{"Delete it", "joined agents keep working"}
	tests := []struct {
		name   string
		hosts  []string
		now    time.Time
		mutate func(t *testing.T, dir string)
		want   []string
	}{
		{name: "corrupt ca.crt", mutate: func(t *testing.T, dir string) { write(t, dir, CACertFile, garbage) },
			want: append([]string{"ca.crt is corrupt"}, caFix...)},
		{name: "corrupt ca.key", mutate: func(t *testing.T, dir string) { write(t, dir, CAKeyFile, []byte("junk")) },
			want: append([]string{"ca.key is corrupt"}, caFix...)},
		{name: "ca.key of another CA", mutate: func(t *testing.T, dir string) {
			other := mustEnsure(t, t.TempDir(), nil, t0)
			copyFile(t, filepath.Join(other.Dir(), CAKeyFile), filepath.Join(dir, CAKeyFile))
		}, want: append([]string{"ca.key is corrupt", "does not belong to ca.crt"}, caFix...)},
		{name: "ca.crt is not a CA", mutate: func(t *testing.T, dir string) {
			copyFile(t, filepath.Join(dir, ServerCertFile), filepath.Join(dir, CACertFile))
		}, want: append([]string{"ca.crt is corrupt", "not a CA certificate"}, caFix...)},
		{name: "ca.key missing", mutate: func(t *testing.T, dir string) { rm(t, dir, CAKeyFile) },
			want: []string{"ca.key is missing", "Restore ca.key", "delete ca.crt", "invalidates every joined agent"}},
		{name: "CA expired", now: t0.Add(CAValidity + time.Hour),
			want: []string{"ca.crt expired", "Delete ca.crt and ca.key", "re-join"}},
		{name: "corrupt server.crt", mutate: func(t *testing.T, dir string) { write(t, dir, ServerCertFile, garbage) },
			want: append([]string{"server.crt is corrupt"}, serverFix...)},
		{name: "corrupt server.key", mutate: func(t *testing.T, dir string) {
			write(t, dir, ServerKeyFile, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
		},
			want: append([]string{"server.key is corrupt"}, serverFix...)},
		{name: "empty join-secret", mutate: func(t *testing.T, dir string) { write(t, dir, JoinSecretFile, nil) },
			want: []string{"join-secret is corrupt", "Delete it", "joined agents keep working"}},
		{name: "join-secret with spaces", mutate: func(t *testing.T, dir string) { write(t, dir, JoinSecretFile, []byte("a secret with spaces in it")) },
			want: []string{"join-secret is corrupt", "printable ASCII"}},
		{name: "host with scheme", hosts: []string{"https://ops.example.com"}, want: []string{`"https://ops.example.com"`, "without scheme or port"}},
		{name: "host with port", hosts: []string{"ops.example.com:9440"}, want: []string{`"ops.example.com:9440"`, "without scheme or port"}},
		{name: "host with space", hosts: []string{"ops example"}, want: []string{`"ops example"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			mustEnsure(t, dir, nil, t0)
			if tt.mutate != nil {
				tt.mutate(t, dir)
			}
			now := tt.now
			if now.IsZero() {
				now = t0
			}
			_, err := EnsureCA(dir, tt.hosts, now)
			if err == nil {
				t.Fatal("want an error")
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(strings.ToLower(msg), strings.ToLower(w)) {
					t.Errorf("error %q\nlacks %q", msg, w)
				}
			}
			if tt.mutate != nil && !strings.Contains(msg, dir) {
				t.Errorf("error %q does not name the file's full path", msg)
			}
		})
	}
}

func TestServerTLSConfigServesTheServerCert(t *testing.T) {
	a := mustEnsure(t, t.TempDir(), nil, t0)
	c1, c2 := a.ServerTLSConfig(), a.ServerTLSConfig()
	if c1 == c2 {
		t.Error("ServerTLSConfig returned a shared config")
	}
	if len(c1.Certificates) != 1 || !bytes.Equal(c1.Certificates[0].Leaf.Raw, a.serverLeaf.Raw) {
		t.Error("ServerTLSConfig does not carry the server certificate")
	}
	if c1.MinVersion == 0 {
		t.Error("no minimum TLS version")
	}
}

func mustNames(t *testing.T, hosts []string) ([]string, []ipName) {
	t.Helper()
	dns, ips, err := sanNames(hosts)
	if err != nil {
		t.Fatal(err)
	}
	return dns, ips
}

func rm(t *testing.T, dir, name string) {
	t.Helper()
	if err := os.Remove(filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, dir, name string, b []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
