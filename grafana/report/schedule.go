package report

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"opspilot/config"
)

// Config is the server's `reports:` section: when the reports are built,
// where they are kept and where they are posted.
type Config struct {
	// Dir keeps the built reports; empty means DATA_DIR/reports.
	Dir string `yaml:"dir"`
	// Keep is how many reports of each kind are kept (oldest removed).
	Keep       int           `yaml:"keep"`
	Capacity   CapacityJob   `yaml:"capacity"`
	Inspection InspectionJob `yaml:"inspection"`
	Slack      SlackConfig   `yaml:"slack"`
	// Timeout bounds one build and post.
	Timeout time.Duration `yaml:"timeout"`
}

// Schedule says when a job runs: daily or weekly at a UTC time, or off.
type Schedule struct {
	// Every is "daily", "weekly" or "off".
	Every string `yaml:"schedule"`
	// Weekday is the day of a weekly job ("monday"…).
	Weekday string `yaml:"weekday"`
	// At is the time of day, "HH:MM", UTC.
	At string `yaml:"time"`
}

// CapacityJob is the scheduled capacity report.
type CapacityJob struct {
	Schedule  `yaml:",inline"`
	Range     time.Duration `yaml:"range"`
	Horizon   time.Duration `yaml:"horizon"`
	Threshold float64       `yaml:"threshold"`
	// Format is html or pdf (pdf needs Chromium on the server).
	Format string `yaml:"format"`
	// Channel is the Slack channel; empty posts to the console.
	Channel string `yaml:"channel"`
}

// InspectionJob is the scheduled daily inspection.
type InspectionJob struct {
	Schedule      `yaml:",inline"`
	DiskThreshold float64       `yaml:"disk_threshold"`
	CertWarn      time.Duration `yaml:"cert_warn"`
	NoisyAlerts   int           `yaml:"noisy_alerts"`
	Channel       string        `yaml:"channel"`
}

// SlackConfig is how reports reach Slack: a bot token with files:write
// and chat:write.
type SlackConfig struct {
	// TokenFile holds the bot token (xoxb-…); empty means the chat-bot's
	// ($SLACK_BOT_TOKEN) as the server passes it.
	TokenFile string `yaml:"token_file"`
	// APIURL overrides Slack's API (tests, proxies).
	APIURL string `yaml:"api_url"`
}

// DefaultConfig: the capacity report every Monday 08:00 UTC over 30 days,
// the inspection every day 07:00 UTC, both to the console.
func DefaultConfig() Config {
	return Config{
		Keep:    60,
		Timeout: 10 * time.Minute,
		Capacity: CapacityJob{Schedule: Schedule{Every: "weekly", Weekday: "monday", At: "08:00"},
			Range: DefaultRange, Horizon: DefaultHorizon, Threshold: DefaultThreshold, Format: "html"},
		Inspection: InspectionJob{Schedule: Schedule{Every: "daily", At: "07:00"},
			DiskThreshold: 0.85, CertWarn: 30 * 24 * time.Hour, NoisyAlerts: 5},
	}
}

// Validate implements config.Validator.
func (c Config) Validate() []config.Problem {
	var ps []config.Problem
	if c.Keep < 1 {
		ps = append(ps, config.Problem{Field: "keep", Msg: fmt.Sprintf("%d: keep at least 1 report, e.g. 60", c.Keep)})
	}
	if c.Timeout < time.Second {
		ps = append(ps, config.Problem{Field: "timeout", Msg: fmt.Sprintf("%s is below 1s; use e.g. 10m", c.Timeout)})
	}
	ps = append(ps, config.Prefix("capacity", c.Capacity.Schedule.validate())...)
	ps = append(ps, config.Prefix("inspection", c.Inspection.Schedule.validate())...)
	if err := (CapacityOptions{Range: c.Capacity.Range, Horizon: c.Capacity.Horizon, Threshold: c.Capacity.Threshold}).Validate(); err != nil {
		ps = append(ps, config.Problem{Field: "capacity", Msg: err.Error()})
	}
	if c.Capacity.Format != "html" && c.Capacity.Format != "pdf" {
		ps = append(ps, config.Problem{Field: "capacity.format", Msg: fmt.Sprintf("unknown format %q; use html or pdf", c.Capacity.Format)})
	}
	if !(c.Inspection.DiskThreshold > 0 && c.Inspection.DiskThreshold < 1) {
		ps = append(ps, config.Problem{Field: "inspection.disk_threshold", Msg: fmt.Sprintf("%v: use a used fraction in (0,1), e.g. 0.85", c.Inspection.DiskThreshold)})
	}
	if c.Inspection.CertWarn <= 0 {
		ps = append(ps, config.Problem{Field: "inspection.cert_warn", Msg: "must be positive, e.g. 720h (30 days)"})
	}
	if c.Inspection.NoisyAlerts < 1 {
		ps = append(ps, config.Problem{Field: "inspection.noisy_alerts", Msg: "must be at least 1, e.g. 5"})
	}
	return ps
}

func (s Schedule) validate() []config.Problem {
	var ps []config.Problem
	switch s.Every {
	case "off", "daily":
	case "weekly":
		if _, err := ParseWeekday(s.Weekday); err != nil {
			ps = append(ps, config.Problem{Field: "weekday", Msg: err.Error()})
		}
	default:
		ps = append(ps, config.Problem{Field: "schedule", Msg: fmt.Sprintf("unknown schedule %q; use daily, weekly or off", s.Every)})
	}
	if s.Every != "off" {
		if _, err := ParseTimeOfDay(s.At); err != nil {
			ps = append(ps, config.Problem{Field: "time", Msg: err.Error()})
		}
	}
	return ps
}

