package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"moderator/store"
	"moderator/store/storetest"
)

// TestUpkeepDropsMonthsPastRetention: a run of the daily upkeep drops the
// months past the retention, counts and logs them, deletes the actions of
// their events (counted and logged by table), and leaves this month's
// partitions and those ahead.
func TestUpkeepDropsMonthsPastRetention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := store.Open(ctx, storetest.Bounded(storetest.NewDatabase(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	old := time.Now().UTC().AddDate(-2, 0, 0)
	if _, err := st.Pool().Exec(ctx, `SELECT moderator_ensure_partitions($1, 0)`, old); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pool().Exec(ctx, `INSERT INTO events (webhook_id, body_sha256, attempt, api_key, compressed,
			body_bytes, received_at, type, own, ignored, payload)
		VALUES ('old', '\x01', 1, 'k', false, 2, $1, 'message.new', false, false, '{}')`, old); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pool().Exec(ctx, `WITH a AS (INSERT INTO actions (event_id, position, rule_id, type, params, idempotency_key, created_at)
			SELECT id, 0, 'r1', 'flag', '{"type":"flag"}', 'old-0', $1 FROM events WHERE webhook_id = 'old' RETURNING id)
		INSERT INTO action_outcomes (action_id, outcome, at) SELECT id, 'applied', $1 FROM a`, old); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	m := newLifecycleMetrics(reg)
	if err := upkeep(ctx, slog.New(slog.NewTextHandler(&logs, nil)), st, DefaultRetention, m); err != nil {
		t.Fatal(err)
	}
	// Two years back to 400 days back: 10 or 11 whole months, two tables each.
	if n := counterValue(t, reg, "moderator_retention_partitions_dropped_total", nil); n < 20 || n > 22 {
		t.Errorf("dropped %v partitions, want 20 to 22", n)
	}
	if !strings.Contains(logs.String(), "partition=events_"+old.Format("2006_01")) {
		t.Errorf("log does not name the dropped partition events_%s:\n%s", old.Format("2006_01"), logs.String())
	}
	for table, want := range map[string]float64{"actions": 1, "action_outcomes": 1, "quarantine": 0} {
		if n := counterValue(t, reg, "moderator_retention_rows_deleted_total", map[string]string{"table": table}); n != want {
			t.Errorf("rows deleted from %s: %v, want %v", table, n, want)
		}
	}
	if !strings.Contains(logs.String(), `msg="rows deleted past retention" table=actions deleted=1`) {
		t.Errorf("log does not say the old action was deleted:\n%s", logs.String())
	}
	var n int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM events WHERE webhook_id = 'old'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("the old event after the upkeep: %d rows (%v), want 0", n, err)
	}
	ahead := time.Now().UTC().AddDate(0, store.PartitionsAhead, 0).Format("2006_01")
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_class WHERE relname IN ($1, $2)`,
		"events_"+ahead, "decisions_"+ahead).Scan(&n); err != nil || n != 2 {
		t.Errorf("partitions of %s after the upkeep: %d (%v), want 2", ahead, n, err)
	}
}
