package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"opspilot/loadgen"
	"opspilot/orchestrator/gateway"
	"opspilot/orchestrator/model"
	"opspilot/tsdb"
)

// gatewayServer is a running gateway: the endpoints watcher, the proxy and
// its listener.
type gatewayServer struct {
	ln      net.Listener
	srv     *http.Server
	watcher *gateway.Watcher
	gw      *gateway.Gateway
	url     string
}

// newGatewayServer binds addr and builds a gateway that follows the
// server's endpoints. /-/metrics and /-/healthz are the gateway's own;
// every other path is proxied.
func newGatewayServer(addr, server, token string, client *http.Client, cfg gateway.Config, reg *prometheus.Registry, log *slog.Logger) (*gatewayServer, error) {
	w, err := gateway.NewWatcher(gateway.WatcherConfig{Server: server, Token: token}, client, reg, log)
	if err != nil {
		return nil, err
	}
	gw, err := gateway.New(w, cfg, reg, log)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("gateway address %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /-/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /-/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.Handle("/", gw)
	return &gatewayServer{
		ln: ln, watcher: w, gw: gw, url: "http://" + ln.Addr().String(),
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute},
	}, nil
}

// run serves until ctx ends, then lets in-flight requests finish.
func (g *gatewayServer) run(ctx context.Context) error {
	errc := make(chan error, 3)
	go func() { errc <- g.watcher.Run(ctx) }()
	go func() { errc <- g.gw.Run(ctx) }()
	go func() {
		if err := g.srv.Serve(g.ln); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	select {
	case <-ctx.Done():
	case err := <-errc:
		if err != nil && ctx.Err() == nil {
			return err
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return g.srv.Shutdown(sctx)
}

// defaultGatewayMetricsInterval is how often a standalone gateway writes
// its metrics into the server's TSDB: several samples in the datacenters'
// 30 s error-ratio window and in a gray-release analysis window.
const defaultGatewayMetricsInterval = 5 * time.Second

func newGatewayCmd() *cobra.Command {
	var (
		f                        clientFlags
		listen, name, dc, defSvc string
		advertise                string
		gcfg                     gateway.Config
		metricsInterval          time.Duration
	)
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Run an HTTP gateway that balances over the services' ready instances",
		Long: `gateway follows the server's endpoints (ready instances, by long poll) and
proxies requests to them: by host (billing.example.com → service billing), by
first path segment (/billing/pay → service billing, path /pay), or to the
only service. It balances by fewest outstanding requests (power of two
choices), stops sending to an instance as soon as it leaves the endpoints
(before it is stopped), and retries a request on another instance when it
never reached the first (up to --dial-retries; a connect that takes longer
than --dial-timeout counts) or, once, when it is idempotent and got 502/503.
An instance whose connects failed --eject-after times in a row gets no
requests for --eject-for: a datacenter whose network failed stops costing
time before the control plane notices.

Its own metrics are at /-/metrics, and every --metrics-interval it writes
them into the server's TSDB (labelled job="opspilot-gateway" and instance =
its name), where gray-release analysis and the datacenters' error ratio read
its per-version and per-datacenter requests; the token needs role write. It
registers with the server so that ` + "`opspilot loadgen`" + ` finds it.`,
		Example: `  opspilot gateway --server https://opspilot:9440 --listen :8080 --token-file gw.token`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			if name == "" {
				name, _ = os.Hostname()
			}
			log := newLogger(LogConfig{Level: "info", Format: "text"})
			reg := prometheus.NewRegistry()
			reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
			gcfg.DefaultService = defSvc
			g, err := newGatewayServer(listen, c.flags.server, c.flags.token, c.http, gcfg, reg, log)
			if err != nil {
				return err
			}
			url := g.url
			if advertise != "" {
				url = advertise
			}
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			go func() {
				_ = gateway.Register(ctx, c.flags.server, c.flags.token, model.Gateway{Name: name, URL: url, Datacenter: dc}, c.http)
			}()
			if metricsInterval > 0 {
				// Without this a standalone gateway's requests never reach
				// the TSDB: gray-release steps would see no traffic and
				// stay inconclusive, and no datacenter would be degraded
				// by its error ratio.
				ccfg := tsdb.DefaultClientConfig()
				ccfg.Timeout = min(metricsInterval, 10*time.Second)
				ccfg.RetryMaxElapsed = metricsInterval
				tc, err := tsdb.NewClient(tsdb.LocalEndpoints(c.flags.server), ccfg, tsdb.ClientOptions{BearerToken: c.flags.token, Transport: c.http.Transport})
				if err != nil {
					return err
				}
				shipper := tsdb.NewMetricsShipper(reg, tc, metricsInterval, map[string]string{"job": "opspilot-gateway", "instance": name}, reg, log)
				shipped := make(chan struct{})
				go func() { defer close(shipped); _ = shipper.Run(ctx) }()
				// At exit, once the gateway stopped serving: one last round,
				// so the requests since the previous one are counted.
				defer func() {
					stop()
					<-shipped
					fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
					defer cancel()
					if _, err := shipper.ShipOnce(fctx, time.Now()); err != nil {
						log.Warn("gateway: last metrics round not written", "err", err)
					}
				}()
			}
			fmt.Fprintf(cmd.OutOrStdout(), "gateway %s listening on %s (metrics %s/-/metrics), following %s\n", name, g.url, g.url, c.flags.server)
			return g.run(ctx)
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:9480", "address to serve on")
	cmd.Flags().StringVar(&advertise, "advertise-url", "", "URL clients reach this gateway at (default http://LISTEN)")
	cmd.Flags().StringVar(&name, "name", "", "gateway name (default the hostname)")
	cmd.Flags().StringVar(&dc, "datacenter", "", "datacenter this gateway runs in")
	cmd.Flags().StringVar(&defSvc, "default-service", "", "service for requests that name none")
	cmd.Flags().DurationVar(&metricsInterval, "metrics-interval", defaultGatewayMetricsInterval, "how often to write the gateway's metrics into the server's TSDB (0: never)")
	cmd.Flags().DurationVar(&gcfg.DialTimeout, "dial-timeout", gateway.DefaultDialTimeout, "give up connecting to an instance after this long and try another")
	cmd.Flags().IntVar(&gcfg.DialRetries, "dial-retries", gateway.DefaultDialRetries, "other instances a request tries after a failed connect (-1: none)")
	cmd.Flags().IntVar(&gcfg.EjectAfter, "eject-after", gateway.DefaultEjectAfter, "failed connects in a row that take an instance out of rotation (-1: never)")
	cmd.Flags().DurationVar(&gcfg.EjectFor, "eject-for", gateway.DefaultEjectFor, "how long an ejected instance gets no requests")
	cmd.Flags().DurationVar(&gcfg.StallAfter, "stall-after", gateway.DefaultStallAfter, "pass over an instance that has requests outstanding but answered nothing for this long (negative: off)")
	cmd.Flags().DurationVar(&gcfg.ResponseHeaderTimeout, "response-header-timeout", gateway.DefaultResponseHeaderTimeout, "longest wait for an instance's response headers once a request was sent (504 after it)")
	return cmd
}

func newLoadgenCmd() *cobra.Command {
	var (
		f                   clientFlags
		target              string
		rate, amplitude     float64
		compress            float64
		duration            time.Duration
		surge               bool
		surgeMult           float64
		concurrency         int
		quiet, failOnErrors bool
	)
	cmd := &cobra.Command{
		Use:   "loadgen",
		Short: "Drive a service through the gateway with a daily wave and an optional promotion surge",
		Long: `loadgen sends an open-loop request stream (a slow target does not slow it
down, up to --concurrency) to the demo billing service: 90% POST /pay, 10%
POST /refund. The rate follows a daily sine wave (--amplitude, played
--compress times faster than real time) and, with --surge, triples for the
middle third of the run. It finds the gateway through the server unless
--target is given, shows progress, and prints a report: sent, ok, failed,
dropped, status codes and latency percentiles.`,
		Example: `  opspilot loadgen --rate 100 --duration 1m
  opspilot loadgen --rate 50 --duration 10m --amplitude 0.8 --compress 144 --surge
  opspilot loadgen --target http://127.0.0.1:9480/billing --rate 200 --duration 30s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			if target == "" {
				gw, err := loadgen.Discover(ctx, c.flags.server, c.flags.token, c.http)
				if err != nil {
					return err
				}
				target = strings.TrimRight(gw, "/") + "/billing"
			}
			cfg := loadgen.Config{
				Target: target, Rate: rate, Duration: duration, Concurrency: concurrency,
				Wave: loadgen.Wave{Amplitude: amplitude, Compress: compress},
			}
			if surge {
				cfg.Surge = loadgen.DefaultSurge(duration)
				if surgeMult > 0 {
					cfg.Surge.Multiplier = surgeMult
				}
			}
			var bar *progressbar.ProgressBar
			if !quiet && isTerminal(cmd.ErrOrStderr()) {
				bar = progressbar.NewOptions64(int64(duration/time.Second), progressbar.OptionSetWriter(cmd.ErrOrStderr()),
					progressbar.OptionSetDescription("loadgen "+target), progressbar.OptionSetWidth(30),
					progressbar.OptionShowElapsedTimeOnFinish(), progressbar.OptionClearOnFinish())
				cfg.Progress = func(p loadgen.Progress) {
					_ = bar.Set64(int64(p.Elapsed / time.Second))
					bar.Describe(fmt.Sprintf("%s  %.0f req/s  ok %d  failed %d  dropped %d", target, p.SentPerSecond, p.OK, p.Failed, p.Dropped))
				}
			}
			rep, err := loadgen.Run(ctx, cfg, &http.Client{})
			if bar != nil {
				_ = bar.Finish()
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), rep.String())
			if failOnErrors && rep.Failed > 0 {
				return fmt.Errorf("%d requests failed", rep.Failed)
			}
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&target, "target", "", "base URL of the service (default: the first gateway the server knows, + /billing)")
	cmd.Flags().Float64Var(&rate, "rate", loadgen.DefaultRate, "mean requests per second")
	cmd.Flags().DurationVar(&duration, "duration", time.Minute, "how long to run")
	cmd.Flags().Float64Var(&amplitude, "amplitude", 0, "daily wave swing as a fraction of the rate (0 flat, 1 down to zero at night)")
	cmd.Flags().Float64Var(&compress, "compress", 1, "play the day this many times faster (144: a day in 10 minutes)")
	cmd.Flags().BoolVar(&surge, "surge", false, "a promotion surge: 3× the rate for the middle third of the run")
	cmd.Flags().Float64Var(&surgeMult, "surge-multiplier", 0, "the surge's multiplier (default 3)")
	cmd.Flags().IntVar(&concurrency, "concurrency", loadgen.DefaultConcurrency, "most requests in flight; more are dropped and counted")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	cmd.Flags().BoolVar(&failOnErrors, "fail-on-errors", false, "exit 1 when any request failed")
	return cmd
}

// signalContext ends on SIGINT or SIGTERM.
func signalContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
}
