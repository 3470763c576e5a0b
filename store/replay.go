package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"moderator/policy"
)

// A backtest replays recorded events through a candidate rule set. These
// reads give it the events in id order a page at a time (keyset on the
// id, so that no cursor or transaction stays open and memory stays flat),
// with what the rules in force decided about each, and the strikes the
// users had before the window. They read only.

// ReplayFilter selects a page of events to replay: received in [From,
// To), with an id in (AfterID, MaxID], oldest id first. Channels, when
// set, keeps only those channels' events; MessagesOnly keeps only new
// messages (to warm counters up).
type ReplayFilter struct {
	From, To     time.Time
	AfterID      int64
	MaxID        int64
	Channels     []string
	MessagesOnly bool
	Limit        int
}

// ReplayRow is one recorded event as a backtest replays it.
type ReplayRow struct {
	ID         int64
	ReceivedAt time.Time
	Type       string
	Own        bool
	Ignored    bool
	Payload    []byte
	// RuleSetVersion is the rule set that judged it; "" when none was
	// loaded (the event was not evaluated).
	RuleSetVersion string
	// Matches and Actions are the recorded decision's (JSON, as
	// policy.Decision encodes them); nil when nothing matched.
	Matches []byte
	Actions []byte
	// Strikes are the recorded actions of its decision, with when each
	// stopped counting as a strike.
	Strikes []PastStrike
}

// PastStrike is one recorded action that counts as a strike against its
// target user from the time of its event (At) until End, if it ended: an
// outcome that is not a strike (failed, held, superseded, suppressed) or
// a reversal by an overturn ends it at that time.
type PastStrike struct {
	EventID   int64             `json:"event_id"`
	MessageID string            `json:"message_id"`
	UserID    string            `json:"user_id"`
	At        time.Time         `json:"at"`
	Type      policy.ActionType `json:"type"`
	RuleID    string            `json:"rule_id"`
	End       *time.Time        `json:"end"`
}

// ReplayBounds returns the smallest and largest event ids received in
// [from, to); both are 0 when there are none. A page query bounded by
// them reads the window through the primary key, whatever its size.
func (s *Store) ReplayBounds(ctx context.Context, from, to time.Time) (lo, hi int64, err error) {
	err = s.pool.QueryRow(ctx, `SELECT coalesce(min(id), 0), coalesce(max(id), 0) FROM events
		WHERE received_at >= $1 AND received_at < $2`, from, to).Scan(&lo, &hi)
	if err != nil {
		return 0, 0, fmt.Errorf("replay bounds: %w", err)
	}
	return lo, hi, nil
}

// strikeEnd is the time an action stopped counting as a strike, as SQL.
const strikeEnd = `least(
	(SELECT o.at FROM action_outcomes o WHERE o.action_id = a.id AND o.outcome = ANY($%d)),
	(SELECT min(r.created_at) FROM action_reversals r WHERE r.action_id = a.id))`

// ReplayPage returns the next page of events of f, with their recorded
// decisions and actions.
func (s *Store) ReplayPage(ctx context.Context, f ReplayFilter) ([]ReplayRow, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 1000
	}
	var channels []string
	if len(f.Channels) > 0 {
		channels = f.Channels
	}
	// Planned for its values each time: a cached generic plan cannot see
	// that the id range is one page and may read the window by time.
	rows, err := s.pool.Query(ctx, `
		SELECT e.id, e.received_at, e.type, e.own, e.ignored, e.payload, coalesce(e.rule_set_version, ''),
			d.matches, d.actions,
			CASE WHEN d.id IS NULL OR $7 THEN NULL ELSE (SELECT jsonb_agg(jsonb_build_object(
				'event_id', a.event_id, 'message_id', coalesce(a.message_id, ''), 'user_id', a.target_user_id, 'at', coalesce(e.created_at, e.received_at),
				'type', a.type, 'rule_id', a.rule_id, 'end', `+fmt.Sprintf(strikeEnd, 8)+`) ORDER BY a.id)
				FROM actions a WHERE a.event_id = e.id AND a.reverses_action_id IS NULL AND a.target_user_id IS NOT NULL) END
		FROM events e LEFT JOIN decisions d ON d.event_id = e.id
		WHERE e.id > $1 AND e.id <= $2 AND e.received_at >= $3 AND e.received_at < $4
			AND ($5::text[] IS NULL OR e.channel_cid = ANY($5))
			AND (NOT $7 OR (e.type = 'message.new' AND NOT e.own))
		ORDER BY e.id LIMIT $6`,
		pgx.QueryExecModeExec, f.AfterID, f.MaxID, f.From, f.To, channels, limit, f.MessagesOnly, strikeOutcomes)
	if err != nil {
		return nil, fmt.Errorf("replay events after %d: %w", f.AfterID, err)
	}
	defer rows.Close()
	out := make([]ReplayRow, 0, limit)
	for rows.Next() {
		var r ReplayRow
		var strikes []byte
		if err := rows.Scan(&r.ID, &r.ReceivedAt, &r.Type, &r.Own, &r.Ignored, &r.Payload, &r.RuleSetVersion,
			&r.Matches, &r.Actions, &strikes); err != nil {
			return nil, fmt.Errorf("replay events after %d: %w", f.AfterID, err)
		}
		if strikes != nil {
			if err := json.Unmarshal(strikes, &r.Strikes); err != nil {
				return nil, fmt.Errorf("replay event %d: actions: %w", r.ID, err)
			}
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("replay events after %d: %w", f.AfterID, err)
	}
	return out, nil
}

// PastStrikes calls fn with every recorded action against a user whose
// event's time is in [from, to), oldest first: the strikes the users had
// when a backtest's window opens.
func (s *Store) PastStrikes(ctx context.Context, from, to time.Time, fn func(PastStrike) error) error {
	rows, err := s.pool.Query(ctx, `
		SELECT a.event_id, coalesce(a.message_id, ''), a.target_user_id, coalesce(e.created_at, e.received_at), a.type, a.rule_id, `+fmt.Sprintf(strikeEnd, 3)+`
		FROM actions a JOIN events e ON e.id = a.event_id
		WHERE a.reverses_action_id IS NULL AND a.target_user_id IS NOT NULL
			AND coalesce(e.created_at, e.received_at) >= $1 AND coalesce(e.created_at, e.received_at) < $2
		ORDER BY a.id`, from, to, strikeOutcomes)
	if err != nil {
		return fmt.Errorf("past strikes: %w", err)
	}
	defer rows.Close()
	var p PastStrike
	_, err = pgx.ForEachRow(rows, []any{&p.EventID, &p.MessageID, &p.UserID, &p.At, &p.Type, &p.RuleID, &p.End}, func() error {
		return fn(p)
	})
	if err != nil {
		return fmt.Errorf("past strikes: %w", err)
	}
	return nil
}
