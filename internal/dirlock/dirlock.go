// Package dirlock gives a component exclusive use of a data directory: an
// flock on a lock file that records the holder's PID, so that a second
// opspilot on the same directory gets an error naming who holds it instead
// of a storage engine ending the process.
//
// It imports only the standard library.
package dirlock

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// InUseError says the lock is held by another open file (another process,
// or another Lock in this one: flock locks belong to open files).
type InUseError struct {
	Path string
	// PID is what the holder wrote into the file; empty if unknown.
	PID string
}

// Holder is "another opspilot (pid N)", or "another process".
func (e *InUseError) Holder() string {
	if e.PID == "" {
		return "another process"
	}
	return "another opspilot (pid " + e.PID + ")"
}

func (e *InUseError) Error() string { return e.Path + " is held by " + e.Holder() }

// Lock takes an exclusive, non-blocking flock on the file at path (created
// if missing) and writes this process's PID into it. Closing the returned
// file releases the lock. A held lock gives an *InUseError.
func Lock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &InUseError{Path: path, PID: strings.TrimSpace(string(holder))}
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}
