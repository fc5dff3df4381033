package report

import (
	"bytes"
	"cmp"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"html/template"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"

	opmodel "opspilot/orchestrator/model"
)

// Severities of inspection findings, worst last.
const (
	SeverityOK       = "ok"
	SeverityWarning  = "warning"
	SeverityCritical = "critical"
)

func severityRank(s string) int {
	switch s {
	case SeverityCritical:
		return 2
	case SeverityWarning:
		return 1
	}
	return 0
}

// InspectionOptions configures BuildInspection. The zero value checks the
// last 24 hours with the defaults below.
type InspectionOptions struct {
	// Now is the end of the window; zero means time.Now().
	Now time.Time
	// Window is how far back the day's alerts, anomalies, incidents and
	// restarts are read (default 24h).
	Window time.Duration
	// DiskThreshold is the used fraction of a filesystem that is reported
	// (default 0.85); 0.95 and above is critical.
	DiskThreshold float64
	// NodeSilence is how long a node may send no host metrics before it
	// counts as down (default 2m).
	NodeSilence time.Duration
	// CertFiles are PEM certificates to check (the control plane's CA and
	// server certificate, TLS files in config); CertWarn is how close to
	// expiry is reported (default 30 days; under 7 days is critical).
	CertFiles []string
	CertWarn  time.Duration
	// NoisyAlerts is how often an alert must fire in the window to count
	// as noisy (default 5).
	NoisyAlerts int
	// AnomalyScore is the score that counts as an anomaly (default 0.9,
	// the analyzer's alarm level).
	AnomalyScore float64
}

func (o InspectionOptions) withDefaults() InspectionOptions {
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.Window <= 0 {
		o.Window = 24 * time.Hour
	}
	if o.DiskThreshold <= 0 {
		o.DiskThreshold = 0.85
	}
	if o.NodeSilence <= 0 {
		o.NodeSilence = 2 * time.Minute
	}
	if o.CertWarn <= 0 {
		o.CertWarn = 30 * 24 * time.Hour
	}
	if o.NoisyAlerts <= 0 {
		o.NoisyAlerts = 5
	}
	if o.AnomalyScore <= 0 {
		o.AnomalyScore = 0.9
	}
	return o
}

// InspectionReport is the daily inspection: one check per concern.
type InspectionReport struct {
	Generated, Start, End time.Time
	Checks                []Check
	Notes                 []string
}

// Check is one concern: its worst severity, a one-line summary and the
// findings behind it.
type Check struct {
	Name     string
	Severity string
	Summary  string
	Findings []Finding
	// Err says what could not be read (the check may be incomplete).
	Err string
}

// Finding is one thing found: a node, a disk, an instance, a certificate…
type Finding struct {
	Severity   string
	Datacenter string
	Subject    string
	Detail     string
}

// Check names.
const (
	CheckNodes        = "Nodes down"
	CheckDisks        = "Disks over the threshold"
	CheckRestarts     = "Instances restarting"
	CheckCertificates = "Certificates close to expiry"
	CheckAlerts       = "Noisy alerts"
	CheckAnomalies    = "Anomalies"
	CheckIncidents    = "Incidents"
)

// Worst is the report's worst severity.
func (r *InspectionReport) Worst() string {
	w := SeverityOK
	for _, c := range r.Checks {
		if severityRank(c.Severity) > severityRank(w) {
			w = c.Severity
		}
	}
	return w
}

// Check returns the named check (nil if absent).
func (r *InspectionReport) Check(name string) *Check {
	for i := range r.Checks {
		if r.Checks[i].Name == name {
			return &r.Checks[i]
		}
	}
	return nil
}

