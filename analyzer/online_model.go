package analyzer

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// AlarmLevel is the score at which the online models report an anomaly:
// alert rules use `anomaly_score > 0.9`.
const AlarmLevel = 0.9

// scaled maps a model's calibrated score so that its alarm threshold
// becomes AlarmLevel; scores above the threshold approach 1.
type scaled struct {
	Model
	alarm float64
}

func (s *scaled) Observe(t time.Time, v float64) Result {
	r := s.Model.Observe(t, v)
	r.Score = math.Min(1, r.Score*AlarmLevel/s.alarm)
	// A change smaller than MinRelativeChange of the expected value is not
	// an anomaly however steady the series was: a request rate that moves
	// from 40.00 to 40.50 per second, or a p95 from 9.7 to 9.9 ms, is not
	// worth a page. The band is at least that wide.
	if e := r.Expected; !math.IsNaN(e) && !math.IsInf(e, 0) && e != 0 {
		half := MinRelativeChange * math.Abs(e)
		r.Lower, r.Upper = math.Min(r.Lower, e-half), math.Max(r.Upper, e+half)
		if d := math.Abs(v - e); d < half {
			r.Score = math.Min(r.Score, 0.99*AlarmLevel*d/half)
		}
	}
	return r
}

// MinRelativeChange is the smallest change, as a fraction of the expected
// value, that an online model reports as an anomaly.
const MinRelativeChange = 0.05

// onlineBoundZ is the half-width of the online models' normal band, in
// sigmas; a point on the band's edge scores AlarmLevel. Five sigma, not
// four: at 4 a model sees a 1-in-16,000 Gaussian excursion, which 10,000
// series at one point per 10 s produce every couple of seconds; at 5 it is
// 1 in 1.7 million.
const onlineBoundZ = 5

// onlineModels are the models an analyzer query may name. Each one's score
// reaches AlarmLevel exactly where a value leaves its band [Lower, Upper],
// so a dashboard's band and an alert on the score agree (nab excepted: its
// alarm is the ensemble's).
var onlineModels = map[string]func() Model{
	// ewma: exponentially weighted mean and variance; O(1), any series.
	"ewma": func() Model { return NewEWMA(EWMAConfig{BoundZ: onlineBoundZ}) },
	// robust-z: robust z of point-to-point changes (median and MAD of the
	// last 192 changes). On levels, a window's median trails any smooth
	// trend, so a clean daily wave would fire; on changes it does not.
	"robust-z": func() Model { return NewDifferenced(NewRobustZ(RobustZConfig{BoundZ: onlineBoundZ, Window: 192})) },
	// seasonal: a baseline per half hour of the day, for daily patterns at
	// any resolution (48 buckets).
	"seasonal": func() Model { return NewSeasonal(SeasonalConfig{BoundZ: onlineBoundZ}) },
	// decompose: trend + a per-phase profile of a detected period (up to
	// 320 points: a day at 5 minutes, an hour at 10 s) with robust
	// residuals; the detector's buffer is 3.75 KB until a period is found.
	"decompose": func() Model { return NewDecompose(DecomposeConfig{BoundZ: onlineBoundZ, MaxPeriod: 320}) },
	// holt-winters: daily and weekly seasons, fitted after 3 days.
	"holt-winters": func() Model { return NewHoltWinters(HoltWintersConfig{BoundZ: onlineBoundZ}) },
	// bocpd: Bayesian online change points, for level shifts.
	"bocpd": func() Model { return NewBOCPD(BOCPDConfig{BoundP: math.Erfc(onlineBoundZ / math.Sqrt2)}) },
}

// DefaultOnlineModel is the model of queries that name none.
const DefaultOnlineModel = "ewma"

// OnlineModelNames lists the names NewOnlineModelNamed accepts.
func OnlineModelNames() []string {
	names := []string{"nab", "nab-compact"}
	for n := range onlineModels {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// NewOnlineModelNamed builds the named model for one series, its score
// scaled so that AlarmLevel means "outside the band"; "" is
// DefaultOnlineModel. "nab" is NewDefaultEnsemble, the NAB-tuned detector,
// scaled at its own alarm level; "nab-compact" is NewCompactEnsemble.
func NewOnlineModelNamed(name string) (Model, error) {
	if name == "" {
		name = DefaultOnlineModel
	}
	if name == "nab" || name == "nab-compact" {
		m := NewDefaultEnsemble()
		if name == "nab-compact" {
			m = NewCompactEnsemble()
		}
		alarm := tailScore(onlineBoundZ)
		if e, ok := m.(*Ensemble); ok {
			alarm = e.cfg.AlarmScore
		}
		return &scaled{Model: m, alarm: alarm}, nil
	}
	mk, ok := onlineModels[name]
	if !ok {
		return nil, fmt.Errorf("unknown model %q; use one of %s", name, strings.Join(OnlineModelNames(), ", "))
	}
	return &scaled{Model: mk(), alarm: tailScore(onlineBoundZ)}, nil
}

// NewOnlineModel is DefaultOnlineModel. (The NAB-tuned NewDefaultEnsemble
// is not the default here: NAB rewards flagging a series' first new record
// early, which on a clean noisy wave fires on values well inside the band.)
func NewOnlineModel() Model {
	m, _ := NewOnlineModelNamed("")
	return m
}
