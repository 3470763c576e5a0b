package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// ActionRow is one action a decision requested, as the actions table keeps
// it.
type ActionRow struct {
	EventID      int64
	Position     int
	RuleID       string
	Type         string
	TargetUserID string
	MessageID    string
	ChannelCID   string
	Params       []byte // JSON: the action as decided
	Key          string // idempotency key, unique
	// StreamMessageID is the id of the message a warning posts: random,
	// fixed before its first call; "" for other actions.
	StreamMessageID string
	// ReversesActionID and OverturnID are set on a reversal (unban,
	// unmute …): the action it undoes and the overturn that asked for it.
	ReversesActionID int64
	OverturnID       int64
}

// InsertActions writes rows inside tx (the recording transaction) and
// returns their ids in order. An action whose idempotency key is already
// recorded gets id 0 and must not be enqueued again.
func InsertActions(ctx context.Context, tx pgx.Tx, rows []ActionRow) ([]int64, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	q, err := tx.Query(ctx, insertActionsSQL, actionColumns(rows)...)
	if err != nil {
		return nil, fmt.Errorf("insert actions: %w", err)
	}
	return actionIDs(q, rows)
}

// QueueInsertActions queues on w the writing of rows, as InsertActions
// writes them, and calls done with their ids once w is sent: with the
// batch's decisions, so that recording the actions costs no round trip of
// its own.
func QueueInsertActions(w *Writes, rows []ActionRow, done func(ids []int64)) {
	if len(rows) == 0 {
		done(nil)
		return
	}
	w.Queue(insertActionsSQL, actionColumns(rows)...).Query(func(q pgx.Rows) error {
		ids, err := actionIDs(q, rows)
		if err != nil {
			return err
		}
		done(ids)
		return nil
	})
}

// insertActionsSQL writes actions, one a row of actionColumns, and
// returns the id and key of each it wrote.
const insertActionsSQL = `
	INSERT INTO actions (event_id, position, rule_id, type, target_user_id, message_id, channel_cid, params, idempotency_key,
		reverses_action_id, overturn_id, stream_message_id)
	SELECT e, p, r, t, u, m, c, pa::jsonb, k, rv, ov, sm
	FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
		$10::bigint[], $11::bigint[], $12::text[])
		WITH ORDINALITY AS x(e, p, r, t, u, m, c, pa, k, rv, ov, sm, ord)
	ORDER BY ord
	ON CONFLICT (idempotency_key) DO NOTHING
	RETURNING id, idempotency_key`

func actionColumns(rows []ActionRow) []any {
	var (
		events                 = make([]int64, len(rows))
		positions              = make([]int32, len(rows))
		rules, types, keys     = make([]string, len(rows)), make([]string, len(rows)), make([]string, len(rows))
		users, messages, chans = make([]*string, len(rows)), make([]*string, len(rows)), make([]*string, len(rows))
		params                 = make([]string, len(rows))
		reverses, overturns    = make([]*int64, len(rows)), make([]*int64, len(rows))
		streamIDs              = make([]*string, len(rows))
	)
	for i, r := range rows {
		events[i], positions[i] = r.EventID, int32(r.Position)
		rules[i], types[i], keys[i] = r.RuleID, r.Type, r.Key
		users[i], messages[i], chans[i] = nullString(r.TargetUserID), nullString(r.MessageID), nullString(r.ChannelCID)
		params[i] = jsonbSafe(r.Params)
		reverses[i], overturns[i] = nullID(r.ReversesActionID), nullID(r.OverturnID)
		streamIDs[i] = nullString(r.StreamMessageID)
	}
	return []any{events, positions, rules, types, users, messages, chans, params, keys, reverses, overturns, streamIDs}
}

// actionIDs reads the answer of insertActionsSQL: the ids of rows in
// order, 0 for one whose key was recorded before. It closes q.
func actionIDs(q pgx.Rows, rows []ActionRow) ([]int64, error) {
	defer q.Close()
	byKey := make(map[string]int64, len(rows))
	for q.Next() {
		var (
			id  int64
			key string
		)
		if err := scanRow(q, &id, &key); err != nil {
			return nil, fmt.Errorf("insert actions: scan: %w", err)
		}
		byKey[key] = id
	}
	if err := q.Err(); err != nil {
		return nil, fmt.Errorf("insert actions: %w", err)
	}
	ids := make([]int64, len(rows))
	for i, r := range rows {
		ids[i] = byKey[r.Key]
	}
	return ids, nil
}

// DailyWant is how many more actions of one type a batch wants counted
// against the type's daily cap (Limit).
type DailyWant struct {
	Type        string
	Want, Limit int
}

