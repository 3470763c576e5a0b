package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"moderator/policy"
)

// EventRecord is a verified delivery ready to be recorded.
type EventRecord struct {
	WebhookID  string // X-Webhook-Id; "" when absent
	BodySHA256 [32]byte
	Attempt    int
	APIKey     string
	Compressed bool
	Payload    []byte // the verified, decompressed body: valid JSON
	Event      *policy.Event
	Own        bool // caused by the service's bot user
	Ignored    bool // a type the service does not act on
	// ReceivedAt is when the delivery arrived; zero means now. A delivery
	// replayed from the local spool keeps the time it was received.
	ReceivedAt time.Time
	// Decision is the rules' verdict, nil when the event was not evaluated
	// (the service's own echoes, or no rule set loaded yet).
	Decision *policy.Decision
	// Judge, when set (and Decision is nil), decides the event inside the
	// recording transaction with the history its rules read.
	Judge *policy.Deferred
}

// Duplicate kinds, in RecordResult.Duplicate.
const (
	DuplicateWebhookID = "webhook_id" // a retry: the same X-Webhook-Id
	DuplicateBody      = "body"       // a replay: the same signed body under another id
)

// RecordResult says what was done with one EventRecord.
type RecordResult struct {
	EventID   int64  // the new row, or the row it duplicates
	Duplicate string // "" when the event is new, else DuplicateWebhookID or DuplicateBody
	// Decision is the decision recorded with a new event: the record's
	// own, or the one its Judge made in the transaction. nil for
	// duplicates and unevaluated events.
	Decision *policy.Decision
	// QuarantineID is set instead of EventID when Postgres refused the
	// record for its data and the Batcher kept it in the quarantine table;
	// QuarantineCause says why.
	QuarantineID    int64
	QuarantineCause string
}

// NewEvent is an event that RecordEvents has just inserted.
type NewEvent struct {
	EventID int64
	Record  *EventRecord
}

// TxHook runs inside the recording transaction, after the new events and
// their decisions are written and before the commit, so that work derived
// from them (such as enqueuing their actions as durable jobs) commits or
// rolls back with them. An error rolls the whole transaction back.
type TxHook func(ctx context.Context, tx pgx.Tx, events []NewEvent) error

// RecordEvent durably records one event unless it is a duplicate; see
// RecordEvents.
func (s *Store) RecordEvent(ctx context.Context, rec EventRecord) (RecordResult, error) {
	res, err := s.RecordEvents(ctx, []EventRecord{rec}, nil)
	if err != nil {
		return RecordResult{}, err
	}
	return res[0], nil
}

// RecordEvents durably records events in one transaction, skipping those
// that duplicate a recorded event (same webhook id, or same body) or an
// earlier record of the same call, and says for each what it did. It is
// safe under concurrency: the unique keys of event_keys (webhook id and body
// hash, kept for DedupHorizon) decide, so of N simultaneous deliveries of
// one event exactly one inserts.
// hook, when not nil, runs in the same transaction with the new events.
// A nil error means every new row is committed.
func (s *Store) RecordEvents(ctx context.Context, recs []EventRecord, hook TxHook) ([]RecordResult, error) {
	return s.RecordEventsWith(ctx, recs, Hooks{Tx: hook})
}

// RecordEventsWith is RecordEvents with both kinds of hook (see Hooks).
//
// Its round trips, two when no hook has work of its own: BEGIN, the
// events INSERT, the history read and what hooks.Early queued, pipelined;
// the decisions, whatever hooks.Queue queued and COMMIT, pipelined
// (Writes). A batch with nothing to write after its events
// (writesNothing) has COMMIT in the first pipeline, and that one round
// trip only: so has a batch judged ahead from the replica's copies of its
// marks (prejudge) whose decisions write nothing. When a hook runs in the
// transaction, its statements come between the decisions and the COMMIT,
// which goes with what its continuation queued last.
func (s *Store) RecordEventsWith(ctx context.Context, recs []EventRecord, hooks Hooks) ([]RecordResult, error) {
	results, _, err := s.recordEvents(ctx, recs, hooks)
	return results, err
}

