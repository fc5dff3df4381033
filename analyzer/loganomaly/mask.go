package loganomaly

import "strings"

// Masking replaces the variable parts of a log line with typed
// placeholders before the Drain tree sees it, so that lines that differ
// only in ids, numbers or addresses share a template from the first line
// on, instead of only after Drain has seen enough of them to generalise.
// It is hand-written instead of a list of regular expressions (Drain3's
// way) because it runs on every line: one pass, no backtracking, no
// allocation beyond the caller's buffer.

// Placeholders the masker writes. ParamToken is what Drain writes where
// lines of one template differ.
const (
	ParamToken  = "<*>"
	maskNum     = "<NUM>"
	maskHex     = "<HEX>"
	maskIP      = "<IP>"
	maskUUID    = "<UUID>"
	maskDur     = "<DUR>"
	maskTime    = "<TS>"
	maskQuoted  = "<STR>"
	maxQuoteLen = 4096 // a quote longer than this is more likely a stray quote than a value
)

// Byte classes, looked up per byte on the hot path.
const (
	clsSpace = 1 << iota
	clsDelim
	clsDigit
	clsHex
)

var byteClass = func() (t [256]uint8) {
	for _, c := range []byte(" \t\n\r\v\f") {
		t[c] |= clsSpace
	}
	// ASCII punctuation except those that occur inside values (. : - _ +)
	// and the quotes, which are handled separately.
	for _, c := range []byte("=,;()[]{}<>|/\\&?!#@%$`~^*") {
		t[c] |= clsDelim
	}
	for c := '0'; c <= '9'; c++ {
		t[c] |= clsDigit | clsHex
	}
	for _, c := range []byte("abcdefABCDEF") {
		t[c] |= clsHex
	}
	return t
}()

func isSpace(c byte) bool { return byteClass[c]&clsSpace != 0 }

// isDelim reports the characters that always separate words.
func isDelim(c byte) bool { return byteClass[c]&clsDelim != 0 }

// quoteMayOpen reports whether a single quote after prev opens a quoted
// value; elsewhere it is an apostrophe ("don't").
func quoteMayOpen(prev byte) bool {
	return prev == '=' || prev == ':' || prev == '(' || prev == '[' || prev == '{' || prev == ','
}

// masker holds the per-line state that makes unterminated quotes cost
// O(n) per line instead of O(n²).
type masker struct {
	noDouble, noSingle bool
}

// maskLine appends line to dst with whitespace runs collapsed to one space,
// leading and trailing whitespace dropped, and variables replaced by
// placeholders. Tokens of the result never contain whitespace.
func maskLine(dst []byte, line string) []byte {
	var m masker
	i := 0
	for i < len(line) {
		for i < len(line) && isSpace(line[i]) {
			i++
		}
		if i == len(line) {
			break
		}
		if len(dst) > 0 {
			dst = append(dst, ' ')
		}
		tokStart := i
		for i < len(line) && !isSpace(line[i]) {
			c := line[i]
			if c == '"' || (c == '\'' && (i == tokStart || quoteMayOpen(line[i-1]))) {
				if j := m.closingQuote(line, i); j > 0 {
					dst = append(dst, maskQuoted...)
					i = j + 1
					continue
				}
				dst = append(dst, c)
				i++
				continue
			}
			if isDelim(c) {
				dst = append(dst, c)
				i++
				continue
			}
			j := i
			for j < len(line) && byteClass[line[j]]&(clsSpace|clsDelim) == 0 && line[j] != '"' {
				j++
			}
			if j == i { // a single quote that did not open
				j++
			}
			dst = appendMaskedWord(dst, line[i:j])
			i = j
		}
	}
	return dst
}

// closingQuote returns the index of the quote closing the one at i, or -1.
// A closing single quote must be followed by whitespace, a delimiter or the
// end, so that apostrophes inside the value do not close it.
func (m *masker) closingQuote(s string, i int) int {
	q := s[i]
	if (q == '"' && m.noDouble) || (q == '\'' && m.noSingle) {
		return -1
	}
	end := min(len(s), i+1+maxQuoteLen)
	for j := i + 1; j < end; j++ {
		switch s[j] {
		case '\\':
			j++
		case q:
			if q == '\'' && j+1 < len(s) && !isSpace(s[j+1]) && !isDelim(s[j+1]) && s[j+1] != ':' && s[j+1] != '.' {
				continue
			}
			return j
		}
	}
	if end == len(s) {
		// No closing quote anywhere after i, hence none after any later
		// opening quote either.
		if q == '"' {
			m.noDouble = true
		} else {
			m.noSingle = true
		}
	}
	return -1
}

