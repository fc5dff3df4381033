package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"opspilot/test/testbin"
)

// TestAgentJoinsOverTLSWithToken: an agent ships to a server that serves
// HTTPS and requires tokens; it trusts the server through --ca-file.
func TestAgentJoinsOverTLSWithToken(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cert, key := selfSignedCert(t, dir)
	srvAddr, agentAddr := testbin.FreeAddr(t), testbin.FreeAddr(t)
	cfg := writeFile(t, dir, "opspilot.yaml", fmt.Sprintf(`data_dir: %s
server:
  http_addr: %s
  tls_cert_file: %s
  tls_key_file: %s
  auth:
    tokens:
      - {name: reader, role: read, token: %q}
      - {name: writer, role: write, token: %q}
`, filepath.Join(dir, "server"), srvAddr, cert, key, readerToken, writerToken))
	srv := testbin.Start(t, opspilotBin(t), "server", "-c", cfg)
	waitForOutput(t, srv, srv.Stdout, "opspilot ready on https://"+srvAddr, time.Now(), startTimeout)

	tokenFile := writeFile(t, dir, "agent.token", writerToken+"\n")
	testbin.Start(t, opspilotBin(t), "agent", "--server", "https://"+srvAddr, "--token-file", tokenFile, "--ca-file", cert,
		"--data-dir", filepath.Join(dir, "agent"), "--http-addr", agentAddr, "--datacenter", "dc-tls", "--node", "n-tls")

	pool := x509.NewCertPool()
	pemBytes, _ := os.ReadFile(cert)
	pool.AppendCertsFromPEM(pemBytes)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 5 * time.Second}
	start := time.Now()
	for {
		req, _ := http.NewRequest(http.MethodGet, "https://"+srvAddr+"/prometheus/api/v1/query?query="+url.QueryEscape(`count(node_load1{datacenter="dc-tls",node="n-tls"})`), nil)
		req.Header.Set("Authorization", "Bearer "+readerToken)
		resp, err := hc.Do(req)
		if err == nil {
			var r promResponse
			_ = json.NewDecoder(resp.Body).Decode(&r)
			_ = resp.Body.Close()
			if len(r.Data.Result) == 1 {
				break
			}
		}
		if time.Since(start) > 20*time.Second {
			t.Fatalf("the agent's host metrics did not reach the TLS server within 20 s (last error %v)\nserver:\n%s", err, tail(srv))
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func selfSignedCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "opspilot e2e"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(k)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}
