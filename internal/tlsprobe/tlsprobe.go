// Package tlsprobe checks, for tests, whether an endpoint accepts a client:
// it answers an HTTP GET over a fresh connection trusting roots and
// presenting certs (none: no client certificate).
package tlsprobe

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"time"
)

// Get sends GET url on a connection of its own and returns the error that
// refused it, or nil when an answer came.
func Get(url string, roots *x509.CertPool, certs []tls.Certificate) error {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}
