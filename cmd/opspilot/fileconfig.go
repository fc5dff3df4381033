package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"opspilot/alerting"
	"opspilot/analyzer/online"
	"opspilot/api"
	"opspilot/autoscaler"
	"opspilot/collector"
	"opspilot/config"
	"opspilot/grafana/report"
	"opspilot/orchestrator/control"
	"opspilot/orchestrator/leader"
	"opspilot/orchestrator/model"
	"opspilot/orchestrator/pki"
	"opspilot/orchestrator/store"
	"opspilot/runbooks"
	"opspilot/tsdb"
)

// FileConfig is opspilot.yaml. Every field is documented, with its default,
// in the README's configuration reference.
type FileConfig struct {
	// DataDir holds everything the server stores (the embedded TSDB under
	// DataDir/tsdb unless tsdb.embedded.data_dir says otherwise).
	DataDir        string               `yaml:"data_dir"`
	Log            LogConfig            `yaml:"log"`
	Server         api.Config           `yaml:"server"`
	TSDB           tsdb.Config          `yaml:"tsdb"`
	SelfMonitoring SelfMonitoringConfig `yaml:"self_monitoring"`
	// Agent configures `opspilot agent` and the agent `opspilot up` runs.
	Agent collector.Config `yaml:"agent"`
	// LogStore is where logs go in `opspilot up`.
	LogStore LogStoreConfig `yaml:"logstore"`
	// Orchestrator is the control plane that runs services on nodes.
	Orchestrator OrchestratorConfig `yaml:"orchestrator"`
	// Node describes this machine to the orchestrator (`opspilot agent`
	// and the node `opspilot up` runs).
	Node NodeConfig `yaml:"node"`
	// Analyzer scores series for anomalies in the control plane.
	Analyzer online.Config `yaml:"analyzer"`
	// Autoscaler runs the autoscaling policies in the control plane.
	Autoscaler autoscaler.LoopConfig `yaml:"autoscaler"`
	// Alerting evaluates rule files and routes their alerts to receivers.
	Alerting alerting.Config `yaml:"alerting"`
	// Runbooks configures the chat-bot (and, later, runbooks).
	Runbooks runbooks.Config `yaml:"runbooks"`
	// Reports schedules the capacity and inspection reports.
	Reports report.Config `yaml:"reports"`

	// Demo is set by `opspilot up --demo`; not a file setting.
	Demo DemoConfig `yaml:"-"`
}

// DemoConfig is `opspilot up --demo`: the billing service and a gateway.
type DemoConfig struct {
	Enabled     bool
	GatewayAddr string
}

// OrchestratorConfig is the `orchestrator:` section.
type OrchestratorConfig struct {
	control.Config `yaml:",inline"`
	Store          StoreConfig `yaml:"store"`
	// Leader elects the replica that runs the singleton loops.
	Leader leader.Config `yaml:"leader"`
	// HeartbeatRelay is how often a replica shares the heartbeats its
	// agents sent it with the other replicas (through etcd).
	HeartbeatRelay time.Duration `yaml:"heartbeat_relay"`
}

// StoreConfig says where the orchestrator's state lives.
type StoreConfig struct {
	// Mode is "embedded" (etcd inside opspilot, data under data_dir/etcd)
	// or "external" (an etcd cluster at endpoints).
	Mode      string   `yaml:"mode"`
	Endpoints []string `yaml:"endpoints"`
	// Prefix is put before every key (several opspilots can share one
	// etcd cluster).
	Prefix string `yaml:"prefix"`
	// DataDir overrides data_dir/etcd.
	DataDir string `yaml:"data_dir"`
	// Name is this replica's etcd member name (and its name as leader);
	// default "opspilot".
	Name string `yaml:"name"`
	// ClientURL and PeerURL are the embedded member's listen URLs
	// (http://HOST:PORT); empty picks free loopback ports (one member
	// only). The advertise URLs default to them. An https:// PeerURL turns
	// on peer TLS: the member's certificate comes from DATA_DIR/pki, whose
	// CA every replica shares, and every peer URL must be https://.
	ClientURL          string `yaml:"client_url"`
	AdvertiseClientURL string `yaml:"advertise_client_url"`
	PeerURL            string `yaml:"peer_url"`
	AdvertisePeerURL   string `yaml:"advertise_peer_url"`
	// InitialCluster is name=peerURL,… of every member of a new cluster.
	InitialCluster string `yaml:"initial_cluster"`
	// ClusterState is new or existing.
	ClusterState string `yaml:"cluster_state"`
	// HeartbeatInterval and ElectionTimeout are etcd's raft timings.
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	ElectionTimeout   time.Duration `yaml:"election_timeout"`
}

