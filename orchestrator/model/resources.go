package model

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"opspilot/config"
)

// Millicores is an amount of CPU in thousandths of a core. In YAML it is
// written as cores ("2", 2, "0.5") or millicores ("500m"); in JSON it is a
// plain integer of millicores.
type Millicores int64

// ParseMillicores parses "500m", "2", "1.5" (cores, at most three decimals).
func ParseMillicores(s string) (Millicores, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty CPU amount; write cores (2, 0.5) or millicores (500m)")
	}
	bad := func() (Millicores, error) {
		return 0, fmt.Errorf("invalid CPU amount %q; write cores (2, 0.5) or millicores (500m)", s)
	}
	if m, ok := strings.CutSuffix(s, "m"); ok {
		v, err := strconv.ParseInt(m, 10, 64)
		if err != nil || v < 0 {
			return bad()
		}
		return Millicores(v), nil
	}
	whole, frac, hasFrac := strings.Cut(s, ".")
	if whole == "" && !hasFrac || len(frac) > 3 || hasFrac && frac == "" {
		if len(frac) > 3 {
			return 0, fmt.Errorf("invalid CPU amount %q: finer than a millicore", s)
		}
		return bad()
	}
	var w int64
	if whole != "" {
		var err error
		if w, err = strconv.ParseInt(whole, 10, 64); err != nil || w < 0 || strings.ContainsAny(whole, "+-") {
			return bad()
		}
	}
	var f int64
	if hasFrac {
		v, err := strconv.ParseInt(frac, 10, 64)
		if err != nil || strings.ContainsAny(frac, "+-") {
			return bad()
		}
		for i := len(frac); i < 3; i++ {
			v *= 10
		}
		f = v
	}
	if w > (math.MaxInt64-f)/1000 {
		return 0, fmt.Errorf("CPU amount %q is too large", s)
	}
	return Millicores(w*1000 + f), nil
}

// UnmarshalYAML accepts cores or millicores (see ParseMillicores). It uses
// the yaml.v2-style interface, which yaml.v3 honours, so this package need
// not import a YAML library.
func (m *Millicores) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err != nil {
		return err
	}
	v, err := ParseMillicores(s)
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// String formats m as cores when whole ("2"), otherwise as cores with up to
// three decimals ("1.5", "0.25").
// MarshalYAML writes the quantity as String does ("500m" is written "0.5").
func (m Millicores) MarshalYAML() (any, error) { return m.String(), nil }

func (m Millicores) String() string {
	if m%1000 == 0 {
		return strconv.FormatInt(int64(m/1000), 10)
	}
	sign := ""
	if m < 0 {
		sign, m = "-", -m
	}
	frac := strings.TrimRight(fmt.Sprintf("%03d", int64(m%1000)), "0")
	return sign + strconv.FormatInt(int64(m/1000), 10) + "." + frac
}

// Bytes is an amount of memory. In YAML it is plain bytes (1048576) or a
// whole number with a suffix: Ki, Mi, Gi, Ti, Pi (powers of 1024) or k, M,
// G, T, P (powers of 1000). In JSON it is a plain integer of bytes.
type Bytes int64

var byteSuffixes = []struct {
	suffix string
	mult   int64
}{
	{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"Pi", 1 << 50},
	{"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"P", 1e15},
}

// ParseBytes parses "512Mi", "2Gi", "1G" or plain bytes.
func ParseBytes(s string) (Bytes, error) {
	s = strings.TrimSpace(s)
	num, mult := s, int64(1)
	for _, x := range byteSuffixes {
		if n, ok := strings.CutSuffix(s, x.suffix); ok {
			num, mult = n, x.mult
			break
		}
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v < 0 || strings.HasPrefix(num, "+") {
		return 0, fmt.Errorf("invalid memory amount %q; write bytes or a whole number with Ki, Mi, Gi, Ti (or k, M, G, T), e.g. 512Mi", s)
	}
	if v > math.MaxInt64/mult {
		return 0, fmt.Errorf("memory amount %q is too large", s)
	}
	return Bytes(v * mult), nil
}

// UnmarshalYAML accepts the forms ParseBytes does.
func (b *Bytes) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err != nil {
		return err
	}
	v, err := ParseBytes(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// String formats b with the largest binary suffix that divides it exactly:
// "512Mi", "2Gi", "1000".
// MarshalYAML writes the quantity as String does ("512Mi").
func (b Bytes) MarshalYAML() (any, error) { return b.String(), nil }

func (b Bytes) String() string {
	for i := 4; i >= 0; i-- {
		x := byteSuffixes[i]
		if b != 0 && int64(b)%x.mult == 0 {
			return strconv.FormatInt(int64(b)/x.mult, 10) + x.suffix
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// Resources is an amount of CPU and memory: a node's capacity, a service's
// requests or limits, a tenant's quota.
type Resources struct {
	MilliCPU    Millicores `yaml:"cpu,omitempty" json:"cpu"`
	MemoryBytes Bytes      `yaml:"memory,omitempty" json:"memory"`
}

// Add returns r+o.
func (r Resources) Add(o Resources) Resources {
	return Resources{MilliCPU: r.MilliCPU + o.MilliCPU, MemoryBytes: r.MemoryBytes + o.MemoryBytes}
}

// Sub returns r-o.
func (r Resources) Sub(o Resources) Resources {
	return Resources{MilliCPU: r.MilliCPU - o.MilliCPU, MemoryBytes: r.MemoryBytes - o.MemoryBytes}
}

// Fits reports whether r is no more than o in every resource.
func (r Resources) Fits(o Resources) bool {
	return r.MilliCPU <= o.MilliCPU && r.MemoryBytes <= o.MemoryBytes
}

// IsZero reports whether r has neither CPU nor memory.
func (r Resources) IsZero() bool { return r.MilliCPU == 0 && r.MemoryBytes == 0 }

// String formats r as "2 CPU, 512Mi memory".
func (r Resources) String() string {
	return r.MilliCPU.String() + " CPU, " + r.MemoryBytes.String() + " memory"
}

// Validate reports negative amounts. (The YAML forms cannot be negative,
// but values built in Go or read from JSON can.)
func (r Resources) Validate() []config.Problem {
	var ps []config.Problem
	if r.MilliCPU < 0 {
		ps = append(ps, config.Problem{Field: "cpu", Msg: "must not be negative"})
	}
	if r.MemoryBytes < 0 {
		ps = append(ps, config.Problem{Field: "memory", Msg: "must not be negative"})
	}
	return ps
}
