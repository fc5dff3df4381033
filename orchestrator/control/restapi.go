package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"opspilot/api"
	"opspilot/autoscaler"
	"opspilot/config"
	"opspilot/orchestrator/model"
	"opspilot/orchestrator/store"
	"opspilot/runbooks"
)

// ServiceStatus is the observed state of a service.
type ServiceStatus struct {
	// Replicas counts instances desired to run; ReadyReplicas those ready;
	// UpdatedReplicas those on the current version.
	Replicas        int `json:"replicas"`
	ReadyReplicas   int `json:"readyReplicas"`
	UpdatedReplicas int `json:"updatedReplicas"`
	// Stopping counts instances draining or stopping.
	Stopping int    `json:"stopping"`
	Version  string `json:"version"`
	Revision int    `json:"revision"`
	// Rollout is "complete", "progressing" or "rolled back: WHY".
	Rollout string `json:"rollout"`
	// Datacenters counts ready instances per datacenter.
	Datacenters map[string]int `json:"datacenters,omitempty"`
}

// ServiceView is a service with its status, the body of GET
// /api/v1/services/NAME.
type ServiceView struct {
	model.Service
	Status   ServiceStatus `json:"status"`
	Revision int64         `json:"resourceVersion"`
}

// NodeView is a node with what runs on it.
type NodeView struct {
	model.Node
	Instances int   `json:"instances"`
	Revision  int64 `json:"resourceVersion"`
}

// DatacenterView sums a datacenter's nodes.
type DatacenterView struct {
	Name       string          `json:"name"`
	Nodes      int             `json:"nodes"`
	ReadyNodes int             `json:"readyNodes"`
	Instances  int             `json:"instances"`
	Capacity   model.Resources `json:"capacity"`
	Allocated  model.Resources `json:"allocated"`
	// Status is the control plane's health verdict and failover state.
	Status model.DatacenterStatus `json:"status"`
}

// ApplyResult is the answer to PUT.
type ApplyResult struct {
	Result   string `json:"result"` // created, updated or unchanged
	Kind     string `json:"kind"`
	Name     string `json:"name"`
	Revision int64  `json:"resourceVersion"`
}

type gatewayEntry struct {
	gw   model.Gateway
	seen time.Time
}

// gatewayTTL is how long a gateway stays listed after its last
// registration.
const gatewayTTL = 15 * time.Second

