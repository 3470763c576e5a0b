package store

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// AuditFilter selects rows of the audit trail for the Search methods and
// Timeline. Zero fields do not filter. Every value is passed to Postgres
// as a parameter; a value that matches nothing returns an empty page.
type AuditFilter struct {
	UserID     string // the user the row concerns (events.user_id, actions.target_user_id)
	MessageID  string
	ChannelCID string
	RuleID     string // a rule that matched (events, decisions) or acted (actions)
	EventType  string // the event's type: message.new, …
	ActionType string // actions: their type; events and decisions: a requested action of that type
	// Outcome: actions that ended so (applied, failed, held, dry_run,
	// superseded, suppressed, nothing_to_undo), have no outcome yet (pending), or were
	// overturned; events and decisions: having such an action.
	Outcome string
	// Text is a full-text query over message text (events only):
	// words, "a phrase", or, -word, as Postgres's websearch_to_tsquery
	// reads them, matched case-insensitively and without stemming.
	Text     string
	From, To time.Time // [From, To); zero: open
	Cursor   string    // opaque, from Page.NextCursor; ErrBadCursor when not this list's
	Limit    int       // clamped to [1, 200]; 0 → 50
}

// Params returns the filters that are set, keyed by their query names
// (user_id, rule_id, from, …), for the staff audit log: what a reviewer
// searched for is recorded the same way from the API and from the
// terminal.
func (f AuditFilter) Params() map[string]any {
	p := map[string]any{}
	for k, v := range map[string]string{
		"user_id": f.UserID, "message_id": f.MessageID, "channel_cid": f.ChannelCID, "rule_id": f.RuleID,
		"event_type": f.EventType, "action_type": f.ActionType, "outcome": f.Outcome, "cursor": f.Cursor,
		"text": f.Text,
	} {
		if v != "" {
			p[k] = v
		}
	}
	if !f.From.IsZero() {
		p["from"] = f.From.UTC().Format(time.RFC3339Nano)
	}
	if !f.To.IsZero() {
		p["to"] = f.To.UTC().Format(time.RFC3339Nano)
	}
	if f.Limit != 0 {
		p["limit"] = f.Limit
	}
	return p
}

// Outcome values of AuditFilter.Outcome and ActionDetail.Status besides
// those of OutcomeRow: pending and overturned are states, not recorded
// outcomes; suppressed is recorded (migration 0005) when a rule immunity
// kept an action from running.
const (
	OutcomePending    = "pending"    // no outcome recorded yet
	OutcomeOverturned = "overturned" // an overturn covered it (filter only)
	OutcomeSuppressed = "suppressed"
	// OutcomeNothingToUndo is recorded (migration 0010) when a reversal
	// found nothing it may undo: an unmute that keeps a stronger ban.
	OutcomeNothingToUndo = "nothing_to_undo"
)

// FilterOutcomes are the values AuditFilter.Outcome takes: every recorded
// outcome, then the two states.
var FilterOutcomes = []string{OutcomeApplied, OutcomeFailed, OutcomeHeld, OutcomeDryRun,
	OutcomeSuperseded, OutcomeSuppressed, OutcomeNothingToUndo, OutcomePending, OutcomeOverturned}

// The list kinds, which cursors carry.
const (
	kindEvents    = "events"
	kindDecisions = "decisions"
	kindActions   = "actions"
	kindTimeline  = "timeline"
)

// EventSummary is one recorded event as lists show it.
type EventSummary struct {
	ID             int64      `json:"id" db:"id"`
	ReceivedAt     time.Time  `json:"received_at" db:"received_at"`
	Type           string     `json:"type" db:"type"`
	CreatedAt      *time.Time `json:"created_at,omitempty" db:"created_at"` // the event's own time, from Stream
	UserID         string     `json:"user_id,omitempty" db:"user_id"`
	ActorID        string     `json:"actor_id,omitempty" db:"actor_id"`
	ChannelCID     string     `json:"channel_cid,omitempty" db:"channel_cid"`
	MessageID      string     `json:"message_id,omitempty" db:"message_id"`
	ParentID       string     `json:"parent_id,omitempty" db:"parent_id"` // the thread's first message, for a reply
	Text           string     `json:"text,omitempty" db:"text"`           // the message's text, cut at 280 characters
	Own            bool       `json:"own" db:"own"`
	Ignored        bool       `json:"ignored" db:"ignored"`
	RuleSetVersion string     `json:"rule_set_version,omitempty" db:"rule_set_version"`
	DecisionID     int64      `json:"decision_id,omitempty" db:"decision_id"`
	MatchedRules   []string   `json:"matched_rules,omitempty" db:"matched_rules"`
}

