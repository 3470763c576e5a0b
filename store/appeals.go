package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// Appeal statuses, in Appeal.Status and AppealFilter.Status; upheld and
// overturned are also the outcomes of appeal decisions.
const (
	AppealPending    = "pending"
	AppealUpheld     = "upheld"
	AppealOverturned = "overturned"
)

// Bounds of an appeal's text fields.
const (
	maxStatementRunes = 10000
	maxShortRunes     = 200 // source, recorded_by, reviewer, user id
	maxReasonRunes    = 2000
)

// NewAppeal is an appeal to record: the user, what they appeal (an action,
// a decision, or an action of that decision), their statement, where it
// came from, and the member of staff who records it.
type NewAppeal struct {
	UserID     string `json:"user_id"`
	ActionID   int64  `json:"action_id,omitempty"`
	DecisionID int64  `json:"decision_id,omitempty"`
	Statement  string `json:"statement"`
	Source     string `json:"source"` // in_app, email, support, …
	RecordedBy string `json:"recorded_by"`
}

// Appeal is a recorded appeal, with its decision once it has one.
type Appeal struct {
	ID         int64     `json:"id"`
	UserID     string    `json:"user_id"`
	ActionID   int64     `json:"action_id,omitempty"`
	DecisionID int64     `json:"decision_id,omitempty"`
	Statement  string    `json:"statement"`
	Source     string    `json:"source"`
	RecordedBy string    `json:"recorded_by"`
	CreatedAt  time.Time `json:"created_at"`
	Status     string    `json:"status"` // pending, upheld, overturned
	// Rules and ActionTypes are what is appealed: the action's rule and
	// type, or the decision's enforcing rules and requested actions.
	Rules       []string `json:"rules"`
	ActionTypes []string `json:"action_types"`
	// AssignedTo is the reviewer who claimed the appeal or was assigned
	// it ("" when nobody holds it).
	AssignedTo string          `json:"assigned_to,omitempty"`
	Decision   *AppealDecision `json:"decision,omitempty"`
}

// AppealDecision is the final word on an appeal.
type AppealDecision struct {
	ID         int64     `json:"id"`
	AppealID   int64     `json:"appeal_id"`
	Outcome    string    `json:"outcome"` // upheld or overturned
	Reviewer   string    `json:"reviewer"`
	Reason     string    `json:"reason"`
	OverturnID int64     `json:"overturn_id,omitempty"` // set when overturned
	DecidedAt  time.Time `json:"decided_at"`
}

// AppealDecisionRow is a decision to record with RecordAppealDecisionTx.
type AppealDecisionRow struct {
	AppealID   int64
	Outcome    string // AppealUpheld or AppealOverturned
	Reviewer   string
	Reason     string
	OverturnID int64 // required for AppealOverturned, zero otherwise
}

// AppealFilter selects appeals for ListAppeals. Zero fields do not filter.
type AppealFilter struct {
	UserID     string
	Status     string // pending, upheld, overturned
	RuleID     string // the appealed action's rule, or one of the decision's enforcing rules
	ActionType string // the appealed action's type, or one the decision requested
	// Sort is SortNewest (the default) or SortOldest: the queue's order,
	// the longest-waiting appeal first.
	Sort     string
	From, To time.Time // created in [From, To)
	Cursor   string
	Limit    int
}

// The orders of ListAppeals.
const (
	SortNewest = "newest"
	SortOldest = "oldest"
)

// ErrWrongUser: the action or decision appealed concerns another user than
// the one appealing.
var ErrWrongUser = errors.New("concerns another user")

