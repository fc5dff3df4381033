package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"opspilot/api"
	"opspilot/orchestrator/gateway"
	"opspilot/orchestrator/model"

	"github.com/spf13/cobra"

	"opspilot/examples/billing"
)

func newDemoCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Demo workloads and data",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "billing [flags]",
		Short: "Run the demo billing service (examples/billing); `billing --help` lists its flags",
		Long: `billing is a small payment service with business KPIs and a capacity
model: past its capacity its latency climbs and errors appear. opspilot up
--demo runs three instances of it from this command. It listens on $PORT when
set.`,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if code := billing.Main(args); code != 0 {
				os.Exit(code)
			}
			return nil
		},
	})
	cmd.AddCommand(newBackfillCmd())
	return cmd
}

// demoService is the billing service `opspilot up --demo` deploys: three
// instances of this executable's `demo billing`, their metrics scraped.
func demoService() (model.Service, error) {
	exe, err := os.Executable()
	if err != nil {
		return model.Service{}, fmt.Errorf("demo: cannot find the opspilot executable: %w", err)
	}
	return model.Service{
		Name: "billing", Tenant: "demo", Runtime: model.RuntimeProcess,
		Command:   []string{exe, "demo", "billing", "-capacity", "100"},
		Replicas:  3,
		Requests:  model.Resources{MilliCPU: 100, MemoryBytes: 64 << 20},
		Limits:    model.Resources{MilliCPU: 1000, MemoryBytes: 256 << 20},
		Ports:     []model.Port{{Name: "http", Port: 8080}},
		Readiness: &model.Probe{HTTP: &model.HTTPProbe{Path: "/readyz", Port: 8080}, Period: time.Second},
		Liveness:  &model.Probe{HTTP: &model.HTTPProbe{Path: "/healthz", Port: 8080}, Period: 2 * time.Second},
		// The node agent scrapes each instance's /metrics every second,
		// so billing_transactions_total{service="billing",instance=ID}
		// reaches the TSDB (the autoscaler's per-instance KPI).
		Metrics: &model.MetricsEndpoint{Port: "http", Interval: time.Second},
	}, nil
}

// startDemo applies the demo service and builds (does not run) its
// gateway, which follows the local server's endpoints.
func startDemo(ctx context.Context, cfg FileConfig, orch *orchestrator, srv *api.Server, reg *prometheus.Registry, log *slog.Logger) (*gatewayServer, error) {
	svc, err := demoService()
	if err != nil {
		return nil, err
	}
	if _, err := orch.ctrl.ApplyService(ctx, svc, "opspilot up --demo", "demo workload"); err != nil {
		return nil, fmt.Errorf("demo: apply the billing service: %w", err)
	}
	if cfg.Autoscaler.Enabled {
		if err := applyDemoPolicy(ctx, orch); err != nil {
			return nil, err
		}
	}
	if cfg.Alerting.Enabled {
		if err := applyDemoRunbook(ctx, orch); err != nil {
			return nil, err
		}
	}
	return newGatewayServer(cfg.Demo.GatewayAddr, srv.URL(), "", &http.Client{}, gateway.Config{DefaultService: "billing"}, reg, log.With("component", "gateway"))
}
