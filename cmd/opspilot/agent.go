package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"opspilot/collector"
	"opspilot/tsdb"
)

func newAgentCmd() *cobra.Command {
	var (
		f                                   serverFlags
		server, tokenFile, caFile, dc, node string
		joinToken                           string
		shipToAll                           bool
	)
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the node agent: host, container and KPI metrics and logs, shipped through a disk queue",
		Long: `agent runs on every node. It collects host metrics (node_exporter names),
container metrics (cAdvisor names), scrapes and accepts pushed business KPIs,
tails logs, and ships samples to an opspilot server through an on-disk queue:
while the server is unreachable samples wait on disk and nothing is lost.

With --join-token (printed by ` + "`opspilot server`" + `) it also joins the
orchestrator as a node: it fetches and pins the server's CA from the token,
heartbeats every second, and runs the instances the server assigns to it
(process and, where an engine answers, docker runtime). It then ships its
samples with the node credential it received. Without a join token it only
collects and needs an API token of role write (agent.server.token_file or
$OPSPILOT_TOKEN).`,
		Example: `  opspilot agent --server https://opspilot:9440 --datacenter A --join-token K10...::...
  opspilot agent --server https://opspilot:9440 --token-file /etc/opspilot/agent.token --datacenter dc-a`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadFileConfig(f.configFile)
			if err != nil {
				return err
			}
			a := &cfg.Agent
			if cmd.Flags().Changed("data-dir") || f.configFile == "" {
				cfg.DataDir = f.dataDir
			}
			if cmd.Flags().Changed("http-addr") {
				a.HTTPAddr = f.httpAddr
			}
			if f.logLevel != "" {
				cfg.Log.Level = f.logLevel
			}
			for _, o := range []struct {
				flag     string
				from, to *string
			}{
				{"server", &server, &a.Server.URL},
				{"token-file", &tokenFile, &a.Server.TokenFile},
				{"ca-file", &caFile, &a.Server.CAFile},
				{"datacenter", &dc, &a.Datacenter},
				{"node", &node, &a.Node},
			} {
				if cmd.Flags().Changed(o.flag) {
					*o.to = *o.from
				}
			}
			// --server takes a comma list of control-plane replicas.
			if first, rest, ok := strings.Cut(a.Server.URL, ","); ok {
				a.Server.URL = strings.TrimSpace(first)
				a.Server.URLs = append(strings.Split(rest, ","), a.Server.URLs...)
			}
			if a.Server.URL == "" {
				return errors.New("agent.server.url: where should the agent ship? pass --server https://HOST:9440")
			}
			if cmd.Flags().Changed("ship-to-all") {
				a.Server.ShipToAll = shipToAll
			}
			token := os.Getenv("OPSPILOT_TOKEN")
			if a.Server.TokenFile != "" {
				b, err := os.ReadFile(a.Server.TokenFile)
				if err != nil {
					return fmt.Errorf("agent.server.token_file: %w", err)
				}
				token = strings.TrimSpace(string(b))
			}
			if !cmd.Flags().Changed("join-token") {
				joinToken = os.Getenv("OPSPILOT_JOIN_TOKEN")
			}
			if joinToken == "" && cfg.Node.JoinTokenFile != "" {
				b, err := os.ReadFile(cfg.Node.JoinTokenFile)
				if err != nil {
					return fmt.Errorf("node.join_token_file: %w", err)
				}
				joinToken = strings.TrimSpace(string(b))
			}
			if token == "" && joinToken == "" {
				return errNoJoinToken
			}
			return runAgent(cmd.Context(), cfg, token, joinToken)
		},
	}
	f.register(cmd, "./opspilot-agent-data", "127.0.0.1:9441")
	cmd.Flags().StringVar(&server, "server", "", "opspilot server URL to ship to (agent.server.url); a comma list names further control-plane replicas to fail over to (agent.server.urls)")
	cmd.Flags().BoolVar(&shipToAll, "ship-to-all", false, "ship every sample to every replica in --server, each through its own disk queue (agent.server.ship_to_all): for replicas with embedded TSDBs")
	cmd.Flags().StringVar(&tokenFile, "token-file", "", "file with an API token of role write (agent.server.token_file; default $OPSPILOT_TOKEN)")
	cmd.Flags().StringVar(&caFile, "ca-file", "", "CA certificate that signed the server's TLS certificate (agent.server.ca_file)")
	cmd.Flags().StringVar(&dc, "datacenter", "", "datacenter label (agent.datacenter, default local)")
	cmd.Flags().StringVar(&node, "node", "", "node label (agent.node, default the hostname)")
	cmd.Flags().StringVar(&joinToken, "join-token", "", "join the orchestrator with this token (default $OPSPILOT_JOIN_TOKEN or node.join_token_file)")
	return cmd
}

