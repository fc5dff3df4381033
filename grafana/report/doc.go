// Package report builds opspilot's two reports: the capacity trend report
// for capacity planners (per datacenter, node group and service:
// utilisation trend and peak, a forecast with its interval, time to
// exhaustion, scaling activity, and plain recommendations such as
// "datacenter B needs 40 more cores by 2027-01-15 at current growth") and
// the daily inspection report for SREs (nodes down, full disks,
// restarting instances, certificates close to expiry, noisy alerts, the
// day's anomalies and incidents).
//
// Both are one self-contained HTML file (html/template; gonum/plot charts
// inlined as SVG data: URIs, no external resources) and a plain-text
// summary for chat. PDF is the HTML printed by headless Chromium
// (chromedp, page.PrintToPDF). Scheduler builds them on a weekly or daily
// schedule, keeps them in a directory and posts them to chat (Slack as a
// file, or the console).
//
// Data comes through two interfaces the package defines: Querier (the
// TSDB's Query and QueryRange, satisfied by *tsdb.Client) and
// ControlPlane (nodes, services, instances, events, incidents and alert
// events; APIClient reads them from the REST API). Forecasts are
// opspilot/analyzer/forecast's (Holt-Winters with intervals and time to
// exhaustion); this package only chooses the series and words the result.
//
// It may import opspilot/tsdb, opspilot/analyzer/forecast and
// opspilot/orchestrator/model (plain types); it must not import
// controllers (orchestrator/control, analyzer/online, alerting,
// runbooks, autoscaler): it reads their answers over the API.
package report
