package store

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
)

// Errors callers branch on (the staff API maps them to statuses).
var (
	// ErrNotFound: the event, decision, action or appeal asked for does not
	// exist.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyDecided: the appeal has a decision already; decisions are
	// final rows, never edited.
	ErrAlreadyDecided = errors.New("appeal already decided")
	// ErrAlreadyOverturned: every action asked for was overturned before.
	ErrAlreadyOverturned = errors.New("already overturned")
	// ErrBadCursor: a page cursor that this store did not issue.
	ErrBadCursor = errors.New("invalid page cursor")
)

// IsPermanent reports whether err is Postgres refusing a statement for the
// data it carries, so that retrying the same records can never succeed: a
// data exception (SQLSTATE class 22: an invalid byte sequence, a value out
// of range, a malformed JSON text), a program limit (class 54: an index row
// too large), or an integrity violation (class 23) other than a race on a
// deduplication key (which a retry answers as a duplicate). The caller
// quarantines such a record rather than retrying it.
//
// Everything else is transient as far as a record is concerned: the
// connection or the server failing (no server answer, classes 08, 53 disk
// full or too many connections, 57 shutdown or cancel, 58 I/O), a read-only
// or busy server (25006, 40 serialization and deadlock, 55 lock not
// available), a timeout, or a fault of ours (42, a missing table during a
// deployment): the same record may commit later.
func IsPermanent(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return errors.Is(err, errRefusedRecord)
	}
	if len(pgErr.Code) != 5 {
		return false
	}
	switch pgErr.Code[:2] {
	case "22", "54":
		return true
	case "23":
		return !(pgErr.Code == "23505" && dedupKeys[pgErr.ConstraintName])
	}
	return false
}

// IsTransient reports whether err may clear by itself: a failure that is
// not IsPermanent. A nil error is neither.
func IsTransient(err error) bool {
	return err != nil && !IsPermanent(err)
}

// errRefusedRecord marks an error of ours that, like a permanent Postgres
// error, no retry of the same record can mend (a decision that cannot be
// encoded, say).
var errRefusedRecord = errors.New("record cannot be stored")

// dedupKeys are the unique indexes that deduplicate deliveries and their
// effects: two replicas writing the same event or action at once make one
// of them fail on these, and its retry finds the other's row.
var dedupKeys = map[string]bool{
	"event_keys_pkey":           true,
	"event_keys_webhook_id_key": true,
	"actions_idempotency_key":   true,
}
