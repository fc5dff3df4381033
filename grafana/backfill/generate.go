package backfill

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"opspilot/tsdb"
)

// Label is the label every backfilled series carries, with value "demo":
// delete the history with match[]={backfill="demo"}.
const Label = "backfill"

// SelfInstance is the instance label of the backfilled self-metrics
// (job="opspilot"), so they never merge with a running server's.
const SelfInstance = "backfill"

// Config says how much history to make.
type Config struct {
	// Days of history, ending at End.
	Days int
	// Step between samples of every series, older than every tier.
	Step time.Duration
	// Tiers are finer steps for the newest part of the history, so that
	// dashboards over the last hours (whose rate windows Grafana sizes
	// from the time range: 40 s over 6 h) have samples in every window.
	Tiers []Tier
	// End is the newest sample's time (default: now).
	End time.Time
	// Seed makes the noise and the incidents; the same seed and End give
	// the same samples.
	Seed uint64
	// ChunkSteps is how many steps Run generates and writes at a time.
	ChunkSteps int
}

// A Tier samples the last Within of the history every Step.
type Tier struct {
	Within time.Duration
	Step   time.Duration
}

// DefaultConfig is 30 days at a 5-minute step, the last 3 days every
// minute and the last 6 hours every 15 s: about 8 million samples,
// written in well under a minute to the embedded TSDB.
func DefaultConfig() Config {
	return Config{
		Days: 30, Step: 5 * time.Minute,
		Tiers:      []Tier{{Within: 6 * time.Hour, Step: 15 * time.Second}, {Within: 72 * time.Hour, Step: time.Minute}},
		Seed:       1,
		ChunkSteps: 720,
	}
}

// Validate reports what is wrong with c, saying how to fix it.
func (c Config) Validate() error {
	var errs []error
	if c.Days < 1 || c.Days > 400 {
		errs = append(errs, fmt.Errorf("days %d: use 1 to 400 (the TSDB keeps tsdb.embedded.retention, 30d by default)", c.Days))
	}
	if c.Step < 10*time.Second || c.Step > time.Hour {
		errs = append(errs, fmt.Errorf("step %s: use 10s to 1h (5m keeps 30 days at a few million samples)", c.Step))
	}
	for i, t := range c.Tiers {
		if t.Step < time.Second || t.Step > c.Step {
			errs = append(errs, fmt.Errorf("tiers[%d].step %s: use 1s up to the step (%s)", i, t.Step, c.Step))
		}
		if i > 0 && (t.Within <= c.Tiers[i-1].Within || t.Step < c.Tiers[i-1].Step) {
			errs = append(errs, fmt.Errorf("tiers[%d]: order the tiers newest first: within and step growing", i))
		}
	}
	if c.ChunkSteps < 1 {
		errs = append(errs, fmt.Errorf("chunk steps %d: must be at least 1", c.ChunkSteps))
	}
	return errors.Join(errs...)
}

// Times are the sample times, oldest first: End, and back from it by the
// step of the tier each time falls in, while inside Days (strictly, so a
// history as long as the TSDB's retention is not cut at its first sample).
func (c Config) Times() []time.Time {
	oldest := c.End.Add(-time.Duration(c.Days) * 24 * time.Hour)
	var out []time.Time
	for t := c.End; t.After(oldest); {
		out = append(out, t)
		step := c.Step
		for _, tier := range c.Tiers {
			if c.End.Sub(t) < tier.Within {
				step = tier.Step
				break
			}
		}
		t = t.Add(-step)
	}
	slices.Reverse(out)
	return out
}

// Start is the oldest sample's time.
func (c Config) Start() time.Time {
	ts := c.Times()
	if len(ts) == 0 {
		return c.End
	}
	return ts[0]
}

// Incident is one stretch of trouble in the history.
type Incident struct {
	Service string
	Start   time.Time
	// Duration of the surge; errors and alerts last as long.
	Duration time.Duration
	// Surge multiplies the service's traffic.
	Surge float64
	// ErrorRatio is the share of requests failing (5xx).
	ErrorRatio float64
}

