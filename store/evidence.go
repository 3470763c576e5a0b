package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"moderator/policy"
)

// MaxContext is the most messages DecisionEvidence gives on each side of
// the judged message.
const MaxContext = 50

// Evidence is everything a reviewer needs to judge one decision: what the
// service saw (the event as Stream sent it), which rule set judged it, why
// each rule matched (its expression, where it is written, the values it
// read), what was asked for and what became of it at Stream, the appeals
// about it, and the conversation around the message.
type Evidence struct {
	Decision DecisionSummary `json:"decision"`
	Event    EventSnapshot   `json:"event"`
	// RuleSetVersion is the content hash of the rule set that judged the
	// event.
	RuleSetVersion string `json:"rule_set_version"`
	// Matches are the rules that matched, enforce and shadow, in
	// evaluation order, as recorded: When is the expression that fired
	// (empty for decisions recorded before it was kept), Evidence the
	// values it read.
	Matches []policy.Match `json:"matches"`
	// Errors are the rules that failed on the event.
	Errors []policy.RuleError `json:"errors"`
	// Requested are the actions the decision asked for (enforce mode).
	Requested []policy.Action `json:"requested"`
	// Actions are the actions recorded for the event, with every attempt,
	// outcome and reversal (reversal actions included).
	Actions []ActionDetail `json:"actions"`
	Appeals []Appeal       `json:"appeals"`
	// Context is the conversation around the message: in its thread when
	// it is a reply, else in its channel.
	Context Conversation `json:"context"`
}

// EventSnapshot is the recorded event with its payload, as Stream sent it.
type EventSnapshot struct {
	EventSummary
	Payload json.RawMessage `json:"payload"`
}

// Conversation is the recorded messages just before and after the judged
// one, oldest first on each side.
type Conversation struct {
	Scope  string           `json:"scope"`            // "channel", "thread", or "" when the event has no message
	Parent *ContextMessage  `json:"parent,omitempty"` // the thread's first message, for a reply
	Before []ContextMessage `json:"before"`
	After  []ContextMessage `json:"after"`
}

// ContextMessage is one recorded message of the conversation.
type ContextMessage struct {
	EventID      int64      `json:"event_id" db:"event_id"`
	ReceivedAt   time.Time  `json:"received_at" db:"received_at"`
	CreatedAt    *time.Time `json:"created_at,omitempty" db:"created_at"`
	MessageID    string     `json:"message_id" db:"message_id"`
	UserID       string     `json:"user_id,omitempty" db:"user_id"`
	ParentID     string     `json:"parent_id,omitempty" db:"parent_id"`
	Text         string     `json:"text" db:"text"`
	DecisionID   int64      `json:"decision_id,omitempty" db:"decision_id"` // the message's own decision, if a rule matched it
	MatchedRules []string   `json:"matched_rules,omitempty" db:"matched_rules"`
}

const contextSelect = `SELECT e.id AS event_id, e.received_at, e.created_at, e.message_id, coalesce(e.user_id, '') AS user_id,
	coalesce(e.payload #>> '{message,parent_id}', '') AS parent_id, coalesce(e.payload #>> '{message,text}', '') AS text,
	coalesce(d.id, 0) AS decision_id, coalesce(d.matched_rules, '{}') AS matched_rules
	FROM events e LEFT JOIN decisions d ON d.event_id = e.id`

// Event returns one recorded event with its payload, as Stream sent it;
// ErrNotFound when there is no such event.
func (s *Store) Event(ctx context.Context, id int64) (EventSnapshot, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+eventColumns+`, e.payload FROM events e LEFT JOIN decisions d ON d.event_id = e.id
		WHERE e.id = $1`, id)
	if err != nil {
		return EventSnapshot{}, fmt.Errorf("read event %d: %w", id, err)
	}
	type snapshotRow struct {
		EventSummary
		Payload []byte `db:"payload"`
	}
	snap, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[snapshotRow])
	if errors.Is(err, pgx.ErrNoRows) {
		return EventSnapshot{}, fmt.Errorf("event %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return EventSnapshot{}, fmt.Errorf("read event %d: %w", id, err)
	}
	return EventSnapshot{EventSummary: snap.EventSummary, Payload: json.RawMessage(snap.Payload)}, nil
}

