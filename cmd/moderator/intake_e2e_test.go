package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"moderator/policy"
	"moderator/store/storetest"
)

// TestPoisonEvents: validly signed events that Postgres used to refuse on
// every retry (so that Stream dropped them unmoderated) are recorded the
// first time, through the real handler and database, and their retry is a
// duplicate: none is answered 503.
func TestPoisonEvents(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{})
	long := strings.Repeat("u", 4096)
	tests := []struct {
		name      string
		webhookID string
		body      string
		column    string // a column of the recorded row, and what it must hold
		want      string
	}{
		{"NUL in user.id", "poison-nul-user",
			`{"type":"message.new","cid":"messaging:p","message":{"id":"p-1","text":"hi","user":{"id":"eve\u0000"}},"user":{"id":"eve\u0000"}}`,
			"user_id", policy.SafeID("eve\x00")},
		{"NUL in type", "poison-nul-type",
			`{"type":"message.new\u0000","cid":"messaging:p","message":{"id":"p-2","text":"hi","user":{"id":"eve"}}}`,
			"type", policy.SafeID("message.new\x00")},
		{"NUL in cid", "poison-nul-cid",
			`{"type":"message.new","cid":"messaging:p\u0000","message":{"id":"p-3","text":"hi","user":{"id":"eve"}}}`,
			"channel_cid", policy.SafeID("messaging:p\x00")},
		{"lone surrogate in text", "poison-surrogate",
			`{"type":"message.new","cid":"messaging:p","message":{"id":"p-4","text":"a\ud800b","user":{"id":"eve"}}}`,
			"payload->'message'->>'text'", "a\uFFFDb"},
		{"non-UTF-8 X-Webhook-Id", "poison-\xff\xfe-id",
			`{"type":"message.new","cid":"messaging:p","message":{"id":"p-5","text":"hi","user":{"id":"eve"}}}`,
			"webhook_id", policy.SafeID("poison-\xff\xfe-id")},
		{"10 KB X-Webhook-Id", strings.Repeat("w", 10<<10),
			`{"type":"message.new","cid":"messaging:p","message":{"id":"p-6","text":"hi","user":{"id":"eve"}}}`,
			"webhook_id", policy.SafeID(strings.Repeat("w", 10<<10))},
		{"4 KB user id", "poison-long-user",
			`{"type":"message.new","cid":"messaging:p","message":{"id":"p-7","text":"hi","user":{"id":"` + long + `"}},"user":{"id":"` + long + `"}}`,
			"user_id", policy.SafeID(long)},
		{"4 KB message id", "poison-long-message",
			`{"type":"message.new","cid":"messaging:p","message":{"id":"m` + long + `","text":"hi","user":{"id":"eve"}}}`,
			"message_id", policy.SafeID("m" + long)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := delivery{body: []byte(tt.body), webhookID: tt.webhookID}
			status, resp := s.send(t, d)
			if status != 200 || resp["status"] == "quarantined" {
				t.Fatalf("first delivery: %d %v, want 200 recorded", status, resp)
			}
			id := int64(resp["event_id"].(float64))
			retry, rresp := s.send(t, d)
			if retry != 200 || rresp["status"] != "duplicate" || int64(rresp["event_id"].(float64)) != id {
				t.Fatalf("retry: %d %v, want 200 duplicate of %d", retry, rresp, id)
			}
			var got string
			err := storetest.Store(t).Pool().QueryRow(context.Background(),
				"SELECT "+tt.column+" FROM events WHERE id = $1", id).Scan(&got)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("%s = %q, want %q", tt.column, got, tt.want)
			}
		})
	}
	if strings.Contains(s.logs.String(), `"status":503`) {
		t.Errorf("a poison event was answered 503:\n%s", s.logs)
	}
	if strings.Contains(s.logs.String(), strings.Repeat("w", 1<<10)) {
		t.Errorf("the 10 KB webhook id was logged whole")
	}
}

