package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/version"
	"github.com/prometheus/procfs"

	"opspilot/analyzer/rootcause"
	"opspilot/api"
	"opspilot/collector"
	"opspilot/collector/container"
	"opspilot/collector/logs"
	"opspilot/collector/scrape"
	"opspilot/orchestrator/control"
	"opspilot/orchestrator/model"
	"opspilot/orchestrator/node"
	"opspilot/orchestrator/pki"
	"opspilot/orchestrator/runtime"
	"opspilot/orchestrator/store"
)

// orchestrator is the control plane as serve wires it.
type orchestrator struct {
	st   *store.Store
	ctrl *control.Controller
	pki  *pki.Authority // nil in local mode
	// joinSecret is local mode's in-process join token.
	joinSecret string
}

// openOrchestrator opens the store and builds the controller, and in
// server mode the CA (whose join token agents use). The CA is ensured
// before etcd starts, once the store has locked its data directory: with
// https:// peer URLs it issues the embedded member's peer certificate.
func openOrchestrator(ctx context.Context, cfg FileConfig, reg prometheus.Registerer, log *slog.Logger) (*orchestrator, error) {
	scfg := cfg.storeConfig()
	o := &orchestrator{}
	if cfg.Server.LocalMode {
		if scfg.PeerTLS.Enabled() {
			return nil, fmt.Errorf("orchestrator.store.peer_url %s: https:// peer URLs need the cluster CA of `opspilot server`; `opspilot up` runs a single member, so use http:// or leave peer_url empty", cfg.Orchestrator.Store.PeerURL)
		}
		var b [16]byte
		_, _ = rand.Read(b[:])
		o.joinSecret = hex.EncodeToString(b[:])
	} else {
		peerTLS := scfg.PeerTLS.Enabled()
		scfg.BeforeStart = func() (err error) {
			o.pki, err = ensurePKI(cfg, peerTLS, log)
			return err
		}
	}
	if members := cfg.Orchestrator.Store.members(); members > 1 && !scfg.PeerTLS.Enabled() && scfg.Embedded {
		log.Warn("etcd peer traffic is plain HTTP: whoever reaches a peer URL can join or read the cluster; use https:// peer URLs for TLS between the members (certificates from the CA in DATA_DIR/pki, shared by every replica)", "members", members, "peer_url", scfg.PeerURL)
	}
	st, err := store.Open(ctx, scfg, log.With("component", "store"))
	if err != nil {
		if scfg.PeerTLS.Enabled() && o.pki != nil {
			err = fmt.Errorf("%w (with https:// peer URLs every replica must share the CA in DATA_DIR/pki, ca.crt and ca.key: the members refuse a certificate of another CA, logging 'rejected connection on peer endpoint … unknown authority')", err)
		}
		return nil, err
	}
	o.st = st
	if o.ctrl, err = control.New(st, cfg.Orchestrator.Config, reg, log.With("component", "orchestrator")); err != nil {
		_ = st.Close()
		return nil, err
	}
	return o, nil
}

// ensurePKI loads or creates the server's CA and certificates, with the
// etcd peer certificate when the store's peers talk TLS.
func ensurePKI(cfg FileConfig, peerTLS bool, log *slog.Logger) (*pki.Authority, error) {
	host, _, _ := net.SplitHostPort(cfg.Server.HTTPAddr)
	hosts := append([]string{}, cfg.Server.TLSHosts...)
	if host != "" && host != "0.0.0.0" && host != "::" {
		hosts = append(hosts, host)
	}
	var opts []pki.Option
	if peerTLS {
		opts = append(opts, pki.WithPeerCert(cfg.Orchestrator.Store.peerHosts()))
	}
	// A CA made here, in a cluster with peer TLS, is worth a warning: the
	// other members refuse it unless it is copied to them.
	_, caErr := os.Stat(filepath.Join(cfg.pkiDir(), pki.CACertFile))
	a, err := pki.EnsureCA(cfg.pkiDir(), hosts, time.Now(), opts...)
	if err != nil {
		return nil, err
	}
	for _, c := range a.Changes() {
		log.Info("pki", "change", c)
	}
	if peer, ok := a.PeerFiles(); ok {
		log.Info("etcd peer TLS on", "cert", peer.CertFile, "valid_until", peer.NotAfter.UTC().Format(time.RFC3339))
		if errors.Is(caErr, os.ErrNotExist) && cfg.Orchestrator.Store.members() > 1 {
			log.Warn("created a new CA for this replica; with peer TLS the other etcd members accept only certificates of one shared CA: copy DATA_DIR/pki/ca.crt, ca.key and join-secret from this replica to the others before their first start", "pki", cfg.pkiDir())
		}
	}
	return a, nil
}

func (o *orchestrator) Close() error { return o.st.Close() }

