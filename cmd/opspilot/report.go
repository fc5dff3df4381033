package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"opspilot/api"
	"opspilot/grafana/report"
	"opspilot/orchestrator/pki"
	"opspilot/tsdb"
)

func newReportCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Build the capacity trend report or the daily inspection report",
	}
	cmd.AddCommand(newReportCapacityCmd(), newReportInspectionCmd())
	return cmd
}

// reportSources are the TSDB and REST clients of a report command.
func (f *clientFlags) reportSources() (report.Querier, report.ControlPlane, error) {
	c, err := f.client()
	if err != nil {
		return nil, nil, err
	}
	ccfg := tsdb.DefaultClientConfig()
	ccfg.Timeout = f.timeout
	ccfg.RetryMaxElapsed = 5 * time.Second
	q, err := tsdb.NewClient(tsdb.LocalEndpoints(c.flags.server), ccfg, tsdb.ClientOptions{BearerToken: c.flags.token, Transport: c.http.Transport})
	if err != nil {
		return nil, nil, err
	}
	return q, &report.APIClient{BaseURL: c.flags.server, Token: c.flags.token, HTTP: c.http}, nil
}

// writeReportFile writes body to out ("-" or empty: stdout).
func writeReportFile(cmd *cobra.Command, out string, body []byte) error {
	if out == "" || out == "-" {
		_, err := cmd.OutOrStdout().Write(body)
		return err
	}
	if err := os.WriteFile(out, body, 0o644); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s (%d bytes)\n", out, len(body))
	return nil
}

func newReportCapacityCmd() *cobra.Command {
	var f clientFlags
	var rng, horizon, out, format string
	var threshold float64
	cmd := &cobra.Command{
		Use:   "capacity [--range 30d] [--out report.html] [--format html|pdf|text]",
		Short: "Capacity trend report: utilisation, peaks, forecasts, time to exhaustion, recommendations",
		Long: `capacity reads the range of history from the server's TSDB and its inventory
from the REST API, and for every datacenter, node group (nodes of one
partition) and service reports CPU and memory: the utilisation trend and
peak, a forecast with its 95% interval (Holt-Winters: trend, daily and
weekly seasons), when usage reaches the planning limit (--threshold of
capacity), scaling activity, and what to do in plain words ("datacenter B
needs 40 more cores by 2027-01-15 at current growth").

The HTML is one self-contained file with its charts; --format pdf prints
it with headless Chromium (install chromium, or set OPSPILOT_CHROMIUM).`,
		Example: `  opspilot report capacity --range 30d --out report.html
  opspilot report capacity --format pdf --out report.pdf
  opspilot report capacity --format text`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := report.CapacityOptions{Threshold: threshold}
			var err error
			if opts.Range, err = parseReportDuration("--range", rng); err != nil {
				return err
			}
			if opts.Horizon, err = parseReportDuration("--horizon", horizon); err != nil {
				return err
			}
			if format != "html" && format != "pdf" && format != "text" {
				return fmt.Errorf("--format %q: use html, pdf or text", format)
			}
			if format == "pdf" {
				if _, err := report.FindBrowser(); err != nil {
					return fmt.Errorf("--format pdf: %w", err)
				}
			}
			q, cp, err := f.reportSources()
			if err != nil {
				return err
			}
			var bar *progressbar.ProgressBar
			if isTerminal(cmd.ErrOrStderr()) {
				bar = progressbar.NewOptions(1, progressbar.OptionSetWriter(cmd.ErrOrStderr()),
					progressbar.OptionSetDescription("capacity report"), progressbar.OptionShowCount(),
					progressbar.OptionSetWidth(30), progressbar.OptionClearOnFinish())
				opts.Progress = func(done, total int, step string) {
					bar.ChangeMax(total)
					bar.Describe(step)
					_ = bar.Set(done)
				}
			}
			rep, err := report.BuildCapacity(cmd.Context(), q, cp, opts)
			if bar != nil {
				_ = bar.Finish()
			}
			if err != nil {
				return errorHint(err, f.server)
			}
			body, err := renderCapacity(cmd.Context(), rep, format)
			if err != nil {
				return err
			}
			return writeReportFile(cmd, out, body)
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&rng, "range", "30d", "history to read and fit (1h to 400d; h, d, w units)")
	cmd.Flags().StringVar(&horizon, "horizon", "30d", "how far ahead to forecast")
	cmd.Flags().Float64Var(&threshold, "threshold", report.DefaultThreshold, "planning limit as a fraction of capacity")
	cmd.Flags().StringVarP(&out, "out", "o", "", "file to write (default: standard output)")
	cmd.Flags().StringVar(&format, "format", "html", "html, pdf or text")
	return cmd
}

