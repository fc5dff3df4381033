package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"
)

// CACommonName is the subject CN of the CA certificate.
const CACommonName = "opspilot CA"

// ipName is an IP SAN; netip.Addr compares with ==, unlike net.IP.
type ipName = netip.Addr

// defaultDNS and defaultIPs are always in a leaf certificate, so local
// tools and the agent on the server's own host connect without flags (and
// etcd members on one host reach each other over loopback).
var (
	defaultDNS = []string{"localhost"}
	defaultIPs = []ipName{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}
)

// sanNames turns the requested hosts plus the defaults and the hostname
// into sorted, deduplicated DNS and IP SANs. A listen-all address (0.0.0.0,
// ::) is skipped: nobody dials it, so it names nothing.
func sanNames(hosts []string) ([]string, []ipName, error) {
	dns := slices.Clone(defaultDNS)
	ips := slices.Clone(defaultIPs)
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if ip, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")); err == nil {
			if !ip.IsUnspecified() {
				ips = append(ips, ip.Unmap().WithZone(""))
			}
			continue
		}
		if err := validDNSName(h); err != nil {
			return nil, nil, fmt.Errorf("pki: certificate host %q: %v; give a DNS name (optionally *.domain) or an IP address, without scheme or port", h, err)
		}
		dns = append(dns, strings.ToLower(h))
	}
	// A hostname that is not a valid DNS name (some hosts use "_") cannot
	// be a SAN; agents then reach the server by a name given in hosts.
	if hn, err := os.Hostname(); err == nil && validDNSName(hn) == nil {
		dns = append(dns, strings.ToLower(hn))
	}
	slices.Sort(dns)
	slices.SortFunc(ips, func(a, b ipName) int { return a.Compare(b) })
	return slices.Compact(dns), slices.Compact(ips), nil
}

// validDNSName accepts LDH labels, a leading "*." wildcard and a trailing
// dot-free name of at most 253 characters.
func validDNSName(s string) error {
	if len(s) > 253 {
		return errors.New("longer than 253 characters")
	}
	name := strings.TrimPrefix(s, "*.")
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 {
			return errors.New("labels must be 1 to 63 characters, separated by single dots")
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' && i > 0 && i < len(label)-1
			if !ok {
				return fmt.Errorf("label %q: only letters, digits and inner hyphens are allowed", label)
			}
		}
	}
	return nil
}

// missingNames lists the wanted names cert does not cover, or "".
func missingNames(cert *x509.Certificate, wantDNS []string, wantIPs []ipName) string {
	var missing []string
	for _, d := range wantDNS {
		if !slices.ContainsFunc(cert.DNSNames, func(have string) bool { return strings.EqualFold(have, d) }) {
			missing = append(missing, d)
		}
	}
	for _, ip := range wantIPs {
		if !slices.ContainsFunc(cert.IPAddresses, func(have net.IP) bool {
			a, ok := netip.AddrFromSlice(have)
			return ok && a.Unmap() == ip
		}) {
			missing = append(missing, ip.String())
		}
	}
	return strings.Join(missing, ", ")
}

func randomSerial() (*big.Int, error) {
	// 128 random bits, as the CA/Browser baseline asks for at least 64.
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
}

func newCA(now time.Time) (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: generate CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, fmt.Errorf("pki: CA serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: CACommonName},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// Only leaf certificates below it: no intermediate CAs.
		MaxPathLen:     0,
		MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: create CA certificate: %w", err)
	}
	return key, der, nil
}

// leafProfile is what distinguishes one kind of leaf certificate the
// authority keeps from another: its files, subject and uses.
type leafProfile struct {
	certFile, keyFile string
	commonName        string
	// what names it in messages: "server certificate".
	what   string
	usages []x509.ExtKeyUsage
	// afterDelete tells the operator what deleting a corrupt file costs.
	afterDelete string
}

var (
	serverProfile = leafProfile{
		certFile: ServerCertFile, keyFile: ServerKeyFile, commonName: "opspilot server",
		what: "server certificate", usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		afterDelete: "joined agents keep working",
	}
	// An etcd peer both serves its peer URL and dials the other members
	// with the same certificate (etcd's --peer-cert-file), so it needs both
	// uses.
	peerProfile = leafProfile{
		certFile: PeerCertFile, keyFile: PeerKeyFile, commonName: "opspilot etcd peer",
		what: "peer certificate", usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		afterDelete: "the other etcd members trust the new one, as it comes from the same CA",
	}
)

// missingUsages lists the wanted extended key usages cert lacks, or "".
func missingUsages(cert *x509.Certificate, want []x509.ExtKeyUsage) string {
	var missing []string
	for _, u := range want {
		if !slices.Contains(cert.ExtKeyUsage, u) {
			missing = append(missing, usageName(u))
		}
	}
	return strings.Join(missing, ", ")
}

func usageName(u x509.ExtKeyUsage) string {
	switch u {
	case x509.ExtKeyUsageServerAuth:
		return "server authentication"
	case x509.ExtKeyUsageClientAuth:
		return "client authentication"
	}
	return fmt.Sprintf("extended key usage %d", u)
}

// newLeafCert issues a certificate of profile p for the given names.
func (a *Authority) newLeafCert(p leafProfile, dns []string, ips []ipName, now time.Time) (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: generate %s key: %w", p.what, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, fmt.Errorf("pki: %s serial: %w", p.what, err)
	}
	netIPs := make([]net.IP, len(ips))
	for i, ip := range ips {
		netIPs[i] = net.IP(ip.AsSlice())
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: p.commonName},
		NotBefore:    now.Add(-backdate),
		// Never past the CA: verifiers reject a chain beyond its root's end.
		NotAfter:              minTime(now.Add(ServerCertValidity), a.caCert.NotAfter),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           slices.Clone(p.usages),
		BasicConstraintsValid: true,
		DNSNames:              dns,
		IPAddresses:           netIPs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.caCert, &key.PublicKey, a.caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: sign %s: %w", p.what, err)
	}
	return key, der, nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func encodeCertPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func encodeKeyPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("pki: encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// parseCertPEM parses the first CERTIFICATE block of b.
func parseCertPEM(b []byte) (*x509.Certificate, error) {
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return nil, errors.New("no PEM CERTIFICATE block")
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		return cert, nil
	}
}

// parseKeyPEM parses an ECDSA key in PKCS#8 ("PRIVATE KEY", what EnsureCA
// writes) or SEC 1 ("EC PRIVATE KEY", what openssl ecparam writes) form.
func parseKeyPEM(b []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM private key block")
	}
	switch block.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse PKCS#8 key: %w", err)
		}
		ec, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("want an ECDSA key, found %T", k)
		}
		return ec, nil
	case "EC PRIVATE KEY":
		k, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse EC key: %w", err)
		}
		return k, nil
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", block.Type)
	}
}
