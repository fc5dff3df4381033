package analyzer

import (
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestNAB scores the shared NAB corpus with the default ensemble and runs
// the NAB scorer on the result. Gated: OPSPILOT_NAB=1 go test -run TestNAB -v ./analyzer/
func TestNAB(t *testing.T) {
	if os.Getenv("OPSPILOT_NAB") == "" {
		t.Skip("set OPSPILOT_NAB=1 to score the NAB corpus")
	}
	shared, err := filepath.Abs("../../shared")
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(shared, "data/nab/data")
	labels := filepath.Join(shared, "data/nab/labels/combined_windows.json")
	out := os.Getenv("OPSPILOT_NAB_OUT")
	if out == "" {
		out = t.TempDir()
	}
	newModel := NewDefaultEnsemble
	if spec := os.Getenv("OPSPILOT_NAB_CFG"); spec != "" {
		newModel = tunedEnsemble(t, spec)
	}
	if err := ScoreCSV(data, out, newModel); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "run", ".", "-data", data, "-labels", labels, "-results", out)
	cmd.Dir = filepath.Join(shared, "tools/nabscore")
	b, err := cmd.CombinedOutput()
	t.Logf("nabscore:\n%s", b)
	if err != nil {
		t.Fatal(err)
	}
}

// tunedEnsemble builds an ensemble from "key=value,..." for parameter
// sweeps (one configuration for the whole corpus, never per file). RobustZ,
// EWMA, CUSUM and Novelty are members unless dropped; gate=D adds a Pattern
// gate (pw, pstep, pk, pvig, prate configure it) and sdist=S lets Novelty's
// noise margin (nmargin) consult it. The default detector is
// drop=0,mean=1,bin=1,alarm=0.015,suppress=225,suphours=24,gate=0.08,gpow=1,
// pw=6,pstep=2,pk=64,pvig=0.1,prate=0.2,alpha=0.007,gain=800,nmargin=2,sdist=0.12,confirm=1,
// dbuck=72,dfac=3,ddecay=0.85,ctx=0.025,cgated=1,clev=4,cord=4,cbits=1024,
// cwarm=150,csolid=1.5,c2lev=3,c2ord=6,art=0.025,artprob=700,artwpp=12,
// artpad=1,artmax=64,artcredit=500,artmis=1,ewqd=0.995,cuqd=0.997,qdref=0.02,qdrate=0.02
// (ewqd and cuqd wrap EWMA and CUSUM in a QuantileDamp tracking that
// quantile of their scores, 0 or absent: none; qdref and qdrate set its
// Ref and Rate for both; art=W OR-combines an ARTime after the gate at weight W, artgated=1
// before it with the Contexts, art2prob adds a second one with another
// probation; artprob, artwpp, artpad, artmax, artmis, artwin, artlev,
// artchomp and artrho configure it; artoracle=1 (TestNABDiag only, a
// diagnostic that reads ahead) gives it the original's probation, 15% of
// the file, at most 750 points; artalone=1
// scores with an ARTime alone;
// suphours caps the suppression in hours of timestamps; dbuck, dfac and
// ddecay set the daily memory; ctx, orseason or orpat
// OR-combine a Context, Seasonal or Pattern; cgated, cfloor, clev, cord,
// cbits, cwarm and csolid configure that; c2lev and c2ord add a second
// Context with other levels and orders).
func tunedEnsemble(t *testing.T, spec string) func() Model {
	var ec EnsembleConfig
	var rc RobustZConfig
	var wc EWMAConfig
	var cc CUSUMConfig
	var nc NoveltyConfig
	var sc SeasonalConfig
	useSeason := false
	useNov := true
	useDiff := false
	usePat := false
	sdist := 0.0
	var pc PatternConfig
	var xc ContextConfig
	orKind := 0
	c2lev, c2ord := 0, 4
	drop := map[int]bool{}
	var ac ARTimeConfig
	artW, artAlone, artGated := 0.0, false, false
	art2prob := 0
	artOracle := false
	var ewDamp, cuDamp QuantileDampConfig
	damp := func(m Model, c QuantileDampConfig) Model {
		if c.Quantile <= 0 {
			return m
		}
		return NewQuantileDamp(m, c)
	}
	for _, kv := range strings.Split(spec, ",") {
		k, v, _ := strings.Cut(kv, "=")
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("OPSPILOT_NAB_CFG %q: %v", kv, err)
		}
		switch k {
		case "alarm":
			ec.AlarmScore = f
		case "suppress":
			ec.Suppress = int(f)
		case "suphours":
			ec.SuppressFor = time.Duration(f * float64(time.Hour))
		case "damp":
			ec.Damp = f
		case "warmup":
			ec.Warmup = int(f)
		case "peak":
			ec.PeakDecay = f
		case "dbuck":
			ec.DailyBuckets = int(f)
		case "dfac":
			ec.DailyFactor = f
		case "ddecay":
			ec.DailyDecay = f
		case "ctx":
			ec.OrWeight, orKind = f, 1
		case "orseason":
			ec.OrWeight, orKind = f, 2
		case "orpat":
			ec.OrWeight, orKind = f, 3
		case "clev":
			xc.Levels = int(f)
		case "cord":
			xc.Orders = int(f)
		case "cbits":
			xc.Bits = int(f)
		case "cgated":
			ec.OrGated = f != 0
		case "cfloor":
			ec.OrFloor = f
		case "c2lev":
			c2lev = int(f)
		case "c2ord":
			c2ord = int(f)
		case "csolid":
			xc.Solid = f
		case "cwarm":
			xc.Warmup = int(f)
		case "mean":
			ec.Mean = f != 0
		case "drop": // 0 robustz, 1 ewma, 2 cusum
			drop[int(f)] = true
		case "diff":
			useDiff = f != 0
		case "nov":
			useNov = f != 0
		case "season":
			useSeason = f != 0
		case "sbuckets":
			sc.Buckets = int(f)
		case "salpha":
			sc.Alpha = f
		case "sralpha":
			sc.ResidAlpha = f
		case "svisits":
			sc.MinVisits = int(f)
		case "nmargin":
			nc.NoiseMargin = f
		case "confirm":
			nc.Confirm = f != 0
		case "sdist":
			sdist = f
		case "gain":
			nc.Gain = f
		case "bin":
			ec.Binary = f != 0
		case "gate":
			ec.GateDist = f
		case "gpow":
			ec.GatePow = f
		case "pat":
			usePat = f != 0
		case "pw":
			pc.Window = int(f)
		case "pstep":
			pc.Step = int(f)
		case "pk":
			pc.Protos = int(f)
		case "pvig":
			pc.Vigilance = f
		case "prate":
			pc.Rate = f
		case "pwarm":
			pc.Warmup = int(f)
		case "rzw":
			rc.Window = int(f)
		case "alpha":
			wc.Alpha = f
		case "ewqd":
			ewDamp.Quantile = f
		case "cuqd":
			cuDamp.Quantile = f
		case "qdref":
			ewDamp.Ref, cuDamp.Ref = f, f
		case "qdrate":
			ewDamp.Rate, cuDamp.Rate = f, f
		case "calpha":
			cc.Alpha = f
		case "slack":
			cc.Slack = f
		case "limit":
			cc.Limit = f
		case "art":
			artW = f
		case "artalone":
			artAlone = f != 0
		case "artgated":
			artGated = f != 0
		case "artprob":
			ac.Probation = int(f)
		case "artmax":
			ac.MaxCategories = int(f)
		case "artcredit":
			ac.MatchCredit = int(f)
		case "art2prob":
			art2prob = int(f)
		case "artmis":
			ac.Mismatch = f != 0
		case "artoracle": // diagnostic only (TestNABDiag): the file's probation
			artOracle = f != 0
		case "artwin":
			ac.Window = int(f)
		case "artlev":
			ac.Levels = int(f)
		case "artchomp":
			ac.Chomp = f
		case "artrho":
			ac.InitialRho = f
		case "artpad":
			ac.Pad = f
		case "artwpp":
			ac.WindowsPerProbation = int(f)
		default:
			t.Fatalf("OPSPILOT_NAB_CFG: unknown key %q", k)
		}
	}
	if artAlone {
		return func() Model { return NewARTime(ac) }
	}
	return func() Model {
		ec, nc := ec, nc
		var ms []Model
		for i, m := range []Model{NewRobustZ(rc), damp(NewEWMA(wc), ewDamp), damp(NewCUSUM(cc), cuDamp)} {
			if !drop[i] {
				ms = append(ms, m)
			}
		}
		if ec.GateDist > 0 {
			ec.Gate = NewPattern(pc)
		}
		switch orKind {
		case 1:
			ec.Or = []Model{NewContext(xc)}
			if c2lev > 0 {
				xc2 := xc
				xc2.Levels, xc2.Orders = c2lev, c2ord
				ec.Or = append(ec.Or, NewContext(xc2))
			}
		case 2:
			ec.Or = []Model{NewSeasonal(sc)}
		case 3:
			ec.Or = []Model{NewPattern(pc)}
		}
		if artOracle {
			ac.Probation = min(750, int(0.15*float64(oracleLen)))
		}
		if artW > 0 {
			if artGated {
				if ec.OrWeight <= 0 {
					t.Fatal("OPSPILOT_NAB_CFG: artgated needs ctx (the OR weight)")
				}
				ec.Or = append(ec.Or, &weighted{NewARTime(ac), artW / ec.OrWeight})
			} else {
				ec.Late, ec.LateWeight = []Model{NewARTime(ac)}, artW
				if art2prob > 0 {
					ac2 := ac
					ac2.Probation = art2prob
					ec.Late = append(ec.Late, NewARTime(ac2))
				}
			}
		}
		if useNov {
			if sdist > 0 {
				nc.Shape, nc.ShapeDist = ec.Gate, sdist
			}
			ms = append(ms, NewNovelty(nc))
		}
		if useSeason {
			ms = append(ms, NewSeasonal(sc))
		}
		if useDiff {
			ms = append(ms, NewDifferenced(NewRobustZ(rc)))
		}
		if usePat {
			ms = append(ms, NewPattern(pc))
		}
		return NewEnsemble(ec, ms...)
	}
}

// oracleLen is the length of the file TestNABDiag is scoring, for the
// artoracle diagnostic (the original's probation, 15% of the file, which
// reads ahead: never a detector).
var oracleLen int

// weighted scales a model's score (an OR-combined model with its own
// weight among others).
type weighted struct {
	Model
	w float64
}

func (m *weighted) Observe(t time.Time, v float64) Result {
	r := m.Model.Observe(t, v)
	r.Score = math.Min(1, r.Score*m.w)
	return r
}
