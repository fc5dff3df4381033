package runbooks

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"opspilot/config"
)

func TestParseCommand(t *testing.T) {
	cases := []struct {
		text string
		want Command
	}{
		{"", Command{Verb: VerbHelp}},
		{"help", Command{Verb: VerbHelp}},
		{"status billing", Command{Verb: VerbStatus, Service: "billing"}},
		{"SCALE billing 10 because promotion tonight", Command{Verb: VerbScale, Service: "billing", Replicas: 10, Reason: "promotion tonight"}},
		{"failover dc-east", Command{Verb: VerbFailover, Datacenter: "dc-east"}},
		{"failover dc-east to dc-west -- power work", Command{Verb: VerbFailover, Datacenter: "dc-east", To: "dc-west", Reason: "power work"}},
		{"runbook list", Command{Verb: VerbRunbook, List: true}},
		{`runbook run billing-errors service=billing factor=2 note="two words"`, Command{Verb: VerbRunbook, Runbook: "billing-errors",
			Params: map[string]string{"service": "billing", "factor": "2", "note": "two words"}}},
		{"silence service=billing", Command{Verb: VerbSilence, Matchers: []string{"service=billing"}, Duration: time.Hour}},
		{`silence alertname=~"Billing.*" service=billing for 30m because deploying`, Command{Verb: VerbSilence,
			Matchers: []string{`alertname=~Billing.*`, "service=billing"}, Duration: 30 * time.Minute, Reason: "deploying"}},
		{"ack", Command{Verb: VerbAck}},
		{"ack 5f1c0b7e9a3d2c11", Command{Verb: VerbAck, Target: "5f1c0b7e9a3d2c11"}},
		{"incident summary", Command{Verb: VerbIncident}},
		{"incident summary inc-42", Command{Verb: VerbIncident, Target: "inc-42"}},
	}
	for _, tc := range cases {
		got, err := ParseCommand(tc.text)
		if err != nil {
			t.Errorf("%q: %v", tc.text, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q:\n got  %+v\n want %+v", tc.text, got, tc.want)
		}
	}
}

func TestParseCommandErrorsSayTheRightForm(t *testing.T) {
	cases := map[string]string{
		"status":                      "`status billing`",
		"scale billing":               "`scale billing 10`",
		"scale billing ten":           `"ten" is not a replica count`,
		"scale billing -1":            "not a replica count",
		"failover":                    "failover takes a datacenter",
		"failover a b c":              "failover takes a datacenter",
		"runbook":                     "`runbook list`",
		"runbook run x novalue":       `"novalue" is not key=value`,
		"runbook run x a=1 a=2":       "given twice",
		"silence":                     "at least one matcher",
		"silence for 1h":              "at least one matcher",
		"silence service=billing for": "`for` needs a duration",
		"silence service=b for -5m":   "not a duration",
		`silence service=~"("`:        "matcher",
		"ack a b":                     "at most one",
		"incident":                    "incident summary",
		"reboot everything":           `unknown command "reboot"`,
		`status "billing`:             "close every quote",
	}
	for text, want := range cases {
		_, err := ParseCommand(text)
		if !errors.Is(err, ErrCommand) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an ErrCommand saying %q", text, err, want)
		}
	}
}

func TestMutating(t *testing.T) {
	for text, want := range map[string]bool{"status billing": false, "help": false, "runbook list": false, "incident summary": false,
		"scale billing 3": true, "failover dc1": true, "runbook run x": true, "silence service=b": true, "ack": true} {
		c, err := ParseCommand(text)
		if err != nil {
			t.Fatal(err)
		}
		if c.Mutating() != want {
			t.Errorf("%q mutating %v, want %v", text, c.Mutating(), want)
		}
	}
}

// FuzzParseCommand: any text parses or gives an ErrCommand, never a panic;
// a parsed scale has a valid count and a parsed silence valid matchers.
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{"scale billing 10", `silence a="b c" for 2h because x`, "runbook run x a=1", "failover a to b", "ack", `"`, "incident summary 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		c, err := ParseCommand(text)
		if err != nil {
			if !errors.Is(err, ErrCommand) {
				t.Fatalf("%q: error %v is not an ErrCommand", text, err)
			}
			return
		}
		if c.Verb == VerbScale && (c.Replicas < 0 || c.Service == "") {
			t.Fatalf("%q: %+v", text, c)
		}
		if c.Verb == VerbSilence && (len(c.Matchers) == 0 || c.Duration <= 0) {
			t.Fatalf("%q: %+v", text, c)
		}
	})
}

