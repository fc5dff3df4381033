package runbooks

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/shlex"
	"github.com/prometheus/alertmanager/matcher/compat"
)

// Command verbs of the chat-bot (`/opspilot VERB …` or a mention).
const (
	VerbHelp     = "help"
	VerbStatus   = "status"
	VerbScale    = "scale"
	VerbFailover = "failover"
	VerbRunbook  = "runbook"
	VerbSilence  = "silence"
	VerbAck      = "ack"
	VerbIncident = "incident"
)

// Command is one parsed chat command. Which fields are set depends on
// Verb.
type Command struct {
	Verb string
	// Service: status, scale. Datacenter: failover (To: the datacenter
	// taking over; empty lets the orchestrator choose).
	Service, Datacenter, To string
	// Replicas: scale.
	Replicas int
	// Runbook and Params: runbook run NAME k=v…; List: runbook list.
	Runbook string
	Params  map[string]string
	List    bool
	// Matchers and Duration: silence.
	Matchers []string
	Duration time.Duration
	// Target: ack (an alert fingerprint; empty: the alert of the thread
	// the command was sent in). Incident: incident summary [ID].
	Target string
	// Reason is the free text after "because" (or "--"), recorded with
	// the action.
	Reason string
}

// Mutating reports whether the command changes something (and so needs
// a role, and is audited).
func (c Command) Mutating() bool {
	switch c.Verb {
	case VerbScale, VerbFailover, VerbSilence, VerbAck:
		return true
	case VerbRunbook:
		return !c.List
	}
	return false
}

// Usage is the help text, one line per command.
const Usage = "`status SERVICE` · `scale SERVICE N [because WHY]` · `failover DC [to DC2] [because WHY]` · " +
	"`runbook list` · `runbook run NAME [key=value…] [because WHY]` · " +
	"`silence MATCHER… [for 1h] [because WHY]` (matchers as in Alertmanager: service=billing, alertname=~\"Billing.*\") · " +
	"`ack [FINGERPRINT]` · `incident summary [ID]` · `help`"

// ErrCommand marks a command the bot could not understand; its message
// says what was wrong and shows the right form.
var ErrCommand = errors.New("command")

func usageErr(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrCommand, fmt.Sprintf(format, a...))
}

// ParseCommand parses a chat command's text (a slash command's text, or
// a mention without the bot's name). Words are split like a shell's
// (quotes group words), so `silence alertname="Billing Errors"` works.
func ParseCommand(text string) (Command, error) {
	words, err := shlex.Split(text)
	if err != nil {
		return Command{}, usageErr("%v; close every quote", err)
	}
	words, reason := splitReason(words)
	if len(words) == 0 {
		return Command{Verb: VerbHelp}, nil
	}
	c := Command{Verb: strings.ToLower(words[0]), Reason: reason}
	args := words[1:]
	switch c.Verb {
	case VerbHelp:
		return c, nil
	case VerbStatus:
		if len(args) != 1 {
			return c, usageErr("status takes one service: `status billing`")
		}
		c.Service = args[0]
	case VerbScale:
		if len(args) != 2 {
			return c, usageErr("scale takes a service and a replica count: `scale billing 10`")
		}
		n, err := strconv.Atoi(args[1])
		if err != nil || n < 0 || n > 10000 {
			return c, usageErr("scale %s: %q is not a replica count (0 to 10000)", args[0], args[1])
		}
		c.Service, c.Replicas = args[0], n
	case VerbFailover:
		switch {
		case len(args) == 1:
		case len(args) == 3 && strings.EqualFold(args[1], "to"):
			c.To = args[2]
		default:
			return c, usageErr("failover takes a datacenter, optionally `to` another: `failover dc-east to dc-west`")
		}
		c.Datacenter = args[0]
	case VerbRunbook:
		return parseRunbookCommand(c, args)
	case VerbSilence:
		return parseSilenceCommand(c, args)
	case VerbAck:
		if len(args) > 1 {
			return c, usageErr("ack takes at most one alert fingerprint (or none, in an alert's thread)")
		}
		if len(args) == 1 {
			c.Target = args[0]
		}
	case VerbIncident:
		if len(args) == 0 || len(args) > 2 || !strings.EqualFold(args[0], "summary") {
			return c, usageErr("`incident summary [ID]` (without ID: the incident of this thread)")
		}
		if len(args) == 2 {
			c.Target = args[1]
		}
	default:
		return c, usageErr("unknown command %q; commands: %s", words[0], Usage)
	}
	return c, nil
}

// splitReason cuts "because …" (or "-- …") off the end of the words.
func splitReason(words []string) ([]string, string) {
	for i, w := range words {
		if i > 0 && (strings.EqualFold(w, "because") || w == "--") {
			return words[:i], strings.Join(words[i+1:], " ")
		}
	}
	return words, ""
}

func parseRunbookCommand(c Command, args []string) (Command, error) {
	if len(args) == 1 && strings.EqualFold(args[0], "list") {
		c.List = true
		return c, nil
	}
	if len(args) < 2 || !strings.EqualFold(args[0], "run") {
		return c, usageErr("`runbook list` or `runbook run NAME [key=value…]`")
	}
	c.Runbook = args[1]
	c.Params = map[string]string{}
	for _, kv := range args[2:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return c, usageErr("runbook %s: parameter %q is not key=value", c.Runbook, kv)
		}
		if _, dup := c.Params[k]; dup {
			return c, usageErr("runbook %s: parameter %s given twice", c.Runbook, k)
		}
		c.Params[k] = v
	}
	return c, nil
}

func parseSilenceCommand(c Command, args []string) (Command, error) {
	c.Duration = time.Hour
	if n := len(args); n >= 1 && strings.EqualFold(args[n-1], "for") {
		return c, usageErr("silence: `for` needs a duration (e.g. 30m, 2h)")
	}
	if n := len(args); n >= 2 && strings.EqualFold(args[n-2], "for") {
		d, err := time.ParseDuration(args[n-1])
		if err != nil || d <= 0 || d > 30*24*time.Hour {
			return c, usageErr("silence: %q is not a duration up to 720h (e.g. 30m, 2h)", args[n-1])
		}
		c.Duration, args = d, args[:n-2]
	}
	if len(args) == 0 {
		return c, usageErr("silence needs at least one matcher: `silence service=billing for 1h because deploying`")
	}
	for _, m := range args {
		if _, err := compat.Matchers(m, "chat"); err != nil {
			return c, usageErr("silence: matcher %q: %v (use name=value, name!=value, name=~\"regex\")", m, err)
		}
		c.Matchers = append(c.Matchers, m)
	}
	return c, nil
}