func (in Incident) active(t time.Time) bool {
	return !t.Before(in.Start) && t.Before(in.Start.Add(in.Duration))
}

// Incidents are the incidents of the history c describes, mostly on
// billing: the newest ended 1 to 3 hours before End (so the dashboards'
// default 6 hours show one, and no alert is left firing), the others every
// 4 to 8 days back.
func (c Config) Incidents() []Incident {
	r := rand.New(rand.NewPCG(c.Seed, 0x1c1de47))
	services := []string{"billing", "checkout", "billing", "catalog"}
	var out []Incident
	start := c.Start()
	dur := time.Duration(30+r.IntN(60)) * time.Minute
	at := c.End.Add(-time.Hour - time.Duration(r.IntN(120))*time.Minute - dur)
	for i := 0; !at.Before(start); i++ {
		out = append(out, Incident{
			Service:    services[i%len(services)],
			Start:      at,
			Duration:   dur,
			Surge:      2.5 + r.Float64()*2,
			ErrorRatio: 0.03 + r.Float64()*0.12,
		})
		dur = time.Duration(30+r.IntN(60)) * time.Minute
		at = at.Add(-time.Duration(4*24+r.IntN(4*24)) * time.Hour)
	}
	return out
}

// fleet is the simulated system.
type datacenter struct {
	name  string
	share float64 // of each service's instances
	nodes []*node
	// batch is the share of each node's CPU that work outside the
	// services takes (batch jobs, other tenants) 30 days before the end,
	// and batchGrowth how much it adds a day: capacity planners see dc-b
	// heading for its limit.
	batch, batchGrowth float64
}

type node struct {
	dc, name string
	cpus     int
	memTotal float64
	fsSize   [2]float64
	load     [3]float64 // 1, 5, 15 minute averages
	// per step, summed from the instances placed on the node
	cpu, mem, rps float64
	batch         func(t time.Time) float64
}

type service struct {
	name, tenant    string
	baseRPS         float64 // mean requests per second at the end
	perInstance     float64 // the autoscaler's per-instance target
	min, max        int
	cpuPerReq       float64 // CPU seconds per request
	memBase, memReq float64 // bytes per instance, + bytes per req/s
	latency         float64 // median seconds when idle
	replicas        int     // replicas the service runs this step
}

// world holds the fleet and the series being built.
type world struct {
	cfg       Config
	start     time.Time     // the oldest sample's time
	dt        time.Duration // time since the previous step
	r         *rand.Rand
	dcs       []*datacenter
	services  []*service
	incidents []Incident
	series    []*tsdb.TimeSeries
	index     map[string]int
	totals    []float64 // counters' totals, by series index
	key       []byte
	samples   int64
}

func newWorld(cfg Config) *world {
	w := &world{cfg: cfg, r: rand.New(rand.NewPCG(cfg.Seed, 0xba5e)), index: map[string]int{}}
	for _, d := range []struct {
		name, short        string
		share              float64
		batch, batchGrowth float64
	}{{"dc-a", "a", 0.6, 0.12, 0.002}, {"dc-b", "b", 0.4, 0.25, 0.01}} {
		dc := &datacenter{name: d.name, share: d.share, batch: d.batch, batchGrowth: d.batchGrowth}
		batch := func(t time.Time) float64 {
			days := 30 - w.cfg.End.Sub(t).Hours()/24
			return dc.batch + dc.batchGrowth*days
		}
		for i := 1; i <= 3; i++ {
			dc.nodes = append(dc.nodes, &node{dc: d.name, name: "node-" + d.short + strconv.Itoa(i), cpus: 8,
				memTotal: 32 << 30, fsSize: [2]float64{100 << 30, 500 << 30}, batch: batch})
		}
		w.dcs = append(w.dcs, dc)
	}
	w.services = []*service{
		{name: "billing", tenant: "demo", baseRPS: 220, perInstance: 50, min: 3, max: 40, cpuPerReq: 0.004, memBase: 48 << 20, memReq: 0.4 * (1 << 20), latency: 0.018},
		{name: "checkout", tenant: "shop", baseRPS: 90, perInstance: 40, min: 2, max: 12, cpuPerReq: 0.006, memBase: 96 << 20, memReq: 0.8 * (1 << 20), latency: 0.035},
		{name: "catalog", tenant: "shop", baseRPS: 400, perInstance: 120, min: 2, max: 10, cpuPerReq: 0.0015, memBase: 160 << 20, memReq: 0.2 * (1 << 20), latency: 0.008},
	}
	for _, s := range w.services {
		s.replicas = s.min
	}
	w.incidents = cfg.Incidents()
	return w
}

