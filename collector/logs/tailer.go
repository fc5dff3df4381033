package logs

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nxadm/tail"
)

// maxLineBytes splits longer lines; VictoriaLogs skips bulk lines over
// 256 KiB (-insert.maxLineSizeBytes), and the document adds escaping and
// labels.
const maxLineBytes = 64 << 10

// entry is one parsed line on its way to the log store, with the position
// that becomes acknowledged once it is stored.
type entry struct {
	path string
	pos  position // file identity and offset just after this line
	doc  []byte
}

// fileTailer follows one path through rotations and sends its lines.
type fileTailer struct {
	src    Source
	labels map[string]string
	start  position
	resume bool // start is a persisted position
	out    chan<- *entry
	log    *slog.Logger
	m      *metrics

	lastTime time.Time
}

// run tails until ctx ends; a file that cannot be tailed is retried.
func (t *fileTailer) run(ctx context.Context) {
	for {
		err := t.tailOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		t.log.Warn("tailing log file failed; retrying", "path", t.src.Path, "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
	}
}

func (t *fileTailer) tailOnce(ctx context.Context) error {
	path := t.src.Path
	var (
		ident    *os.File // our own handle on the file the tail reads, to drain it after a rotation
		identID  fileID
		identOff int64
	)
	defer func() {
		if ident != nil {
			_ = ident.Close()
		}
	}()

	offset := int64(0)
	if f, err := os.Open(path); err == nil {
		fi, err := f.Stat()
		if err != nil {
			_ = f.Close()
			return err
		}
		ident, identID = f, idOf(fi)
		if t.resume {
			switch {
			case t.start.File == identID && fi.Size() >= t.start.Offset:
				offset = t.start.Offset
			case t.start.File == identID:
				t.log.Info("log file was truncated while stopped; reading from its start", "path", path)
			default:
				if err := t.drainRotatedAway(ctx); err != nil {
					return err
				}
			}
		}
	} else if t.resume {
		if err := t.drainRotatedAway(ctx); err != nil {
			return err
		}
	}
	t.resume = false
	identOff = offset

	tl, err := tail.TailFile(path, tail.Config{
		Location:      &tail.SeekInfo{Offset: offset, Whence: io.SeekStart},
		ReOpen:        true,
		Follow:        true,
		Poll:          true, // inotify's watcher ends the process on stat errors and shares global state
		CompleteLines: true,
		MaxLineSize:   maxLineBytes,
		Logger:        tail.DiscardingLogger,
	})
	if err != nil {
		return fmt.Errorf("tail %s: %w", path, err)
	}
	defer func() { _ = tl.Stop() }()

	lastNum := 0
	for {
		var l *tail.Line
		var ok bool
		select {
		case <-ctx.Done():
			return ctx.Err()
		case l, ok = <-tl.Lines:
		}
		if !ok {
			if err := tl.Err(); err != nil {
				return err
			}
			return errors.New("tail ended")
		}
		if l.Err != nil {
			t.log.Warn("tailing log file", "path", path, "err", l.Err)
			continue
		}
		if l.Num <= lastNum || l.Num == 1 {
			// The tail (re)opened the file: after rename+create it reads a
			// new file, and what the old one got after the tail last read it
			// would be lost, so read that remainder through our handle first.
			fi, err := os.Stat(path)
			if ident == nil || err != nil || idOf(fi) != identID {
				if ident != nil {
					t.log.Info("log file rotated; reading the rest of the old file", "path", path, "offset", identOff)
					if err := t.drain(ctx, ident, identID, identOff); err != nil {
						return err
					}
					_ = ident.Close()
					ident = nil
				}
				if f, err := os.Open(path); err == nil {
					if fi, err := f.Stat(); err == nil {
						ident, identID = f, idOf(fi)
					} else {
						_ = f.Close()
					}
				}
			}
			// Same file and numbering restarted: it was truncated (copytruncate).
		}
		lastNum = l.Num
		identOff = l.SeekInfo.Offset
		if err := t.emit(ctx, l.Text, position{File: identID, Offset: l.SeekInfo.Offset}); err != nil {
			return err
		}
	}
}

// drainRotatedAway handles a restart after the persisted file was rotated:
// if it still sits in the same directory under another name, the lines
// after the persisted offset are read from it before the new file.
func (t *fileTailer) drainRotatedAway(ctx context.Context) error {
	dir := filepath.Dir(t.src.Path)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	for _, de := range entries {
		if !de.Type().IsRegular() {
			continue
		}
		p := filepath.Join(dir, de.Name())
		fi, err := os.Stat(p)
		if err != nil || idOf(fi) != t.start.File {
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			return nil
		}
		defer func() { _ = f.Close() }()
		t.log.Info("log file was rotated while stopped; reading the rest of the old file first", "path", t.src.Path, "old", p)
		return t.drain(ctx, f, t.start.File, t.start.Offset)
	}
	t.log.Warn("log file was rotated away while stopped and the old file is gone; its unread lines are lost", "path", t.src.Path)
	return nil
}

// drain sends the lines of f from offset to its end; a last line without
// newline is sent too, since its writer has moved on to the new file.
func (t *fileTailer) drain(ctx context.Context, f *os.File, id fileID, offset int64) error {
	fi, err := f.Stat()
	if err != nil || fi.Size() <= offset {
		return nil
	}
	r := bufio.NewReader(io.NewSectionReader(f, offset, fi.Size()-offset))
	for {
		line, err := r.ReadString('\n')
		if line != "" {
			offset += int64(len(line))
			if err := t.emit(ctx, strings.TrimRight(line, "\n"), position{File: id, Offset: offset}); err != nil {
				return err
			}
		}
		if err != nil {
			return nil
		}
	}
}

// emit parses a line and queues it; it blocks while the buffer is full.
func (t *fileTailer) emit(ctx context.Context, text string, pos position) error {
	text = strings.TrimSuffix(text, "\r")
	if strings.TrimSpace(text) == "" {
		return nil
	}
	// Plain lines are stamped when read; keeping the stamps strictly
	// increasing keeps a file's order in the store.
	now := time.Now()
	if !now.After(t.lastTime) {
		now = t.lastTime.Add(time.Microsecond)
	}
	t.lastTime = now
	doc, err := json.Marshal(parseLine(text, now, t.labels))
	if err != nil {
		t.log.Warn("cannot encode log line; skipping it", "path", t.src.Path, "err", err)
		return nil
	}
	t.m.read.Inc()
	select {
	case t.out <- &entry{path: t.src.Path, pos: pos, doc: doc}:
		t.m.buffered.Inc()
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