// recordEvents is RecordEventsWith, and says which way the batch went.
func (s *Store) recordEvents(ctx context.Context, recs []EventRecord, hooks Hooks) ([]RecordResult, BatchPath, error) {
	recs = withSafeWebhookIDs(recs)
	var path BatchPath
	results, err := s.recordBatch(ctx, recs, hooks, true, &path)
	if isCopiesMoved(err) {
		// Judged ahead from copies that another writer had made stale, or
		// with a retry among the records: the transaction rolled back.
		s.marks.moved.Add(1)
		results, err = s.recordBatch(ctx, recs, hooks, false, &path)
	}
	return results, path, err
}

// recordBatch records recs in one transaction (see RecordEventsWith),
// judging them ahead when ahead allows and the copies do, and sets path
// to the way it went.
func (s *Store) recordBatch(ctx context.Context, recs []EventRecord, hooks Hooks, ahead bool, path *BatchPath) ([]RecordResult, error) {
	args, repaired := insertColumns(recs)

	// One statement for the whole batch; WITH ORDINALITY keeps the
	// caller's order so the first of several identical records wins. When
	// records are to be judged, it first takes their counter locks (an
	// InitPlan, run before the first row is written; see judgeLocks).
	lock := ""
	if locks := judgeLocks(recs); len(locks) > 0 {
		// unnest yields the keys in array order, so they are taken sorted.
		lock = "AND (SELECT count(pg_advisory_xact_lock($18, k)) FROM unnest($19::int[]) AS k) >= 0"
		args = append(args, lockClass, locks)
	}
	insertSQL := insertEventsSQL(lock)
	// With records to judge, their history read (or, judged ahead, its
	// check) follows in the same round trip (see judging).
	jd, err := prepareJudging(recs, s.marks, ahead)
	if err != nil {
		return nil, err
	}
	committed := false
	defer func() { jd.settle(committed) }()

	var early Writes
	if hooks.Early != nil {
		hooks.Early(&early, recs)
	}
	alone := (jd == nil || jd.ahead) && writesNothing(recs, repaired, hooks, jd != nil)
	*path = batchPath(jd, alone)

	conn, err := s.acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("record events: begin: %w", err)
	}
	defer conn.Release()
	tx, inserted, err := insertAndRead(ctx, conn.Conn(), insertSQL, args, jd, &early, alone)
	defer rollback(context.WithoutCancel(ctx), tx)
	if err != nil {
		if jd != nil && jd.ahead {
			jd.undo(recs)
			// The check aborted the transaction: nothing of it was kept.
			jd.rolledBack = isCopiesMoved(err)
		}
		return nil, err
	}
	if alone {
		// Committed with the insert: what is left is to say which records
		// were duplicates, from the committed rows.
		committed = true
		return s.sortOutCommitted(ctx, conn.Conn(), recs, inserted)
	}
	results, err := s.completeBatch(ctx, tx, recs, inserted, jd, repaired, hooks)
	if err != nil {
		return nil, err
	}
	committed = true
	return results, nil
}

// batchPath names the way a batch goes (see BatchPath): judged by jd
// (nil: nothing to judge), alone when it commits with its insert.
func batchPath(jd *judging, alone bool) BatchPath {
	switch {
	case alone:
		return PathInsert
	case jd == nil:
		return PathWrite
	case jd.ahead:
		return PathAhead
	default:
		return PathRead
	}
}

// rollback rolls tx back unless it is over: committed by the pipeline
// that ended it (see Writes.sendAndCommit), which pgx's transaction does
// not know of, or never begun.
func rollback(ctx context.Context, tx pgx.Tx) {
	if c := tx.Conn(); c == nil || c.PgConn().TxStatus() == 'I' {
		return
	}
	_ = tx.Rollback(ctx)
}

