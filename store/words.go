package store

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/jackc/pgx/v5"
)

// wordsLockClass is the first key of the advisory lock that lets one
// replica at a time index events' words (the others skip their turn).
const wordsLockClass = 0x6d6f6477 // "modw"

// wordsMarksKept bounds the marks a replica keeps while none can be
// settled (a long write transaction in the database holds them all): the
// newest is then replaced, which only delays the frontier.
const wordsMarksKept = 32

// A wordsMark is a frontier the indexer may move to once the transactions
// running when it was made have ended: every event id up to seq had been
// taken by then, each by a transaction that had ended or was among
// running. A recording transaction has its id before it takes event ids
// (insertEventsSQL), and the mark reads the sequence before the snapshot
// that lists running, so no transaction holding such an id is missed.
type wordsMark struct {
	seq     int64
	running []int64 // xids of the write transactions in progress
}

// wordsState holds a replica's marks, oldest first. They are facts about
// the database, not about this replica: any replica's marks are valid
// against the shared frontier in event_words_frontier.
type wordsState struct {
	mu    sync.Mutex
	marks []wordsMark
}

// settle adds now (the mark just made) and returns the newest mark's seq
// whose transactions have all ended as of now, if one has and it is above
// the frontier lo. Older marks go; that one stays until the frontier
// passes it (a sweep may take several passes).
func (w *wordsState) settle(now wordsMark, lo int64) (int64, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.marks = slices.DeleteFunc(w.marks, func(m wordsMark) bool { return m.seq <= lo })
	if len(w.marks) < wordsMarksKept {
		w.marks = append(w.marks, now)
	} else {
		w.marks[len(w.marks)-1] = now
	}
	settled := -1
	for i, m := range w.marks {
		if m.seq > lo && !slices.ContainsFunc(m.running, func(x int64) bool { return slices.Contains(now.running, x) }) {
			settled = i
		}
	}
	if settled < 0 {
		return 0, false
	}
	w.marks = w.marks[settled:]
	return w.marks[0].seq, true
}

// wordsSeqSQL reads the sequence, and wordsSnapSQL, a second statement
// with a later snapshot, the write transactions then in progress and the
// frontier. The snapshot lists the whole cluster's transactions; those
// that pg_stat_activity shows in another database cannot hold an event id
// and are left out, so that another application's long transaction does
// not hold the marks back (where this role may not see them, they stay:
// the marks then only settle later).
const (
	wordsSeqSQL  = `SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM event_ids`
	wordsSnapSQL = `SELECT ARRAY(SELECT x::text::bigint FROM pg_snapshot_xip(pg_current_snapshot()) AS x
			WHERE NOT EXISTS (SELECT 1 FROM pg_stat_activity a
				WHERE a.backend_xid = x::xid AND a.datname IS DISTINCT FROM current_database())),
		coalesce((SELECT id FROM event_words_frontier), 0)`
)

// wordsInsert writes the words of the events its WHERE clause picks, oldest
// first, and returns how many and the last one's id: the one place the
// indexed text is defined.
const wordsInsert = `WITH ins AS (
		INSERT INTO event_words (event_id, received_at, words)
		SELECT e.id, e.received_at, to_tsvector('simple', coalesce(e.payload #>> '{message,text}', ''))
		FROM events e
		WHERE %s
		ORDER BY e.id LIMIT $%d
		ON CONFLICT (event_id) DO NOTHING
		RETURNING event_id)
	SELECT count(*), coalesce(max(event_id), 0) FROM ins`

// wordsNew indexes the events above the newest indexed one: most events,
// a second or so after they are recorded.
var wordsNew = fmt.Sprintf(wordsInsert, "e.id > (SELECT coalesce(max(event_id), 0) FROM event_words)", 1)

// wordsSweep indexes the events between the frontier ($1) and a settled
// mark ($2) that have no words yet: those that committed after later ones
// were indexed. Each id is read here once, when its mark settles.
var wordsSweep = fmt.Sprintf(wordsInsert,
	"e.id > $1 AND e.id <= $2 AND NOT EXISTS (SELECT 1 FROM event_words w WHERE w.event_id = e.id)", 3)

const wordsFrontierSQL = `INSERT INTO event_words_frontier (id) VALUES ($1)
	ON CONFLICT (one) DO UPDATE SET id = excluded.id`

// IndexEventWords writes the words of up to max recorded events that have
// none yet into event_words (an event without a message gets an empty
// row), oldest first, and returns how many it wrote. The full-text search
// reads that table; the service calls this every second, and again at
// once while it finds a full batch (a backlog after an upgrade, or a
// burst). Of replicas running it at once one works and the others return
// 0.
//
// The events above the newest indexed one are indexed at once. Those
// that committed after later ones were indexed are found by a sweep
// between the frontier and the newest settled mark (see wordsMark), a
// pass or so after they commit, however many events were recorded
// meanwhile.
func (s *Store) IndexEventWords(ctx context.Context, max int) (int64, error) {
	var n int64
	// Read committed whatever the server's default: the snapshot that
	// lists the running transactions must be taken after the sequence is
	// read, by a statement of its own (see wordsMark).
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		mine, mark, lo, err := takeWordsMark(ctx, tx)
		if err != nil || !mine {
			return err
		}
		if err := tx.QueryRow(ctx, wordsNew, max).Scan(&n, nil); err != nil {
			return fmt.Errorf("new events: %w", err)
		}
		hi, settled := s.words.settle(mark, lo)
		if n >= int64(max) || !settled {
			return nil
		}
		var swept, last int64
		if err := tx.QueryRow(ctx, wordsSweep, lo, hi, int64(max)-n).Scan(&swept, &last); err != nil {
			return fmt.Errorf("late events above %d: %w", lo, err)
		}
		if n += swept; n >= int64(max) {
			hi = last // the rest of the sweep next time
		}
		if _, err := tx.Exec(ctx, wordsFrontierSQL, hi); err != nil {
			return fmt.Errorf("frontier %d: %w", hi, err)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("index event words: %w", err)
	}
	return n, nil
}

// takeWordsMark takes the indexers' lock (mine is false when another
// replica holds it) and makes a mark, in one round trip, and reads the
// frontier lo.
func takeWordsMark(ctx context.Context, tx pgx.Tx) (mine bool, mark wordsMark, lo int64, err error) {
	b := &pgx.Batch{}
	b.Queue(`SELECT pg_try_advisory_xact_lock($1, 0)`, wordsLockClass).QueryRow(func(r pgx.Row) error { return r.Scan(&mine) })
	b.Queue(wordsSeqSQL).QueryRow(func(r pgx.Row) error { return r.Scan(&mark.seq) })
	b.Queue(wordsSnapSQL).QueryRow(func(r pgx.Row) error { return r.Scan(&mark.running, &lo) })
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return false, wordsMark{}, 0, fmt.Errorf("mark: %w", err)
	}
	return mine, mark, lo, nil
}
