package analyzer

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Point is one row of a timestamp,value CSV.
type Point struct {
	// Raw is the timestamp as written, echoed unchanged in the output.
	Raw   string
	Time  time.Time
	Value float64
}

var timeLayouts = []string{
	"2006-01-02 15:04:05",
	"2006-01-02 15:04:05.999999999",
	time.RFC3339Nano,
	"2006-01-02T15:04:05",
}

func parseTime(s string) (time.Time, error) {
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, nil
		}
	}
	if sec, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(sec, 0).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("timestamp %q is not \"YYYY-MM-DD HH:MM:SS\", RFC 3339 or Unix seconds", s)
}

// ReadCSV parses a CSV with a header naming the columns timestamp and
// value (any order, case-insensitive; other columns ignored). name labels
// errors, which give the 1-based line number.
func ReadCSV(r io.Reader, name string) ([]Point, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil, fmt.Errorf("%s: empty file: want a header line \"timestamp,value\"", name)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	tc, vc := -1, -1
	for i, h := range header {
		switch strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))) {
		case "timestamp":
			tc = i
		case "value":
			vc = i
		}
	}
	if tc < 0 || vc < 0 {
		return nil, fmt.Errorf("%s line 1: header %q must name the columns timestamp and value", name, strings.Join(header, ","))
	}
	var pts []Point
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return pts, nil
		}
		if err != nil {
			// csv.ParseError already names the line and column.
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) <= tc || len(rec) <= vc {
			return nil, fmt.Errorf("%s line %d: %d fields, want at least %d", name, line, len(rec), max(tc, vc)+1)
		}
		raw := strings.TrimSpace(rec[tc])
		t, err := parseTime(raw)
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", name, line, err)
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rec[vc]), 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%s line %d: value %q is not a finite number", name, line, rec[vc])
		}
		pts = append(pts, Point{Raw: raw, Time: t, Value: v})
	}
}

// WriteScores writes timestamp,value,anomaly_score rows, one per point.
func WriteScores(w io.Writer, pts []Point, scores []float64) error {
	bw := bufio.NewWriter(w)
	bw.WriteString("timestamp,value,anomaly_score\n")
	var buf []byte
	for i, p := range pts {
		buf = append(buf[:0], p.Raw...)
		buf = append(buf, ',')
		buf = strconv.AppendFloat(buf, p.Value, 'g', -1, 64)
		buf = append(buf, ',')
		buf = strconv.AppendFloat(buf, scores[i], 'g', -1, 64)
		buf = append(buf, '\n')
		bw.Write(buf)
	}
	return bw.Flush()
}

// ScoreCSV scores every .csv file under in (a file or a directory, walked
// recursively) with a fresh model from newModel and writes
// timestamp,value,anomaly_score CSVs under out at the same relative paths
// (for a single file, out/<basename>), as the NAB scorer expects.
func ScoreCSV(in, out string, newModel func() Model) error {
	info, err := os.Stat(in)
	if err != nil {
		return fmt.Errorf("score csv: %w", err)
	}
	if !info.IsDir() {
		return scoreFile(in, filepath.Join(out, filepath.Base(in)), newModel)
	}
	found := false
	err = filepath.WalkDir(in, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.EqualFold(filepath.Ext(path), ".csv") {
			return nil
		}
		found = true
		rel, err := filepath.Rel(in, path)
		if err != nil {
			return err
		}
		return scoreFile(path, filepath.Join(out, rel), newModel)
	})
	if err != nil {
		return fmt.Errorf("score csv %s: %w", in, err)
	}
	if !found {
		return fmt.Errorf("score csv: no .csv files under %s", in)
	}
	return nil
}

func scoreFile(in, out string, newModel func() Model) (err error) {
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	pts, err := ReadCSV(bufio.NewReader(f), in)
	f.Close()
	if err != nil {
		return err
	}
	m := newModel()
	scores := make([]float64, len(pts))
	for i, p := range pts {
		s := m.Observe(p.Time, p.Value).Score
		if s != s || s < 0 {
			s = 0
		}
		scores[i] = math.Min(s, 1)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	g, err := os.Create(out)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, g.Close()) }()
	if err := WriteScores(g, pts, scores); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	return nil
}
