package store

import (
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// BeforeSendKey is a before-send decision that changed a message, keyed by
// what Stream will save (policy.MessageKey).
type BeforeSendKey struct {
	Body    [32]byte // the before_send event's body hash (EventRecord.BodySHA256)
	Key     [32]byte // policy.MessageKey of the author, channel and final text
	Outcome string   // rewrite
}

// newEventsBySum finds, by body hash (x.sum), the events the current
// transaction inserted: an early hook's statements (EarlyHook) run before
// the events' ids are known. A duplicate has no row of this transaction,
// so it is skipped. A lookup per row (LATERAL … LIMIT 1), as the history
// read does: the recording transaction runs generic plans, and a plain
// join let the planner hash the whole of event_keys for every batch.
const newEventsBySum = `
	JOIN LATERAL (SELECT k.event_id FROM event_keys k
		WHERE k.body_sha256 = x.sum AND k.xmin = pg_current_xact_id()::xid LIMIT 1) e ON true`

// QueueBeforeSendKeys queues the recording of keys on w, in the
// transaction that records their before_send events, early (EarlyHook).
func QueueBeforeSendKeys(w *Writes, keys []BeforeSendKey) {
	if len(keys) == 0 {
		return
	}
	sums, hashes, outcomes := make([][]byte, len(keys)), make([][]byte, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		sums[i], hashes[i], outcomes[i] = k.Body[:], k.Key[:], k.Outcome
	}
	w.Queue(`
		INSERT INTO before_send_keys (event_id, link_key, outcome)
		SELECT e.event_id, x.link_key, x.outcome
		FROM unnest($1::bytea[], $2::bytea[], $3::text[]) AS x(sum, link_key, outcome)`+newEventsBySum+`
		ON CONFLICT (event_id) DO NOTHING`, sums, hashes, outcomes)
}

// MessageKey is a message.new event to link, by its body hash
// (EventRecord.BodySHA256), with its policy.MessageKey.
type MessageKey struct {
	Body [32]byte
	Key  [32]byte
}

// BeforeSendLink is a message.new linked to the before-send decision that
// let it through.
type BeforeSendLink struct {
	MessageEventID    int64
	BeforeSendEventID int64
	Outcome           string
}

// QueueLinks queues on w the linking of each message to the latest
// before-send decision with its key recorded within window, and the
// recording of the links, early (EarlyHook: after any before-send keys
// queued before it, so a decision recorded in the same batch is found);
// found gets the links made when the writes are sent. A message without
// such a decision (the hook is off, failed open without recording yet, or
// the text changed) is not linked.
//
// The decision is looked up before the message's event: most messages
// have none (only a before-send call that changed one records a key), so
// for them the statement costs one index probe. Looking the event up
// first (in event_keys, with a heap fetch for its xmin) cost that for
// every message of every batch: 72–127 µs a batch of 16 in the bench's
// closed loop, where no message has a key, against 29 µs now.
func QueueLinks(w *Writes, msgs []MessageKey, window time.Duration, found func([]BeforeSendLink)) {
	if len(msgs) == 0 {
		return
	}
	sums, hashes := make([][]byte, len(msgs)), make([][]byte, len(msgs))
	for i, m := range msgs {
		sums[i], hashes[i] = m.Body[:], m.Key[:]
	}
	w.Queue(`
		INSERT INTO before_send_links (message_event_id, before_send_event_id, outcome)
		SELECT e.event_id, k.event_id, k.outcome
		FROM unnest($1::bytea[], $2::bytea[]) AS x(sum, link_key)
		CROSS JOIN LATERAL (
			SELECT event_id, outcome FROM before_send_keys
			WHERE link_key = x.link_key AND received_at > now() - $3::interval
			ORDER BY received_at DESC LIMIT 1) AS k`+newEventsBySum+`
		ON CONFLICT (message_event_id) DO NOTHING
		RETURNING message_event_id, before_send_event_id, outcome`, sums, hashes, window).Query(func(rows pgx.Rows) error {
		links, err := pgx.CollectRows(rows, pgx.RowToStructByPos[BeforeSendLink])
		if err != nil {
			return fmt.Errorf("link messages to before-send decisions: %w", err)
		}
		if found != nil {
			found(links)
		}
		return nil
	})
}