// insertEventsSQL is the events INSERT, lock the condition that takes the
// batch's counter locks first ("" for none). The transaction takes its id
// (pg_current_xact_id) before the events take theirs: the word indexer
// relies on it (wordsMark).
func insertEventsSQL(lock string) string {
	return `
		WITH r AS MATERIALIZED (
			SELECT nextval('event_ids') AS id, coalesce(ra, now()) AS at, *
			FROM (SELECT * FROM unnest($1::text[], $2::bytea[], $3::int[], $4::text[], $5::bool[], $6::int[], $7::text[],
				$8::timestamptz[], $9::text[], $10::text[], $11::text[], $12::text[], $13::bool[], $14::bool[], $15::text[], $16::text[],
				$17::timestamptz[])
				WITH ORDINALITY AS r(w, h, a, k, c, b, t, ca, u, ac, ch, m, o, ig, p, v, ra, ord)
			WHERE pg_current_xact_id() IS NOT NULL ` + lock + `
			ORDER BY ord) ordered),
		keys AS (
			INSERT INTO event_keys (body_sha256, webhook_id, event_id, received_at)
			SELECT h, w, id, at FROM r ORDER BY ord
			ON CONFLICT DO NOTHING
			RETURNING event_id)
		INSERT INTO events (id, webhook_id, body_sha256, attempt, api_key, compressed, body_bytes,
			type, created_at, user_id, actor_id, channel_cid, message_id, own, ignored, payload, rule_set_version, received_at)
		SELECT id, w, h, a, k, c, b, t, ca, u, ac, ch, m, o, ig, p::jsonb, v, at
		FROM r WHERE id IN (SELECT event_id FROM keys)
		RETURNING id, webhook_id, body_sha256`
}

// insertAndRead begins the recording transaction and, in the same round
// trip (a pipeline), runs the events INSERT, with records to judge (jd)
// the history read, then the early hooks' statements (early), and with
// commit (and no jd) the COMMIT too. It returns the transaction (closed
// when BEGIN did not run, or committed) and the inserted rows' ids.
func insertAndRead(ctx context.Context, conn *pgx.Conn, insertSQL string, args []any, jd *judging, early *Writes, commit bool) (
	pgx.Tx, map[insertedKey]int64, error) {
	pipeline := &pgx.Batch{}
	pipeline.BeginTx(pgx.TxOptions{})
	pipeline.Queue(genericPlans)
	pipeline.Queue(insertSQL, args...)
	if jd != nil {
		pipeline.Queue(jd.sql, jd.args...)
	}
	// Their answers go to their callbacks, and the COMMIT's to its own,
	// when the pipeline is closed below.
	pipeline.QueuedQueries = append(pipeline.QueuedQueries, early.b.QueuedQueries...)
	if commit {
		queueCommit(pipeline)
	}
	br := conn.SendBatch(ctx, pipeline)
	defer br.Close()
	tx := br.Tx()
	if _, err := br.Exec(); err != nil {
		return tx, nil, fmt.Errorf("record events: begin: %w", err)
	}
	if _, err := br.Exec(); err != nil {
		return tx, nil, fmt.Errorf("record events: plan mode: %w", err)
	}
	rows, err := br.Query()
	if err != nil {
		return tx, nil, fmt.Errorf("insert events: %w", err)
	}
	inserted, err := scanInserted(rows)
	if err != nil {
		return tx, nil, err
	}
	switch {
	case jd != nil && jd.ahead:
		if _, err := br.Exec(); err != nil {
			return tx, nil, fmt.Errorf("check the copies of counter marks: %w", err)
		}
	case jd != nil:
		hrows, err := br.Query()
		if err != nil {
			return tx, nil, fmt.Errorf("read history: %w", err)
		}
		if err := jd.scan(hrows); err != nil {
			return tx, nil, err
		}
	}
	if err := br.Close(); err != nil {
		return tx, nil, fmt.Errorf("insert events: %w", err)
	}
	return tx, inserted, nil
}

// giveDecisions puts each new record's decision in its result; a
// duplicate's stays nil (it was decided when first recorded).
func giveDecisions(recs []EventRecord, results []RecordResult) {
	for i := range recs {
		if results[i].Duplicate == "" {
			results[i].Decision = recs[i].Decision
		}
	}
}