// Routes returns the REST API under /api/v1/.
func (c *Controller) Routes() []api.Route {
	r := &restAPI{c: c}
	R, W, A := api.RoleRead, api.RoleWrite, api.RoleAdmin
	return append([]api.Route{
		{Pattern: "GET /api/v1/datacenters", Name: "datacenters", Role: R, Handler: http.HandlerFunc(r.datacenters)},
		{Pattern: "POST /api/v1/datacenters/{name}/failover", Name: "datacenter_failover", Role: A, Handler: r.failover(true)},
		{Pattern: "POST /api/v1/datacenters/{name}/failback", Name: "datacenter_failover", Role: A, Handler: r.failover(false)},
		{Pattern: "GET /api/v1/nodes", Name: "nodes", Role: R, Handler: http.HandlerFunc(r.nodes)},
		{Pattern: "GET /api/v1/nodes/{name}", Name: "node", Role: R, Handler: http.HandlerFunc(r.node)},
		{Pattern: "POST /api/v1/nodes/{name}/cordon", Name: "node_cordon", Role: W, Handler: r.cordon(true)},
		{Pattern: "POST /api/v1/nodes/{name}/uncordon", Name: "node_cordon", Role: W, Handler: r.cordon(false)},
		{Pattern: "DELETE /api/v1/nodes/{name}", Name: "node_delete", Role: A, Handler: http.HandlerFunc(r.deleteNode)},
		{Pattern: "GET /api/v1/tenants", Name: "tenants", Role: R, Handler: listHandler[model.Tenant](c, store.KindTenant)},
		{Pattern: "GET /api/v1/tenants/{name}", Name: "tenant", Role: R, Handler: getHandler[model.Tenant](c, store.KindTenant)},
		{Pattern: "PUT /api/v1/tenants/{name}", Name: "tenant_put", Role: A, Handler: putHandler(c, store.KindTenant, "tenant", func(t *model.Tenant) (string, []config.Problem) { return t.Name, t.Validate() })},
		{Pattern: "DELETE /api/v1/tenants/{name}", Name: "tenant_delete", Role: A, Handler: deleteHandler(c, store.KindTenant, "tenant")},
		{Pattern: "GET /api/v1/configs", Name: "configs", Role: R, Handler: listHandler[model.ConfigLibrary](c, KindConfig)},
		{Pattern: "GET /api/v1/configs/{name}", Name: "config", Role: R, Handler: getHandler[model.ConfigLibrary](c, KindConfig)},
		{Pattern: "PUT /api/v1/configs/{name}", Name: "config_put", Role: W, Handler: putHandler(c, KindConfig, "config", func(l *model.ConfigLibrary) (string, []config.Problem) { return l.Name, l.Validate() })},
		{Pattern: "DELETE /api/v1/configs/{name}", Name: "config_delete", Role: W, Handler: deleteHandler(c, KindConfig, "config")},
		{Pattern: "GET /api/v1/services", Name: "services", Role: R, Handler: http.HandlerFunc(r.services)},
		{Pattern: "GET /api/v1/services/{name}", Name: "service", Role: R, Handler: http.HandlerFunc(r.service)},
		{Pattern: "PUT /api/v1/services/{name}", Name: "service_put", Role: W, Handler: putHandler(c, store.KindService, "service", func(s *model.Service) (string, []config.Problem) { return s.Name, s.Validate() })},
		{Pattern: "DELETE /api/v1/services/{name}", Name: "service_delete", Role: W, Handler: deleteHandler(c, store.KindService, "service")},
		{Pattern: "POST /api/v1/services/{name}/scale", Name: "service_scale", Role: W, Handler: http.HandlerFunc(r.scale)},
		{Pattern: "GET /api/v1/services/{name}/rollout", Name: "service_rollout", Role: R, Handler: http.HandlerFunc(r.rollout)},
		{Pattern: "POST /api/v1/services/{name}/rollout/undo", Name: "service_undo", Role: W, Handler: http.HandlerFunc(r.undo)},
		{Pattern: "GET /api/v1/instances", Name: "instances", Role: R, Handler: http.HandlerFunc(r.instances)},
		{Pattern: "GET /api/v1/instances/{name}", Name: "instance", Role: R, Handler: getHandler[model.Instance](c, store.KindInstance)},
		{Pattern: "DELETE /api/v1/instances/{name}", Name: "instance_delete", Role: W, Handler: http.HandlerFunc(r.deleteInstance)},
		{Pattern: "GET /api/v1/events", Name: "events", Role: R, Handler: http.HandlerFunc(r.events)},
		{Pattern: "GET /api/v1/endpoints", Name: "endpoints", Role: R, Handler: http.HandlerFunc(r.endpoints)},
		{Pattern: "GET /api/v1/gateways", Name: "gateways", Role: R, Handler: http.HandlerFunc(r.gateways)},
		{Pattern: "POST /api/v1/gateways", Name: "gateway_register", Role: W, Handler: http.HandlerFunc(r.registerGateway)},
	}, append(c.policyRoutes(), c.runbookRoutes()...)...)
}

type restAPI struct {
	c  *Controller
	mu sync.Mutex
}

func storeErr(w http.ResponseWriter, err error, what string) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeErr(w, http.StatusNotFound, what+" not found")
	case errors.Is(err, store.ErrConflict):
		writeErr(w, http.StatusConflict, err.Error())
	default:
		writeErr(w, http.StatusServiceUnavailable, err.Error())
	}
}

func (c *Controller) record(r *http.Request, ev Event) {
	caller := api.CallerFrom(r.Context())
	ev.Who, ev.Why = caller.Name, api.Reason(r)
	if ev.Who == "" {
		ev.Who = "anonymous"
	}
	c.events.Record(r.Context(), ev)
}

func listHandler[T any](c *Controller, kind string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		items, _, err := store.List[T](r.Context(), c.st, kind)
		if err != nil {
			storeErr(w, err, kind)
			return
		}
		out := make([]T, len(items))
		for k, it := range items {
			out[k] = it.Value
		}
		writeJSONBody(w, http.StatusOK, out)
	})
}

func getHandler[T any](c *Controller, kind string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, err := store.Get[T](r.Context(), c.st, kind, r.PathValue("name"))
		if err != nil {
			storeErr(w, err, strings.TrimSuffix(kind, "s")+" "+r.PathValue("name"))
			return
		}
		writeJSONBody(w, http.StatusOK, got.Value)
	})
}

