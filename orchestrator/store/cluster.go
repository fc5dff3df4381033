package store

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/types"
)

// Member defaults and cluster states.
const (
	DefaultMemberName = "opspilot"
	// ClusterStateNew: the members listed in InitialCluster start a new
	// cluster together.
	ClusterStateNew = "new"
	// ClusterStateExisting: this member joins a running cluster it was
	// added to (etcdctl member add).
	ClusterStateExisting = "existing"
)

var memberNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// ParseInitialCluster parses etcd's initial-cluster form,
// "name=http://host:port,name=http://host:port", into member names and
// their peer URLs. Every member needs a valid name and exactly one
// http://HOST:PORT URL (https:// with peer TLS).
func ParseInitialCluster(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("empty; list the members as name=http://HOST:PORT,name=http://HOST:PORT (https:// with peer TLS)")
	}
	// etcd's parser silently keeps the last of two equal names and skips
	// entries without "=": check the raw list first.
	seen := map[string]bool{}
	var clean []string
	for entry := range strings.SplitSeq(s, ",") {
		name, u, ok := strings.Cut(strings.TrimSpace(entry), "=")
		name, u = strings.TrimSpace(name), strings.TrimSpace(u)
		if !ok || name == "" || u == "" {
			return nil, fmt.Errorf("entry %q: want name=http://HOST:PORT", entry)
		}
		if !memberNameRE.MatchString(name) {
			return nil, fmt.Errorf("entry %q: member name %q: use letters, digits, '.', '_' and '-'", entry, name)
		}
		if seen[name] {
			return nil, fmt.Errorf("member %q is listed twice; each member has one peer URL", name)
		}
		seen[name] = true
		if _, err := parsePeerURL(u); err != nil {
			return nil, fmt.Errorf("member %q: %w", name, err)
		}
		clean = append(clean, name+"="+u)
	}
	m, err := types.NewURLsMap(strings.Join(clean, ","))
	if err != nil {
		return nil, fmt.Errorf("%q: %w", s, err)
	}
	out := make(map[string]string, len(m))
	for name, urls := range m {
		out[name] = urls[0].String()
	}
	return out, nil
}

// checkMember fills the member defaults and checks that this member's
// settings agree with InitialCluster.
func (c *Config) checkMember() error {
	if c.Name == "" {
		c.Name = DefaultMemberName
	}
	if !memberNameRE.MatchString(c.Name) {
		return configErr("name", fmt.Sprintf("member name %q: use letters, digits, '.', '_' and '-'", c.Name))
	}
	switch c.ClusterState {
	case "":
		c.ClusterState = ClusterStateNew
	case ClusterStateNew, ClusterStateExisting:
	default:
		return configErr("cluster_state", fmt.Sprintf("cluster state %q: use %q or %q", c.ClusterState, ClusterStateNew, ClusterStateExisting))
	}
	if err := c.PeerTLS.check(); err != nil {
		return err
	}
	tlsOn := c.PeerTLS.Enabled()
	for _, u := range []struct {
		field, url string
		peer       bool
	}{
		{"client_url", c.ClientURL, false}, {"peer_url", c.PeerURL, true},
		{"advertise_client_url", c.AdvertiseClientURL, false}, {"advertise_peer_url", c.AdvertisePeerURL, true},
	} {
		if u.url == "" {
			continue
		}
		parse := parseListenURL
		if u.peer {
			parse = parsePeerURL
		}
		if _, err := parse(u.url); err != nil {
			return configErr(u.field, strings.TrimPrefix(err.Error(), "store: "))
		}
		if u.peer {
			if err := checkPeerScheme(u.field, "", u.url, tlsOn); err != nil {
				return err
			}
		}
	}
	members := 1
	if c.InitialCluster != "" {
		m, err := ParseInitialCluster(c.InitialCluster)
		if err != nil {
			return configErr("initial_cluster", err.Error())
		}
		for _, name := range slices.Sorted(maps.Keys(m)) {
			if err := checkPeerScheme("initial_cluster", name, m[name], tlsOn); err != nil {
				return err
			}
		}
		members = len(m)
		c.InitialCluster = initialClusterString(m)
		mine, ok := m[c.Name]
		if !ok {
			names := slices.Sorted(maps.Keys(m))
			return configErr("initial_cluster", fmt.Sprintf("the initial cluster lists %s but not this member %q; add %s=PEER_URL or set the member name", strings.Join(names, ", "), c.Name, c.Name))
		}
		if c.PeerURL == "" || c.ClientURL == "" {
			return configErr("peer_url", fmt.Sprintf("member %q of a cluster needs an explicit client URL and peer URL (the other members dial them)", c.Name))
		}
		advertised := c.AdvertisePeerURL
		if advertised == "" {
			advertised = c.PeerURL
		}
		if strings.TrimRight(mine, "/") != strings.TrimRight(advertised, "/") {
			return configErr("initial_cluster", fmt.Sprintf("the initial cluster gives member %q the peer URL %s, but it advertises %s; make them equal", c.Name, mine, advertised))
		}
	} else if c.ClusterState == ClusterStateExisting {
		return configErr("cluster_state", fmt.Sprintf("cluster state %q needs the initial cluster (the running members and this one)", ClusterStateExisting))
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = 100 * time.Millisecond
		if members == 1 {
			// One member elects itself: short timings make it ready sooner.
			c.HeartbeatInterval = 10 * time.Millisecond
		}
	}
	if c.ElectionTimeout <= 0 {
		c.ElectionTimeout = 10 * c.HeartbeatInterval
	}
	if c.ElectionTimeout < 5*c.HeartbeatInterval {
		return configErr("election_timeout", fmt.Sprintf("election timeout %s must be at least 5 heartbeat intervals (%s)", c.ElectionTimeout, 5*c.HeartbeatInterval))
	}
	return nil
}

// initialClusterString writes members back in etcd's form, sorted.
func initialClusterString(m map[string]string) string {
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, name+"="+m[name])
	}
	return strings.Join(parts, ",")
}

// ConfigError is a bad member setting; Field is its opspilot.yaml key
// under orchestrator.store.
type ConfigError struct {
	Field, Msg string
}

func (e *ConfigError) Error() string { return "store: " + e.Field + ": " + e.Msg }

func configErr(field, msg string) error { return &ConfigError{Field: field, Msg: msg} }
