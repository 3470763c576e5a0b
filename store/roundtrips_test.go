package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"moderator/store"
	"moderator/store/storetest"
)

// TestRecordEventsRoundTrips: a batch costs two round trips: BEGIN with the
// events INSERT (and the history read when records are judged), then the
// decisions, the hooks' queued statements and COMMIT; a hook's
// continuation adds the statements it runs, and sends what it queued last
// with the COMMIT, in one more. Each batch's events are committed when it
// returns.
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
		store.QueueLinks(w, []store.MessageKey{{EventID: evs[0].EventID}}, time.Minute, func([]store.BeforeSendLink) {})
		return func(ctx context.Context, tx pgx.Tx, last *store.Writes, _ []store.NewEvent) error {
			last.Queue("SELECT 2").Exec(func(pgconn.CommandTag) error { lastRan++; return nil })
			_, err := tx.Exec(ctx, "SELECT 1")
			return err
		}, nil
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
			store.Hooks{}, []string{"batch", "batch"}},
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
	if lastRan != 1 {
		t.Errorf("the continuation's last statement ran %d times, want once", lastRan)
	}
}

func eventIDs(res []store.RecordResult) []int64 {
	ids := make([]int64, len(res))
	for i, r := range res {
		ids[i] = r.EventID
	}
	return ids
}