const eventColumns = `e.id, e.received_at, e.type, e.created_at, coalesce(e.user_id, '') AS user_id,
	coalesce(e.actor_id, '') AS actor_id, coalesce(e.channel_cid, '') AS channel_cid,
	coalesce(e.message_id, '') AS message_id, coalesce(e.payload #>> '{message,parent_id}', '') AS parent_id,
	coalesce(left(e.payload #>> '{message,text}', 280), '') AS text, e.own, e.ignored,
	coalesce(e.rule_set_version, '') AS rule_set_version, coalesce(d.id, 0) AS decision_id,
	coalesce(d.matched_rules, '{}') AS matched_rules`

// unmatchable reports whether a filter holds a value no stored row can
// have: text with NUL or invalid UTF-8, which Postgres cannot store (and
// would refuse as a parameter). Such a search has no results.
func (f *AuditFilter) unmatchable() bool {
	for _, v := range []string{f.UserID, f.MessageID, f.ChannelCID, f.RuleID, f.EventType, f.ActionType, f.Outcome, f.Text} {
		if !storable(v) {
			return true
		}
	}
	return false
}

func storable(v string) bool { return utf8.ValidString(v) && !strings.ContainsRune(v, 0) }

// outcomeCond returns the condition that the action aliased a ended with
// outcome (or is pending, or was overturned).
func (q *query) outcomeCond(a, outcome string) string {
	switch outcome {
	case OutcomePending:
		return "NOT EXISTS (SELECT 1 FROM action_outcomes o2 WHERE o2.action_id = " + a + ".id)"
	case OutcomeOverturned:
		return "EXISTS (SELECT 1 FROM action_reversals r2 WHERE r2.action_id = " + a + ".id)"
	}
	return "EXISTS (SELECT 1 FROM action_outcomes o2 WHERE o2.action_id = " + a + ".id AND o2.outcome = " + q.arg(outcome) + ")"
}

// eventActionCond adds, for a list keyed by an event id column, that the
// event had an action of f.ActionType and/or f.Outcome.
func (q *query) eventActionCond(eventIDCol string, f AuditFilter) {
	if f.ActionType == "" && f.Outcome == "" {
		return
	}
	cond := "EXISTS (SELECT 1 FROM actions a2 WHERE a2.event_id = " + eventIDCol + " AND a2.reverses_action_id IS NULL"
	if f.ActionType != "" {
		cond += " AND a2.type = " + q.arg(f.ActionType)
	}
	if f.Outcome != "" {
		cond += " AND " + q.outcomeCond("a2", f.Outcome)
	}
	q.where(cond + ")")
}

// SearchEvents returns recorded events that match f, newest first (by the
// time they were received).
func (s *Store) SearchEvents(ctx context.Context, f AuditFilter) (Page[EventSummary], error) {
	c, err := decodeCursor(kindEvents, f.Cursor)
	if err != nil {
		return Page[EventSummary]{}, err
	}
	if f.unmatchable() {
		return Page[EventSummary]{Items: []EventSummary{}}, nil
	}
	limit := pageSize(f.Limit)
	var items []EventSummary
	if f.Text != "" {
		items, err = s.searchEventsText(ctx, f, c, limit)
	} else {
		var rows pgx.Rows
		sql, args := eventsSQL(f, c, limit)
		if rows, err = s.search(ctx, sql, args...); err == nil {
			items, err = pgx.CollectRows(rows, pgx.RowToStructByName[EventSummary])
		}
	}
	if err != nil {
		return Page[EventSummary]{}, fmt.Errorf("search events: %w", err)
	}
	return paginate(items, limit, func(e EventSummary) string {
		return encodeCursor(kindEvents, e.ReceivedAt, 0, e.ID)
	}), nil
}

// defaultTextProbe is how many matches of a text search are counted through the
// words index before the search is planned: at most this many are
// fetched and sorted by time; more, and the time index is walked instead.
const defaultTextProbe = 2000