// sortOutCommitted is sortOut for a batch committed with its insert (see
// writesNothing), with each new record's decision, which has nothing to
// write (no rule matched), as completeBatch gives it.
func (s *Store) sortOutCommitted(ctx context.Context, conn *pgx.Conn, recs []EventRecord, inserted map[insertedKey]int64) (
	[]RecordResult, error) {
	results, err := s.sortOut(ctx, conn, recs, inserted)
	if err != nil {
		return nil, err
	}
	giveDecisions(recs, results)
	return results, nil
}

// genericPlans makes the rest of the recording transaction run the
// generic plans of its prepared statements. Left to choose, Postgres plans
// the events INSERT and the history read afresh for every batch (their
// array parameters make each custom plan look cheaper than the generic
// one), and at a few hundred webhooks a second, with a record or two per
// batch, planning took more of the backends' CPU than running them (perf,
// 2026-12-05: 37 % of it, against 28 % in the executor). Their plans do
// not depend on the values: every lookup goes through a key
// (TestHistoryReadFindsEventsByIndex).
const genericPlans = `SET LOCAL plan_cache_mode = force_generic_plan`

// insertColumns returns the columns of the events INSERT as arrays, one
// element per record (the parameters $1 to $16), and which payloads
// repairJSON had to change.
func insertColumns(recs []EventRecord) (args []any, repaired []bool) {
	n := len(recs)
	repaired = make([]bool, n)
	var (
		webhookIDs   = make([]*string, n)
		sums         = make([][]byte, n)
		attempts     = make([]int32, n)
		apiKeys      = make([]string, n)
		compressed   = make([]bool, n)
		sizes        = make([]int32, n)
		types        = make([]string, n)
		createdAts   = make([]*time.Time, n)
		userIDs      = make([]*string, n)
		actorIDs     = make([]*string, n)
		channelCIDs  = make([]*string, n)
		messageIDs   = make([]*string, n)
		own, ignored = make([]bool, n), make([]bool, n)
		payloads     = make([]string, n)
		versions     = make([]*string, n)
		receivedAts  = make([]*time.Time, n)
	)
	for i := range recs {
		r, ev := &recs[i], recs[i].Event
		webhookIDs[i] = nullString(r.WebhookID)
		sums[i] = r.BodySHA256[:]
		attempts[i] = int32(r.Attempt)
		apiKeys[i] = r.APIKey
		compressed[i] = r.Compressed
		sizes[i] = int32(len(r.Payload))
		types[i] = ev.Type
		createdAts[i] = nullTime(ev.CreatedAt.Time)
		userIDs[i] = nullString(ev.SubjectUserID())
		actorIDs[i] = nullString(ev.ActorID())
		channelCIDs[i] = nullString(ev.ChannelCID())
		messageIDs[i] = nullString(ev.MessageIDOrEmpty())
		own[i], ignored[i] = r.Own, r.Ignored
		payloads[i], repaired[i] = repairJSON(r.Payload)
		receivedAts[i] = nullTime(r.ReceivedAt)
		switch {
		case r.Decision != nil:
			versions[i] = &r.Decision.RuleSetVersion
		case r.Judge != nil:
			versions[i] = &r.Judge.RuleSetVersion
		}
	}
	return []any{webhookIDs, sums, attempts, apiKeys, compressed, sizes, types, createdAts, userIDs, actorIDs,
		channelCIDs, messageIDs, own, ignored, payloads, versions, receivedAts}, repaired
}

// insertedKey identifies an inserted row among a batch's records.
type insertedKey struct {
	webhookID string
	sum       [32]byte
}

// scanInserted reads the ids the events INSERT returned, by webhook id and
// body hash.
func scanInserted(rows pgx.Rows) (map[insertedKey]int64, error) {
	defer rows.Close()
	inserted := map[insertedKey]int64{}
	for rows.Next() {
		var (
			id  int64
			wid *string
			sum []byte
		)
		if err := scanRow(rows, &id, &wid, &sum); err != nil {
			return nil, fmt.Errorf("insert events: scan: %w", err)
		}
		k := insertedKey{sum: [32]byte(sum)}
		if wid != nil {
			k.webhookID = *wid
		}
		inserted[k] = id
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("insert events: %w", err)
	}
	return inserted, nil
}

