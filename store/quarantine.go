package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"moderator/policy"
)

// kindQuarantine is the quarantine list's cursor kind.
const kindQuarantine = "quarantine"

// Quarantined is a delivery Postgres refused for its data, as the
// quarantine list shows it.
type Quarantined struct {
	ID            int64             `json:"id" db:"id"`
	QuarantinedAt time.Time         `json:"quarantined_at" db:"quarantined_at"`
	WebhookID     string            `json:"webhook_id,omitempty" db:"webhook_id"`
	Attempt       int               `json:"attempt" db:"attempt"`
	APIKey        string            `json:"api_key" db:"api_key"`
	Compressed    bool              `json:"compressed" db:"compressed"`
	BodySHA256    string            `json:"body_sha256" db:"body_sha256"` // hex
	Body          []byte            `json:"body" db:"body"`               // exact bytes (base64 in JSON)
	BodyBytes     int               `json:"body_bytes" db:"body_bytes"`
	EventType     string            `json:"event_type,omitempty" db:"event_type"`
	Headers       map[string]string `json:"headers" db:"headers"`
	Error         string            `json:"error" db:"error"`
	SQLState      string            `json:"sqlstate,omitempty" db:"sqlstate"`
}

// quarantine records rec, which Postgres refused with cause, in the
// quarantine table, in a transaction of its own, and returns the result
// to answer its delivery with. A retry of the same body finds the row
// already there. The error is set only when the quarantine itself could
// not be written (cause joined to it).
func (s *Store) quarantine(ctx context.Context, rec EventRecord, cause error) (RecordResult, error) {
	headers, err := json.Marshal(map[string]string{
		"X-Webhook-Id":      rec.WebhookID,
		"X-Webhook-Attempt": strconv.Itoa(rec.Attempt),
		"X-Api-Key":         rec.APIKey,
		"gzip":              strconv.FormatBool(rec.Compressed),
	})
	if err != nil {
		return RecordResult{}, fmt.Errorf("quarantine: encode headers: %w", err)
	}
	var state *string
	var pgErr *pgconn.PgError
	if errors.As(cause, &pgErr) {
		state = &pgErr.Code
	}
	eventType := ""
	if rec.Event != nil {
		eventType = rec.Event.Type
	}
	msg := cause.Error()
	var id int64
	err = s.pool.QueryRow(ctx, `
		WITH ins AS (
			INSERT INTO quarantine (webhook_id, attempt, api_key, compressed, body_sha256, body, event_type, headers, error, sqlstate)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10)
			ON CONFLICT (body_sha256) DO NOTHING
			RETURNING id)
		SELECT id FROM ins UNION ALL SELECT id FROM quarantine WHERE body_sha256 = $5 LIMIT 1`,
		nullString(policy.SafeID(rec.WebhookID)), rec.Attempt, safeText(rec.APIKey), rec.Compressed, rec.BodySHA256[:],
		rec.Payload, nullString(policy.SafeID(eventType)), jsonbSafe(headers), safeText(msg), state).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		// The row that conflicted was committed after this statement's
		// snapshot was taken: it is visible now.
		err = s.pool.QueryRow(ctx, `SELECT id FROM quarantine WHERE body_sha256 = $1`, rec.BodySHA256[:]).Scan(&id)
	}
	if err != nil {
		return RecordResult{}, fmt.Errorf("quarantine the refused record (%w): %w", cause, err)
	}
	return RecordResult{QuarantineID: id, QuarantineCause: msg}, nil
}

// Quarantine lists quarantined deliveries, newest first; of f it reads
// From, To (on the time they were quarantined), Cursor and Limit.
func (s *Store) Quarantine(ctx context.Context, f AuditFilter) (Page[Quarantined], error) {
	c, err := decodeCursor(kindQuarantine, f.Cursor)
	if err != nil {
		return Page[Quarantined]{}, err
	}
	limit := pageSize(f.Limit)
	var q query
	q.timeRange("quarantined_at", f.From, f.To)
	q.after(c, "quarantined_at", "id")
	rows, err := s.search(ctx, `SELECT id, quarantined_at, coalesce(webhook_id, '') AS webhook_id, attempt, api_key,
			compressed, encode(body_sha256, 'hex') AS body_sha256, body, length(body) AS body_bytes,
			coalesce(event_type, '') AS event_type, headers, error, coalesce(sqlstate, '') AS sqlstate
		FROM quarantine `+q.clause()+` ORDER BY quarantined_at DESC, id DESC LIMIT `+q.arg(limit+1), q.args...)
	if err != nil {
		return Page[Quarantined]{}, fmt.Errorf("list quarantine: %w", err)
	}
	items, err := pgx.CollectRows(rows, pgx.RowToStructByName[Quarantined])
	if err != nil {
		return Page[Quarantined]{}, fmt.Errorf("list quarantine: %w", err)
	}
	return paginate(items, limit, func(r Quarantined) string {
		return encodeCursor(kindQuarantine, r.QuarantinedAt, 0, r.ID)
	}), nil
}

// safeText returns s with what no text column accepts replaced.
func safeText(s string) string {
	if storable(s) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}
