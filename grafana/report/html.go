package report

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
	"time"
)

// The style is inline and there is no script: the file is self-contained
// (mail it, keep it, open it offline) and prints as it shows.
const pageStyle = `
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;max-width:70em;color:#222;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em} h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
h3{margin-bottom:.3em} .meta{color:#666} .note{color:#8a6d3b;background:#fcf8e3;padding:.4em .8em;border-radius:4px}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f5f5f5} td.num{text-align:right;font-variant-numeric:tabular-nums}
.rec{font-weight:600} .ok{color:#2c7a2c} .warn{color:#b35900} .bad{color:#c62828}
img.chart{display:block;width:100%;max-width:17cm;height:auto;margin:.5em 0}
section.block{break-inside:avoid;page-break-inside:avoid}
code{font-size:.85em;color:#555;word-break:break-all}
@media print{body{margin:0;max-width:none}}
`

var funcs = template.FuncMap{
	"date":  func(t time.Time) string { return t.UTC().Format(time.DateOnly) },
	"stamp": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 MST") },
	"pct": func(f float64) string {
		if !isFinite(f) {
			return "–"
		}
		return fmt.Sprintf("%.0f%%", 100*f)
	},
	"amount": func(v float64, unit string) string {
		if !isFinite(v) {
			return "–"
		}
		return formatAmount(v, unit)
	},
	"growth": func(v float64, unit string) string { return signed(formatAmount(v, unit)) + "/day" },
	"days":   roundDays,
	"zero":   func(t time.Time) bool { return t.IsZero() },
	"upper":  func(s string) string { return strings.ToUpper(s[:min(1, len(s))]) + s[min(1, len(s)):] },
	"dict": func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	},
	"sevClass": func(s string) string {
		switch s {
		case SeverityCritical:
			return "bad"
		case SeverityWarning:
			return "warn"
		}
		return "ok"
	},
}

var capacityTmpl = template.Must(template.New("capacity").Funcs(funcs).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>opspilot capacity report {{date .End}}</title>
<style>` + pageStyle + `</style></head>
<body>
<h1>Capacity trend report</h1>
<p class="meta">History {{stamp .Start}} to {{stamp .End}} ({{days .Range}}, one point every {{.Step}}); forecast {{days .Horizon}} ahead;
planning limit {{pct .Threshold}} of capacity. Generated {{stamp .Generated}} by opspilot.</p>
{{range .Notes}}<p class="note">{{.}}</p>{{end}}
<h2>Recommendations</h2>
{{if .Recommendations}}<ol>{{range .Recommendations}}<li class="rec">{{.Text}}</li>{{end}}</ol>
{{else}}<p class="ok">Nothing reaches the planning limit within {{days .Horizon}} at current growth.</p>{{end}}
{{template "sections" dict "Title" "Datacenters" "Sections" .Datacenters}}
{{template "sections" dict "Title" "Node groups" "Sections" .NodeGroups}}
{{template "sections" dict "Title" "Services" "Sections" .Services}}
</body></html>
{{define "sections"}}{{if .Sections}}<h2>{{.Title}}</h2>
{{range .Sections}}<section class="block"><h3>{{upper .Kind}} {{.Name}}</h3>{{if .Detail}}<p class="meta">Nodes: {{.Detail}}</p>{{end}}
<table><tr><th>resource</th><th>now</th><th>capacity</th><th>utilisation</th><th>peak</th><th>growth</th><th>reaches the limit</th><th>pessimistic</th><th>model</th></tr>
{{range .Resources}}<tr><td>{{.Resource}}</td>{{if .Err}}<td colspan="8" class="warn">no forecast: {{.Err}}</td>{{else}}
<td class="num">{{amount .Current .Unit}}</td><td class="num">{{amount .Capacity .Unit}}</td><td class="num">{{pct .Utilisation}}</td>
<td class="num">{{amount .Peak .Unit}} ({{pct .PeakUtilisation}}) {{date .PeakAt}}</td><td class="num">{{growth .GrowthPerDay .Unit}}</td>
<td>{{if .AlreadyExhausted}}<span class="bad">already</span>{{else if zero .ExhaustAt}}<span class="ok">not within the horizon</span>{{else}}<span class="warn">{{date .ExhaustAt}}</span>{{end}}</td>
<td>{{if zero .ExhaustAtPessimistic}}–{{else}}{{date .ExhaustAtPessimistic}}{{end}}</td><td>{{.Method}}, confidence {{.Confidence}}</td>{{end}}</tr>{{end}}
</table>
{{range .Resources}}{{if .Recommendation}}<p class="rec">{{.Recommendation.Text}}</p>{{end}}{{end}}
{{range .Resources}}{{if .Chart}}<img class="chart" alt="{{.Resource}} usage and forecast" src="{{.Chart}}">{{if .Reason}}<p class="meta">{{.Resource}}: {{.Reason}}.</p>{{end}}{{end}}{{end}}
{{with .Scaling}}<p><b>Scaling activity:</b> {{if .Err}}<span class="warn">{{.Err}}</span>{{else}}instances between {{.Min}} and {{.Max}} (now {{.Current}}), {{.Changes}} changes of the instance count{{end}}; {{.ScaleEvents}} scaling events.</p>
{{if .Chart}}<img class="chart" alt="instances" src="{{.Chart}}">{{end}}
{{if .Events}}<table><tr><th>time</th><th>event</th><th>by</th><th>what</th></tr>{{range .Events}}<tr><td>{{stamp .Time}}</td><td>{{.Reason}}</td><td>{{.Who}}</td><td>{{.Message}}</td></tr>{{end}}</table>{{end}}{{end}}
</section>{{end}}{{end}}{{end}}
`))

// WriteHTML writes the report as one self-contained HTML page.
func (r *CapacityReport) WriteHTML(w io.Writer) error {
	data := struct {
		*CapacityReport
		Range time.Duration
	}{r, r.End.Sub(r.Start)}
	var buf bytes.Buffer
	if err := capacityTmpl.Execute(&buf, data); err != nil {
		return fmt.Errorf("capacity report: render HTML: %w", err)
	}
	_, err := buf.WriteTo(w)
	return err
}

// Text is the report's summary for chat: the recommendations and each
// section's utilisation in one line.
func (r *CapacityReport) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Capacity report %s: %s of history, forecast %s ahead, planning limit %.0f%%\n",
		r.End.Format(time.DateOnly), roundDays(r.End.Sub(r.Start)), roundDays(r.Horizon), 100*r.Threshold)
	if len(r.Recommendations) == 0 {
		fmt.Fprintf(&b, "Nothing reaches the planning limit within %s at current growth.\n", roundDays(r.Horizon))
	}
	for _, rec := range r.Recommendations {
		fmt.Fprintf(&b, "• %s\n", rec.Text)
	}
	for _, secs := range [][]Section{r.Datacenters, r.NodeGroups, r.Services} {
		for _, s := range secs {
			var parts []string
			for _, res := range s.Resources {
				if res.Err != "" {
					parts = append(parts, res.Resource+" no forecast")
					continue
				}
				parts = append(parts, fmt.Sprintf("%s %.0f%% (peak %.0f%%)", res.Resource, 100*res.Utilisation, 100*finiteOr(res.PeakUtilisation, 0)))
			}
			if len(parts) > 0 {
				fmt.Fprintf(&b, "%s %s: %s\n", s.Kind, s.Name, strings.Join(parts, ", "))
			}
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	return b.String()
}

func finiteOr(f, d float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return d
	}
	return f
}
