package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"moderator/appeals"
	"moderator/store"
	"moderator/store/storetest"
)

// eventTexts returns the message texts and user names the database holds
// for the user's events.
func eventTexts(t *testing.T, userID string) []string {
	t.Helper()
	var out []string
	rows, err := storetest.Store(t).Pool().Query(context.Background(), `SELECT coalesce(payload #>> '{message,text}', '') || '/' ||
		coalesce(payload #>> '{user,name}', '') FROM events WHERE user_id = $1 ORDER BY id`, userID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func userMessage(id, userID, text string) []byte {
	b, _ := json.Marshal(map[string]any{"type": "message.new", "cid": "messaging:erase", "created_at": "2026-12-01T10:00:00Z",
		"message": map[string]any{"id": id, "text": text, "user": map[string]any{"id": userID, "name": "Name " + text}},
		"user":    map[string]any{"id": userID, "name": "Name " + text}})
	return b
}

// TestEraseThroughStaffAPI: an admin erases a user's content; a reviewer
// may not; a missing reason and a bad id are refused with the field named;
// the answer counts what changed, the API shows the marker, the act is in
// the staff audit log, and a second erasure answers zeros.
func TestEraseThroughStaffAPI(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{env: map[string]string{"MODERATOR_ADMIN_JWT_SECRET": e2eAdminSecret}})
	const user, text = "erase-e2e-ann", "zebracode"
	for _, id := range []string{"erase-e2e-1", "erase-e2e-2"} {
		if code, body := s.send(t, delivery{body: userMessage(id, user, text), webhookID: id}); code != 200 {
			t.Fatalf("webhook %s: %d %v", id, code, body)
		}
	}
	path := "/api/v1/users/" + user + "/erase"
	if code, body := s.staffPost(t, path, mint(t, appeals.RoleReviewer), map[string]any{"reason": "ticket 9"}); code != http.StatusForbidden {
		t.Errorf("reviewer erasing: %d %v, want 403", code, body)
	}
	if code, body := s.staffPost(t, path, mint(t, appeals.RoleAdmin), map[string]any{}); code != http.StatusBadRequest ||
		!strings.Contains(body["error"].(map[string]any)["message"].(string), "reason") {
		t.Errorf("no reason: %d %v, want 400 naming reason", code, body)
	}
	if code, body := s.staffPost(t, "/api/v1/users/bad%20id/erase", mint(t, appeals.RoleAdmin), map[string]any{"reason": "ticket 9"}); code != http.StatusBadRequest ||
		!strings.Contains(body["error"].(map[string]any)["message"].(string), "user_id") {
		t.Errorf("bad id: %d %v, want 400 naming user_id", code, body)
	}
	if got := eventTexts(t, user); len(got) != 2 || got[0] != text+"/Name "+text {
		t.Fatalf("refused erasures changed the events: %v", got)
	}

	code, body := s.staffPost(t, path, mint(t, appeals.RoleAdmin), map[string]any{"reason": "ticket 9"})
	erased, _ := body["erased"].(map[string]any)
	if code != http.StatusOK || body["user_id"] != user || erased["events"] != float64(2) || len(erased) != len(store.ErasureKinds) {
		t.Fatalf("admin erasing: %d %v, want 200 with 2 events among the counts", code, body)
	}
	marked := store.Redacted + "/" + store.Redacted
	if got := eventTexts(t, user); len(got) != 2 || got[0] != marked || got[1] != marked {
		t.Errorf("after the erasure the events hold %v, want the marker", got)
	}
	_, page := s.staffGet(t, "/api/v1/events?user_id="+user, mint(t, appeals.RoleViewer))
	raw, _ := json.Marshal(page)
	if strings.Contains(string(raw), text) || !strings.Contains(string(raw), store.Redacted) {
		t.Errorf("the API shows %s, want the marker and not the text", raw)
	}
	var actor, reason string
	if err := storetest.Store(t).Pool().QueryRow(context.Background(), `SELECT actor, reason FROM staff_audit
		WHERE act = 'erase' AND target_user_id = $1`, user).Scan(&actor, &reason); err != nil || actor != "e2e-admin" || reason != "ticket 9" {
		t.Errorf("staff audit: %q %q (%v), want e2e-admin's act with its reason", actor, reason, err)
	}
	code, body = s.staffPost(t, path, mint(t, appeals.RoleAdmin), map[string]any{"reason": "ticket 9, again"})
	if erased, _ := body["erased"].(map[string]any); code != http.StatusOK || erased["events"] != float64(0) {
		t.Errorf("second erasure: %d %v, want 200 with zeros", code, body)
	}
}

// TestUserDeletedWebhookErases: Stream's user.deleted with hard_delete
// (the sample, for a user of the test's own) erases the user's content as
// the system; a soft delete erases nothing.
func TestUserDeletedWebhookErases(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{})
	sample, err := os.ReadFile("../../testdata/samples/user.deleted-1.json")
	if err != nil {
		t.Fatal(err)
	}
	const user, text = "erase-e2e-del", "okapiphrase"
	if code, body := s.send(t, delivery{body: userMessage("erase-e2e-del-1", user, text), webhookID: "erase-e2e-del-1"}); code != 200 {
		t.Fatalf("webhook: %d %v", code, body)
	}
	hard := bytes.ReplaceAll(sample, []byte("6d3a1b0e-9f7c-4c1e-8a55-3f1e2d7c9b40"), []byte(user))
	soft := bytes.Replace(hard, []byte(`"hard_delete":true`), []byte(`"hard_delete":false`), 1)
	if code, body := s.send(t, delivery{body: soft, webhookID: "erase-e2e-soft"}); code != 200 {
		t.Fatalf("soft user.deleted: %d %v", code, body)
	}
	if got := eventTexts(t, user); len(got) != 2 || got[0] != text+"/Name "+text {
		t.Fatalf("a soft delete changed the events: %v", got)
	}
	if code, body := s.send(t, delivery{body: hard, webhookID: "erase-e2e-hard"}); code != 200 {
		t.Fatalf("hard user.deleted: %d %v", code, body)
	}
	got := eventTexts(t, user)
	if len(got) != 3 || strings.Contains(strings.Join(got, " "), text) || got[0] != store.Redacted+"/"+store.Redacted {
		t.Errorf("after a hard delete the events hold %v, want the marker and no text", got)
	}
	var actor string
	if err := storetest.Store(t).Pool().QueryRow(context.Background(), `SELECT actor FROM staff_audit
		WHERE act = 'erase' AND target_user_id = $1`, user).Scan(&actor); err != nil || actor != store.ActorSystem {
		t.Errorf("staff audit: %q (%v), want the system's act", actor, err)
	}
	if _, err := s.logs.waitFor(`"msg":"user erased"`, 5*time.Second); err != nil {
		t.Errorf("no log line for the erasure: %v", err)
	}
}

