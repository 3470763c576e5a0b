package webhook

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"moderator/policy"
	"moderator/rules"
)

// queueAudit keeps what was enqueued; full refuses everything.
type queueAudit struct {
	mu   sync.Mutex
	got  []Delivery
	full bool
}

func (q *queueAudit) Enqueue(d Delivery) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.full {
		return false
	}
	q.got = append(q.got, d)
	return true
}

// counterValue reads one counter.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

type noRules struct{}

func (noRules) Evaluate(*policy.Event) (policy.Decision, bool) { return policy.Decision{}, false }

type panickyRules struct{}

func (panickyRules) Evaluate(*policy.Event) (policy.Decision, bool) { panic("boom") }

func beforeSendBody(text, userID string) []byte {
	return fmt.Appendf(nil, `{"message":{"id":"","text":%q,"type":"regular","attachments":[],"mentioned_users":[]},`+
		`"user":{"id":%q,"role":"user","created_at":"2025-01-01T00:00:00Z"},`+
		`"channel":{"cid":"messaging:general","id":"general","type":"messaging"},`+
		`"request_info":{"type":"client","ip":"1.2.3.4"}}`, text, userID)
}

func TestBeforeSendHandler(t *testing.T) {
	t.Parallel()
	rs, err := policy.Load(rules.FS)
	if err != nil {
		t.Fatal(err)
	}
	sample, err := os.ReadFile("../testdata/samples/before_message_send-1.json")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		rules       Rules
		body        []byte
		sig         string // "" signs the body
		full        bool
		wantStatus  int
		wantBody    string
		wantOutcome string
		wantFail    string // fail-open reason counted
		wantQueued  int
	}{
		{name: "accept", rules: fixedRules{rs}, body: beforeSendBody("hello there", "alice"),
			wantStatus: 200, wantBody: `{}`, wantOutcome: BeforeSendAccept, wantQueued: 1},
		{name: "Stream's sample accepted", rules: fixedRules{rs}, body: sample,
			wantStatus: 200, wantBody: `{}`, wantOutcome: BeforeSendAccept, wantQueued: 1},
		{name: "block", rules: fixedRules{rs}, body: beforeSendBody("free nitro https://discord-nitro.gift/x <3", "alice"),
			wantStatus: 200, wantBody: `{"message":{"type":"error","text":"Your message was not sent: discord-nitro.gift is a known scam site."}}`,
			wantOutcome: BeforeSendBlock, wantQueued: 1},
		{name: "rewrite", rules: fixedRules{rs}, body: beforeSendBody("what the fuck <b>", "alice"),
			wantStatus: 200, wantBody: `{"message":{"text":"what the f*** <b>"}}`, wantOutcome: BeforeSendRewrite, wantQueued: 1},
		{name: "own bot message unevaluated", rules: panickyRules{}, body: beforeSendBody("what the fuck", "bot"),
			wantStatus: 200, wantBody: `{}`, wantOutcome: BeforeSendOwn, wantQueued: 1},
		{name: "no rules fail open", rules: noRules{}, body: beforeSendBody("what the fuck", "alice"),
			wantStatus: 200, wantBody: `{}`, wantOutcome: BeforeSendFailOpen, wantFail: FailOpenNoRules, wantQueued: 1},
		{name: "panic fail open", rules: panickyRules{}, body: beforeSendBody("what the fuck", "alice"),
			wantStatus: 200, wantBody: `{}`, wantOutcome: BeforeSendFailOpen, wantFail: FailOpenPanic, wantQueued: 1},
		{name: "queue full still answers", rules: fixedRules{rs}, body: beforeSendBody("what the fuck", "alice"), full: true,
			wantStatus: 200, wantBody: `{"message":{"text":"what the f***"}}`, wantOutcome: BeforeSendRewrite},
		{name: "bad signature", rules: fixedRules{rs}, body: beforeSendBody("hello", "alice"), sig: sign("wrong", []byte("x")),
			wantStatus: 401, wantBody: `{"error":"invalid X-Signature"}`, wantOutcome: OutcomeUnauthorized},
		{name: "missing signature", rules: fixedRules{rs}, body: beforeSendBody("hello", "alice"), sig: "-",
			wantStatus: 401, wantBody: `{"error":"missing X-Signature"}`, wantOutcome: OutcomeUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := NewMetrics(prometheus.NewRegistry())
			audit := &queueAudit{full: tt.full}
			h := BeforeSendHandler(slog.New(slog.NewJSONHandler(io.Discard, nil)), Config{Keys: testKeys, BotUserID: "bot"}, tt.rules, audit, m)
			req := httptest.NewRequest(http.MethodPost, "/webhooks/stream/before-send", bytes.NewReader(tt.body))
			req.Header.Set("X-Api-Key", testKey)
			switch tt.sig {
			case "":
				req.Header.Set("X-Signature", sign(testSecret, tt.body))
			case "-":
			default:
				req.Header.Set("X-Signature", tt.sig)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Errorf("status %d, want %d", rec.Code, tt.wantStatus)
			}
			if got := bytes.TrimSuffix(rec.Body.Bytes(), []byte("\n")); string(got) != tt.wantBody {
				t.Errorf("body %s, want %s", got, tt.wantBody)
			}
			if got := counterValue(t, m.beforeSend.WithLabelValues(tt.wantOutcome)); got != 1 {
				t.Errorf("moderator_before_send_total{outcome=%q} = %v, want 1", tt.wantOutcome, got)
			}
			if tt.wantFail != "" {
				if got := counterValue(t, m.beforeSendFailOpen.WithLabelValues(tt.wantFail)); got != 1 {
					t.Errorf("fail_open{reason=%q} = %v, want 1", tt.wantFail, got)
				}
			}
			if tt.full {
				if got := counterValue(t, m.beforeSendAuditDropped); got != 1 {
					t.Errorf("audit dropped = %v, want 1", got)
				}
			}
			if len(audit.got) != tt.wantQueued {
				t.Fatalf("queued %d deliveries, want %d", len(audit.got), tt.wantQueued)
			}
			if tt.wantQueued > 0 {
				if got := audit.got[0].Event.Type; got != policy.EventBeforeSend {
					t.Errorf("queued event type %q, want %q", got, policy.EventBeforeSend)
				}
			}
		})
	}
}

// BenchmarkBeforeSendHandler is the CPU per before-send request with the
// starter rules, the database aside.
func BenchmarkBeforeSendHandler(b *testing.B) {
	rs, err := policy.Load(rules.FS)
	if err != nil {
		b.Fatal(err)
	}
	body := beforeSendBody("hey @sam check out the new release notes at https://example.com/notes, it looks GREAT "+
		"and the team did a lot of work on the search, what the fuck", "alice")
	sig := sign(testSecret, body)
	h := BeforeSendHandler(slog.New(slog.NewJSONHandler(io.Discard, nil)), Config{Keys: testKeys, BotUserID: "bot"},
		fixedRules{rs}, &queueAudit{full: true}, NewMetrics(prometheus.NewRegistry()))
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/webhooks/stream/before-send", bytes.NewReader(body))
		req.Header.Set("X-Api-Key", testKey)
		req.Header.Set("X-Signature", sig)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
}