// DecisionEvidence returns a decision's evidence with up to around
// recorded messages before and after it (clamped to [0, MaxContext]);
// ErrNotFound when there is no such decision.
func (s *Store) DecisionEvidence(ctx context.Context, decisionID int64, around int) (Evidence, error) {
	around = max(0, min(around, MaxContext))
	var ev Evidence
	type decisionRow struct {
		DecisionSummary
		Matches   []byte `db:"matches"`
		Errors    []byte `db:"errors"`
		Requested []byte `db:"requested"`
	}
	rows, err := s.pool.Query(ctx, `SELECT `+decisionColumns+`, d.matches, d.errors, d.actions AS requested
		FROM decisions d JOIN events e ON e.id = d.event_id WHERE d.id = $1`, decisionID)
	if err != nil {
		return Evidence{}, fmt.Errorf("read decision %d: %w", decisionID, err)
	}
	dec, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[decisionRow])
	if errors.Is(err, pgx.ErrNoRows) {
		return Evidence{}, fmt.Errorf("decision %d: %w", decisionID, ErrNotFound)
	}
	if err != nil {
		return Evidence{}, fmt.Errorf("read decision %d: %w", decisionID, err)
	}
	ev.Decision = dec.DecisionSummary
	ev.RuleSetVersion = ev.Decision.RuleSetVersion
	for _, part := range []struct {
		name string
		raw  []byte
		into any
	}{{"matches", dec.Matches, &ev.Matches}, {"errors", dec.Errors, &ev.Errors}, {"actions", dec.Requested, &ev.Requested}} {
		if err := json.Unmarshal(part.raw, part.into); err != nil {
			return Evidence{}, fmt.Errorf("decode %s of decision %d: %w", part.name, decisionID, err)
		}
	}

	if ev.Event, err = s.Event(ctx, ev.Decision.EventID); err != nil {
		return Evidence{}, err
	}

	ev.Actions, err = s.queryActions(ctx, actionSelect+` WHERE a.event_id = $1 ORDER BY a.created_at, a.id`, ev.Decision.EventID)
	if err != nil {
		return Evidence{}, fmt.Errorf("read actions of decision %d: %w", decisionID, err)
	}
	actionIDs := make([]int64, len(ev.Actions))
	for i, a := range ev.Actions {
		actionIDs[i] = a.ID
	}
	rows, err = s.pool.Query(ctx, appealSelect+` WHERE ap.decision_id = $1 OR ap.action_id = ANY($2) ORDER BY ap.created_at, ap.id`,
		decisionID, actionIDs)
	if err != nil {
		return Evidence{}, fmt.Errorf("read appeals of decision %d: %w", decisionID, err)
	}
	appeals, err := pgx.CollectRows(rows, pgx.RowToStructByName[appealRow])
	if err != nil {
		return Evidence{}, fmt.Errorf("read appeals of decision %d: %w", decisionID, err)
	}
	ev.Appeals = make([]Appeal, len(appeals))
	for i, a := range appeals {
		ev.Appeals[i] = a.appeal()
	}

	ev.Context, err = s.conversation(ctx, ev.Event.EventSummary, around)
	if err != nil {
		return Evidence{}, fmt.Errorf("read conversation of decision %d: %w", decisionID, err)
	}
	return ev, nil
}

// conversation reads the recorded messages around e: in its thread when it
// is a reply (the thread's replies, and its first message as Parent), else
// the channel's top-level messages. Only message.new events count, so an
// edit does not show a message twice.
func (s *Store) conversation(ctx context.Context, e EventSummary, around int) (Conversation, error) {
	conv := Conversation{Before: []ContextMessage{}, After: []ContextMessage{}}
	if e.MessageID == "" || e.ChannelCID == "" {
		return conv, nil
	}
	thread := e.ParentID != ""
	args := []any{e.ChannelCID, e.ReceivedAt, e.ID, around}
	if thread {
		conv.Scope = "thread"
		args = append(args, e.ParentID)
		rows, err := s.pool.Query(ctx, contextSelect+` WHERE e.channel_cid = $1 AND e.message_id = $2 AND e.type = 'message.new'
			ORDER BY e.received_at, e.id LIMIT 1`, e.ChannelCID, e.ParentID)
		if err != nil {
			return conv, err
		}
		parents, err := pgx.CollectRows(rows, pgx.RowToStructByName[ContextMessage])
		if err != nil {
			return conv, err
		}
		if len(parents) > 0 {
			conv.Parent = &parents[0]
		}
	} else {
		conv.Scope = "channel"
	}
	if around == 0 {
		return conv, nil
	}
	rows, err := s.pool.Query(ctx, conversationSQL(thread, true), args...)
	if err != nil {
		return conv, err
	}
	before, err := pgx.CollectRows(rows, pgx.RowToStructByName[ContextMessage])
	if err != nil {
		return conv, err
	}
	slices.Reverse(before)
	rows, err = s.pool.Query(ctx, conversationSQL(thread, false), args...)
	if err != nil {
		return conv, err
	}
	after, err := pgx.CollectRows(rows, pgx.RowToStructByName[ContextMessage])
	if err != nil {
		return conv, err
	}
	if before != nil {
		conv.Before = before
	}
	if after != nil {
		conv.After = after
	}
	return conv, nil
}

// conversationSQL selects up to $4 messages just before (or after) the
// event at ($2, $3) in channel $1: the thread of parent $5, or the
// channel's top-level messages.
func conversationSQL(thread, before bool) string {
	scope := `e.channel_cid = $1 AND e.type = 'message.new' AND e.payload #>> '{message,parent_id}' IS NULL`
	if thread {
		scope = `e.channel_cid = $1 AND e.type = 'message.new' AND e.payload #>> '{message,parent_id}' = $5`
	}
	if before {
		return contextSelect + ` WHERE ` + scope + ` AND (e.received_at, e.id) < ($2, $3)
			ORDER BY e.received_at DESC, e.id DESC LIMIT $4`
	}
	return contextSelect + ` WHERE ` + scope + ` AND (e.received_at, e.id) > ($2, $3)
		ORDER BY e.received_at, e.id LIMIT $4`
}
