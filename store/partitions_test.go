package store_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"moderator/store"
	"moderator/store/storetest"
)

// openEmpty returns a store on a database of the test's own with no
// migration applied.
func openEmpty(t *testing.T) *store.Store {
	t.Helper()
	return openURL(t, storetest.NewDatabase(t))
}

// openAt returns a store on a database of the test's own migrated up to
// version v: as an older release left it.
func openAt(t *testing.T, v int) *store.Store {
	t.Helper()
	st := openEmpty(t)
	if err := st.MigrateTo(context.Background(), v); err != nil {
		t.Fatal(err)
	}
	return st
}

// beforeLZ4 is the last migration before events' payloads were compressed
// with lz4 (0031).
const beforeLZ4 = 30

// insertOldEvent writes an event (and a decision on it) received at at,
// as the service would have, straight in SQL; it returns the event's and
// the decision's ids.
func insertOldEvent(t *testing.T, st *store.Store, key string, at time.Time) (eventID, decisionID int64) {
	t.Helper()
	ctx := context.Background()
	sum := sha256.Sum256([]byte(key))
	if err := st.Pool().QueryRow(ctx, `INSERT INTO events (webhook_id, body_sha256, attempt, api_key, compressed,
			body_bytes, received_at, type, user_id, message_id, own, ignored, payload, rule_set_version)
		VALUES ($1, $2, 1, 'k', false, 2, $3, 'message.new', 'u1', $1, false, false,
			jsonb_build_object('message', jsonb_build_object('text', 'text of ' || $1::text)), 'v1') RETURNING id`,
		key, sum[:], at).Scan(&eventID); err != nil {
		t.Fatalf("insert event %s: %v", key, err)
	}
	if err := st.Pool().QueryRow(ctx, `INSERT INTO decisions (event_id, decided_at, rule_set_version, matched_rules,
			enforced_rules, user_id, matches, actions, errors)
		VALUES ($1, $2, 'v1', '{r1}', '{r1}', 'u1', '[]', '[]', '[]') RETURNING id`, eventID, at).Scan(&decisionID); err != nil {
		t.Fatalf("insert decision of %s: %v", key, err)
	}
	if _, err := st.Pool().Exec(ctx, `INSERT INTO event_words (event_id, received_at, words)
		VALUES ($1, $2, to_tsvector('simple', 'text'))`, eventID, at); err != nil {
		t.Fatalf("insert words of %s: %v", key, err)
	}
	return eventID, decisionID
}

