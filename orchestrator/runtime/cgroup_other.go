//go:build unix && !linux

package runtime

import (
	"errors"
	"syscall"

	"opspilot/orchestrator/model"
)

// Outside Linux there are no cgroups: instances run without limits, and
// the Process runtime says so once.

type cgroupManager struct{}

func newCgroupManager(root, parent string) *cgroupManager { return &cgroupManager{} }

func (m *cgroupManager) version() string { return "none" }

func (m *cgroupManager) create(id string) (*cgroup, error) {
	return nil, errors.New("cgroups exist only on Linux")
}

func (m *cgroupManager) leftovers() []string        { return nil }
func (m *cgroupManager) existing(id string) *cgroup { return &cgroup{} }

type cgroup struct{ rel string }

func (cg *cgroup) setLimits(model.Resources) error { return nil }
func (cg *cgroup) openFD() (int, error)            { return -1, nil }
func (cg *cgroup) addPID(int) error                { return nil }
func (cg *cgroup) pids() []int                     { return nil }
func (cg *cgroup) killAll()                        {}
func (cg *cgroup) remove() error                   { return nil }

func sysProcAttr(int) *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
