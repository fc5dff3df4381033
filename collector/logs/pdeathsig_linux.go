package logs

import (
	"os/exec"
	"syscall"
)

// stopWithParent makes the kernel send SIGTERM to the child when opspilot
// dies, however it dies.
func stopWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGTERM
}