// searchEventsText runs a search with a full-text filter. Newest first,
// a page of matches comes either from the words index (every match
// fetched, then sorted by time: cheap for a rare word) or from walking the
// words' time index and checking each event's words (cheap for a frequent
// word, ruinous for a rare one, which may mean the whole table). The planner
// chooses by its estimate of how many events match, which for a phrase, a
// word it has no statistics for, or an "or" can be wrong by orders of
// magnitude (a phrase no event has took 1.3 s on a million events). So the
// matches are first counted through the words index, up to
// defaultTextProbe:
// under it the page is taken from them; over it, the time index is walked
// (at least textProbe matches in the table make a page quick to find).
// One read-only transaction; parallel workers are off, as a parallel walk
// of the time index reads far past the page.
func (s *Store) searchEventsText(ctx context.Context, f AuditFilter, c *cursor, limit int) ([]EventSummary, error) {
	var items []EventSummary
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL max_parallel_workers_per_gather = 0`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SET LOCAL enable_indexscan = off`); err != nil {
			return err
		}
		var n int
		probe := cmp.Or(s.textProbe, defaultTextProbe)
		sql, args := eventsProbeSQL(f, c, probe+1)
		if err := tx.QueryRow(ctx, sql, append([]any{pgx.QueryExecModeExec}, args...)...).Scan(&n); err != nil {
			return fmt.Errorf("count matches: %w", err)
		}
		if n > probe {
			if _, err := tx.Exec(ctx, `SET LOCAL enable_indexscan = on`); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `SET LOCAL enable_bitmapscan = off`); err != nil {
				return err
			}
		}
		sql, args = eventsSQL(f, c, limit)
		rows, err := tx.Query(ctx, sql, append([]any{pgx.QueryExecModeExec}, args...)...)
		if err != nil {
			return err
		}
		items, err = pgx.CollectRows(rows, pgx.RowToStructByName[EventSummary])
		return err
	})
	return items, err
}

// eventsSQL is SearchEvents's statement and its parameters. A text
// search reads the words table (event_words) and walks its time index.
func eventsSQL(f AuditFilter, c *cursor, limit int) (string, []any) {
	if f.Text != "" {
		q := eventsWhere(f, c, "w.received_at", "w.event_id")
		sql := `SELECT ` + eventColumns + ` FROM event_words w JOIN events e ON e.id = w.event_id
			LEFT JOIN decisions d ON d.event_id = e.id ` + q.clause() +
			` ORDER BY w.received_at DESC, w.event_id DESC LIMIT ` + q.arg(limit+1)
		return sql, q.args
	}
	q := eventsWhere(f, c, "e.received_at", "e.id")
	sql := `SELECT ` + eventColumns + ` FROM events e LEFT JOIN decisions d ON d.event_id = e.id ` +
		q.clause() + ` ORDER BY e.received_at DESC, e.id DESC LIMIT ` + q.arg(limit+1)
	return sql, q.args
}

// eventsProbeSQL counts the events a text search would list, up to most.
// The time range and the cursor are checked on the rows the words index
// finds, never looked up in the time index: for a frequent word that
// index would be read whole to build its bitmap (0.6 s on a million
// events).
func eventsProbeSQL(f AuditFilter, c *cursor, most int) (string, []any) {
	q := eventsWhere(f, c, "(w.received_at + interval '0 s')", "w.event_id")
	sql := `SELECT count(*) FROM (SELECT 1 FROM event_words w JOIN events e ON e.id = w.event_id
		LEFT JOIN decisions d ON d.event_id = e.id ` + q.clause() + ` LIMIT ` + q.arg(most) + `) AS m`
	return sql, q.args
}

// eventsWhere is the conditions of SearchEvents, with the time and id
// columns to range and page on (the event's, or its words').
func eventsWhere(f AuditFilter, c *cursor, timeCol, idCol string) *query {
	var q query
	q.equal("e.user_id", f.UserID)
	q.equal("e.message_id", f.MessageID)
	q.equal("e.channel_cid", f.ChannelCID)
	q.equal("e.type", f.EventType)
	if f.RuleID != "" {
		q.where("d.matched_rules @> ARRAY[" + q.arg(f.RuleID) + "::text]")
	}
	q.eventActionCond("e.id", f)
	if f.Text != "" {
		q.where("w.words @@ websearch_to_tsquery('simple', " + q.arg(f.Text) + ")")
	}
	q.timeRange(timeCol, f.From, f.To)
	q.after(c, timeCol, idCol)
	return &q
}

