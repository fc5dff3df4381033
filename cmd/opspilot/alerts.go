package main

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"opspilot/alerting"
)

func newAlertsCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "alerts",
		Short: "The alerts the server holds: firing, suppressed (silenced or inhibited) and recently resolved",
		Long: `alerts lists what the alerting pipeline holds, newest first, with the
receivers each is routed to and who acknowledged it. Its subcommands
acknowledge an alert and show an alert's events (fired, notified,
acknowledged, silenced, resolved).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			var out []alerting.HeldAlert
			if err := c.do(cmd.Context(), "GET", "/api/v1/alerts", nil, &out); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "FINGERPRINT\tALERT\tSTATE\tSEVERITY\tLABELS\tSINCE\tRECEIVERS\tACK\tSUMMARY")
			for _, a := range out {
				ack := "-"
				if a.Ack != nil {
					ack = a.Ack.By
				}
				labels := map[string]string{}
				for k, v := range a.Labels {
					if k != "alertname" && k != "severity" {
						labels[k] = v
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.Fingerprint, a.Name, a.State, orDash(a.Labels["severity"]),
					compactLabels(labels), age(a.StartsAt), strings.Join(a.Receivers, ","), ack, a.Annotations["summary"])
			}
			return tw.Flush()
		},
	}
	f.register(cmd)
	cmd.AddCommand(newAlertsAckCmd(), newAlertsEventsCmd())
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func compactLabels(ls map[string]string) string {
	var parts []string
	for k, v := range ls {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func newAlertsAckCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:     "ack FINGERPRINT",
		Short:   "Acknowledge an alert: you are handling it (recorded with your token's name)",
		Example: `  opspilot alerts ack 5f1c0b7e9a3d2c11 --reason "looking at the billing database"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			var out map[string]string
			if err := c.do(cmd.Context(), "POST", "/api/v1/alerts/"+url.PathEscape(args[0])+"/ack", nil, &out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "alert %s acknowledged by %s\n", args[0], out["by"])
			return nil
		},
	}
	f.register(cmd)
	f.registerReason(cmd)
	return cmd
}

func newAlertsEventsCmd() *cobra.Command {
	var (
		f                      clientFlags
		fingerprint, alertname string
		limit                  int
	)
	cmd := &cobra.Command{
		Use:   "events",
		Short: "An alert's life: fired, notified, acknowledged, silenced, resolved",
		Example: `  opspilot alerts events --alertname BillingErrorRatioHigh
  opspilot alerts events --fingerprint 5f1c0b7e9a3d2c11`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			q := url.Values{}
			if fingerprint != "" {
				q.Set("fingerprint", fingerprint)
			}
			if alertname != "" {
				q.Set("alertname", alertname)
			}
			q.Set("limit", fmt.Sprint(limit))
			var out []alerting.Event
			if err := c.do(cmd.Context(), "GET", "/api/v1/alerts/events?"+q.Encode(), nil, &out); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tEVENT\tALERT\tFINGERPRINT\tRECEIVER\tWHO\tMESSAGE")
			for _, e := range out {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.Local().Format("15:04:05.000"), e.Type, orDash(e.AlertName),
					orDash(e.Fingerprint), orDash(e.Receiver), orDash(e.Who), e.Message)
			}
			return tw.Flush()
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&fingerprint, "fingerprint", "", "only this alert's events")
	cmd.Flags().StringVar(&alertname, "alertname", "", "only events of alerts with this name")
	cmd.Flags().IntVar(&limit, "limit", 100, "at most this many, the newest")
	return cmd
}

func newSilenceCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "silence",
		Short: "Mute notifications for alerts matching label matchers, for a while",
		Long: `A silence mutes the notifications of every alert whose labels match all its
matchers (Alertmanager's syntax: name="value", name!="value", name=~"regex",
name!~"regex") until it ends. Silences survive a restart of the server;
each records who created it and why.`,
	}
	cmd.AddCommand(newSilenceAddCmd(), newSilenceListCmd(), newSilenceExpireCmd())
	return cmd
}

func newSilenceAddCmd() *cobra.Command {
	var (
		f        clientFlags
		duration time.Duration
		comment  string
	)
	cmd := &cobra.Command{
		Use:   "add MATCHER...",
		Short: "Create a silence; prints its id",
		Example: `  opspilot silence add alertname=BillingErrorRatioHigh service=billing --duration 1h --comment "fix deploying"
  opspilot silence add 'severity=~"warning|info"' --duration 30m --comment "maintenance window"`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if comment == "" {
				comment = f.reason
			}
			if comment == "" {
				return fmt.Errorf("say why with --comment (it is recorded with the silence)")
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			body := map[string]any{"matchers": args, "duration": duration.String(), "comment": comment}
			var out map[string]string
			if err := c.do(cmd.Context(), "POST", "/api/v1/silences", body, &out); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), out["id"])
			return nil
		},
	}
	f.register(cmd)
	f.registerReason(cmd)
	cmd.Flags().DurationVar(&duration, "duration", time.Hour, "how long the silence lasts")
	cmd.Flags().StringVar(&comment, "comment", "", "why (required; --reason works too)")
	return cmd
}

func newSilenceListCmd() *cobra.Command {
	var (
		f   clientFlags
		all bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Active and pending silences (--all: expired ones too)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			var out []alerting.Silence
			if err := c.do(cmd.Context(), "GET", "/api/v1/silences", nil, &out); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATE\tMATCHERS\tENDS\tCREATED BY\tCOMMENT")
			for _, s := range out {
				if s.State == "expired" && !all {
					continue
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.State, strings.Join(s.Matchers, ","),
					s.EndsAt.Local().Format("2006-01-02 15:04:05"), s.CreatedBy, s.Comment)
			}
			return tw.Flush()
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&all, "all", false, "include expired silences")
	return cmd
}

func newSilenceExpireCmd() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "expire ID...",
		Short: "End silences now",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			for _, id := range args {
				if err := c.do(cmd.Context(), "DELETE", "/api/v1/silences/"+url.PathEscape(id), nil, nil); err != nil {
					return fmt.Errorf("silence %s: %w", id, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "silence %s expired\n", id)
			}
			return nil
		},
	}
	f.register(cmd)
	f.registerReason(cmd)
	return cmd
}
