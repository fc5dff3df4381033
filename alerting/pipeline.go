package alerting

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	amalert "github.com/prometheus/alertmanager/alert"
	amconfig "github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/config/receiver"
	"github.com/prometheus/alertmanager/dispatch"
	"github.com/prometheus/alertmanager/eventrecorder"
	"github.com/prometheus/alertmanager/featurecontrol"
	"github.com/prometheus/alertmanager/inhibit"
	"github.com/prometheus/alertmanager/labelset"
	"github.com/prometheus/alertmanager/matcher/compat"
	"github.com/prometheus/alertmanager/nflog"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/alertmanager/provider/mem"
	"github.com/prometheus/alertmanager/silence"
	pb "github.com/prometheus/alertmanager/silence/silencepb"
	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/alertmanager/timeinterval"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/types/known/timestamppb"

	"opspilot/config"
)

// DefaultAlertmanagerConfig routes every alert to the console, grouped by
// alert name and service. Its timers are opspilot's, not Alertmanager's:
// the first notification of a group goes out 500 ms after its first alert
// (Alertmanager: 30 s), changes to a group after 5 s (5 min), repeats
// after 4 h. A critical alert mutes warnings of the same alert name and
// service.
const DefaultAlertmanagerConfig = `route:
  receiver: console
  group_by: [alertname, service]
  group_wait: 500ms
  group_interval: 5s
  repeat_interval: 4h
receivers:
  - name: console
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: [alertname, service]
`

// PipelineConfig configures the notification pipeline: Alertmanager's
// routing, grouping, inhibition, silences and deduplication, and
// opspilot's own receivers attached to Alertmanager receivers by name.
type PipelineConfig struct {
	// AlertmanagerConfigFile is a file in Alertmanager's configuration
	// format (route, receivers with webhook_configs and the rest,
	// inhibit_rules, time_intervals, templates). Empty: the built-in
	// DefaultAlertmanagerConfig.
	AlertmanagerConfigFile string `yaml:"alertmanager_config_file"`
	// Dir holds the notification log, silences, active alerts and events,
	// so a restart neither notifies again nor forgets a silence. Empty:
	// <data_dir>/alerting.
	Dir string `yaml:"dir"`
	// Retention keeps notification log entries and expired silences.
	Retention time.Duration `yaml:"retention"`
	// SnapshotInterval is how often the notification log, silences and
	// active alerts are written to Dir (and at shutdown). A crash loses
	// at most this much deduplication state.
	SnapshotInterval time.Duration `yaml:"snapshot_interval"`
	// Console lists the Alertmanager receivers that also print to the
	// server's standard output.
	Console ConsoleConfig `yaml:"console"`
	// Slack lists Slack Block Kit receivers, each attached to an
	// Alertmanager receiver by name.
	Slack []SlackConfig `yaml:"slack"`
	// EventsMaxBytes rotates the events file (events.jsonl) at this size.
	EventsMaxBytes int64 `yaml:"events_max_bytes"`
}

// ConsoleConfig is the console receiver.
type ConsoleConfig struct {
	Receivers []string `yaml:"receivers"`
}

// DefaultPipelineConfig is the embedded default: console notifications.
func DefaultPipelineConfig() PipelineConfig {
	return PipelineConfig{Retention: 120 * time.Hour, SnapshotInterval: 5 * time.Second,
		Console: ConsoleConfig{Receivers: []string{"console"}}, EventsMaxBytes: 64 << 20}
}

// Validate checks the values; the Alertmanager file is checked when the
// pipeline loads it.
func (c PipelineConfig) Validate() []config.Problem {
	var ps []config.Problem
	if c.Retention < time.Minute {
		ps = append(ps, config.Problem{Field: "retention", Msg: "must be at least 1m (notification log and silences are kept this long; try 120h)"})
	}
	if c.SnapshotInterval <= 0 {
		ps = append(ps, config.Problem{Field: "snapshot_interval", Msg: "must be positive (try 5s)"})
	}
	if c.EventsMaxBytes < 1<<20 {
		ps = append(ps, config.Problem{Field: "events_max_bytes", Msg: "must be at least 1048576 (1 MiB)"})
	}
	for i, s := range c.Slack {
		ps = append(ps, config.Prefix(fmt.Sprintf("slack[%d]", i), s.Validate())...)
	}
	return ps
}

