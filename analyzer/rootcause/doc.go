// Package rootcause turns anomalies that fire together into a short,
// ordered list of likely origins — services, nodes or datacenters — each
// with plain-English evidence for chat messages and runbooks.
//
// It is pure: it imports only the standard library, does no I/O and keeps
// no state between calls. The analyzer's online loop (or the API) feeds it
// anomalies and a Topology; alerting and runbooks consume its Hints. It
// must not import the TSDB, orchestrator, alerting or runbooks.
//
// # Correlate
//
// Correlate groups anomalies into incidents by single linkage: two
// anomalies are linked when one starts no later than Config.Window (5 min)
// after the other was last seen, and they may share a cause — same
// service, node or datacenter, or related in the call graph (one reaches
// the other, or both reach a common callee). Services the call graph does
// not know, and series with no service label, are assumed related, so
// without a topology time alone decides; a topology only ever splits
// concurrent but independent bursts.
//
// # Rank
//
// Candidates are every anomalous service plus every node and datacenter
// hosting anomalies. Services get three terms in [0,1]:
//
//   - dependency: a personalised PageRank (uniform teleport, damping 0.85)
//     over the anomalous services, in the style of MicroRCA and
//     CloudRanger. Errors and latency propagate from callee to caller, so
//     the walk goes the other way: from a caller to the anomalous callees
//     that can explain it — those whose anomaly began no later than the
//     caller's, up to Config.OnsetTolerance (30 s) of detection jitter —
//     split by observed traffic when Topology.Weights has it. A service
//     with no such callee keeps its walkers (a self-loop), so the deepest
//     explaining callee collects the mass of everything above it, and a
//     caller whose callees are all normal is its own origin. Only direct
//     calls count: if the service in between is normal, the fault did not
//     propagate through it. The term is the PageRank divided by its max.
//   - onset: exp(-delay/Config.OnsetScale), the delay after the incident's
//     first anomaly; scale 1 min, so 40 s later keeps 51%.
//   - peak: peak score divided by the incident's highest (the analyzer's
//     calibrated scores are small numbers, so only relative size means
//     anything).
//
// A service scores 0.5·dependency + 0.35·onset + 0.15·peak (configurable,
// normalised); when no anomalous service can explain another the
// dependency term carries no information and is dropped, so onset order
// decides. Dependency leads because a topology-consistent story (callee
// first, callers after) is the strongest evidence; onset alone is noisy by
// a scrape or two; peak only breaks near-ties, since symptoms upstream are
// often louder than their cause.
//
// Nodes and datacenters get a grouping strength
//
//	G = cover · specificity · independence · spread · confirmation
//
// where cover is the share of the incident's anomalous services (and
// host-level series) located there; specificity the share of those
// services' anomalous instances that are there rather than elsewhere;
// independence min(1, (k-1)/2) for k groups of services not connected by
// calls (1 when the host's own series, e.g. node CPU, is anomalous), so
// one call chain on one node is left to the dependency term; spread (for
// datacenters) the share of its nodes with anomalies; confirmation 1 when
// Topology.Instances lists other nodes (datacenters) to compare with, 0.5
// otherwise, times 0.7 when there is no call graph to show independence.
// A host scores G·(0.5 + 0.5·onset), and every service it groups loses
// Config.HostDiscount·G (0.6·G) of its score: when a node explains three
// unrelated services, the services are symptoms. Hosts with G = 0 are not
// listed.
//
// Scores are rounded to 4 decimals; ties go to the earlier onset, then
// service before node before datacenter, then name, so output does not
// depend on input order.
//
// # Limits
//
//   - Onset order is only as precise as detection: a slow detector on the
//     real origin can make a symptom look first. OnsetTolerance absorbs
//     jitter, not minutes of delay.
//   - The call graph is taken as given; a missing edge reads as "not
//     related" and a stale one as a possible explanation. Load that flows
//     downstream (a caller's traffic surge overloading a callee) is not
//     modelled as such; it usually still ranks the caller first by onset.
//   - Node and datacenter hints need placement: labels on the series or
//     Topology.Instances. Without an inventory "other nodes are normal"
//     cannot be checked and host scores are halved.
//   - Single linkage can chain a long, slowly spreading incident into one
//     group; scores compare only within one Rank call.
//   - A series with no service, node or datacenter label is ranked as a
//     pseudo-service named after its instance or metric.
//
// Cost: Correlate sorts once and compares each anomaly with those still
// within the window; Rank is O(n log n) in anomalies plus a PageRank over
// the anomalous services (BenchmarkCorrelateRank: 1,000 anomalies over 200
// services).
package rootcause
