package pki

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// startServer runs an HTTPS server with tlsFrom's certificate, serving
// caFrom's CA at CAPath (different authorities make a man-in-the-middle).
func startServer(t *testing.T, tlsFrom, caFrom *Authority) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(CAPath, CAHandler(caFrom))
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "hello") })
	srv := httptest.NewUnstartedServer(mux)
	srv.TLS = tlsFrom.ServerTLSConfig()
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// newAuthority uses the real clock: TLS verification does.
func newAuthority(t *testing.T) *Authority {
	t.Helper()
	return mustEnsure(t, t.TempDir(), nil, time.Now())
}

func tokenHash(t *testing.T, a *Authority) string {
	t.Helper()
	hash, _, err := ParseJoinToken(a.JoinToken())
	if err != nil {
		t.Fatal(err)
	}
	return hash
}

func TestFetchCATrustsTheServerFromTheToken(t *testing.T) {
	a := newAuthority(t)
	srv := startServer(t, a, a)
	ctx := t.Context()
	for _, url := range []string{srv.URL, srv.URL + "/"} {
		pool, caPEM, err := FetchCA(ctx, url, tokenHash(t, a))
		if err != nil {
			t.Fatalf("FetchCA(%s): %v", url, err)
		}
		if !bytes.Equal(caPEM, a.CAPEM()) {
			t.Error("returned PEM is not the server's CA")
		}
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: ClientTLSConfig(pool)}}
		resp, err := client.Get(srv.URL + "/hello")
		if err != nil {
			t.Fatalf("verified client: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "hello" {
			t.Errorf("verified client got %q", body)
		}
		client.CloseIdleConnections()
	}

	// The hash without its prefix, as some operator will paste it.
	if _, _, err := FetchCA(ctx, srv.URL, strings.TrimPrefix(a.CAHash(), "sha256:")); err != nil {
		t.Errorf("bare hex hash: %v", err)
	}
	// Without the pool the server is not trusted: the pool is what works.
	plain := &http.Client{Transport: &http.Transport{}}
	if resp, err := plain.Get(srv.URL + "/hello"); err == nil {
		resp.Body.Close()
		t.Error("a client with system roots trusted the private CA")
	}
}

func TestFetchCARefuses(t *testing.T) {
	a, b := newAuthority(t), newAuthority(t)
	srvA := startServer(t, a, a)
	srvB := startServer(t, b, b)
	relay := startServer(t, b, a) // serves a's public CA with b's certificate
	notFound := httptest.NewTLSServer(http.NotFoundHandler())
	t.Cleanup(notFound.Close)

	tests := []struct {
		name, url, hash string
		want            []string
	}{
		{"wrong hash", srvA.URL, tokenHash(t, b), []string{"has hash " + a.CAHash(), "expects " + b.CAHash(), "man-in-the-middle"}},
		{"server with another CA", srvB.URL, tokenHash(t, a), []string{"man-in-the-middle", "another server"}},
		{"relayed CA, foreign certificate", relay.URL, tokenHash(t, a), []string{"not signed by that CA", "man-in-the-middle"}},
		{"not an opspilot server", notFound.URL, tokenHash(t, a), []string{"404", "opspilot server"}},
		{"plain http", "http" + strings.TrimPrefix(srvA.URL, "https"), tokenHash(t, a), []string{"want https://HOST:PORT"}},
		{"malformed hash", srvA.URL, "sha256:abc", []string{"64 hex digits"}},
		{"unreachable", "https://127.0.0.1:1", tokenHash(t, a), []string{"fetch CA from https://127.0.0.1:1" + CAPath}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool, caPEM, err := FetchCA(t.Context(), tt.url, tt.hash)
			if err == nil {
				t.Fatal("accepted")
			}
			if pool != nil || caPEM != nil {
				t.Error("returned a pool or PEM with an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
		})
	}
}

func TestFetchCAHonoursContext(t *testing.T) {
	a := newAuthority(t)
	srv := startServer(t, a, a)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, _, err := FetchCA(ctx, srv.URL, a.CAHash()); err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Errorf("cancelled context: %v", err)
	}
}

