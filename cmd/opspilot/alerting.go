package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"opspilot/alerting"
	"opspilot/api"
	examplealerts "opspilot/examples/alerting"
)

// alertingStack is the control plane's alerting: the rule evaluator and
// the Alertmanager pipeline its alerts go through.
type alertingStack struct {
	pipeline  *alerting.Pipeline
	evaluator *alerting.Evaluator
	// flush makes the embedded TSDB's newest samples searchable before
	// each evaluation; set once the store runs.
	flush atomic.Pointer[func()]
}

// newAlerting builds the evaluator and the pipeline; `opspilot up --demo`
// adds the billing example rules (examples/alerting).
func newAlerting(cfg FileConfig, q *lateTSDB, console io.Writer, reg prometheus.Registerer, log *slog.Logger) (*alertingStack, error) {
	acfg := cfg.Alerting
	if acfg.Pipeline.Dir == "" {
		acfg.Pipeline.Dir = filepath.Join(cfg.DataDir, "alerting")
	}
	// The embedded rule files are written under the pipeline's directory,
	// so `rules list` and error messages name a file a person can open.
	addRules := func(name string, data []byte) error {
		path := filepath.Join(acfg.Pipeline.Dir, "builtin", name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return err
		}
		acfg.Rules.Files = append(acfg.Rules.Files, path)
		return nil
	}
	if !acfg.Rules.DisableBuiltin {
		if err := addRules("platform.rules.yaml", examplealerts.PlatformRules); err != nil {
			return nil, err
		}
	}
	if cfg.Demo.Enabled {
		if err := addRules("billing.rules.yaml", examplealerts.BillingRules); err != nil {
			return nil, err
		}
	}
	scheme := "http"
	if cfg.Server.TLSCertFile != "" || cfg.Server.AutoTLS {
		scheme = "https"
	}
	external := scheme + "://" + cfg.Server.HTTPAddr
	s := &alertingStack{}
	var err error
	s.pipeline, err = alerting.NewPipeline(acfg.Pipeline, alerting.PipelineOptions{Console: console, Querier: q,
		ExternalURL: external, Registerer: reg, Log: log})
	if err != nil {
		return nil, err
	}
	s.evaluator, err = alerting.NewEvaluator(acfg.Rules, alerting.EvaluatorOptions{Querier: q, Writer: q, Sink: s.pipeline,
		Recorder: s.pipeline.Events(), Registerer: reg, Log: log, ExternalURL: external,
		BeforeEvaluate: func() {
			if f := s.flush.Load(); f != nil {
				(*f)()
			}
		}})
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (s *alertingStack) routes() []api.Route {
	return append(s.pipeline.Routes(), s.evaluator.Routes()...)
}

// run evaluates and notifies until ctx ends; the pipeline writes its
// state last.
func (s *alertingStack) run(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- s.pipeline.Run(ctx) }()
	err := s.evaluator.Run(ctx)
	if perr := <-done; err == nil {
		err = perr
	}
	return err
}

// banner is the `opspilot up` line about alerting.
func (s *alertingStack) banner(cfg FileConfig) string {
	rules := 0
	for _, g := range s.evaluator.Groups() {
		rules += len(g.Rules)
	}
	var receivers []string
	if len(cfg.Alerting.Pipeline.Slack) > 0 {
		receivers = append(receivers, "Slack")
	}
	if cfg.Alerting.Pipeline.AlertmanagerConfigFile != "" {
		receivers = append(receivers, "the receivers of "+cfg.Alerting.Pipeline.AlertmanagerConfigFile)
	} else {
		receivers = append(receivers, "this console")
	}
	return fmt.Sprintf("%d rules every %s, notifications to %s (try: opspilot alerts, opspilot rules list)",
		rules, cfg.Alerting.Rules.Interval, strings.Join(receivers, " and "))
}
