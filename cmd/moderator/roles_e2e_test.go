package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"moderator/actions/streamtest"
	"moderator/store/storetest"
)

// TestServiceRoleLeastPrivilege: end to end beside store's
// TestServiceRoleCannotChangeTheAuditTrail, the service runs on a login role of the
// moderator_service group (DATABASE_URL) and migrates over the owner's
// (MODERATOR_MIGRATE_DATABASE_URL). A webhook goes all the way through
// (event, decision, action job, Stream call, outcome), yet the same role
// can neither rewrite the audit trail nor switch its trigger off nor drop
// it; an auditor role reads with `moderator audit` and writes nothing but
// its own staff act.
func TestServiceRoleLeastPrivilege(t *testing.T) {
	t.Parallel()
	ownerURL := storetest.NewDatabase(t) // empty: serve migrates it as the owner
	serviceURL := storetest.LoginRole(t, ownerURL, "moderator_service")
	auditorURL := storetest.LoginRole(t, ownerURL, "moderator_auditor")
	e := startActionsOn(t, serviceURL, nil, map[string]string{"MODERATOR_MIGRATE_DATABASE_URL": ownerURL})
	e.mustSend(t, "role-1", authoredBy("role-1", "mallory", "banme forever"))
	e.waitEnded(t, "role-1", 3)
	if n := len(e.fake.Calls(streamtest.RouteBan)); n != 1 {
		t.Fatalf("got %d ban calls, want 1", n)
	}
	e.mustSend(t, "role-2", authoredBy("role-2", "bob", "flagme"))
	if got := e.waitEnded(t, "role-2", 1); got[0].Outcome != "applied" {
		t.Fatalf("flag: %+v, want applied", got)
	}

	ctx := context.Background()
	svc, err := pgx.Connect(ctx, serviceURL)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close(ctx)
	before := auditCounts(t, svc)
	// An overturn locks the actions it reverses: the role may lock them.
	err = pgx.BeginFunc(ctx, svc, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `SELECT id FROM actions ORDER BY id FOR UPDATE`)
		return err
	})
	if err != nil {
		t.Fatalf("the service role cannot lock actions as an overturn does: %v", err)
	}
	for _, sql := range []string{
		`UPDATE events SET payload = '{}'`,
		`UPDATE decisions SET matches = '[]'`,
		`UPDATE actions SET stream_message_id = 'x'`,
		`UPDATE actions SET id = DEFAULT`,
		`DELETE FROM events`,
		`DELETE FROM decisions`,
		`DELETE FROM action_outcomes`,
		`DELETE FROM staff_audit`,
		`TRUNCATE events CASCADE`,
		`ALTER TABLE events DISABLE TRIGGER events_append_only`,
		`ALTER TABLE decisions DISABLE TRIGGER ALL`,
		`DROP TRIGGER events_append_only ON events`,
		`DROP TABLE events CASCADE`,
		`DROP FUNCTION forbid_audit_change() CASCADE`,
		`INSERT INTO schema_migrations (version, name) VALUES (9999, 'x')`,
	} {
		if _, err := svc.Exec(ctx, sql); err == nil {
			t.Errorf("the service role ran %q", sql)
		} else if !refused(err) {
			t.Errorf("%s: %v, want a permission or append-only refusal", sql, err)
		}
	}
	if after := auditCounts(t, svc); after != before {
		t.Fatalf("audit rows %v after the attempts, %v before", after, before)
	}

	// Once migrated, a replica on the service role alone (no owner's URL)
	// starts and becomes ready: migrating finds nothing to do and writes
	// nothing.
	startServer(t, serverOptions{dbURL: serviceURL, stream: e.fake})

	// The auditor reads through `moderator audit` (which records the read)
	// and can change nothing.
	var out, errOut bytes.Buffer
	env := map[string]string{"DATABASE_URL": auditorURL, "USER": "auditor"}
	if err := run(ctx, []string{"audit", "actions"}, func(k string) string { return env[k] }, strings.NewReader(""), &out, &errOut); err != nil {
		t.Fatalf("audit as the auditor: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "mallory") {
		t.Fatalf("audit actions as the auditor does not list mallory's ban:\n%s", out.String())
	}
	aud, err := pgx.Connect(ctx, auditorURL)
	if err != nil {
		t.Fatal(err)
	}
	defer aud.Close(ctx)
	for _, sql := range []string{
		`INSERT INTO counter_marks (event_id, user_id, at, links, young) SELECT id, 'x', now(), 0, false FROM events LIMIT 1`,
		`DELETE FROM console_sessions`,
		`UPDATE rate_budgets SET tokens = 1`,
		`UPDATE river_job SET state = 'available'`,
	} {
		if _, err := aud.Exec(ctx, sql); !refused(err) {
			t.Errorf("the auditor role ran %q: %v", sql, err)
		}
	}
}

// refused reports whether Postgres refused a statement for want of
// privilege (42501) or because the append-only trigger raised.
func refused(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "42501" || strings.Contains(pgErr.Message, "append-only"))
}

// auditCounts counts the rows of the audit tables the attempts aimed at.
func auditCounts(t testing.TB, conn *pgx.Conn) [4]int {
	t.Helper()
	var n [4]int
	err := conn.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM decisions),
		(SELECT count(*) FROM actions), (SELECT count(*) FROM action_outcomes)`).Scan(&n[0], &n[1], &n[2], &n[3])
	if err != nil {
		t.Fatal(err)
	}
	if n[0] == 0 || n[2] == 0 {
		t.Fatalf("audit rows %v: the service recorded nothing", n)
	}
	return n
}