// PipelineOptions are the pipeline's collaborators.
type PipelineOptions struct {
	// Console receives console notifications (the server's stdout).
	Console io.Writer
	// Querier draws the graphs of chat messages.
	Querier RangeQuerier
	// Runbook starts the runbook an alert names; nil: RunRunbook says
	// runbooks are not configured.
	Runbook func(ctx context.Context, name string, a AlertRef, who string) (string, error)
	// ExternalURL is the server's URL, for links in notifications.
	ExternalURL string
	Registerer  prometheus.Registerer
	Log         *slog.Logger

	// notifiers adds integrations to receivers by name (tests).
	notifiers map[string][]notify.Notifier
}

// Pipeline is Alertmanager in-process: alerts go into its memory
// provider; its dispatcher groups them by the routing tree and sends
// each group through inhibition, silences, the notification log's
// deduplication and retries to the receivers' integrations.
type Pipeline struct {
	cfg      PipelineConfig
	opts     PipelineOptions
	log      *slog.Logger
	am       *amconfig.Config
	alerts   *mem.Alerts
	silences *silence.Silences
	silencer *silence.Silencer
	nflog    *nflog.Log
	inhibit  *inhibit.Inhibitor
	disp     *dispatch.Dispatcher
	route    *dispatch.Route
	events   *EventLog
	slack    []*SlackNotifier
	// interact are the Slack interaction handlers by receiver name.
	interact map[string]http.Handler
	started  time.Time

	mu   sync.Mutex
	acks map[model.Fingerprint]Ack

	stopOnce sync.Once
	stopc    chan struct{}
	wg       sync.WaitGroup
}

// Ack is who acknowledged an alert, and when.
type Ack struct {
	By string    `json:"by"`
	At time.Time `json:"at"`
}

// NewPipeline loads the Alertmanager configuration, the notification log,
// silences, active alerts and events from cfg.Dir and builds the routing
// tree and receivers. Run starts it.
func NewPipeline(cfg PipelineConfig, opts PipelineOptions) (*Pipeline, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.Console == nil {
		opts.Console = os.Stdout
	}
	if cfg.Dir == "" {
		return nil, errors.New("alerting: the pipeline needs a directory for its state (alerting.pipeline.dir)")
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("alerting: %w", err)
	}
	am, err := loadAlertmanagerConfig(cfg.AlertmanagerConfigFile)
	if err != nil {
		return nil, err
	}
	p := &Pipeline{cfg: cfg, opts: opts, log: opts.Log, am: am, acks: map[model.Fingerprint]Ack{},
		stopc: make(chan struct{}), started: time.Now()}
	if err := p.checkReceivers(); err != nil {
		return nil, err
	}
	reg, log := opts.Registerer, opts.Log
	p.events, err = OpenEventLog(filepath.Join(cfg.Dir, "events.jsonl"), cfg.EventsMaxBytes, 10000, reg)
	if err != nil {
		return nil, err
	}
	p.nflog, err = nflog.New(nflog.Options{SnapshotFile: filepath.Join(cfg.Dir, "nflog"), Retention: cfg.Retention,
		Logger: log.With("component", "nflog"), Metrics: reg})
	if err != nil {
		return nil, fmt.Errorf("alerting: notification log %s: %w (delete the file to start afresh)", filepath.Join(cfg.Dir, "nflog"), err)
	}
	var rec eventrecorder.Recorder
	p.silences, err = silence.New(silence.Options{SnapshotFile: filepath.Join(cfg.Dir, "silences"), Retention: cfg.Retention,
		Logger: log.With("component", "silences"), Metrics: reg, EventRecorder: rec})
	if err != nil {
		return nil, fmt.Errorf("alerting: silences %s: %w (delete the file to start afresh)", filepath.Join(cfg.Dir, "silences"), err)
	}
	p.silencer = silence.NewSilencer(p.silences, log, rec)
	ff := featurecontrol.NoopFlags{}
	p.alerts, err = mem.NewAlerts(context.Background(), 30*time.Minute, 0, p.silencer, log, rec, reg, ff)
	if err != nil {
		return nil, fmt.Errorf("alerting: %w", err)
	}
	if err := p.loadState(); err != nil {
		log.Warn("alerting: the saved alerts could not be read; starting without them", "err", err)
	}

	tmpl, err := template.FromGlobs(am.Templates)
	if err != nil {
		return nil, fmt.Errorf("alerting: templates of %s: %w", amName(cfg.AlertmanagerConfigFile), err)
	}
	if opts.ExternalURL == "" {
		opts.ExternalURL = "http://localhost:9400"
	}
	if tmpl.ExternalURL, err = url.Parse(opts.ExternalURL); err != nil {
		return nil, fmt.Errorf("alerting: external URL: %w", err)
	}
	receivers, err := p.buildReceivers(tmpl)
	if err != nil {
		return nil, err
	}
	intervals := map[string][]timeinterval.TimeInterval{}
	for _, ti := range am.MuteTimeIntervals {
		intervals[ti.Name] = ti.TimeIntervals
	}
	for _, ti := range am.TimeIntervals {
		intervals[ti.Name] = ti.TimeIntervals
	}
	intervener := timeinterval.NewIntervener(intervals)
	p.route = dispatch.NewRoute(am.Route, nil)
	p.inhibit = inhibit.NewInhibitor(p.alerts, am.InhibitRules, log, rec)
	stage := notify.NewPipelineBuilder(reg, ff, rec).New(receivers, func() time.Duration { return 0 },
		p.inhibit, p.silencer, intervener, p.nflog, nil)
	timeout := func(d time.Duration) time.Duration { return max(d, notify.MinTimeout) }
	p.disp = dispatch.NewDispatcher(p.alerts, p.route, stage, intervener, timeout, 30*time.Second, nil, log,
		rec, dispatch.NewDispatcherMetrics(false, reg, ff), tmpl)
	return p, nil
}

