// Package slackrec helps tests that talk to Slack, which cannot be
// reached from tests: it signs requests as Slack signs them (so the
// signature checks of opspilot's Slack endpoints are exercised for real),
// and it records what a bot posts to slack-go's slacktest server.
package slackrec

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slacktest"
)

// Sign returns the headers Slack sends with a form body: the timestamp and
// the v0 HMAC-SHA256 signature of "v0:timestamp:body" under secret.
func Sign(body, secret string, at time.Time) http.Header {
	ts := strconv.FormatInt(at.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "v0:%s:%s", ts, body)
	h := http.Header{}
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	h.Set("X-Slack-Request-Timestamp", ts)
	h.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac.Sum(nil)))
	return h
}

// Server is slack-go's slacktest server that also records the messages a
// bot posts (chat.postMessage) and edits (chat.update); every post is
// answered as in channel C0OPS at ts 10.0.
type Server struct {
	*slacktest.Server
	mu      sync.Mutex
	posted  []url.Values
	updated []url.Values
}

// New starts a recording server; Stop it when done.
func New() *Server {
	s := &Server{}
	record := func(into *[]url.Values, answer string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			_ = r.ParseForm()
			s.mu.Lock()
			*into = append(*into, r.Form)
			s.mu.Unlock()
			_, _ = w.Write([]byte(answer))
		}
	}
	s.Server = slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/chat.postMessage", record(&s.posted, `{"ok":true,"channel":"C0OPS","ts":"10.0"}`))
		c.Handle("/chat.update", record(&s.updated, `{"ok":true,"channel":"C0OPS","ts":"10.0"}`))
	})
	s.Start()
	return s
}

// Client is a bot client of the server.
func (s *Server) Client() *slack.Client {
	return slack.New("xoxb-test", slack.OptionAPIURL(s.GetAPIURL()))
}

// Posted returns the forms of the messages posted so far.
func (s *Server) Posted() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]url.Values(nil), s.posted...)
}

// Updated returns the forms of the message edits so far.
func (s *Server) Updated() []url.Values {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]url.Values(nil), s.updated...)
}

// Reset forgets what was recorded.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.posted, s.updated = nil, nil
}

// ButtonValue is the value of the first button of the newest posted
// message with buttons, or "".
func (s *Server) ButtonValue() string {
	posted := s.Posted()
	for i := len(posted) - 1; i >= 0; i-- {
		var blocks slack.Blocks
		if json.Unmarshal([]byte(posted[i].Get("blocks")), &blocks) != nil {
			continue
		}
		for _, b := range blocks.BlockSet {
			if ab, ok := b.(*slack.ActionBlock); ok && len(ab.Elements.ElementSet) > 0 {
				if btn, ok := ab.Elements.ElementSet[0].(*slack.ButtonBlockElement); ok {
					return btn.Value
				}
			}
		}
	}
	return ""
}
