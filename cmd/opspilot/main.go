// Command opspilot is the one opspilot binary: server, all-in-one local
// mode, queries, config checks. See `opspilot --help`.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/common/version"
	"github.com/spf13/cobra"

	"opspilot/collector"
	"opspilot/config"
)

func init() {
	if version.Version == "" {
		version.Version = "dev"
	}
}

func main() {
	if err := newRootCmd(os.Stdout, os.Stderr).ExecuteContext(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "opspilot:", err)
		os.Exit(1)
	}
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "opspilot",
		Short: "AIOps monitoring and autoscaling for containerised services across datacenters",
		Long: `opspilot watches (node agents stream host, container and business KPIs into
VictoriaMetrics), understands (anomaly models, forecasts), acts (autoscaling,
self-healing, failover) and talks (chat alerts, runbooks, dashboards).

Start everything on one machine with:  opspilot up`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(
		newUpCmd(),
		newServerCmd(),
		newAgentCmd(),
		newQueryCmd(),
		newApplyCmd(),
		newGetCmd(),
		newDescribeCmd(),
		newDeleteCmd(),
		newScaleCmd(),
		newFailoverCmd(),
		newFailbackCmd(),
		newRolloutCmd(),
		newDemoCmd(),
		newGatewayCmd(),
		newLoadgenCmd(),
		newAnomalyCmd(),
		newCapacityCmd(),
		newAutoscalerCmd(),
		newRulesCmd(),
		newAlertsCmd(),
		newSilenceCmd(),
		newIncidentCmd(),
		newReportCmd(),
		newGrafanaCmd(),
		newConfigCmd(),
		newVersionCmd(),
	)
	return root
}

// serverFlags are the flags that override opspilot.yaml.
type serverFlags struct {
	configFile string
	dataDir    string
	httpAddr   string
	logLevel   string
}

func (f *serverFlags) register(cmd *cobra.Command, dataDirDefault, addrDefault string) {
	cmd.Flags().StringVarP(&f.configFile, "config", "c", "", "opspilot.yaml to read (flags override it)")
	cmd.Flags().StringVar(&f.dataDir, "data-dir", dataDirDefault, "directory for all stored data (data_dir)")
	cmd.Flags().StringVar(&f.httpAddr, "http-addr", addrDefault, "HOST:PORT of the HTTP API (server.http_addr)")
	cmd.Flags().StringVar(&f.logLevel, "log-level", "", "debug, info, warn or error (log.level)")
	_ = cmd.MarkFlagFilename("config", "yaml", "yml")
	_ = cmd.MarkFlagDirname("data-dir")
}

// load reads the config file and applies the flags the user set.
func (f *serverFlags) load(cmd *cobra.Command) (FileConfig, error) {
	cfg, err := loadFileConfig(f.configFile)
	if err != nil {
		return cfg, err
	}
	if cmd.Flags().Changed("data-dir") || f.configFile == "" {
		cfg.DataDir = f.dataDir
	}
	if cmd.Flags().Changed("http-addr") || f.configFile == "" {
		cfg.Server.HTTPAddr = f.httpAddr
	}
	if f.logLevel != "" {
		cfg.Log.Level = f.logLevel
	}
	if ps := cfg.Validate(); len(ps) > 0 {
		var es config.Errors
		for _, p := range ps {
			es = append(es, &config.Error{File: flagSource(f.configFile), Field: p.Field, Msg: p.Msg})
		}
		return cfg, es
	}
	return cfg, nil
}

func flagSource(file string) string {
	if file == "" {
		return "flags"
	}
	return file + " with flags"
}

