package store

import (
	"context"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5"
)

// Test hooks: the statements the searches run, for the EXPLAIN checks.

func EventsSQL(f AuditFilter) (string, []any)    { return eventsSQL(f, nil, pageSize(f.Limit)) }
func DecisionsSQL(f AuditFilter) (string, []any) { return decisionsSQL(f, nil, pageSize(f.Limit)) }
func ActionsSQL(f AuditFilter) (string, []any)   { return actionsSQL(f, nil, pageSize(f.Limit)) }
func TimelineSQL(user string, f AuditFilter) (string, []any) {
	return timelineSQL(user, f, nil, pageSize(f.Limit))
}
func ConversationSQL(thread, before bool) string { return conversationSQL(thread, before) }

func ReadMigrations(fsys fs.FS) ([]Migration, error) { return readMigrations(fsys) }

var ErrRefusedRecordForTest = errRefusedRecord

// Queued is how many records wait for a flusher.
func (b *Batcher) Queued() int {
	n := len(b.queue)
	for _, q := range b.keyed {
		n += len(q)
	}
	return n
}

// SetTextProbe makes text searches count at most n matches through the
// words index before walking the time index instead.
func (s *Store) SetTextProbe(n int) { s.textProbe = n }

// MigrateTo applies the migrations of ours up to version v (included), as
// a database an older release left behind.
func (s *Store) MigrateTo(ctx context.Context, v int) error {
	all, err := Migrations()
	if err != nil {
		return err
	}
	for _, m := range all {
		if m.Version > v {
			break
		}
		if _, err := s.applyMigration(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

// BusyAt is when a flusher last took a batch large enough to make the
// intake busy; zero if never.
func (b *Batcher) BusyAt() time.Time {
	if t := b.queuedAt.Load(); t != 0 {
		return time.Unix(0, t)
	}
	return time.Time{}
}

// UserLockForTest is the advisory lock (class, key) that judging a record
// of user takes.
func UserLockForTest(user string) (int32, int32) { return lockClass, lockKey("user", user) }

// ScanRow is scanRow, for its tests.
func ScanRow(rows pgx.Rows, dest ...any) error { return scanRow(rows, dest...) }

// ScanPlansKept is how many scan plans conn keeps.
func ScanPlansKept(conn *pgx.Conn) int {
	plans, _ := conn.PgConn().CustomData()[scanPlansKey].(scanPlans)
	return len(plans)
}
