package alerting

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"opspilot/internal/slackrec"
)

// FuzzSlackInteraction feeds signed bodies to the interaction handler: it
// must never panic, answer 200 only for a decodable opspilot button click
// and 4xx for everything else.
func FuzzSlackInteraction(f *testing.F) {
	value := EncodeSlackActionValue(AlertRef{Fingerprint: "0123456789abcdef", GroupKey: slackTestGroupKey, Labels: map[string]string{"alertname": "A"}})
	for _, seed := range []string{
		slackTestPayload(SlackActionAck, value),
		slackTestPayload(SlackActionSilence1h, value),
		slackTestPayload(SlackActionRunbook, value),
		slackTestPayload(SlackActionDashboard, ""),
		slackTestPayload(SlackActionAck, "{}"),
		"payload=" + url.QueryEscape(`{"type":"block_actions","user":{"id":"U1"},"actions":[{"block_id":"b","action_id":"opspilot_ack","value":"{\"f\":\"x\"}"}]}`),
		"payload=" + url.QueryEscape(`{"type":"block_actions","user":{"id":"U1"},"actions":[null,{"block_id":1}]}`),
		"payload=" + url.QueryEscape(`{"type":"block_actions","actions":{"a":1}}`),
		"payload=" + url.QueryEscape(`{"type":"interactive_message","actions":[{"name":"x"}]}`),
		"payload=%7B",
		"payload=",
		"",
		"%%%",
		"a=b&payload=null",
	} {
		f.Add(seed)
	}
	acts := &slackTestActions{}
	h := NewSlackInteractionHandler(slackTestSecret, acts, nil)
	f.Fuzz(func(t *testing.T, body string) {
		w := slackTestInteract(h, body, slackrec.Sign(body, slackTestSecret, time.Now()))
		_, action, _, err := SlackDecodeInteraction([]byte(body))
		switch {
		case w.Code == http.StatusOK:
			if err != nil || action == "" {
				t.Fatalf("200 for a payload that does not decode (%v): %q", err, body)
			}
		case w.Code >= 400 && w.Code < 500:
			if err == nil && w.Code != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %d for a payload that decodes: %q", w.Code, body)
			}
			if !strings.Contains(w.Body.String(), `"error"`) {
				t.Fatalf("status %d without a reason: %s", w.Code, w.Body)
			}
		default:
			t.Fatalf("status %d for %q", w.Code, body)
		}
	})
}

// FuzzSlackActionValue checks the button value decoder never panics and
// that re-encoding what it accepts stays within Slack's limit and keeps
// the fingerprint.
func FuzzSlackActionValue(f *testing.F) {
	for _, seed := range []string{
		EncodeSlackActionValue(AlertRef{Fingerprint: "f", GroupKey: "g", Labels: map[string]string{"a": "b"}}),
		`{"f":"x","l":{"a":null}}`, `{"f":1}`, `null`, `{"f":"x","g":"` + strings.Repeat("y", 1990) + `"}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ref, err := DecodeSlackActionValue(s)
		if err != nil {
			return
		}
		enc := EncodeSlackActionValue(ref)
		if len(enc) > slackMaxButtonValue {
			t.Fatalf("re-encoded to %d bytes", len(enc))
		}
		back, err := DecodeSlackActionValue(enc)
		if err != nil {
			t.Fatalf("re-encoded value %q does not decode: %v", enc, err)
		}
		if len([]rune(ref.Fingerprint)) <= 64 && back.Fingerprint != ref.Fingerprint {
			t.Fatalf("fingerprint %q became %q", ref.Fingerprint, back.Fingerprint)
		}
	})
}
