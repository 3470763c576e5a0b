package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"moderator/store"
	"moderator/store/storetest"
)

// scanRowQuery answers a row of the kinds of columns the recording
// transaction reads: numbers, text that may be NULL, bytes, times, arrays.
const scanRowQuery = `SELECT n, 'id-' || n, CASE WHEN n % 2 = 0 THEN NULL ELSE 'odd' END, sha256(n::text::bytea),
	timestamptz '2026-12-06 10:00:00+00' + n * interval '1 second', ARRAY['a', 'b', n::text]
	FROM generate_series($1::bigint, $2::bigint) AS n`

type scannedRow struct {
	n     int64
	id    string
	odd   *string
	sum   []byte
	at    time.Time
	items []string
}

func (r *scannedRow) dest() []any { return []any{&r.n, &r.id, &r.odd, &r.sum, &r.at, &r.items} }

// scanAll reads the rows of scanRowQuery from lo to hi with scan.
func scanAll(t *testing.T, conn *pgx.Conn, lo, hi int64, scan func(pgx.Rows, ...any) error) []scannedRow {
	t.Helper()
	rows, err := conn.Query(context.Background(), scanRowQuery, lo, hi)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []scannedRow
	for rows.Next() {
		var r scannedRow
		if err := scan(rows, r.dest()...); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// connect returns a connection of its own, which has kept no plans yet.
func connect(t *testing.T) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), storetest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func TestScanRowScansAsPgxDoes(t *testing.T) {
	c := connect(t)

	want := scanAll(t, c, 1, 4, func(rows pgx.Rows, dest ...any) error { return rows.Scan(dest...) })
	first := scanAll(t, c, 1, 4, store.ScanRow)
	kept := store.ScanPlansKept(c)
	// A second result on the same connection scans with the plans kept
	// from the first, and plans nothing new.
	again := scanAll(t, c, 1, 4, store.ScanRow)
	for _, got := range [][]scannedRow{first, again} {
		if !slices.EqualFunc(got, want, func(a, b scannedRow) bool {
			return a.n == b.n && a.id == b.id && (a.odd == nil) == (b.odd == nil) && (a.odd == nil || *a.odd == *b.odd) &&
				string(a.sum) == string(b.sum) && a.at.Equal(b.at) && slices.Equal(a.items, b.items)
		}) {
			t.Fatalf("scanRow read %+v, rows.Scan %+v", got, want)
		}
	}
	if kept != 6 || store.ScanPlansKept(c) != kept {
		t.Errorf("plans kept: %d after the first result, %d after the second; want 6 and 6", kept, store.ScanPlansKept(c))
	}
	if want[1].odd != nil || want[0].odd == nil || len(want[3].sum) != 32 {
		t.Fatalf("the query's rows are not what the test means to scan: %+v", want)
	}
}

// scanFirst scans the first row of query into dest with store.ScanRow.
func scanFirst(t *testing.T, c *pgx.Conn, query string, dest ...any) error {
	t.Helper()
	rows, err := c.Query(context.Background(), query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	if !rows.Next() {
		t.Fatalf("%s: no row (%v)", query, rows.Err())
	}
	return store.ScanRow(rows, dest...)
}

func TestScanRowRefusesAsPgxDoes(t *testing.T) {
	c := connect(t)
	var n int64
	var name string

	// NULL into a string: the error names the column, as pgx's does.
	err := scanFirst(t, c, `SELECT 1::bigint AS n, NULL::text AS name`, &n, &name)
	var argErr pgx.ScanArgError
	if !errors.As(err, &argErr) || argErr.ColumnIndex != 1 || argErr.FieldName != "name" {
		t.Errorf("NULL into a string: %v, want a ScanArgError for column 1 (name)", err)
	}

	// Too few destinations: an error, not a partial row.
	if err := scanFirst(t, c, `SELECT 1::bigint, 2::bigint`, &n); err == nil {
		t.Error("two columns into one destination: no error")
	}

	// A nil destination skips its column.
	if err := scanFirst(t, c, `SELECT 7::bigint, 'skipped'`, &n, nil); err != nil || n != 7 {
		t.Errorf("a nil destination: %v, n = %d; want nil and 7", err, n)
	}
}
