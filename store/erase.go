package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"moderator/policy"
)

// Redacted is the marker an erasure leaves where a user's text was, in
// every table (moderator_erase_user writes the same literal; a test holds
// the two equal) and in the spool (policy.Redacted).
const Redacted = policy.Redacted

// ActErase is the staff act of an erasure, by an admin or by the system
// (Stream's user.deleted with hard_delete).
const ActErase = "erase"

// ActorSystem is the actor (and role) of the acts the service does of
// itself, such as the erasure Stream's user.deleted asks for.
const ActorSystem = "system"

// The erasure kinds, keys of Erasure.Counts: the rows (or spool records)
// an erasure changed, by where they are.
var ErasureKinds = []string{"events", "quoting_events", "message_copies", "raw_bodies", "search_words", "decisions",
	"actions", "action_outcomes", "before_send_keys", "quarantine", "appeals", "backtests", "spool"}

// Erasure is what one erasure changed: a count per kind (ErasureKinds),
// zero for a kind with nothing left to redact (a second erasure of the
// same user counts zeros).
type Erasure struct {
	UserID string           `json:"user_id"`
	Counts map[string]int64 `json:"erased"`
}

// maxUserIDLen bounds a user id: Stream's ids are at most 255 characters.
const maxUserIDLen = 255

// EraseUser redacts the user's content everywhere the database keeps it,
// keeping the skeleton of the audit trail, and records the act (by
// act.Actor with act.Role, for act.Reason) in the staff audit log, in one
// transaction: see moderator_erase_user in migrations/0022_erasure.up.sql
// for what it redacts. spooled is how many spool records the caller
// redacted on disk, recorded with the rest. It is the only way past the
// audit tables' append-only trigger, and the service role may take it.
func (s *Store) EraseUser(ctx context.Context, userID string, act StaffAct, spooled int) (Erasure, error) {
	if err := CheckUserID(userID); err != nil {
		return Erasure{}, err
	}
	if strings.TrimSpace(act.Actor) == "" {
		return Erasure{}, &InputError{Field: "actor", Msg: "is required"}
	}
	var raw []byte
	err := s.pool.QueryRow(ctx, `SELECT moderator_erase_user($1, $2, $3, $4, $5)`,
		userID, act.Actor, act.Role, nullString(act.Reason), spooled).Scan(&raw)
	if err != nil {
		return Erasure{}, fmt.Errorf("erase user %s: %w", userID, err)
	}
	e := Erasure{UserID: userID}
	if err := json.Unmarshal(raw, &e.Counts); err != nil {
		return Erasure{}, fmt.Errorf("erase user %s: read the counts: %w", userID, err)
	}
	return e, nil
}

// CheckUserID refuses a user id no Stream user can have: empty, longer
// than Stream allows, not UTF-8, or with control characters.
func CheckUserID(id string) error {
	switch {
	case strings.TrimSpace(id) == "":
		return &InputError{Field: "user_id", Msg: "is required"}
	case len(id) > maxUserIDLen:
		return &InputError{Field: "user_id", Msg: fmt.Sprintf("is longer than %d bytes", maxUserIDLen)}
	case !utf8.ValidString(id) || strings.ContainsFunc(id, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return &InputError{Field: "user_id", Msg: "holds characters a Stream user id cannot have"}
	}
	return nil
}

// ErasedSince returns the users erased (by an admin or by the system) at
// or after since, each with the time of its latest erasure, from the
// staff audit log (the erasure's own record: there is no other list).
// Every replica loads it to redact the late events of those users before
// they are recorded (erasure.Recent).
func (s *Store) ErasedSince(ctx context.Context, since time.Time) (map[string]time.Time, error) {
	rows, err := s.pool.Query(ctx, `SELECT target_user_id, max(at) FROM staff_audit
		WHERE act = 'erase' AND at >= $1 AND target_user_id IS NOT NULL GROUP BY target_user_id`, since)
	if err != nil {
		return nil, fmt.Errorf("list erased users: %w", err)
	}
	users := make(map[string]time.Time)
	var (
		id string
		at time.Time
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &at}, func() error {
		users[id] = at
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list erased users: %w", err)
	}
	return users, nil
}