// TakeDailySlots counts, for each of wants (types in any order, each once),
// up to Want more actions of its type on day (UTC) without passing Limit,
// and returns how many it counted, in the order of wants: the first that
// many of the caller's actions of the type may go, the rest are over the
// cap. Run inside the recording transaction, it is exact across replicas:
// each counter row stays locked until the commit, and a rollback returns
// the slots.
//
// Its statements go in one round trip (a pipeline) whatever the number of
// types, where they took three each: the counter rows, which every batch
// with actions of a capped type on every replica needs, stay locked for
// the rest of the transaction, so the round trips before its commit are
// what the other batches wait for. For each type, in a fixed order (so
// that concurrent batches lock the rows alike and cannot deadlock): the
// day's row is made if missing, locked and read (the count before), then
// raised by what fits under the cap (the count after); the difference is
// what was granted.
func TakeDailySlots(ctx context.Context, tx pgx.Tx, day time.Time, wants []DailyWant) ([]int, error) {
	d := day.UTC().Format(time.DateOnly)
	order := make([]int, 0, len(wants))
	for i, w := range wants {
		if w.Want > 0 {
			order = append(order, i)
		}
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(wants[a].Type, wants[b].Type) })
	granted := make([]int, len(wants))
	if len(order) == 0 {
		return granted, nil
	}
	before, after := make([]int, len(wants)), make([]int, len(wants))
	batch := &pgx.Batch{}
	for _, i := range order {
		w := wants[i]
		batch.Queue(`INSERT INTO action_daily_counts (day, type, n) VALUES ($1::date, $2, 0) ON CONFLICT (day, type) DO NOTHING`,
			d, w.Type)
		batch.Queue(`SELECT n FROM action_daily_counts WHERE day = $1::date AND type = $2 FOR UPDATE`, d, w.Type).
			QueryRow(func(row pgx.Row) error { return row.Scan(&before[i]) })
		batch.Queue(`UPDATE action_daily_counts SET n = greatest(n, least(n + $3, $4)) WHERE day = $1::date AND type = $2 RETURNING n`,
			d, w.Type, w.Want, max(w.Limit, 0)).
			QueryRow(func(row pgx.Row) error { return row.Scan(&after[i]) })
	}
	if err := tx.SendBatch(ctx, batch).Close(); err != nil {
		return nil, fmt.Errorf("count daily actions (%d types): %w", len(order), err)
	}
	for _, i := range order {
		granted[i] = after[i] - before[i]
	}
	return granted, nil
}

// Outcome kinds, in OutcomeRow.Outcome (the CHECK constraint of
// action_outcomes lists the same).
const (
	OutcomeApplied    = "applied"
	OutcomeFailed     = "failed"
	OutcomeHeld       = "held"
	OutcomeDryRun     = "dry_run"
	OutcomeSuperseded = "superseded"
)

// OutcomeRow is how an action ended.
type OutcomeRow struct {
	ActionID int64
	Outcome  string
	Reason   string
	Request  []byte // JSON, for dry runs; nil otherwise
}

// RecordOutcomesTx records outcomes inside tx (for actions that end as they
// are planned: superseded, held, dry run), in one statement: a batch of
// dry-run decisions ends dozens of actions at once.
func RecordOutcomesTx(ctx context.Context, tx pgx.Tx, rows []OutcomeRow) error {
	if len(rows) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, recordOutcomesSQL, outcomeColumns(rows)...); err != nil {
		return fmt.Errorf("record outcomes of %d actions (first %d): %w", len(rows), rows[0].ActionID, err)
	}
	return nil
}

// QueueOutcomes queues on w the recording of outcomes, as RecordOutcomesTx
// records them: with the recording transaction's COMMIT when w is a
// Continuation's last writes, so that a batch of dry-run (or superseded,
// held, suppressed) actions ends them without a round trip of its own.
func QueueOutcomes(w *Writes, rows []OutcomeRow) {
	if len(rows) > 0 {
		w.Queue(recordOutcomesSQL, outcomeColumns(rows)...)
	}
}

// recordOutcomesSQL records outcomes, one a row of outcomeColumns; an
// action that has one already keeps it.
const recordOutcomesSQL = `INSERT INTO action_outcomes (action_id, outcome, reason, request)
	SELECT a, o, r, q::jsonb FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) AS x(a, o, r, q)
	ON CONFLICT (action_id) DO NOTHING`

func outcomeColumns(rows []OutcomeRow) []any {
	ids := make([]int64, len(rows))
	outcomes, reasons := make([]string, len(rows)), make([]string, len(rows))
	requests := make([]*string, len(rows))
	for i, r := range rows {
		ids[i], outcomes[i], reasons[i] = r.ActionID, r.Outcome, r.Reason
		if r.Request != nil {
			s := jsonbSafe(r.Request)
			requests[i] = &s
		}
	}
	return []any{ids, outcomes, reasons, requests}
}

