package control

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"opspilot/api"
	"opspilot/orchestrator/agentproto"
	"opspilot/orchestrator/model"
	"opspilot/orchestrator/store"
)

// KindNodeCredential holds the SHA-256 of each joined node's token.
const KindNodeCredential = "nodecreds"

type nodeCredential struct {
	Node   string    `json:"node"`
	Hash   string    `json:"hash"`
	Joined time.Time `json:"joined"`
}

// JoinVerifier checks the cluster join token (orchestrator/pki's
// Authority).
type JoinVerifier interface {
	CheckJoinToken(token string) bool
}

// HeartbeatInterval is what agents are told to use.
const HeartbeatInterval = time.Second

// AgentRoutes returns the agent protocol's endpoints (see agentproto).
// They authenticate with the join token and node tokens, not API tokens.
func (c *Controller) AgentRoutes(join JoinVerifier) []api.Route {
	a := &agentAPI{c: c, join: join, creds: map[string]string{}}
	return []api.Route{
		{Pattern: "POST /agent/v1/join", Name: "agent_join", Handler: http.HandlerFunc(a.joinHandler)},
		{Pattern: "POST /agent/v1/nodes/{node}/heartbeat", Name: "agent_heartbeat", Handler: a.node(a.heartbeat)},
		{Pattern: "GET /agent/v1/nodes/{node}/assignments", Name: "agent_assignments", Handler: a.node(a.assignments)},
	}
}

type agentAPI struct {
	c    *Controller
	join JoinVerifier

	mu    sync.Mutex
	creds map[string]string // node → token hash
	// reported is, per node, the last status written per instance of its
	// last heartbeat (guarded by mu), so unchanged heartbeats cost no etcd
	// write; each heartbeat replaces its node's map, so it never outgrows
	// what the node runs.
	reported map[string]map[string]agentproto.InstanceStatus
}

func hashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

func (a *agentAPI) joinHandler(w http.ResponseWriter, r *http.Request) {
	var req agentproto.JoinRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if a.join == nil || !a.join.CheckJoinToken(req.Token) {
		writeErr(w, http.StatusUnauthorized, "join token refused: use the token printed by `opspilot server` (also in DATA_DIR/pki/join-token)")
		return
	}
	n := req.Node
	if n.Address == "" {
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			n.Address = host
		}
	}
	n.Allocated = model.Resources{}
	n.Status = model.NodeStatus{State: model.NodeReady, Since: a.c.now(), AgentVersion: req.AgentVersion, Runtimes: req.Runtimes}
	if ps := n.Validate(); len(ps) > 0 {
		writeErr(w, http.StatusBadRequest, fmt.Sprintf("node %s: %s", ps[0].Field, ps[0].Msg))
		return
	}
	ctx := r.Context()
	a.c.beat(n.Name, a.c.now())
	existing, err := store.Get[model.Node](ctx, a.c.st, store.KindNode, n.Name)
	switch {
	case err == nil:
		n.Unschedulable = existing.Value.Unschedulable
		_, err = store.Update(ctx, a.c.st, store.KindNode, n.Name, n, existing.Version)
	case errors.Is(err, store.ErrNotFound):
		_, err = store.Create(ctx, a.c.st, store.KindNode, n.Name, n)
	}
	if err != nil {
		writeErr(w, http.StatusServiceUnavailable, "store node: "+err.Error())
		return
	}
	tok := randomToken()
	hash := hashToken(tok)
	if err := putCredential(ctx, a.c.st, n.Name, nodeCredential{Node: n.Name, Hash: hash, Joined: a.c.now()}); err != nil {
		writeErr(w, http.StatusServiceUnavailable, "store node credential: "+err.Error())
		return
	}
	a.mu.Lock()
	a.creds[n.Name] = hash
	a.mu.Unlock()
	a.c.nodeAuth.forget(n.Name)
	a.c.events.Record(ctx, Event{Kind: "node", Object: n.Name, Reason: "Joined",
		Message: fmt.Sprintf("node %s joined datacenter %s (capacity %s, runtimes %s, agent %s)", n.Name, n.Datacenter, n.Capacity, strings.Join(req.Runtimes, ","), req.AgentVersion),
		Who:     n.Name})
	a.c.Poke()
	writeJSONBody(w, http.StatusOK, agentproto.JoinResponse{NodeToken: tok, HeartbeatInterval: HeartbeatInterval})
}

