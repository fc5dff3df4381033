package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/version"

	"opspilot/analyzer/loganomaly"
	"opspilot/analyzer/online"
	"opspilot/api"
	"opspilot/autoscaler"
	"opspilot/collector"
	"opspilot/collector/logs"
	"opspilot/orchestrator/leader"
	"opspilot/orchestrator/model"
	"opspilot/runbooks"
	"opspilot/tsdb"
)

// serve is the one place where opspilot's components are built, wired,
// started and stopped in order. It returns when ctx ends or a component
// fails; out receives the human-readable banner and the ready line.
func serve(ctx context.Context, cfg FileConfig, out io.Writer) error {
	// Notifications, runbook lines and incident summaries are printed from
	// several goroutines: one lock for the console, not one per writer.
	out = &syncWriter{w: out}
	log := newLogger(cfg.Log)
	started := time.Now()

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("opspilot"),
	)
	uptime := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "opspilot_start_time_seconds",
		Help: "Unix time the server started.",
	}, func() float64 { return float64(started.UnixNano()) / 1e9 })
	reg.MustRegister(uptime)

	var (
		embedded *tsdb.Embedded
		client   *tsdb.Client
		ready    bool
		elector  *leader.Elector // set once the server listens
	)
	status := func() any {
		st := map[string]any{
			"version":        version.Version,
			"revision":       version.GetRevision(),
			"started_at":     started.UTC().Format(time.RFC3339),
			"uptime_seconds": time.Since(started).Seconds(),
			"ready":          ready,
			"local_mode":     cfg.Server.LocalMode,
		}
		t := map[string]any{"mode": cfg.TSDB.Mode}
		if embedded != nil {
			t["engine"] = "VictoriaMetrics " + tsdb.VictoriaMetricsVersion
			t["data_dir"] = embedded.DataDir()
			t["unclean_shutdown"] = embedded.UncleanShutdown()
		}
		if client != nil {
			t["write_url"] = client.Endpoints().WriteURL
			t["query_url"] = client.Endpoints().QueryURL
		}
		st["tsdb"] = t
		if elector != nil {
			lctx, cancel := context.WithTimeout(context.Background(), time.Second)
			ls, err := elector.Status(lctx)
			cancel()
			if err != nil {
				st["leader"] = map[string]any{"error": err.Error()}
			} else {
				st["leader"] = ls
			}
		}
		return st
	}

	// The TSDB handler is wired after the store starts; the server answers
	// 503 on /prometheus and /healthz until then. So is the local agent's
	// push API.
	tsdbHandler, pushHandler := &lateHandler{}, &lateHandler{}
	var routes []api.Route
	if cfg.Server.LocalMode {
		routes = append(routes,
			api.Route{Pattern: "POST /agent/api/v1/write", Name: "agent_push", Role: api.RoleWrite, Handler: pushHandler},
			api.Route{Pattern: "POST /agent/api/v1/import/prometheus", Name: "agent_push", Role: api.RoleWrite, Handler: pushHandler})
	}
	// A busy port is reported before anything touches the data.
	if err := checkPortFree(cfg.Server.HTTPAddr); err != nil {
		return err
	}
	orch, err := openOrchestrator(ctx, cfg, reg, log)
	if err != nil {
		return err
	}
	defer orch.Close()
	routes = append(routes, orch.routes()...)
	routes = append(routes, api.Route{Pattern: "GET /api/v1/leader", Name: "leader", Role: api.RoleRead, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if elector == nil {
			http.Error(w, `{"status":"error","error":"starting; retry in a second"}`, http.StatusServiceUnavailable)
			return
		}
		st, err := elector.Status(r.Context())
		if err != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(map[string]string{"status": "error", "error": err.Error()})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(st)
	})})
	// The analyzer restores its checkpoint now; it queries and writes
	// through the TSDB client once that exists.
	lateStore := &lateTSDB{}
	// Gray-release steps are judged on the gateway's per-version metrics.
	orch.ctrl.SetRolloutAnalyzer(rolloutAnalyzer{q: tsdbQuerier{lateStore}, now: time.Now})
	var anomalies *online.Service
	if cfg.Analyzer.Enabled {
		acfg := cfg.Analyzer
		if acfg.StateFile == "" {
			acfg.StateFile = filepath.Join(cfg.DataDir, "analyzer", "models.ckpt")
		}
		anomalies, err = online.New(acfg, online.Options{Querier: lateStore, Writer: lateStore, Registerer: reg, Log: log.With("component", "analyzer"),
			Inventory: orch.inventory})
		if err != nil {
			return err
		}
		routes = append(routes, anomalies.Routes()...)
	}
	var scaler *autoscaler.Loop
	if cfg.Autoscaler.Enabled {
		if scaler, err = newAutoscaler(cfg, orch, lateStore, reg, log.With("component", "autoscaler")); err != nil {
			return err
		}
		routes = append(routes, scaler.Routes()...)
	}
	var (
		alerts    *alertingStack
		incidents *runbooks.IncidentService
		runner    *runbookRunner
		socket    *runbooks.SocketMode
	)
	if cfg.Alerting.Enabled {
		if alerts, err = newAlerting(cfg, lateStore, out, reg, log.With("component", "alerting")); err != nil {
			return err
		}
		routes = append(routes, alerts.routes()...)
		journal := filepath.Join(cfg.DataDir, "runbooks", "incidents.jsonl")
		if incidents, err = newIncidents(ctx, orch, alerts, anomalies, out, journal, log.With("component", "incidents")); err != nil {
			return err
		}
		alerts.pipeline.Events().Subscribe(incidents.Observe)
		routes = append(routes, incidents.Routes()...)
		// The Slack secrets, read once for the bot, approvals and Socket Mode.
		creds, err := cfg.Runbooks.Chat.Credentials()
		if err != nil {
			return err
		}
		approver, slackApprover := newApprover(cfg, creds, orch, log.With("component", "approvals"))
		routes = append(routes, slackApprover.Routes()...)
		runner = newRunbookRunner(ctx, cfg.Runbooks.AllowExec, orch, lateStore, alerts, incidents, approver, out, log.With("component", "runbooks"))
		incidents.OnOpened(runner.incidentOpened)
		defer runner.stop()
		chat := newChatbot(cfg, creds, orch, alerts, incidents, runner, log.With("component", "chatbot"))
		routes = append(routes, chat.Routes()...)
		if socket, err = newSocketMode(creds, chat.Bot, slackApprover, log.With("component", "chatbot")); err != nil {
			return err
		}
	}
	var serverTLS *tls.Config
	if orch.pki != nil && cfg.Server.AutoTLS {
		serverTLS = orch.pki.ServerTLSConfig()
	}
	srv, err := api.New(cfg.Server, api.Options{TSDB: tsdbHandler, Status: status, Registry: reg, Log: log, Routes: routes,
		Authenticate: orch.ctrl.NodeAuthenticator(), TLS: serverTLS})
	if err != nil {
		return err
	}
	if err := srv.Listen(); err != nil {
		return err
	}
	elect := cfg.electLeader()
	lopts := leader.Options{Self: leader.Identity{Name: cfg.replicaName(), URL: srv.URL()}, Registerer: reg, Log: log.With("component", "leader")}
	if elect {
		lopts.Client, lopts.Key = orch.st.Client(), orch.st.Prefix()+"leader"
	}
	if elector, err = leader.New(cfg.Orchestrator.Leader, lopts); err != nil {
		return err
	}

	clientReg := prometheus.WrapRegistererWith(nil, reg)
	switch cfg.TSDB.Mode {
	case tsdb.ModeEmbedded:
		ecfg := cfg.TSDB.Embedded
		ecfg.DataDir = ecfg.ResolveDataDir(cfg.DataDir)
		embedded, err = tsdb.StartEmbedded(ecfg, log)
		if err != nil {
			return err
		}
		defer embedded.Stop()
		tsdbHandler.set(embedded.Handler())
		client, err = tsdb.NewClient(tsdb.InProcessEndpoints(), cfg.TSDB.Client, tsdb.ClientOptions{
			Transport: embedded.Transport(), Registerer: clientReg,
		})
		if err != nil {
			return err
		}
		unclean := prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "opspilot_tsdb_unclean_shutdown",
			Help: "1 if the embedded TSDB found that its previous run did not stop cleanly.",
		})
		if embedded.UncleanShutdown() {
			unclean.Set(1)
		}
		reg.MustRegister(unclean)
	case tsdb.ModeRemote:
		ep, err := cfg.TSDB.Remote.Endpoints()
		if err != nil {
			return err
		}
		client, err = tsdb.NewClient(ep, cfg.TSDB.Client, tsdb.ClientOptions{Remote: &cfg.TSDB.Remote, Registerer: clientReg})
		if err != nil {
			return err
		}
		tsdbHandler.set(client.ProxyHandler())
	}

	lateStore.set(client)

	var g run.Group
	// The singleton loops run on the leader only (every loop when this
	// replica is alone); the APIs are served by every replica.
	var leaderLoops []func(context.Context) error
	if scaler != nil {
		if embedded != nil {
			// Decide on what was written up to now: without this the
			// embedded store shows new samples after ~2 s and new series
			// (a new instance) after up to ~10 s.
			scaler.SetBeforeEvaluate(embedded.Flush)
		}
		leaderLoops = append(leaderLoops, scaler.Run)
	}
	if anomalies != nil {
		leaderLoops = append(leaderLoops, anomalies.Run)
	}
	if alerts != nil {
		if embedded != nil {
			// Evaluate on what was written up to now (see Embedded.Flush).
			flush := embedded.Flush
			alerts.flush.Store(&flush)
		}
		leaderLoops = append(leaderLoops, alerts.run, incidents.Run)
	}
	// Scheduled reports are posted once, by the leader.
	if reports, err := newReportLoop(cfg, routes, client, out, log); err != nil {
		return err
	} else if reports != nil {
		leaderLoops = append(leaderLoops, reports)
	}
	if socket != nil {
		leaderLoops = append(leaderLoops, socket.Run)
	}
	{
		sctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { return srv.Serve(sctx) }, func(error) { cancel() })
	}
	if elect {
		// Every replica keeps the view agents and gateways read, and
		// shares the heartbeats its agents send with the leader.
		view := orch.ctrl.SharedView()
		vctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { return view(vctx) }, func(error) { cancel() })
		hctx, hcancel := context.WithCancel(ctx)
		g.Add(func() error {
			return orch.ctrl.RunHeartbeatRelay(hctx, cfg.replicaName(), cfg.Orchestrator.HeartbeatRelay)
		}, func(error) { hcancel() })
	}
	leaderLoops = append(leaderLoops, orch.ctrl.Run)
	leaderLoops = append(leaderLoops, func(ctx context.Context) error {
		return datacenterSignals(ctx, orch.ctrl, tsdbQuerier{lateStore}, cfg.Orchestrator.Datacenters.DegradedErrorRatio, log.With("component", "datacenters"))
	})
	// `opspilot up` runs one agent for this machine, and the log store.
	var (
		agent    *collector.Agent
		logStore *logs.VictoriaLogs
	)
	if cfg.Server.LocalMode {
		logsURL := ""
		if cfg.Agent.Logs.Enabled && cfg.LogStore.Mode == "embedded" {
			logStore, err = startLogStore(ctx, cfg, log)
			if err != nil {
				return err
			}
			defer logStore.Stop()
			logsURL = logStore.InsertURL()
			if runner != nil {
				u := logStore.URL()
				runner.logsURL.Store(&u)
			}
		}
		agent, err = collector.New(cfg.Agent, collector.Deps{
			Writer: client, LogsURL: logsURL, DataDir: cfg.DataDir, Registry: reg, Log: log.With("component", "agent"),
		})
		if err != nil {
			return err
		}
		pushHandler.set(http.StripPrefix("/agent", agent.PushHandler()))
		if alerts != nil {
			// Alert events go to the log store with the node's own logs.
			if err := agent.AddLogSource(logs.Source{Path: alerts.pipeline.Events().Path(), Service: "opspilot-alerting"}); err != nil {
				log.Warn("alerting: the events file will not be shipped to the log store", "err", err)
			}
			if err := agent.AddLogSource(logs.Source{Path: filepath.Join(cfg.DataDir, "runbooks", "incidents.jsonl"), Service: "opspilot-incidents"}); err != nil {
				log.Warn("incidents: the journal will not be shipped to the log store", "err", err)
			}
		}
		// Start the agent now, not with the group, so that its first round
		// is in the store before the ready line, like the server's own.
		actx, acancel := context.WithCancel(ctx)
		agentDone := make(chan error, 1)
		go func() { agentDone <- agent.Run(actx) }()
		g.Add(func() error {
			select {
			case err := <-agentDone:
				return err
			case <-actx.Done():
				return <-agentDone
			}
		}, func(error) { acancel() })
	}
	if !cfg.Server.LocalMode {
		// No agent of its own: the server ships its journals itself.
		events := ""
		if alerts != nil {
			events = alerts.pipeline.Events().Path()
		}
		journals, err := controlPlaneJournals(cfg, events, reg, log.With("component", "journals"))
		if err != nil {
			return err
		}
		if journals != nil {
			jctx, cancel := context.WithCancel(ctx)
			g.Add(func() error { return journals.Run(jctx) }, func(error) { cancel() })
		}
		if u := cfg.LogStore.QueryURL; u != "" && runner != nil {
			runner.logsURL.Store(&u)
		}
	}
	if anomalies != nil && cfg.Analyzer.Logs.Enabled {
		lc := cfg.Analyzer.Logs.ScannerConfig()
		if lc.URL == "" && logStore != nil {
			lc.URL = logStore.URL()
		}
		if lc.URL == "" {
			lc.URL = cfg.LogStore.QueryURL
		}
		if lc.URL != "" {
			lc.CheckpointPath = filepath.Join(cfg.DataDir, "analyzer", "logs.ckpt")
			lc.Registerer, lc.Logger = reg, log.With("component", "log-scanner")
			scanner, err := loganomaly.New(lc)
			if err != nil {
				return err
			}
			anomalies.SetLogTemplates(scanner.NewTemplates)
			leaderLoops = append(leaderLoops, func(ctx context.Context) error { return scanner.Run(ctx, client) })
		}
	}
	if cfg.Server.LocalMode {
		// This machine is the cluster's one node. It starts with the group,
		// after the ready line: the server does not need it to be ready, and
		// its Docker probe and clean-up take time on a busy machine.
		nctx, cancel := context.WithCancel(ctx)
		g.Add(func() error {
			local, err := newNodeAgent(nctx, cfg, []string{srv.URL()}, orch.JoinToken(), &http.Client{}, log.With("component", "node"))
			if err != nil {
				return err
			}
			local.observe(agent, log)
			return local.run(nctx)
		}, func(error) { cancel() })
	}
	var demoGateway *gatewayServer
	if cfg.Demo.Enabled {
		demoGateway, err = startDemo(ctx, cfg, orch, srv, reg, log)
		if err != nil {
			return err
		}
		gctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { return demoGateway.run(gctx) }, func(error) { cancel() })
		g.Add(func() error {
			// Registered in-process: the controller lists it for loadgen.
			t := time.NewTicker(5 * time.Second)
			defer t.Stop()
			for {
				orch.ctrl.RegisterGateway(model.Gateway{Name: "demo", URL: demoGateway.url, Datacenter: cfg.Agent.Datacenter})
				select {
				case <-gctx.Done():
					return nil
				case <-t.C:
				}
			}
		}, func(error) { cancel() })
	}
	if cfg.SelfMonitoring.Enabled {
		sctx, cancel := context.WithCancel(ctx)
		shipper := tsdb.NewMetricsShipper(reg, client, cfg.SelfMonitoring.Interval,
			map[string]string{"job": "opspilot", "instance": srv.Addr()}, reg, log)
		if embedded != nil && cfg.SelfMonitoring.IncludeTSDB {
			shipper.Extra = embedded.WriteMetrics
		}
		if embedded != nil {
			// Write the first round before announcing readiness and make it
			// searchable, so that `opspilot query opspilot_build_info` answers
			// at once instead of after VictoriaMetrics' ~10 s new-series delay.
			if _, err := shipper.ShipOnce(ctx, time.Now()); err != nil {
				log.Warn("self-monitoring: first write failed; retrying every interval", "err", err)
			}
			embedded.Flush()
			shipper.Skip()
		}
		g.Add(func() error { return shipper.Run(sctx) }, func(error) { cancel() })
	}
	{
		lctx, cancel := context.WithCancel(ctx)
		restartable := alerts == nil // the alerting evaluator runs once per process
		fatal := make(chan error, 1)
		g.Add(func() error {
			return elector.Run(lctx, func(ctx context.Context) error {
				err := runAll(ctx, leaderLoops)
				if errors.Is(context.Cause(ctx), leader.ErrLost) && !restartable {
					select {
					case fatal <- errors.New("leadership lost: the alerting evaluator cannot restart in this process; exiting so that a supervisor restarts this replica as a follower"):
					default:
					}
				}
				return err
			})
		}, func(error) { cancel() })
		g.Add(func() error {
			select {
			case err := <-fatal:
				return err
			case <-lctx.Done():
				return nil
			}
		}, func(error) { cancel() })
	}
	{
		sctx, cancel := context.WithCancel(ctx)
		g.Add(func() error {
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
			defer signal.Stop(sig)
			select {
			case s := <-sig:
				log.Info("stopping", "signal", s.String())
			case <-sctx.Done():
			}
			return nil
		}, func(error) { cancel() })
	}

	if agent != nil && embedded != nil {
		// Let the agent's first round reach the store, then make it
		// searchable at once (see Embedded.Flush).
		waitQueued(agent, 2*time.Second)
		embedded.Flush()
	}
	printBanner(out, cfg, srv, embedded, client)
	if agent != nil {
		fmt.Fprintf(out, "  agent         datacenter %s, node %s: host and container metrics every %s; push: %s/agent/api/v1/write\n",
			cfg.Agent.Datacenter, agent.Node(), cfg.Agent.Interval, srv.URL())
	}
	if logStore != nil {
		fmt.Fprintf(out, "  logstore      VictoriaLogs at %s (LogsQL: %s/select/logsql/query), tailing %d files\n",
			logStore.URL(), logStore.URL(), len(cfg.Agent.Logs.Files))
	}
	if orch.pki != nil {
		fmt.Fprintf(out, "  orchestrator  etcd %s; join nodes with:\n                opspilot agent --server %s --datacenter DC --join-token %s\n",
			storeDesc(cfg), srv.URL(), orch.JoinToken())
	} else {
		fmt.Fprintf(out, "  orchestrator  etcd %s; this machine is node %s in datacenter %s\n", storeDesc(cfg), nodeName(cfg), cfg.Agent.Datacenter)
	}
	if scaler != nil {
		mode := ""
		if cfg.Autoscaler.DryRun {
			mode = " (dry run)"
		}
		fmt.Fprintf(out, "  autoscaler    evaluates the autoscaling policies every %s%s (try: opspilot autoscaler list)\n", cfg.Autoscaler.Interval, mode)
	}
	if alerts != nil {
		fmt.Fprintf(out, "  alerting      %s\n", alerts.banner(cfg))
	}
	if anomalies != nil {
		fmt.Fprintf(out, "  analyzer      scores %d queries every %s into anomaly_score/expected/lower/upper (try: opspilot anomaly list)\n",
			len(cfg.Analyzer.Queries), cfg.Analyzer.Interval)
	}
	if demoGateway != nil {
		fmt.Fprintf(out, "  demo          service billing (3 instances) behind the gateway %s/billing/\n"+
			"                try: curl -X POST -d '{\"amount\": 12.5, \"shop\": \"s1\"}' %s/billing/pay\n"+
			"                     opspilot get instances; opspilot loadgen --rate 50 --duration 1m\n", demoGateway.url, demoGateway.url)
	}
	srv.SetReady(true)
	ready = true
	fmt.Fprintf(out, "opspilot ready on %s\n", srv.URL())
	log.Info("ready", "url", srv.URL(), "took", time.Since(started).Round(time.Millisecond))

	err = g.Run()
	log.Info("stopped", "uptime", time.Since(started).Round(time.Second))
	return err
}

