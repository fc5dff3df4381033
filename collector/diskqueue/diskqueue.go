package diskqueue

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	headerSize = 8
	segSuffix  = ".seg"
	ackFile    = "ack"
	// MaxRecordSize bounds one record, so that a corrupt length cannot make
	// the reader allocate gigabytes.
	MaxRecordSize = 64 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// SyncPolicy says when appended records are fsynced.
type SyncPolicy int

const (
	// SyncNever leaves flushing to the kernel: records survive a process
	// crash (kill -9) but not a power loss. The default.
	SyncNever SyncPolicy = iota
	// SyncAlways fsyncs every Append: records survive power loss too.
	SyncAlways
)

// Options configure a Queue.
type Options struct {
	// MaxBytes bounds the queue on disk; 0 means unbounded. When an Append
	// would exceed it, the oldest segments are dropped.
	MaxBytes int64
	// SegmentBytes is the size at which a new segment file is started.
	SegmentBytes int64
	Sync         SyncPolicy
	// OnDrop is told how many records and bytes were dropped for space.
	OnDrop func(records int, bytes int64)
	// OnDropRecord, if set, sees each unacknowledged record before it is
	// dropped for space (to count what it held).
	OnDropRecord func(rec []byte)
	// AckPersistInterval, when > 0, persists the acknowledged offset at
	// most this often (and on Close) instead of on every Ack: after a crash
	// up to that much acknowledged data is delivered again (at-least-once).
	AckPersistInterval time.Duration
}

// segment is one file of the queue.
type segment struct {
	start   int64 // logical offset of its first byte
	size    int64
	records int
}

func (s segment) end() int64 { return s.start + s.size }

// Queue is a durable FIFO of byte records. One producer and one consumer
// may use it concurrently.
type Queue struct {
	dir  string
	opts Options

	mu       sync.Mutex
	cond     *sync.Cond
	segs     []segment // oldest first; the last is being written
	w        *os.File  // the last segment
	ack      int64     // first unacknowledged logical offset
	read     int64     // next logical offset to hand to the consumer
	closed   bool
	unackRec int // records between ack and the end

	r      *os.File // reader's open segment
	rStart int64

	ackDirty     bool
	lastAckWrite time.Time
}

// Open opens or creates the queue in dir, recovering from a crash: torn
// records at the end are cut off, and reading resumes at the first
// unacknowledged record.
func Open(dir string, opts Options) (*Queue, error) {
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = 8 << 20
	}
	if opts.MaxBytes > 0 && opts.MaxBytes < 2*opts.SegmentBytes {
		opts.SegmentBytes = max(opts.MaxBytes/4, 4096)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("disk queue: create %s: %w", dir, err)
	}
	q := &Queue{dir: dir, opts: opts}
	q.cond = sync.NewCond(&q.mu)
	if err := q.load(); err != nil {
		return nil, err
	}
	return q, nil
}

func (q *Queue) segPath(start int64) string {
	return filepath.Join(q.dir, fmt.Sprintf("%020d%s", start, segSuffix))
}

func (q *Queue) load() error {
	entries, err := os.ReadDir(q.dir)
	if err != nil {
		return fmt.Errorf("disk queue: read %s: %w", q.dir, err)
	}
	var starts []int64
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, segSuffix) {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(name, segSuffix), 10, 64)
		if err != nil {
			return fmt.Errorf("disk queue: unexpected file %s in %s; remove it", name, q.dir)
		}
		starts = append(starts, n)
	}
	sort.Slice(starts, func(i, j int) bool { return starts[i] < starts[j] })

	if b, err := os.ReadFile(filepath.Join(q.dir, ackFile)); err == nil {
		q.ack, err = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return fmt.Errorf("disk queue: corrupt %s: %v", filepath.Join(q.dir, ackFile), err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("disk queue: %w", err)
	}

	for i, start := range starts {
		seg, err := q.scan(start, i == len(starts)-1)
		if err != nil {
			return err
		}
		if seg.end() <= q.ack && i != len(starts)-1 {
			_ = os.Remove(q.segPath(start)) // fully acknowledged leftovers
			continue
		}
		q.segs = append(q.segs, seg)
	}
	if len(q.segs) == 0 {
		start := q.ack
		if err := q.newSegment(start); err != nil {
			return err
		}
	} else {
		last := q.segs[len(q.segs)-1]
		f, err := os.OpenFile(q.segPath(last.start), os.O_WRONLY|os.O_APPEND, 0o640)
		if err != nil {
			return fmt.Errorf("disk queue: %w", err)
		}
		q.w = f
	}
	first := q.segs[0].start
	if q.ack < first {
		// Segments before the first surviving one were dropped for space.
		q.ack = first
	}
	if end := q.segs[len(q.segs)-1].end(); q.ack > end {
		q.ack = end
	}
	q.read = q.ack
	q.unackRec = q.countRecordsFrom(q.ack)
	return nil
}