// paginate cuts the limit+1 rows a query returned to a page, with a cursor
// after its last row when there are more.
func paginate[T any](items []T, limit int, cur func(T) string) Page[T] {
	if items == nil {
		items = []T{}
	}
	if len(items) <= limit {
		return Page[T]{Items: items}
	}
	items = items[:limit]
	return Page[T]{Items: items, NextCursor: cur(items[limit-1])}
}

// DecisionSummary is one decision as lists show it.
type DecisionSummary struct {
	ID             int64     `json:"id" db:"id"`
	EventID        int64     `json:"event_id" db:"event_id"`
	EventType      string    `json:"event_type" db:"event_type"`
	DecidedAt      time.Time `json:"decided_at" db:"decided_at"`
	RuleSetVersion string    `json:"rule_set_version" db:"rule_set_version"`
	MatchedRules   []string  `json:"matched_rules" db:"matched_rules"`
	EnforcedRules  []string  `json:"enforced_rules" db:"enforced_rules"`
	UserID         string    `json:"user_id,omitempty" db:"user_id"`
	ChannelCID     string    `json:"channel_cid,omitempty" db:"channel_cid"`
	MessageID      string    `json:"message_id,omitempty" db:"message_id"`
	ActionTypes    []string  `json:"action_types" db:"action_types"` // the actions requested, in order
	// ShadowActionTypes are what its shadow rules (and rules demoted to
	// shadow) would have asked for, in order: asked of no one, so that a
	// list never shows them as taken.
	ShadowActionTypes []string `json:"shadow_action_types" db:"shadow_action_types"`
	RuleErrors        int      `json:"rule_errors" db:"rule_errors"` // rules that failed on the event
}

const decisionColumns = `d.id, d.event_id, e.type AS event_type, d.decided_at, d.rule_set_version,
	d.matched_rules, d.enforced_rules, coalesce(d.user_id, '') AS user_id,
	coalesce(d.channel_cid, '') AS channel_cid, coalesce(d.message_id, '') AS message_id,
	ARRAY(SELECT x ->> 'type' FROM jsonb_array_elements(d.actions) AS x) AS action_types,
	ARRAY(SELECT a ->> 'type' FROM jsonb_array_elements(d.matches) WITH ORDINALITY AS m(x, i),
		jsonb_array_elements(coalesce(x -> 'actions', '[]'::jsonb)) WITH ORDINALITY AS y(a, j)
		WHERE x ->> 'mode' = 'shadow' ORDER BY i, j) AS shadow_action_types,
	jsonb_array_length(d.errors) AS rule_errors`

// SearchDecisions returns decisions that match f, newest first.
func (s *Store) SearchDecisions(ctx context.Context, f AuditFilter) (Page[DecisionSummary], error) {
	c, err := decodeCursor(kindDecisions, f.Cursor)
	if err != nil {
		return Page[DecisionSummary]{}, err
	}
	if f.unmatchable() {
		return Page[DecisionSummary]{Items: []DecisionSummary{}}, nil
	}
	limit := pageSize(f.Limit)
	sql, args := decisionsSQL(f, c, limit)
	rows, err := s.search(ctx, sql, args...)
	if err != nil {
		return Page[DecisionSummary]{}, fmt.Errorf("search decisions: %w", err)
	}
	items, err := pgx.CollectRows(rows, pgx.RowToStructByName[DecisionSummary])
	if err != nil {
		return Page[DecisionSummary]{}, fmt.Errorf("search decisions: %w", err)
	}
	return paginate(items, limit, func(d DecisionSummary) string {
		return encodeCursor(kindDecisions, d.DecidedAt, 0, d.ID)
	}), nil
}

