// Package loganomaly turns the log lines in VictoriaLogs into per-service
// log metrics for the anomaly models: how many lines, how many error lines
// and how many never-seen line shapes (templates) each service logged per
// interval. A burst of new templates is the log-side signal of a new
// failure mode that counts alone miss.
//
// It owns the Drain template miner (Drain) and the Scanner, which reads
// new lines over VictoriaLogs' HTTP query API (/select/logsql/query,
// JSON lines streamed and decoded row by row), mines them per service, and
// returns opspilot_log_lines, opspilot_log_error_lines and
// opspilot_log_new_templates as []tsdb.TimeSeries, or writes them through
// a Writer (*tsdb.Client is one). It keeps the most recent new templates
// per service, with an example line, for the API (NewTemplates).
//
// It may import opspilot/tsdb (for the series types), net/http and
// client_golang (self-metrics on the caller's registerer). It must not
// import the orchestrator, the collector or other controllers; its tests
// import opspilot/collector/logs and opspilot/test/testbin only to run the
// real VictoriaLogs binary.
//
// # Drain
//
// Drain follows He et al. (ICWS 2017) with Drain3's rules: a line is
// masked (numbers, hex ids, IPv4/IPv6 addresses, UUIDs, durations,
// timestamps and quoted strings become <NUM>, <HEX>, <IP>, <UUID>, <DUR>,
// <TS>, <STR>), split on whitespace, routed by token count and the first
// Depth-3 tokens (tokens with digits, and tokens beyond MaxChildren, take
// a wildcard branch), and joins the most similar template of its leaf if
// at least SimThreshold of the template's constant tokens match; differing
// positions become <*>. Defaults are Drain3's (depth 4, threshold 0.4, 100
// children), plus a bound of 10,000 templates per miner that forgets the
// least recently matched one (and prunes the tree with it). State
// serialises to JSON, including each template's tree path and last use, so
// a restored miner routes, matches and evicts exactly as the original.
//
// It is written here rather than imported: the Go ports of Drain3 looked
// for (github.com/faceair/drain, github.com/jaeyo/go-drain3,
// github.com/mrlyc/drain) are not served by the module proxy this project
// builds from, so none can be a dependency; and a checkpoint that restores
// routing and eviction exactly needs the tree paths and LRU order in the
// serialised state, which is easiest where the tree is ours. Miner and
// masking are about 1,000 lines.
//
// # Scanner
//
// A pass reads [cursor, end), end being now minus Delay rounded down to
// the Interval grid, and buckets lines by their _time into Interval-wide
// buckets; each sample is stamped with its bucket's end. Lines are grouped
// by the service field (falling back to a configurable field, _stream by
// default), plus datacenter and node when present. A line is an error when
// its level is one of ErrorLevels or its message matches ErrorPattern (the
// default pattern runs as a hand-written word matcher, fuzzed against the
// regexp). A template counts as new once, in the bucket (and on the node)
// of its earliest line in the pass, although rows stream in storage order;
// each service has its own miner, so a shape new to a service counts even
// if another service logs it. Groups seen within ServiceTTL get zero
// samples in quiet buckets, so silence shows as zero, not as a gap.
//
// The cursor advances only when a pass succeeds (and, in Run, once the
// Writer accepted its series), then the cursor, the miners, the recent
// templates and the known groups are checkpointed atomically (temporary
// file, fsync, rename). A log-store outage therefore loses nothing: the
// next successful pass covers the whole gap, up to MaxLookback (default
// 1 h; older lines are skipped and counted in
// opspilot_log_scan_skipped_seconds_total). The lag (now minus cursor) is
// opspilot_log_scan_lag_seconds. Templates created during a failed pass
// stay pending and are counted as new by the pass that succeeds.
//
// # Limits
//
//   - Lines are selected by _time, not by arrival: a line that becomes
//     searchable more than Delay after its _time, when its bucket was
//     already scanned, is not counted (a shipper that buffered through an
//     outage, or JSON lines carrying old timestamps). Raise Delay where
//     shipping lags.
//   - A pass streams its lines and holds one count per group and bucket.
//     One pass reads at most MaxPassWindow (default 10 min) within
//     QueryTimeout (default 1 min); Run catches up with passes back to
//     back. A store that cannot return MaxPassWindow of lines within
//     QueryTimeout (about 200k lines/s were measured here) never catches
//     up: lower MaxPassWindow or raise QueryTimeout.
//   - In Run, a crash after a write and before the checkpoint counts that
//     pass again after the restart, writing the same values at the same
//     timestamps; with Scan, the caller writes after the commit. A failed
//     checkpoint write is logged and counted in
//     opspilot_log_scan_checkpoint_errors_total.
//   - MaxClusters bounds each service's miner, not the number of services;
//     the checkpoint (all miners, JSON) is rewritten whole after each pass.
//   - Filter is a LogsQL filter; the scanner appends its own fields pipe.
//   - Masking is heuristic: a variable it does not recognise (a word with
//     digits such as "x2x4q") becomes <*> once two lines differ there, as
//     in Drain.
package loganomaly
