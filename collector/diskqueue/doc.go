// Package diskqueue is the agent's durable FIFO of encoded remote-write
// requests: a record appended is on disk (in the kernel's page cache, or
// fsynced with SyncAlways) before Append returns, and it leaves the queue
// only when the consumer acknowledges it, so an agent killed at any moment
// and restarted resends everything not acknowledged (at-least-once; the
// TSDB deduplicates identical samples).
//
// Why not an existing queue: VictoriaMetrics' lib/persistentqueue removes a
// block when it is read and buffers writes in user space for up to a second,
// and Prometheus' WAL watcher skips samples written before a restart; both
// lose data on kill -9, which the collector must not.
//
// Layout: DIR/NNNNNNNNNNNNNNNNNNNN.seg segment files named by the offset of
// their first byte in the logical stream, each a sequence of records
// [4-byte little-endian length][4-byte CRC-32C of payload][payload], and
// DIR/ack holding the logical offset of the first unacknowledged record.
// A torn record at the end of the last segment (a crash mid-write) is cut
// off on open. When the queue exceeds MaxBytes, whole oldest segments are
// dropped, counted and reported.
//
// It imports only the standard library and client_golang.
package diskqueue
