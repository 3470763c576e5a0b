package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// wordsLockClass is the first key of the advisory lock that lets one
// replica at a time index events' words (the others skip their turn).
const wordsLockClass = 0x6d6f6477 // "modw"

// wordsSlack is how far below the newest indexed event the indexer looks
// for events not indexed yet: ids are taken when an event is inserted, but
// transactions commit in their own order, so an event may become visible
// after a later one was indexed.
const wordsSlack = 10_000

// IndexEventWords writes the words of up to max recorded events that have
// none yet into event_words (an event without a message gets an empty
// row), oldest first, and returns how many it wrote. The full-text search
// reads that table; the service calls this every second, and again at once
// while it finds a full batch (a backlog after an upgrade, or a burst). Of
// replicas running it at once one works and the others return 0.
func (s *Store) IndexEventWords(ctx context.Context, max int) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var mine bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1, 0)`, wordsLockClass).Scan(&mine); err != nil {
			return err
		}
		if !mine {
			return nil
		}
		tag, err := tx.Exec(ctx, `INSERT INTO event_words (event_id, received_at, words)
			SELECT e.id, e.received_at, to_tsvector('simple', coalesce(e.payload #>> '{message,text}', ''))
			FROM events e
			WHERE e.id > (SELECT coalesce(max(event_id), 0) FROM event_words) - $1
				AND NOT EXISTS (SELECT 1 FROM event_words w WHERE w.event_id = e.id)
			ORDER BY e.id LIMIT $2
			ON CONFLICT (event_id) DO NOTHING`, wordsSlack, max)
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("index event words: %w", err)
	}
	return n, nil
}
