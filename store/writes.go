package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Writes are the statements of a recording transaction that nothing waits
// for before the commit: the decisions, the raw bodies of repaired
// payloads, the before-send keys and links. They are queued while the
// batch is judged and sent together, in one round trip (a pipeline),
// instead of one round trip each: a round trip is a wake-up of a backend
// and of a flusher on two busy cores, and at a few hundred webhooks a
// second, with a record or two per batch, each adds to every webhook's
// wait. A statement that fails fails the batch as if it had run alone.
type Writes struct {
	b pgx.Batch
}

// Queue adds a statement. Set the returned query's Exec or Query callback
// to read its answer: it runs when the writes are sent, before any TxHook.
func (w *Writes) Queue(sql string, args ...any) *pgx.QueuedQuery { return w.b.Queue(sql, args...) }

// Len is how many statements are queued.
func (w *Writes) Len() int { return w.b.Len() }

// send sends the queued statements in tx, runs their callbacks and empties
// the queue.
func (w *Writes) send(ctx context.Context, tx pgx.Tx) error {
	if w.b.Len() == 0 {
		return nil
	}
	return w.flush(ctx, tx, "write decisions and links")
}

// sendAndCommit sends the queued statements and COMMIT in tx, in one round
// trip, and runs their callbacks; what names the statements in an error.
// A nil error means tx is committed.
func (w *Writes) sendAndCommit(ctx context.Context, tx pgx.Tx, what string) error {
	queueCommit(&w.b)
	return w.flush(ctx, tx, what)
}

// queueCommit queues COMMIT on b, failing b when the transaction did not
// commit: Postgres answers the COMMIT of a failed transaction with
// ROLLBACK, not with an error.
func queueCommit(b *pgx.Batch) {
	b.Queue("COMMIT").Exec(func(tag pgconn.CommandTag) error {
		if tag.String() != "COMMIT" {
			return pgx.ErrTxCommitRollback
		}
		return nil
	})
}

// flush sends the queue as one pipeline and empties it; what names its
// statements in the error.
func (w *Writes) flush(ctx context.Context, tx pgx.Tx, what string) error {
	err := tx.SendBatch(ctx, &w.b).Close()
	w.b = pgx.Batch{}
	if err != nil {
		return fmt.Errorf("record events: %s: %w", what, err)
	}
	return nil
}

// QueueHook runs in the recording transaction once the new events are
// judged and queues statements of its own on w, which go to Postgres with
// the batch's decisions. It may return a Continuation, then to run with
// the answers (which its callbacks keep) once the writes are sent: this
// batch's continuation, so that the state it shares is the batch's own.
// An error rolls the whole transaction back.
type QueueHook func(ctx context.Context, w *Writes, events []NewEvent) (then Continuation, err error)

// Continuation is a QueueHook's work once its queued statements are
// answered. It runs in the recording transaction: with tx, the statements
// whose answers it needs (such as the actions, whose ids their jobs
// carry); on last, the ones nothing waits for (such as the outcomes of
// actions that end at once), which go to Postgres with the COMMIT, in
// one round trip. An error rolls the whole transaction back.
type Continuation func(ctx context.Context, tx pgx.Tx, last *Writes, events []NewEvent) error

// Hooks are the work a recording transaction does besides recording its
// events: Queue first (its statements sent with the decisions) and its
// continuation, then Tx, with the transaction itself, for work that needs
// answers in between. Either may be nil.
type Hooks struct {
	Queue QueueHook
	Tx    TxHook
	// Quiet, when set, tells before a batch is recorded that Queue will
	// queue nothing for its records (nor return a continuation): a batch
	// with nothing else to write then commits with its insert, in one
	// round trip instead of two. Without it, Queue is taken to have work.
	Quiet func(recs []EventRecord) bool
	// Early queues statements that go with the events' insert, in the
	// batch's first round trip (see EarlyHook).
	Early EarlyHook
}

// EarlyHook queues on w, before a batch's events are inserted, statements
// that go to Postgres right after the insert, in the same round trip, and
// commit with it. They cannot know the new events' ids: they find the
// events by body hash among those this transaction inserted (as
// QueueLinks does), which also skips duplicates. Work that needs no
// judging belongs here, so that it costs no round trip of its own.
type EarlyHook func(w *Writes, recs []EventRecord)

// writesNothing reports whether recording recs writes nothing after their
// events: no record is judged (or, with judged, the records with a Judge
// were judged ahead, and their Decisions are final), has a decision to
// write or a payload kept raw (repaired), and the hooks have no work for
// them. Such a batch, a reaction or a read receipt say, or messages no
// rule matched judged ahead, commits with its insert.
func writesNothing(recs []EventRecord, repaired []bool, hooks Hooks, judged bool) bool {
	if hooks.Tx != nil || hooks.Queue != nil && (hooks.Quiet == nil || !hooks.Quiet(recs)) {
		return false
	}
	for i, r := range recs {
		d := r.Decision
		if repaired[i] || r.Judge != nil && !judged || d != nil && (len(d.Matches) > 0 || len(d.Errors) > 0) {
			return false
		}
	}
	return true
}
