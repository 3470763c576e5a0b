package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"moderator/policy"
	"moderator/store"
	"moderator/store/storetest"
)

// TestRecordEventsRoundTrips: a batch costs two round trips: BEGIN with the
// events INSERT (and the history read when records are judged), then the
// decisions, the hooks' queued statements and COMMIT; a hook's
// continuation adds the statements it runs, and sends what it queued last
// with the COMMIT, in one more. A batch with nothing to write after its
// events (none judged, no decision to write, hooks that say they are
// quiet) commits with its insert, in one. Each batch's events are
// committed when it returns.
func TestRecordEventsRoundTrips(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, trace := storetest.TracedStore(t)
	pool := st.Pool()
	j := newJudging(t, counterRules)
	batch := func(name string, n int) []store.EventRecord {
		var recs []store.EventRecord
		for i := range n {
			m := message{id: fmt.Sprintf("%s-%d", name, i), user: "u-" + name, channel: "messaging:c", text: "hello",
				at: t0.Add(time.Duration(i) * time.Second)}
			recs = append(recs, j.record(t, m.id, m.body()))
		}
		return recs
	}
	lastRan := 0
	queued := func(_ context.Context, w *store.Writes, evs []store.NewEvent) (store.Continuation, error) {
		w.Queue("SELECT $1::bigint", evs[0].EventID)
		return func(ctx context.Context, tx pgx.Tx, last *store.Writes, _ []store.NewEvent) error {
			last.Queue("SELECT 2").Exec(func(pgconn.CommandTag) error { lastRan++; return nil })
			_, err := tx.Exec(ctx, "SELECT 1")
			return err
		}, nil
	}
	// An early statement sees the batch's events, found by body hash.
	earlyRan := 0
	early := func(w *store.Writes, recs []store.EventRecord) {
		w.Queue(`SELECT count(*) FROM event_keys WHERE body_sha256 = $1 AND xmin = pg_current_xact_id()::xid`,
			recs[0].BodySHA256[:]).QueryRow(func(row pgx.Row) error {
			var n int
			if err := row.Scan(&n); err != nil {
				return err
			}
			if n == 1 {
				earlyRan++
			}
			return nil
		})
	}
	tests := []struct {
		name  string
		recs  []store.EventRecord
		hooks store.Hooks
		want  []string
	}{
		// Five messages a minute trip flood: decisions to write.
		{"judged with decisions and hooks", batch("flood", 6), store.Hooks{Queue: queued},
			[]string{"batch", "batch", "SELECT", "batch"}},
		{"judged, nothing to write", batch("calm", 1), store.Hooks{},
			[]string{"batch", "batch"}},
		{"not judged", []store.EventRecord{record(t, "plain", `{"type":"message.new","message":{"id":"plain","user":{"id":"p"}}}`)},
			store.Hooks{}, []string{"batch"}},
		{"not judged, quiet hooks", []store.EventRecord{record(t, "quiet", `{"type":"reaction.new","message":{"id":"quiet"}}`)},
			store.Hooks{Queue: mustNotRun, Quiet: func([]store.EventRecord) bool { return true }}, []string{"batch"}},
		{"not judged, hooks that do not say", []store.EventRecord{record(t, "unsaid", `{"type":"reaction.new","message":{"id":"unsaid"}}`)},
			store.Hooks{Queue: queued}, []string{"batch", "batch", "SELECT", "batch"}},
		{"not judged, hooks with work", []store.EventRecord{record(t, "busy", `{"type":"reaction.new","message":{"id":"busy"}}`)},
			store.Hooks{Queue: queued, Quiet: func([]store.EventRecord) bool { return false }}, []string{"batch", "batch", "SELECT", "batch"}},
		{"not judged, a decision to write", []store.EventRecord{decided(t, "decided")}, store.Hooks{}, []string{"batch", "batch"}},
		{"not judged, early statements", []store.EventRecord{record(t, "early", `{"type":"message.new","message":{"id":"early","user":{"id":"e"}}}`)},
			store.Hooks{Early: early}, []string{"batch"}},
		{"judged, early statements", batch("early", 2), store.Hooks{Early: early}, []string{"batch", "batch"}},
	}
	for _, tt := range tests {
		trace.Take()
		res, err := st.RecordEventsWith(ctx, tt.recs, tt.hooks)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		got := trace.Take()
		var visible int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE id = ANY($1)`, eventIDs(res)).Scan(&visible); err != nil {
			t.Fatal(err)
		}
		if visible != len(tt.recs) {
			t.Errorf("%s: %d of %d events committed", tt.name, visible, len(tt.recs))
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("%s: round trips %v, want %v", tt.name, got, tt.want)
		}
		if last := res[len(res)-1].Decision; len(tt.recs) == 6 && (last == nil || len(last.Matches) == 0) {
			t.Errorf("%s: the sixth message's decision %+v, want flood matched", tt.name, last)
		}
	}
	if earlyRan != 2 {
		t.Errorf("the early hooks' statement ran %d times, want once in each of two batches", earlyRan)
	}
	if lastRan != 3 {
		t.Errorf("the continuation's last statement ran %d times, want once in each of the three batches with hooks at work", lastRan)
	}
	var decisions int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM decisions d JOIN events e ON e.id = d.event_id
		WHERE e.webhook_id = 'decided'`).Scan(&decisions); err != nil {
		t.Fatal(err)
	}
	if decisions != 1 {
		t.Errorf("%d decisions recorded for the decided event, want 1", decisions)
	}
}

