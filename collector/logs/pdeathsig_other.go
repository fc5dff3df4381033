//go:build !linux

package logs

import "os/exec"

// stopWithParent is Linux-only (prctl PR_SET_PDEATHSIG); elsewhere an
// orphaned log store must be stopped by hand.
func stopWithParent(*exec.Cmd) {}