func amName(file string) string {
	if file == "" {
		return "the built-in Alertmanager configuration"
	}
	return file
}

func loadAlertmanagerConfig(file string) (*amconfig.Config, error) {
	if file == "" {
		c, err := amconfig.Load(DefaultAlertmanagerConfig)
		if err != nil {
			return nil, fmt.Errorf("alerting: built-in Alertmanager configuration: %w", err)
		}
		return c, nil
	}
	c, err := amconfig.LoadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (the file uses Alertmanager's configuration format: https://prometheus.io/docs/alerting/latest/configuration/)", file, err)
	}
	return c, nil
}

// checkReceivers makes sure every opspilot receiver names an Alertmanager
// receiver, so a typo does not silently drop notifications.
func (p *Pipeline) checkReceivers() error {
	names := map[string]bool{}
	for _, r := range p.am.Receivers {
		names[r.Name] = true
	}
	var known []string
	for n := range names {
		known = append(known, n)
	}
	sort.Strings(known)
	for i, s := range p.cfg.Slack {
		if !names[s.Receiver] {
			return fmt.Errorf("alerting.pipeline.slack[%d].receiver: %q is not a receiver of %s (receivers: %s); add it there or fix the name",
				i, s.Receiver, amName(p.cfg.AlertmanagerConfigFile), strings.Join(known, ", "))
		}
	}
	return nil
}

func (p *Pipeline) buildReceivers(tmpl *template.Template) (map[string][]notify.Integration, error) {
	console := map[string]bool{}
	for _, n := range p.cfg.Console.Receivers {
		console[n] = true
	}
	out := map[string][]notify.Integration{}
	for _, rcv := range p.am.Receivers {
		ints, err := receiver.BuildReceiverIntegrations(rcv, tmpl, p.log)
		if err != nil {
			return nil, fmt.Errorf("alerting: receiver %q of %s: %w", rcv.Name, amName(p.cfg.AlertmanagerConfigFile), err)
		}
		// Alertmanager's own integrations (webhook, email, …) record
		// their notifications too.
		for i := range ints {
			in := ints[i]
			ints[i] = notify.NewIntegration(p.recording(&in, in.Name()), &in, in.Name(), in.Index(), rcv.Name)
		}
		idx := len(ints)
		if console[rcv.Name] {
			ints = append(ints, notify.NewIntegration(p.recording(&consoleNotifier{w: p.opts.Console}, "console"), sendResolved(true), "console", idx, rcv.Name))
			idx++
		}
		for _, sc := range p.cfg.Slack {
			if sc.Receiver != rcv.Name {
				continue
			}
			sn, err := NewSlackNotifier(sc, SlackOptions{Querier: p.opts.Querier, Registerer: p.opts.Registerer,
				Log: p.log.With("component", "slack", "receiver", rcv.Name)})
			if err != nil {
				return nil, fmt.Errorf("alerting: slack receiver %q: %w", rcv.Name, err)
			}
			p.slack = append(p.slack, sn)
			if secret, err := sc.LoadSigningSecret(); err != nil {
				return nil, fmt.Errorf("alerting: slack receiver %q: %w", rcv.Name, err)
			} else if secret != "" {
				if p.interact == nil {
					p.interact = map[string]http.Handler{}
				}
				p.interact[rcv.Name] = &SlackInteractionHandler{Secret: secret, Actions: p,
					Log: p.log.With("component", "slack-interactions", "receiver", rcv.Name), Replies: sn.Client()}
			}
			ints = append(ints, notify.NewIntegration(p.recording(sn, "slack"), sendResolved(true), "slack", idx, rcv.Name))
			idx++
		}
		for _, n := range p.opts.notifiers[rcv.Name] {
			ints = append(ints, notify.NewIntegration(p.recording(n, "test"), sendResolved(true), "test", idx, rcv.Name))
			idx++
		}
		out[rcv.Name] = ints
	}
	return out, nil
}