// lookup returns the index of the series name{labels...} (label pairs),
// creating it on first use.
func (w *world) lookup(name string, labels []string) int {
	w.key = append(w.key[:0], name...)
	for _, l := range labels {
		w.key = append(w.key, 0)
		w.key = append(w.key, l...)
	}
	if i, ok := w.index[string(w.key)]; ok {
		return i
	}
	ls := make([]tsdb.Label, 0, len(labels)/2+2)
	ls = append(ls, tsdb.Label{Name: "__name__", Value: name}, tsdb.Label{Name: Label, Value: "demo"})
	for j := 0; j+1 < len(labels); j += 2 {
		ls = append(ls, tsdb.Label{Name: labels[j], Value: labels[j+1]})
	}
	i := len(w.series)
	w.series = append(w.series, &tsdb.TimeSeries{Labels: ls})
	w.totals = append(w.totals, 0)
	w.index[string(w.key)] = i
	return i
}

// emit appends one sample to the series name{labels...}.
func (w *world) emit(t int64, v float64, name string, labels ...string) {
	s := w.series[w.lookup(name, labels)]
	s.Samples = append(s.Samples, tsdb.Sample{Timestamp: t, Value: v})
	w.samples++
}

// count adds inc (≥ 0) to a counter and emits its total.
func (w *world) count(t int64, inc float64, name string, labels ...string) {
	i := w.lookup(name, labels)
	w.totals[i] += max(inc, 0)
	s := w.series[i]
	s.Samples = append(s.Samples, tsdb.Sample{Timestamp: t, Value: w.totals[i]})
	w.samples++
}

// histogram adds n observations, log-normally spread around median, to the
// cumulative buckets of a histogram (and its _sum and _count).
func (w *world) histogram(t int64, n, median float64, bounds []float64, name string, labels ...string) {
	const sigma = 0.6
	for _, le := range bounds {
		frac := 0.5 * math.Erfc(-(math.Log(le)-math.Log(median))/(sigma*math.Sqrt2))
		w.count(t, n*frac, name+"_bucket", append(labels, "le", strconv.FormatFloat(le, 'g', -1, 64))...)
	}
	w.count(t, n, name+"_bucket", append(labels, "le", "+Inf")...)
	w.count(t, n, name+"_count", labels...)
	w.count(t, n*median*math.Exp(sigma*sigma/2), name+"_sum", labels...)
}

// The buckets of the real histograms.
var (
	gatewayBuckets    = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	httpBuckets       = []float64{0.0005, 0.002, 0.008, 0.032, 0.128, 0.512, 2.048, 8.192, 32.768}
	autoscalerBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}
)

// wave is the traffic shape: a daily sine peaking mid-afternoon UTC,
// quieter weekends, and growth of a third over 30 days up to End.
func (w *world) wave(t time.Time) float64 {
	h := float64(t.Hour()) + float64(t.Minute())/60
	daily := 1 + 0.45*math.Sin(2*math.Pi*(h-10)/24)
	weekly := 1.0
	switch t.Weekday() {
	case time.Saturday:
		weekly = 0.75
	case time.Sunday:
		weekly = 0.7
	}
	growth := 1 / (1 + 0.33*w.cfg.End.Sub(t).Hours()/(30*24))
	return daily * weekly * growth
}

