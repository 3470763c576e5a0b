package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// OverturnTarget is an action an overturn covers, read after its row was
// locked: how far it got decides what overturning it takes.
type OverturnTarget struct {
	ActionID   int64
	DecisionID int64 // the decision that asked for it
	// ActionRow is the action as recorded; its ReversesActionID is non-zero
	// on a reversal (which cannot be overturned).
	ActionRow
	// Outcome is how it ended; "" while pending.
	Outcome string
	// OverturnedBy is the overturn that already covered it, 0 when none.
	OverturnedBy int64
	// MayHaveTakenEffect: one of its calls to Stream got no answer, a
	// timeout (408) or a server error (5xx), or succeeded: its effect
	// cannot be ruled out.
	MayHaveTakenEffect bool
}

// LockOverturnTargetsTx locks, in tx, the action actionID or the actions of
// decision decisionID (exactly one is non-zero; reversals recorded against
// the decision's event are not its actions) and reads them. The rows stay
// locked (FOR UPDATE) until tx ends: a worker's attempt or outcome for them
// (whose foreign keys take a share lock) waits, and so does a concurrent
// overturn, so what is read here stays true until the overturn commits.
// ErrNotFound when the action or decision does not exist.
func LockOverturnTargetsTx(ctx context.Context, tx pgx.Tx, actionID, decisionID int64) ([]OverturnTarget, error) {
	what := fmt.Sprintf("action %d", actionID)
	var rows pgx.Rows
	var err error
	if decisionID != 0 {
		what = fmt.Sprintf("decision %d", decisionID)
		var eventID int64
		err = tx.QueryRow(ctx, `SELECT event_id FROM decisions WHERE id = $1`, decisionID).Scan(&eventID)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("%s: %w", what, ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", what, err)
		}
		rows, err = tx.Query(ctx, `SELECT id FROM actions WHERE event_id = $1 AND reverses_action_id IS NULL
			ORDER BY id FOR UPDATE`, eventID)
	} else {
		rows, err = tx.Query(ctx, `SELECT id FROM actions WHERE id = $1 FOR UPDATE`, actionID)
	}
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", what, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", what, err)
	}
	if len(ids) == 0 {
		if decisionID != 0 {
			return nil, nil
		}
		return nil, fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	// A second statement, so that it sees everything committed before the
	// locks were taken.
	rows, err = tx.Query(ctx, `
		SELECT a.id AS action_id, a.event_id, coalesce(d.id, 0) AS decision_id, a.position, a.rule_id, a.type,
			coalesce(a.target_user_id, '') AS target_user_id, coalesce(a.message_id, '') AS message_id,
			coalesce(a.channel_cid, '') AS channel_cid, a.params, a.idempotency_key AS key,
			coalesce(a.stream_message_id, '') AS stream_message_id,
			coalesce(o.outcome, '') AS outcome, coalesce(a.reverses_action_id, 0) AS reverses_action_id,
			coalesce(a.overturn_id, 0) AS overturn_id, coalesce(r.overturn_id, 0) AS overturned_by,
			(EXISTS (SELECT 1 FROM action_attempts t WHERE t.action_id = a.id
				AND (t.http_status IS NULL OR t.http_status < 300 OR t.http_status = 408 OR t.http_status >= 500))
			OR EXISTS (SELECT 1 FROM action_calls c WHERE c.action_id = a.id
				AND NOT EXISTS (SELECT 1 FROM action_attempts t WHERE t.action_id = c.action_id AND t.attempt = c.attempt)))
				AS may_have_taken_effect
		FROM actions a
		LEFT JOIN decisions d ON d.event_id = a.event_id
		LEFT JOIN action_outcomes o ON o.action_id = a.id
		LEFT JOIN action_reversals r ON r.action_id = a.id
		WHERE a.id = ANY($1) ORDER BY a.id`, ids)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByName[OverturnTarget])
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	return out, nil
}