// RecordOutcome records how an action ended and reports whether this call
// recorded it: false means an outcome already existed (a job that ran
// twice), and the earlier one stands.
func (s *Store) RecordOutcome(ctx context.Context, r OutcomeRow) (bool, error) {
	return recordOutcome(ctx, s.pool, r)
}

func recordOutcome(ctx context.Context, q querier, r OutcomeRow) (bool, error) {
	var req *string
	if r.Request != nil {
		s := jsonbSafe(r.Request)
		req = &s
	}
	tag, err := q.Exec(ctx, `INSERT INTO action_outcomes (action_id, outcome, reason, request)
		VALUES ($1, $2, $3, $4::jsonb) ON CONFLICT (action_id) DO NOTHING`, r.ActionID, r.Outcome, r.Reason, req)
	if err != nil {
		return false, fmt.Errorf("record outcome of action %d: %w", r.ActionID, err)
	}
	return tag.RowsAffected() == 1, nil
}

// ActionOutcome returns the recorded outcome of an action, "" when it has
// none yet.
func (s *Store) ActionOutcome(ctx context.Context, actionID int64) (string, error) {
	var outcome string
	err := s.pool.QueryRow(ctx, `SELECT outcome FROM action_outcomes WHERE action_id = $1`, actionID).Scan(&outcome)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read outcome of action %d: %w", actionID, err)
	}
	return outcome, nil
}

// AttemptRow is one call made to Stream for an action.
type AttemptRow struct {
	ActionID int64
	// Attempt is the number StartCall gave the call; 0 numbers it after
	// the action's earlier attempts (a call recorded without an intent).
	Attempt    int
	Endpoint   string // "POST /moderation/ban"
	HTTPStatus int    // 0: no answer
	StreamCode int    // 0: none
	Duration   time.Duration
	Error      string
	// StartedAt and At are when the call began and when its answer came;
	// zero: unknown, and now() for At. A late record keeps the real times.
	StartedAt, At time.Time
}

// RecordAttempt appends an attempt, numbering it after the action's earlier
// ones, and returns its number.
func (s *Store) RecordAttempt(ctx context.Context, a AttemptRow) (int, error) {
	return recordAttempt(ctx, s.pool, a)
}

// StartCall records, before a call to Stream is made, that it is about to
// be, and returns the attempt number its answer will be recorded under:
// one after the action's earlier calls and attempts. It commits on its
// own, so that a crash or a database failure after the call leaves the
// call visible (see UnansweredCalls).
func (s *Store) StartCall(ctx context.Context, actionID int64, endpoint string) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `
		INSERT INTO action_calls (action_id, attempt, endpoint)
		SELECT $1, greatest(
			(SELECT coalesce(max(attempt), 0) FROM action_calls WHERE action_id = $1),
			(SELECT coalesce(max(attempt), 0) FROM action_attempts WHERE action_id = $1)) + 1, $2
		RETURNING attempt`, actionID, endpoint).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("record the call of action %d: %w", actionID, err)
	}
	return n, nil
}

// CallRow is a call to Stream whose answer was never recorded.
type CallRow struct {
	Attempt   int
	Endpoint  string
	StartedAt time.Time
}

// UnansweredCalls returns the action's calls that have no attempt row: made
// (or about to be) by a run that then stopped, or whose record of the
// answer failed. Their effect at Stream is unknown.
func (s *Store) UnansweredCalls(ctx context.Context, actionID int64) ([]CallRow, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT c.attempt, c.endpoint, c.started_at FROM action_calls c
		WHERE c.action_id = $1
			AND NOT EXISTS (SELECT 1 FROM action_attempts t WHERE t.action_id = c.action_id AND t.attempt = c.attempt)
		ORDER BY c.attempt`, actionID)
	if err != nil {
		return nil, fmt.Errorf("read the unanswered calls of action %d: %w", actionID, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByName[CallRow])
	if err != nil {
		return nil, fmt.Errorf("read the unanswered calls of action %d: %w", actionID, err)
	}
	return out, nil
}

// SucceededAttempt returns the number of the action's latest attempt that
// Stream answered with success (2xx), 0 when none did.
func (s *Store) SucceededAttempt(ctx context.Context, actionID int64) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT coalesce(max(attempt), 0) FROM action_attempts
		WHERE action_id = $1 AND http_status BETWEEN 200 AND 299`, actionID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("read the successful attempts of action %d: %w", actionID, err)
	}
	return n, nil
}