// putHandler creates or replaces an object (apply). The body is the
// object's JSON; ?resourceVersion=N makes the write conditional.
func putHandler[T any](c *Controller, kind, noun string, check func(*T) (string, []config.Problem)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var v T
		if !decodeBody(w, r, &v) {
			return
		}
		name, ps := check(&v)
		if name != r.PathValue("name") {
			writeErr(w, http.StatusBadRequest, fmt.Sprintf("%s name %q in the body differs from %q in the path", noun, name, r.PathValue("name")))
			return
		}
		if len(ps) > 0 {
			msgs := make([]string, len(ps))
			for k, p := range ps {
				msgs[k] = p.Field + ": " + p.Msg
			}
			writeErr(w, http.StatusUnprocessableEntity, noun+" "+name+": "+strings.Join(msgs, "; "))
			return
		}
		var want int64
		if s := r.URL.Query().Get("resourceVersion"); s != "" {
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil || n < 0 {
				writeErr(w, http.StatusBadRequest, "resourceVersion must be a non-negative integer")
				return
			}
			want = n
		}
		res, err := applyObject(r.Context(), c.st, kind, name, v, want)
		if err != nil {
			storeErr(w, err, noun+" "+name)
			return
		}
		res.Kind = noun
		if res.Result != "unchanged" {
			c.record(r, Event{Kind: noun, Object: name, Reason: strings.ToUpper(res.Result[:1]) + res.Result[1:], Message: fmt.Sprintf("%s %s %s", noun, name, res.Result)})
			c.Poke()
		}
		writeJSONBody(w, http.StatusOK, res)
	})
}

func applyObject[T any](ctx context.Context, st *store.Store, kind, name string, v T, want int64) (ApplyResult, error) {
	for attempt := 0; ; attempt++ {
		cur, err := store.Get[T](ctx, st, kind, name)
		if errors.Is(err, store.ErrNotFound) {
			if want > 0 {
				return ApplyResult{}, err
			}
			ver, err := store.Create(ctx, st, kind, name, v)
			if errors.Is(err, store.ErrExists) && attempt < 3 {
				continue
			}
			return ApplyResult{Result: "created", Name: name, Revision: ver}, err
		}
		if err != nil {
			return ApplyResult{}, err
		}
		if want > 0 && want != cur.Version {
			return ApplyResult{}, &store.ConflictError{Kind: kind, Name: name, Expected: want, Current: cur.Version}
		}
		if sameJSON(cur.Value, v) {
			return ApplyResult{Result: "unchanged", Name: name, Revision: cur.Version}, nil
		}
		ver, err := store.Update(ctx, st, kind, name, v, cur.Version)
		if errors.Is(err, store.ErrConflict) && want == 0 && attempt < 3 {
			continue
		}
		return ApplyResult{Result: "updated", Name: name, Revision: ver}, err
	}
}

func sameJSON(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	var va, vb any
	_ = json.Unmarshal(ja, &va)
	_ = json.Unmarshal(jb, &vb)
	return reflect.DeepEqual(va, vb)
}

func deleteHandler(c *Controller, kind, noun string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		if err := store.Delete(r.Context(), c.st, kind, name, 0); err != nil {
			storeErr(w, err, noun+" "+name)
			return
		}
		c.record(r, Event{Kind: noun, Object: name, Reason: "Deleted", Message: noun + " " + name + " deleted"})
		c.Poke()
		writeJSONBody(w, http.StatusOK, map[string]string{"status": "deleted", "kind": noun, "name": name})
	})
}

// Instances lists every instance in the store.
func (c *Controller) Instances(ctx context.Context) ([]model.Instance, error) {
	insts, _, err := store.List[model.Instance](ctx, c.st, store.KindInstance)
	if err != nil {
		return nil, err
	}
	out := make([]model.Instance, len(insts))
	for i, vi := range insts {
		out[i] = vi.Value
	}
	return out, nil
}

