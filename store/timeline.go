package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Timeline entry kinds, in TimelineEntry.Kind. Their order here is their
// rank: of two entries at the same instant, the later kind comes first
// (newest first), so an action is listed above the decision that asked
// for it.
const (
	KindEvent          = "event"
	KindDecision       = "decision"
	KindAction         = "action"
	KindAppeal         = "appeal"
	KindAppealDecision = "appeal_decision"
	KindOverturn       = "overturn"
)

// TimelineEntry is one thing in a user's history: an event about them, a
// decision on it, an action against them (with how it ended), an appeal
// they made, its decision, or an overturn in their favour. The fields a
// kind does not have are empty; the *_id fields link the entries.
type TimelineEntry struct {
	At   time.Time `json:"at" db:"at"`
	Kind string    `json:"kind" db:"kind"`
	ID   int64     `json:"id" db:"id"` // the row's id in its kind's table
	// Type is the event's type, the action's type, or the appeal
	// decision's outcome.
	Type       string   `json:"type,omitempty" db:"type"`
	RuleIDs    []string `json:"rule_ids,omitempty" db:"rule_ids"` // a decision's matched rules; an action's rule
	ChannelCID string   `json:"channel_cid,omitempty" db:"channel_cid"`
	MessageID  string   `json:"message_id,omitempty" db:"message_id"`
	// Status is an action's outcome (or pending) or an appeal's status.
	Status string `json:"status,omitempty" db:"status"`
	// Text is the message's text (cut at 280 characters) for an event,
	// the statement for an appeal, the reason for a decision or overturn.
	Text       string `json:"text,omitempty" db:"text"`
	Actor      string `json:"actor,omitempty" db:"actor"` // who recorded the appeal, the reviewer
	EventID    int64  `json:"event_id,omitempty" db:"event_id"`
	DecisionID int64  `json:"decision_id,omitempty" db:"decision_id"`
	ActionID   int64  `json:"action_id,omitempty" db:"action_id"`
	AppealID   int64  `json:"appeal_id,omitempty" db:"appeal_id"`
	OverturnID int64  `json:"overturn_id,omitempty" db:"overturn_id"`
}

var kindRank = map[string]int{KindEvent: 1, KindDecision: 2, KindAction: 3, KindAppeal: 4, KindAppealDecision: 5, KindOverturn: 6}

// timelineBranches are the parts of a timeline, one per kind: each selects
// the timeline columns of the rows concerning the user ($1), with its time
// column and id column for the range and the cursor.
var timelineBranches = []struct {
	kind, sql, at, id string
}{
	{KindEvent, `SELECT e.received_at AS at, 'event' AS kind, e.id, e.type, '{}'::text[] AS rule_ids,
		coalesce(e.channel_cid, '') AS channel_cid, coalesce(e.message_id, '') AS message_id, '' AS status,
		coalesce(left(e.payload #>> '{message,text}', 280), '') AS text, '' AS actor, e.id AS event_id,
		coalesce(d.id, 0) AS decision_id, 0::bigint AS action_id, 0::bigint AS appeal_id, 0::bigint AS overturn_id
		FROM events e LEFT JOIN decisions d ON d.event_id = e.id WHERE e.user_id = $1`, "e.received_at", "e.id"},
	{KindDecision, `SELECT d.decided_at AS at, 'decision' AS kind, d.id, '' AS type, d.matched_rules AS rule_ids,
		coalesce(d.channel_cid, '') AS channel_cid, coalesce(d.message_id, '') AS message_id, '' AS status,
		coalesce((SELECT string_agg(x ->> 'reason', '; ') FROM jsonb_array_elements(d.matches) AS x), '') AS text,
		'' AS actor, d.event_id, d.id AS decision_id, 0::bigint AS action_id, 0::bigint AS appeal_id, 0::bigint AS overturn_id
		FROM decisions d WHERE d.user_id = $1`, "d.decided_at", "d.id"},
	{KindAction, `SELECT a.created_at AS at, 'action' AS kind, a.id, a.type, ARRAY[a.rule_id] AS rule_ids,
		coalesce(a.channel_cid, '') AS channel_cid, coalesce(a.message_id, '') AS message_id,
		coalesce(o.outcome, 'pending') AS status, coalesce(o.reason, '') AS text, '' AS actor, a.event_id,
		coalesce(d.id, 0) AS decision_id, a.id AS action_id, 0::bigint AS appeal_id, coalesce(a.overturn_id, 0) AS overturn_id
		FROM actions a LEFT JOIN action_outcomes o ON o.action_id = a.id LEFT JOIN decisions d ON d.event_id = a.event_id
		WHERE a.target_user_id = $1`, "a.created_at", "a.id"},
	{KindAppeal, `SELECT ap.created_at AS at, 'appeal' AS kind, ap.id, ap.source AS type, '{}'::text[] AS rule_ids,
		'' AS channel_cid, '' AS message_id, coalesce(ad.outcome, 'pending') AS status, left(ap.statement, 280) AS text,
		ap.recorded_by AS actor, 0::bigint AS event_id, coalesce(ap.decision_id, 0) AS decision_id,
		coalesce(ap.action_id, 0) AS action_id, ap.id AS appeal_id, coalesce(ad.overturn_id, 0) AS overturn_id
		FROM appeals ap LEFT JOIN appeal_decisions ad ON ad.appeal_id = ap.id WHERE ap.user_id = $1`, "ap.created_at", "ap.id"},
	{KindAppealDecision, `SELECT ad.decided_at AS at, 'appeal_decision' AS kind, ad.id, ad.outcome AS type, '{}'::text[] AS rule_ids,
		'' AS channel_cid, '' AS message_id, ad.outcome AS status, ad.reason AS text, ad.reviewer AS actor,
		0::bigint AS event_id, coalesce(ap.decision_id, 0) AS decision_id, coalesce(ap.action_id, 0) AS action_id,
		ap.id AS appeal_id, coalesce(ad.overturn_id, 0) AS overturn_id
		FROM appeal_decisions ad JOIN appeals ap ON ap.id = ad.appeal_id WHERE ap.user_id = $1`, "ad.decided_at", "ad.id"},
	{KindOverturn, `SELECT ov.created_at AS at, 'overturn' AS kind, ov.id, '' AS type, '{}'::text[] AS rule_ids,
		'' AS channel_cid, '' AS message_id, '' AS status, ov.reason AS text, ov.reviewer AS actor,
		0::bigint AS event_id, coalesce(ov.decision_id, 0) AS decision_id, coalesce(ov.action_id, 0) AS action_id,
		coalesce(ov.appeal_id, 0) AS appeal_id, ov.id AS overturn_id
		FROM overturns ov WHERE ov.id IN (
			SELECT o.id FROM overturns o JOIN actions a ON a.id = o.action_id WHERE a.target_user_id = $1
			UNION ALL
			SELECT o.id FROM overturns o JOIN decisions d ON d.id = o.decision_id WHERE d.user_id = $1)`, "ov.created_at", "ov.id"},
}