// NewOverturn is an overturn to record: of one action or of every action of
// one decision (exactly one of ActionID and DecisionID), by a reviewer, for
// a reason, deciding an appeal or not.
type NewOverturn struct {
	ActionID    int64
	DecisionID  int64
	AppealID    int64
	Reviewer    string
	Reason      string
	ImmuneUntil time.Time
}

// InsertOverturnTx records an overturn in tx and returns its id and time.
func InsertOverturnTx(ctx context.Context, tx pgx.Tx, o NewOverturn) (int64, time.Time, error) {
	if (o.ActionID == 0) == (o.DecisionID == 0) {
		return 0, time.Time{}, &InputError{Field: "id", Msg: "exactly one of an action and a decision is overturned"}
	}
	if strings.TrimSpace(o.Reviewer) == "" {
		return 0, time.Time{}, &InputError{Field: "reviewer", Msg: "is required"}
	}
	if strings.TrimSpace(o.Reason) == "" {
		return 0, time.Time{}, &InputError{Field: "reason", Msg: "is required"}
	}
	var (
		id int64
		at time.Time
	)
	err := tx.QueryRow(ctx, `INSERT INTO overturns (action_id, decision_id, appeal_id, reviewer, reason, immune_until)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, created_at`,
		nullID(o.ActionID), nullID(o.DecisionID), nullID(o.AppealID), o.Reviewer, o.Reason, nullTime(o.ImmuneUntil)).Scan(&id, &at)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("record overturn: %w", err)
	}
	return id, at, nil
}

// Dispositions of an overturned action (action_reversals.disposition).
const (
	DispositionReversed      = "reversed"
	DispositionCancelled     = "cancelled"
	DispositionNothingToUndo = "nothing_to_undo"
)

// ReversalRow is what an overturn did about one action.
type ReversalRow struct {
	OverturnID       int64
	ActionID         int64
	Disposition      string
	ReversalActionID int64 // set when Disposition is reversed
}

// InsertReversalsTx records, in tx, what an overturn did about each
// action. An action already overturned makes it fail (a unique index):
// LockOverturnTargetsTx lets the caller skip those first.
func InsertReversalsTx(ctx context.Context, tx pgx.Tx, rows []ReversalRow) error {
	if len(rows) == 0 {
		return nil
	}
	var (
		overturns, actions, reversals = make([]int64, len(rows)), make([]int64, len(rows)), make([]*int64, len(rows))
		dispositions                  = make([]string, len(rows))
	)
	for i, r := range rows {
		overturns[i], actions[i], dispositions[i], reversals[i] = r.OverturnID, r.ActionID, r.Disposition, nullID(r.ReversalActionID)
	}
	_, err := tx.Exec(ctx, `INSERT INTO action_reversals (overturn_id, action_id, disposition, reversal_action_id)
		SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::bigint[])`, overturns, actions, dispositions, reversals)
	if err != nil {
		return fmt.Errorf("record reversals of overturn %d: %w", rows[0].OverturnID, err)
	}
	return nil
}

// ImmunityRow keeps a rule off a user until Until, because of an overturn.
type ImmunityRow struct {
	OverturnID int64
	RuleID     string
	UserID     string
	Until      time.Time
}

// InsertImmunitiesTx records immunities in tx.
func InsertImmunitiesTx(ctx context.Context, tx pgx.Tx, rows []ImmunityRow) error {
	if len(rows) == 0 {
		return nil
	}
	var (
		overturns    = make([]int64, len(rows))
		rules, users = make([]string, len(rows)), make([]string, len(rows))
		until        = make([]time.Time, len(rows))
	)
	for i, r := range rows {
		overturns[i], rules[i], users[i], until[i] = r.OverturnID, r.RuleID, r.UserID, r.Until
	}
	_, err := tx.Exec(ctx, `INSERT INTO rule_immunities (overturn_id, rule_id, user_id, until)
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::timestamptz[])`, overturns, rules, users, until)
	if err != nil {
		return fmt.Errorf("record immunities of overturn %d: %w", rows[0].OverturnID, err)
	}
	return nil
}

