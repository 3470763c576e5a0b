package appeals_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"

	"moderator/appeals"
	"moderator/store"
)

// TestAppealRecordListDecide: a reviewer records an appeal against an
// action, finds it pending in the list, decides it upheld (with a reason,
// which is required), and a second decision is a 409; every step leaves
// its staff audit row, and nothing is written for a refused request.
func TestAppealRecordListDecide(t *testing.T) {
	t.Parallel()
	st := ownStore(t)
	seeded := seedHistory(t, st, 3)
	ev := seeded[0] // alice, with an action
	if ev.actionID == 0 || ev.user != "alice" {
		t.Fatalf("seed: %+v", ev)
	}
	a := newAPI(t, st)
	rev := token(t, "rita", appeals.RoleReviewer)
	viewer := token(t, "vic", appeals.RoleViewer)

	statement := "I was quoting a film'); DROP TABLE appeals; --"
	body := fmt.Sprintf(`{"user_id":"alice","action_id":%d,"statement":%q,"source":"in_app"}`, ev.actionID, statement)
	code, raw := a.call(t, http.MethodPost, "/appeals", rev, body)
	if code != http.StatusCreated {
		t.Fatalf("record: %d %s", code, raw)
	}
	var ap store.Appeal
	if err := json.Unmarshal(raw, &ap); err != nil {
		t.Fatal(err)
	}
	if ap.ID == 0 || ap.UserID != "alice" || ap.ActionID != ev.actionID || ap.Statement != statement || ap.RecordedBy != "rita" || ap.Status != "pending" {
		t.Errorf("recorded %+v", ap)
	}

	// Refused: another user's action, a missing action, a viewer.
	for _, tc := range []struct {
		tok, body string
		status    int
	}{
		{rev, fmt.Sprintf(`{"user_id":"bob","action_id":%d,"statement":"s","source":"email"}`, ev.actionID), http.StatusBadRequest},
		{rev, `{"user_id":"alice","action_id":999999,"statement":"s","source":"email"}`, http.StatusNotFound},
		{viewer, body, http.StatusForbidden},
	} {
		if code, raw := a.call(t, http.MethodPost, "/appeals", tc.tok, tc.body); code != tc.status {
			t.Errorf("record %s: %d %s, want %d", tc.body, code, raw, tc.status)
		}
	}

	var list struct{ Items []store.Appeal }
	a.getJSON(t, "/appeals?status=pending&user_id=alice", viewer, &list)
	if len(list.Items) != 1 || list.Items[0].ID != ap.ID {
		t.Fatalf("pending appeals of alice: %+v", list.Items)
	}

	path := fmt.Sprintf("/appeals/%d/decision", ap.ID)
	for _, bad := range []string{`{"outcome":"upheld"}`, `{"outcome":"upheld","reason":"   "}`} {
		code, raw := a.call(t, http.MethodPost, path, rev, bad)
		if code != http.StatusBadRequest || decodeErr(t, raw).Error.Field != "reason" {
			t.Errorf("decide %s: %d %s, want 400 on reason", bad, code, raw)
		}
	}
	code, raw = a.call(t, http.MethodPost, path, rev, `{"outcome":"upheld","reason":"the link was spam"}`)
	if code != http.StatusCreated {
		t.Fatalf("decide: %d %s", code, raw)
	}
	var res struct {
		AppealID int64                 `json:"appeal_id"`
		Outcome  string                `json:"outcome"`
		Decision *store.AppealDecision `json:"decision"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	if res.AppealID != ap.ID || res.Outcome != "upheld" || res.Decision == nil || res.Decision.Reviewer != "rita" || res.Decision.Reason != "the link was spam" {
		t.Errorf("decision %s", raw)
	}
	for _, again := range []string{`{"outcome":"upheld","reason":"again"}`, `{"outcome":"overturned","reason":"changed my mind"}`} {
		code, raw := a.call(t, http.MethodPost, path, rev, again)
		if code != http.StatusConflict || decodeErr(t, raw).Error.Code != appeals.CodeConflict {
			t.Errorf("second decision %s: %d %s, want 409", again, code, raw)
		}
	}
	if len(a.over.reqs) != 0 {
		t.Errorf("a decided appeal reached the overturner: %+v", a.over.reqs)
	}

	var got store.Appeal
	a.getJSON(t, fmt.Sprintf("/appeals/%d", ap.ID), viewer, &got)
	if got.Status != "upheld" || got.Decision == nil || got.Decision.Outcome != "upheld" {
		t.Errorf("appeal after the decision: %+v", got)
	}
	a.getJSON(t, "/appeals?status=pending", viewer, &list)
	if len(list.Items) != 0 {
		t.Errorf("still pending: %+v", list.Items)
	}

	var acts []string
	rows, err := st.Pool().Query(context.Background(), `SELECT actor || ' ' || act || ' ' || coalesce(target, '') FROM staff_audit ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		acts = append(acts, s)
	}
	appeal := fmt.Sprintf("appeal:%d", ap.ID)
	wantActs := []string{
		"rita record_appeal " + appeal,
		"vic list_appeals ",
		"rita decide_appeal " + appeal,
		"vic view_appeal " + appeal,
		"vic list_appeals ",
	}
	if diff := cmp.Diff(wantActs, acts); diff != "" {
		t.Errorf("staff audit (-want +got):\n%s", diff)
	}
}

// TestAppealOverturnedGoesThroughTheOverturner: deciding "overturned"
// hands the appealed action, the appeal and the reviewer to the
// Overturner, which writes the decision in its own transaction.
func TestAppealOverturnedGoesThroughTheOverturner(t *testing.T) {
	t.Parallel()
	st := ownStore(t)
	seeded := seedHistory(t, st, 3)
	a := newAPI(t, st)
	rev := token(t, "rita", appeals.RoleReviewer)

	var decisions struct{ Items []store.DecisionSummary }
	a.getJSON(t, "/decisions?user_id="+seeded[1].user, rev, &decisions)
	if len(decisions.Items) != 1 {
		t.Fatalf("decisions of %s: %+v", seeded[1].user, decisions.Items)
	}
	decisionID := decisions.Items[0].ID
	code, raw := a.call(t, http.MethodPost, "/appeals", rev,
		fmt.Sprintf(`{"user_id":%q,"decision_id":%d,"statement":"not me","source":"support"}`, seeded[1].user, decisionID))
	if code != http.StatusCreated {
		t.Fatalf("record: %d %s", code, raw)
	}
	var ap store.Appeal
	_ = json.Unmarshal(raw, &ap)
	code, raw = a.call(t, http.MethodPost, fmt.Sprintf("/appeals/%d/decision", ap.ID), rev, `{"outcome":"overturned","reason":"false positive"}`)
	if code != http.StatusCreated {
		t.Fatalf("decide: %d %s", code, raw)
	}
	want := []appeals.OverturnRequest{{DecisionID: decisionID, AppealID: ap.ID, Reviewer: "rita", Role: "reviewer", Reason: "false positive"}}
	if diff := cmp.Diff(want, a.over.reqs); diff != "" {
		t.Errorf("overturn requests (-want +got):\n%s", diff)
	}
}
