package online

import (
	"math"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	"opspilot/analyzer"
	"opspilot/tsdb"
)

// Joint scores several queries' series together, per entity (the values
// of By), with a multivariate (Mahalanobis) model: a combination that
// breaks their usual relation — requests up while latency falls, errors up
// at normal traffic — scores high even when each value alone is normal.
type Joint struct {
	Name string `yaml:"name"`
	// Queries are names of analyzer queries (2 to 8); their series are
	// matched by the By labels.
	Queries []string `yaml:"queries"`
	// By are the labels that name one entity (default [service]).
	By []string `yaml:"by"`
}

// DefaultJoint scores each service's request rate, error ratio and p95
// latency together.
func DefaultJoint() []Joint {
	return []Joint{{Name: "service_kpis", Queries: []string{"service_requests", "service_error_ratio", "service_latency_p95"}, By: []string{"service"}}}
}

// jointSeries is one entity of a Joint.
type jointSeries struct {
	joint  string
	labels []tsdb.Label // By labels and for=joint, sorted
	model  *analyzer.Multivariate
	last   time.Time
	score  float64
	episode
}

// observeJoint feeds, per joint and entity, every timestamp at which all
// of its queries have a finite value and which is newer than the last one
// scored, in order.
func (s *Service) observeJoint(results map[string]model.Matrix, out []tsdb.TimeSeries) []tsdb.TimeSeries {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, j := range s.joints {
		by := j.By
		if len(by) == 0 {
			by = []string{"service"}
		}
		type entity struct {
			labels []tsdb.Label
			points map[int64][]float64
		}
		entities := map[string]*entity{}
		complete := true
		for d, qn := range j.Queries {
			mat, ok := results[qn]
			if !ok {
				complete = false // the query failed this pass: score later
				break
			}
			for _, ss := range mat {
				labels := make([]tsdb.Label, 0, len(by)+1)
				for _, b := range by {
					labels = append(labels, tsdb.Label{Name: b, Value: string(ss.Metric[model.LabelName(b)])})
				}
				labels = append(labels, tsdb.Label{Name: "for", Value: j.Name})
				slices.SortFunc(labels, func(a, b tsdb.Label) int { return strings.Compare(a.Name, b.Name) })
				key := keyOf(labels)
				e := entities[key]
				if e == nil {
					e = &entity{labels: labels, points: map[int64][]float64{}}
					entities[key] = e
				}
				for _, p := range ss.Values {
					vec := e.points[int64(p.Timestamp)]
					if vec == nil {
						vec = make([]float64, len(j.Queries))
						for i := range vec {
							vec[i] = math.NaN()
						}
						e.points[int64(p.Timestamp)] = vec
					}
					vec[d] = float64(p.Value)
				}
			}
		}
		if !complete {
			continue
		}
		for key, e := range entities {
			js := s.joint[key]
			if js == nil {
				if len(s.series)+len(s.joint) >= s.cfg.MaxSeries {
					s.m.dropped.Inc()
					continue
				}
				js = &jointSeries{joint: j.Name, labels: e.labels, model: analyzer.NewMultivariate(len(j.Queries), analyzer.MultivariateConfig{})}
				s.joint[key] = js
			}
			stamps := make([]int64, 0, len(e.points))
			for ts := range e.points {
				stamps = append(stamps, ts)
			}
			slices.Sort(stamps)
			var score []tsdb.Sample
			dims := make([][3][]tsdb.Sample, len(j.Queries))
			for _, ms := range stamps {
				t := model.Time(ms).Time()
				vec := e.points[ms]
				if !t.After(js.last) || slices.ContainsFunc(vec, func(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) }) {
					continue
				}
				r := js.model.ObserveVec(t, vec)
				sc := math.Min(1, r.Score*analyzer.AlarmLevel/jointAlarm)
				js.last, js.score = t, sc
				if sc >= analyzer.AlarmLevel {
					js.alarm(t, sc, s.rcWindow())
				}
				s.m.points.Inc()
				score = append(score, tsdb.Sample{Timestamp: ms, Value: sc})
				for d := range vec {
					if finite(r.Expected[d]) && finite(r.Lower[d]) && finite(r.Upper[d]) {
						dims[d][0] = append(dims[d][0], tsdb.Sample{Timestamp: ms, Value: r.Expected[d]})
						dims[d][1] = append(dims[d][1], tsdb.Sample{Timestamp: ms, Value: r.Lower[d]})
						dims[d][2] = append(dims[d][2], tsdb.Sample{Timestamp: ms, Value: r.Upper[d]})
					}
				}
			}
			out = appendSeries(out, MetricScore, js.labels, score)
			for d, qn := range j.Queries {
				ls := append(slices.Clone(js.labels), tsdb.Label{Name: "dimension", Value: qn})
				slices.SortFunc(ls, func(a, b tsdb.Label) int { return strings.Compare(a.Name, b.Name) })
				out = appendSeries(out, MetricExpected, ls, dims[d][0])
				out = appendSeries(out, MetricLower, ls, dims[d][1])
				out = appendSeries(out, MetricUpper, ls, dims[d][2])
			}
		}
	}
	s.m.series.Set(float64(len(s.series) + len(s.joint)))
	return out
}

// jointAlarm is the multivariate score that maps to AlarmLevel: the
// chi-squared tail of a 4-sigma deviation.
var jointAlarm = analyzer.TailScore(4)