// appendMaskedWord appends w, or its placeholder when w is a variable. A
// word that is not a variable as a whole is split at . : - _ + and each
// part is masked on its own ("host-12" → "host-<NUM>").
func appendMaskedWord(dst []byte, w string) []byte {
	if p := classifyWord(w); p != "" {
		return append(dst, p...)
	}
	start := 0
	split := false
	for k := 0; k < len(w); k++ {
		switch w[k] {
		case '.', ':', '-', '_', '+':
			split = true
			dst = appendMaskedPart(dst, w[start:k])
			dst = append(dst, w[k])
			start = k + 1
		}
	}
	if !split {
		return appendMaskedPart(dst, w)
	}
	return appendMaskedPart(dst, w[start:])
}

// appendMaskedPart masks a part without separators: a number (keeping a
// unit suffix: "12KB" → "<NUM>KB"), a hex string or a duration.
func appendMaskedPart(dst []byte, p string) []byte {
	if p == "" {
		return dst
	}
	if isDuration(p) {
		return append(dst, maskDur...)
	}
	if isHex(p) {
		return append(dst, maskHex...)
	}
	if n := numberPrefix(p); n == len(p) {
		return append(dst, maskNum...)
	} else if n > 0 && allLetters(p[n:]) {
		dst = append(dst, maskNum...)
		return append(dst, p[n:]...)
	}
	return append(dst, p...)
}

// classifyWord returns the placeholder for a whole word, or "".
func classifyWord(w string) string {
	switch {
	case w == "":
		return ""
	case isUUID(w):
		return maskUUID
	case isTimestamp(w):
		return maskTime
	case isIPv4(w), isIPv6(w):
		return maskIP
	case isDuration(w):
		return maskDur
	case isHex(w):
		return maskHex
	case numberPrefix(w) == len(w):
		return maskNum
	}
	return ""
}

func isDigit(c byte) bool { return byteClass[c]&clsDigit != 0 }

func isHexDigit(c byte) bool { return byteClass[c]&clsHex != 0 }

func allLetters(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') {
			return false
		}
	}
	return s != ""
}

func digitsAt(s string, i int) int {
	j := i
	for j < len(s) && isDigit(s[j]) {
		j++
	}
	return j - i
}

// numberPrefix returns the length of the number w starts with ([+-]d+(.d+)?
// with an optional exponent), or 0.
func numberPrefix(w string) int {
	i := 0
	if i < len(w) && (w[i] == '+' || w[i] == '-') {
		i++
	}
	n := digitsAt(w, i)
	if n == 0 {
		return 0
	}
	i += n
	if i+1 < len(w) && w[i] == '.' && isDigit(w[i+1]) {
		i++
		i += digitsAt(w, i)
	}
	if i+1 < len(w) && (w[i] == 'e' || w[i] == 'E') {
		j := i + 1
		if j < len(w) && (w[j] == '+' || w[j] == '-') {
			j++
		}
		if n := digitsAt(w, j); n > 0 && j+n == len(w) {
			i = j + n
		}
	}
	return i
}

// isHex: 0x-prefixed hex, or at least 8 hex digits with both a digit and a
// letter (commit ids, trace ids, hashes; all-digit strings are numbers).
func isHex(w string) bool {
	if len(w) > 2 && w[0] == '0' && (w[1] == 'x' || w[1] == 'X') {
		for i := 2; i < len(w); i++ {
			if !isHexDigit(w[i]) {
				return false
			}
		}
		return true
	}
	if len(w) < 8 {
		return false
	}
	digit, letter := false, false
	for i := 0; i < len(w); i++ {
		c := w[i]
		switch {
		case isDigit(c):
			digit = true
		case isHexDigit(c):
			letter = true
		default:
			return false
		}
	}
	return digit && letter
}

func isUUID(w string) bool {
	if len(w) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if w[i] != '-' {
				return false
			}
		} else if !isHexDigit(w[i]) {
			return false
		}
	}
	return true
}