// runAgent is the standalone agent's wiring: the client to the server, the
// agent, and a small HTTP server for pushes, /metrics and /healthz.
func runAgent(ctx context.Context, cfg FileConfig, token, joinToken string) error {
	// The agent's heap is small and steady; collecting earlier keeps its
	// resident memory down (VictoriaMetrics' own binaries run at GOGC=30).
	// An explicit GOGC in the environment wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(30)
	}
	log := newLogger(cfg.Log)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), versioncollector.NewCollector("opspilot_agent"))
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// Joining comes first: it gives the server's CA (pinned by the join
	// token) and the node credential samples are shipped with.
	var na *nodeAgent
	if joinToken != "" {
		var err error
		na, err = joinAsNode(ctx, &cfg, joinToken, log)
		if err != nil {
			return err
		}
	}
	remote := &tsdb.RemoteConfig{TLS: tsdb.TLSConfig{CAFile: cfg.Agent.Server.CAFile}}
	if na != nil && token == "" {
		// Ship with the node credential, read from its file per request so
		// that a rejoin (a new credential) is followed.
		if f := na.agent.TokenFile(); f != "" {
			remote.BearerTokenFile = f
		} else {
			token = na.agent.Token()
		}
	}
	ccfg := tsdb.DefaultClientConfig()
	ccfg.RetryMaxElapsed = 5 * time.Second // the shipper retries forever around it
	client, err := tsdb.NewClient(tsdb.LocalEndpoints(cfg.Agent.Server.URL), ccfg, tsdb.ClientOptions{Remote: remote, BearerToken: token, Registerer: reg})
	if err != nil {
		return err
	}
	deps := collector.Deps{Writer: client, DataDir: cfg.DataDir, Registry: reg, Log: log}
	if servers := cfg.Agent.Server.Servers(); cfg.Agent.Server.ShipToAll && len(servers) > 1 {
		// one client per replica; only the first registers the client
		// metrics (they would clash), the shippers' own are per server
		for i, u := range servers {
			c := client
			if i > 0 {
				if c, err = tsdb.NewClient(tsdb.LocalEndpoints(u), ccfg, tsdb.ClientOptions{Remote: remote, BearerToken: token}); err != nil {
					return err
				}
			}
			deps.Destinations = append(deps.Destinations, collector.Destination{Name: u, Writer: c})
		}
	}
	agent, err := collector.New(cfg.Agent, deps)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("POST /api/v1/write", agent.PushHandler())
	mux.Handle("POST /api/v1/import/prometheus", agent.PushHandler())
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	hs := &http.Server{Addr: cfg.Agent.HTTPAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	collectDone, httpErr := make(chan error, 1), make(chan error, 1)
	var nodeDone chan error // nil (never ready) without a node
	go func() { collectDone <- agent.Run(ctx) }()
	if na != nil {
		nodeDone = make(chan error, 1)
		na.observe(agent, log)
		go func() { nodeDone <- na.run(ctx) }()
	}
	go func() {
		if err := hs.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			httpErr <- fmt.Errorf("agent.http_addr %s: %w", cfg.Agent.HTTPAddr, err)
		}
	}()
	log.Info("agent running", "server", cfg.Agent.Server.URL, "ship_to_all", len(deps.Destinations) > 1, "datacenter", cfg.Agent.Datacenter, "node", agent.Node(), "push", "http://"+cfg.Agent.HTTPAddr+"/api/v1/write")
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-httpErr:
	case runErr = <-collectDone:
		collectDone <- nil
	case runErr = <-nodeDone:
		nodeDone <- nil
	}
	stop()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = hs.Shutdown(sctx)
	// Both the collector and the node (which stops its instances) finish.
	for _, c := range []chan error{collectDone, nodeDone} {
		if c == nil {
			continue
		}
		if err := <-c; runErr == nil {
			runErr = err
		}
	}
	return runErr
}
