package node

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/synctest"
	"time"

	"opspilot/orchestrator/model"
)

// The agent bounds connecting with a copy of the caller's transport: the
// caller's TLS config is kept, its transport left alone, and a transport
// the agent cannot copy is used as it is.
func TestClientDialTimeout(t *testing.T) {
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer tlsSrv.Close()
	custom := roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, errors.New("custom") })
	for _, tc := range []struct {
		name   string
		client *http.Client
		// url, when set, must answer through the agent's client.
		url    string
		copied bool
	}{
		{name: "default", client: &http.Client{}, copied: true},
		{name: "caller's TLS transport", client: tlsSrv.Client(), url: tlsSrv.URL, copied: true},
		{name: "transport of another kind", client: &http.Client{Transport: custom}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// What the caller's transport looked like, to check it is untouched.
			type look struct {
				dial      bool
				handshake time.Duration
				tls       *tls.Config
			}
			lookOf := func(rt http.RoundTripper) look {
				tr, _ := rt.(*http.Transport)
				if tr == nil {
					return look{}
				}
				return look{tr.DialContext != nil, tr.TLSHandshakeTimeout, tr.TLSClientConfig}
			}
			before := lookOf(tc.client.Transport)
			a, err := New(Config{Server: "http://cp:9440", Client: tc.client, Node: model.Node{Name: "n1", Datacenter: "A"}}, noExec{})
			if err != nil {
				t.Fatal(err)
			}
			got := a.cfg.Client
			tr, ok := got.Transport.(*http.Transport)
			if ok != tc.copied {
				t.Fatalf("agent's transport %T", got.Transport)
			}
			if !tc.copied {
				return
			}
			if tr == tc.client.Transport || tr == http.DefaultTransport {
				t.Fatal("the agent uses the caller's transport itself")
			}
			if tr.DialContext == nil || tr.TLSHandshakeTimeout != time.Second {
				t.Errorf("agent's transport: DialContext set %v, TLS handshake timeout %s; want a dial timeout and 1s", tr.DialContext != nil, tr.TLSHandshakeTimeout)
			}
			if lookOf(tc.client.Transport) != before {
				t.Error("the caller's transport was changed")
			}
			if before.tls != nil && (tr.TLSClientConfig == nil || tr.TLSClientConfig.RootCAs != before.tls.RootCAs) {
				t.Error("the agent's transport lost the caller's TLS config")
			}
			if tc.url != "" {
				resp, err := got.Get(tc.url)
				if err != nil {
					t.Fatalf("GET through the agent's client: %v", err)
				}
				resp.Body.Close()
			}
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// A caller's own dial function is bounded by DialTimeout too: one that
// never connects gives up after exactly that long.
func TestCallerDialBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hang := func(ctx context.Context, network, addr string) (net.Conn, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		c := withDialTimeout(&http.Client{Transport: &http.Transport{DialContext: hang}}, 700*time.Millisecond)
		start := time.Now()
		_, err := c.Transport.(*http.Transport).DialContext(context.Background(), "tcp", "cp:9440")
		if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != 700*time.Millisecond {
			t.Errorf("dial: %v after %s, want a deadline after 700ms", err, time.Since(start))
		}
	})
}