// ServiceViews returns every service with its status.
func (c *Controller) ServiceViews(ctx context.Context) ([]ServiceView, error) {
	svcs, _, err := store.List[model.Service](ctx, c.st, store.KindService)
	if err != nil {
		return nil, err
	}
	insts, _, err := store.List[model.Instance](ctx, c.st, store.KindInstance)
	if err != nil {
		return nil, err
	}
	out := make([]ServiceView, 0, len(svcs))
	for _, s := range svcs {
		v, err := c.serviceView(ctx, s, insts)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func (c *Controller) serviceView(ctx context.Context, s store.Versioned[model.Service], insts []store.Versioned[model.Instance]) (ServiceView, error) {
	files, err := configFiles(ctx, c.st, &s.Value)
	if err != nil {
		files = nil
	}
	ver := Version(&s.Value, files)
	st := ServiceStatus{Version: ver, Datacenters: map[string]int{}}
	old := 0
	for _, vi := range insts {
		i := vi.Value
		if i.Service != s.Value.Name {
			continue
		}
		if i.Desired != model.DesiredRun {
			st.Stopping++
			continue
		}
		st.Replicas++
		if i.Ready() {
			st.ReadyReplicas++
			st.Datacenters[i.Datacenter]++
		}
		if i.Version == ver {
			st.UpdatedReplicas++
		} else {
			old++
		}
	}
	c.revMu.Lock()
	rev, err := c.revs.get(ctx, s.Value.Name, ver)
	c.revMu.Unlock()
	if err == nil {
		st.Revision = rev.Number
	}
	switch {
	case old == 0 && st.UpdatedReplicas == s.Value.Replicas && st.ReadyReplicas == s.Value.Replicas:
		st.Rollout = "complete"
	default:
		st.Rollout = "progressing"
	}
	return ServiceView{Service: s.Value, Status: st, Revision: s.Version}, nil
}

func (r *restAPI) services(w http.ResponseWriter, req *http.Request) {
	out, err := r.c.ServiceViews(req.Context())
	if err != nil {
		storeErr(w, err, "services")
		return
	}
	writeJSONBody(w, http.StatusOK, out)
}

// ServiceView returns one service with its status.
func (c *Controller) ServiceView(ctx context.Context, name string) (ServiceView, error) {
	s, err := store.Get[model.Service](ctx, c.st, store.KindService, name)
	if err != nil {
		return ServiceView{}, err
	}
	insts, _, err := store.List[model.Instance](ctx, c.st, store.KindInstance)
	if err != nil {
		return ServiceView{}, err
	}
	return c.serviceView(ctx, s, insts)
}

func (r *restAPI) service(w http.ResponseWriter, req *http.Request) {
	name := req.PathValue("name")
	v, err := r.c.ServiceView(req.Context(), name)
	if err != nil {
		storeErr(w, err, "service "+name)
		return
	}
	writeJSONBody(w, http.StatusOK, v)
}

// ScaleRequest is the body of POST /api/v1/services/NAME/scale.
type ScaleRequest struct {
	Replicas *int `json:"replicas"`
}

func (r *restAPI) scale(w http.ResponseWriter, req *http.Request) {
	name := req.PathValue("name")
	var body ScaleRequest
	if !decodeBody(w, req, &body) {
		return
	}
	if body.Replicas == nil || *body.Replicas < 0 || *body.Replicas > 100000 {
		writeErr(w, http.StatusBadRequest, `the body needs "replicas": a whole number between 0 and 100000`)
		return
	}
	from := 0
	_, err := r.c.Scale(req.Context(), name, *body.Replicas, api.CallerFrom(req.Context()).Name, api.Reason(req), &from)
	if err != nil {
		storeErr(w, err, "service "+name)
		return
	}
	writeJSONBody(w, http.StatusOK, map[string]any{"service": name, "from": from, "replicas": *body.Replicas})
}

// Scale sets a service's replicas and records who and why. It is the
// scale API the autoscaler and runbooks call.
func (c *Controller) Scale(ctx context.Context, service string, replicas int, who, why string, from *int) (model.Service, error) {
	var prev int
	s, err := mutateService(ctx, c.st, service, func(s *model.Service) error {
		prev = s.Replicas
		s.Replicas = replicas
		return nil
	})
	if err != nil {
		return s, err
	}
	if from != nil {
		*from = prev
	}
	if prev != replicas {
		c.events.Record(ctx, Event{Kind: "service", Object: service, Reason: "Scaled",
			Message: fmt.Sprintf("service %s scaled from %d to %d replicas", service, prev, replicas), Who: who, Why: why})
		c.Poke()
	}
	return s, nil
}

// RolloutView is the body of GET /api/v1/services/NAME/rollout.
type RolloutView struct {
	Service string        `json:"service"`
	Status  ServiceStatus `json:"status"`
	Desired int           `json:"desired"`
	History []Revision    `json:"history"`
	// Steps is the service's gray-release plan and Gray the progress of
	// the release to the current version (or of the one that rolled back).
	Steps []model.RolloutStep `json:"steps,omitempty"`
	Gray  *GrayStatus         `json:"gray,omitempty"`
}

func (r *restAPI) rollout(w http.ResponseWriter, req *http.Request) {
	name := req.PathValue("name")
	v, err := r.c.ServiceView(req.Context(), name)
	if err != nil {
		storeErr(w, err, "service "+name)
		return
	}
	revs, err := serviceRevisions(req.Context(), r.c.st, name)
	if err != nil {
		storeErr(w, err, "revisions")
		return
	}
	for k := range revs {
		revs[k].Files = nil
	}
	// The gray release shown is the current version's, or the one that
	// rolled back: its verdicts say why. (Not the current version's then:
	// that one may have been gray-released itself, and its old passing
	// verdicts would read as this release's.)
	grayVersion := v.Status.Version
	if len(revs) > 0 && revs[len(revs)-1].Failed != "" && v.Status.Version != revs[len(revs)-1].Version {
		v.Status.Rollout = "rolled back: " + revs[len(revs)-1].Failed
		grayVersion = revs[len(revs)-1].Version
	}
	view := RolloutView{Service: name, Status: v.Status, Desired: v.Replicas, History: revs, Steps: v.Rollout.Steps}
	if g, err := store.Get[GrayStatus](req.Context(), r.c.st, KindGray, revisionKey(name, grayVersion)); err == nil {
		view.Gray = &g.Value
	}
	writeJSONBody(w, http.StatusOK, view)
}

// UndoRequest is the body of POST /api/v1/services/NAME/rollout/undo; a
// zero ToRevision means the revision before the current one.
type UndoRequest struct {
	ToRevision int `json:"to_revision,omitempty"`
}

func (r *restAPI) undo(w http.ResponseWriter, req *http.Request) {
	name := req.PathValue("name")
	var body UndoRequest
	if req.ContentLength != 0 && !decodeBody(w, req, &body) {
		return
	}
	ctx := req.Context()
	revs, err := serviceRevisions(ctx, r.c.st, name)
	if err != nil {
		storeErr(w, err, "revisions")
		return
	}
	var target *Revision
	_, err = mutateService(ctx, r.c.st, name, func(s *model.Service) error {
		files, _ := configFiles(ctx, r.c.st, s)
		cur := Version(s, files)
		target = nil
		if body.ToRevision > 0 {
			for k := range revs {
				if revs[k].Number == body.ToRevision {
					target = &revs[k]
				}
			}
			if target == nil {
				return fmt.Errorf("service %s has no revision %d: %w", name, body.ToRevision, store.ErrNotFound)
			}
		} else {
			// The newest revision before the current one.
			for k := len(revs) - 1; k >= 0; k-- {
				if revs[k].Version == cur {
					for j := k - 1; j >= 0; j-- {
						if revs[j].Failed == "" {
							target = &revs[j]
							break
						}
					}
					break
				}
			}
			if target == nil {
				return fmt.Errorf("service %s has no earlier revision to go back to: %w", name, store.ErrNotFound)
			}
		}
		restoreRunSpec(s, target.Spec)
		return nil
	})
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			writeErr(w, http.StatusNotFound, err.Error())
			return
		}
		storeErr(w, err, "service "+name)
		return
	}
	r.c.record(req, Event{Kind: "service", Object: name, Reason: "RolloutUndo", Message: fmt.Sprintf("service %s rolled back to revision %d (version %s)", name, target.Number, target.Version)})
	r.c.Poke()
	writeJSONBody(w, http.StatusOK, map[string]any{"service": name, "revision": target.Number, "version": target.Version})
}