func printBanner(out io.Writer, cfg FileConfig, srv *api.Server, embedded *tsdb.Embedded, client *tsdb.Client) {
	mode := "server"
	if cfg.Server.LocalMode {
		mode = "all-in-one local mode"
	}
	fmt.Fprintf(out, "opspilot %s (%s)\n", version.Version, mode)
	if embedded != nil {
		fmt.Fprintf(out, "  tsdb          embedded VictoriaMetrics %s, data in %s, retention %s\n",
			tsdb.VictoriaMetricsVersion, embedded.DataDir(), cfg.TSDB.Embedded.Retention)
	} else {
		fmt.Fprintf(out, "  tsdb          remote: writes to %s, queries %s\n", client.Endpoints().WriteURL, client.Endpoints().QueryURL)
	}
	auth := "API tokens required"
	if cfg.Server.LocalMode && len(cfg.Server.Auth.Tokens) == 0 {
		auth = "no API token needed on loopback"
	}
	fmt.Fprintf(out, "  http          %s (%s)\n", srv.URL(), auth)
	fmt.Fprintf(out, "  prometheus    %s/prometheus (Grafana datasource URL; remote write: /prometheus/api/v1/write)\n", srv.URL())
	if embedded != nil {
		fmt.Fprintf(out, "  vmui          %s/prometheus/vmui/\n", srv.URL())
	}
	fmt.Fprintf(out, "  rest api      %s/api/v1/status (OpenAPI: /api/v1/openapi.yaml)\n", srv.URL())
	if cfg.SelfMonitoring.Enabled {
		fmt.Fprintf(out, "  self-metrics  written into the tsdb every %s (try: opspilot query opspilot_build_info)\n", cfg.SelfMonitoring.Interval)
	}
}

