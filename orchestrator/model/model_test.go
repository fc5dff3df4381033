package model

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"opspilot/config"
)

func TestParseMillicores(t *testing.T) {
	tests := []struct {
		in   string
		want Millicores
		err  bool
	}{
		{"500m", 500, false}, {"2", 2000, false}, {"0.5", 500, false}, {"1.25", 1250, false},
		{".5", 500, false}, {"0", 0, false},
		{"", 0, true}, {"-1", 0, true}, {"0.0001", 0, true}, {"1.", 0, true}, {"abc", 0, true},
		{"-5m", 0, true}, {"1e3", 0, true}, {"99999999999999999999", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseMillicores(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseMillicores(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
	for m, want := range map[Millicores]string{2000: "2", 500: "0.5", 1250: "1.25", 0: "0"} {
		if got := m.String(); got != want {
			t.Errorf("Millicores(%d).String() = %q, want %q", int64(m), got, want)
		}
	}
}

func TestParseBytes(t *testing.T) {
	tests := []struct {
		in   string
		want Bytes
		err  bool
	}{
		{"512Mi", 512 << 20, false}, {"2Gi", 2 << 30, false}, {"1G", 1e9, false},
		{"1048576", 1 << 20, false}, {"1k", 1000, false},
		{"", 0, true}, {"-1Mi", 0, true}, {"1.5Gi", 0, true}, {"1Xi", 0, true}, {"9999999Pi", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseBytes(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseBytes(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
	for b, want := range map[Bytes]string{512 << 20: "512Mi", 2 << 30: "2Gi", 1000: "1000", 0: "0"} {
		if got := b.String(); got != want {
			t.Errorf("Bytes(%d).String() = %q, want %q", int64(b), got, want)
		}
	}
}

type serviceFile struct {
	Service Service `yaml:"service"`
}

func (f *serviceFile) Validate() []config.Problem {
	return config.Prefix("service", f.Service.Validate())
}

func TestServiceYAML(t *testing.T) {
	src := `service:
  name: web
  tenant: t1
  runtime: docker
  image: nginx:1.27
  requests: {cpu: 500m, memory: 256Mi}
  limits: {cpu: 1, memory: 1Gi}
  replicas: 3
  ports: [{name: http, port: 8080}]
  readiness: {http: {path: /healthz, port: 8080}, period: 5s}
  metrics: {port: http, interval: 5s}
  placement:
    datacenters: {A: 6, B: 4}
    partitions: [web]
    node_labels: {disk: ssd}
    strategy: binpack
    anti_affinity: true
`
	var f serviceFile
	if err := config.Parse("svc.yaml", []byte(src), &f); err != nil {
		t.Fatal(err)
	}
	s := f.Service
	if s.Requests.MilliCPU != 500 || s.Requests.MemoryBytes != 256<<20 || s.Limits.MilliCPU != 1000 || s.Limits.MemoryBytes != 1<<30 {
		t.Errorf("resources = %+v / %+v", s.Requests, s.Limits)
	}
	if s.Placement.Datacenters["A"] != 6 || !s.Placement.AntiAffinity || s.Readiness.Period != 5*time.Second {
		t.Errorf("decoded %+v", s)
	}
	if m := s.Metrics; m == nil || m.Port != "http" || m.Interval != 5*time.Second || m.WithDefaults().Path != "/metrics" {
		t.Errorf("metrics decoded as %+v", m)
	}
	// JSON (the etcd form) round-trips.
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back Service
	if err := json.Unmarshal(data, &back); err != nil || back.Requests != s.Requests || back.Placement.Strategy != "binpack" || *back.Metrics != *s.Metrics {
		t.Errorf("json round trip: %v, %+v", err, back)
	}

	bad := strings.Replace(src, "cpu: 500m", "cpu: lots", 1)
	err = config.Parse("svc.yaml", []byte(bad), &f)
	if err == nil || !strings.Contains(err.Error(), "svc.yaml:6") || !strings.Contains(err.Error(), `invalid CPU amount "lots"`) {
		t.Errorf("bad cpu: %v", err)
	}
	bad = strings.Replace(src, "port: http, interval", "port: admin, interval", 1)
	err = config.Parse("svc.yaml", []byte(bad), &f)
	if err == nil || !strings.Contains(err.Error(), `service.metrics.port: no declared port named "admin"`) {
		t.Errorf("unknown metrics port: %v", err)
	}
	bad = strings.Replace(src, "B: 4", "B: -4", 1)
	err = config.Parse("svc.yaml", []byte(bad), &f)
	if err == nil || !strings.Contains(err.Error(), "svc.yaml:13:28") || !strings.Contains(err.Error(), "service.placement.datacenters.B: weight -4 is negative") {
		t.Errorf("negative weight: %v", err)
	}
}

func validService() Service {
	return Service{Name: "web", Runtime: RuntimeProcess, Command: []string{"/bin/web"}, Replicas: 1}
}

func TestServiceValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(s *Service)
		field  string
		msg    string
	}{
		{"valid", func(s *Service) {}, "", ""},
		{"unknown runtime", func(s *Service) { s.Runtime = "vm" }, "runtime", `unknown runtime "vm"`},
		{"missing runtime", func(s *Service) { s.Runtime = "" }, "runtime", "missing"},
		{"process needs command", func(s *Service) { s.Command = nil }, "command", "needs a command"},
		{"docker needs image", func(s *Service) { s.Runtime = RuntimeDocker }, "image", "needs an image"},
		{"negative replicas", func(s *Service) { s.Replicas = -1 }, "replicas", "must not be negative"},
		{"limit below request", func(s *Service) { s.Requests.MilliCPU, s.Limits.MilliCPU = 2000, 1000 }, "limits.cpu", "limit 1 is below the request 2"},
		{"memory limit below request", func(s *Service) { s.Requests.MemoryBytes, s.Limits.MemoryBytes = 2<<30, 1<<30 }, "limits.memory", "below the request 2Gi"},
		{"negative weight", func(s *Service) { s.Placement.Datacenters = map[string]int{"A": 1, "B": -1} }, "placement.datacenters.B", "negative"},
		{"all weights zero", func(s *Service) { s.Placement.Datacenters = map[string]int{"A": 0} }, "placement.datacenters", "all weights are zero"},
		{"strategy", func(s *Service) { s.Placement.Strategy = "random" }, "placement.strategy", "unknown strategy"},
		{"bad label", func(s *Service) { s.Placement.NodeLabels = map[string]string{"a b": "x"} }, `placement.node_labels["a b"]`, "label names"},
		{"port range", func(s *Service) { s.Ports = []Port{{Port: 70000}} }, "ports[0].port", "out of range"},
		{"port twice", func(s *Service) { s.Ports = []Port{{Port: 80}, {Port: 80, Protocol: "tcp"}} }, "ports[1].port", "listed twice"},
		{"protocol", func(s *Service) { s.Ports = []Port{{Port: 80, Protocol: "sctp"}} }, "ports[0].protocol", "unknown protocol"},
		{"env name", func(s *Service) { s.Env = map[string]string{"1X": ""} }, "env.1X", "environment variable"},
		{"probe none", func(s *Service) { s.Liveness = &Probe{} }, "liveness", "set one of http, tcp or exec"},
		{"probe two", func(s *Service) { s.Liveness = &Probe{TCP: &TCPProbe{80}, Exec: &ExecProbe{[]string{"true"}}} }, "liveness", "only one"},
		{"probe path", func(s *Service) { s.Readiness = &Probe{HTTP: &HTTPProbe{Path: "healthz", Port: 80}} }, "readiness.http.path", `start with "/"`},
		{"probe port", func(s *Service) { s.Readiness = &Probe{TCP: &TCPProbe{0}} }, "readiness.tcp.port", "out of range"},
		{"probe exec", func(s *Service) { s.Liveness = &Probe{Exec: &ExecProbe{}} }, "liveness.exec.command", "needs a command"},
		{"probe timeout", func(s *Service) {
			s.Liveness = &Probe{TCP: &TCPProbe{80}, Period: time.Second, Timeout: 2 * time.Second}
		}, "liveness.timeout", "longer than the period"},
		{"probe threshold", func(s *Service) { s.Liveness = &Probe{TCP: &TCPProbe{80}, FailureThreshold: -1} }, "liveness.failure_threshold", "negative"},
		{"metrics defaults", func(s *Service) { s.Ports, s.Metrics = []Port{{Name: "http", Port: 8080}}, &MetricsEndpoint{} }, "", ""},
		{"metrics full", func(s *Service) {
			s.Ports = []Port{{Name: "http", Port: 8080}, {Port: 9090}}
			s.Metrics = &MetricsEndpoint{Port: "9090", Path: "/stats?format=prometheus", Interval: time.Second, Timeout: time.Second}
		}, "", ""},
		{"metrics port name", func(s *Service) {
			s.Ports, s.Metrics = []Port{{Name: "http", Port: 8080}, {Port: 9090}}, &MetricsEndpoint{Port: "admin"}
		}, "metrics.port", `no declared port named "admin"; declare it under ports or use one of "http", "9090"`},
		{"metrics named port by number", func(s *Service) {
			s.Ports, s.Metrics = []Port{{Name: "http", Port: 8080}}, &MetricsEndpoint{Port: "8080"}
		}, "metrics.port", `use one of "http"`},
		{"metrics no ports", func(s *Service) { s.Metrics = &MetricsEndpoint{} }, "metrics", "declares no ports"},
		{"metrics udp", func(s *Service) {
			s.Ports, s.Metrics = []Port{{Name: "dns", Port: 53, Protocol: "udp"}}, &MetricsEndpoint{Port: "dns"}
		}, "metrics.port", "use a tcp port"},
		{"metrics path", func(s *Service) { s.Ports, s.Metrics = []Port{{Port: 80}}, &MetricsEndpoint{Path: "metrics"} }, "metrics.path", `must start with "/"`},
		{"metrics path fragment", func(s *Service) { s.Ports, s.Metrics = []Port{{Port: 80}}, &MetricsEndpoint{Path: "/m#x"} }, "metrics.path", "no #fragment"},
		{"metrics path host", func(s *Service) { s.Ports, s.Metrics = []Port{{Port: 80}}, &MetricsEndpoint{Path: "//other/m"} }, "metrics.path", "not a URL path"},
		{"metrics interval", func(s *Service) {
			s.Ports, s.Metrics = []Port{{Port: 80}}, &MetricsEndpoint{Interval: 500 * time.Millisecond}
		}, "metrics.interval", "below the 1s minimum"},
		{"metrics negative interval", func(s *Service) { s.Ports, s.Metrics = []Port{{Port: 80}}, &MetricsEndpoint{Interval: -time.Second} }, "metrics.interval", "negative"},
		{"metrics timeout", func(s *Service) {
			s.Ports, s.Metrics = []Port{{Port: 80}}, &MetricsEndpoint{Interval: time.Second, Timeout: 2 * time.Second}
		}, "metrics.timeout", "longer than the interval 1s"},
		{"metrics timeout default interval", func(s *Service) {
			s.Ports, s.Metrics = []Port{{Port: 80}}, &MetricsEndpoint{Timeout: 20 * time.Second}
		}, "metrics.timeout", "longer than the interval 15s"},
		{"metrics negative timeout", func(s *Service) { s.Ports, s.Metrics = []Port{{Port: 80}}, &MetricsEndpoint{Timeout: -1} }, "metrics.timeout", "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validService()
			tt.change(&s)
			ps := s.Validate()
			if tt.msg == "" {
				if len(ps) > 0 {
					t.Errorf("problems %v, want none", ps)
				}
				return
			}
			for _, p := range ps {
				if p.Field == tt.field && strings.Contains(p.Msg, tt.msg) {
					return
				}
			}
			t.Errorf("problems %v, want %s: …%s…", ps, tt.field, tt.msg)
		})
	}
}

func TestOtherValidate(t *testing.T) {
	tests := []struct {
		name  string
		v     config.Validator
		field string
	}{
		{"datacenter name", &Datacenter{Name: ""}, "name"},
		{"datacenter bad name", &Datacenter{Name: "-a"}, "name"},
		{"node datacenter", &Node{Name: "n1"}, "datacenter"},
		{"node capacity", &Node{Name: "n1", Datacenter: "A", Capacity: Resources{MilliCPU: -1}}, "capacity.cpu"},
		{"tenant weight", &Tenant{Name: "t", Weight: -1}, "weight"},
		{"tenant quota", &Tenant{Name: "t", Quota: Resources{MemoryBytes: -1}}, "quota.memory"},
		{"instance state", &Instance{ID: "1", Service: "web", State: "zombie"}, "state"},
		{"instance id", &Instance{Service: "web", State: StateReady}, "id"},
	}
	for _, tt := range tests {
		ps := tt.v.Validate()
		if len(ps) != 1 || ps[0].Field != tt.field {
			t.Errorf("%s: problems %v, want one at %q", tt.name, ps, tt.field)
		}
	}
	for _, v := range []config.Validator{
		&Datacenter{Name: "A"},
		&Node{Name: "n1", Datacenter: "A", Partition: "db", Labels: map[string]string{"disk": "ssd"}},
		&Tenant{Name: "t1"},
		&Instance{ID: "1", Service: "web", State: StateRunning},
	} {
		if ps := v.Validate(); len(ps) > 0 {
			t.Errorf("%+v: unexpected problems %v", v, ps)
		}
	}
	if w := (&Tenant{}).EffectiveWeight(); w != 1 {
		t.Errorf("default weight %v, want 1", w)
	}
}
