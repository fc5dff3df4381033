package alerting

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// ErrSlackReplayed is a signed request that was already accepted once.
var ErrSlackReplayed = errors.New("this request was already received (a replay)")

// SlackVerifier checks Slack's request signatures: the v0 HMAC over the
// timestamp and body with the app's signing secret, a timestamp within 5
// minutes, and no request accepted before (slack-go's verifier does not
// deduplicate, so a captured request could be replayed within the
// window). Every Slack endpoint of opspilot uses one.
type SlackVerifier struct {
	Secret string

	mu   sync.Mutex
	seen map[string]time.Time
}

// Check verifies a request's headers and body; it returns why the request
// is rejected, or "".
func (v *SlackVerifier) Check(h http.Header, body []byte) string {
	if v.Secret == "" {
		return "no signing secret configured (the Slack app's Signing Secret: signing_secret_file or $SLACK_SIGNING_SECRET)"
	}
	if reason := slackVerify(h, body, v.Secret); reason != "" {
		return reason
	}
	key := h.Get("X-Slack-Request-Timestamp") + "/" + h.Get("X-Slack-Signature")
	now := time.Now()
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.seen == nil {
		v.seen = map[string]time.Time{}
	}
	for k, t := range v.seen {
		if now.Sub(t) > 6*time.Minute {
			delete(v.seen, k)
		}
	}
	if _, dup := v.seen[key]; dup {
		return ErrSlackReplayed.Error()
	}
	v.seen[key] = now
	return ""
}

// Verify reads r's body (at most 1 MiB), checks it and puts it back.
func (v *SlackVerifier) Verify(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if reason := v.Check(r.Header, body); reason != "" {
		return nil, errors.New(reason)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return body, nil
}