// completeBatch does the rest of RecordEvents's transaction once the
// events are inserted: it says of each record what became of it (new, or
// the duplicate of which row), judges the records that wait for their
// history (jd), writes the decisions and the raw bodies of repaired
// payloads with what hooks.Queue queues (one round trip), runs hooks.Tx
// with the new events, and commits: in the same round trip as the writes
// when no hook has work left.
func (s *Store) completeBatch(ctx context.Context, tx pgx.Tx, recs []EventRecord, inserted map[insertedKey]int64,
	jd *judging, repaired []bool, hooks Hooks) ([]RecordResult, error) {
	results, err := s.sortOut(ctx, tx, recs, inserted)
	if err != nil {
		return nil, err
	}
	if jd != nil && !jd.ahead {
		if err := jd.judge(recs, results); err != nil {
			return nil, err
		}
	}
	giveDecisions(recs, results)
	var w Writes
	if err := queueDecisions(&w, recs, results); err != nil {
		return nil, err
	}
	queueRawBodies(&w, recs, results, repaired)
	queueShadowStrikes(&w, recs, results)
	var fresh []NewEvent
	for i := range recs {
		if results[i].Duplicate == "" {
			fresh = append(fresh, NewEvent{EventID: results[i].EventID, Record: &recs[i]})
		}
	}
	var then Continuation
	if hooks.Queue != nil && len(fresh) > 0 {
		if then, err = hooks.Queue(ctx, &w, fresh); err != nil {
			return nil, fmt.Errorf("record events: hook: %w", err)
		}
	}
	if len(fresh) == 0 || then == nil && hooks.Tx == nil {
		jd.queueReload(&w)
		if err := w.sendAndCommit(ctx, tx, "write decisions and links, commit"); err != nil {
			return nil, err
		}
		return results, nil
	}
	if err := w.send(ctx, tx); err != nil {
		return nil, err
	}
	var last Writes
	if then != nil {
		if err := then(ctx, tx, &last, fresh); err != nil {
			return nil, fmt.Errorf("record events: hook: %w", err)
		}
	}
	if hooks.Tx != nil {
		if err := hooks.Tx(ctx, tx, fresh); err != nil {
			return nil, fmt.Errorf("record events: hook: %w", err)
		}
	}
	jd.queueReload(&last)
	if err := last.sendAndCommit(ctx, tx, "write the hooks' last statements, commit"); err != nil {
		return nil, err
	}
	return results, nil
}

// sortOut says of each record whether the insert kept it (its new row) or
// found it a duplicate (of which row, and why).
func (s *Store) sortOut(ctx context.Context, q querier, recs []EventRecord, inserted map[insertedKey]int64) ([]RecordResult, error) {
	results := make([]RecordResult, len(recs))
	var dupes []int
	for i, r := range recs {
		k := insertedKey{webhookID: r.WebhookID, sum: r.BodySHA256}
		if id, ok := inserted[k]; ok {
			results[i] = RecordResult{EventID: id}
			delete(inserted, k) // a second identical record is a duplicate
			continue
		}
		dupes = append(dupes, i)
	}
	if len(dupes) > 0 {
		if err := s.classifyDuplicates(ctx, q, recs, dupes, results); err != nil {
			return nil, err
		}
	}
	return results, nil
}

// withSafeWebhookIDs returns recs with each webhook id as it is stored
// (policy.SafeID: a 10 KB or non-UTF-8 X-Webhook-Id is shortened, keeping
// distinct ids distinct), copying recs only when one changes.
func withSafeWebhookIDs(recs []EventRecord) []EventRecord {
	var out []EventRecord
	for i := range recs {
		id := policy.SafeID(recs[i].WebhookID)
		if id == recs[i].WebhookID {
			continue
		}
		if out == nil {
			out = slices.Clone(recs)
		}
		out[i].WebhookID = id
	}
	if out == nil {
		return recs
	}
	return out
}

