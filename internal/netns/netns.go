package netns

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Config configures a Network. Zero values take the defaults.
type Config struct {
	// Pool is the IPv4 range each network takes a /24 of; default
	// 10.77.0.0/16 (rarely used by real networks). A /24 that overlaps an
	// address or route of the root namespace is skipped.
	Pool netip.Prefix
	// IP is the iproute2 binary; default "ip" found on PATH.
	IP string
	// CommandTimeout bounds each `ip` command; default 10s.
	CommandTimeout time.Duration
}

// Defaults of Config.
var (
	DefaultPool           = netip.MustParsePrefix("10.77.0.0/16")
	DefaultCommandTimeout = 10 * time.Second
)

func (c Config) withDefaults() Config {
	if !c.Pool.IsValid() {
		c.Pool = DefaultPool
	}
	if c.IP == "" {
		c.IP = "ip"
	}
	if c.CommandTimeout == 0 {
		c.CommandTimeout = DefaultCommandTimeout
	}
	return c
}

func (c Config) validate() error {
	switch {
	case !c.Pool.Addr().Is4() || c.Pool.Bits() > 24:
		return fmt.Errorf("netns: pool %s must be an IPv4 prefix of /24 or wider, e.g. 10.77.0.0/16", c.Pool)
	case c.CommandTimeout < 0:
		return fmt.Errorf("netns: command timeout %s must not be negative", c.CommandTimeout)
	}
	return nil
}

// maxHosts is how many hosts fit in a /24 beside the bridge (.1) and the
// broadcast address.
const maxHosts = 253

// Network is a bridge in the root namespace and the hosts attached to it.
// Its methods may be called from several goroutines.
type Network struct {
	cfg    Config
	ipPath string
	// nsenter, when found, runs commands with only the network namespace
	// switched; else `ip netns exec` is used.
	nsenter string
	id      string // run id: the prefix of every name
	sw      string // the switch namespace, holding the bridge
	link    string // the root namespace's interface on the bridge
	subnet  netip.Prefix
	gw      netip.Addr

	mu     sync.Mutex
	hosts  []*Host
	closed bool
}

// Host is one network namespace on the network.
type Host struct {
	// Name is the name the host was added with.
	Name string
	// Namespace is the network namespace's name (`ip netns exec NAMESPACE`).
	Namespace string
	// Link is the switch's end of the host's veth, on the bridge (a name
	// inside the network's switch namespace).
	Link string
	// Addr is the host's address.
	Addr netip.Addr

	net *Network
}

var (
	availOnce sync.Once
	availErr  error
)

// Available reports why network namespaces cannot be made here (not
// root, no `ip`, `ip netns add` refused), or nil. The answer is computed
// once per process.
func Available() error {
	availOnce.Do(func() { availErr = probe(Config{}.withDefaults()) })
	return availErr
}

func probe(cfg Config) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("network namespaces need root (CAP_NET_ADMIN, CAP_SYS_ADMIN); running as uid %d", os.Geteuid())
	}
	ipPath, err := exec.LookPath(cfg.IP)
	if err != nil {
		return fmt.Errorf("network namespaces need iproute2's %q on PATH (apt-get install iproute2): %w", cfg.IP, err)
	}
	name := fmt.Sprintf("%sprobe", runID(os.Getpid(), int(runCounter.Add(1))))
	ctx, cancel := context.WithTimeout(context.Background(), cfg.CommandTimeout)
	defer cancel()
	if _, err := run(ctx, ipPath, "netns", "add", name); err != nil {
		return fmt.Errorf("cannot create a network namespace here (a container without privileges?): %w", err)
	}
	if _, err := run(ctx, ipPath, "netns", "del", name); err != nil {
		return fmt.Errorf("cannot delete the probe namespace %s: %w", name, err)
	}
	return nil
}

// runCounter numbers the networks (and probes) of this process.
var runCounter atomic.Int64

// runID is "opn" + pid in base 36 + "_" + n in base 36: at most 11 bytes
// for PIDs up to 2^22 and 1,296 networks per process, leaving room for
// the suffixes in 15-byte interface names.
func runID(pid, n int) string {
	return "opn" + strconv.FormatInt(int64(pid), 36) + "_" + strconv.FormatInt(int64(n%1296), 36)
}

// runIDPattern matches names made by runID, capturing the PID.
var runIDPattern = regexp.MustCompile(`^opn([0-9a-z]{1,5})_[0-9a-z]{1,2}`)

