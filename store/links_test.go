package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"moderator/store"
	"moderator/store/storetest"
)

// recordWithHook records one event, with what fn queues early (an
// EarlyHook, given the record's body hash), and returns its id.
func recordWithHook(t *testing.T, st *store.Store, id string, fn func(w *store.Writes, body [32]byte)) int64 {
	t.Helper()
	body := fmt.Sprintf(`{"type":"message.new","cid":"messaging:c","message":{"id":%q,"text":"x","user":{"id":"u"}}}`, id)
	res, err := st.RecordEventsWith(context.Background(), []store.EventRecord{record(t, id, body)}, store.Hooks{
		Early: func(w *store.Writes, recs []store.EventRecord) { fn(w, recs[0].BodySHA256) }})
	if err != nil {
		t.Fatal(err)
	}
	return res[0].EventID
}

func TestLinkMessages(t *testing.T) {
	t.Parallel()
	st := storetest.Store(t)
	key := func(s string) (k [32]byte) { copy(k[:], t.Name()+s); return k }

	first := recordWithHook(t, st, t.Name()+"-bs1", func(w *store.Writes, body [32]byte) {
		store.QueueBeforeSendKeys(w, []store.BeforeSendKey{{Body: body, Key: key("a"), Outcome: "accept"}})
	})
	latest := recordWithHook(t, st, t.Name()+"-bs2", func(w *store.Writes, body [32]byte) {
		store.QueueBeforeSendKeys(w, []store.BeforeSendKey{{Body: body, Key: key("a"), Outcome: "rewrite"}})
	})
	tests := []struct {
		name   string
		key    [32]byte
		window time.Duration
		want   []store.BeforeSendLink // MessageEventID filled in below
	}{
		// An hour, not a minute: a parallel subtest may wait minutes for
		// its turn on a busy machine.
		{name: "latest decision with the key", key: key("a"), window: time.Hour,
			want: []store.BeforeSendLink{{BeforeSendEventID: latest, Outcome: "rewrite"}}},
		{name: "no decision with the key", key: key("b"), window: time.Hour},
		{name: "decision outside the window", key: key("a"), window: time.Nanosecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got []store.BeforeSendLink
			msgID := recordWithHook(t, st, t.Name()+"-msg", func(w *store.Writes, body [32]byte) {
				store.QueueLinks(w, []store.MessageKey{{Body: body, Key: tt.key}}, tt.window,
					func(links []store.BeforeSendLink) { got = links })
			})
			for i := range tt.want {
				tt.want[i].MessageEventID = msgID
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("links %v, want %v (first decision %d)", got, tt.want, first)
			}
		})
	}
}

// TestLinkInTheSameBatch: a message recorded in the same batch as the
// before-send decision that rewrote it is linked to it (the early hook
// queues the key before the link), and a duplicate of the message, in a
// later batch, is neither linked again nor an error.
func TestLinkInTheSameBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.Store(t)
	var k [32]byte
	copy(k[:], t.Name())
	bs := record(t, "same-bs", `{"type":"before_send","cid":"messaging:s","message":{"text":"darn","user":{"id":"u"}}}`)
	msg := record(t, "same-msg", `{"type":"message.new","cid":"messaging:s","message":{"id":"same","text":"****","user":{"id":"u"}}}`)
	var got [][]store.BeforeSendLink
	hooks := store.Hooks{Early: func(w *store.Writes, recs []store.EventRecord) {
		var keys []store.BeforeSendKey
		var msgs []store.MessageKey
		for _, r := range recs {
			if r.Event.Type == "before_send" {
				keys = append(keys, store.BeforeSendKey{Body: r.BodySHA256, Key: k, Outcome: "rewrite"})
			} else {
				msgs = append(msgs, store.MessageKey{Body: r.BodySHA256, Key: k})
			}
		}
		store.QueueBeforeSendKeys(w, keys)
		store.QueueLinks(w, msgs, time.Hour, func(links []store.BeforeSendLink) { got = append(got, links) })
	}}
	res, err := st.RecordEventsWith(ctx, []store.EventRecord{bs, msg}, hooks)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.BeforeSendLink{{MessageEventID: res[1].EventID, BeforeSendEventID: res[0].EventID, Outcome: "rewrite"}}
	if len(got) != 1 || fmt.Sprint(got[0]) != fmt.Sprint(want) {
		t.Fatalf("links %v, want %v", got, want)
	}
	again, err := st.RecordEventsWith(ctx, []store.EventRecord{msg}, hooks)
	if err != nil {
		t.Fatal(err)
	}
	if again[0].Duplicate == "" || len(got) != 2 || len(got[1]) != 0 {
		t.Errorf("the duplicate: %+v, links %v; want a duplicate and no new link", again[0], got)
	}
	var n int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM before_send_links WHERE message_event_id = $1`, res[1].EventID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("%d links recorded for the message, want 1", n)
	}
}

// TestLinksReadNoEventWithoutAKey: linking messages of which no
// before-send decision recorded a key (most messages) looks each key up
// and reads none of the batch's events: the batch reads as many rows of
// event_keys as the same batch without links.
func TestLinksReadNoEventWithoutAKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// A database of its own: pg_stat_xact_user_tables also counts what a
	// backend has not reported yet.
	st := storetest.OwnStore(t)
	batch := func(name string, link bool) (fetched int64) {
		t.Helper()
		var recs []store.EventRecord
		for i := range 8 {
			id := fmt.Sprintf("%s-%s-%d", t.Name(), name, i)
			recs = append(recs, record(t, id, fmt.Sprintf(
				`{"type":"message.new","cid":"messaging:c","message":{"id":%q,"text":"x","user":{"id":"u"}}}`, id)))
		}
		hooks := store.Hooks{Tx: func(ctx context.Context, tx pgx.Tx, _ []store.NewEvent) error {
			return tx.QueryRow(ctx, `SELECT coalesce(sum(idx_tup_fetch), 0) FROM pg_stat_xact_user_tables
				WHERE relname = 'event_keys'`).Scan(&fetched)
		}}
		if link {
			hooks.Early = func(w *store.Writes, recs []store.EventRecord) {
				msgs := make([]store.MessageKey, len(recs))
				for i, r := range recs {
					msgs[i] = store.MessageKey{Body: r.BodySHA256, Key: r.BodySHA256}
				}
				store.QueueLinks(w, msgs, time.Hour, nil)
			}
		}
		// A new backend: one's pending statistics of the earlier
		// transactions show in pg_stat_xact_user_tables until it reports
		// them.
		st.Pool().Reset()
		if _, err := st.RecordEventsWith(ctx, recs, hooks); err != nil {
			t.Fatal(err)
		}
		return fetched
	}
	without, with := batch("plain", false), batch("linked", true)
	if with != without {
		t.Errorf("linking 8 messages without keys fetched %d rows of event_keys, %d without linking; want as many", with, without)
	}
}
