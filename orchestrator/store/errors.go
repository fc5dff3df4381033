package store

import (
	"errors"
	"fmt"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrNotFound: the object does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists: Create found the object already present.
	ErrExists = errors.New("already exists")
	// ErrConflict: the object changed since the version the caller read.
	// The error is a *ConflictError carrying the current version.
	ErrConflict = errors.New("version conflict")
)

// ConflictError reports an optimistic-concurrency failure: the caller wrote
// against Expected but the object is at Current. Re-read and retry.
type ConflictError struct {
	Kind, Name        string
	Expected, Current int64
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%s %q: version conflict: expected version %d, current version is %d; re-read the object and retry", e.Kind, e.Name, e.Expected, e.Current)
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }
