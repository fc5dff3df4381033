package netns

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// The test binary doubles as the program run inside the namespaces: with
// helperEnv set it serves or fetches instead of running tests.
const helperEnv = "OPSPILOT_NETNS_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "serve": // serve ADDR NAME: answer every request with NAME
		ln, err := net.Listen("tcp", os.Args[len(os.Args)-2])
		if err != nil {
			fmt.Println("listen:", err)
			os.Exit(1)
		}
		name := os.Args[len(os.Args)-1]
		fmt.Println("listening")
		_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, name) }))
		os.Exit(1)
	case "get": // get URL: print the body
		c := &http.Client{Timeout: 2 * time.Second}
		res, err := c.Get(os.Args[len(os.Args)-1])
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		b, _ := io.ReadAll(res.Body)
		fmt.Print(string(b))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func needNamespaces(t *testing.T) {
	t.Helper()
	if err := Available(); err != nil {
		t.Skipf("skipping: network namespaces cannot be created here: %v", err)
	}
}

func newNetwork(t *testing.T) *Network {
	t.Helper()
	n, err := New(context.Background(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	})
	return n
}

func addHost(t *testing.T, n *Network, name string) *Host {
	t.Helper()
	h, err := n.AddHost(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// serveOn runs an HTTP server answering name inside h on port 8080.
func serveOn(t *testing.T, h *Host, name string) {
	t.Helper()
	cmd := h.Command(context.Background(), os.Args[0], "0.0.0.0:8080", name)
	cmd.Env = append(os.Environ(), helperEnv+"=serve")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "listening\n" {
		t.Fatalf("server in %s: %q", h.Namespace, line)
	}
}

// getFrom fetches url from inside h.
func getFrom(h *Host, url string) (string, error) {
	cmd := h.Command(context.Background(), os.Args[0], url)
	cmd.Env = append(os.Environ(), helperEnv+"=get")
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%w: %s", err, out)
	}
	return string(out), nil
}

func get(c *http.Client, url string) (string, error) {
	res, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return string(b), err
}

// TestHostsAreSeparateMachinesAndCutBlackHoles: two hosts serve on the
// same port (separate namespaces), the root namespace and the other host
// reach each, a host reaches a server listening on the bridge address;
// a cut host's connections hang (no refusal, no reset) while the other
// host stays reachable, and a restored host answers again.
func TestHostsAreSeparateMachinesAndCutBlackHoles(t *testing.T) {
	needNamespaces(t)
	n := newNetwork(t)
	a, b := addHost(t, n, "a1"), addHost(t, n, "b1")
	if !n.Subnet().Contains(a.Addr) || !n.Subnet().Contains(b.Addr) || a.Addr == b.Addr || a.Addr == n.Gateway() {
		t.Fatalf("addresses: a %s, b %s, gateway %s, subnet %s", a.Addr, b.Addr, n.Gateway(), n.Subnet())
	}
	for _, name := range []string{n.Link(), a.Link, b.Link} {
		if len(name) > 15 {
			t.Errorf("interface name %q is longer than Linux's 15 bytes", name)
		}
	}
	serveOn(t, a, "a1")
	serveOn(t, b, "b1")

	keepAlive := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{}}
	for _, h := range []*Host{a, b} {
		if got, err := get(keepAlive, "http://"+h.Addr.String()+":8080/"); err != nil || got != h.Name {
			t.Fatalf("root → %s: %q, %v", h.Name, got, err)
		}
	}
	if got, err := getFrom(b, "http://"+a.Addr.String()+":8080/"); err != nil || got != "a1" {
		t.Fatalf("b1 → a1: %q, %v", got, err)
	}
	// A server in the root namespace, on the bridge address.
	ln, err := net.Listen("tcp", netip.AddrPortFrom(n.Gateway(), 0).String())
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "root") })}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	if got, err := getFrom(a, "http://"+ln.Addr().String()+"/"); err != nil || got != "root" {
		t.Fatalf("a1 → root: %q, %v", got, err)
	}

	if err := n.Cut(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	// A new connection is neither refused nor reset: it times out.
	start := time.Now()
	conn, err := net.DialTimeout("tcp", a.Addr.String()+":8080", 300*time.Millisecond)
	var ne net.Error
	if err == nil {
		conn.Close()
		t.Fatal("dialled a cut host")
	}
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("dial to a cut host: %v after %s, want a timeout (black hole)", err, time.Since(start))
	}
	// A kept-alive connection hangs too.
	if _, err := get(keepAlive, "http://"+a.Addr.String()+":8080/"); err == nil {
		t.Fatal("request on a kept-alive connection to a cut host succeeded")
	}
	if _, err := getFrom(a, "http://"+ln.Addr().String()+"/"); err == nil {
		t.Fatal("a cut host reached the root namespace")
	}
	if got, err := get(keepAlive, "http://"+b.Addr.String()+":8080/"); err != nil || got != "b1" {
		t.Fatalf("root → b1 while a1 is cut: %q, %v", got, err)
	}

	if err := n.Restore(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	fresh := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := get(fresh, "http://"+a.Addr.String()+":8080/")
		if err == nil && got == "a1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a1 not reachable 10 s after restore: %q, %v", got, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// names lists the links and namespaces whose names start with prefix.
func names(t *testing.T, prefix string) []string {
	t.Helper()
	var out []string
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifaces {
		if strings.HasPrefix(i.Name, prefix) {
			out = append(out, i.Name)
		}
	}
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestCloseRemovesEverything(t *testing.T) {
	needNamespaces(t)
	n, err := New(context.Background(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	addHost(t, n, "x")
	addHost(t, n, "y")
	if got := names(t, n.ID()); len(got) != 4 { // root link, switch and 2 host namespaces
		t.Errorf("made %v, want a link and three namespaces", got)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if left := names(t, n.ID()); len(left) > 0 {
		t.Errorf("left behind after Close: %v", left)
	}
	if err := n.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := n.AddHost(context.Background(), "z"); err == nil {
		t.Error("AddHost on a closed network succeeded")
	}
}

// TestSweepRemovesOnlyDeadRuns: a network whose owner process is gone (a
// run killed before its cleanup) is swept; the live one is not.
func TestSweepRemovesOnlyDeadRuns(t *testing.T) {
	needNamespaces(t)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	cfg := Config{}.withDefaults()
	ipPath, _ := exec.LookPath(cfg.IP)
	orphan, err := create(context.Background(), cfg, ipPath, runID(dead.Process.Pid, 7))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = orphan.Close() })
	if _, err := orphan.AddHost(context.Background(), "o"); err != nil {
		t.Fatal(err)
	}
	live := newNetwork(t)
	addHost(t, live, "l")

	removed, err := Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if left := names(t, orphan.ID()); len(left) > 0 {
		t.Errorf("sweep left the dead run's %v (removed %v)", left, removed)
	}
	if !slices.Contains(removed, orphan.Switch()) {
		t.Errorf("sweep reported %v, want it to name %s", removed, orphan.Switch())
	}
	if got := names(t, live.ID()); len(got) != 3 {
		t.Errorf("sweep touched the live run: %v left of its link and two namespaces", got)
	}
}

func TestNetworksGetDistinctSubnets(t *testing.T) {
	needNamespaces(t)
	a, b := newNetwork(t), newNetwork(t)
	if a.Subnet().Overlaps(b.Subnet()) || a.ID() == b.ID() {
		t.Errorf("networks %s (%s) and %s (%s) collide", a.ID(), a.Subnet(), b.ID(), b.Subnet())
	}
}

func TestBadInput(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"ipv6 pool", Config{Pool: netip.MustParsePrefix("fd00::/64")}, "pool fd00::/64 must be an IPv4 prefix"},
		{"pool narrower than /24", Config{Pool: netip.MustParsePrefix("10.1.2.0/28")}, "/24 or wider"},
		{"negative timeout", Config{CommandTimeout: -time.Second}, "command timeout"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(context.Background(), tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v, want an error containing %q", err, tt.want)
			}
		})
	}
	needNamespaces(t)
	n := newNetwork(t)
	addHost(t, n, "h")
	for _, name := range []string{"", "a/b", "h"} {
		if _, err := n.AddHost(context.Background(), name); err == nil {
			t.Errorf("AddHost(%q) succeeded", name)
		}
	}
}