func putCredential(ctx context.Context, st *store.Store, node string, cred nodeCredential) error {
	got, err := store.Get[nodeCredential](ctx, st, KindNodeCredential, node)
	if errors.Is(err, store.ErrNotFound) {
		_, err = store.Create(ctx, st, KindNodeCredential, node, cred)
		return err
	}
	if err != nil {
		return err
	}
	_, err = store.Update(ctx, st, KindNodeCredential, node, cred, got.Version)
	return err
}

// node authenticates a node-token request for the {node} in the path.
func (a *agentAPI) node(h func(w http.ResponseWriter, r *http.Request, node string)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		node := r.PathValue("node")
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || tok == "" {
			writeErr(w, http.StatusUnauthorized, "missing node token: agents send `Authorization: Bearer NODE_TOKEN` from their join")
			return
		}
		a.mu.Lock()
		hash, cached := a.creds[node]
		a.mu.Unlock()
		if !cached {
			got, err := store.Get[nodeCredential](r.Context(), a.c.st, KindNodeCredential, node)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				writeErr(w, http.StatusServiceUnavailable, err.Error())
				return
			}
			hash = got.Value.Hash
			if hash != "" {
				a.mu.Lock()
				a.creds[node] = hash
				a.mu.Unlock()
			}
		}
		if hash == "" || subtle.ConstantTimeCompare([]byte(hashToken(tok)), []byte(hash)) != 1 {
			writeErr(w, http.StatusUnauthorized, fmt.Sprintf("node token refused for node %q: join again with the cluster's join token", node))
			return
		}
		h(w, r, node)
	})
}

func (a *agentAPI) heartbeat(w http.ResponseWriter, r *http.Request, node string) {
	var hb agentproto.Heartbeat
	if !decodeBody(w, r, &hb) {
		return
	}
	now := a.c.now()
	if a.c.beat(node, now) {
		a.c.Poke() // the node is back
	}
	if _, ok := a.c.view.nodeByName(node); !ok && a.c.view.isSynced() {
		if _, err := store.Get[model.Node](r.Context(), a.c.st, store.KindNode, node); errors.Is(err, store.ErrNotFound) {
			writeJSONBody(w, http.StatusOK, agentproto.HeartbeatResponse{Rejoin: true})
			return
		}
	}
	a.mu.Lock()
	prev := a.reported[node]
	a.mu.Unlock()
	next := make(map[string]agentproto.InstanceStatus, len(hb.Instances))
	defer func() {
		a.mu.Lock()
		if a.reported == nil {
			a.reported = map[string]map[string]agentproto.InstanceStatus{}
		}
		a.reported[node] = next
		a.mu.Unlock()
	}()
	for _, s := range hb.Instances {
		if p, ok := prev[s.ID]; ok && sameStatus(p, s) {
			next[s.ID] = s
			continue
		}
		err := mutateInstance(r.Context(), a.c.st, s.ID, func(in *model.Instance) bool {
			if in.Node != node {
				return false // not this node's instance (any more)
			}
			if in.State == s.State && in.Restarts == s.Restarts && in.LastExit == s.LastExit && in.Message == s.Message &&
				in.Address == s.Address && in.Port == s.Port && in.PID == s.PID && maps.Equal(in.Ports, s.Ports) {
				return false
			}
			if s.State == model.StateReady && in.State != model.StateReady {
				in.ReadySince = now
			}
			in.State, in.Restarts, in.LastExit, in.Message = s.State, s.Restarts, s.LastExit, s.Message
			in.Address, in.Port, in.Ports, in.PID = s.Address, s.Port, s.Ports, s.PID
			return true
		})
		switch {
		case err == nil:
			next[s.ID] = s
		case errors.Is(err, store.ErrNotFound):
		default:
			writeErr(w, http.StatusServiceUnavailable, "store instance state: "+err.Error())
			return
		}
	}
	writeJSONBody(w, http.StatusOK, agentproto.HeartbeatResponse{})
}

func sameStatus(a, b agentproto.InstanceStatus) bool {
	return a.ID == b.ID && a.State == b.State && a.Restarts == b.Restarts && a.LastExit == b.LastExit &&
		a.Message == b.Message && a.Address == b.Address && a.Port == b.Port && a.PID == b.PID && maps.Equal(a.Ports, b.Ports)
}

