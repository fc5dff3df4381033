package alerting

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	amalert "github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/common/model"
)

// savedState is what the pipeline keeps besides Alertmanager's own
// notification log and silences: the alerts it holds (so an alert that
// resolved while the server was down still gets its resolved
// notification when its end time passes) and acknowledgements.
type savedState struct {
	Alerts []savedAlert   `json:"alerts"`
	Acks   map[string]Ack `json:"acks"`
	Saved  time.Time      `json:"saved"`
}

type savedAlert struct {
	model.Alert
	UpdatedAt time.Time `json:"updatedAt"`
}

func (p *Pipeline) statePath() string { return filepath.Join(p.cfg.Dir, "alerts.json") }

// saveState writes the held alerts and acknowledgements atomically.
func (p *Pipeline) saveState() error {
	st := savedState{Acks: map[string]Ack{}, Saved: time.Now().UTC()}
	it := p.alerts.GetPending()
	held := map[model.Fingerprint]bool{}
	for pa := range it.Next() {
		st.Alerts = append(st.Alerts, savedAlert{Alert: pa.Data.Alert, UpdatedAt: pa.Data.UpdatedAt})
		held[pa.Data.Fingerprint()] = true
	}
	it.Close()
	p.mu.Lock()
	for fp, a := range p.acks {
		if held[fp] {
			st.Acks[fp.String()] = a
		} else {
			delete(p.acks, fp) // the alert is gone
		}
	}
	p.mu.Unlock()
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := p.statePath() + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p.statePath())
}

// loadState puts the saved alerts back into the provider.
func (p *Pipeline) loadState() error {
	data, err := os.ReadFile(p.statePath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var st savedState
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("%s: %w", p.statePath(), err)
	}
	var as []*amalert.Alert
	for _, a := range st.Alerts {
		if a.Labels.Validate() != nil {
			continue
		}
		as = append(as, amalert.New(a.Alert, a.UpdatedAt, false))
	}
	if err := p.alerts.Put(context.Background(), as...); err != nil {
		return err
	}
	for k, a := range st.Acks {
		if fp, err := model.ParseFingerprint(k); err == nil {
			p.acks[fp] = a
		}
	}
	return nil
}
