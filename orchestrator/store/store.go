package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"opspilot/internal/dirlock"
)

// Defaults applied by Config.withDefaults.
const (
	DefaultPrefix       = "/opspilot/"
	DefaultDialTimeout  = 5 * time.Second
	DefaultStartTimeout = 60 * time.Second
	// DefaultCompactionRetention is how long embedded etcd keeps history.
	// A Watch resuming from an older revision gets an Event with Err set
	// and must re-list.
	DefaultCompactionRetention = time.Hour
)

// lockFileName is opspilot's lock on an embedded etcd data directory. etcd
// itself would block on bbolt's lock (or time out obscurely), so we take
// our own flock first and name the holder.
const lockFileName = "opspilot-etcd.lock"

// Config configures the store. The zero value plus DataDir and
// Embedded=true runs a private single-node etcd on free loopback ports.
type Config struct {
	// Embedded runs etcd inside this process with its data in DataDir.
	Embedded bool
	// DataDir holds the embedded etcd's data (required when Embedded).
	DataDir string
	// ClientURL and PeerURL are the embedded etcd's listen URLs, such as
	// "http://127.0.0.1:2379". Empty picks a free 127.0.0.1 port (a
	// single member only: the members of a cluster must know each other's
	// peer URLs). Peer URLs are https:// exactly when PeerTLS is set.
	ClientURL, PeerURL string
	// AdvertiseClientURL and AdvertisePeerURL are how the other members
	// and their clients reach this one; empty means the listen URL (set
	// them when listening on 0.0.0.0).
	AdvertiseClientURL, AdvertisePeerURL string
	// Name is this member's name in the etcd cluster. Default "opspilot".
	Name string
	// InitialCluster lists the members of a new cluster as
	// "name=peerURL,name=peerURL,…" (etcd's --initial-cluster). Empty
	// means this member alone. etcd reads it only when the data directory
	// is new: a member restarting with its data rejoins by itself.
	InitialCluster string
	// ClusterState is "new" (the members start the cluster together) or
	// "existing" (this member is added to a running cluster, after
	// `etcdctl member add`). Default "new".
	ClusterState string
	// PeerTLS secures the traffic between the members (raft, snapshots)
	// with mutual TLS: each member serves its peer URL with the certificate
	// and presents it when dialling the others, and accepts only members
	// whose certificate the trusted CA signed. Zero means plain HTTP.
	PeerTLS PeerTLS
	// BeforeStart, if set, runs before etcd starts; for the embedded etcd
	// after its data directory is locked, so a second process given the
	// same directory fails on the lock before it touches anything (such as
	// the peer certificate a running member reads at every handshake). An
	// error stops Open.
	BeforeStart func() error
	// HeartbeatInterval and ElectionTimeout are etcd's raft timings.
	// Defaults: 10 ms and 100 ms for a single member (it elects itself at
	// once), etcd's 100 ms and 1 s for a cluster.
	HeartbeatInterval, ElectionTimeout time.Duration
	// Endpoints of an external etcd cluster, used when !Embedded.
	Endpoints []string
	// DialTimeout bounds connecting to etcd. Default 5 s.
	DialTimeout time.Duration
	// StartTimeout bounds the embedded etcd becoming ready. Default 60 s.
	StartTimeout time.Duration
	// CompactionRetention is how much history the embedded etcd keeps
	// (periodic compaction). Default 1 h.
	CompactionRetention time.Duration
	// Prefix is put before every key; it always ends in "/". Default
	// "/opspilot/".
	Prefix string
}

func (c Config) withDefaults() (Config, error) {
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = DefaultStartTimeout
	}
	if c.CompactionRetention <= 0 {
		c.CompactionRetention = DefaultCompactionRetention
	}
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if !strings.HasSuffix(c.Prefix, "/") {
		c.Prefix += "/"
	}
	if c.Embedded {
		if c.DataDir == "" {
			return c, errors.New("store: embedded etcd needs a data directory; set DataDir")
		}
		if err := c.checkMember(); err != nil {
			return c, err
		}
	} else if len(c.Endpoints) == 0 {
		return c, errors.New("store: no etcd endpoints; set Endpoints or use the embedded etcd")
	}
	return c, nil
}

// Validate checks the configuration as Open would, without starting
// anything.
func (c Config) Validate() error {
	_, err := c.withDefaults()
	return err
}

