package logs

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// position is where reading resumes in one tailed path: the identity of the
// file that was being read (it changes on rename+create rotation) and the
// byte offset just after the last acknowledged line.
type position struct {
	File   fileID `json:"file"`
	Offset int64  `json:"offset"`
}

// positionStore keeps acknowledged positions and persists them as JSON in
// the state directory (written to a temporary file, synced and renamed, so
// a crash leaves either the old or the new file).
type positionStore struct {
	path string

	mu    sync.Mutex
	files map[string]position
}

type positionsFile struct {
	Files map[string]position `json:"files"`
}

const positionsFileName = "log-positions.json"

func openPositionStore(stateDir string) (*positionStore, error) {
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return nil, fmt.Errorf("create log state directory: %w", err)
	}
	s := &positionStore{path: filepath.Join(stateDir, positionsFileName), files: map[string]position{}}
	data, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read log positions: %w", err)
	}
	var pf positionsFile
	if err := json.Unmarshal(data, &pf); err != nil {
		return nil, fmt.Errorf("log positions file %s is corrupt (%v); delete it to re-read all log files from their beginning", s.path, err)
	}
	for k, v := range pf.Files {
		s.files[k] = v
	}
	return s, nil
}

func (s *positionStore) get(path string) (position, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.files[path]
	return p, ok
}

// ack records positions of shipped lines and persists them.
func (s *positionStore) ack(updates map[string]position) error {
	if len(updates) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range updates {
		s.files[k] = v
	}
	data, err := json.MarshalIndent(positionsFile{Files: s.files}, "", "  ")
	if err != nil {
		return err
	}
	tmp := s.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("write log positions: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.path)
	}
	if err != nil {
		return fmt.Errorf("write log positions %s: %w", s.path, err)
	}
	return nil
}
