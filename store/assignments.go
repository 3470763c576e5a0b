package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Assignment acts, in appeal_assignments.act.
const (
	AssignClaim   = "claim"   // a reviewer takes an appeal for themselves
	AssignRelease = "release" // its holder gives it back to the queue
	AssignAssign  = "assign"  // a reviewer hands it to a named reviewer
)

// Staff acts on appeals besides those of staff.go.
const (
	ActClaimAppeal   = "claim_appeal"
	ActReleaseAppeal = "release_appeal"
	ActAssignAppeal  = "assign_appeal"
	ActNoteAppeal    = "note_appeal"
)

// ErrHeld: the appeal is held by another reviewer, who must release it (or
// someone must assign it) first.
var ErrHeld = errors.New("held by another reviewer")

// HeldError says who holds the appeal; it wraps ErrHeld.
type HeldError struct {
	AppealID int64
	Holder   string
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("appeal %d is held by %s", e.AppealID, e.Holder)
}

func (e *HeldError) Unwrap() error { return ErrHeld }

// assignLockClass is the first key of the advisory locks that serialise
// the claims of one appeal (the second is its id): of two reviewers
// claiming at once, one gets it and the other is told who has it.
const assignLockClass = 0x6d6f6461 // "moda"

// AssignAppeal claims, releases or assigns appeal appealID, by actor, and
// records the staff act in the same transaction (its empty Actor, Act,
// Target default to actor, the act's name and "appeal:ID"). claim takes it
// for actor (ErrHeld, as a *HeldError, when someone else holds it; nothing
// is written when actor holds it already); release gives it back (only
// its holder may: ErrHeld otherwise; nothing is written when nobody holds
// it); assign hands it to assignee, whoever held it. A decided appeal is
// not claimed or assigned (ErrAlreadyDecided); ErrNotFound when there is
// no such appeal. It returns the appeal as it now is.
func (s *Store) AssignAppeal(ctx context.Context, appealID int64, act, assignee, actor string, staff StaffAct) (Appeal, error) {
	switch {
	case act != AssignClaim && act != AssignRelease && act != AssignAssign:
		return Appeal{}, &InputError{Field: "act", Msg: "must be claim, release or assign"}
	case strings.TrimSpace(actor) == "":
		return Appeal{}, &InputError{Field: "actor", Msg: "is required"}
	case act == AssignAssign && strings.TrimSpace(assignee) == "":
		return Appeal{}, &InputError{Field: "assignee", Msg: "is required: the reviewer to assign it to"}
	}
	if act == AssignClaim {
		assignee = actor
	}
	if act == AssignRelease {
		assignee = ""
	}
	if err := checkText("assignee", assignee, maxShortRunes); err != nil {
		return Appeal{}, err
	}
	var out Appeal
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, ($2 % 2147483647)::int)`, assignLockClass, appealID); err != nil {
			return fmt.Errorf("lock appeal %d: %w", appealID, err)
		}
		a, err := readAppeal(ctx, tx, appealID)
		if err != nil {
			return err
		}
		if a.Decision != nil && act != AssignRelease {
			return fmt.Errorf("appeal %d: %w", appealID, ErrAlreadyDecided)
		}
		switch {
		case act == AssignClaim && a.AssignedTo == actor, act == AssignRelease && a.AssignedTo == "":
			out = a // nothing changes
			return nil
		case act == AssignClaim && a.AssignedTo != "", act == AssignRelease && a.AssignedTo != actor:
			return &HeldError{AppealID: appealID, Holder: a.AssignedTo}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO appeal_assignments (appeal_id, act, assignee, actor) VALUES ($1, $2, $3, $4)`,
			appealID, act, nullString(assignee), actor); err != nil {
			return fmt.Errorf("%s appeal %d: %w", act, appealID, err)
		}
		staff.Actor = cmp.Or(staff.Actor, actor)
		staff.Act = cmp.Or(staff.Act, act+"_appeal")
		staff.Target = cmp.Or(staff.Target, fmt.Sprintf("appeal:%d", appealID))
		if err := RecordStaffActTx(ctx, tx, staff); err != nil {
			return err
		}
		a.AssignedTo = assignee
		out = a
		return nil
	})
	if err != nil {
		return Appeal{}, err
	}
	return out, nil
}

