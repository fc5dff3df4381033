package store

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"opspilot/orchestrator/model"
)

// freePorts reserves n distinct loopback ports and releases them.
func freePorts(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		out = append(out, "http://"+l.Addr().String())
	}
	for _, l := range ls {
		_ = l.Close()
	}
	return out
}

// ClusterConfigs returns the configs of a three-member embedded cluster
// on loopback ports, each with its own data directory.
func clusterConfigs(t *testing.T) []Config {
	t.Helper()
	ports := freePorts(t, 6)
	var initial []string
	cfgs := make([]Config, 3)
	for i := range cfgs {
		name := fmt.Sprintf("cp-%c", 'a'+i)
		cfgs[i] = Config{Embedded: true, DataDir: t.TempDir(), Name: name, ClientURL: ports[2*i], PeerURL: ports[2*i+1],
			HeartbeatInterval: 50 * time.Millisecond, ElectionTimeout: 500 * time.Millisecond}
		initial = append(initial, name+"="+ports[2*i+1])
	}
	for i := range cfgs {
		cfgs[i].InitialCluster = strings.Join(initial, ",")
	}
	return cfgs
}

// openCluster starts the members together (each waits for a quorum).
func openCluster(t *testing.T, cfgs []Config) []*Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out := make([]*Store, len(cfgs))
	errs := make([]error, len(cfgs))
	var wg sync.WaitGroup
	for i, c := range cfgs {
		wg.Go(func() { out[i], errs[i] = Open(ctx, c, testLogger(t)) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("member %s: %v", cfgs[i].Name, err)
		}
	}
	for _, s := range out {
		t.Cleanup(func() { _ = s.Close() })
	}
	return out
}

func TestThreeMemberCluster(t *testing.T) {
	cfgs := clusterConfigs(t)
	sts := openCluster(t, cfgs)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, s := range sts {
		if s.Member() != cfgs[i].Name {
			t.Errorf("Member() = %q, want %q", s.Member(), cfgs[i].Name)
		}
	}
	members, err := sts[0].Client().MemberList(ctx)
	if err != nil || len(members.Members) != 3 {
		t.Fatalf("member list = %v, %v; want 3 members", members, err)
	}
	// A write through one member is read through the others.
	if _, err := Create(ctx, sts[0], KindTenant, "t1", model.Tenant{Name: "t1", Weight: 1}); err != nil {
		t.Fatal(err)
	}
	for _, s := range sts[1:] {
		if got, err := Get[model.Tenant](ctx, s, KindTenant, "t1"); err != nil || got.Value.Name != "t1" {
			t.Fatalf("read through %s = %+v, %v", s.Member(), got, err)
		}
	}

	// One member down: the other two keep a quorum and serve writes.
	if err := sts[2].Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(ctx, sts[1], KindTenant, "t2", model.Tenant{Name: "t2", Weight: 1}); err != nil {
		t.Fatalf("write with one member down: %v", err)
	}

	// The member restarts from its data and catches up, whatever the
	// cluster state says (etcd reads it for a new data directory only).
	restart := cfgs[2]
	restart.ClusterState = ClusterStateExisting
	back, err := Open(ctx, restart, testLogger(t))
	if err != nil {
		t.Fatalf("restart member: %v", err)
	}
	defer back.Close()
	got, err := Get[model.Tenant](ctx, back, KindTenant, "t2")
	if err != nil || got.Value.Name != "t2" {
		t.Fatalf("restarted member reads %+v, %v; want the write made while it was down", got, err)
	}
}

func TestMemberConfigErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	u := "http://127.0.0.1:23790"
	p := "http://127.0.0.1:23800"
	sp := "https://127.0.0.1:23800"
	tlsFiles := PeerTLS{CertFile: "peer.crt", KeyFile: "peer.key", TrustedCAFile: "ca.crt"}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"name not listed", Config{Name: "cp-x", ClientURL: u, PeerURL: p, InitialCluster: "cp-a=" + p}, `not this member "cp-x"`},
		{"peer URL differs", Config{Name: "cp-a", ClientURL: u, PeerURL: p, InitialCluster: "cp-a=http://127.0.0.1:1"}, "make them equal"},
		{"ports picked", Config{Name: "cp-a", InitialCluster: "cp-a=" + p + ",cp-b=http://127.0.0.1:2"}, "explicit client URL and peer URL"},
		{"bad state", Config{ClusterState: "joining"}, `cluster state "joining"`},
		{"existing alone", Config{ClusterState: ClusterStateExisting}, "needs the initial cluster"},
		{"bad name", Config{Name: "a b"}, `member name "a b"`},
		{"bad list", Config{Name: "cp-a", ClientURL: u, PeerURL: p, InitialCluster: "cp-a"}, "want name=http://HOST:PORT"},
		{"bad advertise", Config{AdvertisePeerURL: "127.0.0.1:5"}, "bad etcd URL"},
		{"election too short", Config{HeartbeatInterval: 100 * time.Millisecond, ElectionTimeout: 200 * time.Millisecond}, "at least 5 heartbeat"},
		{"peer TLS over http", Config{ClientURL: u, PeerURL: p, PeerTLS: tlsFiles}, "peer_url: " + p + " is not https://, but peer TLS is on"},
		{"https without peer TLS", Config{ClientURL: u, PeerURL: sp}, "peer_url: " + sp + " is https://, which needs peer TLS"},
		{"https advertised, http listened", Config{ClientURL: u, PeerURL: p, AdvertisePeerURL: sp}, "advertise_peer_url: " + sp + " is https://, but this member's peer_url is not"},
		{"peer TLS with an http member", Config{Name: "cp-a", ClientURL: u, PeerURL: sp, PeerTLS: tlsFiles, InitialCluster: "cp-a=" + sp + ",cp-b=http://127.0.0.1:2"},
			`initial_cluster: member "cp-b"'s peer URL http://127.0.0.1:2 is not https://`},
		{"peer TLS half set", Config{ClientURL: u, PeerURL: sp, PeerTLS: PeerTLS{CertFile: "peer.crt"}}, "peer_tls: peer TLS needs a certificate, a key and a trusted CA file; not set: key file, trusted CA file"},
		{"https client URL", Config{ClientURL: "https://127.0.0.1:23790"}, "client_url: bad etcd URL"},
		{"peer TLS file missing", Config{ClientURL: u, PeerURL: sp, PeerTLS: PeerTLS{CertFile: dir + "/none.crt", KeyFile: "k", TrustedCAFile: "ca"}}, "peer TLS certificate file: open " + dir + "/none.crt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Embedded, tc.cfg.DataDir = true, dir
			if _, err := Open(ctx, tc.cfg, testLogger(t)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open = %v, want error containing %q", err, tc.want)
			}
		})
	}
}

func TestParseInitialCluster(t *testing.T) {
	got, err := ParseInitialCluster("a=http://127.0.0.1:1, b=https://10.0.0.2:2380")
	if err != nil || len(got) != 2 || got["a"] != "http://127.0.0.1:1" || got["b"] != "https://10.0.0.2:2380" {
		t.Fatalf("ParseInitialCluster = %v, %v", got, err)
	}
	for _, bad := range []string{"", "a", "a=", "=http://h:1", "a=http://h:1,a=http://h:2", "a=https://h", "a=ftp://h:1", "a b=http://h:1"} {
		if _, err := ParseInitialCluster(bad); err == nil {
			t.Errorf("ParseInitialCluster(%q) = nil error", bad)
		}
	}
}

func FuzzParseInitialCluster(f *testing.F) {
	for _, s := range []string{"a=http://127.0.0.1:1,b=http://127.0.0.1:2", "a=http://h:1", "", "a=,b", "x=unix://s:1", "a=https://h:2380"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseInitialCluster(s)
		if err != nil {
			return
		}
		if len(m) == 0 {
			t.Fatalf("%q: no members and no error", s)
		}
		for name, u := range m {
			if !memberNameRE.MatchString(name) {
				t.Fatalf("%q: bad name %q accepted", s, name)
			}
			if _, err := parsePeerURL(u); err != nil {
				t.Fatalf("%q: member %s: URL %q accepted: %v", s, name, u, err)
			}
		}
	})
}
