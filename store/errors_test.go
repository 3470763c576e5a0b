package store_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"moderator/store"
	"moderator/store/storetest"
)

// TestIsPermanent provokes each kind of failure from a real Postgres and
// checks how it is classified: what no retry can mend is permanent (the
// record goes to quarantine), the rest is transient (retried, or spooled).
func TestIsPermanent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.Store(t)
	if _, err := st.Pool().Exec(ctx, `CREATE TABLE IF NOT EXISTS classify_test (
		k text PRIMARY KEY, v text NOT NULL, j jsonb)`); err != nil {
		t.Fatal(err)
	}
	id := t.Name()
	if _, err := st.Pool().Exec(ctx, `INSERT INTO classify_test (k, v) VALUES ($1, 'x')`, id); err != nil {
		t.Fatal(err)
	}
	exec := func(sql string, args ...any) error {
		_, err := st.Pool().Exec(ctx, sql, args...)
		return err
	}
	tests := []struct {
		name      string
		err       error
		permanent bool
	}{
		{"NUL in text (22021)", exec(`INSERT INTO classify_test (k, v) VALUES ($1, $2)`, id+"nul", "a\x00b"), true},
		{"lone surrogate in jsonb (22P02)", exec(`SELECT '"\ud800"'::jsonb`), true},
		{"NUL escape in jsonb (22P05)", exec(`SELECT '"\u0000"'::jsonb`), true},
		{"index row too large (54000)", exec(`INSERT INTO classify_test (k, v) VALUES ($1, 'x')`, incompressible(8000)), true},
		{"not null (23502)", exec(`INSERT INTO classify_test (k, v) VALUES ($1, NULL)`, id+"null"), true},
		{"unique violation outside dedup keys (23505)", exec(`INSERT INTO classify_test (k, v) VALUES ($1, 'y')`, id), true},
		{"race on a dedup key (23505 event_keys_webhook_id_key)", dedupRace(t, st), false},
		{"missing table (42P01)", exec(`SELECT * FROM no_such_table`), false},
		{"read-only transaction (25006)", exec(`SET TRANSACTION READ ONLY; INSERT INTO classify_test (k, v) VALUES ('ro', 'x')`), false},
		{"cancelled statement (57014)", exec(`SET statement_timeout = 1; SELECT pg_sleep(1)`), false},
		{"context deadline", context.DeadlineExceeded, false},
		{"undecodable decision", fmt.Errorf("x: %w", store.ErrRefusedRecordForTest), true},
	}
	for _, tt := range tests {
		if tt.err == nil {
			t.Errorf("%s: no error provoked", tt.name)
			continue
		}
		if code := sqlstate(tt.name); code != "" {
			var pgErr *pgconn.PgError
			if !errors.As(tt.err, &pgErr) || pgErr.Code != code {
				t.Errorf("%s: provoked %v, want SQLSTATE %s", tt.name, tt.err, code)
			}
		}
		if got := store.IsPermanent(tt.err); got != tt.permanent {
			t.Errorf("%s: IsPermanent(%v) = %v, want %v", tt.name, tt.err, got, tt.permanent)
		}
		if got := store.IsTransient(tt.err); got == tt.permanent {
			t.Errorf("%s: IsTransient(%v) = %v, want %v", tt.name, tt.err, got, !tt.permanent)
		}
	}
	if store.IsTransient(nil) || store.IsPermanent(nil) {
		t.Error("nil error classified")
	}
	if !errors.Is(tests[len(tests)-1].err, store.ErrRefusedRecordForTest) {
		t.Error("wrapped marker lost")
	}
}

// dedupRace inserts an event's keys twice without ON CONFLICT, as a
// second replica racing the first would fail.
func dedupRace(t *testing.T, st *store.Store) error {
	t.Helper()
	ctx := context.Background()
	insert := `INSERT INTO event_keys (webhook_id, body_sha256, event_id, received_at) VALUES ($1, $2, 0, now())`
	wid := t.Name() + "-race"
	if _, err := st.Pool().Exec(ctx, insert, wid, []byte(wid+"1")); err != nil {
		t.Fatal(err)
	}
	_, err := st.Pool().Exec(ctx, insert, wid, []byte(wid+"2"))
	return err
}

// incompressible returns n hex digits of random data: Postgres cannot
// compress them under its index row limit.
func incompressible(n int) string {
	b := make([]byte, n/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// sqlstate returns the SQLSTATE a case's name announces in parentheses.
func sqlstate(name string) string {
	_, after, ok := strings.Cut(name, "(")
	if !ok {
		return ""
	}
	code, _, _ := strings.Cut(after, " ")
	return strings.TrimSuffix(code, ")")
}
