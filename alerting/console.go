package alerting

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	amalert "github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/alertmanager/notify"
)

// consoleNotifier prints a notification as a few lines: `opspilot up`'s
// receiver when no chat is configured.
type consoleNotifier struct {
	mu sync.Mutex
	w  io.Writer
}

func (c *consoleNotifier) Notify(ctx context.Context, alerts ...*amalert.Alert) notify.NotifyVerdict {
	rcv, _ := notify.ReceiverName(ctx)
	gl, _ := notify.GroupLabels(ctx)
	var firing, resolved []*amalert.Alert
	for _, a := range alerts {
		if a.Resolved() {
			resolved = append(resolved, a)
		} else {
			firing = append(firing, a)
		}
	}
	state := "FIRING"
	if len(firing) == 0 {
		state = "RESOLVED"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s [%s] %s %s (%d firing, %d resolved) → %s\n", time.Now().UTC().Format("15:04:05.000"), state,
		gl["alertname"], labelString(labelMap(gl), "alertname"), len(firing), len(resolved), rcv)
	for _, a := range append(firing, resolved...) {
		st := "firing since " + a.StartsAt.UTC().Format(time.RFC3339)
		if a.Resolved() {
			st = "resolved at " + a.EndsAt.UTC().Format(time.RFC3339)
		}
		sev := string(a.Labels["severity"])
		if sev == "" {
			sev = "none"
		}
		fmt.Fprintf(&b, "    %s %s severity=%s %s: %s\n", a.Fingerprint(), labelString(labelMap(a.Labels), "alertname", "severity"), sev, st,
			oneLine(string(a.Annotations["summary"])))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := io.WriteString(c.w, b.String()); err != nil {
		return notify.Unrecoverable(fmt.Errorf("console: %w", err), notify.ClientErrorReason)
	}
	return notify.Success()
}

// labelString formats labels as {a="1", b="2"}, leaving out skip.
func labelString(ls map[string]string, skip ...string) string {
	var parts []string
	for k, v := range ls {
		if !slices.Contains(skip, k) {
			parts = append(parts, fmt.Sprintf("%s=%q", k, v))
		}
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, ", ") + "}"
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
