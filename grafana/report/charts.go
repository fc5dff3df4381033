package report

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html/template"
	"image/color"
	"math"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"opspilot/analyzer/forecast"
)

// Chart sizes: wide enough for a month of history and a month of
// forecast on a laptop screen and an A4 page.
const (
	chartWidth  = 17 * vg.Centimeter
	chartHeight = 6.5 * vg.Centimeter
)

var (
	colourUsage    = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	colourForecast = color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}
	colourBand     = color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0x40}
	colourCapacity = color.RGBA{R: 0x55, G: 0x55, B: 0x55, A: 0xff}
	colourLimit    = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
)

// forecastChart draws usage, the forecast mean with its interval band,
// the capacity and (if lower) the planning limit, and returns an SVG
// data: URI.
func forecastChart(title, unit string, ts []time.Time, vs []float64, fc []forecast.Point, capacity, limit float64) (template.URL, error) {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = unit
	p.X.Tick.Marker = plot.TimeTicks{Format: "Jan 02", Time: plot.UTCUnixTime}
	p.Add(plotter.NewGrid())
	p.Legend.Top, p.Legend.Left = true, true

	if len(fc) > 0 {
		band := make(plotter.XYs, 0, 2*len(fc))
		for _, f := range fc {
			band = append(band, plotter.XY{X: unix(f.T), Y: finite0(f.Upper)})
		}
		for i := len(fc) - 1; i >= 0; i-- {
			band = append(band, plotter.XY{X: unix(fc[i].T), Y: finite0(fc[i].Lower)})
		}
		poly, err := plotter.NewPolygon(band)
		if err != nil {
			return "", fmt.Errorf("chart %q: interval band: %w", title, err)
		}
		poly.Color, poly.LineStyle.Width = colourBand, 0
		p.Add(poly)
		p.Legend.Add("95% interval", poly)
	}
	if err := addLines(p, "usage", colourUsage, nil, ts, vs); err != nil {
		return "", fmt.Errorf("chart %q: %w", title, err)
	}
	if len(fc) > 0 {
		fts, fvs := make([]time.Time, len(fc)), make([]float64, len(fc))
		for i, f := range fc {
			fts[i], fvs[i] = f.T, f.Mean
		}
		if err := addLines(p, "forecast", colourForecast, []vg.Length{vg.Points(4), vg.Points(2)}, fts, fvs); err != nil {
			return "", fmt.Errorf("chart %q: %w", title, err)
		}
	}
	start, end := span(ts, fc)
	if capacity > 0 && !start.IsZero() {
		if err := addHLine(p, "capacity", colourCapacity, nil, start, end, capacity); err != nil {
			return "", err
		}
		if limit > 0 && limit < capacity {
			if err := addHLine(p, "planning limit", colourLimit, []vg.Length{vg.Points(3), vg.Points(3)}, start, end, limit); err != nil {
				return "", err
			}
		}
	}
	return svgURI(p)
}

// stepChart draws one or more step series (replica counts).
func stepChart(title, unit string, ss []namedSeries) (template.URL, error) {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = unit
	p.X.Tick.Marker = plot.TimeTicks{Format: "Jan 02", Time: plot.UTCUnixTime}
	p.Add(plotter.NewGrid())
	p.Legend.Top, p.Legend.Left = true, true
	palette := []color.Color{colourUsage, colourForecast, color.RGBA{G: 0xa0, B: 0x2c, R: 0x2c, A: 0xff}, color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff}}
	for i, s := range ss {
		pts := make(plotter.XYs, 0, len(s.T))
		for j, t := range s.T {
			if isFinite(s.V[j]) {
				pts = append(pts, plotter.XY{X: unix(t), Y: s.V[j]})
			}
		}
		if len(pts) == 0 {
			continue
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return "", fmt.Errorf("chart %q: %w", title, err)
		}
		l.StepStyle = plotter.PostStep
		l.Color = palette[i%len(palette)]
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(s.Name, l)
	}
	return svgURI(p)
}

type namedSeries struct {
	Name string
	T    []time.Time
	V    []float64
}

// addLines adds a line, broken at gaps (NaN values), with one legend
// entry.
func addLines(p *plot.Plot, name string, c color.Color, dashes []vg.Length, ts []time.Time, vs []float64) error {
	var seg plotter.XYs
	var first *plotter.Line
	flush := func() error {
		if len(seg) == 0 {
			return nil
		}
		l, err := plotter.NewLine(seg)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		l.Color, l.Width, l.Dashes = c, vg.Points(1.2), dashes
		p.Add(l)
		if first == nil {
			first = l
			p.Legend.Add(name, l)
		}
		seg = nil
		return nil
	}
	for i, t := range ts {
		if !isFinite(vs[i]) {
			if err := flush(); err != nil {
				return err
			}
			continue
		}
		seg = append(seg, plotter.XY{X: unix(t), Y: vs[i]})
	}
	return flush()
}

func addHLine(p *plot.Plot, name string, c color.Color, dashes []vg.Length, start, end time.Time, y float64) error {
	l, err := plotter.NewLine(plotter.XYs{{X: unix(start), Y: y}, {X: unix(end), Y: y}})
	if err != nil {
		return fmt.Errorf("%s line: %w", name, err)
	}
	l.LineStyle = draw.LineStyle{Color: c, Width: vg.Points(1), Dashes: dashes}
	p.Add(l)
	p.Legend.Add(name, l)
	return nil
}

func span(ts []time.Time, fc []forecast.Point) (time.Time, time.Time) {
	var start, end time.Time
	if len(ts) > 0 {
		start, end = ts[0], ts[len(ts)-1]
	}
	if len(fc) > 0 {
		if start.IsZero() {
			start = fc[0].T
		}
		end = fc[len(fc)-1].T
	}
	return start, end
}

// svgURI renders p as an SVG data: URI, so the HTML needs no other file.
func svgURI(p *plot.Plot) (template.URL, error) {
	wt, err := p.WriterTo(chartWidth, chartHeight, "svg")
	if err != nil {
		return "", fmt.Errorf("render chart %q: %w", p.Title.Text, err)
	}
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil {
		return "", fmt.Errorf("render chart %q: %w", p.Title.Text, err)
	}
	// The data is base64 of our own rendering: safe as a URL.
	return template.URL("data:image/svg+xml;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())), nil
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func isFinite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

func finite0(f float64) float64 {
	if isFinite(f) {
		return f
	}
	return 0
}
