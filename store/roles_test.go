package store_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"moderator/store"
	"moderator/store/storetest"
)

// loginAs creates a login role of the test's own (roles are cluster-wide:
// named after the test database, dropped at the end) that is a member of
// group, and returns a store connected as it.
func loginAs(t *testing.T, admin *store.Store, dbURL, group string) *store.Store {
	t.Helper()
	ctx := context.Background()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	login := strings.TrimPrefix(u.Path, "/") + "_" + strings.TrimPrefix(group, "moderator_")
	if _, err := admin.Pool().Exec(ctx, "CREATE ROLE "+pgx.Identifier{login}.Sanitize()+" LOGIN IN ROLE "+group); err != nil {
		t.Fatal(err)
	}
	u.User = url.User(login)
	pool, err := pgxpool.New(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pool.Close()
		if _, err := admin.Pool().Exec(context.Background(), "DROP ROLE "+pgx.Identifier{login}.Sanitize()); err != nil {
			t.Errorf("drop role %s: %v", login, err)
		}
	})
	return store.New(pool)
}

// refused asserts that err is Postgres refusing a privilege (not the
// append-only trigger, whose SQLSTATE is the same).
func refused(t *testing.T, what string, err error) {
	t.Helper()
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42501" ||
		!(strings.Contains(pgErr.Message, "permission denied") || strings.Contains(pgErr.Message, "must be owner")) {
		t.Errorf("%s: got %v, want a permission refusal", what, err)
	}
}

// TestServiceRoleCannotChangeTheAuditTrail connects as a member of the
// service role, runs what the service does (start-up migration check,
// recording, the partitions' upkeep, its working tables), and checks that
// it can neither update nor delete audit rows, nor disable, drop or get
// around their triggers.
func TestServiceRoleCannotChangeTheAuditTrail(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dbURL := storetest.NewDatabase(t)
	owner := openURL(t, dbURL)
	if _, err := owner.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	svc := loginAs(t, owner, dbURL, store.ServiceRole)

	if applied, err := svc.Migrate(ctx); err != nil || len(applied) != 0 {
		t.Fatalf("service role starting on a migrated database: applied %v, %v; want nothing to do", applied, err)
	}
	res, err := svc.RecordEvent(ctx, record(t, "svc-1", `{"type":"message.new","message":{"id":"m1","text":"hi","user":{"id":"u1"}}}`))
	if err != nil || res.Duplicate != "" {
		t.Fatalf("service role recording an event: %+v, %v", res, err)
	}
	if _, err := svc.EnsurePartitions(ctx); err != nil {
		t.Errorf("service role creating partitions ahead: %v", err)
	}
	if _, err := svc.DropPartitionsBefore(ctx, time.Now().AddDate(-2, 0, 0)); err != nil {
		t.Errorf("service role dropping expired partitions: %v", err)
	}
	if _, err := svc.DeletePastRetention(ctx, time.Now().AddDate(-2, 0, 0), store.RetentionBatch); err != nil {
		t.Errorf("service role deleting rows past retention: %v", err)
	}
	if _, err := svc.PruneEventKeys(ctx, store.DedupHorizon); err != nil {
		t.Errorf("service role pruning deduplication keys: %v", err)
	}
	// Until a pass has swept up to a settled mark and moved the frontier
	// (other tests' transactions may hold the marks a little).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := svc.IndexEventWords(ctx, 100); err != nil {
			t.Fatalf("service role indexing words for search: %v", err)
		}
		var frontier int64
		if err := owner.Pool().QueryRow(ctx, `SELECT id FROM event_words_frontier`).Scan(&frontier); err != nil {
			t.Fatal(err)
		}
		if frontier >= res.EventID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the word index's frontier is %d, below the recorded event %d", frontier, res.EventID)
		}
	}
	for _, stmt := range []string{
		`UPDATE backtests SET status = status WHERE false`,
		`DELETE FROM counter_marks WHERE false`,
		`UPDATE action_daily_counts SET n = n WHERE false`,
	} {
		if _, err := svc.Pool().Exec(ctx, stmt); err != nil {
			t.Errorf("service role on a working table: %s: %v", stmt, err)
		}
	}

	partition := "events_" + time.Now().UTC().Format("2006_01")
	for _, stmt := range []string{
		`UPDATE events SET payload = '{}'`,
		`DELETE FROM events`,
		`UPDATE decisions SET matches = '[]'`,
		`DELETE FROM staff_audit`,
		`UPDATE action_outcomes SET reason = ''`,
		`TRUNCATE events`,
		`ALTER TABLE events DISABLE TRIGGER events_append_only`,
		`ALTER TABLE ` + partition + ` DISABLE TRIGGER ALL`,
		`ALTER TABLE staff_audit DISABLE TRIGGER staff_audit_append_only`,
		`DROP TRIGGER events_append_only ON events`,
		`UPDATE ` + partition + ` SET payload = '{}'`,
		`DELETE FROM events_default`,
		`DROP TABLE ` + partition,
		`ALTER TABLE events DETACH PARTITION ` + partition,
		`SET session_replication_role = replica`,
		`DELETE FROM schema_migrations`,
		`SET moderator.sanctioned_change = 'retention'; DELETE FROM action_outcomes`,
		`CREATE OR REPLACE FUNCTION forbid_audit_change() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$`,
	} {
		_, err := svc.Pool().Exec(ctx, stmt)
		refused(t, "service role: "+stmt, err)
	}
	var n int
	if err := owner.Pool().QueryRow(ctx, `SELECT count(*) FROM events WHERE webhook_id = 'svc-1' AND payload <> '{}'`).Scan(&n); err != nil || n != 1 {
		t.Errorf("the recorded event after the attempts: %d intact rows (%v), want 1", n, err)
	}

	auditor := loginAs(t, owner, dbURL, store.AuditorRole)
	if err := auditor.Pool().QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&n); err != nil || n != 1 {
		t.Errorf("auditor reading events: %d, %v", n, err)
	}
	if _, err := auditor.Pool().Exec(ctx, `INSERT INTO staff_audit (actor, role, act) VALUES ('cli:ann', 'admin', 'search')`); err != nil {
		t.Errorf("auditor recording its search: %v", err)
	}
	_, err = auditor.Pool().Exec(ctx, `INSERT INTO events (webhook_id, body_sha256, attempt, api_key, compressed, body_bytes,
		type, own, ignored, payload) VALUES ('x', '\x01', 1, 'k', false, 2, 't', false, false, '{}')`)
	refused(t, "auditor writing an event", err)
	_, err = auditor.Pool().Exec(ctx, `UPDATE backtests SET status = status WHERE false`)
	refused(t, "auditor changing a working table", err)
}

func openURL(t *testing.T, dbURL string) *store.Store {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return store.New(pool)
}
