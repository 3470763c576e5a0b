package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"
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
// safe under concurrency: the unique indexes on webhook_id and body_sha256
// decide, so of N simultaneous deliveries of one event exactly one inserts.
// hook, when not nil, runs in the same transaction with the new events.
// A nil error means every new row is committed.
func (s *Store) RecordEvents(ctx context.Context, recs []EventRecord, hook TxHook) ([]RecordResult, error) {
	n := len(recs)
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
		payloads[i] = jsonbSafe(r.Payload)
		switch {
		case r.Decision != nil:
			versions[i] = &r.Decision.RuleSetVersion
		case r.Judge != nil:
			versions[i] = &r.Judge.RuleSetVersion
		}
	}

	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("record events: begin: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))

	// One statement for the whole batch; WITH ORDINALITY keeps the
	// caller's order so the first of several identical records wins. When
	// records are to be judged, it first takes their counter locks (an
	// InitPlan, run before the first row is written; see judgeLocks).
	args := []any{webhookIDs, sums, attempts, apiKeys, compressed, sizes, types, createdAts, userIDs, actorIDs,
		channelCIDs, messageIDs, own, ignored, payloads, versions}
	lock := ""
	if locks := judgeLocks(recs); len(locks) > 0 {
		// unnest yields the keys in array order, so they are taken sorted.
		lock = "WHERE (SELECT count(pg_advisory_xact_lock($17, k)) FROM unnest($18::int[]) AS k) >= 0"
		args = append(args, lockClass, locks)
	}
	insertSQL := `
		INSERT INTO events (webhook_id, body_sha256, attempt, api_key, compressed, body_bytes,
			type, created_at, user_id, actor_id, channel_cid, message_id, own, ignored, payload, rule_set_version)
		SELECT w, h, a, k, c, b, t, ca, u, ac, ch, m, o, ig, p::jsonb, v
		FROM unnest($1::text[], $2::bytea[], $3::int[], $4::text[], $5::bool[], $6::int[], $7::text[],
			$8::timestamptz[], $9::text[], $10::text[], $11::text[], $12::text[], $13::bool[], $14::bool[], $15::text[], $16::text[])
			WITH ORDINALITY AS r(w, h, a, k, c, b, t, ca, u, ac, ch, m, o, ig, p, v, ord)
		` + lock + `
		ORDER BY ord
		ON CONFLICT DO NOTHING
		RETURNING id, webhook_id, body_sha256`
	// With records to judge, their history read follows in the same round
	// trip (see judging).
	jd, err := prepareJudging(recs)
	if err != nil {
		return nil, err
	}
	var (
		rows pgx.Rows
		br   pgx.BatchResults
	)
	if jd == nil {
		rows, err = tx.Query(ctx, insertSQL, args...)
	} else {
		pipeline := &pgx.Batch{}
		pipeline.Queue(insertSQL, args...)
		pipeline.Queue(jd.sql, jd.args...)
		br = tx.SendBatch(ctx, pipeline)
		defer br.Close()
		rows, err = br.Query()
	}
	if err != nil {
		return nil, fmt.Errorf("insert events: %w", err)
	}
	type key struct {
		webhookID string
		sum       [32]byte
	}
	inserted := map[key]int64{}
	for rows.Next() {
		var (
			id  int64
			wid *string
			sum []byte
		)
		if err := rows.Scan(&id, &wid, &sum); err != nil {
			rows.Close()
			return nil, fmt.Errorf("insert events: scan: %w", err)
		}
		k := key{sum: [32]byte(sum)}
		if wid != nil {
			k.webhookID = *wid
		}
		inserted[k] = id
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("insert events: %w", err)
	}
	if br != nil {
		hrows, err := br.Query()
		if err != nil {
			return nil, fmt.Errorf("read history: %w", err)
		}
		if err := jd.scan(hrows); err != nil {
			return nil, err
		}
		if err := br.Close(); err != nil {
			return nil, fmt.Errorf("read history: %w", err)
		}
	}

	results := make([]RecordResult, n)
	var dupes []int
	for i, r := range recs {
		k := key{webhookID: r.WebhookID, sum: r.BodySHA256}
		if id, ok := inserted[k]; ok {
			results[i] = RecordResult{EventID: id}
			delete(inserted, k) // a second identical record is a duplicate
			continue
		}
		dupes = append(dupes, i)
	}
	if len(dupes) > 0 {
		if err := s.classifyDuplicates(ctx, tx, recs, dupes, results); err != nil {
			return nil, err
		}
	}
	if jd != nil {
		if err := jd.judge(recs, results); err != nil {
			return nil, err
		}
	}
	for i := range recs {
		if results[i].Duplicate == "" {
			results[i].Decision = recs[i].Decision
		}
	}
	if err := insertDecisions(ctx, tx, recs, results); err != nil {
		return nil, err
	}
	if hook != nil {
		var fresh []NewEvent
		for i := range recs {
			if results[i].Duplicate == "" {
				fresh = append(fresh, NewEvent{EventID: results[i].EventID, Record: &recs[i]})
			}
		}
		if len(fresh) > 0 {
			if err := hook(ctx, tx, fresh); err != nil {
				return nil, fmt.Errorf("record events: hook: %w", err)
			}
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("record events: commit: %w", err)
	}
	return results, nil
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
	rows, err := q.Query(ctx, `SELECT id, coalesce(webhook_id, ''), body_sha256 FROM events
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
		if err := rows.Scan(&id, &wid, &sum); err != nil {
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

// insertDecisions writes the decisions of the newly recorded events that
// matched a rule or had a rule fail; an empty verdict is already recorded
// by the event's rule_set_version.
func insertDecisions(ctx context.Context, q querier, recs []EventRecord, results []RecordResult) error {
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
	_, err := q.Exec(ctx, `
		INSERT INTO decisions (event_id, rule_set_version, matched_rules, enforced_rules,
			user_id, channel_cid, message_id, matches, actions, errors)
		SELECT e, v, ARRAY(SELECT jsonb_array_elements_text(mr::jsonb)), ARRAY(SELECT jsonb_array_elements_text(er::jsonb)),
			u, c, m, mj::jsonb, aj::jsonb, ej::jsonb
		FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
			$8::text[], $9::text[], $10::text[]) AS r(e, v, mr, er, u, c, m, mj, aj, ej)`,
		eventIDs, versions, jsonLists(matched), jsonLists(enforced), userIDs, channelCIDs, messages, matches, actions, errs)
	if err != nil {
		return fmt.Errorf("insert decisions: %w", err)
	}
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

// jsonbSafe returns payload in a form Postgres's jsonb accepts. JSON allows
// two things jsonb refuses: the escape \u0000 and (through Go's lenient
// decoder) invalid UTF-8. Both would make a valid, signed event impossible
// to record, and Stream would retry it into oblivion, so the stored
// snapshot replaces them with U+FFFD. The body hash still identifies the
// exact bytes received.
func jsonbSafe(payload []byte) string {
	if !utf8.Valid(payload) {
		payload = bytes.ToValidUTF8(payload, []byte("\uFFFD"))
	}
	if !bytes.Contains(payload, []byte(`\u0000`)) {
		return string(payload)
	}
	var b bytes.Buffer
	b.Grow(len(payload))
	for i := 0; i < len(payload); i++ {
		if payload[i] == '\\' && i+1 < len(payload) {
			if bytes.HasPrefix(payload[i+1:], []byte("u0000")) {
				b.WriteString(`\ufffd`)
				i += 5
				continue
			}
			// Any other escape: copy it whole, so an escaped backslash
			// followed by "u0000" stays literal text.
			b.WriteByte(payload[i])
			b.WriteByte(payload[i+1])
			i++
			continue
		}
		b.WriteByte(payload[i])
	}
	return b.String()
}