// isIPv4 accepts a.b.c.d with an optional :port.
func isIPv4(w string) bool {
	i := 0
	for part := range 4 {
		n := digitsAt(w, i)
		if n == 0 || n > 3 {
			return false
		}
		v := 0
		for _, c := range []byte(w[i : i+n]) {
			v = v*10 + int(c-'0')
		}
		if v > 255 {
			return false
		}
		i += n
		if part < 3 {
			if i >= len(w) || w[i] != '.' {
				return false
			}
			i++
		}
	}
	if i == len(w) {
		return true
	}
	if w[i] != ':' {
		return false
	}
	n := digitsAt(w, i+1)
	return n > 0 && n <= 5 && i+1+n == len(w)
}

// isIPv6 accepts colon-separated groups of up to 4 hex digits (the last
// may be an IPv4 address) with 2 to 7 colons and either "::" or a hex
// letter, so that clock times stay out.
func isIPv6(w string) bool {
	if len(w) < 3 || len(w) > 45 {
		return false
	}
	colons, letter := 0, false
	start := 0
	for i := 0; i <= len(w); i++ {
		if i < len(w) && w[i] != ':' {
			continue
		}
		g := w[start:i]
		switch {
		case i == len(w) && colons >= 2 && isIPv4(g):
		case len(g) > 4:
			return false
		default:
			for k := 0; k < len(g); k++ {
				if !isHexDigit(g[k]) {
					return false
				}
				if !isDigit(g[k]) {
					letter = true
				}
			}
		}
		if i < len(w) {
			colons++
		}
		start = i + 1
	}
	return colons >= 2 && colons <= 7 && (letter || strings.Contains(w, "::"))
}

// isTimestamp accepts dates (2006-01-02), clock times (15:04, 15:04:05.000)
// and both joined by T, with an optional zone (Z, +01:00, +0100).
func isTimestamp(w string) bool {
	i := 0
	if digitsAt(w, 0) == 4 && len(w) >= 10 && w[4] == '-' && digitsAt(w, 5) == 2 && w[7] == '-' && digitsAt(w, 8) == 2 {
		i = 10
		if i == len(w) {
			return true
		}
		if w[i] != 'T' {
			return false
		}
		i++
	}
	j, ok := clockEnd(w, i)
	if !ok {
		return false
	}
	return zoneEnd(w, j) == len(w)
}

// clockEnd parses h:mm or hh:mm[:ss[.frac]] at i.
func clockEnd(w string, i int) (int, bool) {
	n := digitsAt(w, i)
	if n < 1 || n > 2 {
		return 0, false
	}
	i += n
	if i >= len(w) || w[i] != ':' || digitsAt(w, i+1) != 2 {
		return 0, false
	}
	i += 3
	if i < len(w) && w[i] == ':' && digitsAt(w, i+1) == 2 {
		i += 3
		if i+1 < len(w) && (w[i] == '.' || w[i] == ',') && isDigit(w[i+1]) {
			i++
			i += digitsAt(w, i)
		}
	}
	return i, true
}

func zoneEnd(w string, i int) int {
	if i == len(w) {
		return i
	}
	if w[i] == 'Z' {
		return i + 1
	}
	if w[i] == '+' || w[i] == '-' {
		if digitsAt(w, i+1) == 4 {
			return i + 5
		}
		if digitsAt(w, i+1) == 2 && i+3 < len(w) && w[i+3] == ':' && digitsAt(w, i+4) == 2 {
			return i + 6
		}
	}
	return i
}

// isDuration accepts Go-style durations: [+-](number unit)+ with units ns,
// us, µs, ms, s, m, h, d.
func isDuration(w string) bool {
	i := 0
	if i < len(w) && (w[i] == '+' || w[i] == '-') {
		i++
	}
	parts := 0
	for i < len(w) {
		n := digitsAt(w, i)
		if n == 0 {
			return false
		}
		i += n
		if i+1 < len(w) && w[i] == '.' && isDigit(w[i+1]) {
			i++
			i += digitsAt(w, i)
		}
		u := unitLen(w[i:])
		if u == 0 {
			return false
		}
		i += u
		parts++
	}
	return parts > 0
}

func unitLen(s string) int {
	switch {
	case len(s) >= 2 && (s[:2] == "ns" || s[:2] == "us" || s[:2] == "ms"):
		return 2
	case len(s) >= 3 && s[:3] == "µs":
		return 3
	case len(s) >= 1 && (s[0] == 's' || s[0] == 'm' || s[0] == 'h' || s[0] == 'd'):
		return 1
	}
	return 0
}
