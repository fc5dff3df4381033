package forecast

import (
	"gonum.org/v1/gonum/optimize"
)

// minimizeImpl names the optimiser in use, for tests and reports.
const minimizeImpl = "gonum/optimize.NelderMead"

// minimize runs gonum's Nelder-Mead from x0 with at most budget
// evaluations and returns the best point, its value and the evaluations
// used.
func minimize(f func([]float64) float64, x0 []float64, budget int) ([]float64, float64, int) {
	res, err := optimize.Minimize(
		optimize.Problem{Func: f},
		x0,
		&optimize.Settings{
			FuncEvaluations: budget,
			Converger: &optimize.FunctionConverge{
				Relative:   convergeRelative,
				Iterations: convergeIterPerDim * len(x0),
			},
		},
		&optimize.NelderMead{SimplexSize: simplexSize},
	)
	if res == nil {
		return x0, f(x0), 1
	}
	if err != nil {
		return x0, f(x0), res.FuncEvaluations + 1
	}
	return append([]float64(nil), res.X...), res.F, res.FuncEvaluations
}
