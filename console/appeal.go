package console

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"moderator/appeals"
	"moderator/store"
)

// strikeWindow is how far back the appeal screen lists the actions taken
// against the user.
const strikeWindow = 30 * 24 * time.Hour

// appealPage is the appeal screen: everything a reviewer needs on one
// page.
type appealPage struct {
	basePage
	Appeal   store.Appeal
	Age      string
	Mine     bool
	Appealed []store.ActionDetail // the actions appealed, with every attempt
	// Reversing: an overturn's reversals have not all ended; the actions
	// refresh themselves (htmx) until they have.
	Reversing bool
	Evidence  *store.Evidence      // the decision that asked for them
	Strikes   []store.ActionDetail // actions against the user in the last 30 days
	Timeline  []store.TimelineEntry
	Earlier   []store.Appeal
	Notes     []store.AppealNote
	Reasons   *Reasons
	PrevID    int64 // the pending appeals around this one, oldest first (j/k)
	NextID    int64
	Pending   bool
	Back      string
	Error     string // a refused decision's message, shown by the form
}

func (c *Console) appealPage(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	p, err := c.loadAppeal(r, id)
	if err != nil {
		return err
	}
	if err := c.record(r, store.StaffAct{Act: store.ActViewAppeal, TargetUserID: p.Appeal.UserID,
		Target: fmt.Sprintf("appeal:%d", id), Params: map[string]any{"appeal_id": id, "screen": "appeal"}}); err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "appeal", p)
	return nil
}

// loadAppeal gathers the appeal screen.
func (c *Console) loadAppeal(r *http.Request, id int64) (appealPage, error) {
	ctx := r.Context()
	a, err := c.store.Appeal(ctx, id)
	if err != nil {
		return appealPage{}, err
	}
	now := c.now()
	p := appealPage{basePage: c.base(r, fmt.Sprintf("Appeal %d", id)), Appeal: a, Age: ago(now, a.CreatedAt),
		Reasons: c.reasons, Pending: a.Decision == nil, Back: fmt.Sprintf("%s/appeals/%d", Prefix, id)}
	p.Mine = a.AssignedTo != "" && a.AssignedTo == p.Subject

	if p.Appealed, p.Evidence, err = c.appealed(ctx, a, 5); err != nil {
		return appealPage{}, err
	}
	p.Reversing = reversing(p.Appealed)
	strikes, err := c.store.SearchActions(ctx, store.AuditFilter{UserID: a.UserID, From: now.Add(-strikeWindow), Limit: 50})
	if err != nil {
		return appealPage{}, err
	}
	for _, s := range strikes.Items {
		if s.ReversesActionID == 0 {
			p.Strikes = append(p.Strikes, s)
		}
	}
	tl, err := c.store.Timeline(ctx, a.UserID, store.AuditFilter{Limit: 20})
	if err != nil {
		return appealPage{}, err
	}
	p.Timeline = tl.Items
	earlier, err := c.store.ListAppeals(ctx, store.AppealFilter{UserID: a.UserID, Limit: 20})
	if err != nil {
		return appealPage{}, err
	}
	for _, e := range earlier.Items {
		if e.ID != a.ID {
			p.Earlier = append(p.Earlier, e)
		}
	}
	if p.Notes, err = c.store.AppealNotes(ctx, id); err != nil {
		return appealPage{}, err
	}
	p.PrevID, p.NextID, err = c.neighbours(r, a)
	return p, err
}

// appealed reads what appeal a is about: the appealed actions, with
// every attempt and reversal, and the evidence of their decision (with
// around messages each side).
func (c *Console) appealed(ctx context.Context, a store.Appeal, around int) ([]store.ActionDetail, *store.Evidence, error) {
	var acts []store.ActionDetail
	decisionID := a.DecisionID
	if a.ActionID != 0 {
		act, err := c.store.Action(ctx, a.ActionID)
		if err != nil {
			return nil, nil, err
		}
		acts, decisionID = []store.ActionDetail{act}, act.DecisionID
	}
	if decisionID == 0 {
		return acts, nil, nil
	}
	ev, err := c.store.DecisionEvidence(ctx, decisionID, around)
	if err != nil {
		return nil, nil, err
	}
	if a.ActionID == 0 {
		for _, act := range ev.Actions {
			if act.ReversesActionID == 0 {
				acts = append(acts, act)
			}
		}
	}
	return acts, &ev, nil
}

// reversing reports whether an overturned action's reversal has not ended.
func reversing(actions []store.ActionDetail) bool {
	for _, a := range actions {
		if r := a.Reversal; r != nil && r.ReversalActionID != 0 && r.ReversalStatus == store.OutcomePending {
			return true
		}
	}
	return false
}

// appealedActions answers the appeal screen's request for its appealed
// actions again, while a reversal is in progress.
func (c *Console) appealedActions(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	a, err := c.store.Appeal(r.Context(), id)
	if err != nil {
		return err
	}
	p := appealPage{basePage: c.base(r, ""), Appeal: a}
	if p.Appealed, _, err = c.appealed(r.Context(), a, 0); err != nil {
		return err
	}
	p.Reversing = reversing(p.Appealed)
	if err := c.record(r, store.StaffAct{Act: store.ActViewAppeal, TargetUserID: a.UserID, Target: fmt.Sprintf("appeal:%d", id),
		Params: map[string]any{"appeal_id": id, "screen": "appeal", "part": "actions"}}); err != nil {
		return err
	}
	c.renderFragment(w, r, "appeal", "appealed", p)
	return nil
}

