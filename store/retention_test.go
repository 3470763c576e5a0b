package store_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"moderator/store"
)

// insertAction writes an action of event eventID created at at, as the
// service would have, with one call and its attempt; with an outcome
// unless outcome is empty. It returns the action's id.
func insertAction(t *testing.T, st *store.Store, eventID int64, key string, at time.Time, outcome string) int64 {
	t.Helper()
	ctx := context.Background()
	var id int64
	if err := st.Pool().QueryRow(ctx, `INSERT INTO actions (event_id, position, rule_id, type, target_user_id, params,
			idempotency_key, created_at)
		VALUES ($1, 0, 'r1', 'ban', 'u1', '{"type":"ban","rule_id":"r1"}', $2, $3) RETURNING id`, eventID, key, at).Scan(&id); err != nil {
		t.Fatalf("insert action %s: %v", key, err)
	}
	if _, err := st.Pool().Exec(ctx, `INSERT INTO action_calls (action_id, attempt, endpoint, started_at)
		VALUES ($1, 1, 'POST /moderation/ban', $2)`, id, at); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pool().Exec(ctx, `INSERT INTO action_attempts (action_id, attempt, endpoint, http_status, duration_ms, at)
		VALUES ($1, 1, 'POST /moderation/ban', 201, 12, $2)`, id, at); err != nil {
		t.Fatal(err)
	}
	if outcome != "" {
		if _, err := st.Pool().Exec(ctx, `INSERT INTO action_outcomes (action_id, outcome, at) VALUES ($1, $2, $3)`,
			id, outcome, at); err != nil {
			t.Fatal(err)
		}
	}
	return id
}

// TestDeletePastRetention: past the cutoff, the rows of events whose month
// was dropped go, in batches, with their actions' calls, attempts and
// outcomes, and so do old quarantined deliveries and daily counts; the
// rows of a month kept for an open appeal stay, as do the actions staff
// reviewed, an action not finished, and everything recent.
func TestDeletePastRetention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openEmpty(t)
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pool().Exec(ctx, `SELECT moderator_ensure_partitions('2024-01-01', 3)`); err != nil {
		t.Fatal(err)
	}
	jan := time.Date(2024, 1, 10, 0, 0, 0, 0, time.UTC)
	feb := time.Date(2024, 2, 10, 0, 0, 0, 0, time.UTC)
	now := time.Now().UTC()
	cutoff := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)

	janEvent, _ := insertOldEvent(t, st, "jan", jan)
	janSend, _ := insertOldEvent(t, st, "jan-send", jan)
	_, febDecision := insertOldEvent(t, st, "feb", feb)
	febEvent := eventOf(t, st, febDecision)
	newEvent, _ := insertOldEvent(t, st, "new", now)
	appeal(t, st, febDecision) // open: February stays whole

	gone := []int64{insertAction(t, st, janEvent, "jan-0", jan, "applied"), insertAction(t, st, janEvent, "jan-1", jan, "failed")}
	unfinished := insertAction(t, st, janEvent, "jan-pending", jan, "")
	appealed := insertAction(t, st, janEvent, "jan-appealed", jan, "applied")
	var appealID int64
	if err := st.Pool().QueryRow(ctx, `INSERT INTO appeals (user_id, action_id, statement, source, recorded_by)
		VALUES ('u1', $1, 'not me', 'email', 'ann') RETURNING id`, appealed).Scan(&appealID); err != nil {
		t.Fatal(err)
	}
	decideAppeal(t, st, appealID)
	overturned := insertAction(t, st, janEvent, "jan-overturned", jan, "applied")
	reversal := overturnAction(t, st, overturned, jan)
	febAction := insertAction(t, st, febEvent, "feb-0", feb, "applied")
	newAction := insertAction(t, st, newEvent, "new-0", now, "applied")

	for _, stmt := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO before_send_keys (event_id, link_key, outcome, received_at)
			VALUES ($1, '\x01', 'rewrite', $3), ($2, '\x02', 'rewrite', now())`, []any{janSend, newEvent, jan}},
		{`INSERT INTO before_send_links (message_event_id, before_send_event_id, outcome, linked_at)
			VALUES ($1, $2, 'rewrite', $4), ($3, $3, 'rewrite', now())`, []any{janEvent, janSend, newEvent, jan}},
		{`INSERT INTO event_raw_bodies (event_id, body) VALUES ($1, '\x00'), ($2, '\x00'), ($3, '\x00')`,
			[]any{janEvent, newEvent, febEvent}},
		{`INSERT INTO quarantine (quarantined_at, attempt, api_key, compressed, body_sha256, body, headers, error)
			VALUES ($1, 1, 'k', false, '\x01', '\x00', '{}', 'old'), (now(), 1, 'k', false, '\x02', '\x00', '{}', 'new')`, []any{jan}},
		{`INSERT INTO action_daily_counts (day, type, n) VALUES ($1::timestamptz::date, 'ban', 3), (now()::date, 'ban', 1)`, []any{jan}},
	} {
		if _, err := st.Pool().Exec(ctx, stmt.sql, stmt.args...); err != nil {
			t.Fatalf("%s: %v", stmt.sql, err)
		}
	}

	if _, err := st.DropPartitionsBefore(ctx, cutoff); err != nil {
		t.Fatal(err)
	}
	deleted, err := st.DeletePastRetention(ctx, cutoff, 1) // batches of one: the loop must go round
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"action_calls": 2, "action_attempts": 2, "action_outcomes": 2, "actions": 2,
		"before_send_keys": 1, "before_send_links": 1, "event_raw_bodies": 1, "quarantine": 1, "action_daily_counts": 1}
	if diff := cmp.Diff(want, deleted); diff != "" {
		t.Errorf("deleted (-want +got):\n%s", diff)
	}
	if got, want := slices.Sorted(maps.Keys(deleted)), slices.Sorted(slices.Values(store.RetainedTables)); !slices.Equal(got, want) {
		t.Errorf("tables reported %v, want store.RetainedTables %v", got, want)
	}

	var left []int64
	if err := st.Pool().QueryRow(ctx, `SELECT array_agg(id ORDER BY id) FROM actions`).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int64{unfinished, appealed, overturned, reversal, febAction, newAction}, left); diff != "" {
		t.Errorf("actions left (-want +got), gone should be %v:\n%s", gone, diff)
	}
	var orphans int
	if err := st.Pool().QueryRow(ctx, `SELECT
			(SELECT count(*) FROM action_calls WHERE action_id = ANY($1)) + (SELECT count(*) FROM action_attempts WHERE action_id = ANY($1))
			+ (SELECT count(*) FROM action_outcomes WHERE action_id = ANY($1))`, gone).Scan(&orphans); err != nil || orphans != 0 {
		t.Errorf("rows of the deleted actions left: %d (%v), want 0", orphans, err)
	}
	var rest [5]int
	if err := st.Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM before_send_keys WHERE event_id = $1),
			(SELECT count(*) FROM before_send_links WHERE message_event_id = $1),
			(SELECT count(*) FROM event_raw_bodies WHERE event_id IN ($1, $2)),
			(SELECT count(*) FROM quarantine WHERE error = 'new'),
			(SELECT count(*) FROM action_daily_counts WHERE day = now()::date)`, newEvent, febEvent).
		Scan(&rest[0], &rest[1], &rest[2], &rest[3], &rest[4]); err != nil {
		t.Fatal(err)
	}
	if rest != [5]int{1, 1, 2, 1, 1} {
		t.Errorf("recent and kept rows (keys, links, raw bodies, quarantine, daily counts): %v, want [1 1 2 1 1]", rest)
	}

	again, err := st.DeletePastRetention(ctx, cutoff, store.RetentionBatch)
	if err != nil {
		t.Fatal(err)
	}
	for table, n := range again {
		if n != 0 {
			t.Errorf("second run deleted %d rows of %s, want 0", n, table)
		}
	}
	if _, err := st.Pool().Exec(ctx, `DELETE FROM actions WHERE id = $1`, febAction); err == nil {
		t.Errorf("a DELETE outside retention went through the append-only trigger")
	}
}

