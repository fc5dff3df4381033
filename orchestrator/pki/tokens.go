package pki

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

const (
	// joinTokenPrefix marks the token format, as in k3s ("K10" + CA hash).
	joinTokenPrefix = "K10"
	joinTokenSep    = "::"
	hashPrefix      = "sha256:"
	hashHexLen      = 2 * sha256.Size

	// nodeTokenPrefix lets secret scanners and people recognise a node
	// token in a paste.
	nodeTokenPrefix = "opn_"

	minSecretLen = 16
	maxSecretLen = 256
)

const joinTokenHelp = "a join token must look like K10<64 hex>::<secret>; copy it from `opspilot server`'s output or DATA_DIR/pki/join-token"

// JoinToken is what an agent needs to join: K10<hex SHA-256 of the CA's
// DER>::<join secret>. The first half lets the agent trust the CA without
// a CA file; the second authenticates the join.
func (a *Authority) JoinToken() string {
	return formatJoinToken(a.caHash, a.joinSecret)
}

func formatJoinToken(caHash, secret string) string {
	return joinTokenPrefix + strings.TrimPrefix(caHash, hashPrefix) + joinTokenSep + secret
}

// CheckJoinToken reports whether tok is this server's join token: its CA
// hash and its secret must both match. The secrets are compared in
// constant time, through their SHA-256 so not even the length leaks.
func (a *Authority) CheckJoinToken(tok string) bool {
	caHash, secret, err := ParseJoinToken(tok)
	if err != nil {
		return false
	}
	hashOK := subtle.ConstantTimeCompare([]byte(caHash), []byte(a.caHash))
	got, want := sha256.Sum256([]byte(secret)), sha256.Sum256([]byte(a.joinSecret))
	return hashOK&subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// ParseJoinToken splits a join token into the CA hash, as CAHash prints it
// ("sha256:<hex>"), and the secret. Surrounding whitespace is ignored, as
// a token read from a file ends in a newline. Errors never repeat the
// token: it is a secret.
func ParseJoinToken(tok string) (caHash, secret string, err error) {
	tok = strings.TrimSpace(tok)
	bad := func(why string) (string, string, error) {
		return "", "", fmt.Errorf("bad join token (%s): %s", why, joinTokenHelp)
	}
	switch {
	case tok == "":
		return bad("it is empty")
	case !strings.HasPrefix(tok, joinTokenPrefix):
		return bad("it does not start with " + joinTokenPrefix)
	}
	rest := tok[len(joinTokenPrefix):]
	hexHash, secret, ok := strings.Cut(rest, joinTokenSep)
	if !ok {
		return bad("there is no " + joinTokenSep + " between the CA hash and the secret")
	}
	if !isLowerHex(hexHash, hashHexLen) {
		return bad(fmt.Sprintf("the CA hash is not %d lowercase hex digits", hashHexLen))
	}
	if err := validSecret(secret); err != nil {
		return bad("the secret " + err.Error())
	}
	return hashPrefix + hexHash, secret, nil
}

// validSecret: what fits in a token on a command line without quoting
// surprises, and long enough not to be guessed.
func validSecret(s string) error {
	if len(s) < minSecretLen || len(s) > maxSecretLen {
		return fmt.Errorf("must be %d to %d characters, found %d", minSecretLen, maxSecretLen, len(s))
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return errors.New("must be printable ASCII without spaces")
		}
	}
	return nil
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// newSecret is 256 random bits in hex. crypto/rand.Read never fails (it
// crashes the program if the system's generator does).
func newSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// NewNodeToken makes a bearer token for a joined node and the hash to
// store in its place ("sha256:<hex>"). The token has 256 random bits, so a
// plain SHA-256 (no salt, no slow hash) cannot be reversed by guessing,
// and a leaked store does not leak usable tokens.
func NewNodeToken() (token, hash string) {
	token = nodeTokenPrefix + newSecret()
	return token, hashToken(token)
}

// CheckNodeToken reports whether token hashes to hash, comparing in
// constant time. A malformed hash never matches.
func CheckNodeToken(token, hash string) bool {
	if !strings.HasPrefix(hash, hashPrefix) || !isLowerHex(hash[len(hashPrefix):], hashHexLen) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(hashToken(token)), []byte(hash)) == 1
}

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hashPrefix + hex.EncodeToString(sum[:])
}
