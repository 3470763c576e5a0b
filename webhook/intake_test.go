package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"moderator/spool"
)

// flakyAudit records deliveries in order, failing while down is set (as
// an unreachable database does) and refusing for good the webhook ids in
// refuse (as Postgres refuses a record it can never store).
type flakyAudit struct {
	mu       sync.Mutex
	down     bool
	refuse   map[string]bool
	recorded []Delivery
	seen     map[string]bool
}

var (
	errDown    = errors.New("connection refused")
	errRefused = errors.New("invalid byte sequence")
)

func (a *flakyAudit) RecordEvent(_ context.Context, d Delivery) (Recorded, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.down:
		return Recorded{}, errDown
	case a.refuse[d.WebhookID]:
		return Recorded{}, errRefused
	case a.seen[d.WebhookID]:
		return Recorded{Duplicate: "webhook_id"}, nil
	}
	if a.seen == nil {
		a.seen = map[string]bool{}
	}
	a.seen[d.WebhookID] = true
	a.recorded = append(a.recorded, d)
	return Recorded{EventID: int64(len(a.recorded))}, nil
}

func (a *flakyAudit) setDown(down bool) {
	a.mu.Lock()
	a.down = down
	a.mu.Unlock()
}

func (a *flakyAudit) ids() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for _, d := range a.recorded {
		out = append(out, d.WebhookID)
	}
	return out
}

type intakeBundle struct {
	in    *Intake
	audit *flakyAudit
	spool *spool.Spool
	dir   string
	h     http.Handler
}

func newIntakeBundle(t *testing.T, maxBytes int64) *intakeBundle {
	t.Helper()
	dir := t.TempDir()
	sp, _, err := spool.Open(dir, spool.Options{MaxBytes: maxBytes})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	audit := &flakyAudit{refuse: map[string]bool{}}
	cfg := Config{Keys: testKeys, BotUserID: "bot",
		Transient: func(err error) bool { return errors.Is(err, errDown) }}
	in := NewIntake(slog.New(slog.NewJSONHandler(t.Output(), nil)), cfg, noRules{}, audit, sp,
		NewMetrics(prometheus.NewRegistry()))
	return &intakeBundle{in: in, audit: audit, spool: sp, dir: dir, h: in.Handler()}
}

func testEvent(id string) []byte {
	return fmt.Appendf(nil, `{"type":"message.new","cid":"messaging:x","created_at":"2026-11-24T10:00:00Z",`+
		`"message":{"id":%q,"text":"hello","user":{"id":"u1"}},"user":{"id":"u1"}}`, id)
}

