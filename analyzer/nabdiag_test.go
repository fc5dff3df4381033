package analyzer

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestNABDiag scores the NAB corpus in-process (same rules as
// shared/tools/nabscore) and prints per-file detections and false
// positives at the standard profile's best threshold. Offline model
// development only; the detector never sees labels.
// Gated: OPSPILOT_NABDIAG=1 [OPSPILOT_NAB_CFG=...] go test -run TestNABDiag -v ./analyzer/
func TestNABDiag(t *testing.T) {
	if os.Getenv("OPSPILOT_NABDIAG") == "" {
		t.Skip("set OPSPILOT_NABDIAG=1")
	}
	data, lab, names, newModel := nabCorpus(t)
	type dpt struct {
		score, sweep float64
		win          int // global window id or -1
		file         int
	}
	var all []dpt
	nwin := 0
	winFile := []int{}
	winStartRow := []int{}
	for fi, name := range names {
		f, err := os.Open(filepath.Join(data, name))
		if err != nil {
			t.Fatal(err)
		}
		pts, err := ReadCSV(f, name)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		oracleLen = len(pts)
		m := newModel()
		idx := map[string]int{}
		for i, p := range pts {
			idx[strings.TrimSuffix(strings.Replace(p.Raw, "T", " ", 1), "Z")] = i
		}
		type win struct{ l, r int }
		var ws []win
		for _, w := range lab[name] {
			l := idx[strings.SplitN(w[0], ".", 2)[0]]
			r := idx[strings.SplitN(w[1], ".", 2)[0]]
			ws = append(ws, win{l, r})
		}
		sort.Slice(ws, func(i, j int) bool { return ws[i].l < ws[j].l })
		prob := int(math.Min(math.Floor(0.15*float64(len(pts))), 750))
		cur, prevRight, prevWidth, wi := -1, -1, 0.0, 0
		gid := -1
		for i, p := range pts {
			s := m.Observe(p.Time, p.Value).Score
			if s != s || s < 0 {
				s = 0
			}
			s = math.Min(s, 1)
			if cur < 0 && wi < len(ws) && ws[wi].l == i {
				cur = wi
				wi++
				gid = nwin
				nwin++
				winFile = append(winFile, fi)
				winStartRow = append(winStartRow, i)
			}
			var sweep float64
			if cur >= 0 {
				w := ws[cur]
				width := float64(w.r - w.l + 1)
				sweep = sig(-float64(w.r-i+1) / width)
			} else if prevRight < 0 {
				sweep = -1
			} else {
				sweep = sig(math.Abs(float64(prevRight-i)) / (prevWidth - 1))
			}
			if i >= prob {
				d := dpt{score: s, sweep: sweep, win: -1, file: fi}
				if cur >= 0 {
					d.win = gid
				}
				all = append(all, d)
			}
			if cur >= 0 && ws[cur].r == i {
				prevRight, prevWidth, cur = i, float64(ws[cur].r-ws[cur].l+1), -1
			}
		}
	}
	// windows entirely inside probation are not counted by nabscore
	counted := map[int]bool{}
	for _, d := range all {
		if d.win >= 0 {
			counted[d.win] = true
		}
	}
	W := float64(len(counted))
	maxTP := sig(-1)
	sorted := append([]dpt(nil), all...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].score > sorted[j].score })
	for _, pr := range []struct {
		name   string
		fp, fn float64
	}{{"standard", 0.11, 1}, {"reward_low_FP_rate", 0.22, 1}, {"reward_low_FN_rate", 0.11, 2}} {
		parts := map[int]float64{}
		for w := range counted {
			parts[w] = -pr.fn
		}
		sumParts := -pr.fn * W
		fp := 0.0
		best, bestTh := sumParts, 1.1
		for i := 0; i < len(sorted); {
			th := sorted[i].score
			for ; i < len(sorted) && sorted[i].score == th; i++ {
				p := sorted[i]
				if p.win >= 0 {
					w := p.sweep / maxTP
					if w > parts[p.win] {
						sumParts += w - parts[p.win]
						parts[p.win] = w
					}
				} else {
					fp += p.sweep * pr.fp
				}
			}
			if s := fp + sumParts; s > best {
				best, bestTh = s, th
			}
		}
		score := 100 * (best + pr.fn*W) / (W + pr.fn*W)
		fmt.Printf("PROFILE %-20s %7.2f raw %8.2f th %.5f\n", pr.name, score, best, bestTh)
		if os.Getenv("OPSPILOT_NABDIAG") == "3" {
			var fpHi, fpLo, tpHi, tpLo int
			var cHi, cLo float64
			for _, p := range all {
				if p.score < bestTh {
					continue
				}
				hi := p.score >= 0.01
				switch {
				case p.win >= 0 && hi:
					tpHi++
				case p.win >= 0:
					tpLo++
				case hi:
					fpHi++
					cHi += p.sweep * pr.fp
				default:
					fpLo++
					cLo += p.sweep * pr.fp
				}
			}
			fmt.Printf("  in-window rows: %d alarms, %d damped; FP rows: %d alarms (%.2f), %d damped (%.2f)\n", tpHi, tpLo, fpHi, cHi, fpLo, cLo)
		}
		if pr.name != "standard" || os.Getenv("OPSPILOT_NABDIAG") != "2" {
			continue
		}
		// per file at bestTh
		type fstat struct {
			tp    float64
			found int
			wins  int
			fpn   int
			fpc   float64
		}
		st := make([]fstat, len(names))
		wbest := map[int]float64{}
		for w := range counted {
			wbest[w] = -1
			st[winFile[w]].wins++
		}
		for _, p := range all {
			if p.score < bestTh {
				continue
			}
			if p.win >= 0 {
				wbest[p.win] = math.Max(wbest[p.win], p.sweep/maxTP)
			} else {
				st[p.file].fpn++
				st[p.file].fpc += p.sweep * pr.fp
			}
		}
		for w, v := range wbest {
			st[winFile[w]].tp += v
			if v > -1 {
				st[winFile[w]].found++
			}
		}
		for fi, n := range names {
			s := st[fi]
			fmt.Printf("%-60s win %d/%d tp %6.2f fp %3d (%6.2f) net %6.2f\n", n, s.found, s.wins, s.tp, s.fpn, s.fpc, s.tp+s.fpc+float64(s.wins))
		}
	}
}

func sig(pos float64) float64 {
	if pos > 3.0 {
		return -1.0
	}
	return 2/(1+math.Exp(5*pos)) - 1
}

// nabCorpus is what the gated NAB diagnostics share: the corpus directory,
// the labelled windows by file (offline analysis only), the labelled file
// names in order, and the detector (OPSPILOT_NAB_CFG or the default).
func nabCorpus(t *testing.T) (data string, lab map[string][][2]string, names []string, newModel func() Model) {
	t.Helper()
	shared, _ := filepath.Abs("../../shared")
	data = filepath.Join(shared, "data/nab/data")
	raw, err := os.ReadFile(filepath.Join(shared, "data/nab/labels/combined_windows.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &lab); err != nil {
		t.Fatal(err)
	}
	newModel = NewDefaultEnsemble
	if spec := os.Getenv("OPSPILOT_NAB_CFG"); spec != "" {
		newModel = tunedEnsemble(t, spec)
	}
	for n := range lab {
		names = append(names, n)
	}
	sort.Strings(names)
	return data, lab, names, newModel
}
