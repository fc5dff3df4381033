package runbooks

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/prometheus/alertmanager/matcher/compat"

	"opspilot/config"
)

// Chat roles, from the seed platform's tenant / cluster / user model.
const (
	// RolePlatformAdmin may do everything, in every tenant and
	// datacenter (failover included).
	RolePlatformAdmin = "platform-admin"
	// RoleTenantAdmin may act on its tenants' services and approve their
	// runbook steps.
	RoleTenantAdmin = "tenant-admin"
	// RoleUser may act on its tenants' services.
	RoleUser = "user"
)

// ChatUser maps a Slack user to a role.
type ChatUser struct {
	// Slack is the Slack user id (U0123ABCD), not the display name.
	Slack string `yaml:"slack"`
	// Name is how opspilot records the user (who); default the id.
	Name string `yaml:"name"`
	Role string `yaml:"role"`
	// Tenants the user acts for (tenant-admin and user).
	Tenants []string `yaml:"tenants"`
}

// Who is the name recorded with the user's actions.
func (u ChatUser) Who() string {
	if u.Name != "" {
		return "slack:" + u.Name
	}
	return "slack:" + u.Slack
}

// RBAC is the chat users' roles (config `runbooks.chat.users`).
type RBAC struct {
	Users []ChatUser `yaml:"users"`
}

// Validate reports problems with YAML field paths.
func (r RBAC) Validate() []config.Problem {
	var ps []config.Problem
	seen := map[string]bool{}
	for i, u := range r.Users {
		f := fmt.Sprintf("users[%d].", i)
		if !strings.HasPrefix(u.Slack, "U") && !strings.HasPrefix(u.Slack, "W") {
			ps = append(ps, config.Problem{Field: f + "slack", Msg: fmt.Sprintf("%q is not a Slack user id (U0123ABCD: the member id in the user's Slack profile)", u.Slack)})
		}
		if seen[u.Slack] {
			ps = append(ps, config.Problem{Field: f + "slack", Msg: fmt.Sprintf("user %s is listed twice", u.Slack)})
		}
		seen[u.Slack] = true
		switch u.Role {
		case RolePlatformAdmin:
		case RoleTenantAdmin, RoleUser:
			if len(u.Tenants) == 0 {
				ps = append(ps, config.Problem{Field: f + "tenants", Msg: "a " + u.Role + " needs the tenants it acts for"})
			}
		default:
			ps = append(ps, config.Problem{Field: f + "role", Msg: fmt.Sprintf("unknown role %q; use platform-admin, tenant-admin or user", u.Role)})
		}
	}
	return ps
}

// ErrForbidden is returned when a user may not run a command; the
// message says why and who may.
var ErrForbidden = errors.New("not allowed")

// Lookup finds the user with a Slack id.
func (r RBAC) Lookup(slackID string) (ChatUser, bool) {
	for _, u := range r.Users {
		if u.Slack == slackID {
			return u, true
		}
	}
	return ChatUser{}, false
}

// Authorize decides whether the Slack user may run c. Commands that
// change nothing (status, help, runbook list, incident summary) are open
// to everyone in the workspace. tenantOf returns the tenant of a service
// (an error when there is no such service). It returns the user the
// action is recorded as.
func (r RBAC) Authorize(slackID string, c Command, tenantOf func(service string) (string, error)) (ChatUser, error) {
	u, known := r.Lookup(slackID)
	if !known {
		u = ChatUser{Slack: slackID}
	}
	if !c.Mutating() {
		return u, nil
	}
	if !known {
		return u, fmt.Errorf("%w: %s changes things and you (%s) have no opspilot role; ask a platform admin to add you under runbooks.chat.users", ErrForbidden, c.Verb, slackID)
	}
	if u.Role == RolePlatformAdmin {
		return u, nil
	}
	own := func(service string) error {
		t, err := tenantOf(service)
		if err != nil {
			return fmt.Errorf("service %s: %w", service, err)
		}
		if !slices.Contains(u.Tenants, t) {
			return fmt.Errorf("%w: %s belongs to tenant %s; you (%s) act for %s", ErrForbidden, service, t, u.Role, strings.Join(u.Tenants, ", "))
		}
		return nil
	}
	switch c.Verb {
	case VerbFailover:
		return u, fmt.Errorf("%w: failing over a datacenter moves every tenant's services; only a platform-admin may", ErrForbidden)
	case VerbScale:
		return u, own(c.Service)
	case VerbAck:
		return u, nil // acknowledging records who handles an alert; it changes nothing else
	case VerbSilence:
		svc := silencedService(c.Matchers)
		if svc == "" {
			return u, fmt.Errorf("%w: a %s's silence must name one of your services with service=NAME (it would mute other tenants' alerts)", ErrForbidden, u.Role)
		}
		return u, own(svc)
	case VerbRunbook:
		svc := c.Params["service"]
		if svc == "" {
			return u, fmt.Errorf("%w: runbook %s takes no service parameter, so only a platform-admin may run it from chat", ErrForbidden, c.Runbook)
		}
		return u, own(svc)
	}
	return u, fmt.Errorf("%w: %s", ErrForbidden, c.Verb)
}

// silencedService is the service an equality matcher pins, or "".
func silencedService(matchers []string) string {
	for _, s := range matchers {
		ms, err := compat.Matchers(s, "chat")
		if err != nil {
			continue
		}
		for _, m := range ms {
			if m.Name == "service" && m.Type.String() == "=" && m.Value != "" {
				return m.Value
			}
		}
	}
	return ""
}

// MayApprove reports whether u may approve a step that names roles and
// users (Slack ids or names). A platform-admin always may, and so does a
// listed user. Anyone else needs one of the roles (tenant-admin when the
// step lists nobody) and must act for every one of tenants, the tenants
// of the services the run acts on; a run that acts on no tenant's service
// (a drain, a failover) is platform-wide, so only platform-admins and
// listed users may approve it.
func MayApprove(u ChatUser, roles, users []string, tenants []string) bool {
	if u.Role == RolePlatformAdmin {
		return true
	}
	if slices.Contains(users, u.Slack) || (u.Name != "" && slices.Contains(users, u.Name)) {
		return true
	}
	if len(tenants) == 0 {
		return false
	}
	for _, t := range tenants {
		if !slices.Contains(u.Tenants, t) {
			return false
		}
	}
	if len(roles) == 0 && len(users) == 0 {
		return u.Role == RoleTenantAdmin
	}
	return slices.Contains(roles, u.Role)
}
