package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Object kinds used by the orchestrator. Any kind matching [a-z0-9-]+ works.
const (
	KindDatacenter = "datacenters"
	KindNode       = "nodes"
	KindTenant     = "tenants"
	KindService    = "services"
	KindInstance   = "instances"
)

// Versioned is a value with its version: the etcd ModRevision of the key,
// which Update and Delete take back for optimistic concurrency.
type Versioned[T any] struct {
	Value   T
	Version int64
}

func (s *Store) kindPrefix(kind string) string { return s.prefix + kind + "/" }

func (s *Store) key(kind, name string) (string, error) {
	if err := checkKind(kind); err != nil {
		return "", err
	}
	if name == "" || strings.ContainsAny(name, "/\x00") {
		return "", fmt.Errorf("store: bad %s name %q: must be non-empty without '/'", kind, name)
	}
	return s.kindPrefix(kind) + name, nil
}

func checkKind(kind string) error {
	if kind == "" || strings.ContainsAny(kind, "/\x00") {
		return fmt.Errorf("store: bad kind %q: must be non-empty without '/'", kind)
	}
	return nil
}

// Get reads kind/name. It returns ErrNotFound if absent.
func Get[T any](ctx context.Context, s *Store, kind, name string) (Versioned[T], error) {
	var out Versioned[T]
	key, err := s.key(kind, name)
	if err != nil {
		return out, err
	}
	resp, err := s.client.Get(ctx, key)
	if err != nil {
		return out, fmt.Errorf("get %s %q: %w", kind, name, err)
	}
	if len(resp.Kvs) == 0 {
		return out, fmt.Errorf("get %s %q: %w", kind, name, ErrNotFound)
	}
	kv := resp.Kvs[0]
	if err := json.Unmarshal(kv.Value, &out.Value); err != nil {
		return out, fmt.Errorf("get %s %q: decode stored JSON: %w", kind, name, err)
	}
	out.Version = kv.ModRevision
	return out, nil
}

// List reads every object of kind, sorted by name, and the etcd revision
// the list reflects: pass it to Watch to see every later change.
func List[T any](ctx context.Context, s *Store, kind string) ([]Versioned[T], int64, error) {
	if err := checkKind(kind); err != nil {
		return nil, 0, err
	}
	resp, err := s.client.Get(ctx, s.kindPrefix(kind), clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, 0, fmt.Errorf("list %s: %w", kind, err)
	}
	out := make([]Versioned[T], len(resp.Kvs))
	for i, kv := range resp.Kvs {
		if err := json.Unmarshal(kv.Value, &out[i].Value); err != nil {
			return nil, 0, fmt.Errorf("list %s: decode %s: %w", kind, kv.Key, err)
		}
		out[i].Version = kv.ModRevision
	}
	return out, resp.Header.Revision, nil
}

// Create stores v as kind/name and returns its version. It returns
// ErrExists if the object is already present.
func Create[T any](ctx context.Context, s *Store, kind, name string, v T) (int64, error) {
	key, err := s.key(kind, name)
	if err != nil {
		return 0, err
	}
	data, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("create %s %q: encode: %w", kind, name, err)
	}
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(data))).
		Commit()
	if err != nil {
		return 0, fmt.Errorf("create %s %q: %w", kind, name, err)
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("create %s %q: %w", kind, name, ErrExists)
	}
	return resp.Header.Revision, nil
}

// Update replaces kind/name with v if its version is still version, and
// returns the new version. Otherwise it returns a *ConflictError (matching
// ErrConflict) with the current version, or ErrNotFound.
func Update[T any](ctx context.Context, s *Store, kind, name string, v T, version int64) (int64, error) {
	key, err := s.key(kind, name)
	if err != nil {
		return 0, err
	}
	if version <= 0 {
		return 0, fmt.Errorf("update %s %q: version %d: pass the version from Get or List (use Create for new objects)", kind, name, version)
	}
	data, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("update %s %q: encode: %w", kind, name, err)
	}
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", version)).
		Then(clientv3.OpPut(key, string(data))).
		Else(clientv3.OpGet(key, clientv3.WithKeysOnly())).
		Commit()
	if err != nil {
		return 0, fmt.Errorf("update %s %q: %w", kind, name, err)
	}
	if !resp.Succeeded {
		return 0, failedCompare("update", kind, name, version, resp)
	}
	return resp.Header.Revision, nil
}

// Delete removes kind/name if its version is still version; version 0
// deletes unconditionally. It returns ErrNotFound if absent and a
// *ConflictError if the version moved on.
func Delete(ctx context.Context, s *Store, kind, name string, version int64) error {
	key, err := s.key(kind, name)
	if err != nil {
		return err
	}
	if version == 0 {
		resp, err := s.client.Delete(ctx, key)
		if err != nil {
			return fmt.Errorf("delete %s %q: %w", kind, name, err)
		}
		if resp.Deleted == 0 {
			return fmt.Errorf("delete %s %q: %w", kind, name, ErrNotFound)
		}
		return nil
	}
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", version)).
		Then(clientv3.OpDelete(key)).
		Else(clientv3.OpGet(key, clientv3.WithKeysOnly())).
		Commit()
	if err != nil {
		return fmt.Errorf("delete %s %q: %w", kind, name, err)
	}
	if !resp.Succeeded {
		return failedCompare("delete", kind, name, version, resp)
	}
	return nil
}

// failedCompare explains a failed ModRevision compare from the Else Get.
func failedCompare(op, kind, name string, version int64, resp *clientv3.TxnResponse) error {
	if len(resp.Responses) == 1 {
		if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) == 1 {
			return fmt.Errorf("%s: %w", op, &ConflictError{Kind: kind, Name: name, Expected: version, Current: kvs[0].ModRevision})
		}
	}
	return fmt.Errorf("%s %s %q: %w", op, kind, name, ErrNotFound)
}

// Key returns the etcd key of kind/name, for callers that use the etcd
// client directly (e.g. to attach a lease). It panics on a bad kind or
// name, which is a programming error.
func (s *Store) Key(kind, name string) string {
	k, err := s.key(kind, name)
	if err != nil {
		panic(err)
	}
	return k
}