func (r *restAPI) instances(w http.ResponseWriter, req *http.Request) {
	insts, _, err := store.List[model.Instance](req.Context(), r.c.st, store.KindInstance)
	if err != nil {
		storeErr(w, err, "instances")
		return
	}
	q := req.URL.Query()
	out := []model.Instance{}
	for _, i := range insts {
		if (q.Get("service") == "" || i.Value.Service == q.Get("service")) && (q.Get("node") == "" || i.Value.Node == q.Get("node")) &&
			(q.Get("datacenter") == "" || i.Value.Datacenter == q.Get("datacenter")) {
			out = append(out, i.Value)
		}
	}
	writeJSONBody(w, http.StatusOK, out)
}

func (r *restAPI) deleteInstance(w http.ResponseWriter, req *http.Request) {
	id := req.PathValue("name")
	got, err := store.Get[model.Instance](req.Context(), r.c.st, store.KindInstance, id)
	if err != nil {
		storeErr(w, err, "instance "+id)
		return
	}
	r.c.stop(req.Context(), got.Value, r.c.now(), "deleted through the API")
	r.c.record(req, Event{Kind: "instance", Object: id, Reason: "Deleted", Message: fmt.Sprintf("instance %s of %s stopped; the service's replicas are kept", id, got.Value.Service)})
	r.c.Poke()
	writeJSONBody(w, http.StatusOK, map[string]string{"status": "stopping", "instance": id})
}