func TestVerifyServerWantsTheHostCovered(t *testing.T) {
	a := newAuthority(t)
	pool := x509.NewCertPool()
	pool.AddCert(a.caCert)
	certs := []*x509.Certificate{a.serverLeaf}
	if err := verifyServer(certs, pool, "127.0.0.1"); err != nil {
		t.Errorf("127.0.0.1: %v", err)
	}
	err := verifyServer(certs, pool, "ops.example.com")
	if err == nil || !strings.Contains(err.Error(), `does not cover "ops.example.com"`) || !strings.Contains(err.Error(), "TLS host names") {
		t.Errorf("uncovered host: %v", err)
	}
	if err := verifyServer(nil, pool, "127.0.0.1"); err == nil {
		t.Error("no certificates accepted")
	}
}

func TestCAHandler(t *testing.T) {
	a := newAuthority(t)
	h := CAHandler(a)
	tests := []struct {
		method   string
		wantCode int
		wantBody []byte
	}{
		{http.MethodGet, http.StatusOK, a.CAPEM()},
		{http.MethodHead, http.StatusOK, nil},
		{http.MethodPost, http.StatusMethodNotAllowed, nil},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tt.method, CAPath, nil))
		if rec.Code != tt.wantCode {
			t.Errorf("%s: code %d, want %d", tt.method, rec.Code, tt.wantCode)
			continue
		}
		if tt.wantCode != http.StatusOK {
			continue
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/x-pem-file" {
			t.Errorf("%s: Content-Type %q", tt.method, ct)
		}
		if !bytes.Equal(rec.Body.Bytes(), tt.wantBody) && !(tt.wantBody == nil && rec.Body.Len() == 0) {
			t.Errorf("%s: body %q", tt.method, rec.Body.Bytes())
		}
	}
}

// FetchCAFromAny: an agent listing a replica that accepts connections and
// never answers (its datacenter cut) first gets the CA from the next one
// after one 5 s attempt; a CA that does not match the token stops at
// once, without trying the others; nobody answering is an error naming
// every replica's failure.
func TestFetchCAFromAnyReplica(t *testing.T) {
	a, b := newAuthority(t), newAuthority(t)
	srv := startServer(t, a, a)
	other := startServer(t, b, b)
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	dead := "https://" + silent.Addr().String()
	ctx := t.Context()

	start := time.Now()
	_, caPEM, err := FetchCAFromAny(ctx, []string{dead, srv.URL}, tokenHash(t, a), 30*time.Second)
	if err != nil || !bytes.Equal(caPEM, a.CAPEM()) {
		t.Fatalf("with a silent first replica: %v", err)
	}
	if d := time.Since(start); d < fetchAttempt || d > fetchAttempt+3*time.Second {
		t.Errorf("took %s, want one attempt of %s on the silent replica", d, fetchAttempt)
	}

	start = time.Now()
	if _, _, err := FetchCAFromAny(ctx, []string{other.URL, srv.URL}, tokenHash(t, a), 30*time.Second); !errors.Is(err, ErrCAMismatch) || time.Since(start) > 3*time.Second {
		t.Errorf("a replica with another CA: %v after %s, want ErrCAMismatch at once", err, time.Since(start))
	}

	closed := "https://127.0.0.1:1"
	if _, _, err := FetchCAFromAny(ctx, []string{closed, closed + "/x"}, tokenHash(t, a), 1500*time.Millisecond); err == nil ||
		!strings.Contains(err.Error(), "no control-plane replica gave its CA within 1.5s") || strings.Count(err.Error(), "127.0.0.1:1") < 2 {
		t.Errorf("nobody answering: %v", err)
	}
}
