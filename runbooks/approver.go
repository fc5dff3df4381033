package runbooks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"opspilot/api"
)

// Slack action ids of approval buttons.
const (
	ActionApprove = "opspilot_approve"
	ActionDeny    = "opspilot_deny"
)

// SlackApprover asks for a runbook step's approval in Slack: a message
// with Approve and Deny buttons; the click (POST /slack/interactivity,
// signed) decides, if the person clicking may approve (MayApprove). The
// requests live in Store while their runs wait, so that a click reaching
// any control-plane replica decides them.
type SlackApprover struct {
	Client   *slack.Client
	Channel  string
	RBAC     RBAC
	Verifier *SlackVerifier
	// Store keeps the pending requests; nil: this process's memory.
	Store ApprovalStore
	// TenantOf is the tenant of a service; approvals are bound to the
	// tenants of the services the run acts on. nil: every run is
	// platform-wide (only platform-admins and listed users approve).
	TenantOf func(ctx context.Context, service string) (string, error)
	Log      *slog.Logger

	once sync.Once
}

func (s *SlackApprover) store() ApprovalStore {
	s.once.Do(func() {
		if s.Store == nil {
			s.Store = &MemoryApprovals{}
		}
	})
	return s.Store
}

// RequestApproval implements Approver: it stores and posts the request
// and waits for a decision or ctx.
func (s *SlackApprover) RequestApproval(ctx context.Context, a Approval) (string, error) {
	if s.Client == nil || s.Channel == "" {
		return "", fmt.Errorf("%w: no Slack channel for approvals (runbooks.chat.approval_channel and a bot token)", ErrDenied)
	}
	st := s.store()
	rec := ApprovalRecord{ID: randomApprovalID(), Approval: a, Tenants: s.tenants(ctx, a.Services), State: ApprovalPending, Created: time.Now()}
	if err := st.Create(ctx, rec); err != nil {
		return "", fmt.Errorf("%w: the approval request could not be stored: %v", ErrDenied, err)
	}
	// The record goes when the run stops waiting; the Slack message says
	// what happened.
	defer func() {
		if err := st.Delete(context.WithoutCancel(ctx), rec.ID); err != nil && s.Log != nil {
			s.Log.Warn("approval request not removed from the store", "id", rec.ID, "err", err)
		}
	}()
	text := fmt.Sprintf("*Approval needed* — runbook `%s`, step `%s` (run %s): %s\nWho may approve: %s", a.Runbook, a.Step, a.RunID, a.Message, approversOf(rec))
	blocks := []slack.Block{
		slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, text, false, false), nil, nil),
		slack.NewActionBlock("opspilot_approval",
			slack.NewButtonBlockElement(ActionApprove, rec.ID, slack.NewTextBlockObject(slack.PlainTextType, "Approve", false, false)).WithStyle(slack.StylePrimary),
			slack.NewButtonBlockElement(ActionDeny, rec.ID, slack.NewTextBlockObject(slack.PlainTextType, "Deny", false, false)).WithStyle(slack.StyleDanger)),
	}
	ch, ts, err := s.Client.PostMessageContext(ctx, s.Channel, slack.MsgOptionText(text, false), slack.MsgOptionBlocks(blocks...))
	if err != nil {
		return "", fmt.Errorf("%w: the approval request could not be posted: %v", ErrDenied, err)
	}
	// A click may already have decided it; keep the decision.
	if _, _, err := st.Update(ctx, rec.ID, func(r *ApprovalRecord) bool { r.Channel, r.TS = ch, ts; return true }); err != nil && s.Log != nil {
		s.Log.Warn("approval request: message location not stored", "id", rec.ID, "err", err)
	}
	got, err := st.Wait(ctx, rec.ID)
	if err != nil {
		// Nobody answered in time, or the run was stopped: close the
		// request unless a click decided it at the last moment.
		state, why := ApprovalExpired, "nobody answered before the step's timeout"
		text := fmt.Sprintf("Step `%s` of runbook `%s` (run %s) expired: nobody decided before the step's timeout.", a.Step, a.Runbook, a.RunID)
		switch {
		case ctx.Err() == nil:
			state, why = ApprovalInterrupted, "the request was lost from the control-plane store: "+err.Error()
			text = fmt.Sprintf("Step `%s` of runbook `%s` (run %s) was not decided: the request was lost from the control-plane store (%v). Run the runbook again if it is still needed.", a.Step, a.Runbook, a.RunID, err)
		case !errors.Is(ctx.Err(), context.DeadlineExceeded):
			state, why = ApprovalInterrupted, "the run was stopped before anyone answered"
			text = fmt.Sprintf("Step `%s` of runbook `%s` (run %s) was not decided: its run was stopped (the control plane shut down or lost its leadership). Run the runbook again if it is still needed.", a.Step, a.Runbook, a.RunID)
		}
		bg := context.WithoutCancel(ctx)
		r, closed, uerr := st.Update(bg, rec.ID, func(r *ApprovalRecord) bool {
			if r.State != ApprovalPending {
				return false
			}
			r.State, r.Decided = state, time.Now()
			return true
		})
		if uerr != nil || closed {
			s.closeMessage(bg, ch, ts, text)
			return "", fmt.Errorf("%w: %s", ErrDenied, why)
		}
		got = r
	}
	if got.State == ApprovalApproved {
		return got.By, nil
	}
	return "", fmt.Errorf("%w by %s", ErrDenied, got.By)
}