func (r *restAPI) nodeViews(ctx context.Context) ([]NodeView, error) {
	nodes, _, err := store.List[model.Node](ctx, r.c.st, store.KindNode)
	if err != nil {
		return nil, err
	}
	insts, _, err := store.List[model.Instance](ctx, r.c.st, store.KindInstance)
	if err != nil {
		return nil, err
	}
	alloc, count := map[string]model.Resources{}, map[string]int{}
	for _, i := range insts {
		alloc[i.Value.Node] = alloc[i.Value.Node].Add(i.Value.Requests)
		if i.Value.Desired == model.DesiredRun {
			count[i.Value.Node]++
		}
	}
	out := make([]NodeView, 0, len(nodes))
	for _, n := range nodes {
		v := NodeView{Node: n.Value, Instances: count[n.Value.Name], Revision: n.Version}
		v.Allocated = alloc[n.Value.Name]
		out = append(out, v)
	}
	return out, nil
}

func (r *restAPI) nodes(w http.ResponseWriter, req *http.Request) {
	out, err := r.nodeViews(req.Context())
	if err != nil {
		storeErr(w, err, "nodes")
		return
	}
	writeJSONBody(w, http.StatusOK, out)
}

func (r *restAPI) node(w http.ResponseWriter, req *http.Request) {
	all, err := r.nodeViews(req.Context())
	if err != nil {
		storeErr(w, err, "nodes")
		return
	}
	for _, n := range all {
		if n.Name == req.PathValue("name") {
			writeJSONBody(w, http.StatusOK, n)
			return
		}
	}
	writeErr(w, http.StatusNotFound, "node "+req.PathValue("name")+" not found")
}

func (r *restAPI) datacenters(w http.ResponseWriter, req *http.Request) {
	all, err := r.nodeViews(req.Context())
	if err != nil {
		storeErr(w, err, "nodes")
		return
	}
	byName := map[string]*DatacenterView{}
	for _, n := range all {
		d := byName[n.Datacenter]
		if d == nil {
			d = &DatacenterView{Name: n.Datacenter}
			byName[n.Datacenter] = d
		}
		d.Nodes++
		if n.Status.State == model.NodeReady {
			d.ReadyNodes++
		}
		d.Instances += n.Instances
		d.Capacity = d.Capacity.Add(n.Capacity)
		d.Allocated = d.Allocated.Add(n.Allocated)
	}
	statuses, _, err := store.List[model.DatacenterStatus](req.Context(), r.c.st, store.KindDatacenter)
	if err != nil {
		storeErr(w, err, "datacenters")
		return
	}
	for _, s := range statuses {
		if d := byName[s.Value.Name]; d != nil {
			d.Status = s.Value
		}
	}
	out := []DatacenterView{}
	for _, name := range sortedKeys(byName) {
		d := byName[name]
		if d.Status.Name == "" {
			d.Status = model.DatacenterStatus{Name: name, Health: model.DatacenterHealthy}
		}
		out = append(out, *d)
	}
	writeJSONBody(w, http.StatusOK, out)
}