// BuildInspection runs every check across all datacenters. cp may be
// nil: the checks then use the TSDB alone.
func BuildInspection(ctx context.Context, q Querier, cp ControlPlane, opts InspectionOptions) (*InspectionReport, error) {
	o := opts.withDefaults()
	if o.DiskThreshold >= 1 {
		return nil, fmt.Errorf("inspection: disk threshold %v: use a fraction below 1, e.g. 0.85", o.DiskThreshold)
	}
	end := o.Now.UTC()
	rep := &InspectionReport{Generated: end, Start: end.Add(-o.Window), End: end}
	if cp == nil {
		rep.Notes = append(rep.Notes, "no control plane API: node states, incidents and alert events are not checked")
	}
	w := model.Duration(o.Window).String()
	rep.Checks = append(rep.Checks,
		nodesCheck(ctx, q, cp, o, w),
		disksCheck(ctx, q, o),
		restartsCheck(ctx, q, cp, o, w),
		certificatesCheck(o),
		alertsCheck(ctx, q, cp, o, w, rep.Start),
		anomaliesCheck(ctx, q, o, w),
		incidentsCheck(ctx, cp, rep.Start),
	)
	for i := range rep.Checks {
		c := &rep.Checks[i]
		slices.SortStableFunc(c.Findings, func(a, b Finding) int {
			return cmp.Or(-cmp.Compare(severityRank(a.Severity), severityRank(b.Severity)), cmp.Compare(a.Datacenter, b.Datacenter), cmp.Compare(a.Subject, b.Subject))
		})
		if c.Severity == "" {
			c.Severity = SeverityOK
		}
		for _, f := range c.Findings {
			if severityRank(f.Severity) > severityRank(c.Severity) {
				c.Severity = f.Severity
			}
		}
	}
	return rep, nil
}

func nodesCheck(ctx context.Context, q Querier, cp ControlPlane, o InspectionOptions, w string) Check {
	c := Check{Name: CheckNodes}
	seen := map[string]bool{}
	total := 0
	var errs []string
	if cp != nil {
		nodes, err := cp.Nodes(ctx)
		if err != nil {
			errs = append(errs, err.Error())
		}
		total = len(nodes)
		for _, n := range nodes {
			seen[n.Name] = true
			if n.Status.State != opmodel.NodeReady {
				detail := "state " + cmp.Or(n.Status.State, "unknown")
				if !n.Status.Since.IsZero() {
					detail += " since " + n.Status.Since.UTC().Format("2006-01-02 15:04 MST")
				}
				c.Findings = append(c.Findings, Finding{Severity: SeverityCritical, Datacenter: n.Datacenter, Subject: n.Name, Detail: detail + fmt.Sprintf(" (%d instances)", n.Instances)})
			}
		}
	}
	// Nodes whose agent stopped sending host metrics in the window.
	expr := fmt.Sprintf(`time() - tlast_over_time(node_memory_MemTotal_bytes[%s])`, w)
	ss, err := queryInstant(ctx, q, expr, o.Now)
	if err != nil {
		errs = append(errs, err.Error())
	}
	for _, s := range ss {
		node, dc := string(s.Labels["node"]), string(s.Labels["datacenter"])
		if !seen[node] {
			seen[node] = true
			total++
		}
		if s.V <= o.NodeSilence.Seconds() {
			continue
		}
		if slices.ContainsFunc(c.Findings, func(f Finding) bool { return f.Subject == node }) {
			continue
		}
		last := o.Now.Add(-time.Duration(s.V * float64(time.Second))).UTC()
		c.Findings = append(c.Findings, Finding{Severity: SeverityCritical, Datacenter: dc, Subject: node,
			Detail: "no host metrics since " + last.Format("2006-01-02 15:04 MST")})
	}
	c.Err = strings.Join(errs, "; ")
	c.Summary = fmt.Sprintf("%d of %d nodes down", len(c.Findings), total)
	return c
}

