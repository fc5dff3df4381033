package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"opspilot/internal/tlsprobe"
	"opspilot/orchestrator/pki"
	"opspilot/orchestrator/store"
	"opspilot/test/testbin"
)

// httpsCluster is replica cp-a of a three-member cluster over https://
// peer URLs, listening on all addresses.
func httpsCluster(dataDir string) FileConfig {
	c := defaultFileConfig()
	c.DataDir = dataDir
	c.Orchestrator.Store.Name = "cp-a"
	c.Orchestrator.Store.ClientURL = "http://127.0.0.1:2379"
	c.Orchestrator.Store.PeerURL = "https://0.0.0.0:2380"
	c.Orchestrator.Store.AdvertisePeerURL = "https://cp-a.example.com:2380"
	c.Orchestrator.Store.InitialCluster = "cp-a=https://cp-a.example.com:2380,cp-b=https://10.0.2.10:2380,cp-c=https://10.0.3.10:2380"
	return c
}

func TestStoreConfigPeerTLSFollowsThePeerURL(t *testing.T) {
	c := httpsCluster("/var/lib/opspilot")
	if ps := c.Validate(); len(ps) != 0 {
		t.Fatalf("a cluster over https peer URLs is invalid: %v", ps)
	}
	want := store.PeerTLS{CertFile: "/var/lib/opspilot/pki/peer.crt", KeyFile: "/var/lib/opspilot/pki/peer.key", TrustedCAFile: "/var/lib/opspilot/pki/ca.crt"}
	if got := c.storeConfig().PeerTLS; got != want {
		t.Errorf("PeerTLS = %+v, want %+v", got, want)
	}
	if got := c.Orchestrator.Store.peerHosts(); !slices.Equal(got, []string{"0.0.0.0", "cp-a.example.com"}) {
		t.Errorf("peer hosts = %v, want the listen and advertised hosts", got)
	}
	// The scheduled inspection report watches the peer certificate's
	// expiry too, only when there is one.
	if got := inspectionCerts(c); !slices.Contains(got, want.CertFile) {
		t.Errorf("inspection certificates %v lack the peer certificate", got)
	}
	if got := inspectionCerts(defaultFileConfig()); slices.ContainsFunc(got, func(f string) bool { return strings.HasSuffix(f, "peer.crt") }) {
		t.Errorf("inspection certificates %v name a peer certificate without peer TLS", got)
	}

	plain := defaultFileConfig()
	plain.Orchestrator.Store.PeerURL = "http://127.0.0.1:2380"
	if got := plain.storeConfig().PeerTLS; got.Enabled() {
		t.Errorf("http peer URL: PeerTLS = %+v, want none", got)
	}
	plain.Orchestrator.Store.Mode = "external"
	plain.Orchestrator.Store.Endpoints = []string{"http://etcd:2379"}
	plain.Orchestrator.Store.PeerURL = "https://127.0.0.1:2380"
	if got := plain.storeConfig().PeerTLS; got.Enabled() {
		t.Errorf("external store: PeerTLS = %+v, want none", got)
	}
}

func TestStoreConfigPeerTLSErrorsExplainTheSharedPKI(t *testing.T) {
	c := httpsCluster(t.TempDir())
	c.Orchestrator.Store.InitialCluster = strings.Replace(c.Orchestrator.Store.InitialCluster, "cp-b=https://", "cp-b=http://", 1)
	ps := c.Validate()
	if len(ps) != 1 || ps[0].Field != "orchestrator.store.initial_cluster" {
		t.Fatalf("problems %v, want one about orchestrator.store.initial_cluster", ps)
	}
	for _, w := range []string{`member "cp-b"'s peer URL http://10.0.2.10:2380 is not https://`, "DATA_DIR/pki", "every replica must share that CA", "ca.crt and ca.key"} {
		if !strings.Contains(ps[0].Msg, w) {
			t.Errorf("problem %q\nlacks %q", ps[0].Msg, w)
		}
	}
	// An http cluster's unrelated error says nothing about TLS.
	plain := defaultFileConfig()
	plain.Orchestrator.Store.Name = "cp-x"
	plain.Orchestrator.Store.ClientURL, plain.Orchestrator.Store.PeerURL = "http://127.0.0.1:2379", "http://127.0.0.1:2380"
	plain.Orchestrator.Store.InitialCluster = "cp-a=http://127.0.0.1:2380"
	if ps := plain.Validate(); len(ps) != 1 || strings.Contains(ps[0].Msg, "TLS") {
		t.Errorf("http cluster problems %v, want one without a TLS note", ps)
	}
}

func TestStoreConfigPeerTLSNeedsServerMode(t *testing.T) {
	c := httpsCluster(t.TempDir())
	c.Orchestrator.Store.InitialCluster = ""
	c.Orchestrator.Store.AdvertisePeerURL = ""
	c.Orchestrator.Store.PeerURL = "https://127.0.0.1:2380"
	c.Server.LocalMode = true
	_, err := openOrchestrator(context.Background(), c, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), "opspilot up") || !strings.Contains(err.Error(), "orchestrator.store.peer_url") {
		t.Fatalf("openOrchestrator in local mode with an https peer URL: %v; want an error naming peer_url and opspilot up", err)
	}
	if matches, _ := filepath.Glob(filepath.Join(c.DataDir, "*")); len(matches) != 0 {
		t.Errorf("the refused start left %v", matches)
	}
}

// TestStoreConfigPeerTLSOpensTheMemberWithTheIssuedCertificate: a server
// with an https:// peer URL issues its peer certificate before the store
// starts and serves the peer URL with it, to members of its CA only.
func TestStoreConfigPeerTLSOpensTheMemberWithTheIssuedCertificate(t *testing.T) {
	c := defaultFileConfig()
	c.DataDir = t.TempDir()
	c.Server.HTTPAddr = testbin.FreeAddr(t)
	peerAddr := testbin.FreeAddr(t)
	c.Orchestrator.Store.ClientURL = "http://" + testbin.FreeAddr(t)
	c.Orchestrator.Store.PeerURL = "https://" + peerAddr
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	o, err := openOrchestrator(ctx, c, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	peer, ok := o.pki.PeerFiles()
	if !ok || peer.CertFile != filepath.Join(c.DataDir, "pki", pki.PeerCertFile) {
		t.Fatalf("PeerFiles = %+v, %v; want the peer certificate in data_dir/pki", peer, ok)
	}
	members, err := o.st.Client().MemberList(ctx)
	if err != nil || len(members.Members) != 1 || !slices.Equal(members.Members[0].PeerURLs, []string{"https://" + peerAddr}) {
		t.Fatalf("member list %v, %v; want the one member on https://%s", members, err, peerAddr)
	}

	cert, err := tls.LoadX509KeyPair(peer.CertFile, peer.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(peer.TrustedCAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	for _, tc := range []struct {
		name   string
		url    string
		certs  []tls.Certificate
		refuse bool
	}{
		{"plain http", "http://" + peerAddr, nil, true},
		{"no client certificate", "https://" + peerAddr, nil, true},
		{"the peer certificate", "https://" + peerAddr, []tls.Certificate{cert}, false},
	} {
		err := tlsprobe.Get(tc.url+"/version", roots, tc.certs)
		if refused := err != nil; refused != tc.refuse {
			t.Errorf("%s: GET %s/version: %v; want refused %v", tc.name, tc.url, err, tc.refuse)
		}
	}
}
