package analyzer

// gonum is the analyzer's numeric library (DESIGN.md's verified version);
// the import keeps go.mod's pin until the models use it.
import _ "gonum.org/v1/gonum/stat"
