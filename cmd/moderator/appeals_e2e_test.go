package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"moderator/actions/streamtest"
	"moderator/appeals"
)

// staffPost posts body to the staff API with token and decodes the JSON
// answer.
func (s *testServer) staffPost(t *testing.T, path, token string, body any) (int, map[string]any) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, s.URL+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("POST %s: %d, not JSON: %s", path, resp.StatusCode, raw)
	}
	return resp.StatusCode, out
}

// idOf reads one id from the service's database.
func (e *actionsEnv) idOf(t *testing.T, query string, args ...any) int64 {
	t.Helper()
	var id int64
	if err := e.pool.QueryRow(context.Background(), query, args...).Scan(&id); err != nil {
		t.Fatalf("%s %v: %v", query, args, err)
	}
	return id
}

// TestAppealOverturnEndToEnd: a signed webhook leads to a ban; the appeal
// is recorded and decided "overturned" through the staff API, which leads
// to exactly one unban at Stream, the appeal's decision and the staff
// audit row; the same words from the same user within the immunity window
// lead to no new ban, only suppressed actions; and a pending ban (waiting
// for its endpoint's budget) overturned before it runs is never sent.
func TestAppealOverturnEndToEnd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// One ban a minute: the first goes at once, a second waits its turn
	// (its job snoozed) for about a minute.
	e := startActions(t, nil, map[string]string{
		"MODERATOR_ADMIN_JWT_SECRET": e2eAdminSecret,
		"MODERATOR_IMMUNITY_WINDOW":  "2h",
		"MODERATOR_RATE_LIMITS":      "ban=1",
	})
	reviewer := mint(t, appeals.RoleReviewer)

	e.mustSend(t, "appeal-1", authoredBy("appeal-1", "mallory", "banme"))
	if got := e.waitEnded(t, "appeal-1", 2); got[0].Outcome != "applied" || got[1].Outcome != "superseded" {
		t.Fatalf("actions = %+v, want the ban applied and the mute superseded", got)
	}
	if !e.fake.IsBanned("mallory", "") {
		t.Fatal("mallory is not banned at Stream")
	}
	banID := e.idOf(t, `SELECT a.id FROM actions a JOIN events ev ON ev.id = a.event_id WHERE ev.webhook_id = 'appeal-1' AND a.type = 'ban'`)

	code, body := e.staffPost(t, "/api/v1/appeals", reviewer, map[string]any{
		"user_id": "mallory", "action_id": banID, "statement": "I was quoting a song", "source": "email"})
	if code != http.StatusCreated {
		t.Fatalf("record appeal: %d %v", code, body)
	}
	appealID := int64(body["id"].(float64))
	code, body = e.staffPost(t, fmt.Sprintf("/api/v1/appeals/%d/decision", appealID), reviewer,
		map[string]any{"outcome": "overturned", "reason": "song lyrics, not abuse"})
	if code != http.StatusCreated {
		t.Fatalf("decide appeal: %d %v", code, body)
	}
	ov, _ := body["overturn"].(map[string]any)
	overturnID := int64(ov["overturn_id"].(float64))
	reversal := e.idOf(t, `SELECT id FROM actions WHERE reverses_action_id = $1`, banID)
	deadline := time.Now().Add(20 * time.Second)
	for e.fake.IsBanned("mallory", "") {
		if time.Now().After(deadline) {
			t.Fatalf("mallory still banned after the overturn; logs:\n%s", e.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var outcome string
	for outcome == "" && time.Now().Before(deadline) {
		_ = e.pool.QueryRow(ctx, `SELECT outcome FROM action_outcomes WHERE action_id = $1`, reversal).Scan(&outcome)
		time.Sleep(10 * time.Millisecond)
	}
	if outcome != "applied" {
		t.Fatalf("the unban's outcome = %q, want applied", outcome)
	}
	unbans := e.fake.Calls(streamtest.RouteUnban)
	if len(unbans) != 1 || unbans[0].Query.Get("target_user_id") != "mallory" || unbans[0].Status != 200 {
		t.Fatalf("got %d unban calls, want one of mallory", len(unbans))
	}
	var decision, decidedBy string
	var decisionOverturn int64
	if err := e.pool.QueryRow(ctx, `SELECT outcome, reviewer, overturn_id FROM appeal_decisions WHERE appeal_id = $1`, appealID).
		Scan(&decision, &decidedBy, &decisionOverturn); err != nil {
		t.Fatalf("appeal decision: %v", err)
	}
	if decision != "overturned" || decidedBy != "e2e-reviewer" || decisionOverturn != overturnID {
		t.Fatalf("appeal decision = %s by %s (overturn %d), want overturned by e2e-reviewer (overturn %d)", decision, decidedBy, decisionOverturn, overturnID)
	}
	var actor, reason, target string
	if err := e.pool.QueryRow(ctx, `SELECT actor, reason, target FROM staff_audit WHERE act = 'overturn'`).Scan(&actor, &reason, &target); err != nil {
		t.Fatalf("staff audit: %v", err)
	}
	if actor != "e2e-reviewer" || reason != "song lyrics, not abuse" || target != fmt.Sprintf("action:%d", banID) {
		t.Fatalf("staff audit = %s %q %s", actor, reason, target)
	}

	// The same words again, within the window: recorded, suppressed.
	e.mustSend(t, "appeal-2", authoredBy("appeal-2", "mallory", "banme"))
	got := e.waitEnded(t, "appeal-2", 2)
	for _, a := range got {
		if a.Outcome != "suppressed" || !strings.Contains(a.Reason, fmt.Sprintf("overturn %d by e2e-reviewer", overturnID)) {
			t.Fatalf("actions = %+v, want both suppressed by overturn %d", got, overturnID)
		}
	}
	if n := len(e.fake.Calls(streamtest.RouteBan)); n != 1 {
		t.Fatalf("got %d ban calls, want 1 (none after the overturn)", n)
	}
	if m := e.get(t, "/metrics"); !strings.Contains(m, `moderator_actions_total{outcome="suppressed",type="ban"} 1`) {
		t.Fatalf("metrics lack the suppressed ban:\n%s", grep(m, "moderator_actions_total"))
	}

	// A ban waiting for the budget, overturned through the API before it
	// runs: cancelled, never sent.
	e.mustSend(t, "appeal-3", authoredBy("appeal-3", "bob", "banme"))
	decisionID := e.idOf(t, `SELECT d.id FROM decisions d JOIN events ev ON ev.id = d.event_id WHERE ev.webhook_id = 'appeal-3'`)
	code, body = e.staffPost(t, fmt.Sprintf("/api/v1/decisions/%d/overturn", decisionID), reviewer, map[string]any{"reason": "wrong person"})
	if code != http.StatusCreated {
		t.Fatalf("overturn decision: %d %v", code, body)
	}
	results, _ := body["actions"].([]any)
	if len(results) != 2 || results[0].(map[string]any)["disposition"] != "cancelled" || results[1].(map[string]any)["disposition"] != "nothing_to_undo" {
		t.Fatalf("overturn result = %v, want the ban cancelled and the merged mute with nothing to undo", body)
	}
	if got := e.actionsOf(t, "appeal-3"); got[0].Outcome != "superseded" || !strings.Contains(got[0].Reason, "by e2e-reviewer: wrong person") {
		t.Fatalf("bob's ban = %+v, want superseded by the overturn", got[0])
	}
	var state string
	for state != "cancelled" && time.Now().Before(deadline.Add(10*time.Second)) {
		_ = e.pool.QueryRow(ctx, `SELECT j.state FROM river_job j JOIN actions a ON j.args @> jsonb_build_object('action_id', a.id)
			JOIN events ev ON ev.id = a.event_id WHERE ev.webhook_id = 'appeal-3' AND a.type = 'ban'`).Scan(&state)
		time.Sleep(10 * time.Millisecond)
	}
	if state != "cancelled" {
		t.Fatalf("bob's ban job is %q, want cancelled", state)
	}
	for _, c := range e.fake.Calls(streamtest.RouteBan) {
		if c.Body["target_user_id"] == "bob" {
			t.Fatal("bob's ban reached Stream")
		}
	}
	// Overturning it again is a conflict, and writes nothing.
	code, body = e.staffPost(t, fmt.Sprintf("/api/v1/decisions/%d/overturn", decisionID), reviewer, map[string]any{"reason": "again"})
	if code != http.StatusConflict {
		t.Fatalf("second overturn: %d %v, want 409", code, body)
	}
	if n := e.idOf(t, `SELECT count(*) FROM staff_audit WHERE act = 'overturn'`); n != 2 {
		t.Fatalf("got %d overturn rows in the staff audit, want 2", n)
	}
}