// decisionsSQL is SearchDecisions's statement and its parameters.
func decisionsSQL(f AuditFilter, c *cursor, limit int) (string, []any) {
	var q query
	q.equal("d.user_id", f.UserID)
	q.equal("d.message_id", f.MessageID)
	q.equal("d.channel_cid", f.ChannelCID)
	if f.RuleID != "" {
		q.where("d.matched_rules @> ARRAY[" + q.arg(f.RuleID) + "::text]")
	}
	q.equal("e.type", f.EventType)
	if f.ActionType != "" {
		q.where("d.actions @> jsonb_build_array(jsonb_build_object('type', " + q.arg(f.ActionType) + "::text))")
	}
	if f.Outcome != "" {
		q.eventActionCond("d.event_id", AuditFilter{Outcome: f.Outcome})
	}
	q.timeRange("d.decided_at", f.From, f.To)
	q.after(c, "d.decided_at", "d.id")
	sql := `SELECT ` + decisionColumns + ` FROM decisions d JOIN events e ON e.id = d.event_id ` +
		q.clause() + ` ORDER BY d.decided_at DESC, d.id DESC LIMIT ` + q.arg(limit+1)
	return sql, q.args
}

// ActionDetail is one action with everything that happened to it: every
// attempt against Stream, its outcome, and whether and how it was
// overturned. A reversal action (an unban, say) is an action too, and
// points at what it reverses.
type ActionDetail struct {
	ID           int64           `json:"id"`
	EventID      int64           `json:"event_id"`
	DecisionID   int64           `json:"decision_id,omitempty"`
	Position     int             `json:"position"`
	RuleID       string          `json:"rule_id"`
	Type         string          `json:"type"`
	TargetUserID string          `json:"target_user_id,omitempty"`
	MessageID    string          `json:"message_id,omitempty"`
	ChannelCID   string          `json:"channel_cid,omitempty"`
	Params       json.RawMessage `json:"params"`
	CreatedAt    time.Time       `json:"created_at"`
	// ReversesActionID and OverturnID are set on a reversal action.
	ReversesActionID int64           `json:"reverses_action_id,omitempty"`
	OverturnID       int64           `json:"overturn_id,omitempty"`
	Status           string          `json:"status"` // the outcome, or pending
	Outcome          *ActionOutcome  `json:"outcome,omitempty"`
	Attempts         []ActionAttempt `json:"attempts"`
	Reversal         *ActionReversal `json:"reversal,omitempty"` // set when it was overturned
}

// ActionOutcome is how an action ended.
type ActionOutcome struct {
	Outcome string          `json:"outcome"`
	Reason  string          `json:"reason,omitempty"`
	Request json.RawMessage `json:"request,omitempty"` // dry_run: what would have been sent
	At      time.Time       `json:"at"`
}

// ActionAttempt is one call made to Stream for an action.
type ActionAttempt struct {
	Attempt    int       `json:"attempt" db:"attempt"`
	Endpoint   string    `json:"endpoint" db:"endpoint"`
	HTTPStatus int       `json:"http_status,omitempty" db:"http_status"` // 0: no answer
	StreamCode int       `json:"stream_code,omitempty" db:"stream_code"`
	DurationMS float64   `json:"duration_ms" db:"duration_ms"`
	Error      string    `json:"error,omitempty" db:"error"`
	At         time.Time `json:"at" db:"at"`
}

// ActionReversal says how an overturn dealt with an action: reversed (with
// the reversal action and how that ended), cancelled before it ran, or
// nothing to undo.
type ActionReversal struct {
	OverturnID       int64     `json:"overturn_id"`
	Disposition      string    `json:"disposition"` // reversed, cancelled, nothing_to_undo
	Reviewer         string    `json:"reviewer"`
	Reason           string    `json:"reason"`
	At               time.Time `json:"at"`
	ReversalActionID int64     `json:"reversal_action_id,omitempty"`
	ReversalType     string    `json:"reversal_type,omitempty"`
	ReversalStatus   string    `json:"reversal_status,omitempty"` // the reversal action's outcome, or pending
}

