package container

import (
	"os"
	"syscall"
	"time"
)

// changeTime is the inode change time of a cgroup directory, which cAdvisor
// takes as the container's start time (cgroup dirs are never renamed, and
// their mtime moves whenever a child cgroup is created).
func changeTime(fi os.FileInfo) time.Time {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return time.Unix(st.Ctim.Sec, st.Ctim.Nsec)
	}
	return fi.ModTime()
}
