package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"moderator/store"
	"moderator/store/storetest"
)

// recordWithActions records a new event and, in its transaction, actions
// with the given keys; it returns their ids.
func recordWithActions(t *testing.T, st *store.Store, keys ...string) []int64 {
	t.Helper()
	id := t.Name() + fmt.Sprint(time.Now().UnixNano())
	body := fmt.Sprintf(`{"type":"message.new","cid":"messaging:c","message":{"id":%q,"text":"x","user":{"id":"u"}}}`, id)
	var ids []int64
	_, err := st.RecordEvents(context.Background(), []store.EventRecord{record(t, id, body)},
		func(ctx context.Context, tx pgx.Tx, evs []store.NewEvent) error {
			rows := make([]store.ActionRow, len(keys))
			for i, k := range keys {
				rows[i] = store.ActionRow{EventID: evs[0].EventID, Position: i, RuleID: "r", Type: "ban",
					TargetUserID: "u", MessageID: id, ChannelCID: "messaging:c", Params: []byte(`{"type":"ban"}`), Key: k}
			}
			var err error
			ids, err = store.InsertActions(ctx, tx, rows)
			return err
		})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func TestInsertActionsIdempotent(t *testing.T) {
	t.Parallel()
	st := storetest.Store(t)
	key := t.Name() + "-k"
	first := recordWithActions(t, st, key, key+"2")
	if len(first) != 2 || first[0] == 0 || first[1] == 0 {
		t.Fatalf("got ids %v, want two new ids", first)
	}
	again := recordWithActions(t, st, key)
	if len(again) != 1 || again[0] != 0 {
		t.Fatalf("got ids %v for a recorded key, want [0]", again)
	}
}

func TestActionOutcomeRecordedOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.Store(t)
	id := recordWithActions(t, st, t.Name())[0]
	if got, err := st.ActionOutcome(ctx, id); err != nil || got != "" {
		t.Fatalf("got outcome %q, %v before any, want none", got, err)
	}
	for i, want := range []bool{true, false} {
		ok, err := st.RecordOutcome(ctx, store.OutcomeRow{ActionID: id, Outcome: store.OutcomeApplied})
		if err != nil || ok != want {
			t.Fatalf("record outcome %d: got %v, %v, want %v", i+1, ok, err, want)
		}
	}
	if got, _ := st.ActionOutcome(ctx, id); got != store.OutcomeApplied {
		t.Fatalf("got outcome %q, want applied", got)
	}
	if _, err := st.RecordOutcome(ctx, store.OutcomeRow{ActionID: id, Outcome: "maybe"}); err == nil {
		t.Fatal("got nil error for an unknown outcome, want the check constraint")
	}
}

func TestRecordAttemptNumbers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.Store(t)
	id := recordWithActions(t, st, t.Name())[0]
	for want := 1; want <= 3; want++ {
		n, err := st.RecordAttempt(ctx, store.AttemptRow{ActionID: id, Endpoint: "POST /moderation/ban",
			HTTPStatus: 503, StreamCode: -1, Duration: 1500 * time.Microsecond, Error: "unavailable"})
		if err != nil || n != want {
			t.Fatalf("got attempt %d, %v, want %d", n, err, want)
		}
	}
	var ms float64
	if err := st.Pool().QueryRow(ctx, "SELECT duration_ms FROM action_attempts WHERE action_id = $1 AND attempt = 1", id).Scan(&ms); err != nil || ms != 1.5 {
		t.Fatalf("got duration %v ms, %v, want 1.5", ms, err)
	}
}

func TestActionTablesAreAppendOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.Store(t)
	id := recordWithActions(t, st, t.Name())[0]
	if _, err := st.RecordAttempt(ctx, store.AttemptRow{ActionID: id, Endpoint: "e"}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.RecordOutcome(ctx, store.OutcomeRow{ActionID: id, Outcome: store.OutcomeFailed}); err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{
		"UPDATE actions SET rule_id = 'x' WHERE id = $1",
		"DELETE FROM action_attempts WHERE action_id = $1",
		"UPDATE action_outcomes SET outcome = 'applied' WHERE action_id = $1",
	} {
		_, err := st.Pool().Exec(ctx, stmt, id)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Errorf("%s: got %v, want insufficient_privilege from the append-only trigger", stmt, err)
		}
	}
}