// CheckJoinToken implements control.JoinVerifier.
func (o *orchestrator) CheckJoinToken(tok string) bool {
	if o.pki != nil {
		return o.pki.CheckJoinToken(tok)
	}
	return o.joinSecret != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(o.joinSecret)) == 1
}

// JoinToken is what agents pass to join.
func (o *orchestrator) JoinToken() string {
	if o.pki != nil {
		return o.pki.JoinToken()
	}
	return o.joinSecret
}

// routes mounts the REST API, the agent protocol and (server mode) the CA.
func (o *orchestrator) routes() []api.Route {
	rs := append(o.ctrl.Routes(), o.ctrl.AgentRoutes(o)...)
	if o.pki != nil {
		rs = append(rs, api.Route{Pattern: "GET " + pki.CAPath, Name: "pki_ca", Handler: pki.CAHandler(o.pki)})
	}
	return rs
}

// inventory is where every instance runs, for the analyzer's root-cause
// hints.
func (o *orchestrator) inventory(ctx context.Context) ([]rootcause.Instance, error) {
	insts, err := o.ctrl.Instances(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]rootcause.Instance, len(insts))
	for i, in := range insts {
		out[i] = rootcause.Instance{Service: in.Service, Instance: in.ID, Node: in.Node, Datacenter: in.Datacenter}
	}
	return out, nil
}

// detectCapacity fills zero capacity amounts from the machine.
func detectCapacity(c model.Resources) model.Resources {
	if c.MilliCPU == 0 {
		c.MilliCPU = model.Millicores(goruntime.NumCPU() * 1000)
	}
	if c.MemoryBytes == 0 {
		if fs, err := procfs.NewDefaultFS(); err == nil {
			if mi, err := fs.Meminfo(); err == nil && mi.MemTotal != nil {
				c.MemoryBytes = model.Bytes(*mi.MemTotal * 1024)
			}
		}
	}
	return c
}

// nodeAgent is a node's orchestrator side: the runtime manager and the
// agent that joins and follows assignments.
type nodeAgent struct {
	agent   *node.Agent
	manager *runtime.Manager
	docker  *runtime.Docker
	exec    *node.RuntimeExecutor
}

// newNodeAgent builds the runtimes (process always; docker when listed or,
// by default, when an engine answers), the manager and the agent.
func newNodeAgent(ctx context.Context, cfg FileConfig, servers []string, joinToken string, client *http.Client, log *slog.Logger) (*nodeAgent, error) {
	nodeName := nodeName(cfg)
	if nodeName == "" {
		return nil, errors.New("node name not set (agent.node, --node) and the hostname is unknown")
	}
	want := cfg.Node.Runtimes
	// Instances are owned by this agent (node and data dir): on start it
	// removes the leftovers of its own earlier run, not the instances of
	// another agent on the same host (tests, or several nodes per host).
	owner := agentOwner(cfg, nodeName)
	runtimes := map[string]runtime.Runtime{model.RuntimeProcess: runtime.NewProcess(runtime.ProcessConfig{Log: log, CgroupParent: "opspilot/" + owner})}
	na := &nodeAgent{}
	if len(want) == 0 || contains(want, model.RuntimeDocker) {
		dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		d, err := runtime.NewDocker(dctx, runtime.DockerConfig{Log: log, Owner: owner})
		cancel()
		switch {
		case err == nil:
			runtimes[model.RuntimeDocker] = d
			na.docker = d
		case contains(want, model.RuntimeDocker):
			return nil, fmt.Errorf("node.runtimes lists docker: %w", err)
		default:
			log.Info("docker runtime off: no engine answers", "err", err)
		}
	}
	if len(want) > 0 && !contains(want, model.RuntimeProcess) {
		delete(runtimes, model.RuntimeProcess)
	}
	names := make([]string, 0, len(runtimes))
	for name := range runtimes {
		names = append(names, name)
	}
	dir := cfg.Node.InstancesDir
	if dir == "" {
		dir = filepath.Join(cfg.DataDir, "instances")
	}
	var ag *node.Agent
	m, err := runtime.NewManager(runtime.ManagerConfig{
		Dir: dir, Runtimes: runtimes, Host: cfg.Node.Address, Node: nodeName, Datacenter: cfg.Agent.Datacenter,
		Log: log, OnChange: func() {
			if ag != nil {
				ag.Changed()
			}
		},
	})
	if err != nil {
		return nil, err
	}
	na.manager = m
	exec := &node.RuntimeExecutor{M: m}
	na.exec = exec
	ag, err = node.New(node.Config{
		Servers: servers, JoinToken: joinToken, StateDir: filepath.Join(cfg.DataDir, "node"),
		Node: model.Node{
			Name: nodeName, Datacenter: cfg.Agent.Datacenter, Partition: cfg.Node.Partition, Labels: cfg.Node.Labels,
			Capacity: detectCapacity(cfg.Node.Capacity), Address: cfg.Node.Address,
		},
		Runtimes: names, AgentVersion: version.Version, Client: client, Log: log,
	}, exec)
	if err != nil {
		return nil, err
	}
	na.agent = ag
	// Instances an earlier agent left behind are stopped before the first
	// assignment: the server's list is the truth.
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := m.Cleanup(cctx); err != nil {
		log.Warn("cleaning up after the previous agent", "err", err)
	}
	return na, nil
}

