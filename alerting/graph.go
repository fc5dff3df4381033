package alerting

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/VictoriaMetrics/metricsql"
	"github.com/prometheus/common/model"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// GraphPoint is one sample of a GraphSeries.
type GraphPoint struct {
	Time  time.Time
	Value float64
}

// GraphSeries is one line of a graph: a series' name (its labels) and its
// samples, oldest first. NaN and infinite values are gaps.
type GraphSeries struct {
	Name   string
	Points []GraphPoint
}

// Limits of RenderGraph: large enough for a chat message, small enough that
// a bad config cannot allocate gigabytes.
const (
	graphMaxSide    = 4000
	graphMaxSeries  = 10
	graphMaxNameLen = 60
)

// graphPalette colours the lines; a threshold line is always red and dashed.
var graphPalette = []color.Color{
	color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff},
	color.RGBA{R: 0x8c, G: 0x56, B: 0x4b, A: 0xff},
	color.RGBA{R: 0xe3, G: 0x77, B: 0xc2, A: 0xff},
	color.RGBA{R: 0x7f, G: 0x7f, B: 0x7f, A: 0xff},
	color.RGBA{R: 0xbc, G: 0xbd, B: 0x22, A: 0xff},
	color.RGBA{R: 0x17, G: 0xbe, B: 0xcf, A: 0xff},
	color.RGBA{R: 0x00, G: 0x00, B: 0x80, A: 0xff},
}

// RenderGraph draws series as lines over time, with an optional dashed
// threshold line, and returns a PNG of exactly width x height pixels. It is
// pure: no I/O besides encoding. Series beyond the tenth are left out (the
// title says how many); NaN and infinite samples are gaps; no data at all
// still gives a valid image that says so.
func RenderGraph(title string, series []GraphSeries, threshold *float64, width, height int) ([]byte, error) {
	if width < 50 || height < 50 || width > graphMaxSide || height > graphMaxSide {
		return nil, fmt.Errorf("render graph: size %dx%d is outside 50..%d pixels per side; use for example 800x300", width, height, graphMaxSide)
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Tick.Marker = plot.TimeTicks{Format: "15:04", Time: plot.UTCUnixTime}
	p.X.Label.Text = "UTC"
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	p.Legend.Left = true

	shown := series
	if len(shown) > graphMaxSeries {
		shown = shown[:graphMaxSeries]
		p.Title.Text = fmt.Sprintf("%s (%d of %d series)", title, graphMaxSeries, len(series))
	}
	minX, maxX := math.Inf(1), math.Inf(-1)
	points, legendRows := 0, 0
	for i, s := range shown {
		col := graphPalette[i%len(graphPalette)]
		legend := false
		for _, seg := range graphSegments(s.Points) {
			points += len(seg)
			minX = math.Min(minX, seg[0].X)
			maxX = math.Max(maxX, seg[len(seg)-1].X)
			var pl plot.Plotter
			var thumb plot.Thumbnailer
			if len(seg) == 1 {
				sc, err := plotter.NewScatter(seg)
				if err != nil {
					return nil, fmt.Errorf("render graph: series %q: %w", s.Name, err)
				}
				sc.Color = col
				sc.Radius = vg.Points(1.5)
				pl, thumb = sc, sc
			} else {
				l, err := plotter.NewLine(seg)
				if err != nil {
					return nil, fmt.Errorf("render graph: series %q: %w", s.Name, err)
				}
				l.Color = col
				l.Width = vg.Points(1.2)
				pl, thumb = l, l
			}
			p.Add(pl)
			if !legend && s.Name != "" && len(shown) > 1 {
				p.Legend.Add(slackTruncate(s.Name, graphMaxNameLen), thumb)
				legendRows++
				legend = true
			}
		}
	}
	if points == 0 {
		p.Title.Text += " (no data)"
	}
	if threshold != nil && !math.IsNaN(*threshold) && !math.IsInf(*threshold, 0) {
		th := *threshold
		if points == 0 {
			now := float64(time.Now().Unix())
			minX, maxX = now-3600, now
		}
		if minX == maxX {
			minX, maxX = minX-30, maxX+30
		}
		l, err := plotter.NewLine(plotter.XYs{{X: minX, Y: th}, {X: maxX, Y: th}})
		if err != nil {
			return nil, fmt.Errorf("render graph: threshold: %w", err)
		}
		l.Color = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
		l.Width = vg.Points(1)
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("threshold %g", th), l)
		legendRows++
	}

	if points > 0 || threshold != nil {
		// Headroom at the top for the legend, so it does not hide the
		// lines.
		r := p.Y.Max - p.Y.Min
		if r == 0 {
			r = math.Max(math.Abs(p.Y.Max), 1)
		}
		p.Y.Max += r * math.Min(0.12*float64(legendRows)+0.05, 1)
		p.Y.Min -= r * 0.05
	}

	img := image.NewRGBA(image.Rect(0, 0, width, height))
	c := vgimg.NewWith(vgimg.UseImage(img))
	p.Draw(draw.New(c))
	var buf bytes.Buffer
	if err := png.Encode(&buf, c.Image()); err != nil {
		return nil, fmt.Errorf("render graph: encode png: %w", err)
	}
	return buf.Bytes(), nil
}

