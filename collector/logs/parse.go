package logs

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"
)

// Field names of the shipped document. _msg and _time are VictoriaLogs'
// defaults for the message and the timestamp.
const (
	fieldMsg   = "_msg"
	fieldTime  = "_time"
	fieldLevel = "level"
)

// Keys of JSON lines mapped onto the document's fields, in priority order.
var (
	levelKeys = []string{"level", "lvl", "severity"}
	msgKeys   = []string{"_msg", "msg", "message"}
	timeKeys  = []string{"_time", "@timestamp", "timestamp", "time", "ts"}
)

// parseLine turns one log line into the document shipped to the log store.
// labels are added last and win over same-named keys of JSON lines, so that
// stream fields always say where a line came from. readTime is _time when
// the line carries no usable timestamp. It never fails: anything that is
// not a JSON object is a plain line.
func parseLine(line string, readTime time.Time, labels map[string]string) map[string]any {
	doc := parseJSONLine(line, readTime)
	if doc == nil {
		doc = map[string]any{fieldMsg: line, fieldTime: formatTime(readTime)}
		if lvl := guessLevel(line); lvl != "" {
			doc[fieldLevel] = lvl
		}
	}
	for k, v := range labels {
		if v != "" {
			doc[k] = v
		}
	}
	return doc
}

func parseJSONLine(line string, readTime time.Time) map[string]any {
	s := strings.TrimSpace(line)
	if len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil || doc == nil || dec.More() {
		return nil
	}

	msgSet := false
	for _, k := range msgKeys {
		v, ok := doc[k]
		if !ok {
			continue
		}
		delete(doc, k)
		doc[fieldMsg] = stringValue(v)
		msgSet = true
		break
	}
	if !msgSet {
		// Without a message key the whole line is the message, as
		// VictoriaLogs would otherwise store a placeholder.
		doc[fieldMsg] = s
	}

	for _, k := range levelKeys {
		v, ok := doc[k]
		if !ok {
			continue
		}
		delete(doc, k)
		if lvl := normalizeLevelValue(v); lvl != "" {
			doc[fieldLevel] = lvl
		}
		break
	}

	ts := readTime
	for _, k := range timeKeys {
		v, ok := doc[k]
		if !ok {
			continue
		}
		// A timestamp we cannot read stays under its own key.
		if t, ok := parseTimestamp(v); ok {
			delete(doc, k)
			ts = t
		}
		break
	}
	if k := fieldTime; doc[k] != nil {
		// An unreadable _time would make VictoriaLogs reject the whole bulk.
		doc["_time_original"] = doc[k]
	}
	doc[fieldTime] = formatTime(ts)
	return doc
}

func stringValue(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case nil:
		return ""
	default:
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(x); err != nil {
			return ""
		}
		return strings.TrimSuffix(buf.String(), "\n")
	}
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// normalizeLevelValue maps a JSON level (a name, or pino's numbers 10…60)
// onto trace/debug/info/warn/error/fatal; unknown names are kept lowercased.
func normalizeLevelValue(v any) string {
	switch x := v.(type) {
	case json.Number:
		if n, err := x.Int64(); err == nil {
			switch n {
			case 10:
				return "trace"
			case 20:
				return "debug"
			case 30:
				return "info"
			case 40:
				return "warn"
			case 50:
				return "error"
			case 60:
				return "fatal"
			}
		}
		return x.String()
	case string:
		if lvl, ok := knownLevel(x); ok {
			return lvl
		}
		s := strings.ToLower(strings.TrimSpace(x))
		if len(s) > 32 {
			s = s[:32]
		}
		return s
	default:
		return ""
	}
}

// knownLevel recognises the usual level names, case-insensitively.
func knownLevel(s string) (string, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "trace", "trc":
		return "trace", true
	case "debug", "dbg":
		return "debug", true
	case "info", "inf", "information", "informational", "notice":
		return "info", true
	case "warn", "warning", "wrn":
		return "warn", true
	case "error", "err", "eror":
		return "error", true
	case "fatal", "ftl", "critical", "crit", "panic", "emerg", "alert":
		return "fatal", true
	}
	return "", false
}

// guessLevel looks at a plain line's leading tokens for a level name, bare
// or in brackets ("ERROR x", "[warn] x", "info: x"), skipping up to two
// leading timestamp-like tokens ("2024-05-01 12:00:00 WARN x").
func guessLevel(line string) string {
	rest := line
	for range 3 {
		rest = strings.TrimLeft(rest, " \t")
		if rest == "" {
			return ""
		}
		end := strings.IndexAny(rest, " \t")
		if end < 0 {
			end = len(rest)
		}
		tok := rest[:end]
		rest = rest[end:]
		word := strings.TrimRight(tok, ":,|")
		word = strings.Trim(word, "[]()<>")
		if lvl, ok := knownLevel(word); ok && word != "" {
			return lvl
		}
		if tok[0] < '0' || tok[0] > '9' {
			return ""
		}
	}
	return ""
}

// parseTimestamp reads RFC3339 (with or without zone, T or space) strings
// and Unix times in seconds, milliseconds, microseconds or nanoseconds,
// as numbers or numeric strings.
func parseTimestamp(v any) (time.Time, bool) {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = strings.TrimSpace(x)
	default:
		return time.Time{}, false
	}
	if s == "" {
		return time.Time{}, false
	}
	if t, ok := parseUnix(s); ok {
		return t, true
	}
	for _, layout := range []string{
		time.RFC3339Nano,
		"2006-01-02 15:04:05.999999999Z07:00",
		"2006-01-02T15:04:05.999999999",
		"2006-01-02 15:04:05.999999999",
	} {
		if t, err := time.Parse(layout, s); err == nil {
			if t.Year() < 1 || t.Year() > 9999 {
				return time.Time{}, false
			}
			return t, true
		}
	}
	return time.Time{}, false
}

func parseUnix(s string) (time.Time, bool) {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		if i <= 0 {
			return time.Time{}, false
		}
		switch {
		case i >= 1e17:
			return time.Unix(0, i), true
		case i >= 1e14:
			return time.UnixMicro(i), true
		case i >= 1e11:
			return time.UnixMilli(i), true
		default:
			return time.Unix(i, 0), true
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f <= 0 || f >= 9e18 {
		return time.Time{}, false
	}
	switch {
	case f >= 1e17:
		return time.Unix(0, int64(f)), true
	case f >= 1e14:
		f /= 1e6
	case f >= 1e11:
		f /= 1e3
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}
