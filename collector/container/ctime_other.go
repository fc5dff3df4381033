//go:build !linux

package container

import (
	"os"
	"time"
)

// changeTime falls back to the modification time off Linux.
func changeTime(fi os.FileInfo) time.Time { return fi.ModTime() }