// Store is the orchestrator's state in etcd. It is safe for concurrent use.
type Store struct {
	client *clientv3.Client
	prefix string
	log    *slog.Logger

	etcd      *embed.Etcd // nil when external
	member    string      // the embedded member's name
	lock      *os.File
	closeOnce sync.Once
	closeErr  error

	// StartDuration is how long the embedded etcd took to become ready.
	StartDuration time.Duration
}

// Open starts the embedded etcd (cfg.Embedded) or connects to
// cfg.Endpoints, and returns a Store ready for use.
func Open(ctx context.Context, cfg Config, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.Default()
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Store{prefix: cfg.Prefix, log: log, member: cfg.Name}
	endpoints := cfg.Endpoints
	if !cfg.Embedded && cfg.BeforeStart != nil {
		if err := cfg.BeforeStart(); err != nil {
			return nil, err
		}
	}
	if cfg.Embedded {
		if err := s.startEmbedded(ctx, cfg); err != nil {
			return nil, err
		}
		// The local member only: it lives and dies with this process, and
		// a member cut off from its cluster refuses requests (they need a
		// leader) instead of answering stale data.
		endpoints = []string{s.etcd.Clients[0].Addr().String()}
	}
	client, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: cfg.DialTimeout,
		Context:     context.WithoutCancel(ctx),
		Logger:      zap.New(newSlogCore(log.With("component", "etcd-client"), zap.WarnLevel)),
	})
	if err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("store: connect to etcd %v: %w", endpoints, err)
	}
	s.client = client
	// clientv3.New does not wait for a connection; probe once so a wrong
	// endpoint fails here rather than on the first request.
	pctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	if _, err := client.Get(pctx, s.prefix, clientv3.WithCountOnly(), clientv3.WithLimit(1)); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("store: etcd at %v does not answer within %s: %w; check that it runs and the endpoints are right", endpoints, cfg.DialTimeout, err)
	}
	return s, nil
}

func (s *Store) startEmbedded(ctx context.Context, cfg Config) error {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("store: create data directory: %w", err)
	}
	lock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	s.lock = lock
	if cfg.BeforeStart != nil {
		if err := cfg.BeforeStart(); err != nil {
			_ = s.Close()
			return err
		}
	}
	if err := cfg.PeerTLS.checkFiles(); err != nil {
		_ = s.Close()
		return err
	}
	// Ports we pick ourselves can be taken between picking and binding;
	// retry a few times then. Ports the user chose are not retried.
	attempts := 1
	if cfg.ClientURL == "" || cfg.PeerURL == "" {
		attempts = 3
	}
	for i := range attempts {
		err = s.startEtcdOnce(ctx, cfg)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || i == attempts-1 {
			break
		}
	}
	if err != nil {
		_ = s.Close()
		return err
	}
	return nil
}

func (s *Store) startEtcdOnce(ctx context.Context, cfg Config) error {
	clientURL, peerURL := cfg.ClientURL, cfg.PeerURL
	var err error
	if clientURL == "" {
		if clientURL, err = freeLoopbackURL(); err != nil {
			return err
		}
	}
	if peerURL == "" {
		if peerURL, err = freeLoopbackURL(); err != nil {
			return err
		}
		if cfg.PeerTLS.Enabled() {
			peerURL = "https" + strings.TrimPrefix(peerURL, "http")
		}
	}
	cu, _ := parseListenURL(clientURL)
	pu, _ := parsePeerURL(peerURL)

	acu, apu := cu, pu
	if cfg.AdvertiseClientURL != "" {
		acu, _ = parseListenURL(cfg.AdvertiseClientURL)
	}
	if cfg.AdvertisePeerURL != "" {
		apu, _ = parsePeerURL(cfg.AdvertisePeerURL)
	}

	ec := embed.NewConfig()
	ec.Name = cfg.Name
	ec.Dir = cfg.DataDir
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*acu}
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*apu}
	if cfg.InitialCluster == "" {
		ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	} else {
		ec.InitialCluster = cfg.InitialCluster
	}
	if cfg.ClusterState == ClusterStateExisting {
		ec.ClusterState = embed.ClusterStateFlagExisting
	}
	if cfg.PeerTLS.Enabled() {
		ec.PeerTLSInfo = transport.TLSInfo{
			CertFile: cfg.PeerTLS.CertFile, KeyFile: cfg.PeerTLS.KeyFile, TrustedCAFile: cfg.PeerTLS.TrustedCAFile,
			// Without it a peer listener accepts any client: only the
			// CA's members may join, read the log or send snapshots.
			ClientCertAuth: true,
		}
	}
	ec.TickMs, ec.ElectionMs = uint(cfg.HeartbeatInterval.Milliseconds()), uint(cfg.ElectionTimeout.Milliseconds())
	ec.AutoCompactionMode = embed.CompactorModePeriodic
	ec.AutoCompactionRetention = cfg.CompactionRetention.String()
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.New(newSlogCore(s.log.With("component", "etcd"), zap.WarnLevel)))

	start := time.Now()
	e, err := embed.StartEtcd(ec)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("store: embedded etcd: a port is in use (client %s, peer %s): %w; choose other ClientURL/PeerURL or leave them empty", clientURL, peerURL, err)
		}
		return fmt.Errorf("store: start embedded etcd in %s: %w", cfg.DataDir, err)
	}
	s.etcd = e
	timer := time.NewTimer(cfg.StartTimeout)
	defer timer.Stop()
	select {
	case <-e.Server.ReadyNotify():
		s.StartDuration = time.Since(start)
		s.log.Info("embedded etcd ready", "member", cfg.Name, "data_dir", cfg.DataDir, "client_url", clientURL, "took", s.StartDuration)
		return nil
	case err = <-e.Err():
		err = fmt.Errorf("store: embedded etcd in %s failed while starting: %w", cfg.DataDir, err)
	case <-timer.C:
		err = fmt.Errorf("store: embedded etcd in %s not ready after %s; see its log above", cfg.DataDir, cfg.StartTimeout)
	case <-ctx.Done():
		err = fmt.Errorf("store: waiting for embedded etcd: %w", ctx.Err())
	}
	e.Server.Stop()
	e.Close()
	s.etcd = nil
	return err
}

// Close disconnects and stops the embedded etcd. It is idempotent: etcd's
// own Close panics when called twice.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if s.client != nil {
			if err := s.client.Close(); err != nil && !errors.Is(err, context.Canceled) {
				s.closeErr = fmt.Errorf("store: close etcd client: %w", err)
			}
		}
		if s.etcd != nil {
			s.etcd.Close()
		}
		if s.lock != nil {
			_ = s.lock.Close() // closing the file releases the flock
		}
	})
	return s.closeErr
}

// Client returns the underlying etcd client for leases and elections.
func (s *Store) Client() *clientv3.Client { return s.client }

// Prefix is the key prefix every object lives under (it ends in "/").
func (s *Store) Prefix() string { return s.prefix }

// Member is the embedded etcd member's name, empty for an external store.
func (s *Store) Member() string {
	if s.etcd == nil {
		return ""
	}
	return s.member
}

// lockDataDir takes opspilot's flock on dir, naming the holder on conflict.
// flock locks belong to the open file, so a second Open in the same process
// conflicts too.
func lockDataDir(dir string) (*os.File, error) {
	f, err := dirlock.Lock(filepath.Join(dir, lockFileName))
	var inUse *dirlock.InUseError
	if errors.As(err, &inUse) {
		return nil, fmt.Errorf("store: etcd data directory %s is in use by %s; stop it or choose another data directory", dir, inUse.Holder())
	}
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return f, nil
}

func freeLoopbackURL() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("store: find a free port: %w", err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return "http://" + addr, nil
}

// parseListenURL parses a client URL: http or unix (the embedded etcd
// serves its clients, this process, without TLS).
func parseListenURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "unix") || u.Host == "" {
		return nil, fmt.Errorf("store: bad etcd URL %q: want http://HOST:PORT", s)
	}
	if u.Scheme == "http" && u.Port() == "" {
		return nil, fmt.Errorf("store: bad etcd URL %q: etcd needs an explicit port", s)
	}
	return u, nil
}

// parsePeerURL parses a peer URL: like a client URL, or https with peer
// TLS.
func parsePeerURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "unix") || u.Host == "" {
		return nil, fmt.Errorf("store: bad etcd URL %q: want http://HOST:PORT (https://HOST:PORT with peer TLS)", s)
	}
	if u.Scheme != "unix" && u.Port() == "" {
		return nil, fmt.Errorf("store: bad etcd URL %q: etcd needs an explicit port", s)
	}
	return u, nil
}
