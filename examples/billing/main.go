// Package billing is opspilot's demo workload: a small payment service whose
// latency and error rate follow a simple capacity model, exposing business
// KPIs in the Prometheus format. See README.md.
package billing

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// config is the parsed command line.
type config struct {
	addr            string
	capacity        float64
	instance        string
	warmup          time.Duration
	drainDelay      time.Duration
	shutdownTimeout time.Duration
	seed            uint64
	failRatio       float64
}

// envPrefix prefixes the environment variable of every flag: -drain-delay is
// also BILLING_DRAIN_DELAY. A flag on the command line wins over its variable.
const envPrefix = "BILLING_"

// parseConfig reads flags, then environment variables for the flags not given.
// PORT, if set, replaces the port of the address unless -addr was given.
func parseConfig(args []string, getenv func(string) string, out io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("billing", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8080", "listen address (env BILLING_ADDR; env PORT replaces its port)")
	fs.Float64Var(&c.capacity, "capacity", 50, "transactions per second this instance handles comfortably (env BILLING_CAPACITY)")
	fs.StringVar(&c.instance, "instance", "", "instance label value (env BILLING_INSTANCE; default hostname:port)")
	fs.DurationVar(&c.warmup, "warmup", 0, "how long /readyz answers 503 after start (env BILLING_WARMUP)")
	fs.DurationVar(&c.drainDelay, "drain-delay", 0, "on SIGTERM, keep serving this long with /readyz at 503 before closing the listener (env BILLING_DRAIN_DELAY)")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 10*time.Second, "how long in-flight requests may take to finish on shutdown (env BILLING_SHUTDOWN_TIMEOUT)")
	fs.Uint64Var(&c.seed, "seed", 0, "seed of the overload error decision; 0 = random (env BILLING_SEED)")
	fs.Float64Var(&c.failRatio, "fail-ratio", 0, "share of transactions answered 500 whatever the load, a fault to inject (a bad release in a gray-release test); 0 to 1 (env BILLING_FAIL_RATIO)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: billing [flags]\n\nA demo payment service with a capacity model. Flags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] {
			return
		}
		name := envPrefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(name); v != "" {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %v", name, v, err))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return c, err
	}
	if p := getenv("PORT"); p != "" && !given["addr"] {
		host, _, err := net.SplitHostPort(c.addr)
		if err != nil {
			return c, fmt.Errorf("addr %q: %v", c.addr, err)
		}
		c.addr = net.JoinHostPort(host, p)
	}
	switch {
	case !(c.capacity > 0) || c.capacity > 1e9:
		return c, fmt.Errorf("-capacity must be > 0, got %v", c.capacity)
	case c.warmup < 0 || c.drainDelay < 0:
		return c, errors.New("-warmup and -drain-delay must not be negative")
	case c.shutdownTimeout <= 0:
		return c, errors.New("-shutdown-timeout must be > 0")
	case !(c.failRatio >= 0 && c.failRatio <= 1):
		return c, fmt.Errorf("-fail-ratio must be in [0, 1], got %v", c.failRatio)
	}
	return c, nil
}

// defaultInstance is hostname:port of the listener.
func defaultInstance(addr net.Addr) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	port := "0"
	if ta, ok := addr.(*net.TCPAddr); ok {
		port = fmt.Sprint(ta.Port)
	} else if _, p, err := net.SplitHostPort(addr.String()); err == nil {
		port = p
	}
	return net.JoinHostPort(host, port)
}

// run serves until ctx is done, then drains. listening, if not nil, is
// called with the bound address once the server accepts connections.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, listening func(addr string)) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	if cfg.instance == "" {
		cfg.instance = defaultInstance(ln.Addr())
	}
	s := newServer(cfg, log)
	return serve(ctx, s, ln, listening)
}

// serve runs s on ln until ctx is done, then marks it not ready, waits
// -drain-delay, and shuts down, letting in-flight requests finish within
// -shutdown-timeout.
func serve(ctx context.Context, s *server, ln net.Listener, listening func(addr string)) error {
	srv := &http.Server{
		Handler:           s.handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("billing listening", "addr", ln.Addr().String(), "instance", s.cfg.instance,
		"capacity_tps", s.cfg.capacity, "warmup", s.cfg.warmup)
	if listening != nil {
		listening(ln.Addr().String())
	}

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.startDrain()
	s.log.Info("draining: readiness now 503", "drain_delay", s.cfg.drainDelay)
	if s.cfg.drainDelay > 0 {
		time.Sleep(s.cfg.drainDelay)
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shutdown: in-flight requests did not finish within %v: %w", s.cfg.shutdownTimeout, err)
	}
	s.log.Info("stopped")
	return nil
}

// Main runs the service with args (without the program name) until
// SIGTERM or SIGINT, then drains, and returns the exit code. The billing
// command and `opspilot demo billing` both call it.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-ctx.Done()
		stop() // a second signal kills the process at once
	}()
	err := run(ctx, args, os.Getenv, os.Stderr, nil)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	default:
		fmt.Fprintln(os.Stderr, "billing:", err)
		return 1
	}
}