// runAll runs loops until ctx ends or one fails; then it stops the others
// and waits for all of them.
func runAll(ctx context.Context, loops []func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, len(loops))
	for _, loop := range loops {
		go func() { errc <- loop(ctx) }()
	}
	var first error
	for range loops {
		if err := <-errc; err != nil && first == nil && ctx.Err() == nil {
			first = err
		}
		cancel()
	}
	return first
}

// lateHandler lets routes be registered before the store they serve exists.
type lateHandler struct {
	h atomic.Pointer[http.Handler]
}

func (l *lateHandler) set(h http.Handler) { l.h.Store(&h) }

func (l *lateHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := l.h.Load()
	if h == nil {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "the TSDB is starting; retry in a second", http.StatusServiceUnavailable)
		return
	}
	(*h).ServeHTTP(w, r)
}

// syncWriter serializes writes to the console.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

// lateTSDB lets the analyzer be built before the TSDB client exists.
type lateTSDB struct {
	c atomic.Pointer[tsdb.Client]
}

func (l *lateTSDB) set(c *tsdb.Client) { l.c.Store(c) }

var errTSDBStarting = fmt.Errorf("the TSDB is starting")

// Query runs an instant query once the TSDB runs.
func (l *lateTSDB) Query(ctx context.Context, expr string, at time.Time) (tsdb.Result, error) {
	c := l.c.Load()
	if c == nil {
		return tsdb.Result{}, errTSDBStarting
	}
	return c.Query(ctx, expr, at)
}

