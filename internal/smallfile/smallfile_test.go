package smallfile

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadGrowsReusesAndLimits(t *testing.T) {
	dir := t.TempDir()
	big := bytes.Repeat([]byte("x"), 10_000)
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, big, 0o600); err != nil {
		t.Fatal(err)
	}
	buf, err := Read(nil, path, 1<<20)
	if err != nil || !bytes.Equal(buf, big) {
		t.Fatalf("read %d bytes, err %v; want the 10,000-byte file", len(buf), err)
	}
	// A real procfs file (reports size 0) reads whole into the same buffer.
	again, err := Read(buf, "/proc/self/status", 1<<20)
	if err != nil || !strings.Contains(string(again), "VmRSS") {
		t.Fatalf("reading /proc/self/status: %v", err)
	}
	if &again[0] != &buf[0] {
		t.Error("the buffer was not reused")
	}
	if _, err := Read(nil, path, 4096); err == nil || !strings.Contains(err.Error(), "larger than 4096 bytes") {
		t.Fatalf("over the limit: want an error naming it, got %v", err)
	}
	if _, err := Read(nil, filepath.Join(dir, "missing"), 4096); !os.IsNotExist(err) {
		t.Fatalf("missing file: want a not-exist error, got %v", err)
	}
}
