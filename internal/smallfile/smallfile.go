// Package smallfile reads small files (procfs, sysfs, cgroupfs) whole into
// a caller's reused buffer, so that collectors polling hundreds of them
// every few seconds do not allocate per read. procfs files report size 0,
// so the buffer grows by reading, up to a limit.
//
// It imports only the standard library.
package smallfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
)

// Read reads path into buf[:0], growing it as needed up to limit bytes, and
// returns the filled buffer (keep it for the next call; the bytes are valid
// until then).
func Read(buf []byte, path string, limit int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return buf[:0], err
	}
	defer f.Close()
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			if len(buf) >= limit {
				return buf, fmt.Errorf("read %s: larger than %d bytes", path, limit)
			}
			buf = slices.Grow(buf, max(len(buf), 512))
		}
		n, err := f.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}