// RecordAppeal records an appeal. The action or decision must exist
// (ErrNotFound otherwise, wrapped with which) and concern the appealing
// user (ErrWrongUser); given both, the action must belong to the decision;
// a reversal (an unban, say) is staff's own act and cannot be appealed.
// Bad fields are an *InputError naming the field; nothing is written then.
func (s *Store) RecordAppeal(ctx context.Context, a NewAppeal) (Appeal, error) {
	if err := a.validate(); err != nil {
		return Appeal{}, err
	}
	var out Appeal
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if a.ActionID != 0 {
			var user string
			var decisionID, reverses int64
			err := tx.QueryRow(ctx, `SELECT coalesce(a.target_user_id, ''), coalesce(d.id, 0), coalesce(a.reverses_action_id, 0)
				FROM actions a LEFT JOIN decisions d ON d.event_id = a.event_id WHERE a.id = $1`, a.ActionID).
				Scan(&user, &decisionID, &reverses)
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("action %d: %w", a.ActionID, ErrNotFound)
			}
			if err != nil {
				return fmt.Errorf("read action %d: %w", a.ActionID, err)
			}
			if user != a.UserID {
				return fmt.Errorf("action %d: %w", a.ActionID, ErrWrongUser)
			}
			if reverses != 0 {
				return &InputError{Field: "action_id", Msg: fmt.Sprintf("action %d is the reversal of action %d, which staff decided: it is not appealed", a.ActionID, reverses)}
			}
			if a.DecisionID != 0 && a.DecisionID != decisionID {
				return &InputError{Field: "action_id", Msg: fmt.Sprintf("action %d is not an action of decision %d", a.ActionID, a.DecisionID)}
			}
		}
		if a.DecisionID != 0 {
			var user string
			err := tx.QueryRow(ctx, `SELECT coalesce(user_id, '') FROM decisions WHERE id = $1`, a.DecisionID).Scan(&user)
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("decision %d: %w", a.DecisionID, ErrNotFound)
			}
			if err != nil {
				return fmt.Errorf("read decision %d: %w", a.DecisionID, err)
			}
			if user != a.UserID {
				return fmt.Errorf("decision %d: %w", a.DecisionID, ErrWrongUser)
			}
		}
		var id int64
		err := tx.QueryRow(ctx, `INSERT INTO appeals (user_id, action_id, decision_id, statement, source, recorded_by)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
			a.UserID, nullID(a.ActionID), nullID(a.DecisionID), a.Statement, a.Source, a.RecordedBy).Scan(&id)
		if err != nil {
			return fmt.Errorf("insert appeal: %w", err)
		}
		out, err = readAppeal(ctx, tx, id)
		return err
	})
	if err != nil {
		return Appeal{}, fmt.Errorf("record appeal of %s: %w", a.UserID, err)
	}
	return out, nil
}

func (a *NewAppeal) validate() error {
	switch {
	case strings.TrimSpace(a.UserID) == "":
		return &InputError{Field: "user_id", Msg: "is required"}
	case a.ActionID < 0:
		return &InputError{Field: "action_id", Msg: "must be a positive id"}
	case a.DecisionID < 0:
		return &InputError{Field: "decision_id", Msg: "must be a positive id"}
	case a.ActionID == 0 && a.DecisionID == 0:
		return &InputError{Field: "action_id", Msg: "an action_id or a decision_id is required"}
	case strings.TrimSpace(a.Statement) == "":
		return &InputError{Field: "statement", Msg: "is required"}
	case strings.TrimSpace(a.Source) == "":
		return &InputError{Field: "source", Msg: "is required"}
	case strings.TrimSpace(a.RecordedBy) == "":
		return &InputError{Field: "recorded_by", Msg: "is required"}
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{
		{"user_id", a.UserID, maxShortRunes}, {"statement", a.Statement, maxStatementRunes},
		{"source", a.Source, maxShortRunes}, {"recorded_by", a.RecordedBy, maxShortRunes},
	} {
		if err := checkText(f.name, f.v, f.max); err != nil {
			return err
		}
	}
	return nil
}

// checkText refuses text Postgres cannot store (invalid UTF-8, NUL) and
// text longer than max runes.
func checkText(field, v string, max int) error {
	switch {
	case !utf8.ValidString(v):
		return &InputError{Field: field, Msg: "must be valid UTF-8"}
	case strings.ContainsRune(v, 0):
		return &InputError{Field: field, Msg: "must not contain NUL characters"}
	case utf8.RuneCountInString(v) > max:
		return &InputError{Field: field, Msg: fmt.Sprintf("must be at most %d characters", max)}
	}
	return nil
}

// appealRow is an appeal joined with what it appeals, its holder and its
// decision, as the queries return it.
type appealRow struct {
	ID          int64      `db:"id"`
	UserID      string     `db:"user_id"`
	ActionID    int64      `db:"action_id"`
	DecisionID  int64      `db:"decision_id"`
	Statement   string     `db:"statement"`
	Source      string     `db:"source"`
	RecordedBy  string     `db:"recorded_by"`
	CreatedAt   time.Time  `db:"created_at"`
	Rules       []string   `db:"rules"`
	ActionTypes []string   `db:"action_types"`
	AssignedTo  string     `db:"assigned_to"`
	DecID       *int64     `db:"dec_id"`
	DecOutcome  *string    `db:"dec_outcome"`
	DecReviewer *string    `db:"dec_reviewer"`
	DecReason   *string    `db:"dec_reason"`
	DecOverturn *int64     `db:"dec_overturn_id"`
	DecAt       *time.Time `db:"dec_decided_at"`
}

// appealRules and appealActionTypes are what an appeal is about: its
// action's rule and type, or its decision's enforcing rules and requested
// action types (an appeal of an action of a decision is about the action).
const (
	appealRules       = `CASE WHEN ap.action_id IS NOT NULL THEN ARRAY[aa.rule_id] ELSE coalesce(dd.enforced_rules, '{}') END`
	appealActionTypes = `CASE WHEN ap.action_id IS NOT NULL THEN ARRAY[aa.type]
		ELSE ARRAY(SELECT x ->> 'type' FROM jsonb_array_elements(dd.actions) AS x) END`
)

const appealSelect = `SELECT ap.id, ap.user_id, coalesce(ap.action_id, 0) AS action_id, coalesce(ap.decision_id, 0) AS decision_id,
	ap.statement, ap.source, ap.recorded_by, ap.created_at,
	` + appealRules + ` AS rules, ` + appealActionTypes + ` AS action_types,
	coalesce(asg.assignee, '') AS assigned_to,
	ad.id AS dec_id, ad.outcome AS dec_outcome, ad.reviewer AS dec_reviewer, ad.reason AS dec_reason,
	ad.overturn_id AS dec_overturn_id, ad.decided_at AS dec_decided_at
	FROM appeals ap LEFT JOIN appeal_decisions ad ON ad.appeal_id = ap.id
	LEFT JOIN actions aa ON aa.id = ap.action_id
	LEFT JOIN decisions dd ON dd.id = ap.decision_id
	LEFT JOIN LATERAL (SELECT assignee FROM appeal_assignments WHERE appeal_id = ap.id ORDER BY id DESC LIMIT 1) asg ON true`

func (r appealRow) appeal() Appeal {
	a := Appeal{ID: r.ID, UserID: r.UserID, ActionID: r.ActionID, DecisionID: r.DecisionID, Statement: r.Statement,
		Source: r.Source, RecordedBy: r.RecordedBy, CreatedAt: r.CreatedAt, Status: AppealPending,
		Rules: r.Rules, ActionTypes: r.ActionTypes, AssignedTo: r.AssignedTo}
	if r.DecID != nil {
		d := &AppealDecision{ID: *r.DecID, AppealID: r.ID, Outcome: deref(r.DecOutcome), Reviewer: deref(r.DecReviewer),
			Reason: deref(r.DecReason), OverturnID: deref(r.DecOverturn), DecidedAt: deref(r.DecAt)}
		a.Decision, a.Status = d, d.Outcome
	}
	return a
}

// Appeal returns one appeal with its decision, if any; ErrNotFound when
// there is no such appeal.
func (s *Store) Appeal(ctx context.Context, id int64) (Appeal, error) {
	return readAppeal(ctx, s.pool, id)
}

func readAppeal(ctx context.Context, q querier, id int64) (Appeal, error) {
	rows, err := q.Query(ctx, appealSelect+` WHERE ap.id = $1`, id)
	if err != nil {
		return Appeal{}, fmt.Errorf("read appeal %d: %w", id, err)
	}
	row, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[appealRow])
	if errors.Is(err, pgx.ErrNoRows) {
		return Appeal{}, fmt.Errorf("appeal %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Appeal{}, fmt.Errorf("read appeal %d: %w", id, err)
	}
	return row.appeal(), nil
}

// The cursor kinds of ListAppeals, one per order, so that a cursor of one
// order is refused by the other.
const (
	kindAppeals       = "appeals"
	kindAppealsOldest = "appeals_oldest"
)

// ListAppeals returns appeals with their decisions, newest first, or
// oldest first with f.Sort = SortOldest.
func (s *Store) ListAppeals(ctx context.Context, f AppealFilter) (Page[Appeal], error) {
	kind, oldest := kindAppeals, f.Sort == SortOldest
	if oldest {
		kind = kindAppealsOldest
	}
	c, err := decodeCursor(kind, f.Cursor)
	if err != nil {
		return Page[Appeal]{}, err
	}
	if !storable(f.UserID) || !storable(f.Status) || !storable(f.RuleID) || !storable(f.ActionType) {
		return Page[Appeal]{Items: []Appeal{}}, nil
	}
	limit := pageSize(f.Limit)
	var q query
	q.equal("ap.user_id", f.UserID)
	switch f.Status {
	case "":
	case AppealPending:
		q.where("ad.id IS NULL")
	default:
		q.where("ad.outcome = " + q.arg(f.Status))
	}
	if f.RuleID != "" {
		q.where(q.arg(f.RuleID) + " = ANY(" + appealRules + ")")
	}
	if f.ActionType != "" {
		q.where(q.arg(f.ActionType) + " = ANY(" + appealActionTypes + ")")
	}
	q.timeRange("ap.created_at", f.From, f.To)
	order := " ORDER BY ap.created_at DESC, ap.id DESC"
	if oldest {
		q.afterAscending(c, "ap.created_at", "ap.id")
		order = " ORDER BY ap.created_at, ap.id"
	} else {
		q.after(c, "ap.created_at", "ap.id")
	}
	sql := appealSelect + " " + q.clause() + order + " LIMIT " + q.arg(limit+1)
	rows, err := s.search(ctx, sql, q.args...)
	if err != nil {
		return Page[Appeal]{}, fmt.Errorf("list appeals: %w", err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByName[appealRow])
	if err != nil {
		return Page[Appeal]{}, fmt.Errorf("list appeals: %w", err)
	}
	items := make([]Appeal, len(got))
	for i, r := range got {
		items[i] = r.appeal()
	}
	return paginate(items, limit, func(a Appeal) string {
		return encodeCursor(kind, a.CreatedAt, 0, a.ID)
	}), nil
}

// DecideAppealUpheld records that the appeal is upheld (the action stands)
// by reviewer for reason, and the staff audit row act, in one transaction;
// act's empty Actor, Act, Target and Reason default to the reviewer,
// decide_appeal, "appeal:ID" and reason.
// ErrAlreadyDecided when the appeal has a decision (the unique index on
// appeal_decisions decides, so of two concurrent decisions one wins);
// ErrNotFound when there is no such appeal.
func (s *Store) DecideAppealUpheld(ctx context.Context, appealID int64, reviewer, reason string, act StaffAct) (AppealDecision, error) {
	var d AppealDecision
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		d, err = RecordAppealDecisionTx(ctx, tx, AppealDecisionRow{AppealID: appealID, Outcome: AppealUpheld,
			Reviewer: reviewer, Reason: reason})
		if err != nil {
			return err
		}
		if act.Actor == "" {
			act.Actor = reviewer
		}
		if act.Target == "" {
			act.Target = fmt.Sprintf("appeal:%d", appealID)
		}
		if act.Act == "" {
			act.Act = ActDecideAppeal
		}
		if act.Reason == "" {
			act.Reason = reason
		}
		return RecordStaffActTx(ctx, tx, act)
	})
	if err != nil {
		return AppealDecision{}, err
	}
	return d, nil
}

// RecordAppealDecisionTx records an appeal's decision inside tx: the
// overturn pipeline calls it in the overturn's transaction with
// AppealOverturned and the overturn's id. ErrNotFound when the appeal does
// not exist; ErrAlreadyDecided when it has a decision already (found by the
// unique index without aborting tx); an *InputError for a missing reviewer
// or reason, or an outcome without its overturn.
func RecordAppealDecisionTx(ctx context.Context, tx pgx.Tx, d AppealDecisionRow) (AppealDecision, error) {
	if err := d.validate(); err != nil {
		return AppealDecision{}, err
	}
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM appeals WHERE id = $1)`, d.AppealID).Scan(&exists); err != nil {
		return AppealDecision{}, fmt.Errorf("decide appeal %d: %w", d.AppealID, err)
	}
	if !exists {
		return AppealDecision{}, fmt.Errorf("decide appeal %d: %w", d.AppealID, ErrNotFound)
	}
	out := AppealDecision{AppealID: d.AppealID, Outcome: d.Outcome, Reviewer: d.Reviewer, Reason: d.Reason, OverturnID: d.OverturnID}
	err := tx.QueryRow(ctx, `INSERT INTO appeal_decisions (appeal_id, outcome, reviewer, reason, overturn_id)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (appeal_id) DO NOTHING RETURNING id, decided_at`,
		d.AppealID, d.Outcome, d.Reviewer, d.Reason, nullID(d.OverturnID)).Scan(&out.ID, &out.DecidedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return AppealDecision{}, fmt.Errorf("decide appeal %d: %w", d.AppealID, ErrAlreadyDecided)
	}
	if err != nil {
		return AppealDecision{}, fmt.Errorf("decide appeal %d: %w", d.AppealID, err)
	}
	return out, nil
}

func (d *AppealDecisionRow) validate() error {
	switch {
	case d.AppealID <= 0:
		return &InputError{Field: "appeal_id", Msg: "must be a positive id"}
	case d.Outcome != AppealUpheld && d.Outcome != AppealOverturned:
		return &InputError{Field: "outcome", Msg: "must be upheld or overturned"}
	case (d.Outcome == AppealOverturned) != (d.OverturnID > 0):
		return &InputError{Field: "overturn_id", Msg: "is required for an overturned appeal, and only for it"}
	case strings.TrimSpace(d.Reviewer) == "":
		return &InputError{Field: "reviewer", Msg: "is required"}
	case strings.TrimSpace(d.Reason) == "":
		return &InputError{Field: "reason", Msg: "is required"}
	}
	if err := checkText("reviewer", d.Reviewer, maxShortRunes); err != nil {
		return err
	}
	return checkText("reason", d.Reason, maxReasonRunes)
}

func nullID(id int64) *int64 {
	if id == 0 {
		return nil
	}
	return &id
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