// neighbours finds the pending appeals before and after a in the queue's
// order (oldest first), for j/k; 0 when there is none.
func (c *Console) neighbours(r *http.Request, a store.Appeal) (prev, next int64, err error) {
	page, err := c.store.ListAppeals(r.Context(), store.AppealFilter{Status: store.AppealPending, Sort: store.SortOldest, Limit: store.MaxPageSize})
	if err != nil {
		return 0, 0, err
	}
	for i, x := range page.Items {
		if x.ID != a.ID {
			continue
		}
		if i > 0 {
			prev = page.Items[i-1].ID
		}
		if i+1 < len(page.Items) {
			next = page.Items[i+1].ID
		}
		return prev, next, nil
	}
	// Not pending (or past the first page): next is the oldest pending.
	for _, x := range page.Items {
		if x.ID != a.ID {
			return 0, x.ID, nil
		}
	}
	return 0, 0, nil
}

// confirmPage shows what an overturn will undo before it is done; its
// form posts the same request again to PostURL, with confirm=yes.
type confirmPage struct {
	basePage
	What    string // "appeal 3", "action 7"
	UserID  string
	Reason  string
	Preview []appeals.ReversalResult
	PostURL string
	Outcome string // for an appeal's decision: overturned
	Back    string
}

// decide answers the decision forms. Upheld is decided at once;
// overturned first shows what will be undone, and is carried out when
// that page's form comes back with confirm=yes.
func (c *Console) decide(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	outcome := r.PostForm.Get("outcome")
	if outcome != appeals.OutcomeUpheld && outcome != appeals.OutcomeOverturned {
		return &httpError{status: http.StatusBadRequest, msg: "outcome: must be upheld or overturned."}
	}
	reason := r.PostForm.Get("reason")
	if r.PostForm.Get("confirm") != "yes" {
		reason, err = c.reasons.reason(outcome, r.PostForm.Get("template"), r.PostForm.Get("free"))
	}
	if err == nil && (strings.TrimSpace(reason) == "" || len([]rune(reason)) > 2000) {
		err = fmt.Errorf("reason: required, at most 2000 characters")
	}
	if err != nil {
		p, lerr := c.loadAppeal(r, id)
		if lerr != nil {
			return lerr
		}
		p.Error = err.Error()
		c.render(w, r, http.StatusBadRequest, "appeal", p)
		return nil
	}
	if c.overturner == nil && outcome == appeals.OutcomeOverturned {
		return &httpError{status: http.StatusServiceUnavailable, msg: "Overturning is not available in this deployment."}
	}
	sess := sessionFrom(r.Context())
	if outcome == appeals.OutcomeOverturned && r.PostForm.Get("confirm") != "yes" {
		return c.confirmOverturn(w, r, id, reason)
	}
	who := appeals.Staff{Subject: sess.Subject, Role: appeals.Role(sess.Role)}
	var ov appeals.Overturner
	if c.overturner != nil {
		ov = c.overturner
	}
	if _, err := appeals.Decide(r.Context(), c.store, ov, who, id, outcome, reason); err != nil {
		return err
	}
	http.Redirect(w, r, fmt.Sprintf("%s/appeals/%d", Prefix, id), http.StatusSeeOther)
	return nil
}

func (c *Console) confirmOverturn(w http.ResponseWriter, r *http.Request, id int64, reason string) error {
	a, err := c.store.Appeal(r.Context(), id)
	if err != nil {
		return err
	}
	if a.Decision != nil {
		return store.ErrAlreadyDecided
	}
	preview, err := c.overturner.PreviewOverturn(r.Context(), a.ActionID, decisionOnly(a))
	if err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "confirm-overturn", confirmPage{basePage: c.base(r, fmt.Sprintf("Overturn appeal %d?", id)),
		What: fmt.Sprintf("appeal %d", id), UserID: a.UserID, Reason: reason, Preview: preview,
		PostURL: fmt.Sprintf("%s/appeals/%d/decide", Prefix, id), Outcome: appeals.OutcomeOverturned,
		Back: fmt.Sprintf("%s/appeals/%d", Prefix, id)})
	return nil
}

// decisionOnly is the decision an appeal is about when it is not about one
// action of it.
func decisionOnly(a store.Appeal) int64 {
	if a.ActionID != 0 {
		return 0
	}
	return a.DecisionID
}

func (c *Console) addNote(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	sess := sessionFrom(r.Context())
	body := r.PostForm.Get("body")
	if _, err := c.store.AddAppealNote(r.Context(), id, sess.Subject, body,
		store.StaffAct{Role: sess.Role, Params: map[string]any{"appeal_id": id, "via": "console"}}); err != nil {
		return err
	}
	http.Redirect(w, r, Prefix+"/appeals/"+strconv.FormatInt(id, 10)+"#notes", http.StatusSeeOther)
	return nil
}
