package online

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"opspilot/tsdb"
)

// BenchmarkOnlinePass is one pass of the online loop's in-process work over
// 10,000 container series (one new point each): matching each result
// series to its model, scoring with the default model, and building the
// four anomaly series for the write (the TSDB round trips are not
// included). ns/point is the cost of one series per interval.
func BenchmarkOnlinePass(b *testing.B) {
	const series = 10000
	s, err := New(testConfig(""), Options{Querier: nopTSDB{}, Writer: nopTSDB{}})
	if err != nil {
		b.Fatal(err)
	}
	q := Query{Name: "container_cpu"}
	rng := rand.New(rand.NewPCG(1, 1))
	mat := make(model.Matrix, series)
	for i := range mat {
		mat[i] = &model.SampleStream{Metric: model.Metric{
			"service": model.LabelValue(fmt.Sprintf("svc-%d", i%200)), "instance": model.LabelValue(fmt.Sprintf("svc-%d-%d", i%200, i)),
			"node": model.LabelValue(fmt.Sprintf("n%d", i%500)), "datacenter": "dc1",
		}, Values: []model.SamplePair{{}}}
	}
	t0 := time.Unix(1_800_000_000, 0)
	b.ReportAllocs()
	b.ResetTimer()
	for n := range b.N {
		ts := model.TimeFromUnixNano(t0.Add(time.Duration(n) * 10 * time.Second).UnixNano())
		for _, ss := range mat {
			ss.Values[0] = model.SamplePair{Timestamp: ts, Value: model.SampleValue(0.5 + 0.1*rng.NormFloat64())}
		}
		_ = s.observe(q, mat, nil)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*series), "ns/point")
}

type nopTSDB struct{}

func (nopTSDB) QueryRange(context.Context, string, tsdb.Range) (tsdb.Result, error) {
	return tsdb.Result{}, nil
}
func (nopTSDB) Write(context.Context, []tsdb.TimeSeries) error { return nil }