func (l *lateTSDB) QueryRange(ctx context.Context, expr string, r tsdb.Range) (tsdb.Result, error) {
	c := l.c.Load()
	if c == nil {
		return tsdb.Result{}, errTSDBStarting
	}
	return c.QueryRange(ctx, expr, r)
}

func (l *lateTSDB) Write(ctx context.Context, series []tsdb.TimeSeries) error {
	c := l.c.Load()
	if c == nil {
		return errTSDBStarting
	}
	return c.Write(ctx, series)
}

// startLogStore runs the embedded VictoriaLogs under data_dir/logs.
func startLogStore(ctx context.Context, cfg FileConfig, log *slog.Logger) (*logs.VictoriaLogs, error) {
	bin := cfg.LogStore.Binary
	if bin == "" {
		var err error
		if bin, err = logs.FindVictoriaLogs(); err != nil {
			return nil, fmt.Errorf("logstore: %w (or set logstore.mode: remote, or agent.logs.enabled: false)", err)
		}
	}
	addr := cfg.LogStore.HTTPAddr
	if host, port, err := net.SplitHostPort(addr); err == nil && port == "0" {
		// Pick a free port now: VictoriaLogs would not tell us its choice.
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, fmt.Errorf("logstore.http_addr %s: %w", addr, err)
		}
		addr = ln.Addr().String()
		_ = ln.Close()
	}
	vl, err := logs.StartVictoriaLogs(ctx, bin, filepath.Join(cfg.DataDir, "logs"), addr, log.With("component", "logstore"))
	if err != nil {
		return nil, fmt.Errorf("logstore: %w", err)
	}
	return vl, nil
}

