package config

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"
)

// syntaxError converts a yaml.v3 parse error into an Error.
func syntaxError(file string, data []byte, err error) *Error {
	line, msg := splitLine(strings.TrimPrefix(err.Error(), "yaml: "))
	e := &Error{File: file, Line: line, Msg: "invalid YAML: " + msg}
	if line > 0 {
		e.Msg += syntaxHint(msg, lineText(data, line))
		return e
	}
	switch {
	case strings.Contains(msg, "UTF-") || strings.Contains(msg, "Unicode") ||
		strings.Contains(msg, "surrogate") || strings.Contains(msg, "control characters"):
		// yaml.v3 knows the offset of a bad character but does not say
		// it; find it, since it is invisible in most editors.
		if off, ok := badCharacter(data); ok {
			e.Line, e.Column = offsetPosition(data, off)
			if r, size := utf8.DecodeRune(data[off:]); r == utf8.RuneError && size <= 1 {
				e.Msg = fmt.Sprintf("invalid YAML: the file is not valid UTF-8 (byte 0x%02x); save it as UTF-8", data[off])
			} else {
				e.Msg = fmt.Sprintf("invalid YAML: character %U is not allowed in YAML; remove it", r)
			}
		}
	case strings.HasPrefix(msg, "unknown anchor"), strings.HasPrefix(msg, "anchor "),
		strings.Contains(msg, "aliasing"), strings.HasPrefix(msg, "cannot parse"),
		strings.HasPrefix(msg, "attempted"), strings.HasPrefix(msg, "input error"):
		// These messages never carry a position.
		e.Msg += syntaxHint(msg, "")
	default:
		// yaml.v3 leaves out the line number when it is the first line.
		e.Line = 1
		e.Msg += syntaxHint(msg, lineText(data, 1))
	}
	return e
}

// syntaxHint suggests the usual cause of a yaml.v3 syntax error.
func syntaxHint(msg, line string) string {
	switch {
	case strings.Contains(msg, "tab character"),
		strings.Contains(msg, "cannot start any token") && strings.Contains(line, "\t"):
		return "; indent with spaces, YAML does not allow tabs here"
	case strings.Contains(msg, "cannot start any token"):
		return "; quote values that start with a special character such as @ or `"
	case strings.HasPrefix(msg, "mapping values are not allowed"):
		return `; quote values that contain ": ", and check the indentation`
	case strings.HasPrefix(msg, "did not find expected key"),
		strings.HasPrefix(msg, "did not find expected '-'"),
		strings.HasPrefix(msg, "did not find expected <document start>"):
		return "; check the indentation of this block and the lines below it"
	case strings.HasPrefix(msg, "did not find expected ','"):
		return "; check for a missing comma or closing bracket"
	case strings.Contains(msg, "unexpected end of stream"):
		return "; check for an unclosed quote or bracket"
	case strings.HasPrefix(msg, "unknown anchor"):
		return "; define the anchor with &name before referring to it with *name"
	}
	return ""
}

// lineText returns the 1-based line of data, or "" if there is none.
func lineText(data []byte, line int) string {
	for i := 1; i < line; i++ {
		j := bytes.IndexByte(data, '\n')
		if j < 0 {
			return ""
		}
		data = data[j+1:]
	}
	if j := bytes.IndexByte(data, '\n'); j >= 0 {
		data = data[:j]
	}
	return string(data)
}

// badCharacter returns the offset of the first byte that is not valid
// UTF-8 or is a character YAML forbids (YAML 1.2, production [1]).
func badCharacter(data []byte) (int, bool) {
	if len(data) >= 2 && (data[0] == 0xFE && data[1] == 0xFF || data[0] == 0xFF && data[1] == 0xFE) {
		return 0, false // UTF-16, which yaml.v3 decodes itself
	}
	for off := 0; off < len(data); {
		r, size := utf8.DecodeRune(data[off:])
		if r == utf8.RuneError && size <= 1 || !printable(r) {
			return off, true
		}
		off += size
	}
	return 0, false
}

func printable(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0x7E || r == 0x85 ||
		r >= 0xA0 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}

// offsetPosition converts a byte offset into a 1-based line and column
// (counted in characters).
func offsetPosition(data []byte, off int) (line, col int) {
	line, col = 1, 1
	for _, r := range string(data[:off]) {
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}