// TestQuarantine: an event that Postgres still refuses (a number no
// numeric holds, in a field the service does not read, so that only jsonb
// trips on it) is answered 200 quarantined with a WARN line, and does not
// take the good deliveries that share its batch down with it.
func TestQuarantine(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{})
	bad := []byte(`{"type":"message.new","cid":"messaging:q","huge":1e1000000,` +
		`"message":{"id":"q-bad","text":"hi","user":{"id":"quinn"}}}`)
	const good = 20
	var wg sync.WaitGroup
	statuses := make([]string, good)
	var badStatus int
	var badResp map[string]any
	wg.Go(func() { badStatus, badResp = s.send(t, delivery{body: bad, webhookID: "q-bad"}) })
	for i := range good {
		wg.Go(func() {
			code, resp := s.send(t, delivery{body: messageEvent(fmt.Sprintf("q-good-%d", i), "hello"), webhookID: fmt.Sprintf("q-good-%d", i)})
			statuses[i] = fmt.Sprintf("%d %v", code, resp["status"])
		})
	}
	wg.Wait()
	if badStatus != 200 || badResp["status"] != "quarantined" || badResp["quarantine_id"] == nil {
		t.Fatalf("refused event: %d %v, want 200 quarantined", badStatus, badResp)
	}
	for i, st := range statuses {
		if st != "200 recorded" {
			t.Errorf("good delivery %d: %s, want 200 recorded", i, st)
		}
	}
	if n := countRows(t, "message_id LIKE 'q-good-%'"); n != good {
		t.Errorf("recorded %d good events, want %d", n, good)
	}
	if n := countRows(t, "message_id = 'q-bad'"); n != 0 {
		t.Errorf("the refused event has %d rows in events", n)
	}
	if _, err := s.logs.waitFor(`"level":"WARN","msg":"webhook","webhook_id":"q-bad".*"outcome":"quarantined".*22003`, 5*time.Second); err != nil {
		t.Errorf("no WARN line naming the refusal: %v", err)
	}
	// Stream retries when the answer is lost: the same row answers.
	status, again := s.send(t, delivery{body: bad, webhookID: "q-bad"})
	if status != 200 || again["status"] != "quarantined" || again["quarantine_id"] != badResp["quarantine_id"] {
		t.Fatalf("retry: %d %v, want the same quarantine row %v", status, again, badResp["quarantine_id"])
	}
	var body []byte
	var state string
	err := storetest.Store(t).Pool().QueryRow(context.Background(),
		"SELECT body, sqlstate FROM quarantine WHERE webhook_id = 'q-bad'").Scan(&body, &state)
	if err != nil || string(body) != string(bad) || state != "22003" {
		t.Fatalf("quarantine row: %q %q %v; want the exact body and 22003", body, state, err)
	}
	// The counter moves after the answer is sent.
	s.waitMetric(t, `moderator_webhooks_total{outcome="quarantined"} 2`)
}

// TestExactFieldNamesEndToEnd: the case-variant keys of issue 11, signed
// and sent to the service with the starter rules. A custom field named like
// one of Stream's (ID, Text, Id) never stands in for it.
func TestExactFieldNamesEndToEnd(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{})
	tests := []struct {
		name, id, message string
		wantStatus        string
		wantUser          string // events.user_id and the action's target
		wantMatch         bool   // the profanity rule matched
	}{
		{"attacker beside victim", "case-1", `"text":"fuck you","user":{"id":"attacker","ID":"victim"}`, "recorded", "attacker", true},
		{"victim before attacker", "case-2", `"text":"fuck you","user":{"ID":"victim","id":"attacker"}`, "recorded", "attacker", true},
		{"Text hides nothing", "case-3", `"text":"fuck you","Text":"have a nice day","user":{"id":"tex"}`, "recorded", "tex", true},
		{"Text smuggles nothing in", "case-4", `"text":"have a nice day","Text":"fuck you","user":{"id":"tex2"}`, "recorded", "tex2", false},
		{"Id = the bot", "case-5", `"text":"fuck you","user":{"id":"attacker2","Id":"moderator-bot"}`, "recorded", "attacker2", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := fmt.Appendf(nil, `{"type":"message.new","cid":"messaging:case","created_at":"2026-11-24T10:00:00Z",`+
				`"message":{"id":%q,%s}}`, tt.id, tt.message)
			status, resp := s.send(t, delivery{body: body, webhookID: tt.id})
			if status != 200 || resp["status"] != tt.wantStatus {
				t.Fatalf("got %d %v, want 200 %s", status, resp, tt.wantStatus)
			}
			if n := countRows(t, "webhook_id = $1 AND user_id = $2", tt.id, tt.wantUser); n != 1 {
				t.Errorf("no event of %s recorded under user %s", tt.id, tt.wantUser)
			}
			matched := matchedRules(t, tt.id)
			if got := slices.Contains(matched, "profanity"); got != tt.wantMatch {
				t.Fatalf("matched %v, want profanity matched = %v", matched, tt.wantMatch)
			}
			if !tt.wantMatch {
				return
			}
			var targets []string
			err := storetest.Store(t).Pool().QueryRow(context.Background(), `
				SELECT array_agg(DISTINCT a.target_user_id) FROM actions a JOIN events e ON e.id = a.event_id
				WHERE e.webhook_id = $1`, tt.id).Scan(&targets)
			if err != nil {
				t.Fatal(err)
			}
			if len(targets) != 1 || targets[0] != tt.wantUser {
				t.Errorf("actions target %v, want only %s", targets, tt.wantUser)
			}
		})
	}
}

