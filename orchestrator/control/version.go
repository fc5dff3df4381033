package control

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"opspilot/orchestrator/model"
	"opspilot/orchestrator/store"
)

// KindRevision holds one immutable version of a service's spec per key
// "SERVICE.VERSION"; KindConfig the config libraries.
const (
	KindRevision = "revisions"
	KindConfig   = "configs"
)

// Revision is one version of a service: the spec its instances run. The
// instances name it by Version; rollouts go from one to another and undo
// goes back.
type Revision struct {
	Service string `json:"service"`
	Version string `json:"version"`
	// Number counts the service's revisions from 1, in the order they were
	// first rolled out.
	Number  int           `json:"number"`
	Created time.Time     `json:"created"`
	Spec    model.Service `json:"spec"`
	// Files are the config libraries' files as of this revision, by path
	// inside the instance directory.
	Files map[string]string `json:"files,omitempty"`
	// Cause is who asked for it and why.
	Cause string `json:"cause,omitempty"`
	// Failed is set when a rollout to this revision was rolled back, with
	// the reason.
	Failed string `json:"failed,omitempty"`
}

func revisionKey(service, version string) string { return service + "." + version }

// runSpec is the part of a service that instances run: a change to any of
// it is a new version; replicas, placement and rollout settings are not.
type runSpec struct {
	Runtime   string            `json:"runtime"`
	Command   []string          `json:"command,omitempty"`
	Image     string            `json:"image,omitempty"`
	Env       map[string]string `json:"env,omitempty"`
	Requests  model.Resources   `json:"requests"`
	Limits    model.Resources   `json:"limits"`
	Ports     []model.Port      `json:"ports,omitempty"`
	Liveness  *model.Probe      `json:"liveness,omitempty"`
	Readiness *model.Probe      `json:"readiness,omitempty"`
	StopGrace time.Duration     `json:"stop_grace,omitempty"`
	Files     map[string]string `json:"files,omitempty"`
	Tenant    string            `json:"tenant,omitempty"`
	// Metrics is where the node agent scrapes the instances; omitted
	// when unset, so services without it keep their versions.
	Metrics *model.MetricsEndpoint `json:"metrics,omitempty"`
}

// Version returns the version of s with the config files it mounts: the
// first 10 hex digits of the SHA-256 of what its instances run.
func Version(s *model.Service, files map[string]string) string {
	data, _ := json.Marshal(runSpec{
		Runtime: s.Runtime, Command: s.Command, Image: s.Image, Env: s.Env,
		Requests: s.Requests, Limits: s.Limits, Ports: s.Ports,
		Liveness: s.Liveness, Readiness: s.Readiness, StopGrace: s.StopGrace,
		Files: files, Tenant: s.Tenant, Metrics: s.Metrics,
	})
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:5])
}

// configFiles resolves the service's config mounts to files by path. A
// missing library is an error naming it.
func configFiles(ctx context.Context, st *store.Store, s *model.Service) (map[string]string, error) {
	if len(s.Configs) == 0 {
		return nil, nil
	}
	files := map[string]string{}
	for _, m := range s.Configs {
		lib, err := store.Get[model.ConfigLibrary](ctx, st, KindConfig, m.Name)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil, fmt.Errorf("service %s mounts config %q, which does not exist; apply a `kind: Config` named %q first", s.Name, m.Name, m.Name)
			}
			return nil, err
		}
		dir := m.Path
		if dir == "" {
			dir = "config/" + m.Name
		}
		for name, content := range lib.Value.Files {
			files[dir+"/"+name] = content
		}
	}
	return files, nil
}

// ensureRevision stores the revision for s if it is new and returns it.
func ensureRevision(ctx context.Context, st *store.Store, s *model.Service, cause string, now time.Time) (Revision, error) {
	files, err := configFiles(ctx, st, s)
	if err != nil {
		return Revision{}, err
	}
	v := Version(s, files)
	if got, err := store.Get[Revision](ctx, st, KindRevision, revisionKey(s.Name, v)); err == nil {
		return got.Value, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return Revision{}, err
	}
	revs, err := serviceRevisions(ctx, st, s.Name)
	if err != nil {
		return Revision{}, err
	}
	n := 1
	if len(revs) > 0 {
		n = revs[len(revs)-1].Number + 1
	}
	spec := *s
	spec.Replicas = 0
	r := Revision{Service: s.Name, Version: v, Number: n, Created: now, Spec: spec, Files: files, Cause: cause}
	if _, err := store.Create(ctx, st, KindRevision, revisionKey(s.Name, v), r); err != nil && !errors.Is(err, store.ErrExists) {
		return Revision{}, err
	}
	return r, nil
}

// serviceRevisions lists a service's revisions, oldest first.
func serviceRevisions(ctx context.Context, st *store.Store, service string) ([]Revision, error) {
	all, _, err := store.List[Revision](ctx, st, KindRevision)
	if err != nil {
		return nil, err
	}
	var out []Revision
	for _, r := range all {
		if r.Value.Service == service {
			out = append(out, r.Value)
		}
	}
	slices.SortFunc(out, func(a, b Revision) int { return a.Number - b.Number })
	return out, nil
}

// revisionCache keeps immutable revisions in memory.
type revisionCache struct {
	st *store.Store
	m  map[string]Revision
}

func (c *revisionCache) get(ctx context.Context, service, version string) (Revision, error) {
	key := revisionKey(service, version)
	if r, ok := c.m[key]; ok {
		return r, nil
	}
	got, err := store.Get[Revision](ctx, c.st, KindRevision, key)
	if err != nil {
		return Revision{}, err
	}
	if c.m == nil {
		c.m = map[string]Revision{}
	}
	c.m[key] = got.Value
	return got.Value, nil
}

func itoa(n int) string { return strconv.Itoa(n) }