type sendResolved bool

func (s sendResolved) SendResolved() bool { return bool(s) }

// recordingNotifier records a notified (or notify-failed) event for each
// alert a notification carried.
type recordingNotifier struct {
	next notify.Notifier
	name string
	p    *Pipeline
}

func (p *Pipeline) recording(n notify.Notifier, name string) notify.Notifier {
	return &recordingNotifier{next: n, name: name, p: p}
}

func (r *recordingNotifier) Notify(ctx context.Context, alerts ...*amalert.Alert) notify.NotifyVerdict {
	v := r.next.Notify(ctx, alerts...)
	gk, _ := notify.GroupKey(ctx)
	rcv, _ := notify.ReceiverName(ctx)
	typ, msg := EventNotified, r.name
	if err := v.Err(); err != nil {
		typ, msg = EventNotifyFailed, r.name+": "+err.Error()
	}
	now := time.Now()
	for _, a := range alerts {
		state := "firing"
		if a.Resolved() {
			state = "resolved"
		}
		m := msg
		if typ == EventNotified {
			m = r.name + ": " + state
		}
		r.p.events.Record(ctx, Event{Time: now, Type: typ, Fingerprint: a.Fingerprint().String(), AlertName: a.Name(),
			Labels: labelMap(a.Labels), GroupKey: gk, Receiver: rcv, Who: "alertmanager", Message: m})
	}
	return v
}

func labelMap(ls model.LabelSet) map[string]string {
	out := make(map[string]string, len(ls))
	for k, v := range ls {
		out[string(k)] = string(v)
	}
	return out
}

// PostInThread replies in the Slack thread of an alert group's message,
// for each Slack receiver that posted one; it returns how many did.
func (p *Pipeline) PostInThread(ctx context.Context, groupKey, text string) (int, error) {
	return p.eachSlackThread(func(sn *SlackNotifier) (bool, error) { return sn.PostInThread(ctx, groupKey, text) })
}

// PostGraphInThread uploads a graph of expr to the Slack thread of an
// alert group's message, for each Slack receiver that posted one.
func (p *Pipeline) PostGraphInThread(ctx context.Context, groupKey, title, expr string) (int, error) {
	return p.eachSlackThread(func(sn *SlackNotifier) (bool, error) { return sn.PostGraphInThread(ctx, groupKey, title, expr) })
}