func disksCheck(ctx context.Context, q Querier, o InspectionOptions) Check {
	c := Check{Name: CheckDisks}
	const fs = `fstype!~"tmpfs|ramfs|squashfs|overlay|nsfs|devtmpfs"`
	expr := fmt.Sprintf(`1 - node_filesystem_avail_bytes{%[1]s} / node_filesystem_size_bytes{%[1]s} > %[2]g`, fs, o.DiskThreshold)
	ss, err := queryInstant(ctx, q, expr, o.Now)
	if err != nil {
		c.Err = err.Error()
	}
	for _, s := range ss {
		sev := SeverityWarning
		if s.V >= 0.95 {
			sev = SeverityCritical
		}
		c.Findings = append(c.Findings, Finding{Severity: sev, Datacenter: string(s.Labels["datacenter"]),
			Subject: fmt.Sprintf("%s %s", s.Labels["node"], s.Labels["mountpoint"]),
			Detail:  fmt.Sprintf("%.0f%% used (device %s, %s)", 100*s.V, s.Labels["device"], s.Labels["fstype"])})
	}
	c.Summary = fmt.Sprintf("%d filesystems over %.0f%% used", len(c.Findings), 100*o.DiskThreshold)
	return c
}

func restartsCheck(ctx context.Context, q Querier, cp ControlPlane, o InspectionOptions, w string) Check {
	c := Check{Name: CheckRestarts}
	var errs []string
	seen := map[string]bool{}
	expr := fmt.Sprintf(`sum by (datacenter, node, service, instance) (increase(container_restarts_total[%s])) > 0`, w)
	ss, err := queryInstant(ctx, q, expr, o.Now)
	if err != nil {
		errs = append(errs, err.Error())
	}
	for _, s := range ss {
		inst := string(s.Labels["instance"])
		seen[inst] = true
		sev := SeverityWarning
		if s.V >= 5 {
			sev = SeverityCritical
		}
		c.Findings = append(c.Findings, Finding{Severity: sev, Datacenter: string(s.Labels["datacenter"]),
			Subject: fmt.Sprintf("%s (service %s, node %s)", inst, s.Labels["service"], s.Labels["node"]),
			Detail:  fmt.Sprintf("%.0f restarts in the last %s", s.V, w)})
	}
	if cp != nil {
		insts, err := cp.Instances(ctx)
		if err != nil {
			errs = append(errs, err.Error())
		}
		for _, i := range insts {
			if seen[i.ID] || i.Restarts == 0 || i.Desired != opmodel.DesiredRun || i.State == opmodel.StateReady {
				continue
			}
			detail := fmt.Sprintf("%d restarts, now %s", i.Restarts, i.State)
			if i.LastExit != "" {
				detail += ", last exit: " + i.LastExit
			}
			sev := SeverityWarning // restarting now
			if i.State == opmodel.StateFailed || i.Restarts >= 5 {
				sev = SeverityCritical
			}
			c.Findings = append(c.Findings, Finding{Severity: sev, Datacenter: i.Datacenter,
				Subject: fmt.Sprintf("%s (service %s, node %s)", i.ID, i.Service, i.Node), Detail: detail})
		}
	}
	c.Err = strings.Join(errs, "; ")
	c.Summary = fmt.Sprintf("%d instances restarted in the last %s", len(c.Findings), w)
	return c
}