// RecordAttemptTx is RecordAttempt inside tx. Until tx ends it holds the
// action's row in share mode (the foreign key's lock), so an overturn,
// which locks the row for update before reading the attempts, either sees
// this attempt or commits before it.
func RecordAttemptTx(ctx context.Context, tx pgx.Tx, a AttemptRow) (int, error) {
	return recordAttempt(ctx, tx, a)
}

func recordAttempt(ctx context.Context, q querier, a AttemptRow) (int, error) {
	var status, code *int
	if a.HTTPStatus != 0 {
		status = &a.HTTPStatus
	}
	if a.StreamCode != 0 {
		code = &a.StreamCode
	}
	var errText *string
	if a.Error != "" {
		errText = &a.Error
	}
	started, at := nullTime(a.StartedAt), nullTime(a.At)
	ms := float64(a.Duration) / float64(time.Millisecond)
	if a.Attempt > 0 {
		// The answer to a call StartCall numbered: recorded once, however
		// often a late record is retried (its first try may have committed
		// without our hearing of it).
		_, err := q.Exec(ctx, `
			INSERT INTO action_attempts (action_id, attempt, endpoint, http_status, stream_code, duration_ms, error, started_at, at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, coalesce($9, now()))
			ON CONFLICT (action_id, attempt) DO NOTHING`,
			a.ActionID, a.Attempt, a.Endpoint, status, code, ms, errText, started, at)
		if err != nil {
			return 0, fmt.Errorf("record attempt %d of action %d: %w", a.Attempt, a.ActionID, err)
		}
		return a.Attempt, nil
	}
	var n int
	err := q.QueryRow(ctx, `
		INSERT INTO action_attempts (action_id, attempt, endpoint, http_status, stream_code, duration_ms, error, started_at, at)
		SELECT $1, coalesce(max(attempt), 0) + 1, $2, $3, $4, $5, $6, $7, coalesce($8, now()) FROM action_attempts WHERE action_id = $1
		RETURNING attempt`,
		a.ActionID, a.Endpoint, status, code, ms, errText, started, at).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("record attempt of action %d: %w", a.ActionID, err)
	}
	return n, nil
}

// RestrictionRow is a ban or mute of a user whose call to Stream's ban
// endpoint succeeded or may have taken effect.
type RestrictionRow struct {
	ActionID       int64
	Type           string // ban or mute
	ChannelCID     string // the channel of a channel-only one; "" app-wide
	Since          time.Time
	TimeoutMinutes int    // 0: until lifted
	Outcome        string // "" while pending
	Lifted         bool   // an overturn reversed or cancelled it
}

// Restrictions returns the bans and mutes of userID that this service's
// calls may have put in force at Stream (a call to POST /moderation/ban
// that succeeded, got no answer, timed out, met a server error, or is
// recorded as made with no answer yet), with
// the time of the last such call. Mutes from before they were bans
// (personal mutes, POST /moderation/mute) are not restrictions. The actions
// runner reads them when a mute or an unmute runs, to keep a stronger ban.
func (s *Store) Restrictions(ctx context.Context, userID string) ([]RestrictionRow, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT a.id AS action_id, a.type,
			CASE WHEN coalesce((a.params->>'channel_only')::boolean, false) THEN coalesce(a.channel_cid, '') ELSE '' END AS channel_cid,
			t.since, coalesce((a.params->>'timeout_minutes')::int, 0) AS timeout_minutes, coalesce(o.outcome, '') AS outcome,
			EXISTS (SELECT 1 FROM action_reversals r WHERE r.action_id = a.id AND r.disposition <> 'nothing_to_undo') AS lifted
		FROM actions a
		JOIN LATERAL (SELECT max(s.at) AS since FROM (
			SELECT t.at FROM action_attempts t WHERE t.action_id = a.id
				AND t.endpoint = 'POST /moderation/ban'
				AND (t.http_status IS NULL OR t.http_status < 300 OR t.http_status = 408 OR t.http_status >= 500)
			UNION ALL
			-- a call made and not yet answered (or whose answer was lost)
			SELECT c.started_at FROM action_calls c WHERE c.action_id = a.id
				AND c.endpoint = 'POST /moderation/ban'
				AND NOT EXISTS (SELECT 1 FROM action_attempts t WHERE t.action_id = c.action_id AND t.attempt = c.attempt)
			) s) t ON t.since IS NOT NULL
		LEFT JOIN action_outcomes o ON o.action_id = a.id
		WHERE a.target_user_id = $1 AND a.type IN ('ban', 'mute') AND a.reverses_action_id IS NULL
		ORDER BY t.since, a.id`, userID)
	if err != nil {
		return nil, fmt.Errorf("read the restrictions of user %s: %w", userID, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByName[RestrictionRow])
	if err != nil {
		return nil, fmt.Errorf("read the restrictions of user %s: %w", userID, err)
	}
	return out, nil
}
