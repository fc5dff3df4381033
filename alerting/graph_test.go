package alerting

import (
	"bytes"
	"image/png"
	"math"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

func graphTestSeries(n int, f func(i int) float64) []GraphPoint {
	start := time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC)
	pts := make([]GraphPoint, n)
	for i := range pts {
		pts[i] = GraphPoint{Time: start.Add(time.Duration(i) * 15 * time.Second), Value: f(i)}
	}
	return pts
}

func TestRenderGraphSizesAndEdgeCases(t *testing.T) {
	th := 0.5
	nan := math.NaN()
	many := make([]GraphSeries, 15)
	for i := range many {
		many[i] = GraphSeries{Name: `{instance="host-` + string(rune('a'+i)) + `"}`, Points: graphTestSeries(20, func(j int) float64 { return float64(i + j) })}
	}
	cases := []struct {
		name      string
		series    []GraphSeries
		threshold *float64
		w, h      int
	}{
		{"one series with threshold", []GraphSeries{{Name: "x", Points: graphTestSeries(240, func(i int) float64 { return math.Sin(float64(i) / 20) })}}, &th, 800, 300},
		{"two series without threshold", []GraphSeries{
			{Name: `{a="1"}`, Points: graphTestSeries(50, func(i int) float64 { return float64(i) })},
			{Name: `{a="2"}`, Points: graphTestSeries(50, func(i int) float64 { return float64(50 - i) })},
		}, nil, 640, 240},
		{"no series, threshold", nil, &th, 800, 300},
		{"no series, no threshold", nil, nil, 200, 100},
		{"empty series", []GraphSeries{{Name: "empty"}}, &th, 800, 300},
		{"all NaN", []GraphSeries{{Name: "nan", Points: graphTestSeries(10, func(int) float64 { return nan })}}, &th, 800, 300},
		{"NaN and Inf gaps", []GraphSeries{{Name: "gaps", Points: graphTestSeries(30, func(i int) float64 {
			switch i % 7 {
			case 3:
				return nan
			case 5:
				return math.Inf(1)
			}
			return float64(i)
		})}}, &th, 800, 300},
		{"single point", []GraphSeries{{Name: "one", Points: graphTestSeries(1, func(int) float64 { return 2 })}}, &th, 800, 300},
		{"NaN threshold", []GraphSeries{{Name: "x", Points: graphTestSeries(5, func(i int) float64 { return float64(i) })}}, &nan, 800, 300},
		{"more than ten series", many, nil, 1000, 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := RenderGraph("title "+c.name, c.series, c.threshold, c.w, c.h)
			if err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(bytes.NewReader(b))
			if err != nil {
				t.Fatalf("not a PNG: %v", err)
			}
			if got := img.Bounds().Size(); got.X != c.w || got.Y != c.h {
				t.Fatalf("size %v, want %dx%d", got, c.w, c.h)
			}
		})
	}
}

func TestRenderGraphRejectsBadSizes(t *testing.T) {
	for _, wh := range [][2]int{{0, 300}, {800, 0}, {-1, -1}, {10000, 300}} {
		if _, err := RenderGraph("x", nil, nil, wh[0], wh[1]); err == nil {
			t.Errorf("%v: no error", wh)
		}
	}
}

func TestSlackGraphExprFromGeneratorURL(t *testing.T) {
	cases := map[string]string{
		"http://prom:9090/graph?g0.expr=rate%28errors_total%5B5m%5D%29+%3E+0.01&g0.tab=1": "rate(errors_total[5m]) > 0.01",
		"http://prom:9090/graph?g0.tab=1":                                                 "",
		"":                                                                                "",
		"::not a url":                                                                     "",
	}
	for in, want := range cases {
		if got := SlackGraphExpr(in); got != want {
			t.Errorf("SlackGraphExpr(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSlackSplitThreshold(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	cases := []struct {
		in, plot string
		th       *float64
	}{
		{"rate(errors_total[5m]) > 0.01", "rate(errors_total[5m])", f(0.01)},
		{`sum(rate(http_requests_total{code=~"5.."}[5m])) by (job) >= 3`, `sum(rate(http_requests_total{code=~"5.."}[5m])) by(job)`, f(3)},
		{"0.9 < up", "up", f(0.9)},
		{"up == 0", "up", f(0)},
		{"up", "up", nil},
		{"a > b", "a > b", nil},
		{"up > bool 0", "up > bool 0", nil},
		{"a + 1", "a + 1", nil},
		{"((", "((", nil},
	}
	for _, c := range cases {
		plot, th := SlackSplitThreshold(c.in)
		if plot != c.plot {
			t.Errorf("%q: plot %q, want %q", c.in, plot, c.plot)
		}
		switch {
		case (th == nil) != (c.th == nil):
			t.Errorf("%q: threshold %v, want %v", c.in, th, c.th)
		case th != nil && *th != *c.th:
			t.Errorf("%q: threshold %v, want %v", c.in, *th, *c.th)
		}
	}
}

func TestSlackGraphSeriesFromMatrix(t *testing.T) {
	m := model.Matrix{
		{Metric: model.Metric{"b": "2"}, Values: []model.SamplePair{{Timestamp: 1000, Value: 1}, {Timestamp: 2000, Value: 2}}},
		{Metric: model.Metric{"a": "1"}, Values: []model.SamplePair{{Timestamp: 1000, Value: 3}}},
	}
	got := slackGraphSeries(m)
	if len(got) != 2 || got[0].Name != `{a="1"}` || len(got[1].Points) != 2 || got[1].Points[1].Value != 2 {
		t.Fatalf("got %+v", got)
	}
}