// tenants are the tenants of services; nil (platform-wide) when there
// are none or one cannot be looked up.
func (s *SlackApprover) tenants(ctx context.Context, services []string) []string {
	if s.TenantOf == nil || len(services) == 0 {
		return nil
	}
	var out []string
	for _, svc := range services {
		t, err := s.TenantOf(ctx, svc)
		if err != nil || t == "" {
			if s.Log != nil {
				s.Log.Warn("approval: tenant of a service unknown; only platform-admins and listed users may approve", "service", svc, "err", err)
			}
			return nil
		}
		out = append(out, t)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// closeMessage replaces the buttons of a request with text.
func (s *SlackApprover) closeMessage(ctx context.Context, channel, ts, text string) {
	if s.Client == nil || ts == "" {
		return
	}
	if _, _, _, err := s.Client.UpdateMessageContext(ctx, channel, ts, slack.MsgOptionText(text, false), slack.MsgOptionBlocks()); err != nil && s.Log != nil {
		s.Log.Warn("slack: could not update the approval message", "err", err)
	}
}

// Routes is POST /slack/interactivity (Slack signs it).
func (s *SlackApprover) Routes() []api.Route {
	return []api.Route{{Pattern: "POST /slack/interactivity", Name: "slack_interactivity", Role: "", Handler: http.HandlerFunc(s.interactivity)}}
}

func (s *SlackApprover) interactivity(w http.ResponseWriter, r *http.Request) {
	body, err := s.Verifier.Verify(r)
	if err != nil {
		api.WriteError(w, http.StatusUnauthorized, "slack signature: "+err.Error())
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil || form.Get("payload") == "" {
		api.WriteError(w, http.StatusBadRequest, "interactivity: want a form with a payload field")
		return
	}
	var cb slack.InteractionCallback
	if err := json.Unmarshal([]byte(form.Get("payload")), &cb); err != nil {
		api.WriteError(w, http.StatusBadRequest, "interactivity: payload: "+err.Error())
		return
	}
	if cb.Type != slack.InteractionTypeBlockActions || len(cb.ActionCallback.BlockActions) == 0 {
		api.WriteError(w, http.StatusBadRequest, "interactivity: not a button click (block_actions)")
		return
	}
	act := cb.ActionCallback.BlockActions[0]
	if act.ActionID != ActionApprove && act.ActionID != ActionDeny {
		api.WriteError(w, http.StatusBadRequest, "interactivity: not an opspilot approval button ("+act.ActionID+")")
		return
	}
	reply := s.decide(r.Context(), act.Value, act.ActionID == ActionApprove, cb.User.ID)
	api.WriteJSON(w, http.StatusOK, map[string]any{"response_type": "ephemeral", "replace_original": false, "text": reply})
}

// decide applies a click and says what happened.
func (s *SlackApprover) decide(ctx context.Context, id string, approve bool, userID string) string {
	st := s.store()
	rec, err := st.Get(ctx, id)
	switch {
	case errors.Is(err, ErrApprovalNotFound):
		return "This approval is no longer pending (decided, timed out, or its run ended with its control plane)."
	case err != nil:
		return "The approval could not be read from the control-plane store (" + err.Error() + "); try again."
	case rec.State != ApprovalPending:
		return fmt.Sprintf("This approval was already %s%s.", rec.State, suffixBy(rec.By))
	}
	u, known := s.RBAC.Lookup(userID)
	if !known || !MayApprove(u, rec.Approval.Roles, rec.Approval.Users, rec.Tenants) {
		return fmt.Sprintf("You (%s) may not approve step %s of runbook %s; it needs %s.", userID, rec.Approval.Step, rec.Approval.Runbook, approversOf(rec))
	}
	state, verb := ApprovalApproved, "approved"
	if !approve {
		state, verb = ApprovalDenied, "denied"
	}
	rec, applied, err := st.Update(ctx, id, func(r *ApprovalRecord) bool {
		if r.State != ApprovalPending {
			return false
		}
		r.State, r.By, r.Decided = state, u.Who(), time.Now()
		return true
	})
	switch {
	case errors.Is(err, ErrApprovalNotFound):
		return "This approval is no longer pending (decided, timed out, or its run ended with its control plane)."
	case err != nil:
		return "The decision could not be stored (" + err.Error() + "); try again."
	case !applied:
		return fmt.Sprintf("This approval was already %s%s.", rec.State, suffixBy(rec.By))
	}
	s.closeMessage(ctx, rec.Channel, rec.TS, fmt.Sprintf("Step `%s` of runbook `%s` %s by %s.", rec.Approval.Step, rec.Approval.Runbook, verb, u.Who()))
	return fmt.Sprintf("Step %s %s.", rec.Approval.Step, verb)
}

func suffixBy(by string) string {
	if by == "" {
		return ""
	}
	return " by " + by
}

// approversOf says who may decide a request.
func approversOf(r ApprovalRecord) string {
	a := r.Approval
	scope := "of the tenants " + strings.Join(r.Tenants, ", ")
	if len(r.Tenants) == 1 {
		scope = "of tenant " + r.Tenants[0]
	}
	var who []string
	switch {
	case len(r.Tenants) == 0:
		// Platform-wide: roles other than platform-admin do not count.
		who = append(who, a.Users...)
	case len(a.Roles)+len(a.Users) == 0:
		who = append(who, "a tenant-admin "+scope)
	default:
		for _, role := range a.Roles {
			who = append(who, "a "+role+" "+scope)
		}
		who = append(who, a.Users...)
	}
	return strings.Join(append(who, "a platform-admin"), " or ")
}

func randomApprovalID() string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		panic(errors.New("crypto/rand failed"))
	}
	return hex.EncodeToString(b)
}