// New creates a network: a bridge with the first address of a free /24
// of cfg.Pool. Close removes it with its hosts.
func New(ctx context.Context, cfg Config) (*Network, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	ipPath, err := exec.LookPath(cfg.IP)
	if err != nil {
		return nil, fmt.Errorf("netns: iproute2's %q is not on PATH: %w", cfg.IP, err)
	}
	return create(ctx, cfg, ipPath, runID(os.Getpid(), int(runCounter.Add(1))))
}

func create(ctx context.Context, cfg Config, ipPath, id string) (*Network, error) {
	n := &Network{cfg: cfg, ipPath: ipPath, id: id, sw: id + "-sw", link: id + "gw"}
	n.nsenter, _ = exec.LookPath("nsenter")
	// Choosing a subnet and putting it on the bridge is one step under a
	// lock shared by every process, so two runs never take the same /24.
	unlock, err := lockFile(ctx, "/run/opspilot-netns.lock")
	if err != nil {
		return nil, err
	}
	defer unlock()
	subnet, err := n.freeSubnet(ctx)
	if err != nil {
		return nil, err
	}
	n.subnet, n.gw = subnet, subnet.Addr().Next()
	steps := [][]string{
		{"netns", "add", n.sw},
		{"-n", n.sw, "link", "add", "br0", "type", "bridge"},
		{"-n", n.sw, "link", "set", "br0", "up"},
		{"link", "add", n.link, "type", "veth", "peer", "name", "uplink", "netns", n.sw},
		{"-n", n.sw, "link", "set", "dev", "uplink", "master", "br0"},
		{"-n", n.sw, "link", "set", "dev", "uplink", "up"},
		{"addr", "add", netip.PrefixFrom(n.gw, subnet.Bits()).String(), "dev", n.link},
		{"link", "set", n.link, "up"},
	}
	for _, args := range steps {
		if _, err := n.ip(ctx, args...); err != nil {
			_ = n.Close()
			return nil, fmt.Errorf("netns: create network %s: %w", n.id, err)
		}
	}
	return n, nil
}

// ID is the run id every name of this network starts with.
func (n *Network) ID() string { return n.id }

// Link is the root namespace's interface on the network (it holds the
// Gateway address).
func (n *Network) Link() string { return n.link }

// Switch is the namespace holding the bridge and the switch ends of the
// hosts' veths. The bridge lives apart from the root namespace so traffic
// between hosts never meets the machine's firewall (Docker sets FORWARD
// to DROP, and br_netfilter applies it to bridged frames).
func (n *Network) Switch() string { return n.sw }

// Subnet is the network's /24.
func (n *Network) Subnet() netip.Prefix { return n.subnet }

// Gateway is the bridge's address: where hosts reach the root namespace
// (listen on it for servers the hosts must reach).
func (n *Network) Gateway() netip.Addr { return n.gw }

// Hosts are the hosts added so far, in order.
func (n *Network) Hosts() []*Host {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]*Host(nil), n.hosts...)
}

// AddHost creates a host named name: a namespace with lo up, one end of a
// veth pair as its eth0 with the next free address and a default route via
// the bridge, the other end on the bridge.
func (n *Network) AddHost(ctx context.Context, name string) (*Host, error) {
	if name == "" || strings.ContainsAny(name, "/ \t\n") {
		return nil, fmt.Errorf("netns: host name %q must be non-empty without '/' or spaces", name)
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil, errors.New("netns: the network is closed")
	}
	idx := len(n.hosts)
	for _, h := range n.hosts {
		if h.Name == name {
			n.mu.Unlock()
			return nil, fmt.Errorf("netns: host %q already exists on %s", name, n.id)
		}
	}
	if idx >= maxHosts {
		n.mu.Unlock()
		return nil, fmt.Errorf("netns: network %s is full (%d hosts)", n.id, maxHosts)
	}
	addr := n.gw
	for range idx + 1 {
		addr = addr.Next()
	}
	suffix := strconv.FormatInt(int64(idx), 36)
	h := &Host{
		Name:      name,
		Namespace: n.id + "-" + name,
		Link:      "v" + suffix,
		Addr:      addr,
		net:       n,
	}
	n.hosts = append(n.hosts, h) // reserved now, so Close removes a half-made host too
	n.mu.Unlock()

	steps := [][]string{
		{"netns", "add", h.Namespace},
		{"-n", n.sw, "link", "add", h.Link, "type", "veth", "peer", "name", "eth0", "netns", h.Namespace},
		{"-n", h.Namespace, "addr", "add", netip.PrefixFrom(addr, n.subnet.Bits()).String(), "dev", "eth0"},
		{"-n", h.Namespace, "link", "set", "lo", "up"},
		{"-n", h.Namespace, "link", "set", "eth0", "up"},
		{"-n", h.Namespace, "route", "add", "default", "via", n.gw.String()},
		{"-n", n.sw, "link", "set", h.Link, "master", "br0"},
		{"-n", n.sw, "link", "set", h.Link, "up"},
	}
	for _, args := range steps {
		if _, err := n.ip(ctx, args...); err != nil {
			return nil, fmt.Errorf("netns: add host %q: %w", name, err)
		}
	}
	return h, nil
}

