package console

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/go-chi/chi/v5"

	"moderator/statement"
	"moderator/store"
)

// userPage is a user's timeline: events, decisions, actions, appeals and
// overturns, newest first, a page at a time.
type userPage struct {
	basePage
	UserID  string
	Entries []store.TimelineEntry
	NextURL string
	Back    string
	Reasons []string // the overturn reason templates
}

// maxIDBytes bounds an id in a path or a filter (Stream's ids are at most
// 255 bytes).
const maxIDBytes = 255

func (c *Console) userPage(w http.ResponseWriter, r *http.Request) error {
	userID := chi.URLParam(r, "user_id")
	if userID == "" || len(userID) > maxIDBytes || strings.ContainsFunc(userID, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return &httpError{status: http.StatusNotFound, msg: "There is no such user id."}
	}
	cursor := r.URL.Query().Get("cursor")
	if len(cursor) > 256 {
		return &httpError{status: http.StatusBadRequest, msg: "cursor: not a page link of this timeline."}
	}
	f := store.AuditFilter{UserID: userID, Cursor: cursor, Limit: 50}
	page, err := c.store.Timeline(r.Context(), userID, f)
	if err != nil {
		return err
	}
	params := f.Params()
	params["screen"] = "user"
	if err := c.record(r, store.StaffAct{Act: store.ActTimeline, TargetUserID: userID, Params: params}); err != nil {
		return err
	}
	self := userURL(userID)
	p := userPage{basePage: c.base(r, "User "+userID), UserID: userID, Entries: page.Items, Back: self, Reasons: c.reasons.Overturned}
	if page.NextCursor != "" {
		p.NextURL = self + "?cursor=" + url.QueryEscape(page.NextCursor)
	}
	c.render(w, r, http.StatusOK, "user", p)
	return nil
}

// userURL is the console's page of a user.
func userURL(id string) string { return Prefix + "/users/" + url.PathEscape(id) }

// decisionPage is one decision: its evidence, the conversation, its
// actions with every attempt, and overturning them.
type decisionPage struct {
	basePage
	Evidence store.Evidence
	Back     string
	Reasons  []string
}

func (c *Console) decisionPage(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	ev, err := c.store.DecisionEvidence(r.Context(), id, 5)
	if err != nil {
		return err
	}
	if err := c.record(r, store.StaffAct{Act: store.ActViewDecision, TargetUserID: ev.Decision.UserID,
		Target: fmt.Sprintf("decision:%d", id), Params: map[string]any{"decision_id": id, "around": 5, "screen": "decision"}}); err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "decision", decisionPage{basePage: c.base(r, fmt.Sprintf("Decision %d", id)), Evidence: ev,
		Back: fmt.Sprintf("%s/decisions/%d", Prefix, id), Reasons: c.reasons.Overturned})
	return nil
}

// statementPage is the data of the "statement" template.
type statementPage struct {
	basePage
	Statement statement.Statement
}

// statementPage shows the statement of reasons of a decision, as the
// staff API's text/plain answer has it, for a reviewer to read or copy
// to the user.
func (c *Console) statementPage(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r)
	if err != nil {
		return err
	}
	ev, err := c.store.DecisionEvidence(r.Context(), id, 0)
	if err != nil {
		return err
	}
	st, err := statement.New(ev)
	if errors.Is(err, statement.ErrNothingDecided) {
		return &httpError{status: http.StatusNotFound, msg: fmt.Sprintf("Decision %d %s.", id, statement.ErrNothingDecided), err: err}
	}
	if err != nil {
		return err
	}
	if err := c.record(r, store.StaffAct{Act: store.ActViewStatement, TargetUserID: ev.Decision.UserID,
		Target: fmt.Sprintf("decision:%d", id), Params: map[string]any{"decision_id": id, "screen": "statement"}}); err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "statement", statementPage{basePage: c.base(r, fmt.Sprintf("Statement of reasons, decision %d", id)), Statement: st})
	return nil
}

// overturnForm is the data of the "overturnform" template.
type overturnForm struct {
	URL, CSRF, Back string
	Reasons         []string
}
