package store

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"go.uber.org/zap/zapcore"
)

// slogCore routes etcd's zap logs into log/slog so opspilot has one log.
type slogCore struct {
	log *slog.Logger
	min zapcore.Level
}

func newSlogCore(log *slog.Logger, min zapcore.Level) zapcore.Core {
	return &slogCore{log: log, min: min}
}

func (c *slogCore) Enabled(l zapcore.Level) bool { return l >= c.min }

func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	return &slogCore{log: c.log.With(fieldsToAttrs(fields)...), min: c.min}
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	level := slog.LevelInfo
	switch {
	case e.Level >= zapcore.ErrorLevel:
		level = slog.LevelError
	case e.Level == zapcore.WarnLevel:
		level = slog.LevelWarn
	case e.Level <= zapcore.DebugLevel:
		level = slog.LevelDebug
	}
	attrs := fieldsToAttrs(fields)
	if harmless(e.Message, attrs) {
		level = slog.LevelDebug
	}
	c.log.Log(context.Background(), level, e.Message, attrs...)
	return nil
}

var (
	harmlessMessages = []string{"simple token is not cryptographically signed", "Running http and grpc server on single port"}
	harmlessErrors   = []string{"use of closed network connection", "mux: server closed", "http: Server closed",
		// etcd's storage-version monitor can run on a fresh single member
		// before the first term and conf state are persisted; it retries
		// and succeeds (etcd-io/etcd#18978, #20495). Our short election
		// makes that window likely.
		"missing term information", "missing confstate information"}
)

// harmless recognises etcd warnings that say nothing wrong in our setup:
// its listeners reporting their own shutdown on Close, and the note about
// simple tokens (auth is off; the store is on loopback or a trusted
// cluster).
func harmless(msg string, attrs []any) bool {
	for _, m := range harmlessMessages {
		if strings.Contains(msg, m) {
			return true
		}
	}
	for _, a := range attrs {
		v := fmt.Sprint(a.(slog.Attr).Value.Any())
		for _, e := range harmlessErrors {
			if strings.Contains(v, e) {
				return true
			}
		}
	}
	return false
}

func (c *slogCore) Sync() error { return nil }

func fieldsToAttrs(fields []zapcore.Field) []any {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fields {
		f.AddTo(enc)
	}
	attrs := make([]any, 0, len(enc.Fields))
	for k, v := range enc.Fields {
		attrs = append(attrs, slog.Any(k, v))
	}
	return attrs
}
