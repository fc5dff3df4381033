package report

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeCert(t *testing.T, dir, name string, notAfter time.Time) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: notAfter.Add(-400 * 24 * time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".crt")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// The inspection finds a node that went silent, a full disk and a
// restarting instance in what the agents wrote, and a certificate about to
// expire; the healthy node, disk and instance are not reported.
func TestInspectionFindsDownNodeFullDiskRestartsAndExpiringCert(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	start, last := now.Add(-26*time.Hour), now.Add(-30*time.Second)
	var g gen
	node := func(name string, until time.Time) {
		g.add(map[string]string{"__name__": "node_memory_MemTotal_bytes", "datacenter": "dc-insp", "node": name}, start, until, time.Minute,
			func(time.Time) float64 { return 8 << 30 })
	}
	node("insp-up", last)
	node("insp-down", now.Add(-time.Hour))
	disk := func(mount string, used float64) {
		l := map[string]string{"datacenter": "dc-insp", "node": "insp-up", "mountpoint": mount, "device": "/dev/vdb", "fstype": "ext4"}
		size := map[string]string{"__name__": "node_filesystem_size_bytes"}
		avail := map[string]string{"__name__": "node_filesystem_avail_bytes"}
		for k, v := range l {
			size[k], avail[k] = v, v
		}
		g.add(size, now.Add(-time.Hour), last, time.Minute, func(time.Time) float64 { return 100 << 30 })
		g.add(avail, now.Add(-time.Hour), last, time.Minute, func(time.Time) float64 { return (1 - used) * (100 << 30) })
	}
	disk("/insp-full", 0.97)
	disk("/insp-half", 0.5)
	restarts := func(inst string, f func(t time.Time) float64) {
		g.add(map[string]string{"__name__": "container_restarts_total", "datacenter": "dc-insp", "node": "insp-up", "service": "crashy", "instance": inst, "tenant": "t"},
			start, last, time.Minute, f)
	}
	restarts("crashy-steady", func(time.Time) float64 { return 2 }) // restarted before the window
	// 4 restarts in the last 2 hours.
	restarts("crashy-loop", func(tt time.Time) float64 {
		if d := now.Sub(tt); d < 2*time.Hour {
			return float64(4 - int(d/(30*time.Minute)))
		}
		return 0
	})
	g.write(t)

	dir := t.TempDir()
	soon := writeCert(t, dir, "soon", now.Add(3*24*time.Hour))
	later := writeCert(t, dir, "later", now.Add(365*24*time.Hour))
	rep, err := BuildInspection(context.Background(), client, nil, InspectionOptions{Now: now,
		CertFiles: []string{soon, later, filepath.Join(dir, "absent.crt")}})
	if err != nil {
		t.Fatal(err)
	}
	text := rep.Text()
	t.Log("\n" + text)

	has := func(check, subject string) bool {
		c := rep.Check(check)
		if c == nil {
			t.Fatalf("no check %q", check)
		}
		if c.Err != "" {
			t.Errorf("%s: %s", check, c.Err)
		}
		for _, f := range c.Findings {
			if strings.Contains(f.Subject, subject) {
				return true
			}
		}
		return false
	}
	for _, want := range []struct{ check, subject string }{
		{CheckNodes, "insp-down"}, {CheckDisks, "insp-up /insp-full"}, {CheckRestarts, "crashy-loop"}, {CheckCertificates, "soon"},
	} {
		if !has(want.check, want.subject) {
			t.Errorf("%s: %s not reported", want.check, want.subject)
		}
		if !strings.Contains(text, want.subject) {
			t.Errorf("the chat text lacks %s", want.subject)
		}
	}
	for _, unwanted := range []struct{ check, subject string }{
		{CheckNodes, "insp-up"}, {CheckDisks, "/insp-half"}, {CheckRestarts, "crashy-steady"}, {CheckCertificates, "later"},
	} {
		if has(unwanted.check, unwanted.subject) {
			t.Errorf("%s: healthy %s reported", unwanted.check, unwanted.subject)
		}
	}
	if c := rep.Check(CheckRestarts); c.Findings[0].Detail != "4 restarts in the last 1d" {
		t.Errorf("restart detail %q, want 4 restarts in the last 1d", c.Findings[0].Detail)
	}
	if rep.Check(CheckDisks).Severity != SeverityCritical || rep.Worst() != SeverityCritical {
		t.Errorf("a 97%% full disk and a lost node must make the inspection critical, got %s", rep.Worst())
	}
	var buf bytes.Buffer
	if err := rep.WriteHTML(&buf); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"insp-down", "/insp-full", "crashy-loop", "soon"} {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("the HTML lacks %s", s)
		}
	}
}

func TestParseCertificatesRejectsGarbage(t *testing.T) {
	for _, in := range []string{"", "not pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"} {
		if _, err := ParseCertificates([]byte(in)); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}

func FuzzParseCertificates(f *testing.F) {
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := ParseCertificates(data)
		if err == nil && len(certs) == 0 {
			t.Fatal("no error and no certificate")
		}
	})
}
