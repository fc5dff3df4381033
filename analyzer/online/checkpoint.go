package online

import (
	"bytes"
	"encoding"
	"encoding/gob"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/google/renameio/v2"

	"opspilot/analyzer"
	"opspilot/tsdb"
)

// checkpointVersion changes when the file layout does; a model's own bytes
// carry their own version (analyzer's MarshalBinary).
const checkpointVersion = 1

type checkpointFile struct {
	Version int
	Saved   time.Time
	Scored  map[string]time.Time
	Series  []checkpointSeries
	Joint   []checkpointSeries // Query is the joint's name
}

type checkpointSeries struct {
	Query  string
	Labels []tsdb.Label
	Last   time.Time
	Result analyzer.Result
	// ModelName is the query's model when saved; a series whose query now
	// names another model starts fresh.
	ModelName string
	Model     []byte
	// The anomaly episode, for root-cause hints after a restart.
	Onset, LastAlarm time.Time
	Peak             float64
}

// SaveCheckpoint writes every model's state and each query's position to
// cfg.StateFile atomically (temporary file, fsync, rename), so a crash
// leaves the previous checkpoint intact.
func (s *Service) SaveCheckpoint() error {
	if s.cfg.StateFile == "" {
		return nil
	}
	err := s.saveCheckpoint()
	if err != nil {
		s.m.checkpoints.WithLabelValues("error").Inc()
		return err
	}
	s.m.checkpoints.WithLabelValues("ok").Inc()
	return nil
}

func (s *Service) saveCheckpoint() error {
	f := checkpointFile{Version: checkpointVersion, Saved: s.opts.Now(), Scored: map[string]time.Time{}}
	s.mu.Lock()
	for q, t := range s.scored {
		f.Scored[q] = t
	}
	models := map[string]string{}
	for _, q := range s.cfg.Queries {
		models[q.Name] = q.Model
	}
	skipped := 0
	for _, se := range s.series {
		bm, ok := se.model.(encoding.BinaryMarshaler)
		if !ok {
			skipped++
			continue
		}
		b, err := bm.MarshalBinary()
		if err != nil {
			s.mu.Unlock()
			return fmt.Errorf("analyzer checkpoint: %w", err)
		}
		f.Series = append(f.Series, checkpointSeries{Query: se.query, Labels: se.labels, Last: se.last, Result: se.result, Model: b, ModelName: models[se.query],
			Onset: se.onset, LastAlarm: se.lastAlarm, Peak: se.peak})
	}
	for _, js := range s.joint {
		b, err := js.model.MarshalBinary()
		if err != nil {
			s.mu.Unlock()
			return fmt.Errorf("analyzer checkpoint: %w", err)
		}
		f.Joint = append(f.Joint, checkpointSeries{Query: js.joint, Labels: js.labels, Last: js.last, Model: b,
			Result: analyzer.Result{Score: js.score}, Onset: js.onset, LastAlarm: js.lastAlarm, Peak: js.peak})
	}
	s.mu.Unlock()
	if skipped > 0 {
		s.log.Warn("analyzer: some models cannot be checkpointed; they will relearn after a restart", "series", skipped)
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(&f); err != nil {
		return fmt.Errorf("analyzer checkpoint: encode: %w", err)
	}
	return writeFileAtomic(s.cfg.StateFile, buf.Bytes())
}

// writeFileAtomic replaces path with b (renameio: temporary file in the
// same directory, fsync, rename), so a crash leaves the old checkpoint or
// the new one, never a torn one.
func writeFileAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return renameio.WriteFile(path, b, 0o600)
}

// restore loads the checkpoint; a missing file is not an error. Series
// whose model bytes do not fit the current model (another version) are
// skipped and start fresh.
func (s *Service) restore(path string) (int, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var f checkpointFile
	if err := gob.NewDecoder(bytes.NewReader(b)).Decode(&f); err != nil {
		return 0, fmt.Errorf("decode %s: %w (delete it to start fresh)", path, err)
	}
	if f.Version != checkpointVersion {
		return 0, fmt.Errorf("%s has layout version %d, this opspilot reads %d", path, f.Version, checkpointVersion)
	}
	known := map[string]bool{}
	models := map[string]string{}
	for _, q := range s.cfg.Queries {
		known[q.Name] = true
		models[q.Name] = q.Model
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for q, t := range f.Scored {
		if known[q] {
			s.scored[q] = t
		}
	}
	n, stale := 0, 0
	for _, cs := range f.Series {
		if !known[cs.Query] {
			continue
		}
		m, err := s.opts.NewModel(models[cs.Query])
		if err != nil || cs.ModelName != models[cs.Query] {
			stale++
			continue
		}
		um, ok := m.(encoding.BinaryUnmarshaler)
		if !ok || um.UnmarshalBinary(cs.Model) != nil {
			stale++
			continue
		}
		key := keyOf(cs.Labels)
		se := newSeries(cs.Query, cs.Labels, m)
		se.last, se.result, se.episode = cs.Last, cs.Result, episode{cs.Onset, cs.LastAlarm, cs.Peak}
		s.series[key] = se
		n++
	}
	dims := map[string]int{}
	for _, j := range s.joints {
		dims[j.Name] = len(j.Queries)
	}
	for _, cs := range f.Joint {
		d := dims[cs.Query]
		if d == 0 {
			continue
		}
		m := analyzer.NewMultivariate(d, analyzer.MultivariateConfig{})
		if m.UnmarshalBinary(cs.Model) != nil {
			stale++
			continue
		}
		s.joint[keyOf(cs.Labels)] = &jointSeries{joint: cs.Query, labels: cs.Labels, model: m, last: cs.Last, score: cs.Result.Score,
			episode: episode{cs.Onset, cs.LastAlarm, cs.Peak}}
		n++
	}
	if stale > 0 {
		s.log.Warn("analyzer: checkpointed models of another version start fresh", "series", stale)
	}
	return n, nil
}