// scan validates a segment and, for the last one, cuts a torn tail.
func (q *Queue) scan(start int64, last bool) (segment, error) {
	path := q.segPath(start)
	f, err := os.Open(path)
	if err != nil {
		return segment{}, fmt.Errorf("disk queue: %w", err)
	}
	defer f.Close()
	seg := segment{start: start}
	var hdr [headerSize]byte
	var buf []byte
	for {
		if _, err := io.ReadFull(f, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return seg, nil
			}
			break // torn header
		}
		n := binary.LittleEndian.Uint32(hdr[:4])
		if n > MaxRecordSize {
			break
		}
		if cap(buf) < int(n) {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(f, buf); err != nil {
			break
		}
		if crc32.Checksum(buf, crcTable) != binary.LittleEndian.Uint32(hdr[4:]) {
			break
		}
		seg.size += headerSize + int64(n)
		seg.records++
	}
	// Anything after the last good record was torn by a crash (or is
	// corrupt): keep what is intact.
	if !last {
		return seg, nil
	}
	if err := os.Truncate(path, seg.size); err != nil {
		return seg, fmt.Errorf("disk queue: cut torn tail of %s: %w", path, err)
	}
	return seg, nil
}

func (q *Queue) countRecordsFrom(off int64) int {
	n := 0
	for _, s := range q.segs {
		if s.end() <= off {
			continue
		}
		n += s.records
	}
	// The first partly-acknowledged segment counts only its unacknowledged
	// records; count them exactly by walking it.
	for _, s := range q.segs {
		if off > s.start && off < s.end() {
			n -= q.recordsBefore(s, off)
		}
	}
	return n
}

func (q *Queue) recordsBefore(s segment, off int64) int {
	f, err := os.Open(q.segPath(s.start))
	if err != nil {
		return 0
	}
	defer f.Close()
	pos, n := s.start, 0
	var hdr [headerSize]byte
	for pos < off {
		if _, err := io.ReadFull(f, hdr[:]); err != nil {
			break
		}
		l := int64(binary.LittleEndian.Uint32(hdr[:4]))
		if _, err := f.Seek(l, io.SeekCurrent); err != nil {
			break
		}
		pos += headerSize + l
		n++
	}
	return n
}

func (q *Queue) newSegment(start int64) error {
	f, err := os.OpenFile(q.segPath(start), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("disk queue: create segment: %w", err)
	}
	if q.w != nil {
		_ = q.w.Close()
	}
	q.w = f
	q.segs = append(q.segs, segment{start: start})
	return syncDir(q.dir)
}

// Append adds a record. When Append returns nil the record survives a crash
// of this process (and, with SyncAlways, of the machine).
func (q *Queue) Append(rec []byte) error {
	if len(rec) > MaxRecordSize {
		return fmt.Errorf("disk queue: record of %d bytes exceeds the %d-byte limit", len(rec), MaxRecordSize)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return errors.New("disk queue: closed")
	}
	cur := &q.segs[len(q.segs)-1]
	if cur.size > 0 && cur.size+headerSize+int64(len(rec)) > q.opts.SegmentBytes {
		if err := q.newSegment(cur.end()); err != nil {
			return err
		}
		cur = &q.segs[len(q.segs)-1]
	}
	buf := make([]byte, headerSize+len(rec))
	binary.LittleEndian.PutUint32(buf[:4], uint32(len(rec)))
	binary.LittleEndian.PutUint32(buf[4:8], crc32.Checksum(rec, crcTable))
	copy(buf[headerSize:], rec)
	// One write call: a crash leaves a whole record or a torn tail that
	// Open cuts off, never a record in the middle of another.
	if _, err := q.w.Write(buf); err != nil {
		return fmt.Errorf("disk queue: write: %w", err)
	}
	if q.opts.Sync == SyncAlways {
		if err := q.w.Sync(); err != nil {
			return fmt.Errorf("disk queue: fsync: %w", err)
		}
	}
	cur.size += int64(len(buf))
	cur.records++
	q.unackRec++
	q.enforceLimitLocked()
	q.cond.Broadcast()
	return nil
}

// enforceLimitLocked drops whole oldest segments (never the one being
// written) while the queue is over MaxBytes.
func (q *Queue) enforceLimitLocked() {
	if q.opts.MaxBytes <= 0 {
		return
	}
	for len(q.segs) > 1 && q.bytesLocked() > q.opts.MaxBytes {
		old := q.segs[0]
		dropped := old.records
		droppedBytes := old.end() - max(q.ack, old.start)
		if q.ack > old.start {
			dropped -= q.recordsBefore(old, q.ack)
		}
		if q.opts.OnDropRecord != nil {
			for off := max(q.ack, old.start); off < old.end(); {
				rec, err := q.readAtLocked(off)
				if err != nil {
					break
				}
				q.opts.OnDropRecord(rec)
				off += headerSize + int64(len(rec))
			}
		}
		if q.r != nil && q.rStart == old.start {
			_ = q.r.Close()
			q.r = nil
		}
		_ = os.Remove(q.segPath(old.start))
		q.segs = q.segs[1:]
		if q.ack < q.segs[0].start {
			q.ack = q.segs[0].start
			_ = q.writeAckLocked()
		}
		if q.read < q.segs[0].start {
			q.read = q.segs[0].start
		}
		q.unackRec -= dropped
		if q.opts.OnDrop != nil && dropped > 0 {
			q.opts.OnDrop(dropped, droppedBytes)
		}
	}
}