func (b *intakeBundle) send(t *testing.T, id string, raw []byte, body []byte) (int, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/webhooks/stream", bytes.NewReader(raw))
	req.Header.Set("X-Api-Key", testKey)
	req.Header.Set("X-Signature", sign(testSecret, body))
	req.Header.Set("X-Webhook-Id", id)
	req.Header.Set("X-Webhook-Attempt", "2")
	rec := httptest.NewRecorder()
	b.h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// TestIntakeSpoolsAndReplaysInOrder: while the audit log fails for a
// transient reason, deliveries are spooled (200 spooled), later ones
// join them even once it answers, and the replayer records them in
// arrival order with their headers and receive time, a spooled copy of a
// recorded event as a duplicate.
func TestIntakeSpoolsAndReplaysInOrder(t *testing.T) {
	t.Parallel()
	b := newIntakeBundle(t, 0)
	if code, body := b.send(t, "a", testEvent("a"), testEvent("a")); code != 200 || !strings.Contains(body, `"recorded"`) {
		t.Fatalf("a: %d %s, want 200 recorded", code, body)
	}
	b.audit.setDown(true)
	before := time.Now()
	gz := gzipped(t, testEvent("b"))
	for _, d := range []struct {
		id        string
		raw, body []byte
	}{{"b", gz, testEvent("b")}, {"c", testEvent("c"), testEvent("c")}, {"a", testEvent("a"), testEvent("a")}} {
		if code, body := b.send(t, d.id, d.raw, d.body); code != 200 || !strings.Contains(body, `"status":"spooled"`) {
			t.Fatalf("%s while down: %d %s, want 200 spooled", d.id, code, body)
		}
	}
	b.audit.setDown(false)
	// Behind the backlog, a new delivery waits its turn in the spool.
	if code, body := b.send(t, "d", testEvent("d"), testEvent("d")); code != 200 || !strings.Contains(body, `"spooled"`) {
		t.Fatalf("d behind the backlog: %d %s, want 200 spooled", code, body)
	}
	if degraded, err := b.in.Ready(); err != nil || len(degraded) == 0 || degraded[0] != "spooling" {
		t.Fatalf("Ready while spooling: %v %v, want degraded: spooling", degraded, err)
	}

	b.in.drain(context.Background())
	if diff := cmp.Diff([]string{"a", "b", "c", "d"}, b.audit.ids()); diff != "" {
		t.Fatalf("recorded (-want +got):\n%s", diff)
	}
	got := b.audit.recorded[1]
	if got.APIKey != testKey || got.Attempt != 2 || !got.Compressed || !bytes.Equal(got.Body, testEvent("b")) ||
		got.ReceivedAt.Before(before) || got.ReceivedAt.After(time.Now()) || got.Event.MessageIDOrEmpty() != "b" {
		t.Errorf("replayed b = key %q attempt %d gzip %v received %s body %q; want its delivery as received",
			got.APIKey, got.Attempt, got.Compressed, got.ReceivedAt, got.Body)
	}
	if b.spool.Len() != 0 {
		t.Fatalf("spool holds %d records after the replay, want 0", b.spool.Len())
	}
	if degraded, err := b.in.Ready(); err != nil || len(degraded) != 0 {
		t.Fatalf("Ready once drained: %v %v, want ready", degraded, err)
	}
	if got := counterValue(t, b.in.m.replayed.WithLabelValues(OutcomeDuplicate)); got != 1 {
		t.Errorf("replayed duplicates = %v, want 1", got)
	}
}

// TestIntakeReplayWaitsForTheDatabase: a replay that fails transiently
// keeps the records, in order, for the next attempt.
func TestIntakeReplayWaitsForTheDatabase(t *testing.T) {
	t.Parallel()
	b := newIntakeBundle(t, 0)
	b.audit.setDown(true)
	for _, id := range []string{"x", "y"} {
		if code, _ := b.send(t, id, testEvent(id), testEvent(id)); code != 200 {
			t.Fatalf("%s: %d, want 200", id, code)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	b.in.drain(ctx) // fails until cancelled
	cancel()
	if n := b.spool.Len(); n != 2 || len(b.audit.ids()) != 0 {
		t.Fatalf("after failed replays: spool %d, recorded %v; want both still spooled", n, b.audit.ids())
	}
	if got := counterValue(t, b.in.m.replayErrors); got == 0 {
		t.Error("replay errors not counted")
	}
	b.audit.setDown(false)
	b.in.drain(context.Background())
	if diff := cmp.Diff([]string{"x", "y"}, b.audit.ids()); diff != "" {
		t.Fatalf("recorded (-want +got):\n%s", diff)
	}
}

// TestIntakeSetsAsideWhatTheDatabaseRefuses: a spooled delivery the
// database refuses for good does not block the ones behind it: it is
// copied to the set-aside folder, byte for byte, and left behind.
func TestIntakeSetsAsideWhatTheDatabaseRefuses(t *testing.T) {
	t.Parallel()
	b := newIntakeBundle(t, 0)
	b.audit.setDown(true)
	for _, id := range []string{"p", "poison", "q"} {
		if code, _ := b.send(t, id, testEvent(id), testEvent(id)); code != 200 {
			t.Fatalf("%s: %d, want 200", id, code)
		}
	}
	b.audit.setDown(false)
	b.audit.refuse["poison"] = true
	b.in.drain(context.Background())
	if diff := cmp.Diff([]string{"p", "q"}, b.audit.ids()); diff != "" {
		t.Fatalf("recorded (-want +got):\n%s", diff)
	}
	files, err := filepath.Glob(filepath.Join(b.dir, spool.SetAsideDir, "*.rec"))
	if err != nil || len(files) != 1 {
		t.Fatalf("set-aside files: %v %v, want one", files, err)
	}
	raw, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	d, err := b.in.decode(raw)
	if err != nil || d.WebhookID != "poison" || !bytes.Equal(d.Body, testEvent("poison")) {
		t.Fatalf("set-aside record: %+v %v, want the poison delivery", d.WebhookID, err)
	}
}

// TestIntakeFullSpoolAnswers503: with the database down and no room in
// the spool, the answer is 503 (Stream retries) and Ready says why.
func TestIntakeFullSpoolAnswers503(t *testing.T) {
	t.Parallel()
	b := newIntakeBundle(t, 600)
	b.audit.setDown(true)
	codes := map[int]int{}
	for i := range 5 {
		id := fmt.Sprint("f", i)
		code, _ := b.send(t, id, testEvent(id), testEvent(id))
		codes[code]++
	}
	if codes[200] == 0 || codes[503] == 0 {
		t.Fatalf("answers %v, want some 200 (spooled) then 503 (full)", codes)
	}
	if _, err := b.in.Ready(); err == nil || !strings.Contains(err.Error(), "spool is full") {
		t.Fatalf("Ready with a full spool: %v, want spool is full", err)
	}
}

// TestIntakeWithoutSpoolReportsFailingCommits: without a spool, commits
// failing for more than a few seconds make the intake unready.
func TestIntakeWithoutSpoolReportsFailingCommits(t *testing.T) {
	t.Parallel()
	audit := &flakyAudit{down: true}
	in := NewIntake(slog.New(slog.NewJSONHandler(io.Discard, nil)), Config{Keys: testKeys}, noRules{}, audit, nil,
		NewMetrics(prometheus.NewRegistry()))
	in.health.note(errDown, in.transient)
	if _, err := in.Ready(); err != nil {
		t.Fatalf("Ready right after a failure: %v, want ready (a moment's failure is no outage)", err)
	}
	in.health.mu.Lock()
	in.health.since = time.Now().Add(-commitFailureGrace - time.Second)
	in.health.mu.Unlock()
	if _, err := in.Ready(); err == nil || !strings.Contains(err.Error(), "commits failing") {
		t.Fatalf("Ready after commits failed for a while: %v, want commits failing", err)
	}
	in.health.note(nil, in.transient)
	if _, err := in.Ready(); err != nil {
		t.Fatalf("Ready after a commit: %v", err)
	}
}

// TestSpoolRecordRoundTrip: a delivery survives the spool's encoding.
func TestSpoolRecordRoundTrip(t *testing.T) {
	t.Parallel()
	in := &Intake{cfg: Config{BotUserID: "bot"}}
	body := testEvent("rt")
	v, perr := parseVerified(testKey, body, true)
	if perr != nil {
		t.Fatal(perr)
	}
	at := time.Date(2026, 12, 4, 10, 0, 0, 123, time.UTC)
	d := in.delivery("wh-rt", 3, *v, at)
	got, err := in.decode(encodeDelivery(d))
	if err != nil {
		t.Fatal(err)
	}
	if got.WebhookID != "wh-rt" || got.Attempt != 3 || got.APIKey != testKey || !got.Compressed ||
		!got.ReceivedAt.Equal(at) || got.SHA256 != d.SHA256 || got.Event.MessageIDOrEmpty() != "rt" {
		t.Fatalf("round trip: %+v", got)
	}
	for _, bad := range [][]byte{nil, {9}, {spoolFormat, 200}, encodeDelivery(d)[:8]} {
		if _, err := in.decode(bad); !errors.Is(err, errSpoolRecord) {
			t.Errorf("decode %v: got %v, want errSpoolRecord", bad, err)
		}
	}
}