// TestLateDeliveriesAfterAnErasure: after an admin erases a user on one
// replica, a late first delivery of the user's earlier message (its
// first attempt never recorded) is recorded redacted there, and a replica
// started after the erasure redacts the user's later events and another
// user's reaction to their message (the reactor's content stays).
func TestLateDeliveriesAfterAnErasure(t *testing.T) {
	t.Parallel()
	one := startServer(t, serverOptions{env: map[string]string{"MODERATOR_ADMIN_JWT_SECRET": e2eAdminSecret}})
	const user, text = "erase-e2e-late", "narwhalnote"
	if code, body := one.send(t, delivery{body: userMessage("erase-e2e-late-1", user, text), webhookID: "erase-e2e-late-1"}); code != 200 {
		t.Fatalf("webhook: %d %v", code, body)
	}
	if code, body := one.staffPost(t, "/api/v1/users/"+user+"/erase", mint(t, appeals.RoleAdmin), map[string]any{"reason": "ticket 10"}); code != 200 {
		t.Fatalf("erase: %d %v", code, body)
	}
	if code, body := one.send(t, delivery{body: userMessage("erase-e2e-late-2", user, text), webhookID: "erase-e2e-late-2"}); code != 200 {
		t.Fatalf("late delivery: %d %v", code, body)
	}
	marked := store.Redacted + "/" + store.Redacted
	if got := eventTexts(t, user); len(got) != 2 || got[0] != marked || got[1] != marked {
		t.Errorf("after the late delivery the events hold %v, want the marker twice", got)
	}

	two := startServer(t, serverOptions{})
	if code, body := two.send(t, delivery{body: userMessage("erase-e2e-late-3", user, text), webhookID: "erase-e2e-late-3"}); code != 200 {
		t.Fatalf("on the second replica: %d %v", code, body)
	}
	reaction, _ := json.Marshal(map[string]any{"type": "reaction.updated", "cid": "messaging:erase",
		"reaction": map[string]any{"type": "love", "user": map[string]any{"id": "erase-e2e-bob"}},
		"message":  map[string]any{"id": "erase-e2e-late-1", "text": text, "user": map[string]any{"id": user}},
		"user":     map[string]any{"id": "erase-e2e-bob", "name": "Bob"}})
	if code, body := two.send(t, delivery{body: reaction, webhookID: "erase-e2e-late-4"}); code != 200 {
		t.Fatalf("reaction on the second replica: %d %v", code, body)
	}
	if got := eventTexts(t, user); len(got) != 3 || got[2] != marked {
		t.Errorf("the second replica recorded %v, want the marker", got)
	}
	var copied, reactor, kind string
	if err := storetest.Store(t).Pool().QueryRow(context.Background(), `SELECT payload #>> '{message,text}', payload #>> '{user,name}',
		payload #>> '{reaction,type}' FROM events WHERE user_id = 'erase-e2e-bob'`).Scan(&copied, &reactor, &kind); err != nil ||
		copied != store.Redacted || reactor != "Bob" || kind != "love" {
		t.Errorf("bob's reaction: %q by %q on %q (%v), want love by Bob on the marker", kind, reactor, copied, err)
	}
}
