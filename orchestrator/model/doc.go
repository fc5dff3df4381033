// Package model holds the orchestrator's plain data types: datacenters,
// nodes, tenants, services and instances, with the resource quantities they
// use. The types carry yaml tags (snake_case keys, decoded by
// opspilot/config) and json tags (the form stored in etcd), and each has a
// Validate method that returns config.Problem values with field paths
// relative to the value, such as "placement.datacenters.B".
//
// Conventions: a zero value means "unset" wherever the field's comment says
// so (a zero tenant quota is no limit, a zero weight is 1, a zero probe
// period is the default). Validate never changes the value it checks.
//
// Dependencies: this package may import only opspilot/config and the
// standard library. It must not import etcd, the scheduler or any
// controller; they import it.
package model