// ParseWeekday reads "monday" (any case, or its first three letters).
func ParseWeekday(s string) (time.Weekday, error) {
	l := strings.ToLower(strings.TrimSpace(s))
	for d := time.Sunday; d <= time.Saturday; d++ {
		name := strings.ToLower(d.String())
		if l == name || (len(l) == 3 && l == name[:3]) {
			return d, nil
		}
	}
	return 0, fmt.Errorf("unknown weekday %q; use monday … sunday", s)
}

// ParseTimeOfDay reads "HH:MM" (24-hour, UTC) as the time since midnight.
func ParseTimeOfDay(s string) (time.Duration, error) {
	h, m, ok := strings.Cut(strings.TrimSpace(s), ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || len(h) > 2 || len(m) != 2 || hh < 0 || hh > 23 || mm < 0 || mm > 59 || strings.HasPrefix(h, "+") {
		return 0, fmt.Errorf("time %q: use HH:MM in UTC, e.g. 08:00", s)
	}
	return time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute, nil
}

// Next is the first time after now the schedule fires; zero when off.
// It assumes a validated schedule.
func (s Schedule) Next(now time.Time) time.Time {
	if s.Every == "off" {
		return time.Time{}
	}
	at, err := ParseTimeOfDay(s.At)
	if err != nil {
		return time.Time{}
	}
	now = now.UTC()
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	for i := 0; i <= 8; i++ {
		t := day.AddDate(0, 0, i).Add(at)
		if !t.After(now) {
			continue
		}
		if s.Every == "weekly" {
			wd, _ := ParseWeekday(s.Weekday)
			if t.Weekday() != wd {
				continue
			}
		}
		return t
	}
	return time.Time{}
}

// Built is one built report, ready to keep and post.
type Built struct {
	// Kind is "capacity" or "inspection"; Name the file name.
	Kind, Name string
	Body       []byte
	// Summary is the plain-text version for the chat message.
	Summary string
	Channel string
}

// Poster posts a built report to chat. path is where it is kept.
type Poster interface {
	Post(ctx context.Context, b Built, path string) error
}

// Job builds one report.
type Job struct {
	Kind     string
	Schedule Schedule
	Build    func(ctx context.Context, now time.Time) (Built, error)
}

// Scheduler runs jobs on their schedules: build, keep under Dir, post.
type Scheduler struct {
	Dir     string
	Keep    int
	Timeout time.Duration
	Jobs    []Job
	Poster  Poster
	Log     *slog.Logger
}

// Run fires every job at its next time until ctx ends. A failed build or
// post is logged and retried at the next time, not at once: a report is
// not worth hammering a broken TSDB or chat for.
func (s *Scheduler) Run(ctx context.Context) error {
	log := cmp.Or(s.Log, slog.Default())
	for {
		now := time.Now()
		var next time.Time
		var due []Job
		for _, j := range s.Jobs {
			t := j.Schedule.Next(now)
			switch {
			case t.IsZero():
			case next.IsZero() || t.Before(next):
				next, due = t, []Job{j}
			case t.Equal(next):
				due = append(due, j)
			}
		}
		if next.IsZero() {
			<-ctx.Done()
			return nil
		}
		timer := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C:
		}
		for _, j := range due {
			if _, err := s.RunJob(ctx, j, next); err != nil {
				log.Error("report failed; trying again at its next time", "report", j.Kind, "err", err)
			}
		}
	}
}

// RunJob builds one report now, keeps it and posts it; it returns where
// the report was kept.
func (s *Scheduler) RunJob(ctx context.Context, j Job, now time.Time) (string, error) {
	if s.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.Timeout)
		defer cancel()
	}
	b, err := j.Build(ctx, now)
	if err != nil {
		return "", fmt.Errorf("%s report: %w", j.Kind, err)
	}
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return "", fmt.Errorf("%s report: %w", j.Kind, err)
	}
	path := filepath.Join(s.Dir, b.Name)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b.Body, 0o644); err != nil {
		return "", fmt.Errorf("%s report: keep it: %w", j.Kind, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("%s report: keep it: %w", j.Kind, err)
	}
	s.prune(j.Kind)
	if s.Poster != nil {
		if err := s.Poster.Post(ctx, b, path); err != nil {
			return path, fmt.Errorf("%s report kept at %s, but posting it failed: %w", j.Kind, path, err)
		}
	}
	return path, nil
}

// prune removes the oldest reports of a kind beyond Keep. Names start
// with the kind and a sortable timestamp.
func (s *Scheduler) prune(kind string) {
	if s.Keep <= 0 {
		return
	}
	ents, err := os.ReadDir(s.Dir)
	if err != nil {
		return
	}
	var names []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), kind+"-") && !strings.HasSuffix(e.Name(), ".tmp") {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	for len(names) > s.Keep {
		_ = os.Remove(filepath.Join(s.Dir, names[0]))
		names = names[1:]
	}
}

// FileName is a report's file name: kind, UTC timestamp, extension.
func FileName(kind string, t time.Time, ext string) string {
	return fmt.Sprintf("%s-%s.%s", kind, t.UTC().Format("20060102T150405Z"), ext)
}
