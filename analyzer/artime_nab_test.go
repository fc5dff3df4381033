package analyzer

import (
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestARTimeOriginal scores the NAB corpus with ARTime under the
// original's non-causal settings (each file's minimum, maximum and length:
// probation 15% of the file, at most 750 points), to check the port
// against the published 74.9 and to measure what causality costs. It
// reads ahead, so it is a diagnostic only, never a detector.
// Gated: OPSPILOT_NABART=1 go test -run TestARTimeOriginal -v ./analyzer/
// (OPSPILOT_NABART=2 keeps the file's probation length but scales by the
// range seen so far; 3 scales by the whole file but keeps the fixed
// default probation; 4 is the causal model. OPSPILOT_NABART_P,
// OPSPILOT_NABART_PAD and OPSPILOT_NABART_MAX configure it,
// OPSPILOT_NABART_V=1 prints windows hit and false alarms at OPSPILOT_NABTH
// per file.)
func TestARTimeOriginal(t *testing.T) {
	mode := os.Getenv("OPSPILOT_NABART")
	if mode == "" {
		t.Skip("set OPSPILOT_NABART=1")
	}
	data, lab, names, _ := nabCorpus(t)
	th := 0.3
	if s := os.Getenv("OPSPILOT_NABTH"); s != "" {
		th, _ = strconv.ParseFloat(s, 64)
	}
	out := t.TempDir()
	for _, name := range names {
		f, err := os.Open(filepath.Join(data, name))
		if err != nil {
			t.Fatal(err)
		}
		pts, err := ReadCSV(f, name)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, p := range pts {
			lo, hi = math.Min(lo, p.Value), math.Max(hi, p.Value)
		}
		prob := 750
		if len(pts) < 5000 {
			prob = int(0.15 * float64(len(pts)))
		}
		var cfg ARTimeConfig
		if mode == "1" || mode == "2" {
			cfg.Probation = prob
		} else if s := os.Getenv("OPSPILOT_NABART_P"); s != "" {
			cfg.Probation, _ = strconv.Atoi(s)
		}
		if s := os.Getenv("OPSPILOT_NABART_MAX"); s != "" {
			cfg.MaxCategories, _ = strconv.Atoi(s)
		}
		if s := os.Getenv("OPSPILOT_NABART_PAD"); s != "" {
			cfg.Pad, _ = strconv.ParseFloat(s, 64)
		}
		m := NewARTime(cfg)
		m.fixed, m.flo, m.fhi = mode == "1" || mode == "3", lo, hi
		scores := make([]float64, len(pts))
		for i, p := range pts {
			scores[i] = m.Observe(p.Time, p.Value).Score
		}
		if os.Getenv("OPSPILOT_NABART_V") != "" {
			idx := map[string]int{}
			for i, p := range pts {
				idx[strings.TrimSuffix(strings.Replace(p.Raw, "T", " ", 1), "Z")] = i
			}
			hit, fp := 0, 0
			var ws [][2]int
			for _, w := range lab[name] {
				ws = append(ws, [2]int{idx[strings.SplitN(w[0], ".", 2)[0]], idx[strings.SplitN(w[1], ".", 2)[0]]})
			}
			for _, w := range ws {
				if slices.Max(scores[w[0]:w[1]+1]) >= th {
					hit++
				}
			}
			for i, s := range scores {
				in := false
				for _, w := range ws {
					in = in || (i >= w[0] && i <= w[1])
				}
				if s >= th && !in && i >= min(prob, int(0.15*float64(len(pts)))) {
					fp++
				}
			}
			t.Logf("FILE %-55s n=%6d hit %d/%d fp %d cats %d", name, len(pts), hit, len(ws), fp, len(m.art.used))
		}
		dst := filepath.Join(out, name)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		g, err := os.Create(dst)
		if err != nil {
			t.Fatal(err)
		}
		if err := WriteScores(g, pts, scores); err != nil {
			t.Fatal(err)
		}
		g.Close()
	}
	shared, _ := filepath.Abs("../../shared")
	cmd := exec.Command("go", "run", ".", "-data", data, "-labels",
		filepath.Join(shared, "data/nab/labels/combined_windows.json"), "-results", out)
	cmd.Dir = filepath.Join(shared, "tools/nabscore")
	b, err := cmd.CombinedOutput()
	t.Logf("nabscore:\n%s", b)
	if err != nil {
		t.Fatal(err)
	}
}
