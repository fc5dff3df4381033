package analyzer

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestScoreCSVRoundTrip(t *testing.T) {
	in, out := t.TempDir(), t.TempDir()
	var b strings.Builder
	b.WriteString("timestamp,value\n")
	xs := noisySine(500, 1)
	var want []string
	for i, x := range xs {
		ts := t0.Add(time.Duration(i) * 5 * time.Minute).Format("2006-01-02 15:04:05")
		line := ts + "," + strconv.FormatFloat(x, 'g', -1, 64)
		want = append(want, line)
		b.WriteString(line + "\n")
	}
	sub := filepath.Join(in, "realX")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sub, "a.csv"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ScoreCSV(in, out, NewDefaultEnsemble); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(out, "realX", "a.csv"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(got), "\n"), "\n")
	if lines[0] != "timestamp,value,anomaly_score" {
		t.Fatalf("header %q", lines[0])
	}
	if len(lines)-1 != len(want) {
		t.Fatalf("%d rows, want %d", len(lines)-1, len(want))
	}
	for i, l := range lines[1:] {
		if !strings.HasPrefix(l, want[i]+",") {
			t.Fatalf("row %d: %q does not start with %q", i, l, want[i])
		}
		pts, err := ReadCSV(strings.NewReader("timestamp,value,anomaly_score\n"+l), "row")
		if err != nil || len(pts) != 1 {
			t.Fatalf("row %d unreadable: %v", i, err)
		}
	}
}

func TestReadCSVErrors(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"empty", "", "empty file"},
		{"header", "time,v\n", "line 1"},
		{"bad value", "timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:05:00,x\n", "f.csv line 3"},
		{"bad time", "timestamp,value\nyesterday,1\n", "f.csv line 2"},
		{"short row", "value,timestamp\n1\n", "f.csv line 2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ReadCSV(strings.NewReader(c.in), "f.csv")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want it to mention %q", err, c.want)
			}
		})
	}
}

func FuzzReadCSV(f *testing.F) {
	f.Add([]byte("timestamp,value\n2014-04-01 00:00:00,1.5\n"))
	f.Add([]byte("value,timestamp\n3,2014-04-01T00:00:00Z\n"))
	f.Add([]byte("timestamp,value\n1400000000,NaN\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pts, err := ReadCSV(bytes.NewReader(data), "fuzz")
		if err != nil {
			return
		}
		var buf bytes.Buffer
		scores := make([]float64, len(pts))
		if err := WriteScores(&buf, pts, scores); err != nil {
			t.Fatal(err)
		}
		for _, p := range pts {
			if math.IsNaN(p.Value) || math.IsInf(p.Value, 0) {
				t.Fatalf("non-finite value %v accepted", p.Value)
			}
		}
	})
}