func (w *world) noise(sd float64) float64 {
	return math.Max(0, 1+w.r.NormFloat64()*sd)
}

// step generates every series' sample at t, dt after the previous one.
func (w *world) step(t time.Time, dt time.Duration) {
	w.dt = dt
	ts := t.UnixMilli()
	sec := w.dt.Seconds()
	self := []string{"job", "opspilot", "instance", SelfInstance}
	for _, dc := range w.dcs {
		for _, n := range dc.nodes {
			n.cpu, n.mem, n.rps = 0, 0, 0
		}
	}
	var totalReqs float64
	var created, stopped float64
	var firing []Incident
	for _, in := range w.incidents {
		if in.active(t) {
			firing = append(firing, in)
		}
	}
	for _, s := range w.services {
		expected := s.baseRPS * w.wave(t)
		rps := expected * w.noise(0.05)
		errRatio := 0.0005 * w.noise(0.5)
		var incident *Incident
		for i := range firing {
			if firing[i].Service == s.name {
				incident = &firing[i]
				rps *= incident.Surge
				errRatio += incident.ErrorRatio * w.noise(0.2)
			}
		}
		// The autoscaler: desired from the per-instance target, applied
		// this step (current is last step's).
		current := s.replicas
		desired := min(max(int(math.Ceil(rps/s.perInstance)), s.min), s.max)
		util := rps / (float64(current) * s.perInstance * 2)
		if util > 1 {
			errRatio += (util - 1) / util
		}
		errRatio = math.Min(errRatio, 0.9)
		median := s.latency * (1 + 1.5*util*util)
		if incident != nil {
			median *= 4
		}
		w.autoscaler(ts, s, current, desired, rps, self)
		if desired > current {
			created += float64(desired - current)
		} else {
			stopped += float64(current - desired)
		}
		s.replicas = desired

		// Instances, spread over the datacenters by share and over each
		// datacenter's nodes round-robin.
		perInstance := rps / float64(current)
		inA := int(math.Ceil(float64(current) * w.dcs[0].share))
		for di, dc := range w.dcs {
			count := inA
			if di > 0 {
				count = current - inA
			}
			dcRPS := perInstance * float64(count)
			totalReqs += dcRPS * sec
			if count > 0 {
				w.count(ts, dcRPS*sec*(1-errRatio), "opspilot_gateway_requests_total", "service", s.name, "datacenter", dc.name, "code", "200", "job", "opspilot", "instance", SelfInstance)
				w.count(ts, dcRPS*sec*errRatio, "opspilot_gateway_requests_total", "service", s.name, "datacenter", dc.name, "code", "503", "job", "opspilot", "instance", SelfInstance)
				w.histogram(ts, dcRPS*sec, median, gatewayBuckets, "opspilot_gateway_request_duration_seconds", "service", s.name, "datacenter", dc.name, "job", "opspilot", "instance", SelfInstance)
			}
			for i := range count {
				n := dc.nodes[i%len(dc.nodes)]
				inst := s.name + "-" + dc.name[len(dc.name)-1:] + strconv.Itoa(i+1)
				labels := []string{"datacenter", dc.name, "node", n.name, "service", s.name, "instance", inst, "tenant", s.tenant}
				cpu := (0.01 + perInstance*s.cpuPerReq) * w.noise(0.08)
				mem := (s.memBase + perInstance*s.memReq) * w.noise(0.02)
				w.count(ts, cpu*sec, "container_cpu_usage_seconds_total", labels...)
				w.emit(ts, mem, "container_memory_working_set_bytes", labels...)
				// Limits, as the collector reads them from the cgroup: one
				// two cores and 1 GiB per instance.
				w.emit(ts, 200000, "container_spec_cpu_quota", labels...)
				w.emit(ts, 100000, "container_spec_cpu_period", labels...)
				w.emit(ts, 1<<30, "container_spec_memory_limit_bytes", labels...)
				if s.name == "billing" {
					job := append([]string{"job", "billing"}, labels...)
					for _, op := range []struct {
						name  string
						share float64
					}{{"pay", 0.9}, {"refund", 0.1}} {
						reqs := perInstance * sec * op.share
						w.count(ts, reqs*(1-errRatio), "billing_transactions_total", append(job, "op", op.name, "result", "ok")...)
						w.count(ts, reqs*errRatio, "billing_transactions_total", append(job, "op", op.name, "result", "error")...)
					}
				}
				n.cpu += cpu
				n.mem += mem
				n.rps += perInstance
			}
		}
		w.anomalies(ts, s, t, rps, expected, errRatio, median, incident != nil)
	}
	for _, dc := range w.dcs {
		for _, n := range dc.nodes {
			w.host(ts, n, t)
		}
		w.emit(ts, float64(len(dc.nodes)), "opspilot_orchestrator_nodes", "datacenter", dc.name, "state", "ready", "job", "opspilot", "instance", SelfInstance)
	}
	w.count(ts, created, "opspilot_orchestrator_instances_created_total", self...)
	// Scale-downs: asked to stop, and confirmed by the agents.
	w.count(ts, stopped, "opspilot_orchestrator_instances_stopped_total", append(self, "reason", "stop")...)
	w.count(ts, stopped, "opspilot_orchestrator_instances_stopped_total", append(self, "reason", "stopped")...)
	w.alerts(ts, t, firing, self)
	w.selfMetrics(ts, totalReqs, self)
}

