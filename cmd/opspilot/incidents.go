package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/natefinch/lumberjack.v2"

	"opspilot/analyzer/online"
	"opspilot/orchestrator/store"
	"opspilot/runbooks"
)

// kindIncident holds incidents in the control-plane store.
const kindIncident = "incidents"

// incidentStore keeps incidents in etcd. Only this control plane writes
// them, so a write replaces the object unconditionally.
type incidentStore struct{ st *store.Store }

func (s incidentStore) SaveIncident(ctx context.Context, inc *runbooks.Incident) error {
	data, err := json.Marshal(inc)
	if err != nil {
		return err
	}
	_, err = s.st.Client().Put(ctx, s.st.Key(kindIncident, inc.ID), string(data))
	return err
}

func (s incidentStore) LoadIncidents(ctx context.Context) ([]*runbooks.Incident, error) {
	vs, err := listValues[runbooks.Incident](ctx, s.st, kindIncident)
	if err != nil {
		return nil, err
	}
	out := make([]*runbooks.Incident, len(vs))
	for i := range vs {
		out[i] = &vs[i]
	}
	return out, nil
}

// newIncidents builds the incident service on the orchestrator's store;
// resolved incidents' summaries are printed on the console. Every change
// is also a JSON line in journal (DATA_DIR/runbooks/incidents.jsonl, rotated
// by lumberjack), which the node agent ships to the log store
// (Elasticsearch's bulk API; VictoriaLogs by default).
func newIncidents(ctx context.Context, orch *orchestrator, alerts *alertingStack, anomalies *online.Service, console io.Writer, journal string, log *slog.Logger) (*runbooks.IncidentService, error) {
	j := &lumberjack.Logger{Filename: journal, MaxSize: 64, MaxBackups: 2}
	var hints func(context.Context, *runbooks.Incident) []string
	if anomalies != nil {
		hints = func(ctx context.Context, inc *runbooks.Incident) []string { return analyzerHints(ctx, anomalies, inc) }
	}
	return runbooks.NewIncidentService(ctx, runbooks.IncidentOptions{Store: incidentStore{orch.st}, Log: log, Hints: hints,
		Closed: func(ctx context.Context, s runbooks.Summary) {
			fmt.Fprint(console, s.Text())
			// And in the thread of the incident's Slack alert message.
			if s.GroupKey != "" {
				if _, err := alerts.pipeline.PostInThread(ctx, s.GroupKey, "```"+s.Text()+"```"); err != nil {
					log.Warn("incident summary not posted in Slack", "id", s.ID, "err", err)
				}
			}
		},
		Changed: func(inc *runbooks.Incident) {
			line, err := json.Marshal(struct {
				*runbooks.Incident
				Msg    string `json:"_msg"`
				Source string `json:"source"`
			}{inc, fmt.Sprintf("incident %s %s: %s", inc.ID, inc.State, inc.Title), "opspilot-incidents"})
			if err == nil {
				_, err = j.Write(append(line, '\n'))
			}
			if err != nil {
				log.Warn("incident journal write failed (the incident is in the store)", "id", inc.ID, "err", err)
			}
		}})
}

// analyzerHints are the likely origins the analyzer ranked for the
// anomalies that fired around an incident (from 10 minutes before it
// started to its end), best first.
func analyzerHints(ctx context.Context, a *online.Service, inc *runbooks.Incident) []string {
	from := inc.Started.Add(-10 * time.Minute)
	to := inc.Resolved
	if to.IsZero() {
		to = time.Now()
	}
	groups, err := a.Incidents(ctx, from)
	if err != nil {
		return nil
	}
	var out []string
	for _, g := range groups {
		if g.End.Before(from) || g.Start.After(to) {
			continue
		}
		for _, h := range g.Hints {
			line := fmt.Sprintf("%s %s (score %.2f)", h.Kind, h.Name, h.Score)
			if len(h.Evidence) > 0 {
				line += ": " + h.Evidence[0]
			}
			out = append(out, line)
			if len(out) == 3 {
				return out
			}
		}
	}
	return out
}

func newIncidentCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "incident",
		Short: "Incidents: what alert groups became, their timelines and summaries",
		Long: `An alert opens an incident (alerts of the same name and service join it);
acknowledging, runbook steps and silences go on its timeline; it resolves
when its alerts clear, with a summary: time to notify, acknowledge,
mitigate and resolve, and the actions taken.`,
	}
	cmd.AddCommand(newIncidentListCmd(), newIncidentShowCmd())
	return cmd
}

func newIncidentListCmd() *cobra.Command {
	var (
		f      clientFlags
		active bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Incidents, newest first (--active: not resolved)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			path := "/api/v1/incidents"
			if active {
				path += "?state=active"
			}
			var out []runbooks.Incident
			if err := c.do(cmd.Context(), "GET", path, nil, &out); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATE\tSEVERITY\tSERVICES\tSTARTED\tTITLE")
			for _, inc := range out {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", inc.ID, inc.State, orDash(inc.Severity), orDash(strings.Join(inc.Services, ",")), age(inc.Started), inc.Title)
			}
			return tw.Flush()
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&active, "active", false, "only incidents not yet resolved")
	return cmd
}

func newIncidentShowCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "An incident's timeline and summary",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			var v runbooks.IncidentView
			if err := c.do(cmd.Context(), "GET", "/api/v1/incidents/"+url.PathEscape(args[0]), nil, &v); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprint(w, v.SummaryText)
			fmt.Fprintln(w, "timeline:")
			for _, e := range v.Timeline {
				fmt.Fprintf(w, "  %s  %-12s %-24s %s\n", e.Time.Local().Format("15:04:05.000"), e.Type, orDash(e.Who), e.Message)
			}
			return nil
		},
	}
	f.register(cmd)
	return cmd
}
