package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"moderator/store"
)

// migrate applies pending migrations and reports what it did, or with
// --status lists them.
func migrate(ctx context.Context, cfg config, stdout io.Writer) error {
	st, err := store.Open(ctx, cfg.migrationURL())
	if err != nil {
		return err
	}
	defer st.Close()
	if cfg.MigrateStatus {
		return migrateStatus(ctx, st, stdout)
	}
	applied, err := st.Migrate(ctx)
	if err != nil {
		return err
	}
	if err := st.GrantRoles(ctx); err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintln(stdout, "migrate: database is up to date")
		return nil
	}
	fmt.Fprintf(stdout, "migrate: applied %v\n", applied)
	return nil
}

// migrateStatus prints one line per migration: applied (with its time) or
// pending, then a summary. A database migrated by a newer binary is listed
// and then reported as an error.
func migrateStatus(ctx context.Context, st *store.Store, stdout io.Writer) error {
	all, err := st.MigrationStatuses(ctx)
	pending := 0
	for _, m := range all {
		state := "applied " + m.AppliedAt.UTC().Format(time.RFC3339)
		if m.AppliedAt.IsZero() {
			state = "pending"
			pending++
		}
		fmt.Fprintf(stdout, "%04d  %-28s %s\n", m.Version, m.Name, state)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "migrate: %d applied, %d pending\n", len(all)-pending, pending)
	return nil
}

// migrationURL is the connection string migrations run with: the owner
// role's (MODERATOR_MIGRATE_DATABASE_URL) when set, else DATABASE_URL.
func (c *config) migrationURL() string {
	if c.MigrateDatabaseURL != "" {
		return c.MigrateDatabaseURL
	}
	return c.DatabaseURL
}
