package webhook

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"moderator/policy"
	"moderator/rules"
)

// discardAudit accepts every delivery without storing it, so the
// benchmark measures the edge's own CPU: read, verify, parse, evaluate.
type discardAudit struct{}

func (discardAudit) RecordEvent(context.Context, Delivery) (Recorded, error) {
	return Recorded{EventID: 1}, nil
}

type fixedRules struct{ rs *policy.RuleSet }

func (f fixedRules) Evaluate(ev *policy.Event) (policy.Decision, bool) {
	return f.rs.Evaluate(ev), true
}

// BenchmarkHandler is the app CPU per webhook (DESIGN.md target ≤ 250 µs)
// with the starter rules and a ≈250-character message, the database aside.
func BenchmarkHandler(b *testing.B) {
	benchmarkHandler(b, Config{Keys: testKeys, BotUserID: "bot"})
}

// BenchmarkHandlerErased is what the set of users erased lately costs a
// delivery about none of them: BenchmarkHandler with no set, then with
// 10,000 erased users; compare the two ns/op of one run.
func BenchmarkHandlerErased(b *testing.B) {
	set := make(erasedSet, 10000)
	for i := range 10000 {
		set[fmt.Sprintf("erased-%d", i)] = true
	}
	b.Run("none", func(b *testing.B) { benchmarkHandler(b, Config{Keys: testKeys, BotUserID: "bot"}) })
	b.Run("10k", func(b *testing.B) { benchmarkHandler(b, Config{Keys: testKeys, BotUserID: "bot", Erased: set}) })
}

func benchmarkHandler(b *testing.B, cfg Config) {
	rs, err := policy.Load(rules.FS)
	if err != nil {
		b.Fatal(err)
	}
	text := "hey @sam check out the new release notes at https://example.com/notes, it looks GREAT " +
		"and the team did a lot of work on the search. Let me know what you think before Friday please, " +
		"we still need to decide on the roadmap for the next quarter and who owns it."
	body := fmt.Appendf(nil, `{"type":"message.new","cid":"messaging:general","created_at":"2026-11-24T12:00:00.123456Z",`+
		`"message":{"id":"m-1","text":%q,"type":"regular","user":{"id":"alice","role":"user","created_at":"2025-01-01T00:00:00Z"},`+
		`"attachments":[],"mentioned_users":[{"id":"sam"}],"created_at":"2026-11-24T12:00:00.123456Z"},`+
		`"user":{"id":"alice","role":"user","created_at":"2025-01-01T00:00:00Z","online":true}}`, text)
	sig := sign(testSecret, body)
	h := Handler(slog.New(slog.NewJSONHandler(io.Discard, nil)), cfg,
		fixedRules{rs}, discardAudit{}, NewMetrics(prometheus.NewRegistry()))
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/webhooks/stream", bytes.NewReader(body))
		req.Header.Set("X-Api-Key", testKey)
		req.Header.Set("X-Signature", sig)
		req.Header.Set("X-Webhook-Id", "w")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
}
