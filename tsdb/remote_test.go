package tsdb

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"opspilot/test/testbin"
)

// These tests run the real single-node VictoriaMetrics binary, built from
// the module (go.mod's tool directive), as the remote store.

// remoteEventually polls like eventually, forcing the remote store to make
// fresh samples searchable through its /internal/force_flush endpoint.
func remoteEventually(t *testing.T, c *Client, base string, expr string, check func(model.Value) bool) {
	t.Helper()
	flushingEventually(t, c, func() { forceFlush(http.DefaultClient, base, "", "") }, expr, check)
}

func forceFlush(hc *http.Client, base, user, password string) {
	req, _ := http.NewRequest(http.MethodGet, base+"/internal/force_flush", nil)
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	if resp, err := hc.Do(req); err == nil {
		_ = resp.Body.Close()
	}
}

func flushingEventually(t *testing.T, c *Client, flush func(), expr string, check func(model.Value) bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last model.Value
	var lastErr error
	for time.Now().Before(deadline) {
		flush()
		res, err := c.Query(context.Background(), expr, time.Time{})
		lastErr = err
		if err == nil {
			last = res.Value
			if check(res.Value) {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("query %q never matched; last value %v, last error %v", expr, last, lastErr)
}

func TestRemoteVictoriaMetricsSingleNode(t *testing.T) {
	t.Parallel()
	base, _ := testbin.VictoriaMetrics(t)
	rc := RemoteConfig{URL: base}
	ep, err := rc.Endpoints()
	if err != nil {
		t.Fatal(err)
	}
	c := newTestClient(t, ep, ClientOptions{Remote: &rc})
	ctx := context.Background()
	now := time.Now()
	if err := c.Write(ctx, testSeries("remote_metric", "single", 3, 20, 100, now)); err != nil {
		t.Fatal(err)
	}
	remoteEventually(t, c, base, `sum(remote_metric{run="single"})`, func(v model.Value) bool {
		s, ok := scalarOf(v)
		return ok && s == 303
	})
	series, err := c.Series(ctx, []string{`remote_metric`}, now.Add(-time.Hour), now.Add(time.Minute))
	if err != nil || len(series) != 3 {
		t.Fatalf("series: want 3, got %v (%v)", series, err)
	}
	vals, err := c.LabelValues(ctx, "run", nil, now.Add(-time.Hour), now.Add(time.Minute))
	if err != nil || strings.Join(vals, ",") != "single" {
		t.Fatalf("label values: got %v (%v)", vals, err)
	}

	// extra_query_params reach the store on every query: VictoriaMetrics'
	// extra_label filter narrows the same query to one series.
	narrowed := RemoteConfig{URL: base, ExtraQueryParams: map[string]string{"extra_label": "series=1"}}
	nc := newTestClient(t, ep, ClientOptions{Remote: &narrowed})
	res, err := nc.Query(ctx, `sum(remote_metric{run="single"})`, time.Time{})
	if s, ok := scalarOf(res.Value); err != nil || !ok || s != 101 {
		t.Fatalf("query with extra_label=series=1: want 101, got %v (%v)", res.Value, err)
	}
}

func TestRemoteBasicAuth(t *testing.T) {
	t.Parallel()
	base, _ := testbin.VictoriaMetrics(t, "-httpAuth.username=opspilot", "-httpAuth.password=s3cret-password")

	wrong := RemoteConfig{URL: base, BasicAuth: BasicAuthConfig{Username: "opspilot", Password: "nope"}}
	ep, _ := wrong.Endpoints()
	c := newTestClient(t, ep, ClientOptions{Remote: &wrong})
	err := c.Write(context.Background(), testSeries("auth_metric", "x", 1, 1, 1, time.Now()))
	if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "basic auth") {
		t.Fatalf("wrong password: want a 401 error with a hint, got %v", err)
	}
	if strings.Contains(err.Error(), "gave up after") {
		t.Errorf("a 401 must not be retried: %v", err)
	}
	if _, err := c.Query(context.Background(), "up", time.Time{}); err == nil {
		t.Fatal("query with a wrong password should fail")
	}

	pwFile := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pwFile, []byte("s3cret-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	right := RemoteConfig{URL: base, BasicAuth: BasicAuthConfig{Username: "opspilot", PasswordFile: pwFile}}
	c = newTestClient(t, ep, ClientOptions{Remote: &right})
	if err := c.Write(context.Background(), testSeries("auth_metric", "x", 1, 1, 7, time.Now())); err != nil {
		t.Fatal(err)
	}
	flushingEventually(t, c, func() { forceFlush(http.DefaultClient, base, "opspilot", "s3cret-password") }, `auth_metric{run="x"}`, func(v model.Value) bool {
		s, ok := scalarOf(v)
		return ok && s == 7
	})
}

func TestRemoteTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := writeSelfSignedCert(t, dir)
	base, _ := testbin.VictoriaMetrics(t, "-tls", "-tlsCertFile="+certFile, "-tlsKeyFile="+keyFile)

	untrusted := RemoteConfig{URL: base}
	ep, _ := untrusted.Endpoints()
	c := newTestClient(t, ep, ClientOptions{Remote: &untrusted})
	err := c.Write(context.Background(), testSeries("tls_metric", "x", 1, 1, 1, time.Now()))
	if err == nil || !strings.Contains(err.Error(), "certificate") || !strings.Contains(err.Error(), "tls") {
		t.Fatalf("untrusted certificate: want a certificate error with a hint, got %v", err)
	}
	if strings.Contains(err.Error(), "gave up after") {
		t.Errorf("a certificate error must not be retried: %v", err)
	}

	trusted := RemoteConfig{URL: base, TLS: TLSConfig{CAFile: certFile}}
	c = newTestClient(t, ep, ClientOptions{Remote: &trusted})
	// The server may still be starting: the client retries connection errors.
	if err := c.Write(context.Background(), testSeries("tls_metric", "x", 1, 1, 9, time.Now())); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(certFile)
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	flushingEventually(t, c, func() { forceFlush(hc, base, "", "") }, `tls_metric{run="x"}`, func(v model.Value) bool {
		s, ok := scalarOf(v)
		return ok && s == 9
	})
}

// TestRemoteProxy checks the server's /prometheus path in remote mode:
// Grafana-style queries and remote writes arrive without the remote
// store's credentials and leave with them.
func TestRemoteProxy(t *testing.T) {
	t.Parallel()
	base, _ := testbin.VictoriaMetrics(t, "-httpAuth.username=opspilot", "-httpAuth.password=proxy-password")
	rc := RemoteConfig{URL: base, BasicAuth: BasicAuthConfig{Username: "opspilot", Password: "proxy-password"}}
	ep, _ := rc.Endpoints()
	upstream := newTestClient(t, ep, ClientOptions{Remote: &rc})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/prometheus/", upstream.ProxyHandler())
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	// A client that knows only the opspilot address (and sends an opspilot
	// token, which must not leak upstream).
	viaProxy := newTestClient(t, LocalEndpoints("http://"+ln.Addr().String()), ClientOptions{BearerToken: "opspilot-token-not-for-upstream"})
	if err := viaProxy.Write(context.Background(), testSeries("proxy_metric", "p", 2, 5, 1, time.Now())); err != nil {
		t.Fatal(err)
	}
	flushingEventually(t, viaProxy, func() { forceFlush(http.DefaultClient, base, "opspilot", "proxy-password") }, `sum(proxy_metric{run="p"})`, func(v model.Value) bool {
		s, ok := scalarOf(v)
		return ok && s == 3
	})
}

func writeSelfSignedCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "opspilot test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