// graphSegments splits points at NaN and infinite values into runs of
// plottable points, with times as Unix seconds.
func graphSegments(pts []GraphPoint) []plotter.XYs {
	var out []plotter.XYs
	var cur plotter.XYs
	for _, pt := range pts {
		if math.IsNaN(pt.Value) || math.IsInf(pt.Value, 0) || pt.Time.IsZero() {
			if len(cur) > 0 {
				out = append(out, cur)
				cur = nil
			}
			continue
		}
		cur = append(cur, plotter.XY{X: float64(pt.Time.UnixNano()) / 1e9, Y: pt.Value})
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// slackTruncate shortens s to at most n runes, marking the cut with "…".
func slackTruncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	if n <= 1 {
		return string(r[:n])
	}
	return string(r[:n-1]) + "…"
}

// SlackGraphExpr returns the expression of a Prometheus alert's generator
// URL (Prometheus sets it to <external URL>/graph?g0.expr=…&g0.tab=1), or ""
// when the URL carries none.
func SlackGraphExpr(generatorURL string) string {
	if generatorURL == "" {
		return ""
	}
	u, err := url.Parse(generatorURL)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(u.Query().Get("g0.expr"))
}

// SlackSplitThreshold splits an alert expression of the form `X op N` or
// `N op X` (op a comparison, N a number) into the expression to plot (X) and
// the threshold N. Anything else is plotted as is, without a threshold; an
// expression metricsql cannot parse is returned unchanged too, so the range
// query reports the problem.
func SlackSplitThreshold(expr string) (plotExpr string, threshold *float64) {
	e, err := metricsql.Parse(expr)
	if err != nil {
		return expr, nil
	}
	be, ok := e.(*metricsql.BinaryOpExpr)
	if !ok || !metricsql.IsBinaryOpCmp(be.Op) || be.Bool {
		return expr, nil
	}
	if n, ok := be.Right.(*metricsql.NumberExpr); ok {
		if _, isNum := be.Left.(*metricsql.NumberExpr); !isNum {
			v := n.N
			return string(be.Left.AppendString(nil)), &v
		}
	}
	if n, ok := be.Left.(*metricsql.NumberExpr); ok {
		v := n.N
		return string(be.Right.AppendString(nil)), &v
	}
	return expr, nil
}

// slackGraphSeries converts a range query's matrix to graph series, named by
// their labels, sorted by name so the colours are stable.
func slackGraphSeries(v model.Value) []GraphSeries {
	var out []GraphSeries
	switch m := v.(type) {
	case model.Matrix:
		for _, ss := range m {
			gs := GraphSeries{Name: ss.Metric.String()}
			for _, sp := range ss.Values {
				gs.Points = append(gs.Points, GraphPoint{Time: sp.Timestamp.Time(), Value: float64(sp.Value)})
			}
			out = append(out, gs)
		}
	case model.Vector:
		for _, s := range m {
			out = append(out, GraphSeries{Name: s.Metric.String(), Points: []GraphPoint{{Time: s.Timestamp.Time(), Value: float64(s.Value)}}})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