// actionRow is an action joined with its outcome and reversal.
type actionRow struct {
	ID               int64      `db:"id"`
	EventID          int64      `db:"event_id"`
	DecisionID       int64      `db:"decision_id"`
	Position         int        `db:"position"`
	RuleID           string     `db:"rule_id"`
	Type             string     `db:"type"`
	TargetUserID     string     `db:"target_user_id"`
	MessageID        string     `db:"message_id"`
	ChannelCID       string     `db:"channel_cid"`
	Params           []byte     `db:"params"`
	CreatedAt        time.Time  `db:"created_at"`
	ReversesActionID int64      `db:"reverses_action_id"`
	OverturnID       int64      `db:"overturn_id"`
	Outcome          *string    `db:"outcome"`
	OutcomeReason    *string    `db:"outcome_reason"`
	OutcomeRequest   []byte     `db:"outcome_request"`
	OutcomeAt        *time.Time `db:"outcome_at"`
	RevOverturnID    *int64     `db:"rev_overturn_id"`
	RevDisposition   *string    `db:"rev_disposition"`
	RevReviewer      *string    `db:"rev_reviewer"`
	RevReason        *string    `db:"rev_reason"`
	RevAt            *time.Time `db:"rev_at"`
	RevActionID      *int64     `db:"rev_action_id"`
	RevType          *string    `db:"rev_type"`
	RevOutcome       *string    `db:"rev_outcome"`
}

// actionSelect reads actions with their outcome and reversal. The
// reversal side is a lateral subquery kept apart (LIMIT 1: an action is
// reversed at most once) and the decision a scalar subquery, so that the
// planner has three relations to order, not eight: planning the eight-way
// join cost more than running it.
const actionSelect = `SELECT a.id, a.event_id,
	coalesce((SELECT d.id FROM decisions d WHERE d.event_id = a.event_id), 0) AS decision_id, a.position, a.rule_id, a.type,
	coalesce(a.target_user_id, '') AS target_user_id, coalesce(a.message_id, '') AS message_id,
	coalesce(a.channel_cid, '') AS channel_cid, a.params, a.created_at,
	coalesce(a.reverses_action_id, 0) AS reverses_action_id, coalesce(a.overturn_id, 0) AS overturn_id,
	o.outcome, o.reason AS outcome_reason, o.request AS outcome_request, o.at AS outcome_at,
	rv.rev_overturn_id, rv.rev_disposition, rv.rev_reviewer, rv.rev_reason, rv.rev_at, rv.rev_action_id,
	rv.rev_type, rv.rev_outcome
	FROM actions a
	LEFT JOIN action_outcomes o ON o.action_id = a.id
	LEFT JOIN LATERAL (
		SELECT r.overturn_id AS rev_overturn_id, r.disposition AS rev_disposition, ov.reviewer AS rev_reviewer,
			ov.reason AS rev_reason, r.created_at AS rev_at, r.reversal_action_id AS rev_action_id,
			ra.type AS rev_type, rao.outcome AS rev_outcome
		FROM action_reversals r
		JOIN overturns ov ON ov.id = r.overturn_id
		LEFT JOIN actions ra ON ra.id = r.reversal_action_id
		LEFT JOIN action_outcomes rao ON rao.action_id = ra.id
		WHERE r.action_id = a.id
		LIMIT 1) AS rv ON true`

func (r actionRow) detail() ActionDetail {
	d := ActionDetail{ID: r.ID, EventID: r.EventID, DecisionID: r.DecisionID, Position: r.Position, RuleID: r.RuleID,
		Type: r.Type, TargetUserID: r.TargetUserID, MessageID: r.MessageID, ChannelCID: r.ChannelCID,
		Params: json.RawMessage(r.Params), CreatedAt: r.CreatedAt, ReversesActionID: r.ReversesActionID,
		OverturnID: r.OverturnID, Status: OutcomePending, Attempts: []ActionAttempt{}}
	if r.Outcome != nil {
		d.Status = *r.Outcome
		d.Outcome = &ActionOutcome{Outcome: *r.Outcome, Reason: deref(r.OutcomeReason), At: deref(r.OutcomeAt)}
		if len(r.OutcomeRequest) > 0 {
			d.Outcome.Request = json.RawMessage(r.OutcomeRequest)
		}
	}
	if r.RevOverturnID != nil {
		d.Reversal = &ActionReversal{OverturnID: *r.RevOverturnID, Disposition: deref(r.RevDisposition),
			Reviewer: deref(r.RevReviewer), Reason: deref(r.RevReason), At: deref(r.RevAt),
			ReversalActionID: deref(r.RevActionID), ReversalType: deref(r.RevType)}
		if d.Reversal.ReversalActionID != 0 {
			d.Reversal.ReversalStatus = OutcomePending
			if r.RevOutcome != nil {
				d.Reversal.ReversalStatus = *r.RevOutcome
			}
		}
	}
	return d
}

