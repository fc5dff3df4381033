package analyzer

import (
	"math"
	"time"
)

// EnsembleConfig configures an Ensemble.
type EnsembleConfig struct {
	// AlarmScore is the combined score at which the ensemble raises an
	// alarm and starts suppressing (default 0.02, about z 4.4; with
	// Mean it needs several members to agree).
	AlarmScore float64
	// Suppress is the number of points after an alarm whose scores are
	// damped (default 250).
	Suppress int
	// Damp multiplies scores during suppression (default 0.01).
	Damp float64
	// Warmup is the number of leading points scored 0 while the members
	// learn the series (default 0: members' own warm-ups only).
	Warmup int
	// Mean combines members by their mean score instead of their maximum,
	// so a point must surprise several members at once.
	Mean bool
	// PeakDecay, when in (0,1), damps scores that do not beat the running
	// peak of past scores, which decays by this factor per point: a series
	// that is always noisy has to surprise more than it usually does
	// (default 0: off).
	PeakDecay float64
}

func (c EnsembleConfig) withDefaults() EnsembleConfig {
	if c.AlarmScore <= 0 {
		c.AlarmScore = 0.02
	}
	if c.Suppress <= 0 {
		c.Suppress = 250
	}
	if c.Damp <= 0 || c.Damp > 1 {
		c.Damp = 0.01
	}
	return c
}

// Ensemble scores a point with the largest of its members' calibrated tail
// scores. After an alarm it damps scores for a while: an anomaly is one
// event, and repeating it only adds false positives once it is reported.
// Expected and bounds come from the first member.
type Ensemble struct {
	cfg     EnsembleConfig
	members []Model
	quiet   int // points of suppression left
	n       int // points seen
	peak    float64
}

// NewEnsemble combines members; zero config fields take defaults.
func NewEnsemble(cfg EnsembleConfig, members ...Model) *Ensemble {
	return &Ensemble{cfg: cfg.withDefaults(), members: members}
}

// NewDefaultEnsemble is the configuration used for NAB: the mean score of
// EWMA, CUSUM and Novelty, alarming at 0.018 and then damping for 225
// points. Novelty runs at Gain 400, so a new record high or low scores
// strongly: on NAB that lifted the standard score by about 4 points (a
// plateau from Gain 400 to 1000; above 500 a clean noisy sine's chance
// records score too close to real spikes, see TestModelsFindAnomalies).
// RobustZ and Seasonal are left out: each lowered the standard score on NAB
// in every combination tried, and RobustZ's window was most of the
// per-series memory.
func NewDefaultEnsemble() Model {
	return NewEnsemble(EnsembleConfig{Mean: true, AlarmScore: 0.018, Suppress: 225},
		NewEWMA(EWMAConfig{}),
		NewCUSUM(CUSUMConfig{}),
		NewNovelty(NoveltyConfig{Gain: 400}),
	)
}

// Observe implements Model.
func (e *Ensemble) Observe(t time.Time, v float64) Result {
	var out Result
	sum, hi := 0.0, 0.0
	for i, m := range e.members {
		r := m.Observe(t, v)
		if i == 0 {
			out = r
		}
		sum += r.Score
		hi = math.Max(hi, r.Score)
	}
	out.Score = hi
	if e.cfg.Mean && len(e.members) > 0 {
		out.Score = sum / float64(len(e.members))
	}
	e.n++
	if e.n <= e.cfg.Warmup {
		out.Score = 0
		return out
	}
	if d := e.cfg.PeakDecay; d > 0 && d < 1 {
		raw := out.Score
		if raw <= e.peak {
			out.Score *= e.cfg.Damp
		}
		e.peak = math.Max(e.peak*d, raw)
	}
	if e.quiet > 0 {
		e.quiet--
		out.Score *= e.cfg.Damp
		return out
	}
	if out.Score >= e.cfg.AlarmScore {
		e.quiet = e.cfg.Suppress
	}
	return out
}
