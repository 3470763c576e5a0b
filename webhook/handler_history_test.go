package webhook

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"moderator/policy"
	"moderator/rules"
)

// historyRules defers every event whose rules read history, as the live
// rule set does.
type historyRules struct{ rs *policy.RuleSet }

func (h historyRules) Evaluate(ev *policy.Event) (policy.Decision, bool) {
	return h.rs.Evaluate(ev), true
}

func (h historyRules) EvaluateOrDefer(ev *policy.Event) (policy.Decision, *policy.Deferred, bool) {
	d, deferred := h.rs.EvaluateOrDefer(ev)
	return d, deferred, true
}

// judgingAudit plays the recording transaction: it runs the delivery's
// Judge with the history it is given, as the store does after counting.
type judgingAudit struct {
	mu      sync.Mutex
	history policy.History
	got     []Delivery
}

func (a *judgingAudit) RecordEvent(_ context.Context, d Delivery) (Recorded, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.got = append(a.got, d)
	rec := Recorded{EventID: int64(len(a.got))}
	switch {
	case d.Judge != nil:
		dec := d.Judge.Decide(a.history, nil)
		rec.Decision = &dec
	case d.Decision != nil:
		rec.Decision = d.Decision
	}
	return rec, nil
}

// TestHandlerDefersHistory: with the starter pack (which reads counters
// and strikes), a new message is not judged in the handler but handed to
// the recording transaction with a Judge, and the log line and metrics
// report the decision made there; an event no history rule applies to is
// evaluated at once, as before.
func TestHandlerDefersHistory(t *testing.T) {
	t.Parallel()
	rs, err := policy.Load(rules.FS)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	m := NewMetrics(prometheus.NewRegistry())
	audit := &judgingAudit{history: policy.History{{Name: policy.CountUserMessages, Window: time.Minute}: 11}}
	h := Handler(slog.New(slog.NewJSONHandler(&logs, nil)), Config{Keys: testKeys, BotUserID: "bot"}, historyRules{rs}, audit, m)
	send := func(id string, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/webhooks/stream", bytes.NewReader(body))
		req.Header.Set("X-Api-Key", testKey)
		req.Header.Set("X-Signature", sign(testSecret, body))
		req.Header.Set("X-Webhook-Id", id)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: status %d, want 200: %s", id, rec.Code, rec.Body)
		}
	}
	send("flood-1", []byte(`{"type":"message.new","cid":"messaging:x","created_at":"2026-11-24T10:00:00Z",`+
		`"message":{"id":"m1","text":"hello","user":{"id":"u1"}},"user":{"id":"u1"}}`))
	send("ban-1", []byte(`{"type":"user.banned","created_at":"2026-11-24T10:00:00Z","user":{"id":"u2"}}`))

	if len(audit.got) != 2 {
		t.Fatalf("recorded %d deliveries, want 2", len(audit.got))
	}
	if d := audit.got[0]; d.Judge == nil || d.Decision != nil {
		t.Errorf("message.new: Judge %v, Decision %v; want a Judge and no Decision", d.Judge != nil, d.Decision)
	}
	if d := audit.got[1]; d.Judge != nil || d.Decision == nil {
		t.Errorf("user.banned: Judge %v, Decision %v; want a Decision made in the handler", d.Judge != nil, d.Decision)
	}
	line := strings.SplitN(logs.String(), "\n", 2)[0]
	if !strings.Contains(line, `"webhook_id":"flood-1"`) || !strings.Contains(line, `"matched":["flood:enforce"],"actions":2`) ||
		!strings.Contains(line, `"rules_version":"`+rs.Version()+`"`) {
		t.Errorf("log line of the judged message = %s, want the flood match and the rule set version", line)
	}
	if got := counterValue(t, m.ruleMatches.WithLabelValues("flood", "enforce")); got != 1 {
		t.Errorf(`moderator_rule_matches_total{rule="flood"} = %v, want 1`, got)
	}
}