// storeConfig is the store's configuration from the file.
func (c FileConfig) storeConfig() store.Config {
	sc := c.Orchestrator.Store
	scfg := store.Config{Prefix: sc.Prefix}
	if sc.Mode == "external" {
		scfg.Endpoints = sc.Endpoints
		return scfg
	}
	scfg.Embedded = true
	scfg.DataDir = sc.DataDir
	if scfg.DataDir == "" {
		scfg.DataDir = filepath.Join(c.DataDir, "etcd")
	}
	scfg.Name, scfg.ClientURL, scfg.AdvertiseClientURL = sc.Name, sc.ClientURL, sc.AdvertiseClientURL
	scfg.PeerURL, scfg.AdvertisePeerURL = sc.PeerURL, sc.AdvertisePeerURL
	scfg.InitialCluster, scfg.ClusterState = sc.InitialCluster, sc.ClusterState
	scfg.HeartbeatInterval, scfg.ElectionTimeout = sc.HeartbeatInterval, sc.ElectionTimeout
	if sc.peerTLS() {
		// The files pki.EnsureCA(…, WithPeerCert) keeps in pkiDir.
		dir := c.pkiDir()
		scfg.PeerTLS = store.PeerTLS{
			CertFile: filepath.Join(dir, pki.PeerCertFile), KeyFile: filepath.Join(dir, pki.PeerKeyFile),
			TrustedCAFile: filepath.Join(dir, pki.CACertFile),
		}
	}
	return scfg
}

// pkiDir holds the server's CA and certificates (package pki).
func (c FileConfig) pkiDir() string { return filepath.Join(c.DataDir, "pki") }

// peerTLS says whether the embedded member's peers talk TLS: its peer URL
// is https://.
func (sc StoreConfig) peerTLS() bool {
	return sc.Mode != "external" && strings.HasPrefix(strings.ToLower(sc.PeerURL), "https://")
}

// peerHosts are the hosts of the peer URLs this member listens on and
// advertises: what its peer certificate must name.
func (sc StoreConfig) peerHosts() []string {
	var hosts []string
	for _, raw := range []string{sc.PeerURL, sc.AdvertisePeerURL} {
		if u, err := url.Parse(raw); err == nil && u.Hostname() != "" {
			hosts = append(hosts, u.Hostname())
		}
	}
	return hosts
}

// members is the number of members of the embedded cluster (1 alone or
// when initial_cluster does not parse).
func (sc StoreConfig) members() int {
	m, err := store.ParseInitialCluster(sc.InitialCluster)
	if err != nil {
		return 1
	}
	return len(m)
}

// peerTLSNote explains https:// peer URLs in the errors about them.
const peerTLSNote = "https:// peer URLs turn on etcd peer TLS: opspilot server issues this member's certificate from the CA in DATA_DIR/pki, so every replica must share that CA (copy DATA_DIR/pki/ca.crt and ca.key to each replica before its first start)"

// electLeader says whether replicas elect a leader: election on, or auto
// with an external etcd or an embedded cluster of several members.
func (c FileConfig) electLeader() bool {
	switch c.Orchestrator.Leader.Election {
	case leader.ElectionOn:
		return true
	case leader.ElectionOff:
		return false
	}
	if c.Orchestrator.Store.Mode == "external" {
		return true
	}
	return c.Orchestrator.Store.members() > 1
}

// replicaName names this control-plane replica: the etcd member name, or
// the host name.
func (c FileConfig) replicaName() string {
	if c.Orchestrator.Store.Name != "" {
		return c.Orchestrator.Store.Name
	}
	if c.Orchestrator.Store.Mode != "external" {
		return store.DefaultMemberName
	}
	h, _ := os.Hostname()
	return h
}

