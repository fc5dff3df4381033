package pki

import (
	"bytes"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func mustEnsurePeer(t *testing.T, dir string, peerHosts []string, now time.Time) *Authority {
	t.Helper()
	a, err := EnsureCA(dir, nil, now, WithPeerCert(peerHosts))
	if err != nil {
		t.Fatalf("EnsureCA: %v", err)
	}
	return a
}

func TestWithPeerCertIssuesAServerAndClientCertFromTheCA(t *testing.T) {
	dir := t.TempDir()
	a := mustEnsurePeer(t, dir, []string{"10.0.1.10", "cp-a.example.com", "0.0.0.0"}, t0)
	files, ok := a.PeerFiles()
	if !ok {
		t.Fatal("PeerFiles: none after WithPeerCert")
	}
	want := PeerFiles{CertFile: filepath.Join(dir, PeerCertFile), KeyFile: filepath.Join(dir, PeerKeyFile), TrustedCAFile: filepath.Join(dir, CACertFile)}
	if files.CertFile != want.CertFile || files.KeyFile != want.KeyFile || files.TrustedCAFile != want.TrustedCAFile {
		t.Errorf("PeerFiles = %+v, want %+v", files, want)
	}
	for name, mode := range map[string]os.FileMode{PeerCertFile: 0o644, PeerKeyFile: 0o600} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v, want mode %#o", name, err, mode)
		}
	}
	if !slices.ContainsFunc(a.Changes(), func(c string) bool { return strings.Contains(c, "issued peer certificate") }) {
		t.Errorf("changes %q do not report the peer certificate", a.Changes())
	}

	peer := readCert(t, files.CertFile)
	ca := readCert(t, filepath.Join(dir, CACertFile))
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	// etcd verifies the same certificate as a server (dialled member) and
	// as a client (dialling member).
	for _, use := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := peer.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{use}, CurrentTime: t0}); err != nil {
			t.Errorf("peer certificate not valid for %s: %v", usageName(use), err)
		}
	}
	for _, host := range []string{"10.0.1.10", "cp-a.example.com", "127.0.0.1", "::1", "localhost"} {
		if err := peer.VerifyHostname(host); err != nil {
			t.Errorf("peer certificate does not cover %s: %v", host, err)
		}
	}
	if slices.ContainsFunc(peer.IPAddresses, func(ip net.IP) bool { return ip.IsUnspecified() }) {
		t.Errorf("peer certificate names a listen-all address: %v", peer.IPAddresses)
	}
	if !peer.NotAfter.Equal(t0.Add(ServerCertValidity)) || !files.NotAfter.Equal(peer.NotAfter) {
		t.Errorf("peer NotAfter %v (reported %v), want now+1y", peer.NotAfter, files.NotAfter)
	}
	// The server certificate stays a server certificate: it must not let
	// its holder act as an etcd member.
	srv := readCert(t, filepath.Join(dir, ServerCertFile))
	if _, err := srv.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, CurrentTime: t0}); err == nil {
		t.Error("the server certificate is valid for client authentication")
	}

	before := snapshot(t, dir)
	b := mustEnsurePeer(t, dir, []string{"cp-a.example.com", "10.0.1.10"}, t0.Add(time.Hour))
	if len(b.Changes()) != 0 {
		t.Errorf("second start changed %q", b.Changes())
	}
	for name, content := range before {
		if !bytes.Equal(snapshot(t, dir)[name], content) {
			t.Errorf("second start rewrote %s", name)
		}
	}
}

func TestEnsureCAWithoutPeerCertLeavesNone(t *testing.T) {
	dir := t.TempDir()
	a := mustEnsure(t, dir, nil, t0)
	if _, ok := a.PeerFiles(); ok {
		t.Error("PeerFiles without WithPeerCert")
	}
	for _, name := range []string{PeerCertFile, PeerKeyFile} {
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Errorf("%s exists without WithPeerCert: %v", name, err)
		}
	}
}