// queueRawBodies queues the keeping of the exact bytes of the new events
// whose payload repairJSON had to change, as evidence of what Stream
// signed.
func queueRawBodies(w *Writes, recs []EventRecord, results []RecordResult, repaired []bool) {
	var ids []int64
	var bodies [][]byte
	for i := range recs {
		if repaired[i] && results[i].Duplicate == "" {
			ids = append(ids, results[i].EventID)
			bodies = append(bodies, recs[i].Payload)
		}
	}
	if len(ids) == 0 {
		return
	}
	w.Queue(`INSERT INTO event_raw_bodies (event_id, body) SELECT * FROM unnest($1::bigint[], $2::bytea[])`, ids, bodies)
}

// classifyDuplicates fills in, for each duplicate, the event it repeats and
// whether it repeats its webhook id (a retry) or only its body (a replay).
func (s *Store) classifyDuplicates(ctx context.Context, q querier, recs []EventRecord, dupes []int, results []RecordResult) error {
	ids := make([]string, 0, len(dupes))
	sums := make([][]byte, 0, len(dupes))
	for _, i := range dupes {
		if recs[i].WebhookID != "" {
			ids = append(ids, recs[i].WebhookID)
		}
		sums = append(sums, recs[i].BodySHA256[:])
	}
	rows, err := q.Query(ctx, `SELECT event_id, coalesce(webhook_id, ''), body_sha256 FROM event_keys
		WHERE webhook_id = ANY($1) OR body_sha256 = ANY($2)`, ids, sums)
	if err != nil {
		return fmt.Errorf("find duplicate events: %w", err)
	}
	defer rows.Close()
	byID, bySum := map[string]int64{}, map[[32]byte]int64{}
	for rows.Next() {
		var (
			id  int64
			wid string
			sum []byte
		)
		if err := scanRow(rows, &id, &wid, &sum); err != nil {
			return fmt.Errorf("find duplicate events: %w", err)
		}
		if wid != "" {
			byID[wid] = id
		}
		bySum[[32]byte(sum)] = id
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("find duplicate events: %w", err)
	}
	for _, i := range dupes {
		if id, ok := byID[recs[i].WebhookID]; ok && recs[i].WebhookID != "" {
			results[i] = RecordResult{EventID: id, Duplicate: DuplicateWebhookID}
		} else {
			results[i] = RecordResult{EventID: bySum[recs[i].BodySHA256], Duplicate: DuplicateBody}
		}
	}
	return nil
}

// queueDecisions queues the writing of the decisions of the newly
// recorded events that matched a rule or had a rule fail; an empty verdict
// is already recorded by the event's rule_set_version.
func queueDecisions(w *Writes, recs []EventRecord, results []RecordResult) error {
	var (
		eventIDs                       []int64
		versions                       []string
		matched, enforced              [][]string
		userIDs, channelCIDs, messages []*string
		matches, actions, errs         []string
	)
	for i, r := range recs {
		d := r.Decision
		if results[i].Duplicate != "" || d == nil || (len(d.Matches) == 0 && len(d.Errors) == 0) {
			continue
		}
		ids, enf := make([]string, 0, len(d.Matches)), make([]string, 0, len(d.Matches))
		for _, m := range d.Matches {
			ids = append(ids, m.RuleID)
			if m.Mode == policy.ModeEnforce {
				enf = append(enf, m.RuleID)
			}
		}
		mj, err := marshalJSON(d.Matches)
		if err != nil {
			return fmt.Errorf("encode matches of event %d: %w: %w", results[i].EventID, errRefusedRecord, err)
		}
		aj, err := marshalJSON(d.Actions)
		if err != nil {
			return fmt.Errorf("encode actions of event %d: %w: %w", results[i].EventID, errRefusedRecord, err)
		}
		ej, err := marshalJSON(d.Errors)
		if err != nil {
			return fmt.Errorf("encode errors of event %d: %w: %w", results[i].EventID, errRefusedRecord, err)
		}
		eventIDs = append(eventIDs, results[i].EventID)
		versions = append(versions, d.RuleSetVersion)
		matched, enforced = append(matched, ids), append(enforced, enf)
		userIDs = append(userIDs, nullString(r.Event.SubjectUserID()))
		channelCIDs = append(channelCIDs, nullString(r.Event.ChannelCID()))
		messages = append(messages, nullString(r.Event.MessageIDOrEmpty()))
		matches, actions, errs = append(matches, mj), append(actions, aj), append(errs, ej)
	}
	if len(eventIDs) == 0 {
		return nil
	}
	// unnest flattens nested arrays, so the rule id lists travel as JSON.
	w.Queue(`
		INSERT INTO decisions (event_id, rule_set_version, matched_rules, enforced_rules,
			user_id, channel_cid, message_id, matches, actions, errors)
		SELECT e, v, ARRAY(SELECT jsonb_array_elements_text(mr::jsonb)), ARRAY(SELECT jsonb_array_elements_text(er::jsonb)),
			u, c, m, mj::jsonb, aj::jsonb, ej::jsonb
		FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
			$8::text[], $9::text[], $10::text[]) AS r(e, v, mr, er, u, c, m, mj, aj, ej)`,
		eventIDs, versions, jsonLists(matched), jsonLists(enforced), userIDs, channelCIDs, messages, matches, actions, errs)
	return nil
}

