package alerting

import "opspilot/config"

// Config is opspilot.yaml's `alerting` section: the rules the control
// plane evaluates and the pipeline their alerts go through.
type Config struct {
	// Enabled runs rule evaluation and the notification pipeline in the
	// control plane.
	Enabled  bool            `yaml:"enabled"`
	Rules    EvaluatorConfig `yaml:"rules"`
	Pipeline PipelineConfig  `yaml:"pipeline"`
}

// DefaultConfig evaluates no rule files (the demo adds its own), every
// second, and notifies on the console.
func DefaultConfig() Config {
	return Config{Enabled: true, Rules: DefaultEvaluatorConfig(), Pipeline: DefaultPipelineConfig()}
}

// Validate reports problems with YAML field paths.
func (c Config) Validate() []config.Problem {
	if !c.Enabled {
		return nil
	}
	return append(config.Prefix("rules", c.Rules.Validate()), config.Prefix("pipeline", c.Pipeline.Validate())...)
}