func TestWithPeerCertReissues(t *testing.T) {
	hosts := []string{"10.0.1.10"}
	tests := []struct {
		name    string
		hosts   []string
		now     time.Time
		mutate  func(t *testing.T, dir string)
		reissue bool
	}{
		{name: "unchanged", hosts: hosts, now: t0.Add(time.Hour)},
		{name: "fewer hosts are still covered", hosts: nil, now: t0.Add(time.Hour)},
		{name: "new advertised host", hosts: append(slices.Clone(hosts), "cp-a.example.com"), now: t0.Add(time.Hour), reissue: true},
		{name: "moved to another IP", hosts: []string{"10.0.9.9"}, now: t0.Add(time.Hour), reissue: true},
		{name: "expires in 35 days", hosts: hosts, now: t0.Add(ServerCertValidity - 35*24*time.Hour)},
		{name: "expires in 25 days", hosts: hosts, now: t0.Add(ServerCertValidity - 25*24*time.Hour), reissue: true},
		{name: "peer.key missing", hosts: hosts, now: t0, reissue: true, mutate: func(t *testing.T, dir string) { rm(t, dir, PeerKeyFile) }},
		{name: "peer.crt missing", hosts: hosts, now: t0, reissue: true, mutate: func(t *testing.T, dir string) { rm(t, dir, PeerCertFile) }},
		{name: "server certificate copied over it (no client authentication)", hosts: hosts, now: t0, reissue: true, mutate: func(t *testing.T, dir string) {
			copyFile(t, filepath.Join(dir, ServerCertFile), filepath.Join(dir, PeerCertFile))
			copyFile(t, filepath.Join(dir, ServerKeyFile), filepath.Join(dir, PeerKeyFile))
		}},
		{name: "another replica's CA copied in", hosts: hosts, now: t0, reissue: true, mutate: func(t *testing.T, dir string) {
			other := mustEnsure(t, t.TempDir(), nil, t0)
			for _, f := range []string{CACertFile, CAKeyFile} {
				copyFile(t, filepath.Join(other.Dir(), f), filepath.Join(dir, f))
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			a := mustEnsurePeer(t, dir, hosts, t0)
			first, _ := a.PeerFiles()
			firstCert := readCert(t, first.CertFile)
			if tt.mutate != nil {
				tt.mutate(t, dir)
			}
			b := mustEnsurePeer(t, dir, tt.hosts, tt.now)
			files, _ := b.PeerFiles()
			peer := readCert(t, files.CertFile)
			if reissued := !bytes.Equal(peer.Raw, firstCert.Raw); reissued != tt.reissue {
				t.Fatalf("reissued: %v, want %v (changes %q)", reissued, tt.reissue, b.Changes())
			}
			if !tt.reissue {
				return
			}
			if !slices.ContainsFunc(b.Changes(), func(c string) bool { return strings.Contains(c, "peer certificate") }) {
				t.Errorf("the reissue was not reported: %q", b.Changes())
			}
			if err := peer.CheckSignatureFrom(readCert(t, files.TrustedCAFile)); err != nil {
				t.Errorf("reissued peer certificate not signed by the CA on disk: %v", err)
			}
			if m := missingUsages(peer, peerProfile.usages); m != "" {
				t.Errorf("reissued peer certificate lacks %s", m)
			}
			dns, ips := mustNames(t, tt.hosts)
			if m := missingNames(peer, dns, ips); m != "" {
				t.Errorf("reissued peer certificate lacks %s", m)
			}
			if c := mustEnsurePeer(t, dir, tt.hosts, tt.now); len(c.Changes()) != 0 {
				t.Errorf("third start changed %q", c.Changes())
			}
		})
	}
}

func TestWithPeerCertErrorsNameTheFileAndTheFix(t *testing.T) {
	dir := t.TempDir()
	mustEnsurePeer(t, dir, nil, t0)
	write(t, dir, PeerCertFile, []byte("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"))
	_, err := EnsureCA(dir, nil, t0, WithPeerCert(nil))
	if err == nil {
		t.Fatal("want an error for a corrupt peer.crt")
	}
	for _, w := range []string{filepath.Join(dir, PeerCertFile) + " is corrupt", "Delete it", "new peer certificate", "same CA"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q\nlacks %q", err, w)
		}
	}
	if _, err := EnsureCA(t.TempDir(), nil, t0, WithPeerCert([]string{"https://10.0.1.10:2380"})); err == nil || !strings.Contains(err.Error(), "without scheme or port") {
		t.Errorf("a URL as peer host: %v, want a 'without scheme or port' error", err)
	}
}

func TestWithPeerCertTightensALoosenedKey(t *testing.T) {
	dir := t.TempDir()
	mustEnsurePeer(t, dir, nil, t0)
	if err := os.Chmod(filepath.Join(dir, PeerKeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	a := mustEnsurePeer(t, dir, nil, t0)
	if fi, err := os.Stat(filepath.Join(dir, PeerKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("peer.key mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	if len(a.Changes()) != 1 {
		t.Errorf("changes %q, want one for peer.key", a.Changes())
	}
}
