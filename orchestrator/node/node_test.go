package node

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"opspilot/internal/jsonapi"
	"opspilot/orchestrator/agentproto"
	"opspilot/orchestrator/model"
)

type noExec struct{}

func (noExec) Sync([]agentproto.Assignment)          {}
func (noExec) Statuses() []agentproto.InstanceStatus { return nil }

// A replica that is down (connection refused) or unavailable (503) is
// skipped: the agent joins through the next one and stays with it.
func TestAgentFailsOverBetweenServers(t *testing.T) {
	down := httptest.NewServer(http.NotFoundHandler())
	downURL := down.URL
	down.Close()
	unavailable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"status":"error","error":"etcd has no leader"}`, http.StatusServiceUnavailable)
	}))
	defer unavailable.Close()
	var joins atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		joins.Add(1)
		_ = json.NewEncoder(w).Encode(agentproto.JoinResponse{NodeToken: "tok", HeartbeatInterval: time.Second})
	}))
	defer up.Close()

	a, err := New(Config{Server: downURL, Servers: []string{unavailable.URL, up.URL},
		Node: model.Node{Name: "n1", Datacenter: "A"}}, noExec{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Join(ctx); err != nil {
		t.Fatalf("Join = %v", err)
	}
	if a.Token() != "tok" || joins.Load() != 1 {
		t.Fatalf("token %q after %d joins at the live replica", a.Token(), joins.Load())
	}
	if got := a.cfg.Servers[a.current.Load()]; got != up.URL {
		t.Errorf("current server %s, want the one that answered, %s", got, up.URL)
	}
	// A refused request (401) is an answer, not a reason to move on.
	if failOver(&jsonapi.Error{Code: http.StatusUnauthorized}) {
		t.Error("a 401 made the agent fail over")
	}
}