// NodeConfig describes the node to the orchestrator.
type NodeConfig struct {
	// Partition groups nodes within a datacenter (e.g. "db").
	Partition string            `yaml:"partition"`
	Labels    map[string]string `yaml:"labels"`
	// Address is how other machines reach this node's instances; empty
	// means the address the server sees the agent connect from (127.0.0.1
	// in `opspilot up`).
	Address string `yaml:"address"`
	// Capacity is what instances may request here; zero amounts are
	// detected (all CPUs, physical memory).
	Capacity model.Resources `yaml:"capacity"`
	// Runtimes the node offers: process, docker. Empty means process, and
	// docker when an engine answers.
	Runtimes []string `yaml:"runtimes"`
	// JoinTokenFile holds the cluster's join token (`opspilot agent`;
	// --join-token and $OPSPILOT_JOIN_TOKEN override it).
	JoinTokenFile string `yaml:"join_token_file"`
	// InstancesDir holds the instances' working directories and logs;
	// default data_dir/instances.
	InstancesDir string `yaml:"instances_dir"`
}

// LogStoreConfig is the log store `opspilot up` runs or points at.
type LogStoreConfig struct {
	// Mode is "embedded" (a VictoriaLogs process under data_dir/logs) or
	// "remote" (agent.logs.url names an Elasticsearch-compatible endpoint).
	Mode string `yaml:"mode"`
	// HTTPAddr is the embedded VictoriaLogs' listen address.
	HTTPAddr string `yaml:"http_addr"`
	// Binary is the victoria-logs executable; empty: next to opspilot, on
	// PATH, or built from the module with the Go toolchain.
	Binary string `yaml:"binary"`
	// URL is the Elasticsearch-compatible bulk base (VictoriaLogs'
	// http://HOST:9428/insert/elasticsearch, or an Elasticsearch URL) to
	// which `opspilot server`, having no agent of its own, ships its alert
	// events and incident journal. Empty: agent.logs.url.
	URL string `yaml:"url"`
	// QueryURL is a VictoriaLogs base URL (http://HOST:9428) that runbook
	// logs steps and the log anomaly scanner query in `opspilot server`;
	// `opspilot up` uses its embedded store.
	QueryURL string `yaml:"query_url"`
}

// LogConfig configures opspilot's own structured logs (stderr).
type LogConfig struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is text or json.
	Format string `yaml:"format"`
}

// SelfMonitoringConfig configures writing opspilot's own metrics into the TSDB.
type SelfMonitoringConfig struct {
	Enabled  bool          `yaml:"enabled"`
	Interval time.Duration `yaml:"interval"`
	// IncludeTSDB adds the embedded VictoriaMetrics' own vm_* metrics.
	IncludeTSDB bool `yaml:"include_tsdb"`
}

func defaultFileConfig() FileConfig {
	return FileConfig{
		DataDir:        "./opspilot-data",
		Log:            LogConfig{Level: "info", Format: "text"},
		Server:         api.DefaultConfig(),
		TSDB:           tsdb.DefaultConfig(),
		SelfMonitoring: SelfMonitoringConfig{Enabled: true, Interval: 10 * time.Second, IncludeTSDB: true},
		Agent:          collector.DefaultConfig(),
		LogStore:       LogStoreConfig{Mode: "embedded", HTTPAddr: "127.0.0.1:9428"},
		Orchestrator:   OrchestratorConfig{Config: control.DefaultConfig(), Store: StoreConfig{Mode: "embedded"}, Leader: leader.DefaultConfig(), HeartbeatRelay: 250 * time.Millisecond},
		Analyzer:       online.DefaultConfig(),
		Autoscaler:     autoscaler.DefaultLoopConfig(),
		Alerting:       alerting.DefaultConfig(),
		Reports:        report.DefaultConfig(),
	}
}