// assignments long-polls the node's instances.
func (a *agentAPI) assignments(w http.ResponseWriter, r *http.Request, node string) {
	have := r.URL.Query().Get("have")
	timeout, err := parseTimeout(r.URL.Query().Get("timeout"))
	if err != nil {
		writeErr(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	for {
		insts, changed := a.c.view.nodeInstances(node)
		out, err := a.c.assignmentsFor(r.Context(), insts)
		if err != nil {
			writeErr(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		if out.Hash != have {
			writeJSONBody(w, http.StatusOK, out)
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			writeJSONBody(w, http.StatusOK, out)
			return
		}
	}
}

// assignmentsFor attaches each instance's spec.
func (c *Controller) assignmentsFor(ctx context.Context, insts []model.Instance) (agentproto.Assignments, error) {
	out := agentproto.Assignments{Assignments: []agentproto.Assignment{}}
	c.revMu.Lock()
	defer c.revMu.Unlock()
	for _, i := range insts {
		rev, err := c.revs.get(ctx, i.Service, i.Version)
		if err != nil {
			return out, fmt.Errorf("instance %s: revision %s of %s: %w", i.ID, i.Version, i.Service, err)
		}
		// State fields change with every report; the agent needs only
		// what to run and whether to stop.
		i.State, i.Restarts, i.LastExit, i.Message, i.ReadySince = "", 0, "", "", time.Time{}
		i.Address, i.Port, i.Ports, i.PID = "", 0, nil, 0
		out.Assignments = append(out.Assignments, agentproto.Assignment{Instance: i, Spec: rev.Spec, Files: rev.Files})
	}
	data, _ := json.Marshal(out.Assignments)
	sum := sha256.Sum256(data)
	out.Hash = hex.EncodeToString(sum[:8])
	return out, nil
}

func parseTimeout(s string) (time.Duration, error) {
	if s == "" {
		return 30 * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d > 5*time.Minute {
		return 0, fmt.Errorf("timeout %q: want a duration up to 5m, e.g. 30s", s)
	}
	return d, nil
}

func randomToken() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// maxBody caps request bodies of the control API.
const maxBody = 4 << 20

func decodeBody(w http.ResponseWriter, r *http.Request, dst any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		writeErr(w, http.StatusBadRequest, "malformed JSON body: "+err.Error())
		return false
	}
	return true
}

func writeJSONBody(w http.ResponseWriter, code int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}

func writeErr(w http.ResponseWriter, code int, msg string) {
	writeJSONBody(w, code, map[string]string{"status": "error", "error": msg})
}

// nodeAuthCache maps node-token hashes to node names.
type nodeAuthCache struct {
	mu      sync.Mutex
	byHash  map[string]string
	refresh time.Time
}

// forget drops a node's cached credential (the node was deleted or joined
// again).
func (n *nodeAuthCache) forget(node string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for h, name := range n.byHash {
		if name == node {
			delete(n.byHash, h)
		}
	}
}

// NodeAuthenticator returns a function that accepts node tokens as
// callers with role node, which may write samples and nothing else (so
// agents ship with the credential they joined with). Tokens are looked up
// by hash in etcd and cached.
func (c *Controller) NodeAuthenticator() func(token string) (api.Caller, bool) {
	n := &c.nodeAuth
	return func(token string) (api.Caller, bool) {
		h := hashToken(token)
		n.mu.Lock()
		node, ok := n.byHash[h]
		if ok || time.Since(n.refresh) < time.Second {
			// Unknown tokens re-read etcd at most once a second.
			n.mu.Unlock()
			return api.Caller{Name: "node:" + node, Role: api.RoleNode}, ok
		}
		n.refresh = time.Now()
		n.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		creds, _, err := store.List[nodeCredential](ctx, c.st, KindNodeCredential)
		if err != nil {
			return api.Caller{}, false
		}
		n.mu.Lock()
		defer n.mu.Unlock()
		n.byHash = make(map[string]string, len(creds))
		for _, cr := range creds {
			n.byHash[cr.Value.Hash] = cr.Value.Node
		}
		node, ok = n.byHash[h]
		return api.Caller{Name: "node:" + node, Role: api.RoleNode}, ok
	}
}