func appeal(t *testing.T, st *store.Store, decisionID int64) int64 {
	t.Helper()
	var id int64
	if err := st.Pool().QueryRow(context.Background(), `INSERT INTO appeals (user_id, decision_id, statement, source, recorded_by)
		VALUES ('u1', $1, 'not me', 'email', 'ann') RETURNING id`, decisionID).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

func decideAppeal(t *testing.T, st *store.Store, appealID int64) {
	t.Helper()
	if _, err := st.Pool().Exec(context.Background(), `INSERT INTO appeal_decisions (appeal_id, outcome, reviewer, reason)
		VALUES ($1, 'upheld', 'ann', 'rule applies')`, appealID); err != nil {
		t.Fatal(err)
	}
}

// TestPartitionMigrationKeepsHistory migrates a database an older release
// filled, and checks that the conversion kept every row, its ids, the
// append-only trigger and the deduplication of what was recorded before.
func TestPartitionMigrationKeepsHistory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openAt(t, 16)
	old := time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC)
	oldEvent, oldDecision := insertOldEvent(t, st, "wh-old", old)
	newEvent, _ := insertOldEvent(t, st, "wh-new", time.Now())
	appeal(t, st, oldDecision)
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}

	var partition string
	if err := st.Pool().QueryRow(ctx, `SELECT tableoid::regclass::text FROM events WHERE id = $1`, oldEvent).Scan(&partition); err != nil {
		t.Fatal(err)
	}
	if partition != "events_2025_03" {
		t.Errorf("old event in partition %s, want events_2025_03", partition)
	}
	var events, decisions int
	if err := st.Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM events WHERE id IN ($1, $2)),
		(SELECT count(*) FROM decisions WHERE event_id IN ($1, $2))`, oldEvent, newEvent).Scan(&events, &decisions); err != nil {
		t.Fatal(err)
	}
	if events != 2 || decisions != 2 {
		t.Errorf("after the migration: %d events and %d decisions of 2", events, decisions)
	}
	for _, stmt := range []string{
		`UPDATE events SET payload = '{}' WHERE id = $1`,
		`DELETE FROM events WHERE id = $1`,
		`UPDATE decisions SET matches = '[]' WHERE event_id = $1`,
	} {
		_, err := st.Pool().Exec(ctx, stmt, oldEvent)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Errorf("%s: got %v, want the append-only trigger's refusal", stmt, err)
		}
	}

	// A retry of the event recorded before the migration is a duplicate.
	res, err := st.RecordEvent(ctx, record(t, "wh-new", `{"type":"message.new","message":{"id":"wh-new","text":"hi","user":{"id":"u1"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if res.Duplicate != store.DuplicateWebhookID || res.EventID != newEvent {
		t.Errorf("retry of a migrated event: %+v, want a webhook_id duplicate of %d", res, newEvent)
	}
	fresh, err := st.RecordEvent(ctx, record(t, "wh-fresh", `{"type":"message.new","message":{"id":"wh-fresh","text":"hi","user":{"id":"u1"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if fresh.Duplicate != "" || fresh.EventID <= newEvent {
		t.Errorf("new event after the migration: %+v, want a new id above %d", fresh, newEvent)
	}
}

// TestDropPartitionsBefore drops the months past the cutoff, except one
// an open appeal depends on, which goes once the appeal is decided.
func TestDropPartitionsBefore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openEmpty(t)
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pool().Exec(ctx, `SELECT moderator_ensure_partitions('2024-01-01', 3)`); err != nil {
		t.Fatal(err)
	}
	month := func(m time.Month) time.Time { return time.Date(2024, m, 10, 0, 0, 0, 0, time.UTC) }
	_, appealed := insertOldEvent(t, st, "feb", month(time.February))
	marchEvent, _ := insertOldEvent(t, st, "mar", month(time.March))
	_, decided := insertOldEvent(t, st, "apr", month(time.April))
	juneEvent, _ := insertOldEvent(t, st, "jun", month(time.June))
	open := appeal(t, st, appealed)
	decideAppeal(t, st, appeal(t, st, decided))

	parts, err := st.DropPartitionsBefore(ctx, time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	var dropped, kept []string
	for _, p := range parts {
		if p.Kept {
			kept = append(kept, p.Name)
		} else {
			dropped = append(dropped, p.Name)
		}
	}
	slices.Sort(dropped)
	slices.Sort(kept)
	if want := []string{"decisions_2024_01", "decisions_2024_03", "decisions_2024_04", "decisions_2024_05",
		"events_2024_01", "events_2024_03", "events_2024_04", "events_2024_05"}; !slices.Equal(dropped, want) {
		t.Errorf("dropped %v, want %v", dropped, want)
	}
	if want := []string{"decisions_2024_02", "events_2024_02"}; !slices.Equal(kept, want) {
		t.Errorf("kept %v, want %v", kept, want)
	}
	var n int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM events WHERE id = $1`, juneEvent).Scan(&n); err != nil || n != 1 {
		t.Errorf("June's event after the drop: %d rows (%v), want 1", n, err)
	}
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM event_words WHERE event_id = $1`, marchEvent).Scan(&n); err != nil || n != 0 {
		t.Errorf("March's words after the drop: %d rows (%v), want 0", n, err)
	}

	decideAppeal(t, st, open)
	parts, err = st.DropPartitionsBefore(ctx, time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 2 || parts[0].Kept || parts[1].Kept || parts[0].Month != time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC) {
		t.Errorf("after the appeal is decided: %+v, want February's two partitions dropped", parts)
	}
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM events WHERE received_at < '2024-06-01'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("events before the cutoff: %d (%v), want 0", n, err)
	}
}

// TestEnsurePartitionsAhead creates this month's and the next months'
// partitions once, whoever calls it again.
func TestEnsurePartitionsAhead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openEmpty(t)
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pool().Exec(ctx, `DROP TABLE events_`+time.Now().UTC().AddDate(0, 0, 0).Format("2006_01")); err != nil {
		t.Fatal(err)
	}
	n, err := st.EnsurePartitions(ctx)
	if err != nil || n != 1 {
		t.Errorf("EnsurePartitions after this month's events partition was dropped: %d, %v; want 1 created", n, err)
	}
	if n, err := st.EnsurePartitions(ctx); err != nil || n != 0 {
		t.Errorf("EnsurePartitions again: %d, %v; want 0", n, err)
	}
	last := time.Now().UTC()
	last = time.Date(last.Year(), last.Month()+store.PartitionsAhead, 1, 0, 0, 0, 0, time.UTC)
	var exists bool
	if err := st.Pool().QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, "decisions_"+last.Format("2006_01")).Scan(&exists); err != nil || !exists {
		t.Errorf("decisions partition %s months ahead: exists=%v (%v)", last.Format("2006_01"), exists, err)
	}
}

// TestPruneEventKeys forgets the deduplication keys past the horizon and
// keeps the others.
func TestPruneEventKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openEmpty(t)
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	insertOldEvent(t, st, "ancient", time.Now().Add(-store.DedupHorizon-time.Hour))
	if _, err := st.Pool().Exec(ctx, `INSERT INTO event_keys (body_sha256, webhook_id, event_id, received_at)
		SELECT body_sha256, webhook_id, id, received_at FROM events`); err != nil {
		t.Fatal(err)
	}
	if _, err := st.RecordEvent(ctx, record(t, "recent", `{"type":"message.new","message":{"id":"recent","text":"hi","user":{"id":"u1"}}}`)); err != nil {
		t.Fatal(err)
	}
	n, err := st.PruneEventKeys(ctx, store.DedupHorizon)
	if err != nil || n != 1 {
		t.Errorf("PruneEventKeys: %d, %v; want 1", n, err)
	}
	res, err := st.RecordEvent(ctx, record(t, "recent", `{"type":"message.new","message":{"id":"recent","text":"hi","user":{"id":"u1"}}}`))
	if err != nil || res.Duplicate != store.DuplicateWebhookID {
		t.Errorf("retry within the horizon after pruning: %+v, %v; want a duplicate", res, err)
	}
}

// TestPayloadsCompressedWithLZ4 migrates a database holding a payload
// compressed with pglz and checks that it reads back whole, that a
// webhook recorded afterwards is compressed with lz4 (migration 0031), and
// that so is one in a month's partition created after the migration.
func TestPayloadsCompressedWithLZ4(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openAt(t, beforeLZ4)
	// A body long and repetitive enough to be compressed (rows past 2 KB).
	body := func(id string) string {
		return `{"type":"message.new","message":{"id":"` + id + `","text":"` + strings.Repeat("spam and eggs ", 300) +
			`","user":{"id":"u1"}}}`
	}
	old, err := st.RecordEvent(ctx, record(t, "wh-pglz", body("wh-pglz")))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	fresh, err := st.RecordEvent(ctx, record(t, "wh-lz4", body("wh-lz4")))
	if err != nil {
		t.Fatal(err)
	}
	// A month far ahead gets its partition now, after the migration.
	later := time.Now().AddDate(0, 40, 0)
	if _, err := st.Pool().Exec(ctx, `SELECT moderator_ensure_partitions($1, 40)`, time.Now()); err != nil {
		t.Fatal(err)
	}
	laterRec := record(t, "wh-later", body("wh-later"))
	laterRec.ReceivedAt = later
	laterRes, err := st.RecordEvent(ctx, laterRec)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		id   int64
		want string
	}{{old.EventID, "pglz"}, {fresh.EventID, "lz4"}, {laterRes.EventID, "lz4"}} {
		var method, part, text string
		if err := st.Pool().QueryRow(ctx, `SELECT pg_column_compression(payload), tableoid::regclass::text,
				payload #>> '{message,text}' FROM events WHERE id = $1`, c.id).Scan(&method, &part, &text); err != nil {
			t.Fatalf("event %d: %v", c.id, err)
		}
		if method != c.want {
			t.Errorf("event %d (in %s): payload compressed with %q, want %q", c.id, part, method, c.want)
		}
		if text != strings.Repeat("spam and eggs ", 300) {
			t.Errorf("event %d: the payload's text reads back as %d bytes, want the %d sent", c.id, len(text), 300*14)
		}
	}
}

// TestPayloadsLZ4WaitsForABusyTable: migration 0031 does not hold
// recording behind a query on events in flight for more than a moment; it
// leaves pglz and the migrations go on.
func TestPayloadsLZ4WaitsForABusyTable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openAt(t, beforeLZ4)
	// A long read of events (an export) holds its share lock meanwhile.
	reader, err := st.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Rollback(ctx)
	if _, err := reader.Exec(ctx, `SELECT count(*) FROM events`); err != nil {
		t.Fatal(err)
	}
	// Were the migration to wait for the reader, it would wait for good:
	// the reader ends below.
	migrateCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := st.Migrate(migrateCtx); err != nil {
		t.Fatalf("migrate beside a reader of events: %v", err)
	}
	var methods []string
	if err := st.Pool().QueryRow(ctx, `SELECT array_agg(DISTINCT attcompression::text) FROM pg_attribute
		WHERE attname = 'payload' AND attrelid::regclass::text LIKE 'events%'`).Scan(&methods); err != nil {
		t.Fatal(err)
	}
	if len(methods) != 1 || methods[0] != "" {
		t.Errorf("payload compression beside a busy table: %q, want pglz (the default) left everywhere", methods)
	}
	if err := reader.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := st.RecordEvent(ctx, record(t, "wh-after", `{"type":"message.new","message":{"id":"wh-after","text":"hi","user":{"id":"u1"}}}`))
	if err != nil || res.Duplicate != "" {
		t.Fatalf("record after the migrations: %+v, %v", res, err)
	}
}
