//go:build race

package analyzer

// raceEnabled is true when the tests run with -race (make test does).
const raceEnabled = true