func (w *world) autoscaler(ts int64, s *service, current, desired int, rps float64, self []string) {
	sec := w.dt.Seconds()
	l := append([]string{"service", s.name}, self...)
	w.emit(ts, float64(current), "opspilot_autoscaler_current_replicas", l...)
	w.emit(ts, float64(desired), "opspilot_autoscaler_desired_replicas", l...)
	w.emit(ts, math.Ceil(rps/s.perInstance), "opspilot_autoscaler_recommended_replicas", l...)
	w.emit(ts, math.Ceil(rps*1.05/s.perInstance), "opspilot_autoscaler_predicted_replicas", l...)
	w.emit(ts, rps/float64(current), "opspilot_autoscaler_metric_value", append(l, "metric", "metrics[0]")...)
	w.emit(ts, s.perInstance, "opspilot_autoscaler_metric_target", append(l, "metric", "metrics[0]")...)
	up, down := 0.0, 0.0
	switch {
	case desired > current:
		up = 1
	case desired < current:
		down = 1
	}
	w.count(ts, up, "opspilot_autoscaler_scalings_total", append(l, "direction", "up")...)
	w.count(ts, down, "opspilot_autoscaler_scalings_total", append(l, "direction", "down")...)
	limited := 0.0
	if math.Ceil(rps/s.perInstance) < float64(current) {
		limited = sec / 2 // the scale-down window holds about half the evaluations of a falling step
	}
	w.count(ts, limited, "opspilot_autoscaler_limited_total", append(l, "limited_by", "scale-down-window")...)
	w.count(ts, sec-up-down, "opspilot_autoscaler_evaluations_total", append(l, "action", "none")...)
	w.count(ts, up+down, "opspilot_autoscaler_evaluations_total", append(l, "action", "scaled")...)
	w.histogram(ts, sec, 0.002*w.noise(0.2), autoscalerBuckets, "opspilot_autoscaler_decision_duration_seconds", l...)
}

