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
	// SuppressFor, when > 0, ends the suppression early once this much
	// time (by the points' timestamps) has passed since the alarm, so a
	// series sampled hourly is not silenced for Suppress hours.
	SuppressFor time.Duration
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
	// Gate, when set, sees every point before the members (so they may
	// consult it) and damps the combined score of a point whose recent
	// shape it already knows: when its Distance is below GateDist the
	// score is multiplied by (Distance/GateDist)^GatePow, or by Damp when
	// GatePow is 0. A recurring shape, such as a daily jump, stops
	// alarming once it is known.
	Gate     *Pattern
	GateDist float64
	GatePow  float64
	// Binary damps (by Damp) every score below AlarmScore, so the output
	// is near-binary: alarms stand out and everything else is near 0.
	Binary bool
	// DailyBuckets, when > 0, keeps the largest combined score of each
	// time-of-day bucket (of the point's timestamp, UTC) on earlier days,
	// decayed by DailyDecay per day; an alarm whose score is below
	// DailyFactor times the memory of its bucket or a neighbouring one is
	// not raised: an event at the same time every day is routine.
	DailyBuckets int
	DailyFactor  float64
	DailyDecay   float64
	// Or are dissimilar detectors OR-combined with the members: the point
	// scores at least OrWeight times the largest of their scores, and
	// they share the ensemble's suppression and daily memory. OrGated
	// combines them before the Gate, so the gate damps them on a known
	// shape too; OrFloor is the members' combined score a point needs
	// before Or may raise it.
	Or       []Model
	OrWeight float64
	OrGated  bool
	OrFloor  float64
	// Late are more OR-combined detectors, each score times LateWeight,
	// combined after the Gate (so a known shape does not damp them) but
	// before the daily memory and the suppression.
	Late       []Model
	LateWeight float64
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

// Ensemble scores a point with the largest (or mean) of its members'
// calibrated tail scores, optionally gated by shape novelty. After an alarm
// it damps scores for a while: an anomaly is one event, and repeating it
// only adds false positives once it is reported. Expected and bounds come
// from the first member.
type Ensemble struct {
	cfg     EnsembleConfig
	members []Model
	quiet   int   // points of suppression left
	alarmAt int64 // Unix seconds of the last alarm (SuppressFor)
	n       int   // points seen
	peak    float64
	day     int64     // day number of the last point (DailyBuckets)
	today   []float32 // largest score per bucket today
	past    []float32 // decayed largest score per bucket on earlier days
}

// NewEnsemble combines members; zero config fields take defaults.
func NewEnsemble(cfg EnsembleConfig, members ...Model) *Ensemble {
	e := &Ensemble{cfg: cfg.withDefaults(), members: members}
	if b := e.cfg.DailyBuckets; b > 0 {
		e.today, e.past = make([]float32, b), make([]float32, b)
	}
	return e
}

// daily records score in its time-of-day bucket and returns the memory of
// earlier days around that bucket.
func (e *Ensemble) daily(t time.Time, score float64) float64 {
	B := len(e.today)
	sec := t.Unix()
	day := sec / 86400
	if sec < 0 && sec%86400 != 0 {
		day--
	}
	if day != e.day {
		if e.n > 0 {
			decay := float32(math.Pow(e.cfg.DailyDecay, float64(day-e.day-1)))
			if day < e.day {
				decay = 1
			}
			for i := range e.past {
				e.past[i] = max(e.today[i], e.past[i]*float32(e.cfg.DailyDecay)) * decay
				e.today[i] = 0
			}
		}
		e.day = day
	}
	b := int((sec - day*86400) * int64(B) / 86400)
	mem := max(e.past[b], e.past[(b+1)%B], e.past[(b+B-1)%B])
	e.today[b] = max(e.today[b], float32(score))
	return float64(mem)
}

// defaultARTime is the default ensemble's ARTime.
var defaultARTime = ARTimeConfig{Probation: 700, WindowsPerProbation: 12, Pad: 1, Mismatch: true, MaxCategories: 64, MatchCredit: 500}

// defaultEWMADamp and defaultCUSUMDamp calibrate the default ensemble's
// EWMA and CUSUM per series: a member whose scores pass 0.02 more often
// than once in 200 points (EWMA) or 333 (CUSUM, whose sums stay high for
// a while) on a series is damped there until it does not.
var (
	defaultEWMADamp  = QuantileDampConfig{Quantile: 0.995, Ref: 0.02, Rate: 0.02}
	defaultCUSUMDamp = QuantileDampConfig{Quantile: 0.997, Ref: 0.02, Rate: 0.02}
)

