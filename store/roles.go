package store

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// The database roles Migrate grants to: group roles (NOLOGIN) that the
// operator grants to login roles of their own. Roles are cluster-wide;
// the privileges are the database's.
const (
	// ServiceRole may read every table, append to the audit tables (those
	// whose rows a trigger keeps append-only) and change only the working
	// tables (job queue, counters, rate budgets, sessions …). It may not
	// update or delete audit rows, nor disable their triggers (only an
	// owner may alter a table); months come and go, and a user's content
	// is erased, only through the owner's SECURITY DEFINER functions.
	ServiceRole = "moderator_service"
	// AuditorRole may read every table and record its own searches in
	// staff_audit: what `moderator audit` needs.
	AuditorRole = "moderator_auditor"
)

// grantRolesSQL creates the two group roles when missing (a migrating
// role without CREATEROLE skips that; the grants then wait for someone to
// create them) and grants them their privileges on every table, audit or
// working, as the schema is now. Run after every migration, it covers the
// tables future migrations add.
const grantRolesSQL = `
DO $$
DECLARE
    t record;
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['moderator_service', 'moderator_auditor'] LOOP
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        EXCEPTION WHEN duplicate_object OR unique_violation OR insufficient_privilege THEN
            NULL; -- exists (maybe created at this moment for another database), or not ours to create
        END;
    END LOOP;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'moderator_service')
        OR NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'moderator_auditor') THEN
        RAISE NOTICE 'roles moderator_service and moderator_auditor missing: no privileges granted';
        RETURN;
    END IF;
    FOR t IN
        SELECT c.oid::regclass AS rel, EXISTS (SELECT 1 FROM pg_trigger g
                WHERE g.tgrelid = c.oid AND g.tgfoid = 'forbid_audit_change'::regproc) AS audit
        FROM pg_class c
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
    LOOP
        EXECUTE format('GRANT SELECT ON %s TO moderator_auditor', t.rel);
        IF t.audit THEN
            EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON %s FROM moderator_service', t.rel);
            EXECUTE format('GRANT SELECT, INSERT ON %s TO moderator_service', t.rel);
        ELSE
            EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO moderator_service', t.rel);
        END IF;
    END LOOP;
    -- The migrations' records are the owner's.
    REVOKE INSERT, UPDATE, DELETE ON schema_migrations, river_migration FROM moderator_service;
    GRANT INSERT ON staff_audit TO moderator_auditor;
    -- An overturn locks the actions it reverses (SELECT … FOR UPDATE, in
    -- store/overturn.go), which needs UPDATE on one column; the
    -- append-only trigger still refuses any actual update.
    GRANT UPDATE (id) ON actions TO moderator_service;
    GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO moderator_service;
    GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO moderator_auditor;
    GRANT EXECUTE ON FUNCTION moderator_ensure_partitions(timestamptz, integer),
        moderator_drop_partitions(timestamptz), moderator_prune_audit(timestamptz, integer) TO moderator_service;
    -- Erasure: the one way a user's text leaves the audit tables.
    GRANT EXECUTE ON FUNCTION moderator_erase_user(text, text, text, text, integer) TO moderator_service;
END;
$$`

// GrantRoles grants the service and auditor roles their privileges on the
// schema as it is (Migrate does it after applying migrations; `moderator
// migrate` every time, for roles created since). It runs under the
// migration lock: concurrent GRANTs on one table fail.
func (s *Store) GrantRoles(ctx context.Context) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLockKey); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, grantRolesSQL)
		return err
	})
	if err != nil {
		return fmt.Errorf("grant the service and auditor roles: %w", err)
	}
	return nil
}

// upToDate reports whether every migration, ours and the job queue's, is
// applied: Migrate then has nothing to do, and needs no right to change
// the schema, so a service role may start with it.
func (s *Store) upToDate(ctx context.Context) (bool, error) {
	all, err := Migrations()
	if err != nil {
		return false, err
	}
	applied, err := s.appliedMigrations(ctx)
	if err != nil {
		return false, err
	}
	if len(applied) != len(all) {
		return false, nil
	}
	for _, m := range all {
		if _, ok := applied[m.Version]; !ok {
			return false, nil
		}
	}
	m, err := rivermigrate.New(riverpgxv5.New(s.pool), &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return false, fmt.Errorf("check job queue migrations: %w", err)
	}
	res, err := m.Validate(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("check job queue migrations: %w", err)
	}
	return res.OK, nil
}