// eachSlackThread calls post for every Slack receiver and counts those
// that had the thread and posted in it.
func (p *Pipeline) eachSlackThread(post func(*SlackNotifier) (bool, error)) (int, error) {
	var n int
	var errs []error
	for _, sn := range p.slack {
		ok, err := post(sn)
		if ok && err == nil {
			n++
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return n, errors.Join(errs...)
}

// Events is the pipeline's event log (the evaluator records fired and
// resolved there too).
func (p *Pipeline) Events() *EventLog { return p.events }

// Run starts the inhibitor, the dispatcher and the snapshot maintenance,
// and stops them when ctx ends, writing a last snapshot.
func (p *Pipeline) Run(ctx context.Context) error {
	p.wg.Add(3)
	go func() {
		defer p.wg.Done()
		p.nflog.Maintenance(p.cfg.SnapshotInterval, filepath.Join(p.cfg.Dir, "nflog"), p.stopc, nil)
	}()
	go func() {
		defer p.wg.Done()
		p.silences.Maintenance(p.cfg.SnapshotInterval, filepath.Join(p.cfg.Dir, "silences"), p.stopc, nil)
	}()
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(p.cfg.SnapshotInterval)
		defer t.Stop()
		for {
			select {
			case <-p.stopc:
				return
			case <-t.C:
				if err := p.saveState(); err != nil {
					p.log.Warn("alerting: saving active alerts failed", "err", err)
				}
			}
		}
	}()
	go p.inhibit.Run()
	p.inhibit.WaitForLoading()
	go p.disp.Run(time.Now())
	p.disp.WaitForLoading()
	<-ctx.Done()
	p.Stop()
	return nil
}

// Stop stops the dispatcher and writes the state. Safe to call twice.
func (p *Pipeline) Stop() {
	p.stopOnce.Do(func() {
		p.disp.Stop()
		p.inhibit.Stop()
		close(p.stopc)
		p.wg.Wait()
		if err := p.saveState(); err != nil {
			p.log.Warn("alerting: saving active alerts failed", "err", err)
		}
		p.alerts.Close()
		_ = p.events.Close()
	})
}

// PutAlerts hands alerts (from the rule evaluator or the API) to the
// dispatcher.
func (p *Pipeline) PutAlerts(ctx context.Context, alerts ...*amalert.Alert) error {
	return p.alerts.Put(ctx, alerts...)
}

// HeldAlert is an active alert as the API and CLI show it.
type HeldAlert struct {
	Fingerprint  string            `json:"fingerprint"`
	Name         string            `json:"alertname"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	State        string            `json:"state"` // firing, resolved, suppressed
	StartsAt     time.Time         `json:"starts_at"`
	EndsAt       time.Time         `json:"ends_at,omitempty"`
	GeneratorURL string            `json:"generator_url,omitempty"`
	SilencedBy   []string          `json:"silenced_by,omitempty"`
	InhibitedBy  bool              `json:"inhibited,omitempty"`
	Receivers    []string          `json:"receivers"`
	Ack          *Ack              `json:"acknowledged,omitempty"`
}

// Alerts lists the alerts the pipeline holds, newest first.
func (p *Pipeline) Alerts(ctx context.Context) []HeldAlert {
	it := p.alerts.GetPending()
	defer it.Close()
	var out []HeldAlert
	now := time.Now()
	for pa := range it.Next() {
		out = append(out, p.status(ctx, pa.Data, now))
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].StartsAt.Equal(out[j].StartsAt) {
			return out[i].StartsAt.After(out[j].StartsAt)
		}
		return out[i].Fingerprint < out[j].Fingerprint
	})
	return out
}

func (p *Pipeline) status(ctx context.Context, a *amalert.Alert, now time.Time) HeldAlert {
	s := HeldAlert{Fingerprint: a.Fingerprint().String(), Name: a.Name(), Labels: labelMap(a.Labels),
		Annotations: labelMap(a.Annotations), StartsAt: a.StartsAt, GeneratorURL: a.GeneratorURL, State: "firing"}
	if a.ResolvedAt(now) {
		s.State, s.EndsAt = "resolved", a.EndsAt
	}
	sils, _, _ := p.silences.Query(ctx, silence.QState(silence.SilenceStateActive), silence.QMatches(a.Labels))
	for _, sil := range sils {
		s.SilencedBy = append(s.SilencedBy, sil.Id)
	}
	s.InhibitedBy = p.inhibit.Mutes(ctx, labelset.New(a.Labels, a.Fingerprint()))
	if s.State == "firing" && (len(s.SilencedBy) > 0 || s.InhibitedBy) {
		s.State = "suppressed"
	}
	for _, r := range p.route.Match(a.Labels) {
		s.Receivers = append(s.Receivers, r.RouteOpts.Receiver)
	}
	p.mu.Lock()
	if ack, ok := p.acks[a.Fingerprint()]; ok {
		s.Ack = &ack
	}
	p.mu.Unlock()
	return s
}

// ErrUnknownAlert is returned for a fingerprint the pipeline does not hold.
var ErrUnknownAlert = errors.New("no such alert (it may have resolved and been forgotten; list them with opspilot alerts)")

func (p *Pipeline) find(ref AlertRef) (*amalert.Alert, error) {
	fp, err := model.ParseFingerprint(ref.Fingerprint)
	if err != nil {
		return nil, fmt.Errorf("alert %q: %w", ref.Fingerprint, ErrUnknownAlert)
	}
	a, err := p.alerts.Get(fp)
	if err != nil {
		return nil, fmt.Errorf("alert %s: %w", ref.Fingerprint, ErrUnknownAlert)
	}
	return a, nil
}

// Acknowledge implements Actions.
func (p *Pipeline) Acknowledge(ctx context.Context, ref AlertRef, who string) error {
	a, err := p.find(ref)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.acks[a.Fingerprint()] = Ack{By: who, At: time.Now()}
	p.mu.Unlock()
	p.events.Record(ctx, Event{Type: EventAcknowledged, Fingerprint: a.Fingerprint().String(), AlertName: a.Name(),
		Labels: labelMap(a.Labels), GroupKey: ref.GroupKey, Who: who, Message: "acknowledged by " + who})
	return nil
}

// SilenceFor implements Actions: it silences the alert's name together
// with the group's labels (or, without them, the alert's service) for d.
func (p *Pipeline) SilenceFor(ctx context.Context, ref AlertRef, d time.Duration, who, why string) (string, error) {
	a, err := p.find(ref)
	if err != nil {
		return "", err
	}
	ls := map[string]string{"alertname": a.Name()}
	for k, v := range ref.Labels {
		ls[k] = v
	}
	if len(ref.Labels) == 0 {
		if svc, ok := a.Labels["service"]; ok {
			ls["service"] = string(svc)
		}
	}
	var ms []string
	for k, v := range ls {
		ms = append(ms, fmt.Sprintf("%s=%q", k, v))
	}
	sort.Strings(ms)
	return p.AddSilence(ctx, SilenceRequest{Matchers: ms, EndsAt: time.Now().Add(d), CreatedBy: who, Comment: why})
}

// RunRunbook implements Actions.
func (p *Pipeline) RunRunbook(ctx context.Context, ref AlertRef, who string) (string, error) {
	a, err := p.find(ref)
	if err != nil {
		return "", err
	}
	name := string(a.Annotations["runbook"])
	if name == "" {
		return "", fmt.Errorf("alert %s names no runbook (add a runbook annotation to its rule)", a.Name())
	}
	if p.opts.Runbook == nil {
		return "", fmt.Errorf("runbook %q: runbooks are not configured on this server", name)
	}
	return p.opts.Runbook(ctx, name, ref, who)
}

// SilenceRequest creates a silence.
type SilenceRequest struct {
	// Matchers in Alertmanager's syntax: name="value", name=~"re",
	// name!="value".
	Matchers  []string  `json:"matchers"`
	StartsAt  time.Time `json:"starts_at,omitempty"`
	EndsAt    time.Time `json:"ends_at"`
	CreatedBy string    `json:"created_by"`
	Comment   string    `json:"comment"`
}

// Silence is a silence as the API shows it.
type Silence struct {
	ID        string    `json:"id"`
	Matchers  []string  `json:"matchers"`
	StartsAt  time.Time `json:"starts_at"`
	EndsAt    time.Time `json:"ends_at"`
	CreatedBy string    `json:"created_by"`
	Comment   string    `json:"comment"`
	State     string    `json:"state"`
}

// ErrBadSilence marks a silence request that cannot be accepted.
var ErrBadSilence = errors.New("bad silence")

// AddSilence validates and stores a silence and records a silenced event
// for every held alert it mutes.
func (p *Pipeline) AddSilence(ctx context.Context, r SilenceRequest) (string, error) {
	if len(r.Matchers) == 0 {
		return "", fmt.Errorf("%w: give at least one matcher, e.g. alertname=\"BillingErrorRatioHigh\"", ErrBadSilence)
	}
	if r.CreatedBy == "" {
		return "", fmt.Errorf("%w: created_by is empty", ErrBadSilence)
	}
	now := time.Now()
	if r.StartsAt.IsZero() {
		r.StartsAt = now
	}
	if !r.EndsAt.After(r.StartsAt) || !r.EndsAt.After(now) {
		return "", fmt.Errorf("%w: ends_at %s must be after starts_at %s and in the future", ErrBadSilence,
			r.EndsAt.Format(time.RFC3339), r.StartsAt.Format(time.RFC3339))
	}
	set := &pb.MatcherSet{}
	for _, s := range r.Matchers {
		ms, err := compat.Matchers(s, "api")
		if err != nil {
			return "", fmt.Errorf("%w: matcher %q: %v (use name=\"value\", name=~\"regex\" or name!=\"value\")", ErrBadSilence, s, err)
		}
		for _, m := range ms {
			t := pb.Matcher_EQUAL
			switch m.Type.String() {
			case "=~":
				t = pb.Matcher_REGEXP
			case "!=":
				t = pb.Matcher_NOT_EQUAL
			case "!~":
				t = pb.Matcher_NOT_REGEXP
			}
			set.Matchers = append(set.Matchers, &pb.Matcher{Type: t, Name: m.Name, Pattern: m.Value})
		}
	}
	sil := &pb.Silence{MatcherSets: []*pb.MatcherSet{set}, StartsAt: timestamppb.New(r.StartsAt),
		EndsAt: timestamppb.New(r.EndsAt), CreatedBy: r.CreatedBy, Comment: r.Comment}
	if err := p.silences.Set(ctx, sil); err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadSilence, err)
	}
	it := p.alerts.GetPending()
	defer it.Close()
	for pa := range it.Next() {
		a := pa.Data
		got, _, _ := p.silences.Query(ctx, silence.QIDs(sil.Id), silence.QMatches(a.Labels))
		if len(got) == 0 {
			continue
		}
		p.events.Record(ctx, Event{Type: EventSilenced, Fingerprint: a.Fingerprint().String(), AlertName: a.Name(),
			Labels: labelMap(a.Labels), Who: r.CreatedBy, SilenceID: sil.Id,
			Message: fmt.Sprintf("silenced until %s: %s", r.EndsAt.UTC().Format(time.RFC3339), r.Comment)})
	}
	return sil.Id, nil
}

// ErrUnknownSilence is returned for a silence id the pipeline does not hold.
var ErrUnknownSilence = errors.New("no such silence (list them with opspilot silence list)")

// ExpireSilence ends a silence now.
func (p *Pipeline) ExpireSilence(ctx context.Context, id, who string) error {
	got, _, err := p.silences.Query(ctx, silence.QIDs(id))
	if err != nil || len(got) == 0 {
		return fmt.Errorf("silence %q: %w", id, ErrUnknownSilence)
	}
	if err := p.silences.Expire(ctx, id); err != nil {
		return fmt.Errorf("silence %q: %w", id, err)
	}
	p.events.Record(ctx, Event{Type: EventSilenced, SilenceID: id, Who: who, Message: "silence expired by " + who})
	return nil
}

// Silences lists silences (active and pending first, then expired ones
// kept for the retention).
func (p *Pipeline) Silences(ctx context.Context) []Silence {
	sils, _, _ := p.silences.Query(ctx)
	now := time.Now()
	out := make([]Silence, 0, len(sils))
	for _, s := range sils {
		v := Silence{ID: s.Id, StartsAt: s.StartsAt.AsTime(), EndsAt: s.EndsAt.AsTime(), CreatedBy: s.CreatedBy,
			Comment: s.Comment, State: string(silence.StateAt(s.StartsAt.AsTime(), s.EndsAt.AsTime(), now))}
		sets := s.MatcherSets
		if len(sets) == 0 && len(s.Matchers) > 0 {
			sets = []*pb.MatcherSet{{Matchers: s.Matchers}}
		}
		for _, set := range sets {
			for _, m := range set.Matchers {
				op := map[pb.Matcher_Type]string{pb.Matcher_EQUAL: "=", pb.Matcher_REGEXP: "=~", pb.Matcher_NOT_EQUAL: "!=", pb.Matcher_NOT_REGEXP: "!~"}[m.Type]
				v.Matchers = append(v.Matchers, fmt.Sprintf("%s%s%q", m.Name, op, m.Pattern))
			}
		}
		out = append(out, v)
	}
	rank := map[string]int{"active": 0, "pending": 1, "expired": 2}
	sort.SliceStable(out, func(i, j int) bool {
		if rank[out[i].State] != rank[out[j].State] {
			return rank[out[i].State] < rank[out[j].State]
		}
		return out[i].EndsAt.After(out[j].EndsAt)
	})
	return out
}
