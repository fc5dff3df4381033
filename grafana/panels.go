package grafana

import (
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// The small vocabulary every dashboard is written in: one datasource, and
// panels of three kinds whose targets all read it.

// datasource is the provisioned datasource every panel and variable reads.
func datasource() common.DataSourceRef {
	return common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr(DatasourceUID)}
}

// query is one panel target: a MetricsQL/PromQL range query.
func query(expr, legend string) *prometheus.DataqueryBuilder {
	q := prometheus.NewDataqueryBuilder().Datasource(datasource()).Expr(expr).Range()
	if legend != "" {
		q = q.LegendFormat(legend)
	}
	return q
}

// withRefIDs names the targets A, B, C… in order, as Grafana's editor does.
func withRefIDs(qs []*prometheus.DataqueryBuilder) []cog.Builder[variants.Dataquery] {
	out := make([]cog.Builder[variants.Dataquery], len(qs))
	for i, q := range qs {
		out[i] = q.RefId(string(rune('A' + i)))
	}
	return out
}

// graph is a time-series panel w grid units wide and 8 high.
func graph(title, description, unit string, w uint32, qs ...*prometheus.DataqueryBuilder) *timeseries.PanelBuilder {
	return timeseries.NewPanelBuilder().
		Title(title).Description(description).Datasource(datasource()).
		Unit(unit).Span(w).Height(8).
		FillOpacity(10).LineWidth(1).ShowPoints(common.VisibilityModeNever).
		SpanNulls(common.BoolOrFloat64{Bool: cog.ToPtr(false)}).
		Legend(common.NewVizLegendOptionsBuilder().DisplayMode(common.LegendDisplayModeList).Placement(common.LegendPlacementBottom).ShowLegend(true)).
		Tooltip(common.NewVizTooltipOptionsBuilder().Mode(common.TooltipDisplayModeMulti).Sort(common.SortOrderDescending)).
		Targets(withRefIDs(qs))
}

// single is a stat panel showing the last value, 4 units wide and 4 high.
// noValue is what it shows when the query has no series (no alert firing).
func single(title, description, unit, noValue string, q *prometheus.DataqueryBuilder) *stat.PanelBuilder {
	p := stat.NewPanelBuilder().
		Title(title).Description(description).Datasource(datasource()).
		Unit(unit).Span(4).Height(4).
		GraphMode(common.BigValueGraphModeArea).ColorMode(common.BigValueColorModeValue).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}).Values(false)).
		Targets(withRefIDs([]*prometheus.DataqueryBuilder{q}))
	if noValue != "" {
		p = p.NoValue(noValue)
	}
	return p
}

// list is a table of an instant query's series, one row each, 24 wide.
func list(title, description string, q *prometheus.DataqueryBuilder) *table.PanelBuilder {
	return table.NewPanelBuilder().
		Title(title).Description(description).Datasource(datasource()).
		Span(24).Height(8).
		NoValue("none").
		Targets(withRefIDs([]*prometheus.DataqueryBuilder{q.Format(prometheus.PromQueryFormatTable).Instant()}))
}

// band overrides make the series named lower and upper a shaded band
// (Grafana fills from upper down to lower) instead of two lines.
func band(p *timeseries.PanelBuilder) *timeseries.PanelBuilder {
	return p.
		OverrideByName("upper", []dashboard.DynamicConfigValue{
			{Id: "custom.fillBelowTo", Value: "lower"},
			{Id: "custom.lineWidth", Value: 0},
			{Id: "custom.fillOpacity", Value: 20},
			{Id: "color", Value: map[string]any{"mode": "fixed", "fixedColor": "green"}},
		}).
		OverrideByName("lower", []dashboard.DynamicConfigValue{
			{Id: "custom.lineWidth", Value: 0},
			{Id: "custom.fillOpacity", Value: 0},
			{Id: "custom.hideFrom", Value: map[string]any{"legend": true, "tooltip": false, "viz": false}},
			{Id: "color", Value: map[string]any{"mode": "fixed", "fixedColor": "green"}},
		})
}

// row starts a titled section.
func row(title string) *dashboard.RowBuilder {
	return dashboard.NewRowBuilder(title)
}

// labelVariable is a template variable listing the values of label on
// metric (Grafana's label_values), refreshed with the time range. selector
// narrows it (e.g. by another variable) and may be empty.
func labelVariable(name, label, metric, selector, current string, multi bool) *dashboard.QueryVariableBuilder {
	expr := "label_values(" + metric + selector + ", " + label + ")"
	v := dashboard.NewQueryVariableBuilder(name).
		Label(label).
		Datasource(datasource()).
		Query(dashboard.StringOrMap{String: cog.ToPtr(expr)}).
		Definition(expr).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalAsc)
	if multi {
		v = v.Multi(true).IncludeAll(true).AllValue(".*")
	}
	if current != "" {
		v = v.Current(dashboard.VariableOption{
			Selected: cog.ToPtr(true),
			Text:     dashboard.StringOrArrayOfString{String: cog.ToPtr(current)},
			Value:    dashboard.StringOrArrayOfString{String: cog.ToPtr(current)},
		})
	}
	return v
}