// Validate implements config.Validator.
func (c FileConfig) Validate() []config.Problem {
	var ps []config.Problem
	if c.DataDir == "" {
		ps = append(ps, config.Problem{Field: "data_dir", Msg: "must not be empty; e.g. ./opspilot-data"})
	}
	if _, err := parseLogLevel(c.Log.Level); err != nil {
		ps = append(ps, config.Problem{Field: "log.level", Msg: err.Error()})
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		ps = append(ps, config.Problem{Field: "log.format", Msg: fmt.Sprintf("unknown format %q; use text or json", c.Log.Format)})
	}
	ps = append(ps, config.Prefix("server", c.Server.Validate())...)
	ps = append(ps, config.Prefix("tsdb", c.TSDB.Validate())...)
	ps = append(ps, config.Prefix("agent", c.Agent.Validate())...)
	if c.LogStore.Mode != "embedded" && c.LogStore.Mode != "remote" {
		ps = append(ps, config.Problem{Field: "logstore.mode", Msg: fmt.Sprintf("unknown mode %q; use embedded or remote", c.LogStore.Mode)})
	}
	for _, u := range []struct{ field, url, example string }{
		{"logstore.url", c.LogStore.URL, "http://logs:9428/insert/elasticsearch"},
		{"logstore.query_url", c.LogStore.QueryURL, "http://logs:9428"},
	} {
		if pu, err := url.Parse(u.url); u.url != "" && (err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "") {
			ps = append(ps, config.Problem{Field: u.field, Msg: fmt.Sprintf("%q is not an http(s) URL; e.g. %s", u.url, u.example)})
		}
	}
	ps = append(ps, config.Prefix("orchestrator", c.Orchestrator.Config.Validate())...)
	ps = append(ps, config.Prefix("analyzer", c.Analyzer.Validate())...)
	ps = append(ps, config.Prefix("autoscaler", c.Autoscaler.Validate())...)
	ps = append(ps, config.Prefix("alerting", c.Alerting.Validate())...)
	ps = append(ps, config.Prefix("runbooks", c.Runbooks.Validate())...)
	ps = append(ps, config.Prefix("reports", c.Reports.Validate())...)
	ps = append(ps, config.Prefix("orchestrator.leader", c.Orchestrator.Leader.Validate())...)
	if c.Orchestrator.HeartbeatRelay < 10*time.Millisecond || c.Orchestrator.HeartbeatRelay > c.Orchestrator.NodeTimeout/2 {
		ps = append(ps, config.Problem{Field: "orchestrator.heartbeat_relay", Msg: fmt.Sprintf("%s: use 10ms to half of orchestrator.node_timeout (%s), e.g. 250ms", c.Orchestrator.HeartbeatRelay, c.Orchestrator.NodeTimeout/2)})
	}
	switch c.Orchestrator.Store.Mode {
	case "embedded":
		var ce *store.ConfigError
		if err := c.storeConfig().Validate(); errors.As(err, &ce) {
			msg := ce.Msg
			sc := c.Orchestrator.Store
			switch ce.Field {
			case "peer_url", "advertise_peer_url", "initial_cluster":
				if strings.Contains(strings.ToLower(sc.PeerURL+" "+sc.AdvertisePeerURL+" "+sc.InitialCluster), "https://") {
					msg += ". " + peerTLSNote
				}
			}
			ps = append(ps, config.Problem{Field: "orchestrator.store." + ce.Field, Msg: msg})
		} else if err != nil {
			ps = append(ps, config.Problem{Field: "orchestrator.store", Msg: strings.TrimPrefix(err.Error(), "store: ")})
		}
	case "external":
		if len(c.Orchestrator.Store.Endpoints) == 0 {
			ps = append(ps, config.Problem{Field: "orchestrator.store.endpoints", Msg: "the external store needs etcd endpoints, e.g. [http://etcd-1:2379]"})
		}
	default:
		ps = append(ps, config.Problem{Field: "orchestrator.store.mode", Msg: fmt.Sprintf("unknown mode %q; use embedded or external", c.Orchestrator.Store.Mode)})
	}
	for i, r := range c.Node.Runtimes {
		if r != model.RuntimeProcess && r != model.RuntimeDocker {
			ps = append(ps, config.Problem{Field: fmt.Sprintf("node.runtimes[%d]", i), Msg: fmt.Sprintf("unknown runtime %q; use process or docker", r)})
		}
	}
	n := model.Node{Name: "x", Datacenter: "x", Partition: c.Node.Partition, Labels: c.Node.Labels, Capacity: c.Node.Capacity}
	ps = append(ps, config.Prefix("node", n.Validate())...)
	if c.SelfMonitoring.Enabled && c.SelfMonitoring.Interval < time.Second {
		ps = append(ps, config.Problem{Field: "self_monitoring.interval", Msg: fmt.Sprintf("%s is below 1s; use e.g. 10s", c.SelfMonitoring.Interval)})
	}
	return ps
}

// loadFileConfig reads path over the defaults; an empty path gives the defaults.
func loadFileConfig(path string) (FileConfig, error) {
	cfg := defaultFileConfig()
	if path == "" {
		return cfg, nil
	}
	if err := config.Load(path, &cfg); err != nil {
		return cfg, err
	}
	return cfg, nil
}

func parseLogLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("unknown level %q; use debug, info, warn or error", s)
	}
	return l, nil
}

func newLogger(c LogConfig) *slog.Logger {
	level, _ := parseLogLevel(c.Level)
	opts := &slog.HandlerOptions{Level: level}
	if strings.EqualFold(c.Format, "json") {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
