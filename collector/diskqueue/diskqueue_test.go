package diskqueue

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func rec(i int) []byte { return []byte(fmt.Sprintf("record-%06d-%s", i, strings.Repeat("x", i%50))) }

func drain(t *testing.T, q *Queue, n int) (recs [][]byte, last int64) {
	t.Helper()
	stop := make(chan struct{})
	timer := time.AfterFunc(5*time.Second, func() { close(stop) })
	defer timer.Stop()
	for range n {
		r, end, err := q.Next(stop)
		if err != nil {
			t.Fatalf("Next after %d records: %v", len(recs), err)
		}
		recs = append(recs, r)
		last = end
	}
	return recs, last
}

func TestFIFOAndAckSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	q, err := Open(dir, Options{SegmentBytes: 256})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := q.Append(rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	if q.Len() != 100 {
		t.Fatalf("Len: want 100, got %d", q.Len())
	}
	got, end := drain(t, q, 40)
	for i, r := range got {
		if !bytes.Equal(r, rec(i)) {
			t.Fatalf("record %d: got %q", i, r)
		}
	}
	if err := q.Ack(end); err != nil {
		t.Fatal(err)
	}
	// Handed out but not acknowledged: must come back after a reopen.
	drain(t, q, 10)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	q, err = Open(dir, Options{SegmentBytes: 256})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if q.Len() != 60 {
		t.Fatalf("after reopen: want 60 unacknowledged records, got %d", q.Len())
	}
	got, _ = drain(t, q, 60)
	for i, r := range got {
		if !bytes.Equal(r, rec(40+i)) {
			t.Fatalf("after reopen record %d: got %q want %q", i, r, rec(40+i))
		}
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	if len(segs) > 30 {
		t.Errorf("acknowledged segments should be deleted; %d remain", len(segs))
	}
}

func TestTornTailIsCutOff(t *testing.T) {
	dir := t.TempDir()
	q, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := q.Append(rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	_ = q.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	f, err := os.OpenFile(segs[len(segs)-1], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Half a header and half a record, as a crash mid-write leaves.
	_, _ = f.Write([]byte{200, 0, 0, 0, 1, 2, 3, 4, 'p', 'a', 'r'})
	_ = f.Close()

	q, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if q.Len() != 5 {
		t.Fatalf("want the 5 intact records, got %d", q.Len())
	}
	if err := q.Append(rec(5)); err != nil {
		t.Fatal(err)
	}
	got, _ := drain(t, q, 6)
	for i, r := range got {
		if !bytes.Equal(r, rec(i)) {
			t.Fatalf("record %d after repair: got %q", i, r)
		}
	}
}

func TestSizeLimitDropsOldest(t *testing.T) {
	dir := t.TempDir()
	var droppedRecs, seen int
	var droppedBytes int64
	q, err := Open(dir, Options{MaxBytes: 16 << 10, SegmentBytes: 4 << 10, OnDrop: func(n int, b int64) {
		droppedRecs += n
		droppedBytes += b
	}, OnDropRecord: func(rec []byte) {
		if n, _ := strconv.Atoi(string(rec[:3])); n != seen {
			t.Errorf("dropped record %d, want the oldest (%d)", n, seen)
		}
		seen++
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	payload := bytes.Repeat([]byte("k"), 1000)
	for i := range 100 {
		if err := q.Append(append([]byte(fmt.Sprintf("%03d", i)), payload...)); err != nil {
			t.Fatal(err)
		}
	}
	if q.Bytes() > 16<<10 {
		t.Errorf("queue holds %d bytes, over the 16 KiB limit", q.Bytes())
	}
	if seen != droppedRecs {
		t.Errorf("OnDropRecord saw %d records, OnDrop counted %d", seen, droppedRecs)
	}
	if droppedRecs == 0 || droppedRecs+q.Len() != 100 {
		t.Fatalf("dropped %d + kept %d should be 100", droppedRecs, q.Len())
	}
	// What is left is the newest, in order.
	got, _ := drain(t, q, q.Len())
	first, _ := strconv.Atoi(string(got[0][:3]))
	if first != droppedRecs {
		t.Fatalf("oldest kept record is %d, want %d (the oldest were dropped)", first, droppedRecs)
	}
	for i, r := range got {
		if n, _ := strconv.Atoi(string(r[:3])); n != first+i {
			t.Fatalf("out of order: %d at position %d", n, i)
		}
	}
}

func TestNextWaitsForAppendAndStops(t *testing.T) {
	q, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	got := make(chan []byte, 1)
	go func() {
		r, _, _ := q.Next(nil)
		got <- r
	}()
	time.Sleep(20 * time.Millisecond)
	if err := q.Append([]byte("late")); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if string(r) != "late" {
			t.Fatalf("got %q", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Next did not wake up on Append")
	}
	stop := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		_, _, err := q.Next(stop)
		errc <- err
	}()
	close(stop)
	select {
	case err := <-errc:
		if err != ErrClosed {
			t.Fatalf("want ErrClosed, got %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Next did not return when stopped")
	}
}

// TestKill9LosesNothingAppended runs a real writer process, kills it with
// SIGKILL mid-stream, and checks that every record whose Append had
// returned (the child prints the index right after) is in the queue.
func TestKill9LosesNothingAppended(t *testing.T) {
	if os.Getenv("DISKQUEUE_CHILD_DIR") != "" {
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9Child$")
	cmd.Env = append(os.Environ(), "DISKQUEUE_CHILD_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	confirmed := -1
	for sc.Scan() {
		if n, err := strconv.Atoi(sc.Text()); err == nil {
			confirmed = n
			if n >= 5000 {
				break
			}
		}
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	if confirmed < 5000 {
		t.Fatalf("child confirmed only %d records", confirmed)
	}

	q, err := Open(dir, Options{SegmentBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if q.Len() < confirmed+1 {
		t.Fatalf("after kill -9: %d records in the queue, but %d were confirmed appended", q.Len(), confirmed+1)
	}
	got, _ := drain(t, q, confirmed+1)
	for i, r := range got {
		if !bytes.Equal(r, rec(i)) {
			t.Fatalf("record %d after kill -9: got %q", i, r)
		}
	}
}

// TestKill9Child is the writer process of TestKill9LosesNothingAppended.
func TestKill9Child(t *testing.T) {
	dir := os.Getenv("DISKQUEUE_CHILD_DIR")
	if dir == "" {
		t.Skip("helper process for TestKill9LosesNothingAppended")
	}
	q, err := Open(dir, Options{SegmentBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		if err := q.Append(rec(i)); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(w, i)
		if i%100 == 0 {
			_ = w.Flush()
		}
	}
}

func FuzzOpenCorruptSegment(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{5, 0, 0, 0, 0, 0, 0, 0, 'h', 'e'})
	f.Add(bytes.Repeat([]byte{0xff}, 64))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%020d.seg", 0)), data, 0o640); err != nil {
			t.Fatal(err)
		}
		q, err := Open(dir, Options{})
		if err != nil {
			return
		}
		defer q.Close()
		// Whatever survived must read back intact, and appends must work.
		n := q.Len()
		if err := q.Append([]byte("after")); err != nil {
			t.Fatal(err)
		}
		got, _ := drain(t, q, n+1)
		if string(got[n]) != "after" {
			t.Fatalf("appended record reads back as %q", got[n])
		}
	})
}

func TestBatchedAckPersistsOnCloseAndRedeliversAfterCrash(t *testing.T) {
	dir := t.TempDir()
	q, err := Open(dir, Options{AckPersistInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := q.Append(rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	_, end := drain(t, q, 4)
	if err := q.Ack(end); err != nil { // first ack is written (no earlier write)
		t.Fatal(err)
	}
	_, end = drain(t, q, 3)
	if err := q.Ack(end); err != nil { // within the interval: not yet on disk
		t.Fatal(err)
	}
	// A crash now (no Close) redelivers the 3 acknowledged-but-unpersisted
	// records: at-least-once, never lost.
	crashed, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if crashed.Len() != 6 {
		t.Fatalf("after a crash: want 6 records (3 redelivered), got %d", crashed.Len())
	}
	_ = crashed.Close()
	// A clean Close persists the latest ack.
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if q.Len() != 3 {
		t.Fatalf("after Close: want 3 unacknowledged records, got %d", q.Len())
	}
}