// SearchActions returns actions that match f, newest first, each with its
// attempts, outcome and reversal.
func (s *Store) SearchActions(ctx context.Context, f AuditFilter) (Page[ActionDetail], error) {
	c, err := decodeCursor(kindActions, f.Cursor)
	if err != nil {
		return Page[ActionDetail]{}, err
	}
	if f.unmatchable() {
		return Page[ActionDetail]{Items: []ActionDetail{}}, nil
	}
	limit := pageSize(f.Limit)
	sql, args := actionsSQL(f, c, limit)
	items, err := s.queryActions(ctx, sql, args...)
	if err != nil {
		return Page[ActionDetail]{}, fmt.Errorf("search actions: %w", err)
	}
	return paginate(items, limit, func(a ActionDetail) string {
		return encodeCursor(kindActions, a.CreatedAt, 0, a.ID)
	}), nil
}

// actionsSQL is SearchActions's statement and its parameters.
func actionsSQL(f AuditFilter, c *cursor, limit int) (string, []any) {
	var q query
	q.equal("a.target_user_id", f.UserID)
	q.equal("a.message_id", f.MessageID)
	q.equal("a.channel_cid", f.ChannelCID)
	q.equal("a.rule_id", f.RuleID)
	q.equal("a.type", f.ActionType)
	if f.EventType != "" {
		q.where("EXISTS (SELECT 1 FROM events e WHERE e.id = a.event_id AND e.type = " + q.arg(f.EventType) + ")")
	}
	switch f.Outcome {
	case "":
	case OutcomePending:
		q.where("o.id IS NULL")
	case OutcomeOverturned:
		q.where("rv.rev_overturn_id IS NOT NULL")
	default:
		q.where("o.outcome = " + q.arg(f.Outcome))
	}
	q.timeRange("a.created_at", f.From, f.To)
	q.after(c, "a.created_at", "a.id")
	sql := actionSelect + " " + q.clause() + " ORDER BY a.created_at DESC, a.id DESC LIMIT " + q.arg(limit+1)
	return sql, q.args
}

// Action returns one action with its attempts, outcome and reversal;
// ErrNotFound when there is no such action.
func (s *Store) Action(ctx context.Context, actionID int64) (ActionDetail, error) {
	items, err := s.queryActions(ctx, actionSelect+" WHERE a.id = $1", actionID)
	if err != nil {
		return ActionDetail{}, fmt.Errorf("read action %d: %w", actionID, err)
	}
	if len(items) == 0 {
		return ActionDetail{}, fmt.Errorf("action %d: %w", actionID, ErrNotFound)
	}
	return items[0], nil
}

// queryActions runs an actionSelect query and adds each action's attempts.
func (s *Store) queryActions(ctx context.Context, sql string, args ...any) ([]ActionDetail, error) {
	rows, err := s.search(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByName[actionRow])
	if err != nil {
		return nil, err
	}
	items := make([]ActionDetail, len(got))
	ids := make([]int64, len(got))
	byID := make(map[int64]int, len(got))
	for i, r := range got {
		items[i] = r.detail()
		ids[i] = r.ID
		byID[r.ID] = i
	}
	if len(ids) == 0 {
		return items, nil
	}
	type attemptRow struct {
		ActionID int64 `db:"action_id"`
		ActionAttempt
	}
	rows, err = s.pool.Query(ctx, `SELECT action_id, attempt, endpoint, coalesce(http_status, 0) AS http_status,
		coalesce(stream_code, 0) AS stream_code, duration_ms, coalesce(error, '') AS error, at
		FROM action_attempts WHERE action_id = ANY($1) ORDER BY action_id, attempt`, ids)
	if err != nil {
		return nil, fmt.Errorf("read attempts: %w", err)
	}
	attempts, err := pgx.CollectRows(rows, pgx.RowToStructByName[attemptRow])
	if err != nil {
		return nil, fmt.Errorf("read attempts: %w", err)
	}
	for _, a := range attempts {
		i := byID[a.ActionID]
		items[i].Attempts = append(items[i].Attempts, a.ActionAttempt)
	}
	return items, nil
}