// Timeline returns everything concerning userID, newest first: events,
// decisions, actions, appeals, appeal decisions and overturns. Of f it
// uses the time range, the cursor and the limit; the other filters belong
// to the searches.
func (s *Store) Timeline(ctx context.Context, userID string, f AuditFilter) (Page[TimelineEntry], error) {
	c, err := decodeCursor(kindTimeline, f.Cursor)
	if err != nil {
		return Page[TimelineEntry]{}, err
	}
	if c != nil && (c.Rank < 1 || c.Rank > len(kindRank)) {
		return Page[TimelineEntry]{}, ErrBadCursor
	}
	if strings.TrimSpace(userID) == "" {
		return Page[TimelineEntry]{}, &InputError{Field: "user_id", Msg: "is required"}
	}
	if !storable(userID) {
		return Page[TimelineEntry]{Items: []TimelineEntry{}}, nil
	}
	limit := pageSize(f.Limit)
	sql, args := timelineSQL(userID, f, c, limit)
	// A cached statement's generic plan is right here (every branch reads
	// its user index whoever the user is), and planning the six-branch
	// union each time would cost more than running it.
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return Page[TimelineEntry]{}, fmt.Errorf("timeline of %s: %w", userID, err)
	}
	items, err := pgx.CollectRows(rows, pgx.RowToStructByName[TimelineEntry])
	if err != nil {
		return Page[TimelineEntry]{}, fmt.Errorf("timeline of %s: %w", userID, err)
	}
	return paginate(items, limit, func(e TimelineEntry) string {
		return encodeCursor(kindTimeline, e.At, kindRank[e.Kind], e.ID)
	}), nil
}

// timelineSQL is Timeline's statement and its parameters: one branch per
// kind, each using its own index on the user and time, limited, then
// merged.
func timelineSQL(userID string, f AuditFilter, c *cursor, limit int) (string, []any) {
	q := query{args: []any{userID}}
	lim := q.arg(limit + 1)
	var (
		from, to string
		curAt    string
		curID    string
	)
	if !f.From.IsZero() {
		from = q.arg(ceilMicro(f.From))
	}
	if !f.To.IsZero() {
		to = q.arg(ceilMicro(f.To))
	}
	if c != nil {
		curAt, curID = q.arg(c.time()), q.arg(c.ID)
	}
	parts := make([]string, 0, len(timelineBranches))
	for _, b := range timelineBranches {
		sql := b.sql
		if from != "" {
			sql += " AND " + b.at + " >= " + from
		}
		if to != "" {
			sql += " AND " + b.at + " < " + to
		}
		if c != nil {
			// Past the cursor's instant, or at it with a lower rank, or
			// the same rank and a lower id.
			r := kindRank[b.kind]
			switch {
			case r > c.Rank:
				sql += " AND " + b.at + " < " + curAt + "::timestamptz"
			case r == c.Rank:
				sql += " AND (" + b.at + ", " + b.id + ") < (" + curAt + "::timestamptz, " + curID + "::bigint)"
			default:
				sql += " AND " + b.at + " <= " + curAt + "::timestamptz"
			}
		}
		parts = append(parts, "("+sql+" ORDER BY "+b.at+" DESC, "+b.id+" DESC LIMIT "+lim+")")
	}
	sql := `SELECT at, kind, id, type, rule_ids, channel_cid, message_id, status, text, actor, event_id, decision_id,
		action_id, appeal_id, overturn_id FROM (` + strings.Join(parts, " UNION ALL ") + `) AS t
		ORDER BY at DESC, CASE kind ` + rankCase() + ` END DESC, id DESC LIMIT ` + lim
	return sql, q.args
}

// rankCase is the CASE arms giving each kind its rank (constants of ours,
// no caller input).
func rankCase() string {
	var b strings.Builder
	for _, k := range []string{KindEvent, KindDecision, KindAction, KindAppeal, KindAppealDecision, KindOverturn} {
		fmt.Fprintf(&b, "WHEN '%s' THEN %d ", k, kindRank[k])
	}
	return b.String()
}
