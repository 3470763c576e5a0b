package store

import (
	"bytes"
	"context"
	"errors"
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
}

// Duplicate kinds, in RecordResult.Duplicate.
const (
	DuplicateWebhookID = "webhook_id" // a retry: the same X-Webhook-Id
	DuplicateBody      = "body"       // a replay: the same signed body under another id
)

// RecordResult says what RecordEvent did.
type RecordResult struct {
	EventID   int64  // the new row, or the row it duplicates (0 if that could not be read)
	Duplicate string // "" when the event is new, else DuplicateWebhookID or DuplicateBody
}

// RecordEvent durably records an event unless it is a duplicate, in which
// case it writes nothing and says which earlier event it repeats. It is
// safe under concurrency: the unique indexes on webhook_id and body_sha256
// decide, so of N simultaneous deliveries of one event exactly one inserts.
// A nil error means the row is committed.
func (s *Store) RecordEvent(ctx context.Context, rec EventRecord) (RecordResult, error) {
	ev := rec.Event
	var webhookID *string
	if rec.WebhookID != "" {
		webhookID = &rec.WebhookID
	}
	var id int64
	err := s.pool.QueryRow(ctx, `
		INSERT INTO events (webhook_id, body_sha256, attempt, api_key, compressed, body_bytes,
			type, created_at, user_id, actor_id, channel_cid, message_id, own, ignored, payload)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
		ON CONFLICT DO NOTHING
		RETURNING id`,
		webhookID, rec.BodySHA256[:], rec.Attempt, rec.APIKey, rec.Compressed, len(rec.Payload),
		ev.Type, nullTime(ev.CreatedAt.Time), nullString(ev.SubjectUserID()), nullString(ev.ActorID()),
		nullString(ev.ChannelCID()), nullString(ev.MessageIDOrEmpty()), rec.Own, rec.Ignored,
		jsonbSafe(rec.Payload),
	).Scan(&id)
	if err == nil {
		return RecordResult{EventID: id}, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return RecordResult{}, fmt.Errorf("insert event: %w", err)
	}
	return s.findDuplicate(ctx, webhookID, rec.BodySHA256)
}

// findDuplicate names the earlier event that a conflicting insert repeats.
// The answer only feeds logs and metrics, so a row that vanished between
// the two statements (it cannot: rows are never deleted) is not an error.
func (s *Store) findDuplicate(ctx context.Context, webhookID *string, sum [32]byte) (RecordResult, error) {
	var (
		id     int64
		sameID bool
	)
	err := s.pool.QueryRow(ctx, `
		SELECT id, webhook_id IS NOT DISTINCT FROM $1 AND $1 IS NOT NULL
		FROM events WHERE webhook_id = $1 OR body_sha256 = $2
		ORDER BY (webhook_id = $1) DESC NULLS LAST LIMIT 1`, webhookID, sum[:]).Scan(&id, &sameID)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return RecordResult{Duplicate: DuplicateBody}, nil
	case err != nil:
		return RecordResult{}, fmt.Errorf("find duplicate event: %w", err)
	case sameID:
		return RecordResult{EventID: id, Duplicate: DuplicateWebhookID}, nil
	default:
		return RecordResult{EventID: id, Duplicate: DuplicateBody}, nil
	}
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
