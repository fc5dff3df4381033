package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	promodel "github.com/prometheus/common/model"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"opspilot/grafana/backfill"
	"opspilot/tsdb"
)

func newBackfillCmd() *cobra.Command {
	var (
		f     clientFlags
		days  int
		seed  uint64
		step  time.Duration
		quiet bool
	)
	cmd := &cobra.Command{
		Use:   "backfill",
		Short: "Write a seeded history (default 30 days) of a demo fleet into the TSDB",
		Long: `backfill writes a month (--days) of realistic history, ending now, into a
running opspilot's TSDB so that dashboards and reports have something to show
on a fresh machine: two datacenters (dc-a, dc-b) of three nodes, the services
billing, checkout and catalog with daily and weekly waves and steady growth,
the autoscaler following them, and a few incidents (traffic surges with error
bursts, anomaly scores and alerts; the newest ends 1–3 hours ago).

The series have the names and labels the running system writes, plus
backfill="demo". Samples are 5 minutes apart (--step), every minute over the
last 3 days and every 15 s over the last 6 hours. The same --seed gives the
same history. Samples older than the TSDB's retention (tsdb.embedded.retention,
30 days by default) are dropped by the store. To remove the history:

  curl -X POST -H "Authorization: Bearer $TOKEN" --data-urlencode 'match[]={backfill="demo"}' \
    SERVER/prometheus/api/v1/admin/tsdb/delete_series`,
		Example: `  opspilot demo backfill
  opspilot demo backfill --days 7 --seed 42
  OPSPILOT_TOKEN=... opspilot demo backfill --server https://opspilot.internal:9440 --ca-file ca.crt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			cfg := backfill.DefaultConfig()
			cfg.Days, cfg.Seed, cfg.Step = days, seed, step
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("demo backfill: %w", err)
			}
			ccfg := tsdb.DefaultClientConfig()
			ccfg.Timeout = c.flags.timeout
			ccfg.MaxSamplesPerRequest = 50000
			opts := tsdb.ClientOptions{BearerToken: c.flags.token}
			if c.flags.caFile != "" {
				opts.Remote = &tsdb.RemoteConfig{TLS: tsdb.TLSConfig{CAFile: c.flags.caFile}}
			}
			client, err := tsdb.NewClient(tsdb.LocalEndpoints(c.flags.server), ccfg, opts)
			if err != nil {
				return err
			}
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			var bar *progressbar.ProgressBar
			var progress func(backfill.Progress)
			if !quiet && isTerminal(cmd.ErrOrStderr()) {
				bar = progressbar.NewOptions(len(cfg.Times()), progressbar.OptionSetWriter(cmd.ErrOrStderr()),
					progressbar.OptionSetDescription(fmt.Sprintf("backfill %d days", days)), progressbar.OptionSetWidth(30),
					progressbar.OptionShowCount(), progressbar.OptionShowElapsedTimeOnFinish(), progressbar.OptionClearOnFinish())
				progress = func(p backfill.Progress) {
					_ = bar.Set(p.Steps)
					bar.Describe(fmt.Sprintf("backfill %d days: %.1fM samples", days, float64(p.Samples)/1e6))
				}
			}
			st, err := backfill.Run(ctx, cfg, client, progress)
			if bar != nil {
				_ = bar.Finish()
			}
			if err != nil {
				return errorHint(err, c.flags.server)
			}
			// Queries cached before the backfill must not hide it.
			if err := resetQueryCache(ctx, c); err != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: could not reset the query cache (%v); graphs of older ranges may miss the history for a few minutes\n", err)
			}
			searchable := waitSearchable(ctx, client, st.End, 30*time.Second)
			printBackfill(cmd.OutOrStdout(), st, searchable)
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().IntVar(&days, "days", 30, "days of history, ending now")
	cmd.Flags().Uint64Var(&seed, "seed", 1, "the same seed gives the same history (noise and incidents)")
	cmd.Flags().DurationVar(&step, "step", 5*time.Minute, "time between samples older than 3 days")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	return cmd
}

// resetQueryCache drops VictoriaMetrics' cached range-query results, which
// would otherwise keep answering older ranges without the new samples.
func resetQueryCache(ctx context.Context, c *apiClient) error {
	ctx, cancel := context.WithTimeout(ctx, c.flags.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.flags.server+"/prometheus/internal/resetRollupResultCache", nil)
	if err != nil {
		return err
	}
	if c.flags.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.flags.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s from %s", resp.Status, req.URL.Path)
	}
	return nil
}

// waitSearchable polls until the newest backfilled samples answer queries
// (VictoriaMetrics shows new series after up to ~10 s) or limit passes.
func waitSearchable(ctx context.Context, client *tsdb.Client, end time.Time, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for {
		res, err := client.Query(ctx, `count(last_over_time(up{`+backfill.Label+`="demo"}[1m]))`, end)
		if v, ok := res.Value.(promodel.Vector); err == nil && ok && len(v) > 0 {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func printBackfill(w io.Writer, st backfill.Stats, searchable bool) {
	rate := float64(st.Samples) / st.Took.Seconds()
	fmt.Fprintf(w, "wrote %d samples of %d series (%s → %s) in %s, %.0f samples/s\n",
		st.Samples, st.Series, st.Start.Format(time.DateTime), st.End.Format(time.DateTime), st.Took.Round(100*time.Millisecond), rate)
	fmt.Fprintf(w, "incidents (%d):\n", len(st.Incidents))
	for _, in := range st.Incidents {
		fmt.Fprintf(w, "  %s  %-8s %s, traffic ×%.1f, %.0f%% errors\n", in.Start.Format("2006-01-02 15:04"), in.Service, in.Duration, in.Surge, in.ErrorRatio*100)
	}
	if !searchable {
		fmt.Fprintln(w, "the newest samples are not searchable yet; they will be within seconds")
	}
	fmt.Fprintln(w, "see it: opspilot grafana export ./grafana (dashboards), or opspilot query --range 30d 'sum(rate(opspilot_gateway_requests_total[1h]))'")
}
