// Package logs is the node agent's log path: it tails log files (configured
// paths and instances' stdout/stderr files) with rotation awareness, turns
// each line into a structured document (JSON lines keep their fields; plain
// lines get a guessed level), and ships the documents in bulk to an
// Elasticsearch-compatible endpoint — VictoriaLogs' /insert/elasticsearch by
// default. Read positions (path → file identity + offset) are persisted in
// a state directory only after the log store acknowledged the lines, so a
// restart resumes after the last shipped line: at-least-once, with
// duplicates only for lines in flight when the agent was killed. When the
// store is down nothing is dropped: the shipper retries with backoff and a
// bounded buffer holds back reading.
//
// It also runs VictoriaLogs as a child process for `opspilot up`'s embedded
// default (StartVictoriaLogs, FindVictoriaLogs).
//
// It may import github.com/nxadm/tail, go-elasticsearch (esutil),
// cenkalti/backoff and client_golang. It must not import other opspilot
// packages; its tests may import opspilot/test/testbin.
package logs