// NewDefaultEnsemble is the one configuration used for every series (and
// scored on NAB by TestNAB): the mean score of EWMA (Alpha 0.007), CUSUM
// and Novelty (Gain 800), EWMA and CUSUM calibrated per series by a
// QuantileDamp each (scaled down where their 99.5% or 99.7% score
// quantile passes 0.02), gated by a Pattern over the last six 2-point
// averages (64 prototypes, vigilance 0.1 of the range seen so far), which
// scales down the score of a point whose shape is within 0.08 of a
// remembered one. Novelty ignores records within 2 noise units when their
// shape is known (Distance below 0.12) unless the previous point was a
// record too, so chance records of a noisy periodic series stay quiet.
// Scores below the alarm level 0.015 (about z 4.3) are damped, and an
// alarm damps the next 225 points, or the next 24 hours if that is sooner
// (an hourly series is not silenced for nine days), so the output is
// near-binary: one high score per event. An alarm is not raised when the same 20 minutes of the
// day (or a neighbouring 20) saw a score at least 1/3 as high on earlier
// days (memory decays by 0.85 a day): a daily backup or a daily jump is
// routine. Two Context models (4 levels and contexts of up to 4 level
// changes; 3 levels and up to 6; 1024-bit tables, 150 points of warm-up)
// are OR-combined before the gate: a point scores 0.025 times the
// fraction of its contexts never seen before (so 3 of 4, or 4 of 6, must
// be new to alarm), unless it lies within 1.5 noise units of a level
// boundary. An ARTime (NewARTime: probation 700 points, 12 windows of 8
// downsampled values per probation, so 7-point steps; range padded by its
// span; at most 64 categories, a full store replacing the category least
// recently matched after crediting 500 steps per match, MatchCredit; only
// new clusters whose newest value is out of the learnt range are
// reported) is OR-combined after the gate at
// weight 0.025, so an anomaly it reports with confidence 0.6 or more
// alarms.
// See doc.go for the NAB scores and what else was tried.
func NewDefaultEnsemble() Model { return newNABEnsemble(true) }

// NewCompactEnsemble is NewDefaultEnsemble without its ARTime: about 3,100
// bytes per series instead of about 7,000 and about 1.5 times as fast, for
// NAB 71.77 standard instead of 75.01 (see doc.go). The online analyzer
// offers it as model "nab-compact" for fleets where memory per series
// matters more.
func NewCompactEnsemble() Model { return newNABEnsemble(false) }

func newNABEnsemble(artime bool) Model {
	var late []Model
	if artime {
		late = []Model{NewARTime(defaultARTime)}
	}
	shape := NewPattern(PatternConfig{Window: 6, Step: 2, Protos: 64, Vigilance: 0.1, Rate: 0.2})
	return NewEnsemble(EnsembleConfig{
		Mean: true, AlarmScore: 0.015, Suppress: 225, SuppressFor: 24 * time.Hour, Binary: true,
		Gate: shape, GateDist: 0.08, GatePow: 1,
		DailyBuckets: 72, DailyFactor: 3, DailyDecay: 0.85,
		Or: []Model{
			NewContext(ContextConfig{Levels: 4, Orders: 4, Bits: 1024, Warmup: 150, Solid: 1.5}),
			NewContext(ContextConfig{Levels: 3, Orders: 6, Bits: 1024, Warmup: 150, Solid: 1.5}),
		},
		OrWeight: 0.025, OrGated: true,
		Late: late, LateWeight: 0.025,
	},
		NewQuantileDamp(NewEWMA(EWMAConfig{Alpha: 0.007}), defaultEWMADamp),
		NewQuantileDamp(NewCUSUM(CUSUMConfig{}), defaultCUSUMDamp),
		NewNovelty(NoveltyConfig{Gain: 800, NoiseMargin: 2, Shape: shape, ShapeDist: 0.12, Confirm: true}),
	)
}

// Observe implements Model.
func (e *Ensemble) Observe(t time.Time, v float64) Result {
	g := e.cfg.Gate
	if g != nil {
		g.Observe(t, v) // first, so members may consult it
	}
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
	cs := 0.0
	for _, c := range e.cfg.Or {
		cs = math.Max(cs, e.cfg.OrWeight*c.Observe(t, v).Score)
	}
	if out.Score < e.cfg.OrFloor {
		cs = 0
	}
	if e.cfg.OrGated {
		out.Score = math.Max(out.Score, cs)
	}
	if g != nil {
		if d := g.Distance(); d < e.cfg.GateDist {
			if e.cfg.GatePow > 0 {
				out.Score *= math.Pow(d/e.cfg.GateDist, e.cfg.GatePow)
			} else {
				out.Score *= e.cfg.Damp
			}
		}
	}
	if !e.cfg.OrGated {
		out.Score = math.Max(out.Score, cs)
	}
	for _, c := range e.cfg.Late {
		out.Score = math.Max(out.Score, e.cfg.LateWeight*c.Observe(t, v).Score)
	}
	mem := 0.0
	if e.today != nil {
		mem = e.daily(t, out.Score)
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
	if e.quiet > 0 && e.cfg.SuppressFor > 0 && t.Unix()-e.alarmAt >= int64(e.cfg.SuppressFor/time.Second) {
		e.quiet = 0 // the suppression's time is up
	}
	if e.quiet > 0 {
		e.quiet--
		out.Score *= e.cfg.Damp
		return out
	}
	if out.Score >= e.cfg.AlarmScore && out.Score >= e.cfg.DailyFactor*mem {
		e.quiet = e.cfg.Suppress
		e.alarmAt = t.Unix()
	} else if e.cfg.Binary {
		out.Score *= e.cfg.Damp
	}
	return out
}