// TestRecordEventsAloneDuplicates: a batch committed with its insert still
// says which records repeat an event, and of which one.
func TestRecordEventsAloneDuplicates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, trace := storetest.TracedStore(t)
	body := `{"type":"reaction.new","message":{"id":"again"}}`
	first, err := st.RecordEventsWith(ctx, []store.EventRecord{record(t, "again-1", body)}, store.Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	trace.Take()
	res, err := st.RecordEventsWith(ctx, []store.EventRecord{record(t, "again-1", body), record(t, "again-2", body),
		record(t, "fresh", `{"type":"reaction.new","message":{"id":"fresh"}}`)}, store.Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	if got := trace.Take(); len(got) == 0 || got[0] != "batch" || slices.Contains(got[1:], "batch") {
		t.Errorf("round trips %v, want one pipeline (and the duplicates' lookup)", got)
	}
	want := []string{store.DuplicateWebhookID, store.DuplicateBody, ""}
	for i, r := range res {
		if r.Duplicate != want[i] {
			t.Errorf("record %d: duplicate %q, want %q", i, r.Duplicate, want[i])
		}
		if i < 2 && r.EventID != first[0].EventID {
			t.Errorf("record %d: event %d, want the first one's %d", i, r.EventID, first[0].EventID)
		}
	}
	if res[2].EventID == 0 || res[2].EventID == first[0].EventID {
		t.Errorf("the fresh record's event id %d", res[2].EventID)
	}
}

// mustNotRun is a queue hook for batches whose hooks said they were quiet.
func mustNotRun(context.Context, *store.Writes, []store.NewEvent) (store.Continuation, error) {
	return nil, errors.New("a quiet hook ran")
}

// decided is a record not judged but decided ahead: a rule matched, with
// no action.
func decided(t *testing.T, id string) store.EventRecord {
	t.Helper()
	rec := record(t, id, `{"type":"message.updated","message":{"id":"`+id+`","user":{"id":"d"}}}`)
	rec.Decision = &policy.Decision{RuleSetVersion: "v1", Matches: []policy.Match{{RuleID: "edit", Mode: policy.ModeShadow}}}
	return rec
}

func eventIDs(res []store.RecordResult) []int64 {
	ids := make([]int64, len(res))
	for i, r := range res {
		ids[i] = r.EventID
	}
	return ids
}