// AppealNote is a reviewer's note on an appeal: for the next reviewer,
// never shown to the user.
type AppealNote struct {
	ID        int64     `json:"id" db:"id"`
	AppealID  int64     `json:"appeal_id" db:"appeal_id"`
	Author    string    `json:"author" db:"author"`
	Body      string    `json:"body" db:"body"`
	CreatedAt time.Time `json:"created_at" db:"created_at"`
}

// maxNoteRunes bounds a note.
const maxNoteRunes = 5000

// AddAppealNote records author's note on the appeal, and the staff act,
// in one transaction; ErrNotFound when there is no such appeal, an
// *InputError for a blank or overlong body.
func (s *Store) AddAppealNote(ctx context.Context, appealID int64, author, body string, staff StaffAct) (AppealNote, error) {
	if strings.TrimSpace(body) == "" {
		return AppealNote{}, &InputError{Field: "body", Msg: "is required"}
	}
	if strings.TrimSpace(author) == "" {
		return AppealNote{}, &InputError{Field: "author", Msg: "is required"}
	}
	if err := checkText("body", body, maxNoteRunes); err != nil {
		return AppealNote{}, err
	}
	var n AppealNote
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `INSERT INTO appeal_notes (appeal_id, author, body)
			SELECT id, $2, $3 FROM appeals WHERE id = $1
			RETURNING id, appeal_id, author, body, created_at`, appealID, author, body)
		if err != nil {
			return fmt.Errorf("note on appeal %d: %w", appealID, err)
		}
		n, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[AppealNote])
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("appeal %d: %w", appealID, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("note on appeal %d: %w", appealID, err)
		}
		staff.Actor = cmp.Or(staff.Actor, author)
		staff.Act = cmp.Or(staff.Act, ActNoteAppeal)
		staff.Target = cmp.Or(staff.Target, fmt.Sprintf("appeal:%d", appealID))
		return RecordStaffActTx(ctx, tx, staff)
	})
	if err != nil {
		return AppealNote{}, err
	}
	return n, nil
}

// AppealNotes returns the notes on an appeal, oldest first.
func (s *Store) AppealNotes(ctx context.Context, appealID int64) ([]AppealNote, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, appeal_id, author, body, created_at FROM appeal_notes
		WHERE appeal_id = $1 ORDER BY id`, appealID)
	if err != nil {
		return nil, fmt.Errorf("notes of appeal %d: %w", appealID, err)
	}
	notes, err := pgx.CollectRows(rows, pgx.RowToStructByName[AppealNote])
	if err != nil {
		return nil, fmt.Errorf("notes of appeal %d: %w", appealID, err)
	}
	return notes, nil
}

// AppealQueue is the state of the appeals queue: how many wait for a
// decision, and since when the oldest has waited (zero when none does).
type AppealQueue struct {
	Pending       int       `json:"pending"`
	OldestPending time.Time `json:"oldest_pending,omitzero"`
}

// AppealQueueStats counts the pending appeals and finds the oldest.
func (s *Store) AppealQueueStats(ctx context.Context) (AppealQueue, error) {
	var q AppealQueue
	var oldest *time.Time
	err := s.pool.QueryRow(ctx, `SELECT count(*), min(ap.created_at) FROM appeals ap
		WHERE NOT EXISTS (SELECT 1 FROM appeal_decisions ad WHERE ad.appeal_id = ap.id)`).Scan(&q.Pending, &oldest)
	if err != nil {
		return AppealQueue{}, fmt.Errorf("appeal queue: %w", err)
	}
	if oldest != nil {
		q.OldestPending = *oldest
	}
	return q, nil
}
