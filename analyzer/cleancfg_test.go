package analyzer

import (
	"os"
	"testing"
)

// TestCleanWavesCfg counts the alarms (score >= 0.015) that an
// OPSPILOT_NAB_CFG configuration raises on TestDefaultQuietOnCleanWaves'
// series, so a sweep can reject configurations that would break it.
// Gated: OPSPILOT_NAB_CFG=... go test -run TestCleanWavesCfg -v ./analyzer/
func TestCleanWavesCfg(t *testing.T) {
	spec := os.Getenv("OPSPILOT_NAB_CFG")
	if spec == "" {
		t.Skip()
	}
	nm := tunedEnsemble(t, spec)
	days, points := 14, 3000
	if os.Getenv("OPSPILOT_LONG") != "" {
		days, points = 28, 8000
	}
	bad := 0
	for seed := uint64(1); seed <= 20; seed++ {
		ts, xs := dailyWave(days, seed)
		m := nm()
		for i := range xs {
			if r := m.Observe(ts[i], xs[i]); i >= 288 && r.Score >= 0.015 {
				bad++
			}
		}
		rs := run(nm(), noisySine(points, seed))
		for i := 300; i < len(rs); i++ {
			if rs[i].Score >= 0.015 {
				bad++
			}
		}
	}
	t.Logf("CLEANBAD %d", bad)
}
