package config

import (
	"strconv"
	"strings"
	"unicode"
)

// joinKey appends a mapping key to a field path: "tsdb" + "mode" is
// "tsdb.mode". Keys that are not plain names are quoted in brackets, so a
// path stays unambiguous: labels["app.kubernetes.io/name"].
func joinKey(path, key string) string {
	if !plainKey(key) {
		return path + "[" + strconv.Quote(key) + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

func plainKey(key string) bool {
	if key == "" {
		return false
	}
	for _, r := range key {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !strings.ContainsRune("_-/:@+", r) {
			return false
		}
	}
	return true
}

// splitPath splits a field path into segments that concatenate back to it:
// `a.b[1]["x.y"]` is "a", ".b", "[1]", `["x.y"]`. Malformed paths (they come
// from Validate methods) split somehow, never panic.
func splitPath(p string) []string {
	var segs []string
	for i := 0; i < len(p); {
		start := i
		if p[i] == '[' {
			end := -1
			if i+1 < len(p) && p[i+1] == '"' {
				if q, err := strconv.QuotedPrefix(p[i+1:]); err == nil && i+1+len(q) < len(p) && p[i+1+len(q)] == ']' {
					end = i + 1 + len(q)
				}
			} else if j := strings.IndexByte(p[i:], ']'); j >= 0 {
				end = i + j
			}
			if end < 0 {
				return append(segs, p[start:])
			}
			i = end + 1
		} else {
			i++ // past the '.' or the first character of a name
			for i < len(p) && p[i] != '.' && p[i] != '[' {
				i++
			}
		}
		segs = append(segs, p[start:i])
	}
	return segs
}