func testRBAC() RBAC {
	return RBAC{Users: []ChatUser{
		{Slack: "UADMIN", Name: "root", Role: RolePlatformAdmin},
		{Slack: "UTA", Name: "tina", Role: RoleTenantAdmin, Tenants: []string{"payments"}},
		{Slack: "UUSER", Name: "ulla", Role: RoleUser, Tenants: []string{"payments"}},
	}}
}

func tenantOf(service string) (string, error) {
	switch service {
	case "billing":
		return "payments", nil
	case "catalog":
		return "shop", nil
	}
	return "", fmt.Errorf("no such service")
}

func TestAuthorize(t *testing.T) {
	r := testRBAC()
	cases := []struct {
		user, text string
		ok         bool
		why        string
	}{
		{"UNOBODY", "status billing", true, ""},
		{"UNOBODY", "incident summary", true, ""},
		{"UNOBODY", "scale billing 5", false, "no opspilot role"},
		{"UADMIN", "failover dc-east", true, ""},
		{"UADMIN", "scale catalog 5", true, ""},
		{"UADMIN", "silence alertname=X", true, ""},
		{"UTA", "scale billing 5", true, ""},
		{"UTA", "scale catalog 5", false, "catalog belongs to tenant shop"},
		{"UTA", "scale nosuch 5", false, "no such service"},
		{"UTA", "failover dc-east", false, "only a platform-admin"},
		{"UUSER", "scale billing 5", true, ""},
		{"UUSER", "silence service=billing for 1h", true, ""},
		{"UUSER", "silence alertname=X", false, "must name one of your services"},
		{"UUSER", "silence service=~bill.*", false, "must name one of your services"},
		{"UUSER", "silence service=catalog", false, "belongs to tenant shop"},
		{"UUSER", "runbook run billing-errors service=billing", true, ""},
		{"UUSER", "runbook run cleanup", false, "only a platform-admin"},
		{"UUSER", "ack", true, ""},
	}
	for _, tc := range cases {
		c, err := ParseCommand(tc.text)
		if err != nil {
			t.Fatal(err)
		}
		u, err := r.Authorize(tc.user, c, tenantOf)
		if tc.ok != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.why)) {
			t.Errorf("%s %q: %v, want ok=%v (%q)", tc.user, tc.text, err, tc.ok, tc.why)
		}
		if u.Slack != tc.user {
			t.Errorf("%s: recorded as %+v", tc.user, u)
		}
	}
	if u, _ := r.Lookup("UTA"); u.Who() != "slack:tina" {
		t.Errorf("who %q", u.Who())
	}
}

func TestMayApprove(t *testing.T) {
	r := testRBAC()
	admin, ta, user := r.Users[0], r.Users[1], r.Users[2]
	cases := []struct {
		u            ChatUser
		roles, users []string
		tenants      []string
		want         bool
	}{
		{admin, nil, nil, []string{"shop"}, true},
		{admin, nil, nil, nil, true},
		{ta, nil, nil, []string{"payments"}, true},
		{ta, nil, nil, []string{"shop"}, false},
		// Every tenant the run touches, not just one of them.
		{ta, nil, nil, []string{"payments", "shop"}, false},
		// Platform-wide (no tenant's service): not a tenant-admin's call.
		{ta, nil, nil, nil, false},
		{ta, []string{RoleTenantAdmin}, nil, nil, false},
		{user, nil, nil, []string{"payments"}, false},
		{user, []string{RoleUser}, nil, []string{"payments"}, true},
		{user, []string{RoleUser}, nil, []string{"shop"}, false},
		{user, nil, []string{"ulla"}, []string{"shop"}, true},
		{user, nil, []string{"UUSER"}, nil, true},
		{ta, []string{RolePlatformAdmin}, nil, []string{"payments"}, false},
	}
	for i, tc := range cases {
		if got := MayApprove(tc.u, tc.roles, tc.users, tc.tenants); got != tc.want {
			t.Errorf("case %d (%s, roles %v, users %v, tenants %v): %v", i, tc.u.Name, tc.roles, tc.users, tc.tenants, got)
		}
	}
}

func TestRBACValidate(t *testing.T) {
	var r RBAC
	err := config.Parse("chat.yaml", []byte(`users:
  - {slack: UA, role: platform-admin}
  - {slack: alice, role: user, tenants: [t]}
  - {slack: UB, role: tenant-admin}
  - {slack: UA, role: boss}
`), &r)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{`chat.yaml:3:`, `users[1].slack: "alice" is not a Slack user id`, "users[2].tenants: a tenant-admin needs the tenants",
		"users[3].slack: user UA is listed twice", `users[3].role: unknown role "boss"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}
