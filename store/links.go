package store

import (
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// BeforeSendKey is a before-send decision that changed a message, keyed by
// what Stream will save (policy.MessageKey).
type BeforeSendKey struct {
	EventID int64    // the before_send event
	Key     [32]byte // policy.MessageKey of the author, channel and final text
	Outcome string   // rewrite
}

// QueueBeforeSendKeys queues the recording of keys on w, in the
// transaction that records their before_send events.
func QueueBeforeSendKeys(w *Writes, keys []BeforeSendKey) {
	if len(keys) == 0 {
		return
	}
	ids, hashes, outcomes := make([]int64, len(keys)), make([][]byte, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		ids[i], hashes[i], outcomes[i] = k.EventID, k.Key[:], k.Outcome
	}
	w.Queue(`
		INSERT INTO before_send_keys (event_id, link_key, outcome)
		SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::text[])
		ON CONFLICT (event_id) DO NOTHING`, ids, hashes, outcomes)
}

// MessageKey is a message.new event to link, with its policy.MessageKey.
type MessageKey struct {
	EventID int64
	Key     [32]byte
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
// recording of the links; found gets the links made when the writes are
// sent. A message without such a decision (the hook is off, failed open
// without recording yet, or the text changed) is not linked.
func QueueLinks(w *Writes, msgs []MessageKey, window time.Duration, found func([]BeforeSendLink)) {
	if len(msgs) == 0 {
		return
	}
	ids, hashes := make([]int64, len(msgs)), make([][]byte, len(msgs))
	for i, m := range msgs {
		ids[i], hashes[i] = m.EventID, m.Key[:]
	}
	w.Queue(`
		INSERT INTO before_send_links (message_event_id, before_send_event_id, outcome)
		SELECT m.id, k.event_id, k.outcome
		FROM unnest($1::bigint[], $2::bytea[]) AS m(id, link_key)
		CROSS JOIN LATERAL (
			SELECT event_id, outcome FROM before_send_keys
			WHERE link_key = m.link_key AND received_at > now() - $3::interval
			ORDER BY received_at DESC LIMIT 1) AS k
		ON CONFLICT (message_event_id) DO NOTHING
		RETURNING message_event_id, before_send_event_id, outcome`, ids, hashes, window).Query(func(rows pgx.Rows) error {
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
