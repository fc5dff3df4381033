package model

import "time"

// Datacenter health, from its nodes' heartbeats.
const (
	// DatacenterHealthy: every node sends heartbeats.
	DatacenterHealthy = "healthy"
	// DatacenterDegraded: some nodes are lost, fewer than the lost
	// fraction.
	DatacenterDegraded = "degraded"
	// DatacenterLost: at least the lost fraction of its nodes are lost.
	DatacenterLost = "lost"
)

// DatacenterStatus is what the control plane decided about a datacenter.
// It is stored (kind "datacenters"), so a restarted or newly elected
// control plane keeps a failover in force.
type DatacenterStatus struct {
	Name string `json:"name"`
	// Health is healthy, degraded or lost; HealthSince is when it last
	// changed and HealthReason says why ("3 of 4 nodes sent no heartbeat
	// for 3s").
	Health       string    `json:"health"`
	HealthSince  time.Time `json:"healthSince,omitzero"`
	HealthReason string    `json:"healthReason,omitempty"`
	// FailedOver keeps new instances out of the datacenter and replaces
	// its instances in the others (each service's failover policy says
	// where). It is set when the datacenter is lost, or on purpose by
	// `opspilot failover` (Manual).
	FailedOver bool `json:"failedOver,omitempty"`
	// Manual is set by `opspilot failover`: only `opspilot failback`
	// clears it. An automatic failover clears itself once the datacenter
	// has been healthy for the failback delay (unless failback is manual).
	Manual bool `json:"manual,omitempty"`
	// FailoverAt, FailoverBy and FailoverWhy record the last failover.
	FailoverAt  time.Time `json:"failoverAt,omitzero"`
	FailoverBy  string    `json:"failoverBy,omitempty"`
	FailoverWhy string    `json:"failoverWhy,omitempty"`
	// FailbackAt is when the datacenter was last put back in service;
	// services then move their share back one instance at a time.
	FailbackAt time.Time `json:"failbackAt,omitzero"`
}
