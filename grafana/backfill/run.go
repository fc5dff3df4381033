package backfill

import (
	"context"
	"fmt"
	"time"

	"opspilot/tsdb"
)

// Writer stores series; *tsdb.Client is one.
type Writer interface {
	Write(ctx context.Context, series []tsdb.TimeSeries) error
}

// Progress is reported after every chunk Run wrote.
type Progress struct {
	// Steps written so far, of Total.
	Steps, Total int
	// Samples written so far.
	Samples int64
}

// Stats describe a finished Run.
type Stats struct {
	Start, End time.Time
	Steps      int
	Series     int
	Samples    int64
	Incidents  []Incident
	Took       time.Duration
}

// Generator makes the history step by step; Run drives it. Chunk returns
// the series of the next ChunkSteps steps (oldest first), nil when done.
// The returned slice is reused by the next call.
type Generator struct {
	w     *world
	times []time.Time
	next  int
	total int
	out   []tsdb.TimeSeries
}

// NewGenerator returns a generator for cfg; cfg.End defaults to now.
func NewGenerator(cfg Config) (*Generator, error) {
	if cfg.End.IsZero() {
		cfg.End = time.Now()
	}
	// Whole milliseconds, as stored: the same End gives the same samples.
	cfg.End = cfg.End.Truncate(time.Millisecond)
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("backfill: %w", err)
	}
	times := cfg.Times()
	w := newWorld(cfg)
	w.start = times[0]
	return &Generator{w: w, times: times, total: len(times)}, nil
}

// Config is the generator's configuration, End filled in.
func (g *Generator) Config() Config { return g.w.cfg }

// Incidents are the incidents in the history.
func (g *Generator) Incidents() []Incident { return g.w.incidents }

// Chunk generates the next ChunkSteps steps.
func (g *Generator) Chunk() []tsdb.TimeSeries {
	if g.next >= g.total {
		return nil
	}
	for _, s := range g.w.series {
		s.Samples = s.Samples[:0]
	}
	end := min(g.next+g.w.cfg.ChunkSteps, g.total)
	for ; g.next < end; g.next++ {
		t := g.times[g.next]
		dt := g.w.cfg.Step
		if g.next > 0 {
			dt = t.Sub(g.times[g.next-1])
		}
		g.w.step(t, dt)
	}
	g.out = g.out[:0]
	for _, s := range g.w.series {
		if len(s.Samples) > 0 {
			g.out = append(g.out, *s)
		}
	}
	return g.out
}

// Run generates the history cfg describes and writes it through w, a
// chunk at a time, oldest first (the TSDB drops samples older than its
// retention when they arrive, so the oldest go first). progress, if not
// nil, is called after every chunk.
func Run(ctx context.Context, cfg Config, w Writer, progress func(Progress)) (Stats, error) {
	t0 := time.Now()
	g, err := NewGenerator(cfg)
	if err != nil {
		return Stats{}, err
	}
	cfg = g.Config()
	st := Stats{Start: g.times[0], End: cfg.End, Steps: g.total, Incidents: g.Incidents()}
	for {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		chunk := g.Chunk()
		if chunk == nil {
			break
		}
		n := int64(0)
		for _, s := range chunk {
			n += int64(len(s.Samples))
		}
		if err := w.Write(ctx, chunk); err != nil {
			return st, fmt.Errorf("backfill: write steps up to %d of %d: %w", g.next, g.total, err)
		}
		st.Samples += n
		if progress != nil {
			progress(Progress{Steps: g.next, Total: g.total, Samples: st.Samples})
		}
	}
	st.Series = len(g.w.series)
	st.Took = time.Since(t0)
	return st, nil
}
