package logs

import (
	"encoding/json"
	"testing"
	"time"
)

func TestParseLine(t *testing.T) {
	read := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	readS := read.Format(time.RFC3339Nano)
	labels := map[string]string{"service": "web", "node": "n1", "instance": ""}
	tests := []struct {
		name string
		line string
		want map[string]any
	}{
		{"json msg level time", `{"level":"WARN","msg":"disk low","time":"2025-02-01T10:00:00.5Z","free":3}`,
			map[string]any{"_msg": "disk low", "level": "warn", "_time": "2025-02-01T10:00:00.5Z", "free": "3"}},
		{"json lvl message ts seconds", `{"lvl":"err","message":"boom","ts":1735689600}`,
			map[string]any{"_msg": "boom", "level": "error", "_time": "2025-01-01T00:00:00Z"}},
		{"json ts float seconds", `{"msg":"x","ts":1735689600.25}`,
			map[string]any{"_msg": "x", "_time": "2025-01-01T00:00:00.25Z"}},
		{"json timestamp ms", `{"severity":"info","msg":"m","timestamp":1735689600123}`,
			map[string]any{"_msg": "m", "level": "info", "_time": "2025-01-01T00:00:00.123Z"}},
		{"json @timestamp string ms", `{"@timestamp":"1735689600123","message":"m"}`,
			map[string]any{"_msg": "m", "_time": "2025-01-01T00:00:00.123Z"}},
		{"json @timestamp offset", `{"@timestamp":"2025-01-01T02:00:00+02:00","message":"m"}`,
			map[string]any{"_msg": "m", "_time": "2025-01-01T00:00:00Z"}},
		{"json space time no zone", `{"time":"2025-01-01 00:00:01.5","msg":"m"}`,
			map[string]any{"_msg": "m", "_time": "2025-01-01T00:00:01.5Z"}},
		{"json ns", `{"ts":1735689600000000001,"msg":"m"}`,
			map[string]any{"_msg": "m", "_time": "2025-01-01T00:00:00.000000001Z"}},
		{"json pino level", `{"level":50,"msg":"m"}`,
			map[string]any{"_msg": "m", "level": "error", "_time": readS}},
		{"json bad time kept", `{"time":"yesterday","msg":"m"}`,
			map[string]any{"_msg": "m", "time": "yesterday", "_time": readS}},
		{"json no msg", `{"a":1}`,
			map[string]any{"_msg": `{"a":1}`, "a": "1", "_time": readS}},
		{"json object msg", `{"msg":{"k":"v"}}`,
			map[string]any{"_msg": `{"k":"v"}`, "_time": readS}},
		{"json label wins", `{"msg":"m","service":"other"}`,
			map[string]any{"_msg": "m", "_time": readS}},
		{"plain error", "ERROR could not connect",
			map[string]any{"_msg": "ERROR could not connect", "level": "error", "_time": readS}},
		{"plain bracket warn", "[warn] slow request",
			map[string]any{"_msg": "[warn] slow request", "level": "warn", "_time": readS}},
		{"plain colon", "Info: started",
			map[string]any{"_msg": "Info: started", "level": "info", "_time": readS}},
		{"plain after timestamp", "2025-01-01 00:00:00 DEBUG x",
			map[string]any{"_msg": "2025-01-01 00:00:00 DEBUG x", "level": "debug", "_time": readS}},
		{"plain no level", "hello ERROR later",
			map[string]any{"_msg": "hello ERROR later", "_time": readS}},
		{"garbage json", `{"msg": "unterminated`,
			map[string]any{"_msg": `{"msg": "unterminated`, "_time": readS}},
		{"two objects", `{"a":1} {"b":2}`,
			map[string]any{"_msg": `{"a":1} {"b":2}`, "_time": readS}},
		{"json array", `[1,2]`,
			map[string]any{"_msg": `[1,2]`, "_time": readS}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := parseLine(tc.line, read, labels)
			data, err := json.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := json.Unmarshal(data, &got); err != nil {
				t.Fatal(err)
			}
			want := map[string]any{"service": "web", "node": "n1"}
			for k, v := range tc.want {
				want[k] = v
			}
			for k, v := range want {
				if g := stringValue(jsonNumberize(got[k])); g != v {
					t.Errorf("%s = %q, want %q (doc %s)", k, g, v, data)
				}
			}
			for k := range got {
				if _, ok := want[k]; !ok {
					t.Errorf("unexpected field %s in %s", k, data)
				}
			}
		})
	}
}

func jsonNumberize(v any) any {
	if f, ok := v.(float64); ok {
		return json.Number(json.Number(formatFloat(f)))
	}
	return v
}

func formatFloat(f float64) string {
	b, _ := json.Marshal(f)
	return string(b)
}

func FuzzParseLine(f *testing.F) {
	for _, s := range []string{
		`{"level":"WARN","msg":"disk low","time":"2025-02-01T10:00:00.5Z"}`,
		`{"ts":1e400,"msg":1}`, `{"time":-1}`, `{"_time":"0"}`, `{"level":{"a":[1]}}`,
		"ERROR x", "[warn]", "1 2 3 info", "", "{}", "\xff\xfe", `{"msg":"\ud800"}`,
	} {
		f.Add(s)
	}
	read := time.Unix(1700000000, 0)
	f.Fuzz(func(t *testing.T, line string) {
		doc := parseLine(line, read, map[string]string{"service": "s"})
		if _, ok := doc[fieldMsg]; !ok {
			t.Fatalf("no _msg for %q", line)
		}
		ts, ok := doc[fieldTime].(string)
		if !ok {
			t.Fatalf("_time missing for %q", line)
		}
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
			t.Fatalf("_time %q unreadable for %q: %v", ts, line, err)
		}
		if _, err := json.Marshal(doc); err != nil {
			t.Fatalf("cannot encode doc for %q: %v", line, err)
		}
	})
}
