package analyzer

import (
	"math"
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
	return r
}

// onlineBoundZ is the half-width of the online model's normal band, in
// sigmas; a point on the band's edge scores AlarmLevel.
const onlineBoundZ = 4

// NewOnlineModel is the model the online analyzer gives each series. Its
// score reaches AlarmLevel exactly where a value leaves the band
// [Lower, Upper], so a dashboard's band and an alert on the score agree.
// (The NAB-tuned NewDefaultEnsemble is not used here: NAB rewards flagging
// a series' first new record early, which on a clean noisy wave fires on
// values well inside the band.)
func NewOnlineModel() Model {
	return &scaled{Model: NewEWMA(EWMAConfig{BoundZ: onlineBoundZ}), alarm: tailScore(onlineBoundZ)}
}
