package store

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"opspilot/orchestrator/model"
	"opspilot/orchestrator/pki"
)

// sharedPeerPKI makes n pki directories that share one CA, as the
// replicas of an HA control plane do, and issues each its peer
// certificate for loopback.
func sharedPeerPKI(t *testing.T, n int) []PeerTLS {
	t.Helper()
	var out []PeerTLS
	var first string
	for i := range n {
		dir := filepath.Join(t.TempDir(), "pki")
		if i > 0 {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{pki.CACertFile, pki.CAKeyFile} {
				b, err := os.ReadFile(filepath.Join(first, f))
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		} else {
			first = dir
		}
		out = append(out, peerTLSIn(t, dir))
	}
	return out
}

// peerTLSIn issues a peer certificate from the CA in dir (made if absent).
func peerTLSIn(t *testing.T, dir string) PeerTLS {
	t.Helper()
	a, err := pki.EnsureCA(dir, nil, time.Now(), pki.WithPeerCert([]string{"127.0.0.1"}))
	if err != nil {
		t.Fatal(err)
	}
	f, _ := a.PeerFiles()
	return PeerTLS{CertFile: f.CertFile, KeyFile: f.KeyFile, TrustedCAFile: f.TrustedCAFile}
}

func httpsPeer(u string) string { return strings.Replace(u, "http://", "https://", 1) }

// TestPeerTLSCluster: three members with peer TLS from one CA form a
// cluster and replicate; clients without a certificate of that CA, and a
// member with a certificate of another CA, are refused; a member with one
// of the CA's certificates joins.
func TestPeerTLSCluster(t *testing.T) {
	cfgs := clusterConfigs(t)
	tlss := sharedPeerPKI(t, len(cfgs))
	for i := range cfgs {
		cfgs[i].PeerURL = httpsPeer(cfgs[i].PeerURL)
		cfgs[i].InitialCluster = strings.ReplaceAll(cfgs[i].InitialCluster, "http://", "https://")
		cfgs[i].PeerTLS = tlss[i]
	}
	sts := openCluster(t, cfgs)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	t.Run("replicates a write", func(t *testing.T) {
		members, err := sts[0].Client().MemberList(ctx)
		if err != nil || len(members.Members) != 3 {
			t.Fatalf("member list = %v, %v; want 3 members", members, err)
		}
		for _, m := range members.Members {
			if len(m.PeerURLs) != 1 || !strings.HasPrefix(m.PeerURLs[0], "https://") {
				t.Errorf("member %s peer URLs %v, want one https URL", m.Name, m.PeerURLs)
			}
		}
		if _, err := Create(ctx, sts[0], KindTenant, "t1", model.Tenant{Name: "t1", Weight: 1}); err != nil {
			t.Fatal(err)
		}
		for _, s := range sts[1:] {
			if got, err := Get[model.Tenant](ctx, s, KindTenant, "t1"); err != nil || got.Value.Name != "t1" {
				t.Fatalf("read through %s = %+v, %v", s.Member(), got, err)
			}
		}
	})

	t.Run("refuses clients without a certificate of the CA", func(t *testing.T) {
		foreign := peerTLSIn(t, filepath.Join(t.TempDir(), "pki"))
		ourServer := filepath.Dir(tlss[0].CertFile)
		peer := strings.TrimPrefix(cfgs[0].PeerURL, "https://")
		for _, tc := range []struct {
			name       string
			url        string
			cert, key  string
			wantRefuse bool
		}{
			{name: "plain http", url: "http://" + peer, wantRefuse: true},
			{name: "TLS without a client certificate", url: "https://" + peer, wantRefuse: true},
			{name: "certificate of another CA", url: "https://" + peer, cert: foreign.CertFile, key: foreign.KeyFile, wantRefuse: true},
			{name: "the CA's server certificate (not for client auth)", url: "https://" + peer,
				cert: filepath.Join(ourServer, pki.ServerCertFile), key: filepath.Join(ourServer, pki.ServerKeyFile), wantRefuse: true},
			{name: "a member's peer certificate", url: "https://" + peer, cert: tlss[1].CertFile, key: tlss[1].KeyFile},
		} {
			t.Run(tc.name, func(t *testing.T) {
				tr := &http.Transport{TLSClientConfig: clientTLS(t, tlss[0].TrustedCAFile, tc.cert, tc.key)}
				defer tr.CloseIdleConnections()
				cl := &http.Client{Transport: tr, Timeout: 5 * time.Second}
				resp, err := cl.Get(tc.url + "/version")
				if err == nil {
					_ = resp.Body.Close()
				}
				refused := err != nil
				if refused != tc.wantRefuse {
					t.Errorf("GET %s/version: %v (status %v); want refused %v", tc.url, err, statusOf(resp), tc.wantRefuse)
				}
				if !refused && resp.StatusCode != http.StatusOK {
					t.Errorf("GET %s/version: status %d, want 200", tc.url, resp.StatusCode)
				}
				if refused {
					t.Logf("refused: %v", err)
				}
			})
		}
	})

	// A member the cluster was told to expect (member add), started with
	// a certificate of another CA, cannot fetch the cluster or be dialled:
	// it never becomes ready and stays unstarted in the member list. It
	// trusts the cluster's CA (ca.crt is public: agents download it), so
	// what stops it is the members refusing its certificate.
	ports := freePorts(t, 2)
	joiner := Config{Embedded: true, Name: "cp-x", ClientURL: ports[0], PeerURL: httpsPeer(ports[1]),
		InitialCluster: cfgs[0].InitialCluster + ",cp-x=" + httpsPeer(ports[1]), ClusterState: ClusterStateExisting,
		HeartbeatInterval: 50 * time.Millisecond, ElectionTimeout: 500 * time.Millisecond, StartTimeout: 10 * time.Second}
	// etcd refuses to add a member until every member has been connected
	// for a few seconds ("unhealthy cluster"): right after the start, retry.
	for {
		_, err := sts[0].Client().MemberAdd(ctx, []string{joiner.PeerURL})
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "unhealthy cluster") || ctx.Err() != nil {
			t.Fatalf("member add: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Run("a member with another CA's certificate cannot join", func(t *testing.T) {
		foreign := joiner
		foreign.DataDir = t.TempDir()
		foreign.PeerTLS = peerTLSIn(t, filepath.Join(t.TempDir(), "pki"))
		foreign.PeerTLS.TrustedCAFile = tlss[0].TrustedCAFile
		start := time.Now()
		st, err := Open(ctx, foreign, testLogger(t))
		if err == nil {
			_ = st.Close()
			t.Fatal("a member with a foreign CA's certificate started")
		}
		t.Logf("refused after %s: %v", time.Since(start).Round(time.Millisecond), err)
		members, err := sts[0].Client().MemberList(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range members.Members {
			if len(m.PeerURLs) == 1 && m.PeerURLs[0] == joiner.PeerURL && m.Name != "" {
				t.Errorf("the foreign member started as %q", m.Name)
			}
		}
	})
	t.Run("a member with the CA's certificate joins", func(t *testing.T) {
		ours := joiner
		ours.DataDir = t.TempDir()
		ours.PeerTLS = sharedPeerPKIWith(t, tlss[0])
		st, err := Open(ctx, ours, testLogger(t))
		if err != nil {
			t.Fatalf("a member with the CA's certificate: %v", err)
		}
		defer st.Close()
		if got, err := Get[model.Tenant](ctx, st, KindTenant, "t1"); err != nil || got.Value.Name != "t1" {
			t.Fatalf("the joined member reads %+v, %v", got, err)
		}
	})
}

// sharedPeerPKIWith issues a peer certificate in a new directory holding
// the CA of an existing member.
func sharedPeerPKIWith(t *testing.T, of PeerTLS) PeerTLS {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pki")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{pki.CACertFile, pki.CAKeyFile} {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(of.TrustedCAFile), f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return peerTLSIn(t, dir)
}

func clientTLS(t *testing.T, caFile, certFile, keyFile string) *tls.Config {
	t.Helper()
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("no CA certificate in " + caFile)
	}
	c := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c
}

func statusOf(resp *http.Response) string {
	if resp == nil {
		return "none"
	}
	return fmt.Sprint(resp.StatusCode)
}
