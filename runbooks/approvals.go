package runbooks

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// Approval states.
const (
	ApprovalPending     = "pending"
	ApprovalApproved    = "approved"
	ApprovalDenied      = "denied"
	ApprovalExpired     = "expired"     // nobody decided before the step's timeout
	ApprovalInterrupted = "interrupted" // the run waiting for it ended with its control plane
)

// ApprovalRecord is an approval request as the control-plane store keeps
// it while its run waits: any replica that receives the click decides it,
// and a request whose run died with its control plane is found and
// closed instead of leaving buttons that silently do nothing.
type ApprovalRecord struct {
	ID       string   `json:"id"`
	Approval Approval `json:"approval"`
	// Tenants are the tenants of the services the run acts on, when it
	// asked; a tenant-scoped approver must belong to all of them.
	Tenants []string `json:"tenants,omitempty"`
	// Channel and TS locate the Slack message with the buttons.
	Channel string    `json:"channel,omitempty"`
	TS      string    `json:"ts,omitempty"`
	State   string    `json:"state"`
	By      string    `json:"by,omitempty"`
	Created time.Time `json:"created"`
	Decided time.Time `json:"decided,omitzero"`
}

// ErrApprovalNotFound: no such approval request (decided and gone, or
// never made).
var ErrApprovalNotFound = errors.New("approval request not found")

// ApprovalStore keeps approval requests while their runs wait. The
// control plane keeps them in etcd; MemoryApprovals serves a single
// process.
type ApprovalStore interface {
	Create(ctx context.Context, r ApprovalRecord) error
	// Get returns the record or ErrApprovalNotFound.
	Get(ctx context.Context, id string) (ApprovalRecord, error)
	// Update applies change to the current record atomically; change
	// returns false to leave the record as it is. It returns the record
	// as stored afterwards and whether change applied.
	Update(ctx context.Context, id string, change func(*ApprovalRecord) bool) (ApprovalRecord, bool, error)
	// Wait returns the record once it is no longer pending, or ctx's
	// error.
	Wait(ctx context.Context, id string) (ApprovalRecord, error)
	List(ctx context.Context) ([]ApprovalRecord, error)
	Delete(ctx context.Context, id string) error
}

// MemoryApprovals is an ApprovalStore in this process's memory.
type MemoryApprovals struct {
	mu      sync.Mutex
	records map[string]ApprovalRecord
	changed chan struct{} // closed and replaced on every change
}

func (m *MemoryApprovals) init() {
	if m.records == nil {
		m.records = map[string]ApprovalRecord{}
		m.changed = make(chan struct{})
	}
}

func (m *MemoryApprovals) notify() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// Create implements ApprovalStore.
func (m *MemoryApprovals) Create(_ context.Context, r ApprovalRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.init()
	if _, ok := m.records[r.ID]; ok {
		return errors.New("approval " + r.ID + " exists")
	}
	m.records[r.ID] = r
	m.notify()
	return nil
}

// Get implements ApprovalStore.
func (m *MemoryApprovals) Get(_ context.Context, id string) (ApprovalRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.init()
	r, ok := m.records[id]
	if !ok {
		return ApprovalRecord{}, ErrApprovalNotFound
	}
	return r, nil
}

// Update implements ApprovalStore.
func (m *MemoryApprovals) Update(_ context.Context, id string, change func(*ApprovalRecord) bool) (ApprovalRecord, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.init()
	r, ok := m.records[id]
	if !ok {
		return ApprovalRecord{}, false, ErrApprovalNotFound
	}
	r.Tenants = slices.Clone(r.Tenants)
	if !change(&r) {
		return m.records[id], false, nil
	}
	m.records[id] = r
	m.notify()
	return r, true, nil
}

// Wait implements ApprovalStore.
func (m *MemoryApprovals) Wait(ctx context.Context, id string) (ApprovalRecord, error) {
	for {
		m.mu.Lock()
		m.init()
		r, ok := m.records[id]
		ch := m.changed
		m.mu.Unlock()
		if !ok {
			return ApprovalRecord{}, ErrApprovalNotFound
		}
		if r.State != ApprovalPending {
			return r, nil
		}
		select {
		case <-ctx.Done():
			return ApprovalRecord{}, ctx.Err()
		case <-ch:
		}
	}
}

// List implements ApprovalStore.
func (m *MemoryApprovals) List(context.Context) ([]ApprovalRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]ApprovalRecord, 0, len(m.records))
	for _, r := range m.records {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b ApprovalRecord) int { return a.Created.Compare(b.Created) })
	return out, nil
}

// Delete implements ApprovalStore.
func (m *MemoryApprovals) Delete(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.init()
	delete(m.records, id)
	m.notify()
	return nil
}