func certificatesCheck(o InspectionOptions) Check {
	c := Check{Name: CheckCertificates}
	var errs []string
	n := 0
	for _, path := range o.CertFiles {
		data, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			continue // e.g. no pki in `opspilot up`'s local mode
		}
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		certs, err := ParseCertificates(data)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", path, err))
			continue
		}
		for _, cert := range certs {
			n++
			left := cert.NotAfter.Sub(o.Now)
			subject := fmt.Sprintf("%s (%s)", path, cmp.Or(cert.Subject.CommonName, cert.Subject.String()))
			switch {
			case left <= 0:
				c.Findings = append(c.Findings, Finding{Severity: SeverityCritical, Subject: subject, Detail: "expired " + cert.NotAfter.UTC().Format(time.DateOnly)})
			case left < 7*24*time.Hour:
				c.Findings = append(c.Findings, Finding{Severity: SeverityCritical, Subject: subject, Detail: fmt.Sprintf("expires %s (in %s)", cert.NotAfter.UTC().Format(time.DateOnly), roundDays(left))})
			case left < o.CertWarn:
				c.Findings = append(c.Findings, Finding{Severity: SeverityWarning, Subject: subject, Detail: fmt.Sprintf("expires %s (in %s)", cert.NotAfter.UTC().Format(time.DateOnly), roundDays(left))})
			}
		}
	}
	c.Err = strings.Join(errs, "; ")
	c.Summary = fmt.Sprintf("%d of %d certificates expire within %s", len(c.Findings), n, roundDays(o.CertWarn))
	return c
}

// ParseCertificates reads every CERTIFICATE block of PEM data.
func ParseCertificates(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(out)+1, err)
		}
		out = append(out, cert)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block in it")
	}
	return out, nil
}

func alertsCheck(ctx context.Context, q Querier, cp ControlPlane, o InspectionOptions, w string, since time.Time) Check {
	c := Check{Name: CheckAlerts}
	fired := map[string]int{}
	var errs []string
	if cp != nil {
		evs, err := cp.AlertEvents(ctx, since)
		if err != nil {
			errs = append(errs, err.Error())
		}
		for _, ev := range evs {
			if ev.Type == "fired" && !ev.Time.Before(since) {
				fired[ev.AlertName]++
			}
		}
	}
	if len(fired) == 0 {
		// Without the event log: how many label sets of each alert fired.
		ss, err := queryInstant(ctx, q, fmt.Sprintf(`count by (alertname) (last_over_time(ALERTS{alertstate="firing"}[%s]))`, w), o.Now)
		if err != nil {
			errs = append(errs, err.Error())
		}
		for _, s := range ss {
			fired[string(s.Labels["alertname"])] += int(s.V)
		}
	}
	total := 0
	for name, n := range fired {
		total += n
		if n >= o.NoisyAlerts {
			c.Findings = append(c.Findings, Finding{Severity: SeverityWarning, Subject: name,
				Detail: fmt.Sprintf("fired %d times in the last %s: tune its threshold or for:, or silence it", n, w)})
		}
	}
	c.Err = strings.Join(errs, "; ")
	c.Summary = fmt.Sprintf("%d alerts fired %d times; %d fired %d times or more", len(fired), total, len(c.Findings), o.NoisyAlerts)
	return c
}

func anomaliesCheck(ctx context.Context, q Querier, o InspectionOptions, w string) Check {
	c := Check{Name: CheckAnomalies}
	ss, err := queryInstant(ctx, q, fmt.Sprintf(`max_over_time(anomaly_score[%s]) >= %g`, w, o.AnomalyScore), o.Now)
	if err != nil {
		c.Err = err.Error()
	}
	slices.SortFunc(ss, func(a, b sample) int { return cmp.Compare(b.V, a.V) })
	for i, s := range ss {
		if i == 20 {
			break
		}
		lbls := make([]string, 0, len(s.Labels))
		for k, v := range s.Labels {
			if k != "for" && k != model.MetricNameLabel {
				lbls = append(lbls, fmt.Sprintf("%s=%s", k, v))
			}
		}
		slices.Sort(lbls)
		c.Findings = append(c.Findings, Finding{Severity: SeverityWarning, Datacenter: string(s.Labels["datacenter"]),
			Subject: string(s.Labels["for"]), Detail: fmt.Sprintf("score %.2f {%s}", s.V, strings.Join(lbls, ", "))})
	}
	c.Summary = fmt.Sprintf("%d series scored %.2f or more in the last %s", len(ss), o.AnomalyScore, w)
	if len(ss) > 20 {
		c.Summary += " (the 20 highest shown)"
	}
	return c
}