func TestTakeDailySlots(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.Store(t)
	typ := t.Name() // a type of its own, so parallel tests do not share the counter
	day := time.Date(2026, 11, 24, 23, 59, 0, 0, time.UTC)
	take := func(day time.Time, want int) int {
		var got []int
		err := pgx.BeginFunc(ctx, st.Pool(), func(tx pgx.Tx) error {
			var err error
			got, err = store.TakeDailySlots(ctx, tx, day, []store.DailyWant{{Type: typ, Want: want, Limit: 5}})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return got[0]
	}
	for i, tt := range []struct{ want, got int }{{2, 2}, {0, 0}, {2, 2}, {3, 1}, {1, 0}} {
		if got := take(day, tt.want); got != tt.got {
			t.Fatalf("take %d: asked %d, got %d, want %d", i+1, tt.want, got, tt.got)
		}
	}
	if got := take(day.Add(time.Minute), 3); got != 3 {
		t.Fatalf("next day: got %d slots, want a fresh count (3)", got)
	}
	// A rollback returns the slots.
	err := pgx.BeginFunc(ctx, st.Pool(), func(tx pgx.Tx) error {
		if _, err := store.TakeDailySlots(ctx, tx, day.Add(48*time.Hour), []store.DailyWant{{Type: typ, Want: 5, Limit: 5}}); err != nil {
			return err
		}
		return errors.New("roll back")
	})
	if err == nil {
		t.Fatal("got nil error, want the rollback")
	}
	if got := take(day.Add(48*time.Hour), 5); got != 5 {
		t.Fatalf("after a rollback: got %d slots, want 5", got)
	}
}

// TestTakeDailySlotsOfSeveralTypes: one call counts each type against its
// own cap, answering in the caller's order (not the order the rows are
// locked in); a cap of 0 grants nothing, and a type wanting nothing is not
// counted. Batches racing for the same caps from many connections, each
// with the types in a different order, never deadlock and are granted
// exactly the caps between them.
func TestTakeDailySlotsOfSeveralTypes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.Store(t)
	day := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	a, b, c, d := t.Name()+"-a", t.Name()+"-b", t.Name()+"-c", t.Name()+"-d"
	var got []int
	err := pgx.BeginFunc(ctx, st.Pool(), func(tx pgx.Tx) error {
		var err error
		got, err = store.TakeDailySlots(ctx, tx, day, []store.DailyWant{
			{Type: c, Want: 4, Limit: 3}, {Type: a, Want: 2, Limit: 10}, {Type: d, Want: 0, Limit: 10}, {Type: b, Want: 1, Limit: 0}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{3, 2, 0, 0}; !slices.Equal(got, want) {
		t.Fatalf("granted %v, want %v", got, want)
	}
	var rows int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM action_daily_counts WHERE type = $1`, d).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 0 {
		t.Errorf("a type wanting nothing got %d counter rows, want none", rows)
	}

	const batches, limit = 40, 25
	race := day.Add(24 * time.Hour)
	var wg sync.WaitGroup
	total := make([]int, batches*2)
	errs := make(chan error, batches)
	for i := range batches {
		wg.Go(func() {
			wants := []store.DailyWant{{Type: a, Want: 1 + i%3, Limit: limit}, {Type: b, Want: 1 + i%2, Limit: limit}}
			if i%2 == 1 {
				wants[0], wants[1] = wants[1], wants[0]
			}
			err := pgx.BeginFunc(ctx, st.Pool(), func(tx pgx.Tx) error {
				g, err := store.TakeDailySlots(ctx, tx, race, wants)
				if err != nil {
					return err
				}
				for j, w := range wants {
					if g[j] < 0 || g[j] > w.Want {
						return fmt.Errorf("granted %d of %s, asked %d", g[j], w.Type, w.Want)
					}
					if w.Type == a {
						total[2*i] = g[j]
					} else {
						total[2*i+1] = g[j]
					}
				}
				return nil
			})
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var sumA, sumB int
	for i := range batches {
		sumA, sumB = sumA+total[2*i], sumB+total[2*i+1]
	}
	if sumA != limit || sumB != limit {
		t.Fatalf("granted %d of %s and %d of %s between %d batches, want %d each", sumA, a, sumB, b, batches, limit)
	}
	for _, typ := range []string{a, b} {
		var n int
		if err := st.Pool().QueryRow(ctx, `SELECT n FROM action_daily_counts WHERE day = $1::date AND type = $2`,
			race.Format(time.DateOnly), typ).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != limit {
			t.Errorf("%s's counter = %d, want the cap %d", typ, n, limit)
		}
	}
}