// anomalies writes the analyzer's view of a service's three KPIs: what it
// expected, the normal band, and the score (high when outside the band).
func (w *world) anomalies(ts int64, s *service, t time.Time, rps, expectedRPS, errRatio, median float64, incident bool) {
	p95 := func(m float64) float64 { return m * math.Exp(1.645*0.6) }
	expectedUtil := expectedRPS / (float64(s.replicas) * s.perInstance * 2)
	for _, k := range []struct {
		name                    string
		actual, expected, width float64
	}{
		{"service_requests", rps, expectedRPS, 0.25 * expectedRPS},
		{"service_error_ratio", errRatio, 0.0005, 0.002},
		{"service_latency_p95", p95(median), p95(s.latency * (1 + 1.5*expectedUtil*expectedUtil)), 0.4 * p95(s.latency)},
	} {
		l := []string{"service", s.name, "for", k.name}
		dev := math.Abs(k.actual-k.expected) / k.width
		score := 1 - math.Exp(-dev*dev/2)
		if incident {
			score = math.Max(score, 0.95+0.05*w.r.Float64())
		}
		w.emit(ts, score, "anomaly_score", l...)
		w.emit(ts, k.expected, "anomaly_expected", l...)
		w.emit(ts, math.Max(k.expected-k.width, 0), "anomaly_lower", l...)
		w.emit(ts, k.expected+k.width, "anomaly_upper", l...)
	}
}

func (w *world) host(ts int64, n *node, t time.Time) {
	sec := w.dt.Seconds()
	l := []string{"datacenter", n.dc, "node", n.name}
	busy := math.Min(0.03+n.batch(t)*(0.8+0.2*w.wave(t))+n.cpu/float64(n.cpus), 0.97) * w.noise(0.05)
	busy = math.Min(busy, 0.97)
	for c := range n.cpus {
		cpu := strconv.Itoa(c)
		share := busy * w.noise(0.1)
		share = math.Min(share, 0.99)
		for _, m := range []struct {
			mode string
			part float64
		}{{"user", 0.7 * share}, {"system", 0.22 * share}, {"iowait", 0.08 * share}, {"idle", 1 - share}} {
			w.count(ts, m.part*sec, "node_cpu_seconds_total", append(l, "cpu", cpu, "mode", m.mode)...)
		}
	}
	load := busy * float64(n.cpus) * w.noise(0.1)
	n.load[0] = load
	n.load[1] += (load - n.load[1]) * 0.6
	n.load[2] += (load - n.load[2]) * 0.3
	w.emit(ts, n.load[0], "node_load1", l...)
	w.emit(ts, n.load[1], "node_load5", l...)
	w.emit(ts, n.load[2], "node_load15", l...)
	w.emit(ts, n.memTotal, "node_memory_MemTotal_bytes", l...)
	w.emit(ts, math.Max(n.memTotal-(3<<30)*w.noise(0.03)-n.mem, 0), "node_memory_MemAvailable_bytes", l...)
	// The data disk fills with the traffic: from about 40% to 60% in a month.
	age := 1 - w.cfg.End.Sub(t).Hours()/(30*24)
	for i, fs := range []struct{ device, mountpoint string }{{"/dev/sda1", "/"}, {"/dev/sdb1", "/var/lib/opspilot"}} {
		used := 0.3 + 0.02*math.Sin(float64(t.Unix())/86400)
		if i == 1 {
			used = 0.5 + 0.2*age
		}
		fl := append(l, "device", fs.device, "fstype", "ext4", "mountpoint", fs.mountpoint)
		w.emit(ts, n.fsSize[i], "node_filesystem_size_bytes", fl...)
		w.emit(ts, n.fsSize[i]*(1-used), "node_filesystem_avail_bytes", fl...)
	}
	net := append(l, "device", "eth0")
	w.count(ts, (2e4+n.rps*3000)*sec*w.noise(0.1), "node_network_receive_bytes_total", net...)
	w.count(ts, (1e4+n.rps*9000)*sec*w.noise(0.1), "node_network_transmit_bytes_total", net...)
	disk := append(l, "device", "sda")
	w.count(ts, (5e4+n.rps*200)*sec*w.noise(0.2), "node_disk_read_bytes_total", disk...)
	w.count(ts, (2e5+n.rps*1500)*sec*w.noise(0.2), "node_disk_written_bytes_total", disk...)
}