func incidentsCheck(ctx context.Context, cp ControlPlane, since time.Time) Check {
	c := Check{Name: CheckIncidents}
	if cp == nil {
		c.Summary = "not checked (no control plane API)"
		return c
	}
	incs, err := cp.Incidents(ctx)
	if err != nil {
		c.Err = err.Error()
	}
	active := 0
	for _, inc := range incs {
		open := inc.State != "resolved"
		if !open && inc.Started.Before(since) && inc.Resolved.Before(since) {
			continue
		}
		sev := SeverityOK
		detail := fmt.Sprintf("%s, started %s", inc.State, inc.Started.UTC().Format("2006-01-02 15:04 MST"))
		if open {
			active++
			sev = SeverityWarning
			if inc.Severity == SeverityCritical {
				sev = SeverityCritical
			}
		} else {
			detail += fmt.Sprintf(", resolved after %s", inc.Resolved.Sub(inc.Started).Round(time.Second))
		}
		if len(inc.Services) > 0 {
			detail += ", services " + strings.Join(inc.Services, ", ")
		}
		c.Findings = append(c.Findings, Finding{Severity: sev, Datacenter: strings.Join(inc.Datacenters, ","), Subject: inc.ID + " " + inc.Title, Detail: detail})
	}
	c.Summary = fmt.Sprintf("%d incidents in the window, %d still open", len(c.Findings), active)
	return c
}

var inspectionTmpl = template.Must(template.New("inspection").Funcs(funcs).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>opspilot inspection {{date .End}}</title>
<style>` + pageStyle + `</style></head>
<body>
<h1>Daily inspection</h1>
<p class="meta">{{stamp .Start}} to {{stamp .End}}, all datacenters. Generated {{stamp .Generated}} by opspilot.</p>
{{range .Notes}}<p class="note">{{.}}</p>{{end}}
<table><tr><th>check</th><th>result</th><th>summary</th></tr>
{{range .Checks}}<tr><td>{{.Name}}</td><td class="{{sevClass .Severity}}">{{.Severity}}</td><td>{{.Summary}}{{if .Err}} <span class="warn">(incomplete: {{.Err}})</span>{{end}}</td></tr>{{end}}
</table>
{{range .Checks}}{{if .Findings}}<section class="block"><h2>{{.Name}}</h2>
<table><tr><th>severity</th><th>datacenter</th><th>what</th><th>detail</th></tr>
{{range .Findings}}<tr><td class="{{sevClass .Severity}}">{{.Severity}}</td><td>{{.Datacenter}}</td><td>{{.Subject}}</td><td>{{.Detail}}</td></tr>{{end}}
</table></section>{{end}}{{end}}
</body></html>
`))

// WriteHTML writes the inspection as one self-contained HTML page.
func (r *InspectionReport) WriteHTML(w io.Writer) error {
	var buf bytes.Buffer
	if err := inspectionTmpl.Execute(&buf, r); err != nil {
		return fmt.Errorf("inspection: render HTML: %w", err)
	}
	_, err := buf.WriteTo(w)
	return err
}

// Text is the inspection for chat: one line per check, then the findings
// that are not ok.
func (r *InspectionReport) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Daily inspection %s: %s\n", r.End.Format(time.DateOnly), strings.ToUpper(r.Worst()))
	for _, c := range r.Checks {
		fmt.Fprintf(&b, "[%s] %s: %s", c.Severity, c.Name, c.Summary)
		if c.Err != "" {
			fmt.Fprintf(&b, " (incomplete: %s)", c.Err)
		}
		b.WriteByte('\n')
		for _, f := range c.Findings {
			if f.Severity == SeverityOK {
				continue
			}
			dc := ""
			if f.Datacenter != "" {
				dc = f.Datacenter + " "
			}
			fmt.Fprintf(&b, "  - %s%s: %s\n", dc, f.Subject, f.Detail)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	return b.String()
}