// RuleUser is a rule and a user: the key of an immunity.
type RuleUser struct {
	RuleID string
	UserID string
}

// Immunity is the longest-lasting immunity in force for a rule and a user.
type Immunity struct {
	RuleID     string
	UserID     string
	OverturnID int64
	Reviewer   string
	Until      time.Time
}

// immunitiesSQL reads the longest-lasting immunity in force at $3 of each
// (rule $1[i], user $2[i]).
const immunitiesSQL = `
		SELECT DISTINCT ON (i.rule_id, i.user_id) i.rule_id, i.user_id, i.overturn_id, o.reviewer, i.until
		FROM unnest($1::text[], $2::text[]) AS p(rule_id, user_id)
		JOIN rule_immunities i ON i.user_id = p.user_id AND i.rule_id = p.rule_id AND i.until > $3
		JOIN overturns o ON o.id = i.overturn_id
		ORDER BY i.rule_id, i.user_id, i.until DESC`

// ImmunitiesTx returns the immunities in force at at for any of pairs, the
// longest-lasting one per pair, in one query (planning calls it once per
// recording batch).
func ImmunitiesTx(ctx context.Context, tx pgx.Tx, pairs []RuleUser, at time.Time) ([]Immunity, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	rules, users := make([]string, len(pairs)), make([]string, len(pairs))
	for i, p := range pairs {
		rules[i], users[i] = p.RuleID, p.UserID
	}
	rows, err := tx.Query(ctx, immunitiesSQL, rules, users, at)
	if err != nil {
		return nil, fmt.Errorf("read rule immunities: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Immunity])
	if err != nil {
		return nil, fmt.Errorf("read rule immunities: %w", err)
	}
	return out, nil
}

// QueueImmunities queues on w the read of ImmunitiesTx; found gets its
// answer when the writes are sent.
func QueueImmunities(w *Writes, pairs []RuleUser, at time.Time, found func([]Immunity)) {
	if len(pairs) == 0 {
		return
	}
	rules, users := make([]string, len(pairs)), make([]string, len(pairs))
	for i, p := range pairs {
		rules[i], users[i] = p.RuleID, p.UserID
	}
	w.Queue(immunitiesSQL, rules, users, at).Query(func(rows pgx.Rows) error {
		out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Immunity])
		if err != nil {
			return fmt.Errorf("read rule immunities: %w", err)
		}
		found(out)
		return nil
	})
}

// OverturnRef names an overturn for the reversals it asks for.
type OverturnRef struct {
	ID       int64
	Reviewer string
	Reason   string
	// Disposition is what the overturn did about the action: "reversed"
	// when it already enqueued the reversal (it counted a call that may
	// have taken effect), so a worker must not enqueue another.
	Disposition string
}

// OverturnOfTx returns the overturn that covered actionID, false when none
// did. A worker reads it in the transaction of the attempt it just
// recorded (see RecordAttemptTx).
func OverturnOfTx(ctx context.Context, tx pgx.Tx, actionID int64) (OverturnRef, bool, error) {
	var o OverturnRef
	err := tx.QueryRow(ctx, `SELECT o.id, o.reviewer, o.reason, r.disposition FROM action_reversals r
		JOIN overturns o ON o.id = r.overturn_id WHERE r.action_id = $1`, actionID).Scan(&o.ID, &o.Reviewer, &o.Reason, &o.Disposition)
	if errors.Is(err, pgx.ErrNoRows) {
		return OverturnRef{}, false, nil
	}
	if err != nil {
		return OverturnRef{}, false, fmt.Errorf("read the overturn of action %d: %w", actionID, err)
	}
	return o, true, nil
}