// eventOf returns the event a decision judged.
func eventOf(t *testing.T, st *store.Store, decisionID int64) int64 {
	t.Helper()
	var id int64
	if err := st.Pool().QueryRow(context.Background(), `SELECT event_id FROM decisions WHERE id = $1`, decisionID).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// overturnAction records an overturn of actionID with its reversal action,
// as the staff API would, and returns the reversal's id.
func overturnAction(t *testing.T, st *store.Store, actionID int64, at time.Time) int64 {
	t.Helper()
	ctx := context.Background()
	var overturnID, eventID, reversal int64
	if err := st.Pool().QueryRow(ctx, `INSERT INTO overturns (action_id, reviewer, reason, created_at)
		VALUES ($1, 'ann', 'a quote', $2) RETURNING id`, actionID, at).Scan(&overturnID); err != nil {
		t.Fatal(err)
	}
	if err := st.Pool().QueryRow(ctx, `SELECT event_id FROM actions WHERE id = $1`, actionID).Scan(&eventID); err != nil {
		t.Fatal(err)
	}
	if err := st.Pool().QueryRow(ctx, `INSERT INTO actions (event_id, position, rule_id, type, target_user_id, params,
			idempotency_key, created_at, reverses_action_id, overturn_id)
		VALUES ($1, 0, 'r1', 'unban', 'u1', '{"type":"unban","rule_id":"r1"}', $5, $3, $2, $4) RETURNING id`,
		eventID, actionID, at, overturnID, fmt.Sprintf("undo-%d", actionID)).Scan(&reversal); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pool().Exec(ctx, `INSERT INTO action_outcomes (action_id, outcome, at) VALUES ($1, 'applied', $2)`, reversal, at); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pool().Exec(ctx, `INSERT INTO action_reversals (overturn_id, action_id, disposition, reversal_action_id)
		VALUES ($1, $2, 'reversed', $3)`, overturnID, actionID, reversal); err != nil {
		t.Fatal(err)
	}
	return reversal
}
