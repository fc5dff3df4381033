package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"opspilot/orchestrator/store"
	"opspilot/runbooks"
)

// kindApproval holds runbook approval requests in the control-plane store.
const kindApproval = "approvals"

// approvalLeaseTTL is how long (seconds) a request outlives the process
// waiting for it: a replica that dies takes its requests with it, and a
// click then hears that the request is no longer pending.
const approvalLeaseTTL = 10

// etcdApprovals keeps approval requests in etcd, so a Slack click that
// reaches any replica decides them. Each is attached to a lease this
// process keeps alive while it runs.
type etcdApprovals struct {
	st *store.Store
	// ttl is the lease's, in seconds; 0 means approvalLeaseTTL.
	ttl int64

	mu    sync.Mutex
	lease clientv3.LeaseID
	alive <-chan *clientv3.LeaseKeepAliveResponse
}

var _ runbooks.ApprovalStore = (*etcdApprovals)(nil)

// leaseID returns a live lease, granting a new one when the last one
// lapsed (its keep-alive channel closes then).
func (e *etcdApprovals) leaseID(ctx context.Context) (clientv3.LeaseID, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.alive != nil {
		select {
		case _, ok := <-e.alive:
			if ok {
				return e.lease, nil
			}
		default:
			return e.lease, nil
		}
	}
	c := e.st.Client()
	ttl := e.ttl
	if ttl == 0 {
		ttl = approvalLeaseTTL
	}
	g, err := c.Grant(ctx, ttl)
	if err != nil {
		return 0, err
	}
	// The keep-alive lives as long as the client, not the request.
	alive, err := c.KeepAlive(context.WithoutCancel(ctx), g.ID)
	if err != nil {
		return 0, err
	}
	keep := make(chan *clientv3.LeaseKeepAliveResponse, 1)
	go func() {
		defer close(keep)
		for r := range alive {
			select {
			case keep <- r:
			default:
			}
		}
	}()
	e.lease, e.alive = g.ID, keep
	return g.ID, nil
}

func (e *etcdApprovals) Create(ctx context.Context, r runbooks.ApprovalRecord) error {
	id, err := e.leaseID(ctx)
	if err != nil {
		return fmt.Errorf("approval lease: %w", err)
	}
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	key := e.st.Key(kindApproval, r.ID)
	resp, err := e.st.Client().Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(data), clientv3.WithLease(id))).
		Commit()
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return fmt.Errorf("approval %s: %w", r.ID, store.ErrExists)
	}
	return nil
}

func (e *etcdApprovals) get(ctx context.Context, id string) (runbooks.ApprovalRecord, int64, error) {
	v, err := store.Get[runbooks.ApprovalRecord](ctx, e.st, kindApproval, id)
	if errors.Is(err, store.ErrNotFound) {
		return runbooks.ApprovalRecord{}, 0, runbooks.ErrApprovalNotFound
	}
	return v.Value, v.Version, err
}

func (e *etcdApprovals) Get(ctx context.Context, id string) (runbooks.ApprovalRecord, error) {
	r, _, err := e.get(ctx, id)
	return r, err
}

// Update is a compare-and-swap on the record's revision, retried when
// another replica changed it in between; the record keeps its lease.
func (e *etcdApprovals) Update(ctx context.Context, id string, change func(*runbooks.ApprovalRecord) bool) (runbooks.ApprovalRecord, bool, error) {
	key := e.st.Key(kindApproval, id)
	for {
		r, version, err := e.get(ctx, id)
		if err != nil {
			return r, false, err
		}
		if !change(&r) {
			return r, false, nil
		}
		data, err := json.Marshal(r)
		if err != nil {
			return r, false, err
		}
		resp, err := e.st.Client().Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", version)).
			Then(clientv3.OpPut(key, string(data), clientv3.WithIgnoreLease())).
			Commit()
		if err != nil {
			return r, false, err
		}
		if resp.Succeeded {
			return r, true, nil
		}
	}
}

// Wait watches the record from the revision it was read at until it is
// decided or gone. While etcd cannot be reached it keeps trying: a run
// waiting for people outlives a short store outage.
func (e *etcdApprovals) Wait(ctx context.Context, id string) (runbooks.ApprovalRecord, error) {
	key := e.st.Key(kindApproval, id)
	for {
		r, version, err := e.get(ctx, id)
		switch {
		case errors.Is(err, runbooks.ErrApprovalNotFound):
			return r, err
		case err == nil && r.State != runbooks.ApprovalPending:
			return r, nil
		case err != nil:
			select {
			case <-ctx.Done():
				return runbooks.ApprovalRecord{}, ctx.Err()
			case <-time.After(time.Second):
			}
			continue
		}
		wctx, cancel := context.WithCancel(ctx)
		for resp := range e.st.Client().Watch(wctx, key, clientv3.WithRev(version+1)) {
			if resp.Err() != nil || len(resp.Events) > 0 {
				break // read it again
			}
		}
		cancel()
		if ctx.Err() != nil {
			return runbooks.ApprovalRecord{}, ctx.Err()
		}
	}
}

func (e *etcdApprovals) List(ctx context.Context) ([]runbooks.ApprovalRecord, error) {
	return listValues[runbooks.ApprovalRecord](ctx, e.st, kindApproval)
}

func (e *etcdApprovals) Delete(ctx context.Context, id string) error {
	_, err := e.st.Client().Delete(ctx, e.st.Key(kindApproval, id))
	return err
}
