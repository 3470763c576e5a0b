package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"moderator/store"
	"moderator/store/storetest"
)

// recordWithHook records one event and runs fn in its transaction.
func recordWithHook(t *testing.T, st *store.Store, id string, fn func(w *store.Writes, eventID int64)) {
	t.Helper()
	body := fmt.Sprintf(`{"type":"message.new","cid":"messaging:c","message":{"id":%q,"text":"x","user":{"id":"u"}}}`, id)
	_, err := st.RecordEventsWith(context.Background(), []store.EventRecord{record(t, id, body)}, store.Hooks{
		Queue: func(_ context.Context, w *store.Writes, evs []store.NewEvent) (store.Continuation, error) {
			fn(w, evs[0].EventID)
			return nil, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
}

func TestLinkMessages(t *testing.T) {
	t.Parallel()
	st := storetest.Store(t)
	key := func(s string) (k [32]byte) { copy(k[:], t.Name()+s); return k }

	var first, latest int64
	recordWithHook(t, st, t.Name()+"-bs1", func(w *store.Writes, id int64) {
		first = id
		store.QueueBeforeSendKeys(w, []store.BeforeSendKey{{EventID: id, Key: key("a"), Outcome: "accept"}})
	})
	recordWithHook(t, st, t.Name()+"-bs2", func(w *store.Writes, id int64) {
		latest = id
		store.QueueBeforeSendKeys(w, []store.BeforeSendKey{{EventID: id, Key: key("a"), Outcome: "rewrite"}})
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
			var msgID int64
			recordWithHook(t, st, t.Name()+"-msg", func(w *store.Writes, id int64) {
				msgID = id
				store.QueueLinks(w, []store.MessageKey{{EventID: id, Key: tt.key}}, tt.window,
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