// TestBeforeSendRefusedRecordsDoNotPinTheWriters: before-send decisions
// that Postgres refuses for their data (more of them than there are
// writers) are quarantined, not retried forever, and the decisions after
// them are still audited.
func TestBeforeSendRefusedRecordsDoNotPinTheWriters(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{})
	const refused = 12 // more than the 8 writers
	for i := range refused {
		body := []byte(fmt.Sprintf(`{"huge":1e100000%d,"message":{"id":"","text":"hi %d","type":"regular"},`+
			`"user":{"id":"bs-poison"},"channel":{"cid":"messaging:e2e","id":"e2e","type":"messaging"}}`, i, i))
		if status, answer := s.sendBeforeSend(t, body, ""); status != 200 {
			t.Fatalf("refused decision %d: %d %s", i, status, answer)
		}
	}
	if status, answer := s.sendBeforeSend(t, beforeSendEvent("bs-after-poison", "hello"), ""); status != 200 {
		t.Fatalf("good decision: %d %s", status, answer)
	}
	waitRows(t, 1, "user_id = 'bs-after-poison'")
	var quarantined int
	for deadline := time.Now().Add(15 * time.Second); quarantined < refused && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		err := storetest.Store(t).Pool().QueryRow(context.Background(),
			`SELECT count(*) FROM quarantine WHERE body LIKE '%bs-poison%'`).Scan(&quarantined)
		if err != nil {
			t.Fatal(err)
		}
	}
	if quarantined != refused {
		t.Fatalf("%d refused decisions quarantined, want %d", quarantined, refused)
	}
	s.waitMetric(t, fmt.Sprintf("moderator_before_send_audit_quarantined_total %d", refused))
}

// TestWholeMessageJudgedEndToEnd: a 5,000-character CJK message with a
// scam link at its end is judged by the scam rule on the push path and
// blocked before send.
func TestWholeMessageJudgedEndToEnd(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{})
	link := " https://discord-nitro.gift/claim"
	cjk := []rune(strings.Repeat("今天天气很好，我们下午去公园散步吧。", 400))
	text := string(cjk[:policy.MaxTextRunes-len(link)]) + link
	status, resp := s.send(t, delivery{body: messageEvent("long-cjk", text), webhookID: "long-cjk"})
	if status != 200 || resp["status"] != "recorded" {
		t.Fatalf("push: %d %v", status, resp)
	}
	if matched := matchedRules(t, "long-cjk"); !slices.Contains(matched, "scam-domains") {
		t.Errorf("push: matched %v, want scam-domains", matched)
	}
	status, answer := s.sendBeforeSend(t, beforeSendEvent("long-cjk-sender", text), "")
	if status != 200 || !strings.Contains(answer, "discord-nitro.gift is a known scam site") {
		t.Errorf("before send: %d %s, want the message blocked", status, answer)
	}
}

// waitMetric waits until /metrics has the line want.
func (s *testServer) waitMetric(t *testing.T, want string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if strings.Contains(s.get(t, "/metrics"), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("/metrics never said %s", want)
			return
		}
	}
}
