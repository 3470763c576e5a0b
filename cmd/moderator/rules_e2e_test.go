package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"moderator/store/storetest"
)

// TestStarterRuleDecisionRecorded: a signed webhook that matches a starter
// rule leaves a decision row with its evidence and the rule set version.
func TestStarterRuleDecisionRecorded(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{})
	version, err := s.logs.waitFor(`"msg":"rules loaded".*"version":"([^"]+)"`, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// A three-hour-old account posting a link: new-account-links.
	body := []byte(`{"type":"message.new","cid":"messaging:e2e","created_at":"2026-11-24T12:00:00Z",` +
		`"message":{"id":"rule-1","text":"great deals at https://shop.example.net/deal","user":{"id":"newbie","created_at":"2026-11-24T09:00:00Z"}},` +
		`"user":{"id":"newbie","created_at":"2026-11-24T09:00:00Z"}}`)
	status, resp := s.send(t, delivery{body: body, webhookID: "rule-1"})
	if status != 200 || resp["status"] != "recorded" {
		t.Fatalf("got %d %v, want 200 recorded", status, resp)
	}
	var (
		gotVersion, eventVersion string
		matched                  []string
		matches, actions         []byte
	)
	err = storetest.Store(t).Pool().QueryRow(context.Background(), `
		SELECT d.rule_set_version, e.rule_set_version, d.matched_rules, d.matches, d.actions
		FROM decisions d JOIN events e ON e.id = d.event_id WHERE e.webhook_id = 'rule-1'`).
		Scan(&gotVersion, &eventVersion, &matched, &matches, &actions)
	if err != nil {
		t.Fatalf("read decision: %v", err)
	}
	if gotVersion != version || eventVersion != version {
		t.Fatalf("versions = %q / %q, want %q", gotVersion, eventVersion, version)
	}
	if len(matched) == 0 || matched[0] != "new-account-links" {
		t.Fatalf("matched rules = %v, want new-account-links first", matched)
	}
	var ms []struct {
		RuleID   string         `json:"rule_id"`
		Evidence map[string]any `json:"evidence"`
	}
	if err := json.Unmarshal(matches, &ms); err != nil {
		t.Fatal(err)
	}
	ev := ms[0].Evidence
	if ev["user.account_age"] == nil || !strings.Contains(string(matches), "shop.example.net") {
		t.Fatalf("evidence %s lacks the account age or the link", matches)
	}
	if !strings.Contains(string(actions), `"flag"`) {
		t.Fatalf("actions = %s, want a flag", actions)
	}
	if _, err := s.logs.waitFor(`"webhook_id":"rule-1".*"matched":\["new-account-links:enforce"`, time.Second); err != nil {
		t.Fatalf("canonical log line lacks the match: %v", err)
	}
}

const helloRule = `rules:
  - id: says-hello
    description: says hello
    mode: shadow
    when: message.text contains "hello"
    actions: [flag]
    examples:
      - event: {message: {text: "hello there"}}
        expect: {match: true}
      - event: {message: {text: "hi there"}}
        expect: {match: false}
`

const goodbyeRule = `rules:
  - id: says-goodbye
    description: says goodbye
    mode: shadow
    when: message.text contains "goodbye"
    actions: [flag]
    examples:
      - event: {message: {text: "goodbye now"}}
        expect: {match: true}
      - event: {message: {text: "bye now"}}
        expect: {match: false}
`

func matchedRules(t *testing.T, webhookID string) []string {
	t.Helper()
	var matched []string
	err := storetest.Store(t).Pool().QueryRow(context.Background(),
		`SELECT coalesce((SELECT d.matched_rules FROM decisions d WHERE d.event_id = e.id), '{}')
		 FROM events e WHERE e.webhook_id = $1`, webhookID).Scan(&matched)
	if err != nil {
		t.Fatal(err)
	}
	return matched
}

func TestRulesHotReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "greetings.yaml")
	if err := os.WriteFile(file, []byte(helloRule), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, serverOptions{rulesDir: dir})
	msg := func(id, text string) delivery {
		return delivery{body: messageEvent(id, text), webhookID: id}
	}
	if st, _ := s.send(t, msg("reload-1", "hello world")); st != 200 {
		t.Fatalf("status %d", st)
	}
	if got := matchedRules(t, "reload-1"); len(got) != 1 || got[0] != "says-hello" {
		t.Fatalf("before reload: matched %v, want [says-hello]", got)
	}

	// A valid change takes effect without a restart.
	if err := os.WriteFile(file, []byte(goodbyeRule), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.logs.waitFor(`"msg":"rules loaded".*"trigger":"change"`, 10*time.Second); err != nil {
		t.Fatalf("no reload after a change: %v\n%s", err, s.logs)
	}
	// The reload line says what changed against the set it replaced.
	if _, err := s.logs.waitFor(`"msg":"rules loaded".*"trigger":"change".*"changes":"added says-goodbye; removed says-hello",`+
		`"added":\["says-goodbye"\],"removed":\["says-hello"\],"changed":\[\]`, time.Second); err != nil {
		t.Fatalf("the reload line does not list the changes: %v\n%s", err, s.logs)
	}
	s.send(t, msg("reload-2", "goodbye world"))
	if got := matchedRules(t, "reload-2"); len(got) != 1 || got[0] != "says-goodbye" {
		t.Fatalf("after reload: matched %v, want [says-goodbye]", got)
	}

	// A broken change is refused with file:line and the last good set stays.
	broken := strings.Replace(goodbyeRule, `message.text contains "goodbye"`, `message.txet contains "goodbye"`, 1)
	if err := os.WriteFile(file, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.logs.waitFor(`"msg":"rules refused".*greetings.yaml:5: `, 10*time.Second); err != nil {
		t.Fatalf("broken rules not refused with file:line: %v\n%s", err, s.logs)
	}
	s.send(t, msg("reload-3", "goodbye again"))
	if got := matchedRules(t, "reload-3"); len(got) != 1 || got[0] != "says-goodbye" {
		t.Fatalf("after a refused change: matched %v, want the old [says-goodbye]", got)
	}
	if m := s.get(t, "/metrics"); !strings.Contains(m, `moderator_rules_reloads_total{result="error"} 1`) {
		t.Fatalf("refusal not counted:\n%s", grep(m, "moderator_rules"))
	}
	if r, err := http.Get(s.URL + "/readyz"); err != nil || r.StatusCode != 200 {
		t.Fatalf("/readyz after a refused change: %v %v, want 200 (the old set is in force)", r, err)
	}
}

func TestNotReadyWithoutRules(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("rules:\n  - id: x\n    when: 1 +\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startServerUnready(t, dir)
	if _, err := s.logs.waitFor(`"msg":"migrations applied"`, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(s.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Fatalf("/readyz with no valid rules: %d, want 503", resp.StatusCode)
	}
	// Events are still recorded (not lost), marked unevaluated.
	if st, _ := s.send(t, delivery{body: messageEvent("unready-1", "x"), webhookID: "unready-1"}); st != 200 {
		t.Fatalf("webhook without rules: %d, want 200", st)
	}
	if n := countRows(t, "webhook_id = 'unready-1' AND rule_set_version IS NULL"); n != 1 {
		t.Fatalf("unevaluated rows = %d, want 1", n)
	}
	// Fixing the folder makes the service ready by itself.
	if err := os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte(helloRule), 0o644); err != nil {
		t.Fatal(err)
	}
	s.waitReady(t)
}
