package console

import (
	"fmt"
	"net/http"
	"strings"

	"moderator/appeals"
)

// overturnTarget is what an overturn form concerns: one action, or every
// action of a decision (outside an appeal: the user and decision screens).
type overturnTarget struct {
	kind string // "action" or "decision"
	id   int64
}

func (t overturnTarget) String() string { return fmt.Sprintf("%s %d", t.kind, t.id) }

// overturnFrom returns the handler of POST /actions/{id}/overturn or
// /decisions/{id}/overturn: the reason (a template and/or free text) is
// checked, then what will be undone is shown; the confirmation's form
// (confirm=yes) carries it out, and the reviewer goes back to the page the
// form was on.
func (c *Console) overturnFrom(kind string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		id, err := pathID(r)
		if err != nil {
			return err
		}
		if c.overturner == nil {
			return &httpError{status: http.StatusServiceUnavailable, msg: "Overturning is not available in this deployment."}
		}
		t := overturnTarget{kind: kind, id: id}
		back := safeBack(r.PostForm.Get("back"))
		reason := r.PostForm.Get("reason")
		if r.PostForm.Get("confirm") != "yes" {
			if reason, err = c.reasons.reason(appeals.OutcomeOverturned, r.PostForm.Get("template"), r.PostForm.Get("free")); err != nil {
				return &httpError{status: http.StatusBadRequest, msg: err.Error()}
			}
		}
		if strings.TrimSpace(reason) == "" || len([]rune(reason)) > 2000 {
			return &httpError{status: http.StatusBadRequest, msg: "reason: required, at most 2000 characters."}
		}
		req := appeals.OverturnRequest{Reason: reason}
		if kind == "action" {
			req.ActionID = id
		} else {
			req.DecisionID = id
		}
		if r.PostForm.Get("confirm") != "yes" {
			preview, err := c.overturner.PreviewOverturn(r.Context(), req.ActionID, req.DecisionID)
			if err != nil {
				return err
			}
			c.render(w, r, http.StatusOK, "confirm-overturn", confirmPage{basePage: c.base(r, "Overturn "+t.String()+"?"),
				What: t.String(), Reason: reason, Preview: preview, PostURL: fmt.Sprintf("%s/%ss/%d/overturn", Prefix, kind, id), Back: back})
			return nil
		}
		sess := sessionFrom(r.Context())
		req.Reviewer, req.Role = sess.Subject, sess.Role
		if _, err := c.overturner.Overturn(r.Context(), req); err != nil {
			return err
		}
		http.Redirect(w, r, back, http.StatusSeeOther)
		return nil
	}
}
