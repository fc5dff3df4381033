package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"opspilot/orchestrator/control"
	"opspilot/orchestrator/model"
)

// newFailoverCmd is `opspilot failover DC` and newFailbackCmd `opspilot
// failback DC`: the planned counterparts of what the control plane does
// by itself when a datacenter is lost and returns.
func newFailoverCmd() *cobra.Command {
	return datacenterCmd("failover", "Take a datacenter out of service: its services run in the other datacenters until failback",
		`  opspilot failover B --reason "network maintenance 02:00-04:00"`,
		"failed over: its services' instances are rebuilt in the other datacenters and its own stop once replaced; `opspilot failback %s` returns it")
}

func newFailbackCmd() *cobra.Command {
	return datacenterCmd("failback", "Return a failed-over datacenter to service; services move their share back gradually",
		`  opspilot failback B --reason "maintenance done"`,
		"back in service: services move their share back gradually (watch with `opspilot get instances`); `opspilot failover %s` takes it out again")
}

func datacenterCmd(verb, short, example, done string) *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:     verb + " DATACENTER",
		Short:   short,
		Example: example,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			var st model.DatacenterStatus
			if err := c.do(cmd.Context(), "POST", "/api/v1/datacenters/"+url.PathEscape(args[0])+"/"+verb, nil, &st); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "datacenter/%s %s\n", args[0], fmt.Sprintf(done, args[0]))
			return nil
		},
	}
	f.register(cmd)
	f.registerReason(cmd)
	return cmd
}

// datacenterSignals marks datacenters degraded whose instances answer too
// many requests with 5xx through the gateways, or whose error ratio the
// analyzer scores anomalous, every 5 s until ctx ends (with threshold 0,
// the check is off: it only waits for ctx).
func datacenterSignals(ctx context.Context, ctrl *control.Controller, q instantQuerier, threshold float64, log *slog.Logger) error {
	if threshold <= 0 {
		<-ctx.Done()
		return nil
	}
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		sig, err := datacenterSignalsOnce(ctx, q, threshold, time.Now())
		if err != nil {
			log.Debug("datacenter error ratios", "err", err)
			continue // no TSDB yet, or an outage: keep the last verdict
		}
		ctrl.SetDatacenterSignals(sig)
	}
}

// anomalousErrorScore is the analyzer's anomaly score over which a
// datacenter's error ratio counts as anomalous; minAnomalousShare of the
// threshold keeps a jump from 0.01% to 0.1% from degrading a datacenter.
const (
	anomalousErrorScore = 0.95
	minAnomalousShare   = 0.2
)

// datacenterSignalsOnce reads the evidence once: per datacenter, why it is
// unwell (none: healthy as far as traffic tells).
func datacenterSignalsOnce(ctx context.Context, q instantQuerier, threshold float64, now time.Time) (map[string]string, error) {
	ratio := `sum by (datacenter) (rate(opspilot_gateway_requests_total{code=~"5..",datacenter!=""}[30s]))
  / sum by (datacenter) (rate(opspilot_gateway_requests_total{datacenter!=""}[30s]))`
	over, err := q.Query(ctx, fmt.Sprintf("%s > %g", ratio, threshold), now)
	if err != nil {
		return nil, err
	}
	sig := map[string]string{}
	for _, s := range over {
		sig[s.Labels["datacenter"]] = fmt.Sprintf("%.1f%% of the requests its instances answered in the last 30s failed (over %.1f%%)", 100*s.Value, 100*threshold)
	}
	anomalous, err := q.Query(ctx, fmt.Sprintf(`max by (datacenter) (last_over_time(anomaly_score{for="datacenter_error_ratio"}[1m])) >= %g and on (datacenter) (%s > %g)`,
		anomalousErrorScore, ratio, threshold*minAnomalousShare), now)
	if err != nil {
		return nil, err
	}
	for _, s := range anomalous {
		if dc := s.Labels["datacenter"]; sig[dc] == "" {
			sig[dc] = fmt.Sprintf("the analyzer scores its error ratio anomalous (%.2f)", s.Value)
		}
	}
	return sig, nil
}
