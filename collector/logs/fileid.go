package logs

import (
	"os"
	"syscall"
)

// fileID identifies a file independently of its name, so that a renamed
// (rotated) file is recognised.
type fileID struct {
	Dev   uint64 `json:"dev"`
	Inode uint64 `json:"inode"`
}

func idOf(fi os.FileInfo) fileID {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fileID{Dev: uint64(st.Dev), Inode: st.Ino} //nolint:unconvert // Dev's type differs by platform
	}
	return fileID{}
}