// Host returns the host named name, or nil.
func (n *Network) Host(name string) *Host {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, h := range n.hosts {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// Cut takes the hosts off the network: the bridge end of each veth goes
// down, so every packet from or to them is dropped silently (established
// connections hang, new ones time out) until Restore.
func (n *Network) Cut(ctx context.Context, hosts ...*Host) error {
	for _, h := range hosts {
		if _, err := n.ip(ctx, "-n", n.sw, "link", "set", h.Link, "down"); err != nil {
			return fmt.Errorf("netns: cut host %q: %w", h.Name, err)
		}
	}
	return nil
}

// Restore puts cut hosts back on the network.
func (n *Network) Restore(ctx context.Context, hosts ...*Host) error {
	for _, h := range hosts {
		if _, err := n.ip(ctx, "-n", n.sw, "link", "set", h.Link, "up"); err != nil {
			return fmt.Errorf("netns: restore host %q: %w", h.Name, err)
		}
	}
	return nil
}

// Close removes the hosts' veths and namespaces and the bridge. Processes
// still running in a namespace lose their network; stop them first.
// Close is idempotent and returns the first error after trying everything.
func (n *Network) Close() error {
	n.mu.Lock()
	hosts := n.hosts
	already := n.closed
	n.closed = true
	n.mu.Unlock()
	if already {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*n.cfg.CommandTimeout)
	defer cancel()
	var errs []error
	// Deleting the switch namespace deletes the bridge and every veth
	// (one end is in it); a host namespace goes away with its last process.
	for _, ns := range append([]string{n.sw}, namespaces(hosts)...) {
		if n.exists(ctx, "netns", ns) {
			if _, err := n.ip(ctx, "netns", "del", ns); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if n.exists(ctx, "link", n.link) { // gone with its peer, normally
		if _, err := n.ip(ctx, "link", "del", n.link); err != nil && n.exists(ctx, "link", n.link) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("netns: close %s: %w", n.id, err)
	}
	return nil
}

func namespaces(hosts []*Host) []string {
	var out []string
	for _, h := range hosts {
		out = append(out, h.Namespace)
	}
	return out
}

// exists reports whether a link or namespace of that name is there.
func (n *Network) exists(ctx context.Context, kind, name string) bool {
	switch kind {
	case "link":
		_, err := n.ip(ctx, "link", "show", "dev", name)
		return err == nil
	default:
		_, err := os.Stat("/run/netns/" + name)
		return err == nil
	}
}

// Command returns a command that runs name with args inside the host's
// network namespace. Like a process on a separate machine it has its own
// interfaces, addresses and ports; unlike one it shares the file system,
// /sys and the cgroup tree (util-linux's nsenter switches the network
// namespace only; without nsenter, `ip netns exec` also remounts /sys, and
// cgroups mounted below it are not visible). Both exec the command: its
// PID is the started process's, so signals reach it directly.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	argv := h.Argv(name, args...)
	return exec.CommandContext(ctx, argv[0], argv[1:]...)
}

// Argv is the command line that runs name with args inside the host's
// namespace, for process starters that take a binary and its arguments.
func (h *Host) Argv(name string, args ...string) []string {
	if h.net.nsenter != "" {
		return append([]string{h.net.nsenter, "--net=/run/netns/" + h.Namespace, "--", name}, args...)
	}
	return append([]string{h.net.ipPath, "netns", "exec", h.Namespace, name}, args...)
}

// Network is the network the host belongs to.
func (h *Host) Network() *Network { return h.net }

func (n *Network) ip(ctx context.Context, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.CommandTimeout)
	defer cancel()
	return run(ctx, n.ipPath, args...)
}

func run(ctx context.Context, bin string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", bin, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// freeSubnet is the first /24 of the pool that overlaps no address or
// route of the root namespace.
func (n *Network) freeSubnet(ctx context.Context) (netip.Prefix, error) {
	used, err := n.usedPrefixes(ctx)
	if err != nil {
		return netip.Prefix{}, err
	}
	pool := n.cfg.Pool.Masked()
	start := pool.Addr().As4()
	base := binary.BigEndian.Uint32(start[:])
	for a := base; a >= base; a += 256 { // a < base: wrapped around
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], a)
		p := netip.PrefixFrom(netip.AddrFrom4(b), 24)
		if !pool.Contains(p.Addr()) {
			break
		}
		free := true
		for _, u := range used {
			if u.Overlaps(p) {
				free = false
				break
			}
		}
		if free {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("netns: no free /24 in pool %s: every one overlaps an address or route here; set Config.Pool", n.cfg.Pool)
}

// usedPrefixes lists the root namespace's IPv4 addresses (as their
// subnets) and routes, except the default route.
func (n *Network) usedPrefixes(ctx context.Context) ([]netip.Prefix, error) {
	var out []netip.Prefix
	addrs, err := n.ip(ctx, "-j", "-4", "addr", "show")
	if err != nil {
		return nil, fmt.Errorf("netns: list addresses: %w", err)
	}
	var links []struct {
		AddrInfo []struct {
			Local     string `json:"local"`
			PrefixLen int    `json:"prefixlen"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal(addrs, &links); err != nil {
		return nil, fmt.Errorf("netns: parse `ip -j addr`: %w", err)
	}
	for _, l := range links {
		for _, a := range l.AddrInfo {
			if addr, err := netip.ParseAddr(a.Local); err == nil {
				if p, err := addr.Prefix(a.PrefixLen); err == nil {
					out = append(out, p)
				}
			}
		}
	}
	routes, err := n.ip(ctx, "-j", "-4", "route", "show")
	if err != nil {
		return nil, fmt.Errorf("netns: list routes: %w", err)
	}
	var rs []struct {
		Dst string `json:"dst"`
	}
	if err := json.Unmarshal(routes, &rs); err != nil {
		return nil, fmt.Errorf("netns: parse `ip -j route`: %w", err)
	}
	for _, r := range rs {
		if r.Dst == "default" {
			continue
		}
		if !strings.Contains(r.Dst, "/") {
			r.Dst += "/32"
		}
		if p, err := netip.ParsePrefix(r.Dst); err == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

// lockFile takes an exclusive flock on path, waiting for ctx.
func lockFile(ctx context.Context, path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("netns: open lock file: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); _ = f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			_ = f.Close()
			return nil, fmt.Errorf("netns: lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, fmt.Errorf("netns: waiting for %s: %w", path, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Sweep removes the namespaces, veths and bridges that networks of
// processes no longer running left behind (a run killed before its
// cleanup), and returns their names. Networks of live processes are left
// alone, so concurrent runs are safe.
func Sweep(ctx context.Context) ([]string, error) {
	cfg := Config{}.withDefaults()
	ipPath, err := exec.LookPath(cfg.IP)
	if err != nil {
		return nil, fmt.Errorf("netns: iproute2's %q is not on PATH: %w", cfg.IP, err)
	}
	n := &Network{cfg: cfg, ipPath: ipPath}
	stale := func(name string) bool {
		m := runIDPattern.FindStringSubmatch(name)
		if m == nil {
			return false
		}
		pid, err := strconv.ParseInt(m[1], 36, 64)
		return err == nil && !processAlive(int(pid))
	}
	var removed []string
	var errs []error
	// Namespaces first: the switch's takes the bridge and the veths
	// with it. Then root-namespace links whose peer somehow survived.
	entries, err := os.ReadDir("/run/netns")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	for _, e := range entries {
		if !stale(e.Name()) {
			continue
		}
		if _, err := n.ip(ctx, "netns", "del", e.Name()); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, e.Name())
	}
	out, err := n.ip(ctx, "-j", "link", "show")
	if err != nil {
		return removed, fmt.Errorf("netns: list links: %w", err)
	}
	var links []struct {
		Name string `json:"ifname"`
	}
	if err := json.Unmarshal(out, &links); err != nil {
		return removed, fmt.Errorf("netns: parse `ip -j link`: %w", err)
	}
	for _, l := range links {
		if !stale(l.Name) {
			continue
		}
		if _, err := n.ip(ctx, "link", "del", l.Name); err != nil && n.exists(ctx, "link", l.Name) {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, l.Name)
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("netns: sweep: %w", err)
	}
	return removed, nil
}

// processAlive reports whether pid names a running process (a zombie
// counts as gone).
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name's closing parenthesis.
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
		return false
	}
	return true
}