// failover serves POST /api/v1/datacenters/NAME/failover and …/failback.
func (r *restAPI) failover(out bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		name := req.PathValue("name")
		who := api.CallerFrom(req.Context()).Name
		if who == "" {
			who = "anonymous"
		}
		do := r.c.Failback
		if out {
			do = r.c.Failover
		}
		st, err := do(req.Context(), name, who, api.Reason(req))
		switch {
		case errors.Is(err, ErrDatacenterLost):
			writeErr(w, http.StatusConflict, err.Error())
			return
		case errors.Is(err, store.ErrNotFound):
			writeErr(w, http.StatusNotFound, err.Error())
			return
		}
		if err != nil {
			storeErr(w, err, "datacenter "+name)
			return
		}
		writeJSONBody(w, http.StatusOK, st)
	})
}

func (r *restAPI) cordon(on bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		name := req.PathValue("name")
		for attempt := 0; ; attempt++ {
			got, err := store.Get[model.Node](req.Context(), r.c.st, store.KindNode, name)
			if err != nil {
				storeErr(w, err, "node "+name)
				return
			}
			got.Value.Unschedulable = on
			if _, err = store.Update(req.Context(), r.c.st, store.KindNode, name, got.Value, got.Version); err == nil {
				break
			} else if !errors.Is(err, store.ErrConflict) || attempt > 3 {
				storeErr(w, err, "node "+name)
				return
			}
		}
		verb := "cordoned: no new instances are placed on it"
		if !on {
			verb = "uncordoned"
		}
		r.c.record(req, Event{Kind: "node", Object: name, Reason: "Cordon", Message: "node " + name + " " + verb})
		writeJSONBody(w, http.StatusOK, map[string]any{"node": name, "unschedulable": on})
	})
}

func (r *restAPI) deleteNode(w http.ResponseWriter, req *http.Request) {
	name := req.PathValue("name")
	if err := store.Delete(req.Context(), r.c.st, store.KindNode, name, 0); err != nil {
		storeErr(w, err, "node "+name)
		return
	}
	_ = store.Delete(req.Context(), r.c.st, KindNodeCredential, name, 0)
	r.c.nodes.forget(name)
	r.c.nodeAuth.forget(name)
	r.c.record(req, Event{Type: EventWarning, Kind: "node", Object: name, Reason: "Deleted", Message: "node " + name + " removed; its instances are rebuilt elsewhere"})
	r.c.Poke()
	writeJSONBody(w, http.StatusOK, map[string]string{"status": "deleted", "kind": "node", "name": name})
}

func (r *restAPI) events(w http.ResponseWriter, req *http.Request) {
	evs, _, err := store.List[Event](req.Context(), r.c.st, KindEvent)
	if err != nil {
		storeErr(w, err, "events")
		return
	}
	q := req.URL.Query()
	var since time.Time
	if s := q.Get("since"); s != "" {
		if d, err := time.ParseDuration(s); err == nil {
			since = r.c.now().Add(-d)
		} else if t, err := time.Parse(time.RFC3339, s); err == nil {
			since = t
		} else {
			writeErr(w, http.StatusBadRequest, "since must be a duration (10m) or an RFC 3339 time")
			return
		}
	}
	limit := 500
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			writeErr(w, http.StatusBadRequest, "limit must be a positive integer")
			return
		}
		limit = n
	}
	out := []Event{}
	for _, e := range evs {
		ev := e.Value
		if (q.Get("kind") != "" && ev.Kind != q.Get("kind")) || (q.Get("object") != "" && ev.Object != q.Get("object")) ||
			(q.Get("reason") != "" && ev.Reason != q.Get("reason")) || ev.Time.Before(since) {
			continue
		}
		out = append(out, ev)
	}
	if len(out) > limit {
		out = out[len(out)-limit:]
	}
	writeJSONBody(w, http.StatusOK, out)
}

func (r *restAPI) endpoints(w http.ResponseWriter, req *http.Request) {
	q := req.URL.Query()
	var wait int64 = -1
	if s := q.Get("wait"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			writeErr(w, http.StatusBadRequest, "wait must be a revision number from an earlier answer")
			return
		}
		wait = n
	}
	timeout, err := parseTimeout(q.Get("timeout"))
	if err != nil {
		writeErr(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), timeout)
	defer cancel()
	for {
		set, changed := r.c.view.endpointSet()
		if set.Revision > wait {
			writeJSONBody(w, http.StatusOK, set)
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			writeJSONBody(w, http.StatusOK, set)
			return
		}
	}
}

func (r *restAPI) gateways(w http.ResponseWriter, _ *http.Request) {
	writeJSONBody(w, http.StatusOK, r.c.Gateways())
}

