package pki

import (
	"strings"
	"testing"
)

const (
	testHex    = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	testSecret = "s3cret-join-value-0001"
)

func TestParseJoinToken(t *testing.T) {
	good := "K10" + testHex + "::" + testSecret
	tests := []struct {
		name       string
		tok        string
		wantSecret string
		wantErr    string // substring of the error; "" for success
	}{
		{name: "good", tok: good, wantSecret: testSecret},
		{name: "trailing newline from a file", tok: good + "\n", wantSecret: testSecret},
		{name: "secret containing ::", tok: "K10" + testHex + "::abc::def:ghijklmnop", wantSecret: "abc::def:ghijklmnop"},
		{name: "empty", tok: "  ", wantErr: "it is empty"},
		{name: "bare secret", tok: testSecret, wantErr: "does not start with K10"},
		{name: "lowercase prefix", tok: "k10" + testHex + "::" + testSecret, wantErr: "does not start with K10"},
		{name: "no separator", tok: "K10" + testHex + testSecret, wantErr: "no ::"},
		{name: "single colon", tok: "K10" + testHex + ":" + testSecret, wantErr: "no ::"},
		{name: "short hash", tok: "K10" + testHex[:63] + "::" + testSecret, wantErr: "64 lowercase hex"},
		{name: "uppercase hash", tok: "K10" + strings.ToUpper(testHex) + "::" + testSecret, wantErr: "64 lowercase hex"},
		{name: "sha256: inside", tok: "K10sha256:" + testHex + "::" + testSecret, wantErr: "64 lowercase hex"},
		{name: "empty secret", tok: "K10" + testHex + "::", wantErr: "secret must be 16 to 256"},
		{name: "short secret", tok: "K10" + testHex + "::short", wantErr: "secret must be 16 to 256"},
		{name: "long secret", tok: "K10" + testHex + "::" + strings.Repeat("x", 257), wantErr: "secret must be 16 to 256"},
		{name: "space in secret", tok: "K10" + testHex + "::abc def ghi jkl mno", wantErr: "printable ASCII"},
		{name: "non-ASCII secret", tok: "K10" + testHex + "::passwörd-passwörd", wantErr: "printable ASCII"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hash, secret, err := ParseJoinToken(tt.tok)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("err %v", err)
				}
				if hash != "sha256:"+testHex || secret != tt.wantSecret {
					t.Fatalf("got %q %q", hash, secret)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted, got %q %q", hash, secret)
			}
			msg := err.Error()
			for _, w := range []string{tt.wantErr, "K10<64 hex>::<secret>", "opspilot server", "DATA_DIR/pki/join-token"} {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
			if len(tt.tok) > 20 && strings.Contains(msg, strings.TrimSpace(tt.tok)) {
				t.Errorf("error %q repeats the token", msg)
			}
		})
	}
}

func TestCheckJoinToken(t *testing.T) {
	a := mustEnsure(t, t.TempDir(), nil, t0)
	other := mustEnsure(t, t.TempDir(), nil, t0)
	hash, secret, err := ParseJoinToken(a.JoinToken())
	if err != nil || hash != a.CAHash() {
		t.Fatalf("own token parses to %q, %v; want CA hash %q", hash, err, a.CAHash())
	}
	_, otherSecret, _ := ParseJoinToken(other.JoinToken())
	tests := []struct {
		name string
		tok  string
		want bool
	}{
		{"own token", a.JoinToken(), true},
		{"own token with newline", a.JoinToken() + "\n", true},
		{"wrong secret", formatJoinToken(hash, otherSecret), false},
		{"secret prefix", formatJoinToken(hash, secret[:len(secret)-1]), false},
		{"right secret, other CA", formatJoinToken(other.CAHash(), secret), false},
		{"other server's token", other.JoinToken(), false},
		{"bare secret", secret, false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		if got := a.CheckJoinToken(tt.tok); got != tt.want {
			t.Errorf("%s: CheckJoinToken = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestNodeTokens(t *testing.T) {
	tok, hash := NewNodeToken()
	tok2, hash2 := NewNodeToken()
	if tok == tok2 || hash == hash2 {
		t.Fatal("two node tokens are equal")
	}
	if !strings.HasPrefix(tok, "opn_") || len(tok) != 4+64 {
		t.Errorf("token %q: want opn_ and 64 hex digits", tok)
	}
	if !strings.HasPrefix(hash, "sha256:") || !isLowerHex(strings.TrimPrefix(hash, "sha256:"), 64) || strings.Contains(hash, tok[4:]) {
		t.Errorf("hash %q: want sha256:<64 hex>, not containing the token", hash)
	}
	tests := []struct {
		name        string
		token, hash string
		want        bool
	}{
		{"match", tok, hash, true},
		{"other token", tok2, hash, false},
		{"truncated token", tok[:len(tok)-1], hash, false},
		{"empty token", "", hash, false},
		{"hash without prefix", tok, strings.TrimPrefix(hash, "sha256:"), false},
		{"uppercase hash", tok, "sha256:" + strings.ToUpper(strings.TrimPrefix(hash, "sha256:")), false},
		{"empty hash", tok, "", false},
		{"token as its own hash", hash, hash, false},
	}
	for _, tt := range tests {
		if got := CheckNodeToken(tt.token, tt.hash); got != tt.want {
			t.Errorf("%s: CheckNodeToken = %v, want %v", tt.name, got, tt.want)
		}
	}
}