// waitQueued waits until the agent's first round was collected and
// delivered, or d.
func waitQueued(a *collector.Agent, d time.Duration) {
	deadline := time.Now().Add(d)
	select {
	case <-a.FirstRound():
	case <-time.After(d):
		return
	}
	for a.Pending() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

// checkPortFree fails when addr cannot be bound, naming it.
func checkPortFree(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if strings.Contains(err.Error(), "address already in use") {
			return fmt.Errorf("server.http_addr %s is already in use (another opspilot?); stop that process or choose another address with --http-addr", addr)
		}
		return fmt.Errorf("server.http_addr %s: %w", addr, err)
	}
	return ln.Close()
}

func storeDesc(cfg FileConfig) string {
	if cfg.Orchestrator.Store.Mode == "external" {
		return strings.Join(cfg.Orchestrator.Store.Endpoints, ",")
	}
	dir := cfg.Orchestrator.Store.DataDir
	if dir == "" {
		dir = filepath.Join(cfg.DataDir, "etcd")
	}
	return "embedded in " + dir
}

// controlPlaneJournals ships the alert events and the incident journal
// of a control plane without an agent of its own (`opspilot server`) to
// the log store, through the agents' log pipeline (Elasticsearch's bulk
// API, read positions kept under data_dir/server/logs, so an outage of
// the store delays lines and loses none). events is the alert events
// file; nil when it is "" (alerting off) or there is nowhere to ship them.
func controlPlaneJournals(cfg FileConfig, events string, reg prometheus.Registerer, log *slog.Logger) (*logs.Pipeline, error) {
	if events == "" {
		return nil, nil
	}
	u := cfg.LogStore.URL
	if u == "" {
		u = cfg.Agent.Logs.URL
	}
	if u == "" {
		log.Info("alert events and the incident journal stay in data_dir: set logstore.url to ship them to the log store")
		return nil, nil
	}
	return logs.New(logs.Config{
		Sources: []logs.Source{
			{Path: events, Service: "opspilot-alerting"},
			{Path: filepath.Join(cfg.DataDir, "runbooks", "incidents.jsonl"), Service: "opspilot-incidents"},
		},
		StateDir: filepath.Join(cfg.DataDir, "server", "logs"), URL: u, Index: cfg.Agent.Logs.Index,
		Datacenter: cfg.Agent.Datacenter, Node: cfg.replicaName(),
	}, reg, log)
}
