// Package agentproto holds the messages between node agents and the
// control plane. Every call is JSON over HTTPS:
//
//	POST /agent/v1/join                      JoinRequest → JoinResponse (join token)
//	POST /agent/v1/nodes/NODE/heartbeat      Heartbeat → HeartbeatResponse (node token)
//	GET  /agent/v1/nodes/NODE/assignments?have=HASH&timeout=30s → Assignments (node token)
//
// The join call carries the cluster's join token (see orchestrator/pki) and
// returns a node token, a bearer credential for that node only, which the
// agent keeps in its data directory. Heartbeats go every second and at once
// when an instance changes state. Assignments are long-polled: the server
// answers when the node's assignments differ from the hash the agent has,
// or after the timeout.
//
// This package holds types only and imports nothing but the model.
package agentproto

import (
	"time"

	"opspilot/orchestrator/model"
)

// JoinRequest registers a node.
type JoinRequest struct {
	Token string     `json:"token"`
	Node  model.Node `json:"node"`
	// Runtimes this agent can run instances with.
	Runtimes     []string `json:"runtimes"`
	AgentVersion string   `json:"agent_version"`
}

// JoinResponse gives the node its credential.
type JoinResponse struct {
	NodeToken string `json:"node_token"`
	// HeartbeatInterval is how often to send heartbeats.
	HeartbeatInterval time.Duration `json:"heartbeat_interval"`
}

// InstanceStatus is what the agent knows of one instance.
type InstanceStatus struct {
	ID       string         `json:"id"`
	State    string         `json:"state"`
	Restarts int            `json:"restarts"`
	LastExit string         `json:"last_exit,omitempty"`
	Message  string         `json:"message,omitempty"`
	Address  string         `json:"address,omitempty"`
	Port     int            `json:"port,omitempty"`
	Ports    map[string]int `json:"ports,omitempty"`
	// PID is the instance's main process on the node (0 if unknown).
	PID int `json:"pid,omitempty"`
}

// Heartbeat says the node is alive, with its instances' states.
type Heartbeat struct {
	Instances []InstanceStatus `json:"instances"`
}

// HeartbeatResponse tells the agent to join again (its node record is
// gone) when Rejoin is set.
type HeartbeatResponse struct {
	Rejoin bool `json:"rejoin,omitempty"`
}

// Assignment is one instance the node should run (or stop, when
// Instance.Desired is "stop": leave it running until Instance.StopAt, then
// stop it gracefully).
type Assignment struct {
	Instance model.Instance `json:"instance"`
	// Spec is the service as of the instance's version.
	Spec model.Service `json:"spec"`
	// Files are config files by path inside the instance directory.
	Files map[string]string `json:"files,omitempty"`
}

// Assignments is every instance the node should know about. Instances it
// runs that are not listed must be stopped: that is how a node that was
// lost and came back is fenced.
type Assignments struct {
	Hash        string       `json:"hash"`
	Assignments []Assignment `json:"assignments"`
}