// marshalJSON encodes v for a jsonb column, with the same repairs as
// event payloads (evidence quotes message text).
func marshalJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	if string(b) == "null" {
		return "[]", nil
	}
	return jsonbSafe(b), nil
}

func jsonLists(lists [][]string) []string {
	out := make([]string, len(lists))
	for i, l := range lists {
		b, _ := json.Marshal(l) // []string always encodes
		out[i] = string(b)
	}
	return out
}

func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// jsonbSafe returns payload in a form Postgres's jsonb accepts; see
// repairJSON.
func jsonbSafe(payload []byte) string {
	s, _ := repairJSON(payload)
	return s
}

// repairJSON returns payload in a form Postgres's jsonb accepts, and
// whether it had to change it. JSON allows three things jsonb refuses: the
// escape \u0000, an escaped lone surrogate (\ud800 without its pair), and
// (through a lenient decoder) invalid UTF-8. Any of them would make a
// valid, signed event impossible to record, and Stream would retry it into
// oblivion, so the stored snapshot replaces them with U+FFFD. The body
// hash still identifies the exact bytes received, and RecordEvents keeps
// those bytes (event_raw_bodies) when they differ.
func repairJSON(payload []byte) (string, bool) {
	repaired := false
	if !utf8.Valid(payload) {
		payload, repaired = bytes.ToValidUTF8(payload, []byte("\uFFFD")), true
	}
	if !bytes.Contains(payload, []byte(`\u`)) {
		return string(payload), repaired
	}
	var b bytes.Buffer
	b.Grow(len(payload))
	for i := 0; i < len(payload); i++ {
		if payload[i] != '\\' || i+1 >= len(payload) {
			b.WriteByte(payload[i])
			continue
		}
		if r, ok := escapedRune(payload[i:]); ok {
			switch {
			case r == 0, utf16.IsSurrogate(r) && r >= 0xDC00:
				// NUL, or a low surrogate with no high one before it.
			case utf16.IsSurrogate(r):
				if low, ok := escapedRune(payload[i+6:]); ok && low >= 0xDC00 && low <= 0xDFFF {
					b.Write(payload[i : i+12]) // a proper pair
					i += 11
					continue
				}
			default:
				b.Write(payload[i : i+6])
				i += 5
				continue
			}
			b.WriteString(`\ufffd`)
			repaired = true
			i += 5
			continue
		}
		// Any other escape: copy it whole, so an escaped backslash
		// followed by "u0000" stays literal text.
		b.WriteByte(payload[i])
		b.WriteByte(payload[i+1])
		i++
	}
	return b.String(), repaired
}

// escapedRune reads a \uXXXX escape at the start of p.
func escapedRune(p []byte) (rune, bool) {
	if len(p) < 6 || p[0] != '\\' || p[1] != 'u' {
		return 0, false
	}
	var r rune
	for _, c := range p[2:6] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}