// alerts writes ALERTS and ALERTS_FOR_STATE for the billing incidents (the
// demo's rules: BillingErrorRatioHigh, BillingAnomaly pending for a step
// before it fires) and alerting's counters.
func (w *world) alerts(ts int64, t time.Time, firing []Incident, self []string) {
	var fired, resolved, sent float64
	for _, in := range w.incidents {
		if in.Service != "billing" {
			continue
		}
		was, is := in.active(t.Add(-w.dt)), in.active(t)
		if is && !was {
			fired++
		}
		if was && !is {
			resolved++
		}
	}
	for _, in := range firing {
		if in.Service != "billing" {
			continue
		}
		active := float64(in.Start.Unix())
		w.emit(ts, 1, "ALERTS", "alertname", "BillingErrorRatioHigh", "alertstate", "firing", "service", "billing", "severity", "critical")
		w.emit(ts, active, "ALERTS_FOR_STATE", "alertname", "BillingErrorRatioHigh", "service", "billing", "severity", "critical")
		state := "firing"
		if t.Sub(in.Start) < w.dt {
			state = "pending"
		}
		w.emit(ts, 1, "ALERTS", "alertname", "BillingAnomaly", "alertstate", state, "service", "billing", "severity", "warning")
		w.emit(ts, active, "ALERTS_FOR_STATE", "alertname", "BillingAnomaly", "service", "billing", "severity", "warning")
		sent += 2
	}
	w.count(ts, fired, "opspilot_alerting_alert_transitions_total", append(self, "event", "fired")...)
	w.count(ts, resolved, "opspilot_alerting_alert_transitions_total", append(self, "event", "resolved")...)
	w.count(ts, sent, "opspilot_alerting_alerts_sent_total", self...)
	w.count(ts, fired, "opspilot_alerting_events_total", append(self, "type", "fired")...)
	w.count(ts, fired, "opspilot_alerting_events_total", append(self, "type", "notified")...)
	w.count(ts, resolved, "opspilot_alerting_events_total", append(self, "type", "resolved")...)
}

func (w *world) selfMetrics(ts int64, reqs float64, self []string) {
	sec := w.dt.Seconds()
	start := float64(w.start.Unix())
	w.emit(ts, 1, "up", self...)
	w.emit(ts, start, "opspilot_start_time_seconds", self...)
	w.emit(ts, (140<<20)*w.noise(0.05)+reqs/sec*2e4, "process_resident_memory_bytes", self...)
	w.emit(ts, 310*w.noise(0.05), "go_goroutines", self...)
	w.emit(ts, 0, "opspilot_tsdb_unclean_shutdown", self...)
	series := float64(len(w.series))
	w.count(ts, series/10*sec, "opspilot_selfmon_shipped_samples_total", self...)
	w.count(ts, series*sec*w.noise(0.02), "opspilot_tsdb_client_written_samples_total", self...)
	w.count(ts, 0, "opspilot_tsdb_client_failed_samples_total", self...)
	w.count(ts, series*0.8*sec*w.noise(0.02), "opspilot_agent_samples_sent_total", self...)
	w.emit(ts, math.Floor(3*w.noise(0.5)), "opspilot_agent_queue_records", self...)
	for _, h := range []struct {
		handler string
		rate    float64
		median  float64
	}{{"prometheus", 2.5, 0.004}, {"agent_heartbeat", 6, 0.0008}, {"endpoints", 1, 0.001}, {"services", 0.2, 0.002}} {
		l := append(self, "handler", h.handler)
		w.count(ts, h.rate*sec*w.noise(0.1), "opspilot_http_requests_total", append(l, "code", "200")...)
		w.histogram(ts, h.rate*sec, h.median*w.noise(0.1), httpBuckets, "opspilot_http_request_duration_seconds", l...)
	}
	w.histogram(ts, sec, 0.003*w.noise(0.1), httpBuckets, "opspilot_orchestrator_reconcile_duration_seconds", self...)
	scored := float64(len(w.services)*3+6*3) / 10 * sec
	w.count(ts, scored*w.noise(0.02), "opspilot_analyzer_points_scored_total", self...)
	w.emit(ts, float64(len(w.services)*3+6*3), "opspilot_analyzer_series", self...)
	w.count(ts, 5*sec*w.noise(0.02), "opspilot_alerting_written_samples_total", self...)
}
