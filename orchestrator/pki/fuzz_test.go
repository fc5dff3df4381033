package pki

import (
	"strings"
	"testing"
)

// FuzzParseJoinToken: the parser never panics, explains every refusal, and
// every token it accepts prints back, from its parts, to itself.
func FuzzParseJoinToken(f *testing.F) {
	for _, s := range []string{
		"K10" + testHex + "::" + testSecret,
		"K10" + testHex + "::" + testSecret + "\n",
		"K10" + testHex + "::a::b::c::d::e::f::g",
		"K10" + testHex + "::",
		"K10" + testHex,
		"K10::" + testSecret,
		"K10sha256:" + testHex + "::" + testSecret,
		"K10" + strings.ToUpper(testHex) + "::" + testSecret,
		"", "K10", "::", " K10 ", "\x00", "K10\xff",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		hash, secret, err := ParseJoinToken(tok)
		if err != nil {
			if hash != "" || secret != "" {
				t.Fatalf("ParseJoinToken(%q) failed but returned %q %q", tok, hash, secret)
			}
			if !strings.Contains(err.Error(), "K10<64 hex>::<secret>") {
				t.Fatalf("ParseJoinToken(%q): error %q does not show the format", tok, err)
			}
			return
		}
		if back := formatJoinToken(hash, secret); back != strings.TrimSpace(tok) {
			t.Fatalf("ParseJoinToken(%q) = %q, %q, which formats to %q", tok, hash, secret, back)
		}
		if _, err := decodeHash(hash); err != nil {
			t.Fatalf("ParseJoinToken(%q) returned hash %q that FetchCA refuses: %v", tok, hash, err)
		}
		if validSecret(secret) != nil {
			t.Fatalf("ParseJoinToken(%q) returned invalid secret %q", tok, secret)
		}
	})
}