func newUpCmd() *cobra.Command {
	var f serverFlags
	var tails []string
	var logstoreAddr, gatewayAddr string
	var demo bool
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run everything on this machine: embedded TSDB, API, self-monitoring",
		Long: `up runs opspilot's all-in-one embedded default on one machine: an in-process
VictoriaMetrics, the HTTP API with the Prometheus-compatible query and
remote-write API under /prometheus, and self-monitoring. It serves on a
loopback address without API tokens (local mode). This machine is the
orchestrator's one node: services applied with ` + "`opspilot apply`" + ` run here.

With --demo it also deploys the demo billing service (3 instances, run from
this binary) and a gateway in front of it, so services, instances and
business KPIs show within seconds; drive it with ` + "`opspilot loadgen`" + `.`,
		Example: "  opspilot up\n  opspilot up --demo\n  opspilot up --data-dir /tmp/ops --http-addr 127.0.0.1:9440",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.load(cmd)
			if err != nil {
				return err
			}
			cfg.Server.LocalMode = true
			if cmd.Flags().Changed("logstore-addr") {
				cfg.LogStore.HTTPAddr = logstoreAddr
			}
			for _, p := range tails {
				abs, err := filepath.Abs(p)
				if err != nil {
					return fmt.Errorf("--tail %s: %w", p, err)
				}
				cfg.Agent.Logs.Files = append(cfg.Agent.Logs.Files, collector.LogSource{Path: abs, Service: "local", Instance: filepath.Base(abs)})
			}
			cfg.Demo = DemoConfig{Enabled: demo, GatewayAddr: gatewayAddr}
			return serve(cmd.Context(), cfg, cmd.OutOrStdout())
		},
	}
	f.register(cmd, "./opspilot-data", "127.0.0.1:9440")
	cmd.Flags().BoolVar(&demo, "demo", false, "deploy the demo billing service (3 instances) and a gateway")
	cmd.Flags().StringVar(&gatewayAddr, "gateway-addr", "127.0.0.1:9480", "HOST:PORT of the demo's gateway; port 0 picks a free one")
	cmd.Flags().StringArrayVar(&tails, "tail", nil, "tail this log file into the log store (repeatable; agent.logs.files)")
	cmd.Flags().StringVar(&logstoreAddr, "logstore-addr", "127.0.0.1:9428", "HOST:PORT of the embedded VictoriaLogs; port 0 picks a free one (logstore.http_addr)")
	return cmd
}

func newServerCmd() *cobra.Command {
	var f serverFlags
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the opspilot control plane from opspilot.yaml (API tokens required)",
		Long: `server runs the control plane as configured in opspilot.yaml: the TSDB
(embedded or remote), the HTTP API and self-monitoring. Unlike up, every API
call needs a bearer token (server.auth.tokens).`,
		Example: "  opspilot server -c /etc/opspilot/opspilot.yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.load(cmd)
			if err != nil {
				return err
			}
			return serve(cmd.Context(), cfg, cmd.OutOrStdout())
		},
	}
	d := defaultFileConfig()
	f.register(cmd, d.DataDir, d.Server.HTTPAddr)
	return cmd
}

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check opspilot.yaml files",
	}
	cmd.AddCommand(&cobra.Command{
		Use:     "check FILE...",
		Short:   "Validate config files; every problem is reported with file, line and field",
		Example: "  opspilot config check opspilot.yaml",
		Args:    cobra.MinimumNArgs(1),
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return []string{"yaml", "yml"}, cobra.ShellCompDirectiveFilterFileExt
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			failed := 0
			for _, path := range args {
				if _, err := loadFileConfig(path); err != nil {
					failed++
					fmt.Fprintln(cmd.ErrOrStderr(), err)
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", path)
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d config files have problems", failed, len(args))
			}
			return nil
		},
	})
	return cmd
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, revision and Go version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), version.Print("opspilot"))
		},
	}
}

// errorHint adds what to do to errors a person meets often.
func errorHint(err error, server string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "connection refused"):
		return fmt.Errorf("%w\nis opspilot running at %s? start it with `opspilot up`, or pass --server", err, server)
	case strings.Contains(msg, "401"):
		return fmt.Errorf("%w\npass an API token with --token or OPSPILOT_TOKEN", err)
	}
	return err
}
