package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"opspilot/grafana"
)

func newGrafanaCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "grafana",
		Short: "Grafana dashboards and provisioning for opspilot",
	}
	var (
		server, configFile, dashboardsPath, tokenEnv string
	)
	export := &cobra.Command{
		Use:   "export DIR",
		Short: "Write the dashboards and Grafana provisioning files pointing at opspilot",
		Long: `export writes opspilot's dashboards (cluster overview, host, service,
autoscaler, incidents and alerts, opspilot's own health) as Grafana JSON
under DIR/dashboards, and the provisioning files Grafana reads at start:

  DIR/provisioning/datasources/opspilot.yaml  a Prometheus datasource, url SERVER/prometheus
  DIR/provisioning/dashboards/opspilot.yaml   a file provider for DIR/dashboards

Point Grafana's provisioning directory at DIR/provisioning (GF_PATHS_PROVISIONING)
or copy the two files into yours. The server URL is --server, else the
address in -c opspilot.yaml (server.http_addr; https when it serves TLS),
else $OPSPILOT_SERVER, else http://127.0.0.1:9440. Files are replaced
atomically; the output is the same for the same options.`,
		Example: `  opspilot grafana export ./grafana
  opspilot grafana export /etc/grafana/opspilot --server http://opspilot.internal:9440 --token-env OPSPILOT_TOKEN
  opspilot grafana export ./grafana -c opspilot.yaml --dashboards-path /var/lib/grafana/dashboards/opspilot`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			url := server
			if !cmd.Flags().Changed("server") {
				var err error
				if url, err = serverURLFromConfig(configFile); err != nil {
					return err
				}
			}
			files, err := grafana.Export(args[0], grafana.ExportOptions{ServerURL: url, DashboardsPath: dashboardsPath, TokenEnv: tokenEnv})
			if err != nil {
				return err
			}
			for _, f := range files {
				fmt.Fprintln(cmd.OutOrStdout(), filepath.Join(args[0], f))
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "datasource: %s (uid %s)\n", grafana.DatasourceURL(url), grafana.DatasourceUID)
			return nil
		},
	}
	export.Flags().StringVar(&server, "server", "", "opspilot's URL as Grafana reaches it (default: from -c, else $OPSPILOT_SERVER, else http://127.0.0.1:9440)")
	export.Flags().StringVarP(&configFile, "config", "c", "", "opspilot.yaml whose server.http_addr gives the URL")
	export.Flags().StringVar(&dashboardsPath, "dashboards-path", "", "the dashboards directory as Grafana sees it (default: DIR/dashboards, absolute)")
	export.Flags().StringVar(&tokenEnv, "token-env", "", "name of an environment variable of Grafana's holding an API token with the read role (needed for opspilot server)")
	_ = export.MarkFlagDirname("dashboards-path")
	_ = export.MarkFlagFilename("config", "yaml", "yml")
	cmd.AddCommand(export)
	return cmd
}

// serverURLFromConfig is the server's base URL from opspilot.yaml, or the
// client default without one.
func serverURLFromConfig(path string) (string, error) {
	if path == "" {
		return envOr("OPSPILOT_SERVER", "http://127.0.0.1:9440"), nil
	}
	cfg, err := loadFileConfig(path)
	if err != nil {
		return "", err
	}
	host, port, err := net.SplitHostPort(cfg.Server.HTTPAddr)
	if err != nil {
		return "", fmt.Errorf("%s: server.http_addr %q: %w; or pass --server", path, cfg.Server.HTTPAddr, err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		// Listening on every address: name this machine.
		if host, err = os.Hostname(); err != nil {
			return "", fmt.Errorf("%s: server.http_addr %q listens on every address and the host name is unknown (%w); pass --server", path, cfg.Server.HTTPAddr, err)
		}
	}
	scheme := "http"
	if cfg.Server.TLSCertFile != "" || cfg.Server.AutoTLS {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port), nil
}
