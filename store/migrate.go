package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"moderator/migrations"
)

// migrationLockKey is the pg_advisory_xact_lock key that serialises
// migrations between replicas starting at the same moment ("moderator" in
// ASCII, truncated to fit a bigint).
const migrationLockKey int64 = 0x6d6f6465726174

// Migration is one forward-only schema change.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations returns the embedded migrations in version order.
func Migrations() ([]Migration, error) { return readMigrations(migrations.FS) }

func readMigrations(fsys fs.FS) ([]Migration, error) {
	names, err := fs.Glob(fsys, "*.up.sql")
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	var out []Migration
	seen := map[int]string{}
	for _, name := range names {
		num, rest, ok := strings.Cut(path.Base(name), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must be NNNN_name.up.sql", name)
		}
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("migration %s: version %d already used by %s", name, v, prev)
		}
		seen[v] = name
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", name, err)
		}
		out = append(out, Migration{Version: v, Name: strings.TrimSuffix(rest, ".up.sql"), SQL: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migration %04d_%s: version %d is missing: migrations are numbered 1, 2, 3 … without gaps", m.Version, m.Name, i+1)
		}
	}
	return out, nil
}

// MigrationStatus is one migration as the database knows it: applied (with
// the time) or pending.
type MigrationStatus struct {
	Migration
	AppliedAt time.Time // zero when pending
}

// ErrUnknownMigration means the database has applied a migration this
// binary does not carry: it was migrated by a newer version, and running
// this one against it could misread its tables.
var ErrUnknownMigration = errors.New("the database has migrations this binary does not know")

// MigrationStatuses lists every migration this binary carries, applied or
// pending, in version order. An applied version the binary does not carry
// is an error wrapping ErrUnknownMigration.
func (s *Store) MigrationStatuses(ctx context.Context) ([]MigrationStatus, error) {
	all, err := Migrations()
	if err != nil {
		return nil, err
	}
	applied, err := s.appliedMigrations(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]MigrationStatus, len(all))
	for i, m := range all {
		out[i] = MigrationStatus{Migration: m, AppliedAt: applied[m.Version]}
		delete(applied, m.Version)
	}
	if err := unknownMigrations(applied); err != nil {
		return out, err
	}
	return out, nil
}

// appliedMigrations reads schema_migrations: version → applied time. A
// database never migrated has no such table and answers an empty map.
func (s *Store) appliedMigrations(ctx context.Context) (map[int]time.Time, error) {
	var exists bool
	if err := s.pool.QueryRow(ctx, "SELECT to_regclass('schema_migrations') IS NOT NULL").Scan(&exists); err != nil {
		return nil, fmt.Errorf("read applied migrations: %w", err)
	}
	applied := map[int]time.Time{}
	if !exists {
		return applied, nil
	}
	rows, err := s.pool.Query(ctx, "SELECT version, applied_at FROM schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("read applied migrations: %w", err)
	}
	var (
		v  int
		at time.Time
	)
	_, err = pgx.ForEachRow(rows, []any{&v, &at}, func() error {
		applied[v] = at
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read applied migrations: %w", err)
	}
	return applied, nil
}

// unknownMigrations names the applied versions left over once the known
// ones are taken out, if any.
func unknownMigrations(left map[int]time.Time) error {
	if len(left) == 0 {
		return nil
	}
	vs := make([]int, 0, len(left))
	for v := range left {
		vs = append(vs, v)
	}
	sort.Ints(vs)
	return fmt.Errorf("%w: applied version(s) %v; run a moderator at least as new as the one that migrated it", ErrUnknownMigration, vs)
}

// Migrate applies every pending migration, each in its own transaction
// under a transaction-level advisory lock, and records it in
// schema_migrations; then the job queue's (River's) own migrations. Two
// replicas starting at once serialise on the lock; the second finds the
// work done. It returns the versions of ours it applied.
//
// Then it grants the service and auditor roles (ServiceRole, AuditorRole)
// their privileges on the schema as it now is. A database already up to
// date is left as it is, without taking a lock or changing anything, so a
// service role without rights on the schema may call it.
func (s *Store) Migrate(ctx context.Context) ([]int, error) {
	if done, err := s.upToDate(ctx); err == nil && done {
		return nil, nil
	}
	applied, err := s.migrateOurs(ctx)
	if err != nil {
		return applied, err
	}
	if err := s.migrateRiver(ctx); err != nil {
		return applied, err
	}
	if err := s.GrantRoles(ctx); err != nil {
		return applied, err
	}
	return applied, nil
}

// migrateRiver applies River's migrations (its job table and friends), so
// that the durable action jobs live in the same database and commit with
// the events. River's migrator runs its own transactions, so the lock here
// is a session lock held on one connection for the duration.
func (s *Store) migrateRiver(ctx context.Context) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate job queue: acquire connection: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLockKey); err != nil {
		return fmt.Errorf("migrate job queue: take lock: %w", err)
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrationLockKey)
	}()
	m, err := rivermigrate.New(riverpgxv5.New(s.pool), &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fmt.Errorf("migrate job queue: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("migrate job queue: %w", err)
	}
	return nil
}

func (s *Store) migrateOurs(ctx context.Context) ([]int, error) {
	all, err := Migrations()
	if err != nil {
		return nil, err
	}
	// Refuse before changing anything when a newer binary has migrated
	// this database: forward-only migrations cannot be run backwards.
	extra, err := s.appliedMigrations(ctx)
	if err != nil {
		return nil, err
	}
	for _, m := range all {
		delete(extra, m.Version)
	}
	if err := unknownMigrations(extra); err != nil {
		return nil, err
	}
	var applied []int
	for _, m := range all {
		done, err := s.applyMigration(ctx, m)
		if err != nil {
			return applied, err
		}
		if done {
			applied = append(applied, m.Version)
		}
	}
	return applied, nil
}

func (s *Store) applyMigration(ctx context.Context, m Migration) (applied bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLockKey); err != nil {
			return fmt.Errorf("take migration lock: %w", err)
		}
		// Created under the lock: concurrent CREATE TABLE IF NOT EXISTS races otherwise.
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    integer PRIMARY KEY,
			name       text NOT NULL,
			applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = $1)", m.Version).Scan(&exists); err != nil {
			return fmt.Errorf("check migration %d: %w", m.Version, err)
		}
		if exists {
			return nil
		}
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Position > 0 {
				line := 1 + strings.Count(m.SQL[:min(int(pgErr.Position), len(m.SQL))], "\n")
				return fmt.Errorf("apply migration %04d_%s line %d: %w", m.Version, m.Name, line, err)
			}
			return fmt.Errorf("apply migration %04d_%s: %w", m.Version, m.Name, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name); err != nil {
			return fmt.Errorf("record migration %d: %w", m.Version, err)
		}
		applied = true
		return nil
	})
	return applied, err
}
