package erasure_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"testing"

	"moderator/erasure"
	"moderator/policy"
	"moderator/store"
	"moderator/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

// spoolAt is a spool that answers n (or err), and notes what the database
// held for the user when it was called: the spool must be erased first.
type spoolAt struct {
	st     *store.Store
	n      int
	err    error
	called []string
	texts  []string
}

func (s *spoolAt) EraseSpooled(ctx context.Context, userID string) (int, error) {
	s.called = append(s.called, userID)
	var text string
	_ = s.st.Pool().QueryRow(ctx, `SELECT payload #>> '{message,text}' FROM events WHERE user_id = $1`, userID).Scan(&text)
	s.texts = append(s.texts, text)
	return s.n, s.err
}

func recordMessage(t *testing.T, st *store.Store, userID, text string) {
	t.Helper()
	body := []byte(`{"type":"message.new","message":{"id":"m-` + userID + `","text":"` + text + `","user":{"id":"` + userID + `"}},"user":{"id":"` + userID + `"}}`)
	ev, err := policy.ParseEvent(body)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.RecordEvent(context.Background(), store.EventRecord{WebhookID: "w-" + userID, BodySHA256: sha256.Sum256(body),
		Attempt: 1, APIKey: "k", Payload: body, Event: ev}); err != nil {
		t.Fatal(err)
	}
}

func erasures(t *testing.T, st *store.Store, userID string) (n int, actor string) {
	t.Helper()
	if err := st.Pool().QueryRow(context.Background(), `SELECT count(*), coalesce(max(actor), '') FROM staff_audit
		WHERE act = 'erase' AND target_user_id = $1`, userID).Scan(&n, &actor); err != nil {
		t.Fatal(err)
	}
	return n, actor
}

// TestEraseSpoolThenDatabase: the spool is erased first (the database
// still held the text when it was called), then the database; the counts
// include the spool's, and the act is recorded.
func TestEraseSpoolThenDatabase(t *testing.T) {
	t.Parallel()
	st := storetest.Store(t)
	recordMessage(t, st, "erasure-ann", "secret words")
	sp := &spoolAt{st: st, n: 3}
	e := erasure.New(st, slog.New(slog.NewTextHandler(t.Output(), nil)))
	e.Spool = sp
	res, err := e.Erase(context.Background(), "erasure-ann", store.StaffAct{Actor: "ann", Role: "admin", Reason: "ticket 1"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Counts["spool"] != 3 || res.Counts["events"] != 1 {
		t.Errorf("counts %v, want spool 3 and events 1", res.Counts)
	}
	if len(sp.texts) != 1 || sp.texts[0] != "secret words" {
		t.Errorf("the database held %q when the spool was erased, want the text still there", sp.texts)
	}
	if n, actor := erasures(t, st, "erasure-ann"); n != 1 || actor != "ann" {
		t.Errorf("staff audit: %d acts by %q, want 1 by ann", n, actor)
	}
}

// TestEraseStopsWhenTheSpoolFails: a spool that cannot be rewritten stops
// the erasure before the database: nothing redacted, nothing recorded,
// the error says so (the caller retries). A bad id reaches neither.
func TestEraseStopsWhenTheSpoolFails(t *testing.T) {
	t.Parallel()
	st := storetest.Store(t)
	recordMessage(t, st, "erasure-bob", "bob text")
	sp := &spoolAt{st: st, err: errors.New("disk failing")}
	e := erasure.New(st, slog.New(slog.NewTextHandler(t.Output(), nil)))
	e.Spool = sp
	if _, err := e.Erase(context.Background(), "erasure-bob", store.StaffAct{Actor: "ann", Role: "admin"}); err == nil ||
		!errors.Is(err, sp.err) {
		t.Errorf("erase with a failing spool: %v, want its error", err)
	}
	var text string
	if err := st.Pool().QueryRow(context.Background(), `SELECT payload #>> '{message,text}' FROM events WHERE user_id = 'erasure-bob'`).Scan(&text); err != nil || text != "bob text" {
		t.Errorf("after the failed erasure the event holds %q (%v), want it unchanged", text, err)
	}
	if n, _ := erasures(t, st, "erasure-bob"); n != 0 {
		t.Errorf("a failed erasure recorded %d acts, want none", n)
	}
	_, err := e.Erase(context.Background(), " ", store.StaffAct{Actor: "ann", Role: "admin"})
	if ie, ok := store.IsInputError(err); !ok || ie.Field != "user_id" || len(sp.called) != 1 {
		t.Errorf("a blank id: %v (spool called %d times), want an input error on user_id before the spool", err, len(sp.called))
	}
}

// TestEraseUserIsTheSystems: the erasure Stream's user.deleted asks for
// is recorded as the system's act, with its reason.
func TestEraseUserIsTheSystems(t *testing.T) {
	t.Parallel()
	st := storetest.Store(t)
	recordMessage(t, st, "erasure-cy", "cy text")
	e := erasure.New(st, slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err := e.EraseUser(context.Background(), "erasure-cy"); err != nil {
		t.Fatal(err)
	}
	var actor, reason string
	if err := st.Pool().QueryRow(context.Background(), `SELECT actor, reason FROM staff_audit WHERE act = 'erase'
		AND target_user_id = 'erasure-cy'`).Scan(&actor, &reason); err != nil || actor != store.ActorSystem || reason == "" {
		t.Errorf("staff audit: %q %q (%v), want the system's act with a reason", actor, reason, err)
	}
}
