package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"moderator/store"
	"moderator/store/storetest"
)

// beforeSendEvent is a before-message-send body (STREAM_API.md §1): no
// type, an unsaved message without id.
func beforeSendEvent(userID, text string) []byte {
	return []byte(`{"message":{"id":"","text":` + quote(text) + `,"type":"regular","attachments":[],"mentioned_users":[],"silent":false},` +
		`"user":{"id":` + quote(userID) + `,"role":"user","created_at":"2025-01-01T00:00:00Z"},` +
		`"channel":{"cid":"messaging:e2e","id":"e2e","type":"messaging"},` +
		`"request_info":{"type":"client","ip":"86.84.2.2","sdk":"stream-chat-react"}}`)
}

// quote returns s as a JSON string.
func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// sendBeforeSend posts body to the before-send hook and returns the status
// and the raw answer.
func (s *testServer) sendBeforeSend(t testing.TB, body []byte, signature string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL+"/webhooks/stream/before-send", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Api-Key", e2eKey)
	if signature == "" {
		signature = signBody(e2eSecret, body)
	}
	req.Header.Set("X-Signature", signature)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(out)
}

// waitRows polls until count(*) of events matching where is want.
func waitRows(t testing.TB, want int, where string, args ...any) {
	t.Helper()
	n := -1
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if n = countRows(t, where, args...); n == want {
			return
		}
	}
	t.Fatalf("rows where %s = %d, want %d", where, n, want)
}

func TestBeforeSendAnswers(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{})
	tests := []struct {
		name, user, text string
		signature        string
		wantStatus       int
		wantBody         string
		wantRows         int
	}{
		{"accept", "bs-accept", "hello there", "", 200, `{}`, 1},
		{"block", "bs-block", "free nitro https://discord-nitro.gift/claim", "", 200,
			`{"message":{"type":"error","text":"Your message was not sent: discord-nitro.gift is a known scam site."}}`, 1},
		{"rewrite", "bs-rewrite", "what the fuck, sh1t, & <3", "", 200, `{"message":{"text":"what the f***, s***, & <3"}}`, 1},
		{"invalid signature", "bs-bad-sig", "hello", signBody("wrong", []byte("x")), 401, `{"error":"invalid X-Signature"}`, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			status, body := s.sendBeforeSend(t, beforeSendEvent(tt.user, tt.text), tt.signature)
			if status != tt.wantStatus || body != tt.wantBody {
				t.Fatalf("got %d %s, want %d %s", status, body, tt.wantStatus, tt.wantBody)
			}
			if tt.wantRows > 0 {
				waitRows(t, tt.wantRows, "type = 'before_send' AND user_id = $1", tt.user)
			} else if n := countRows(t, "user_id = $1", tt.user); n != 0 {
				t.Fatalf("rows for a refused request = %d, want 0", n)
			}
		})
	}
	t.Run("metrics", func(t *testing.T) {
		t.Parallel()
		for _, name := range []string{"moderator_before_send_total", "moderator_before_send_duration_seconds_count", "moderator_before_send_fail_open_total"} {
			if !bytes.Contains([]byte(s.get(t, "/metrics")), []byte(name)) {
				t.Errorf("/metrics lacks %s", name)
			}
		}
	})
}

// ruleErrorPack has a before_send rule that fails on any message without
// the custom field it reads (declared unchecked, as an object).
const ruleErrorPack = `fields:
  message.level: {type: object}
rules:
  - id: fragile
    description: reads a custom field without a default
    events: [before_send]
    mode: enforce
    when: int(message.custom.level) > 3
    actions:
      - block: {text: "no"}
    examples:
      - event: {message: {text: "x", level: 5}}
        expect: {match: true}
      - event: {message: {text: "x", level: 1}}
        expect: {match: false}
`