func (q *Queue) bytesLocked() int64 {
	return q.segs[len(q.segs)-1].end() - q.ack
}

// Bytes is the size of the unacknowledged part of the queue.
func (q *Queue) Bytes() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytesLocked()
}

// Len is the number of unacknowledged records.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.unackRec
}

// Next returns the next record not yet handed out and its end offset,
// waiting until one is appended. It returns ErrClosed once the queue is
// closed (or stop is closed) while it waits.
func (q *Queue) Next(stop <-chan struct{}) ([]byte, int64, error) {
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-stop:
			q.mu.Lock()
			q.cond.Broadcast()
			q.mu.Unlock()
		case <-done:
		}
	}()
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		if q.closed {
			return nil, 0, ErrClosed
		}
		select {
		case <-stop:
			return nil, 0, ErrClosed
		default:
		}
		if q.read < q.segs[len(q.segs)-1].end() {
			rec, err := q.readAtLocked(q.read)
			if err != nil {
				return nil, 0, err
			}
			q.read += headerSize + int64(len(rec))
			return rec, q.read, nil
		}
		q.cond.Wait()
	}
}

// ErrClosed is returned by Next after Close or when stopped.
var ErrClosed = errors.New("disk queue: closed")

func (q *Queue) readAtLocked(off int64) ([]byte, error) {
	i := sort.Search(len(q.segs), func(i int) bool { return q.segs[i].end() > off })
	if i == len(q.segs) {
		return nil, fmt.Errorf("disk queue: offset %d beyond the end", off)
	}
	s := q.segs[i]
	if q.r == nil || q.rStart != s.start {
		if q.r != nil {
			_ = q.r.Close()
		}
		f, err := os.Open(q.segPath(s.start))
		if err != nil {
			return nil, fmt.Errorf("disk queue: %w", err)
		}
		q.r, q.rStart = f, s.start
	}
	var hdr [headerSize]byte
	if _, err := q.r.ReadAt(hdr[:], off-s.start); err != nil {
		return nil, fmt.Errorf("disk queue: read header at %d: %w", off, err)
	}
	n := binary.LittleEndian.Uint32(hdr[:4])
	if n > MaxRecordSize {
		return nil, fmt.Errorf("disk queue: corrupt record length %d at %d", n, off)
	}
	rec := make([]byte, n)
	if _, err := q.r.ReadAt(rec, off-s.start+headerSize); err != nil {
		return nil, fmt.Errorf("disk queue: read record at %d: %w", off, err)
	}
	if crc32.Checksum(rec, crcTable) != binary.LittleEndian.Uint32(hdr[4:]) {
		return nil, fmt.Errorf("disk queue: checksum mismatch at %d", off)
	}
	return rec, nil
}

// Ack marks every record before end (an offset returned by Next) as
// delivered; fully delivered segments are deleted.
func (q *Queue) Ack(end int64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if end <= q.ack {
		return nil
	}
	q.unackRec -= q.countBetweenLocked(q.ack, end)
	q.ack = end
	q.ackDirty = true
	if q.opts.AckPersistInterval <= 0 || time.Since(q.lastAckWrite) >= q.opts.AckPersistInterval {
		if err := q.writeAckLocked(); err != nil {
			return err
		}
	}
	for len(q.segs) > 1 && q.segs[0].end() <= q.ack {
		if q.r != nil && q.rStart == q.segs[0].start {
			_ = q.r.Close()
			q.r = nil
		}
		_ = os.Remove(q.segPath(q.segs[0].start))
		q.segs = q.segs[1:]
	}
	return nil
}

func (q *Queue) countBetweenLocked(from, to int64) int {
	n := 0
	for off := from; off < to; {
		rec, err := q.readAtLocked(off)
		if err != nil {
			break
		}
		off += headerSize + int64(len(rec))
		n++
	}
	return n
}

// writeAckLocked persists the acknowledged offset atomically.
func (q *Queue) writeAckLocked() error {
	tmp := filepath.Join(q.dir, ackFile+".tmp")
	if err := os.WriteFile(tmp, []byte(strconv.FormatInt(q.ack, 10)+"\n"), 0o640); err != nil {
		return fmt.Errorf("disk queue: write ack: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(q.dir, ackFile)); err != nil {
		return fmt.Errorf("disk queue: write ack: %w", err)
	}
	q.ackDirty = false
	q.lastAckWrite = time.Now()
	return nil
}

// Rewind makes Next hand out unacknowledged records again (after a failed
// delivery the consumer gave up on).
func (q *Queue) Rewind() {
	q.mu.Lock()
	q.read = q.ack
	q.mu.Unlock()
}

// Close releases the files; unacknowledged records stay for the next Open.
func (q *Queue) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil
	}
	q.closed = true
	q.cond.Broadcast()
	if q.ackDirty {
		_ = q.writeAckLocked()
	}
	if q.r != nil {
		_ = q.r.Close()
	}
	err := q.w.Sync()
	if cerr := q.w.Close(); err == nil {
		err = cerr
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
