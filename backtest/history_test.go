package backtest

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"

	"moderator/policy"
	"moderator/store"
	"moderator/store/storetest"
)

// recountRules reads every counter, the young-account ones with a young
// age of 2h.
const recountRules = `settings:
  young_account: 2h
rules:
  - id: watch
    description: reads every counter
    events: [message.new, message.updated]
    when: >
      counts.user_messages("1m") + counts.user_channel_messages("1m") + counts.user_links("1h") +
      counts.user_duplicates("10m") + counts.user_channels("1h") + counts.user_mentions("1m") +
      counts.channel_young_messages("5m") + counts.channel_users("1m") + counts.channel_users("10m") > 1000
    actions: [flag]
    examples:
      - history: {'counts.user_mentions("1m")': 1001}
        event: {}
        expect: {match: true}
      - event: {}
        expect: {match: false}
`

// TestRecountEqualsLive records a mixed stream (several users and
// channels, accounts of every age, mentions, links, duplicates, edits,
// batches of several events) through the store's live path, then recounts
// it as a backtest does: every event must read the same values in both.
func TestRecountEqualsLive(t *testing.T) {
	ctx := context.Background()
	st := storetest.OwnStore(t)
	rs, err := policy.Load(fstest.MapFS{"r.yaml": {Data: []byte(recountRules)}})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	live := map[string]policy.History{} // by message id and type
	start := time.Now().UTC().Truncate(time.Second)
	var batch []store.EventRecord
	for i := range 120 {
		ev, body := recountEvent(t, i, start)
		key := ev.MessageIDOrEmpty() + " " + ev.Type
		judge := rs.Defer(ev)
		decide := judge.Decide
		judge.Decide = func(h, shadow policy.History) policy.Decision {
			mu.Lock()
			live[key] = h
			mu.Unlock()
			return decide(h, shadow)
		}
		batch = append(batch, store.EventRecord{WebhookID: fmt.Sprintf("rc-%d", i), BodySHA256: sha256.Sum256(body), Attempt: 1,
			APIKey: "k", Payload: body, Event: ev, Judge: judge})
		if len(batch) == 1+i%4 { // batches of 1 to 4
			if _, err := st.RecordEvents(ctx, batch, nil); err != nil {
				t.Fatal(err)
			}
			batch = nil
		}
	}
	if _, err := st.RecordEvents(ctx, batch, nil); err != nil {
		t.Fatal(err)
	}

	r := &run{src: st, cand: rs, opt: Options{PageSize: 17, Workers: 1}, keys: rs.History()}
	r.counters = newCounters(r.keys, rs.YoungAccount())
	r.counts = rs.CountsMessages()
	recount := map[string]policy.History{}
	err = r.pages(ctx, start.Add(-time.Hour), time.Now().Add(time.Hour), false, func(items []item) error {
		r.readCounters(items)
		for _, it := range items {
			if it.err != nil {
				return it.err
			}
			recount[it.ev.MessageIDOrEmpty()+" "+it.ev.Type] = it.hist
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(live) != 120 {
		t.Fatalf("live judged %d events, want 120", len(live))
	}
	if diff := cmp.Diff(live, recount); diff != "" {
		t.Errorf("recount differs from live (-live +recount):\n%s", diff)
	}
	// The stream must exercise the counters, or equality proves nothing.
	var users, young, mentions int
	for _, h := range live {
		users = max(users, h[policy.HistoryKey{Name: policy.CountChannelUsers, Window: 10 * time.Minute}])
		young = max(young, h[policy.HistoryKey{Name: policy.CountChannelYoungMessages, Window: 5 * time.Minute}])
		mentions = max(mentions, h[policy.HistoryKey{Name: policy.CountUserMentions, Window: time.Minute}])
	}
	if users < 5 || young < 5 || mentions < 5 {
		t.Errorf("largest values: channel_users %d, channel_young_messages %d, user_mentions %d; want each at least 5", users, young, mentions)
	}
}

// recountEvent is the i-th event of TestRecountEqualsLive's stream: seven
// users in three channels, one event every 2 s, accounts from 10 minutes
// to a year old (one turning two hours old meanwhile), some mentioning, some linking, every fifth an edit of an
// earlier message.
func recountEvent(t *testing.T, i int, start time.Time) (*policy.Event, []byte) {
	t.Helper()
	at := start.Add(time.Duration(i) * 2 * time.Second)
	u := i % 7
	ages := []time.Duration{10 * time.Minute, time.Hour, 119 * time.Minute, 3 * time.Hour, 24 * time.Hour, 365 * 24 * time.Hour, 2 * time.Hour}
	var mentioned []any
	for m := range i % 4 {
		mentioned = append(mentioned, map[string]any{"id": fmt.Sprintf("m%d", m)})
	}
	typ, msg := "message.new", fmt.Sprintf("rc-%d", i)
	if i%5 == 4 {
		typ, msg = "message.updated", fmt.Sprintf("rc-%d", i-4+i%3)
		u = (i - 4 + i%3) % 7
	}
	text := []string{"hello there", "see https://x.example", "Buy cheap followers", "buy CH3AP followers!!"}[i%4]
	body, err := json.Marshal(map[string]any{
		"type": typ, "cid": fmt.Sprintf("messaging:rc-%d", i%3), "created_at": at.Format(time.RFC3339Nano),
		"message": map[string]any{"id": msg, "text": text, "created_at": at.Format(time.RFC3339Nano), "mentioned_users": mentioned},
		"user":    map[string]any{"id": fmt.Sprintf("rc-u%d", u), "created_at": start.Add(-ages[u]).Format(time.RFC3339Nano)},
	})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := policy.ParseEvent(body)
	if err != nil {
		t.Fatal(err)
	}
	return ev, body
}
