package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5/pgxpool"

	"moderator/store"
	"moderator/store/storetest"
)

func TestReadMigrationsRefusesGaps(t *testing.T) {
	t.Parallel()
	sql := &fstest.MapFile{Data: []byte("SELECT 1;")}
	tests := []struct {
		name    string
		files   fstest.MapFS
		wantErr string
	}{
		{"contiguous", fstest.MapFS{"0001_a.up.sql": sql, "0002_b.up.sql": sql}, ""},
		{"a gap", fstest.MapFS{"0001_a.up.sql": sql, "0003_c.up.sql": sql}, "0003_c: version 2 is missing"},
		{"not from one", fstest.MapFS{"0002_b.up.sql": sql}, "0002_b: version 1 is missing"},
		{"a version twice", fstest.MapFS{"0001_a.up.sql": sql, "1_b.up.sql": sql}, "version 1 already used"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := store.ReadMigrations(tt.files)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("got %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
	// The embedded set itself is contiguous (0007 fills the old gap).
	if _, err := store.Migrations(); err != nil {
		t.Errorf("embedded migrations: %v", err)
	}
}

func TestMigrationStatusesAndUnknownVersion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, storetest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	st := store.New(pool)
	all, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}

	before, err := st.MigrationStatuses(ctx)
	if err != nil {
		t.Fatalf("status of a new database: %v", err)
	}
	if len(before) != len(all) {
		t.Fatalf("got %d statuses, want %d", len(before), len(all))
	}
	for _, m := range before {
		if !m.AppliedAt.IsZero() {
			t.Errorf("%04d applied on a new database", m.Version)
		}
	}

	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	after, err := st.MigrationStatuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range after {
		if m.AppliedAt.IsZero() {
			t.Errorf("%04d still pending after Migrate", m.Version)
		}
	}

	// A newer binary migrated this database: refuse, change nothing.
	newer := all[len(all)-1].Version + 1
	if _, err := pool.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, 'from_the_future')", newer); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Migrate(ctx); !errors.Is(err, store.ErrUnknownMigration) {
		t.Errorf("Migrate with an unknown applied version: got %v, want ErrUnknownMigration", err)
	}
	if _, err := st.MigrationStatuses(ctx); !errors.Is(err, store.ErrUnknownMigration) {
		t.Errorf("MigrationStatuses with an unknown applied version: got %v, want ErrUnknownMigration", err)
	}
}
