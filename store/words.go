package store

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// wordsLockClass is the first key of the advisory lock that lets one
// replica at a time index events' words (the others skip their turn).
const wordsLockClass = 0x6d6f6477 // "modw"

// wordsSlack is how far below the newest indexed event an event may still
// be missing: ids are taken when an event is inserted, but transactions
// commit in their own order, so an event may become visible after a later
// one was indexed. It is far more ids than the recording transactions of
// all replicas hold at once.
const wordsSlack = 10_000

// wordsSweepEvery is how often the indexer looks back for such late
// events; wordsSweepStale how old its own last sweep may be before it no
// longer trusts it (another replica held the lock meanwhile).
//
// The look-back costs a read of every id in its window, about 2 µs each:
// done on every pass, as it was until 2026-12-05, it read 10,000 ids (and,
// unbounded on event_words' side, every indexed id since the first) to
// find 250 new events, 52 ms a pass at 30,000 events and growing with the
// table. New events are found from the newest indexed one instead, and
// the late ones every few seconds; a late event is searchable within
// wordsSweepEvery.
const (
	wordsSweepEvery = 5 * time.Second
	wordsSweepStale = time.Minute
)

// wordsState is what this replica knows of the look-back: every event up
// to done was indexed (or never committed) as of at.
type wordsState struct {
	mu   sync.Mutex
	done int64
	at   time.Time
	// every overrides wordsSweepEvery (tests: 0 keeps it, <0 sweeps always).
	every time.Duration
}

// window is where a sweep now must look, from the newest indexed id; ok
// is false when the last sweep is too recent to need another.
func (w *wordsState) window(top int64, now time.Time) (lo int64, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	every := w.every
	if every == 0 {
		every = wordsSweepEvery
	}
	since := now.Sub(w.at)
	if every > 0 && since < every {
		return 0, false
	}
	lo = top - wordsSlack
	if since < wordsSweepStale && w.done < lo {
		lo = w.done
	}
	return max(lo, 0), true
}

// swept records a complete sweep made when top was the newest indexed id.
func (w *wordsState) swept(top int64, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done, w.at = max(top-wordsSlack, 0), now
}

// wordsInsert writes the words of the events its WHERE clause picks, oldest
// first: the one place the indexed text is defined.
const wordsInsert = `INSERT INTO event_words (event_id, received_at, words)
	SELECT e.id, e.received_at, to_tsvector('simple', coalesce(e.payload #>> '{message,text}', ''))
	FROM events e
	WHERE %s
	ORDER BY e.id LIMIT %s
	ON CONFLICT (event_id) DO NOTHING`

// wordsNew indexes the events above the newest indexed one and returns
// that id and how many it wrote.
var wordsNew = `WITH top AS (SELECT coalesce(max(event_id), 0) AS id FROM event_words),
	ins AS (` + fmt.Sprintf(wordsInsert, "e.id > (SELECT id FROM top)", "$1") + ` RETURNING 1)
	SELECT (SELECT id FROM top), (SELECT count(*) FROM ins)`

// wordsLate indexes the events above $1 that have no words yet: both
// sides of the anti-join are bounded, so a sweep reads its window of ids
// and not the whole table.
var wordsLate = fmt.Sprintf(wordsInsert,
	"e.id > $1 AND NOT EXISTS (SELECT 1 FROM event_words w WHERE w.event_id = e.id AND w.event_id > $1)", "$2")

// IndexEventWords writes the words of up to max recorded events that have
// none yet into event_words (an event without a message gets an empty
// row), and returns how many it wrote: the events after the newest
// indexed one, oldest first, and every wordsSweepEvery those that
// committed late. The full-text search reads that table; the service
// calls this every second, and again at once while it finds a full batch
// (a backlog after an upgrade, or a burst). Of replicas running it at
// once one works and the others return 0.
func (s *Store) IndexEventWords(ctx context.Context, max int) (int64, error) {
	var n int64
	var top int64
	complete := false
	now := time.Now()
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var mine bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1, 0)`, wordsLockClass).Scan(&mine); err != nil {
			return err
		}
		if !mine {
			return nil
		}
		if err := tx.QueryRow(ctx, wordsNew, max).Scan(&top, &n); err != nil {
			return fmt.Errorf("new events: %w", err)
		}
		if n >= int64(max) {
			return nil
		}
		lo, due := s.words.window(top, now)
		if !due {
			return nil
		}
		tag, err := tx.Exec(ctx, wordsLate, lo, int64(max)-n)
		if err != nil {
			return fmt.Errorf("late events above %d: %w", lo, err)
		}
		complete = tag.RowsAffected() < int64(max)-n
		n += tag.RowsAffected()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("index event words: %w", err)
	}
	if complete {
		s.words.swept(top, now)
	}
	return n, nil
}
