package model

import (
	"strings"
	"testing"
)

// FuzzParseQuantities: the quantity parsers never panic, reject what they
// cannot represent exactly, and what they accept prints back to a value
// that parses to the same quantity.
func FuzzParseQuantities(f *testing.F) {
	for _, s := range []string{"500m", "2", "0.5", "1.001", "512Mi", "2Gi", "1k", "123", "", "-1", "1.5Gi", "9223372036854775807", "99999999999Pi", "1e3", " 2", "0x10"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if m, err := ParseMillicores(s); err == nil {
			if m < 0 {
				t.Fatalf("ParseMillicores(%q) = %d, negative", s, m)
			}
			back, err := ParseMillicores(m.String())
			if err != nil || back != m {
				t.Fatalf("ParseMillicores(%q) = %d prints as %q, which parses to %d (%v)", s, m, m.String(), back, err)
			}
		} else if strings.TrimSpace(err.Error()) == "" {
			t.Fatalf("empty error for %q", s)
		}
		if b, err := ParseBytes(s); err == nil {
			if b < 0 {
				t.Fatalf("ParseBytes(%q) = %d, negative", s, b)
			}
			back, err := ParseBytes(b.String())
			if err != nil || back != b {
				t.Fatalf("ParseBytes(%q) = %d prints as %q, which parses to %d (%v)", s, b, b.String(), back, err)
			}
		} else if strings.TrimSpace(err.Error()) == "" {
			t.Fatalf("empty error for %q", s)
		}
	})
}