func TestBeforeSendFailsOpen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), []byte(ruleErrorPack), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, serverOptions{rulesDir: dir})

	status, body := s.sendBeforeSend(t, beforeSendEvent("bs-rule-error", "hello"), "")
	if status != 200 || body != `{}` {
		t.Fatalf("rule failure: got %d %s, want 200 {}", status, body)
	}
	if m := s.get(t, "/metrics"); !regexp.MustCompile(`moderator_before_send_fail_open_total\{reason="rule_error"\} 1`).MatchString(m) {
		t.Fatalf("rule failure not counted:\n%s", grep(m, "moderator_before_send"))
	}
	waitRows(t, 1, "type = 'before_send' AND user_id = 'bs-rule-error'")
	// The failure is logged at WARN with the rule's id, counted per rule,
	// and in the rule's figures (GET /rules/stats, moderator audit rules).
	if _, err := s.logs.waitFor(`"level":"WARN","msg":"before_send".*"rule_errors":\["fragile: `, 5*time.Second); err != nil {
		t.Fatalf("rule failure not logged at WARN with its rule: %v\n%s", err, s.logs)
	}
	if m := s.get(t, "/metrics"); !strings.Contains(m, `moderator_rule_errors_total{rule="fragile"} 1`) {
		t.Fatalf("rule failure not counted per rule:\n%s", grep(m, "moderator_rule_errors"))
	}
	stats, err := storetest.Store(t).RuleStats(context.Background(), time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(stats, func(s store.RuleStat) bool { return s.RuleID == "fragile" }); i < 0 || stats[i].Errors != 1 {
		t.Fatalf("rule stats = %+v, want fragile with 1 error", stats)
	}

	s.proxy.Stop()
	start := time.Now()
	status, body = s.sendBeforeSend(t, beforeSendEvent("bs-db-down", "hello"), "")
	if status != 200 || body != `{}` {
		t.Fatalf("database down: got %d %s, want 200 {}", status, body)
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Fatalf("database down: the answer took %v; it must not wait for the database", elapsed)
	}
	// The write fails and is retried (and counted) until the database is
	// back. /metrics reads the database too, so it is checked afterwards.
	if _, err := s.logs.waitFor(`recording a before-send decision failed`, 10*time.Second); err != nil {
		t.Fatalf("the failed audit write was not logged: %v", err)
	}
	s.proxy.Start()
	waitRows(t, 1, "type = 'before_send' AND user_id = 'bs-db-down'")
	if m := s.get(t, "/metrics"); !regexp.MustCompile(`moderator_before_send_audit_errors_total [1-9]`).MatchString(m) {
		t.Fatalf("database outage not counted:\n%s", grep(m, "moderator_before_send"))
	}
}

// TestBeforeSendRewriteNotActionedTwice: a message rewritten before it was
// sent arrives as message.new with the masked text, which the message
// rules (here the enforce-mode profanity rule, which flags) no longer
// match: the push path does not act again on what the hook handled. The
// same words without the hook (it failed open) are still flagged.
func TestBeforeSendRewriteNotActionedTwice(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{})
	status, body := s.sendBeforeSend(t, beforeSendEvent("bs-link", "what the fuck"), "")
	if status != 200 || body != `{"message":{"text":"what the f***"}}` {
		t.Fatalf("before-send: got %d %s, want the rewrite", status, body)
	}
	// Stream posts message.new after saving the message; by then the
	// decision is usually recorded (see linkBeforeSend).
	waitRows(t, 1, "type = 'before_send' AND user_id = 'bs-link'")
	masked := []byte(`{"type":"message.new","cid":"messaging:e2e","created_at":"2026-11-24T10:00:00Z",` +
		`"message":{"id":"bs-link-1","text":"what the f***","user":{"id":"bs-link"}},"user":{"id":"bs-link","created_at":"2025-01-01T00:00:00Z"}}`)
	if status, resp := s.send(t, delivery{body: masked, webhookID: "bs-link-1"}); status != 200 {
		t.Fatalf("message.new: %d %v", status, resp)
	}
	if got := matchedRules(t, "bs-link-1"); len(got) != 0 {
		t.Fatalf("the rewritten message matched %v, want no rule", got)
	}
	unmasked := messageEvent("bs-link-2", "what the fuck")
	if status, resp := s.send(t, delivery{body: unmasked, webhookID: "bs-link-2"}); status != 200 {
		t.Fatalf("message.new: %d %v", status, resp)
	}
	if got := matchedRules(t, "bs-link-2"); !slices.Equal(got, []string{"profanity-warn", "profanity"}) {
		t.Fatalf("the unmasked message matched %v, want [profanity-warn profanity] (the ladder's first rung and the flag)", got)
	}

	// The audit links the rewritten message to its before-send decision;
	// the other message, whose text no before-send let through, is not.
	rows, err := storetest.Store(t).Pool().Query(context.Background(), `
		SELECT m.webhook_id, b.type, b.user_id, l.outcome
		FROM before_send_links l JOIN events m ON m.id = l.message_event_id JOIN events b ON b.id = l.before_send_event_id
		WHERE m.webhook_id IN ('bs-link-1', 'bs-link-2')`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var webhookID, typ, user, outcome string
		if err := rows.Scan(&webhookID, &typ, &user, &outcome); err != nil {
			t.Fatal(err)
		}
		got = append(got, webhookID+" -> "+typ+"/"+user+"/"+outcome)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if want := "bs-link-1 -> before_send/bs-link/rewrite"; len(got) != 1 || got[0] != want {
		t.Fatalf("links = %q, want [%q]", got, want)
	}
}
