// Package scheduler decides on which nodes new service instances run. It
// is a pure function of its inputs (Schedule): no I/O, no goroutines, no
// clock, so the same cluster and requests always give the same placements.
//
// Placement is a pipeline in the manner of Nomad's scheduler:
//
//  1. Each request's Count is split across datacenters by the service's
//     weights (largest-remainder method, ties by datacenter name; see
//     splitByWeight). Without weights every datacenter that has nodes gets
//     an even share.
//  2. Static feasibility checkers (partition, node labels) reduce each
//     datacenter's nodes to candidates once per request; the datacenter
//     checker decides which datacenters are considered at all.
//  3. For every instance, dynamic checkers (anti-affinity, CPU fit, memory
//     fit) run on each candidate of the chosen datacenter and a ranker
//     (spread or binpack) picks the best node, ties broken by node name.
//     Capacity placed earlier in the same call counts.
//  4. Tenants take turns by weighted dominant-resource fairness: the next
//     instance goes to the tenant with the lowest dominant share of the
//     cluster's capacity divided by its weight, and no tenant exceeds its
//     quota.
//
// Every datacenter a request considered gets an Explanation that says how
// many nodes each checker removed, so a refusal reads like "datacenter B:
// 12 nodes, 9 lack 2 CPU, 3 not in partition db; placed 1 of 4".
//
// Dependencies: this package imports only opspilot/orchestrator/model and
// the standard library. It must not import etcd, agents or controllers;
// reconcilers call Schedule and apply its Result.
package scheduler
