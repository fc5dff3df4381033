package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestAnomalyScoreCSV(t *testing.T) {
	in, out := t.TempDir(), t.TempDir()
	var b strings.Builder
	b.WriteString("timestamp,value\n")
	for i := range 300 {
		v := "10"
		if i == 250 {
			v = "500"
		}
		b.WriteString("2014-04-01 " + "00:" + pad(i/60) + ":" + pad(i%60) + "," + v + "\n")
	}
	if err := os.MkdirAll(filepath.Join(in, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(in, "sub", "x.csv"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	root := newRootCmd(&stdout, &stderr)
	root.SetArgs([]string{"anomaly", "score-csv", "--in", in, "--out", out})
	if err := root.Execute(); err != nil {
		t.Fatalf("score-csv: %v\n%s", err, stderr.String())
	}
	matches, _ := filepath.Glob(filepath.Join(out, "sub", "*x.csv"))
	if len(matches) != 1 {
		t.Fatalf("no scored file under %s/sub: %v", out, matches)
	}
	data, err := os.ReadFile(matches[0])
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 301 || lines[0] != "timestamp,value,anomaly_score" || !strings.HasPrefix(lines[251], "2014-04-01 00:04:10,500,") {
		t.Fatalf("scored file: %d lines, header %q, row 251 %q", len(lines), lines[0], lines[251])
	}

	// every detector --model offers puts its highest score on the spike
	for _, model := range []string{"nab", "nab-compact", "robust-z", "ewma"} {
		out := t.TempDir()
		root = newRootCmd(&stdout, &stderr)
		root.SetArgs([]string{"anomaly", "score-csv", "--in", in, "--out", out, "--model", model})
		if err := root.Execute(); err != nil {
			t.Fatalf("score-csv --model %s: %v", model, err)
		}
		matches, _ := filepath.Glob(filepath.Join(out, "sub", "*x.csv"))
		if len(matches) != 1 {
			t.Fatalf("--model %s: no scored file: %v", model, matches)
		}
		data, err := os.ReadFile(matches[0])
		if err != nil {
			t.Fatal(err)
		}
		top, at := -1.0, 0
		for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n")[1:] {
			f := strings.Split(line, ",")
			s, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil {
				t.Fatalf("--model %s, row %d: %v", model, i+1, err)
			}
			if s > top {
				top, at = s, i
			}
		}
		if at != 250 || top <= 0 {
			t.Errorf("--model %s: highest score %v at row %d, want the spike's at row 250", model, top, at)
		}
	}

	root = newRootCmd(&stdout, &stderr)
	root.SetArgs([]string{"anomaly", "score-csv", "--in", in, "--out", out, "--model", "prophet"})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "use one of") {
		t.Errorf("an unknown model: %v, want the models to use", err)
	}

	root = newRootCmd(&stdout, &stderr)
	root.SetArgs([]string{"anomaly", "score-csv", "--in", filepath.Join(in, "missing"), "--out", out})
	if err := root.Execute(); err == nil {
		t.Error("a missing input is no error")
	}
}

func pad(n int) string {
	if n < 10 {
		return "0" + string(rune('0'+n))
	}
	return string(rune('0'+n/10)) + string(rune('0'+n%10))
}