// Gateways lists the gateways registered in the last gatewayTTL.
func (c *Controller) Gateways() []model.Gateway {
	c.gwMu.Lock()
	defer c.gwMu.Unlock()
	now := c.now()
	out := []model.Gateway{}
	for name, e := range c.gateways {
		if now.Sub(e.seen) > gatewayTTL {
			delete(c.gateways, name)
			continue
		}
		out = append(out, e.gw)
	}
	slices.SortFunc(out, func(a, b model.Gateway) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// RegisterGateway lists gw for gatewayTTL.
func (c *Controller) RegisterGateway(gw model.Gateway) {
	c.gwMu.Lock()
	defer c.gwMu.Unlock()
	c.gateways[gw.Name] = gatewayEntry{gw: gw, seen: c.now()}
}

func (r *restAPI) registerGateway(w http.ResponseWriter, req *http.Request) {
	var gw model.Gateway
	if !decodeBody(w, req, &gw) {
		return
	}
	if gw.Name == "" || !strings.HasPrefix(gw.URL, "http") {
		writeErr(w, http.StatusBadRequest, "a gateway needs a name and an http(s) URL")
		return
	}
	r.c.RegisterGateway(gw)
	writeJSONBody(w, http.StatusOK, map[string]string{"status": "registered"})
}

// ApplyService creates or updates a service as PUT /api/v1/services/NAME
// does, recording who and why.
func (c *Controller) ApplyService(ctx context.Context, s model.Service, who, why string) (ApplyResult, error) {
	if ps := s.Validate(); len(ps) > 0 {
		return ApplyResult{}, fmt.Errorf("service %s: %s: %s", s.Name, ps[0].Field, ps[0].Msg)
	}
	res, err := applyObject(ctx, c.st, store.KindService, s.Name, s, 0)
	if err != nil {
		return res, err
	}
	res.Kind = "service"
	if res.Result != "unchanged" {
		c.events.Record(ctx, Event{Kind: "service", Object: s.Name, Reason: strings.ToUpper(res.Result[:1]) + res.Result[1:], Message: "service " + s.Name + " " + res.Result, Who: who, Why: why})
		c.Poke()
	}
	return res, nil
}

// objectRoutes serves a kind of object stored in etcd (kind is the store
// kind and the path under /api/v1/, noun the word in events and errors):
// list and get with role read, PUT (apply, validated by check: it returns
// the object's name and its problems, answered with 422) and DELETE with
// role write, each change recorded as an event with who and why.
func objectRoutes[T any](c *Controller, kind, noun string, check func(*T) (string, []config.Problem)) []api.Route {
	return []api.Route{
		{Pattern: "GET /api/v1/" + kind, Name: kind, Role: api.RoleRead, Handler: listHandler[T](c, kind)},
		{Pattern: "GET /api/v1/" + kind + "/{name}", Name: noun, Role: api.RoleRead, Handler: getHandler[T](c, kind)},
		{Pattern: "PUT /api/v1/" + kind + "/{name}", Name: noun + "_put", Role: api.RoleWrite, Handler: putHandler(c, kind, noun, check)},
		{Pattern: "DELETE /api/v1/" + kind + "/{name}", Name: noun + "_delete", Role: api.RoleWrite, Handler: deleteHandler(c, kind, noun)},
	}
}

// KindAutoscalingPolicy holds the autoscaler's policies, named by the
// service they scale (as Kubernetes' API server keeps HPA objects).
const KindAutoscalingPolicy = "autoscalingpolicies"

// KindRunbook holds runbooks, named by their name.
const KindRunbook = "runbooks"

// runbookRoutes serves the runbooks: `opspilot apply` puts them, the
// incident loop and the chat-bot read them from the store.
func (c *Controller) runbookRoutes() []api.Route {
	return objectRoutes(c, KindRunbook, "runbook", func(rb *runbooks.Runbook) (string, []config.Problem) {
		return rb.Name, rb.Validate()
	})
}

// policyRoutes serves the autoscaling policies: `opspilot apply` puts
// them, the autoscaler's loop reads them from the store.
func (c *Controller) policyRoutes() []api.Route {
	return objectRoutes(c, KindAutoscalingPolicy, "autoscalingpolicy", func(p *autoscaler.Policy) (string, []config.Problem) {
		return p.Service, p.Validate()
	})
}