func renderCapacity(ctx context.Context, rep *report.CapacityReport, format string) ([]byte, error) {
	if format == "text" {
		return []byte(rep.Text()), nil
	}
	var buf bytes.Buffer
	if err := rep.WriteHTML(&buf); err != nil {
		return nil, err
	}
	if format == "pdf" {
		return report.PrintPDF(ctx, buf.Bytes())
	}
	return buf.Bytes(), nil
}

func newReportInspectionCmd() *cobra.Command {
	var f clientFlags
	var out, format, window string
	var certs []string
	var disk float64
	cmd := &cobra.Command{
		Use:   "inspection [--out FILE] [--format text|html]",
		Short: "Daily inspection: nodes down, full disks, restarting instances, expiring certificates, noisy alerts, anomalies, incidents",
		Long: `inspection checks every datacenter: nodes that are lost or send no host
metrics, filesystems over --disk-threshold used, instances that restarted
in the window, certificates (--cert) close to expiry, alerts that fired
often, series the analyzer scored anomalous, and the window's incidents.`,
		Example: `  opspilot report inspection
  opspilot report inspection --format html --out inspection.html --cert /var/lib/opspilot/pki/server.crt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w, err := parseReportDuration("--window", window)
			if err != nil {
				return err
			}
			if format != "html" && format != "text" {
				return fmt.Errorf("--format %q: use text or html", format)
			}
			q, cp, err := f.reportSources()
			if err != nil {
				return err
			}
			rep, err := report.BuildInspection(cmd.Context(), q, cp, report.InspectionOptions{Window: w, DiskThreshold: disk, CertFiles: certs})
			if err != nil {
				return err
			}
			if format == "text" {
				return writeReportFile(cmd, out, []byte(rep.Text()))
			}
			var buf bytes.Buffer
			if err := rep.WriteHTML(&buf); err != nil {
				return err
			}
			return writeReportFile(cmd, out, buf.Bytes())
		},
	}
	f.register(cmd)
	cmd.Flags().StringVarP(&out, "out", "o", "", "file to write (default: standard output)")
	cmd.Flags().StringVar(&format, "format", "text", "text or html")
	cmd.Flags().StringVar(&window, "window", "24h", "how far back to look")
	cmd.Flags().Float64Var(&disk, "disk-threshold", 0.85, "used fraction of a filesystem that is reported")
	cmd.Flags().StringArrayVar(&certs, "cert", nil, "PEM certificate file to check for expiry (repeatable)")
	return cmd
}

// parseReportDuration reads 30d, 2w, 12h (Prometheus' duration syntax).
func parseReportDuration(flag, s string) (time.Duration, error) {
	d, err := model.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s %q: use a duration such as 30d, 2w or 12h", flag, s)
	}
	return time.Duration(d), nil
}

// newReportLoop returns the scheduled reports loop (nil when both are off): the
// capacity report and the inspection are built on their schedules
// (reports.*), kept under reports.dir and posted to Slack or the console.
// They read the TSDB through client and the control plane through its own
// routes, in-process.
func newReportLoop(cfg FileConfig, routes []api.Route, client *tsdb.Client, out io.Writer, log *slog.Logger) (func(context.Context) error, error) {
	rc := cfg.Reports
	if rc.Capacity.Every == "off" && rc.Inspection.Every == "off" {
		return nil, nil
	}
	dir := rc.Dir
	if dir == "" {
		dir = filepath.Join(cfg.DataDir, "reports")
	}
	var poster report.Poster = &report.ConsolePoster{W: out}
	if rc.Capacity.Channel != "" || rc.Inspection.Channel != "" {
		token := ""
		if rc.Slack.TokenFile != "" {
			b, err := os.ReadFile(rc.Slack.TokenFile)
			if err != nil {
				return nil, fmt.Errorf("reports.slack.token_file: %w", err)
			}
			token = strings.TrimSpace(string(b))
		} else {
			creds, err := cfg.Runbooks.Chat.Credentials()
			if err != nil {
				return nil, err
			}
			token = creds.BotToken
		}
		if token == "" {
			return nil, fmt.Errorf("reports: a channel is set but there is no Slack bot token; set reports.slack.token_file or $SLACK_BOT_TOKEN")
		}
		poster = report.NewSlackPoster(token, rc.Slack.APIURL, poster)
	}
	mux := http.NewServeMux()
	for _, r := range routes {
		mux.Handle(r.Pattern, r.Handler)
	}
	cp := &report.APIClient{BaseURL: "http://in-process", HTTP: &http.Client{Transport: handlerTransport{mux}}}
	certs := inspectionCerts(cfg)
	s := &report.Scheduler{Dir: dir, Keep: rc.Keep, Timeout: rc.Timeout, Poster: poster, Log: log.With("component", "reports")}
	s.Jobs = append(s.Jobs, report.Job{Kind: "capacity", Schedule: rc.Capacity.Schedule, Build: func(ctx context.Context, now time.Time) (report.Built, error) {
		c := rc.Capacity
		rep, err := report.BuildCapacity(ctx, client, cp, report.CapacityOptions{Range: c.Range, Horizon: c.Horizon, Threshold: c.Threshold, Now: now})
		if err != nil {
			return report.Built{}, err
		}
		body, err := renderCapacity(ctx, rep, c.Format)
		if err != nil {
			return report.Built{}, err
		}
		return report.Built{Kind: "capacity", Name: report.FileName("capacity", now, c.Format), Body: body, Summary: rep.Text(), Channel: c.Channel}, nil
	}}, report.Job{Kind: "inspection", Schedule: rc.Inspection.Schedule, Build: func(ctx context.Context, now time.Time) (report.Built, error) {
		c := rc.Inspection
		rep, err := report.BuildInspection(ctx, client, cp, report.InspectionOptions{Now: now, DiskThreshold: c.DiskThreshold, CertFiles: certs, CertWarn: c.CertWarn, NoisyAlerts: c.NoisyAlerts})
		if err != nil {
			return report.Built{}, err
		}
		var buf bytes.Buffer
		if err := rep.WriteHTML(&buf); err != nil {
			return report.Built{}, err
		}
		return report.Built{Kind: "inspection", Name: report.FileName("inspection", now, "html"), Body: buf.Bytes(), Summary: rep.Text(), Channel: c.Channel}, nil
	}})
	return s.Run, nil
}

// handlerTransport serves requests with an in-process handler: the
// scheduled reports read the control plane's own API without a socket or
// a token.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

// inspectionCerts are the certificates the scheduled inspection report
// checks for expiry: the control plane's CA and server certificate, the
// etcd peer certificate when the members talk TLS, and the TLS files the
// config names.
func inspectionCerts(cfg FileConfig) []string {
	certs := []string{filepath.Join(cfg.pkiDir(), pki.CACertFile), filepath.Join(cfg.pkiDir(), pki.ServerCertFile)}
	if cfg.Orchestrator.Store.peerTLS() {
		certs = append(certs, filepath.Join(cfg.pkiDir(), pki.PeerCertFile))
	}
	for _, f := range []string{cfg.Server.TLSCertFile, cfg.TSDB.Remote.TLS.CAFile, cfg.TSDB.Remote.TLS.CertFile} {
		if f != "" {
			certs = append(certs, f)
		}
	}
	return certs
}
