package analyzer

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNABAlarms prints every alarm (score >= OPSPILOT_NABTH, default
// 0.0011) on the NAB corpus with its position relative to the labelled
// windows. Offline model development only; the detector never sees labels.
// Gated: OPSPILOT_NABALARMS=1 go test -run TestNABAlarms -v ./analyzer/
func TestNABAlarms(t *testing.T) {
	if os.Getenv("OPSPILOT_NABALARMS") == "" {
		t.Skip("set OPSPILOT_NABALARMS=1")
	}
	th := 0.0011
	if s := os.Getenv("OPSPILOT_NABTH"); s != "" {
		fmt.Sscan(s, &th)
	}
	data, lab, names, newModel := nabCorpus(t)
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
		idx := map[string]int{}
		for i, p := range pts {
			idx[strings.TrimSuffix(strings.Replace(p.Raw, "T", " ", 1), "Z")] = i
		}
		var ws [][2]int
		for _, w := range lab[name] {
			ws = append(ws, [2]int{idx[strings.SplitN(w[0], ".", 2)[0]], idx[strings.SplitN(w[1], ".", 2)[0]]})
		}
		prob := int(math.Min(math.Floor(0.15*float64(len(pts))), 750))
		fmt.Printf("FILE %s n=%d prob=%d windows=%v\n", name, len(pts), prob, ws)
		m := newModel()
		wmax := make([]float64, len(ws))
		wpos := make([]int, len(ws))
		defer func(name string) {
			for k, w := range ws {
				fmt.Printf("  WINDOW %s %v max %.4f at %.2f\n", name, w, wmax[k], float64(wpos[k]-w[0])/float64(w[1]-w[0]+1))
			}
		}(name)
		for i, p := range pts {
			s := m.Observe(p.Time, p.Value).Score
			for k, w := range ws {
				if i >= w[0] && i <= w[1] && s > wmax[k] {
					wmax[k], wpos[k] = s, i
				}
			}
			if i < prob || s < th {
				continue
			}
			tag := "FP"
			for _, w := range ws {
				if i >= w[0] && i <= w[1] {
					tag = fmt.Sprintf("TP%.2f", float64(i-w[0])/float64(w[1]-w[0]+1))
				}
			}
			fmt.Printf("  %6d %s %-8s %.4f v=%g\n", i, p.Raw, tag, s, p.Value)
		}
	}
}