// agentOwner names this agent's instances for clean-up: the node name and
// a hash of the data dir, e.g. "vm-3f2a9c1d".
func agentOwner(cfg FileConfig, nodeName string) string {
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		dir = cfg.DataDir
	}
	sum := sha256.Sum256([]byte(dir))
	return nodeName + "-" + hex.EncodeToString(sum[:4])
}

// nodeName is agent.node, or the hostname.
func nodeName(cfg FileConfig) string {
	if cfg.Agent.Node != "" {
		return cfg.Agent.Node
	}
	h, _ := os.Hostname()
	return h
}

// observe has the collector read the instances' cgroups, tail their logs
// and scrape their metrics endpoints. Call it before run.
func (n *nodeAgent) observe(coll *collector.Agent, log *slog.Logger) {
	if coll == nil {
		return
	}
	var mu sync.Mutex // Observe runs from the sync and the heartbeat loops
	tailed := map[string]bool{}
	lastErr := ""
	n.exec.Observe = func(cgroups []container.Instance, files []logs.Source, targets []scrape.Target) {
		mu.Lock()
		defer mu.Unlock()
		coll.SetInstances(cgroups)
		// Called every heartbeat: log a problem once, not every second.
		if err := coll.SetServiceTargets(targets); err != nil && err.Error() != lastErr {
			lastErr = err.Error()
			log.Warn("scrape instance metrics", "err", err)
		} else if err == nil {
			lastErr = ""
		}
		for _, f := range files {
			if !tailed[f.Path] {
				tailed[f.Path] = true
				if err := coll.AddLogSource(f); err != nil {
					log.Debug("tail instance log", "path", f.Path, "err", err)
				}
			}
		}
	}
}

// joinAsNode joins the orchestrator at cfg.Agent.Server.URL. For an https
// server without a CA file it fetches the CA the join token pins and keeps
// it in DATA_DIR/node/ca.crt, which the sample shipper then uses too.
func joinAsNode(ctx context.Context, cfg *FileConfig, joinToken string, log *slog.Logger) (*nodeAgent, error) {
	server := strings.TrimRight(cfg.Agent.Server.URL, "/")
	client := &http.Client{}
	switch {
	case cfg.Agent.Server.CAFile != "":
		pem, err := os.ReadFile(cfg.Agent.Server.CAFile)
		if err != nil {
			return nil, fmt.Errorf("agent.server.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("agent.server.ca_file %s: no PEM certificate in it", cfg.Agent.Server.CAFile)
		}
		client.Transport = &http.Transport{TLSClientConfig: pki.ClientTLSConfig(pool)}
	case strings.HasPrefix(server, "https://"):
		caHash, _, err := pki.ParseJoinToken(joinToken)
		if err != nil {
			return nil, err
		}
		pool, pem, err := pki.FetchCAFromAny(ctx, cfg.Agent.Server.Servers(), caHash, 30*time.Second)
		if err != nil {
			return nil, err
		}
		dir := filepath.Join(cfg.DataDir, "node")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		caFile := filepath.Join(dir, "ca.crt")
		if err := os.WriteFile(caFile, pem, 0o644); err != nil {
			return nil, err
		}
		cfg.Agent.Server.CAFile = caFile
		client.Transport = &http.Transport{TLSClientConfig: pki.ClientTLSConfig(pool)}
	}
	na, err := newNodeAgent(ctx, *cfg, cfg.Agent.Server.Servers(), joinToken, client, log.With("component", "node"))
	if err != nil {
		return nil, err
	}
	if err := na.agent.Join(ctx); err != nil {
		return nil, err
	}
	return na, nil
}

// run follows assignments until ctx ends, then stops the instances.
func (n *nodeAgent) run(ctx context.Context) error {
	err := n.agent.Run(ctx)
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	n.manager.Close(sctx)
	if n.docker != nil {
		_ = n.docker.Close()
	}
	return err
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// errNoJoinToken explains how to get one.
var errNoJoinToken = errors.New("no join token: pass --join-token (or $OPSPILOT_JOIN_TOKEN, or node.join_token_file); `opspilot server` prints it at start and keeps it in DATA_DIR/pki/join-token")
