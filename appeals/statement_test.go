package appeals_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"moderator/appeals"
	"moderator/policy"
	"moderator/statement"
	"moderator/store"
)

// callAccept is call with an Accept header; it returns the answer's
// Content-Type too.
func (a *api) callAccept(t *testing.T, target, tok, accept string) (int, string, []byte) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	rctx := chi.NewRouteContext()
	req = req.WithContext(context.WithValue(req.Context(), chi.RouteCtxKey, rctx))
	rec := httptest.NewRecorder()
	a.h.ServeHTTP(rec, req)
	a.conforms(t, req, rctx, rec)
	return rec.Code, rec.Header().Get("Content-Type"), rec.Body.Bytes()
}

// recordShadowOnly records an event on which only a shadow rule matched,
// and returns its decision's id.
func recordShadowOnly(t *testing.T, st *store.Store) int64 {
	t.Helper()
	body := []byte(`{"type":"message.new","cid":"messaging:general","message":{"id":"shadowed","text":"LOUD","user":{"id":"dave"}},"user":{"id":"dave"}}`)
	pe, err := policy.ParseEvent(body)
	if err != nil {
		t.Fatal(err)
	}
	res, err := st.RecordEvents(context.Background(), []store.EventRecord{{WebhookID: "shadow-1", BodySHA256: sha256.Sum256(body),
		Attempt: 1, APIKey: "key", Payload: body, Event: pe, Decision: &policy.Decision{RuleSetVersion: "v1",
			Matches: []policy.Match{{RuleID: "shouting", Mode: policy.ModeShadow, Evidence: map[string]any{}}}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var id int64
	if err := st.Pool().QueryRow(context.Background(), `SELECT id FROM decisions WHERE event_id = $1`, res[0].EventID).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestDecisionStatement: a viewer gets the statement of reasons of an
// applied ban as JSON or as text (by format, or by Accept), with the human
// review that followed; the read is a staff act. A decision that asked for
// no action has none (404), and a bad format is a 400 naming it.
func TestDecisionStatement(t *testing.T) {
	t.Parallel()
	st := ownStore(t)
	a := newAPI(t, st)
	ctx := context.Background()
	ev := &seedEvent{typ: "message.new", user: "alice", channel: "messaging:general", msg: "msg-1", rule: "links", actionType: "ban", outcome: "applied"}
	recordSeed(t, st, ev, 1)
	if _, err := st.RecordOutcome(ctx, store.OutcomeRow{ActionID: ev.actionID, Outcome: "applied"}); err != nil {
		t.Fatal(err)
	}
	var decisionID int64
	if err := st.Pool().QueryRow(ctx, `SELECT id FROM decisions WHERE event_id = $1`, ev.id).Scan(&decisionID); err != nil {
		t.Fatal(err)
	}
	ap, err := st.RecordAppeal(ctx, store.NewAppeal{UserID: "alice", DecisionID: decisionID, Statement: "it was a joke", Source: "email", RecordedBy: "rex"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.DecideAppealUpheld(ctx, ap.ID, "rex", "the link was spam", store.StaffAct{Actor: "rex", Role: "reviewer", Act: store.ActDecideAppeal}); err != nil {
		t.Fatal(err)
	}
	viewer := token(t, "vera@example.com", appeals.RoleViewer)
	path := fmt.Sprintf("/decisions/%d/statement", decisionID)

	var got statement.Statement
	a.getJSON(t, path, viewer, &got)
	if got.DecisionID != decisionID || got.UserID != "alice" || !got.Restricted || len(got.Restrictions) != 1 {
		t.Fatalf("statement %+v, want decision %d of alice, restricted by one action", got, decisionID)
	}
	if r := got.Restrictions[0]; r.ActionID != ev.actionID || r.Type != "ban" || r.Status != "applied" || r.AppliedAt == nil || !r.Permanent {
		t.Errorf("restriction %+v, want the applied, permanent ban %d", r, ev.actionID)
	}
	if got.Facts.Excerpt != "seeded message 1" || got.Facts.MessageID != "msg-1" {
		t.Errorf("facts %+v, want the recorded message msg-1", got.Facts)
	}
	if len(got.Grounds) != 1 || got.Grounds[0].RuleID != "links" || got.Grounds[0].RuleSetVersion != "v1" {
		t.Errorf("grounds %+v, want rule links of rule set v1", got.Grounds)
	}
	if rv := got.Automation.Reviews; len(rv) != 1 || rv[0].AppealID != ap.ID || rv[0].Outcome != "upheld" || rv[0].Reason != "the link was spam" {
		t.Errorf("reviews %+v, want appeal %d upheld", rv, ap.ID)
	}

	for _, c := range []struct{ target, accept string }{
		{path + "?format=text", ""},
		{path, "text/plain"},
		{path + "?format=text", "application/json"}, // format wins
	} {
		code, ctype, body := a.callAccept(t, c.target, viewer, c.accept)
		if code != http.StatusOK || !strings.HasPrefix(ctype, "text/plain") || string(body) != got.Text {
			t.Errorf("GET %s (Accept %q): %d %s, want 200 text/plain with the statement's text; got\n%s", c.target, c.accept, code, ctype, body)
		}
	}
	if code, ctype, _ := a.callAccept(t, path, viewer, "application/json, text/plain"); code != http.StatusOK || ctype != "application/json" {
		t.Errorf("Accept json first: %d %s, want 200 application/json", code, ctype)
	}
	if !strings.Contains(got.Text, "a person reviewed the decision and upheld it") {
		t.Errorf("text does not tell the upheld appeal:\n%s", got.Text)
	}

	var n int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM staff_audit WHERE actor = 'vera@example.com' AND act = 'view_statement'
		AND target = $1 AND target_user_id = 'alice'`, fmt.Sprintf("decision:%d", decisionID)).Scan(&n); err != nil || n != 5 {
		t.Errorf("staff audit rows of the five reads: %d (%v), want 5", n, err)
	}

	shadow := recordShadowOnly(t, st)
	for _, c := range []struct {
		target, code, field, msg string
		status                   int
	}{
		{fmt.Sprintf("/decisions/%d/statement", shadow), appeals.CodeNotFound, "", "no statement of reasons is owed", http.StatusNotFound},
		{"/decisions/999999/statement", appeals.CodeNotFound, "", "decision 999999: not found", http.StatusNotFound},
		{path + "?format=xml", appeals.CodeInvalidParameter, "format", "format: must be one of json, text", http.StatusBadRequest},
	} {
		code, body := a.call(t, http.MethodGet, c.target, viewer, "")
		e := decodeErr(t, body)
		if code != c.status || e.Error.Code != c.code || e.Error.Field != c.field || !strings.Contains(e.Error.Message, c.msg) {
			t.Errorf("GET %s: %d %s, want %d %s naming %q", c.target, code, body, c.status, c.code, c.msg)
		}
	}
	var raw json.RawMessage
	a.getJSON(t, path, viewer, &raw) // the document's schema holds the answer (conforms)
}

// TestStatementAfterErasure: once the user's content is erased, the
// statement still says what was decided, on which rule, and how to seek
// redress, and shows the redaction marker where their text was.
func TestStatementAfterErasure(t *testing.T) {
	t.Parallel()
	st := ownStore(t)
	a := newAPI(t, st)
	ctx := context.Background()
	ev := &seedEvent{typ: "message.new", user: "erin", channel: "messaging:general", msg: "msg-9", rule: "links", actionType: "mute", outcome: "applied"}
	recordSeed(t, st, ev, 9)
	if _, err := st.RecordOutcome(ctx, store.OutcomeRow{ActionID: ev.actionID, Outcome: "applied"}); err != nil {
		t.Fatal(err)
	}
	var decisionID int64
	if err := st.Pool().QueryRow(ctx, `SELECT id FROM decisions WHERE event_id = $1`, ev.id).Scan(&decisionID); err != nil {
		t.Fatal(err)
	}
	if _, err := st.EraseUser(ctx, "erin", store.StaffAct{Actor: "ada", Role: "admin", Reason: "the user asked"}, 0); err != nil {
		t.Fatal(err)
	}
	var got statement.Statement
	a.getJSON(t, fmt.Sprintf("/decisions/%d/statement", decisionID), token(t, "vera@example.com", appeals.RoleViewer), &got)
	if got.Facts.Excerpt != store.Redacted {
		t.Errorf("excerpt after erasure: %q, want the marker %q", got.Facts.Excerpt, store.Redacted)
	}
	if len(got.Restrictions) != 1 || got.Restrictions[0].Type != "mute" || got.Restrictions[0].Status != "applied" ||
		len(got.Grounds) != 1 || got.Grounds[0].RuleID != "links" || !strings.Contains(got.Restrictions[0].Description, "A mute: you may not post anywhere in the app, with no end date.") {
		t.Errorf("after erasure: restrictions %+v, grounds %+v; want the applied mute on rule links", got.Restrictions, got.Grounds)
	}
	if strings.Contains(got.Text, "seeded message") || !strings.Contains(got.Text, `"`+store.Redacted+`"`) ||
		!strings.Contains(got.Text, "5. How you can seek redress") {
		t.Errorf("text after erasure shows the erased text, or not the marker, or lacks the redress:\n%s", got.Text)
	}
}
