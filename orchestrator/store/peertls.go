package store

import (
	"fmt"
	"os"
	"strings"
)

// PeerTLS is a member's peer certificate, its key and the CA its peers'
// certificates must chain to, as PEM files. The certificate must be valid
// for server and client authentication and name the hosts of the member's
// peer URLs; etcd also checks that a dialling member's certificate names
// the address it connects from.
type PeerTLS struct {
	CertFile, KeyFile, TrustedCAFile string
}

// Enabled says whether any file is set (checkMember insists on all three).
func (t PeerTLS) Enabled() bool { return t != PeerTLS{} }

// check insists on all three files once one is set.
func (t PeerTLS) check() error {
	if !t.Enabled() {
		return nil
	}
	var missing []string
	for _, f := range []struct{ name, path string }{
		{"certificate", t.CertFile}, {"key", t.KeyFile}, {"trusted CA", t.TrustedCAFile},
	} {
		if f.path == "" {
			missing = append(missing, f.name+" file")
		}
	}
	if len(missing) > 0 {
		return configErr("peer_tls", fmt.Sprintf("peer TLS needs a certificate, a key and a trusted CA file; not set: %s", strings.Join(missing, ", ")))
	}
	return nil
}

// checkFiles reports a missing or unreadable file before etcd starts, by
// name, rather than as etcd's listener error.
func (t PeerTLS) checkFiles() error {
	for _, f := range []struct{ name, path string }{
		{"certificate", t.CertFile}, {"key", t.KeyFile}, {"trusted CA", t.TrustedCAFile},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.ReadFile(f.path); err != nil {
			return fmt.Errorf("store: peer TLS %s file: %w", f.name, err)
		}
	}
	return nil
}

// checkPeerScheme says what is wrong when a peer URL's scheme does not
// match whether peer TLS is on: every member of a cluster speaks TLS to
// every other, or none does. member names the initial_cluster entry.
func checkPeerScheme(field, member, rawURL string, tlsOn bool) error {
	scheme, _, _ := strings.Cut(rawURL, "://")
	if member != "" {
		rawURL = fmt.Sprintf("member %q's peer URL %s", member, rawURL)
	}
	switch {
	case tlsOn && scheme != "https":
		return configErr(field, fmt.Sprintf("%s is not https://, but peer TLS is on: the members accept only TLS connections; use https:// in peer_url, advertise_peer_url and every member of initial_cluster", rawURL))
	case !tlsOn && scheme == "https" && field == "peer_url":
		return configErr(field, fmt.Sprintf("%s is https://, which needs peer TLS: a certificate, key and trusted CA file (PeerTLS); or use http://", rawURL))
	case !tlsOn && scheme == "https":
		return configErr(field, fmt.Sprintf("%s is https://, but this member's peer_url is not, so it has no peer TLS; make peer_url https:// too (the members then all speak TLS), or use http:// everywhere", rawURL))
	}
	return nil
}
