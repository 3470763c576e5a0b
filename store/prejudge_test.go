package store_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"moderator/store"
	"moderator/store/storetest"
)

// TestJudgedAhead: a message whose values the replica counts from its
// copy of the user's marks is judged before its insert, and commits in
// one round trip when its decision writes nothing; with a decision to
// write, in two. A retry among the records, or marks another writer
// added, fail the check: the batch is recorded again the usual way, and
// every count stays exact.
func TestJudgedAhead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, trace := storetest.TracedStore(t)
	j := newJudging(t, userRules)
	user := t.Name()
	msg := func(i int) store.EventRecord {
		m := message{id: fmt.Sprintf("%s-%d", user, i), user: user, channel: "messaging:c", text: "hi",
			at: t0.Add(time.Duration(i) * time.Second)}
		return j.record(t, m.id, m.body())
	}
	send := func(rec store.EventRecord) (store.RecordResult, []string) {
		t.Helper()
		trace.Take()
		res, err := st.RecordEventsWith(ctx, []store.EventRecord{rec}, store.Hooks{})
		if err != nil {
			t.Fatal(err)
		}
		return res[0], trace.Take()
	}
	steps := []struct {
		name   string
		rec    store.EventRecord
		trips  []string
		misses int64
		count  int // counts.user_messages("1m") its judge saw; 0: a duplicate
	}{
		{"the first message: no copy", msg(0), []string{"batch", "batch"}, 0, 1},
		{"the second: from the copy, nothing to write", msg(1), []string{"batch"}, 0, 2},
		{"the third", msg(2), []string{"batch"}, 0, 3},
		{"a retry of the third: the check fails", msg(2), []string{"batch", "rollback", "batch", "SELECT", "batch"}, 1, 0},
		{"the fourth: the copy is still good", msg(3), []string{"batch"}, 1, 4},
		{"the fifth: flood matches, the decision is written", msg(4), []string{"batch", "batch"}, 1, 5},
	}
	for _, s := range steps {
		res, trips := send(s.rec)
		if fmt.Sprint(trips) != fmt.Sprint(s.trips) {
			t.Errorf("%s: round trips %v, want %v", s.name, trips, s.trips)
		}
		if got := st.CopyMisses(); got != s.misses {
			t.Errorf("%s: %d copy misses, want %d", s.name, got, s.misses)
		}
		if s.count == 0 {
			if res.Duplicate != store.DuplicateWebhookID {
				t.Errorf("%s: duplicate %q, want %q", s.name, res.Duplicate, store.DuplicateWebhookID)
			}
			continue
		}
		if got := j.saw(s.rec.WebhookID, `counts.user_messages("1m")`); got != s.count {
			t.Errorf("%s: counts.user_messages(\"1m\") = %d, want %d", s.name, got, s.count)
		}
		if matched := res.Decision != nil && len(res.Decision.Matches) > 0; matched != (s.count == 5) {
			t.Errorf("%s: decision %+v, want flood matched only at 5", s.name, res.Decision)
		}
	}

	// Another replica (a hand here) writes a mark of the user: the copy
	// is stale, the check says so, and the next message counts the mark.
	if _, err := st.Pool().Exec(ctx, `INSERT INTO counter_marks (event_id, user_id, channel_cid, at, links, fingerprint, young, mentions)
		VALUES (-1, $1, 'messaging:c', $2, 0, NULL, false, 0)`, user, t0.Add(4500*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, trips := send(msg(5)); !slices.Contains(trips, "rollback") {
		t.Errorf("after another writer's mark: round trips %v, want the check's rollback", trips)
	}
	if got := st.CopyMisses(); got != 2 {
		t.Errorf("after another writer's mark: %d copy misses, want 2", got)
	}
	if got := j.saw(user+"-5", `counts.user_messages("1m")`); got != 7 {
		t.Errorf("after another writer's mark: counts.user_messages(\"1m\") = %d, want 7", got)
	}
	if _, trips := send(msg(6)); fmt.Sprint(trips) != "[batch batch]" {
		// Six and more in a minute: flood matches, its decision is written.
		t.Errorf("the next message: round trips %v, want [batch batch]", trips)
	}
	if got := j.saw(user+"-6", `counts.user_messages("1m")`); got != 8 {
		t.Errorf("the next message: counts.user_messages(\"1m\") = %d, want 8", got)
	}

	var marks, decisions int
	if err := st.Pool().QueryRow(ctx, `SELECT (SELECT count(*) FROM counter_marks WHERE user_id = $1),
		(SELECT count(*) FROM decisions WHERE user_id = $1)`, user).Scan(&marks, &decisions); err != nil {
		t.Fatal(err)
	}
	if marks != 8 || decisions != 3 {
		t.Errorf("%d marks and %d decisions, want 8 (seven messages and the hand's) and 3 (flood at 5, 7, 8)", marks, decisions)
	}
}

// TestCountsAcrossReplicasJudgedAhead: two replicas recording a user's
// messages one after another, with rules whose values the copies hold:
// the batches are judged ahead, and the other replica's marks and the
// retries fail their checks. The replicas take turns in runs of varying
// length, and every fifth message is delivered to both at once (Stream's
// retries land on either). Each message still counts every one before it
// exactly once.
func TestCountsAcrossReplicasJudgedAhead(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	j := newJudging(t, userRules)
	other, st := twoReplicas(t)
	replicas := []*store.Store{other, st}
	var (
		batchers []*store.Batcher
		wg       sync.WaitGroup
	)
	defer wg.Wait()
	defer cancel()
	for _, st := range replicas {
		b := store.NewBatcher(st, store.BatcherConfig{})
		wg.Go(func() { b.Run(ctx) })
		batchers = append(batchers, b)
	}
	const n = 60
	user := t.Name()
	var ids []string
	for i := range n {
		m := message{id: fmt.Sprintf("%s-%d", user, i), user: user, channel: fmt.Sprintf("messaging:%s-%d", user, i%3),
			text: "flood", at: t0.Add(time.Duration(i) * 100 * time.Millisecond)}
		ids = append(ids, m.id)
		var sends sync.WaitGroup
		news := make(chan int, 2)
		to := batchers[i/3%2 : i/3%2+1] // runs of three, alternating
		if i%5 == 0 {
			to = batchers
		}
		for _, b := range to {
			sends.Go(func() {
				rec := j.record(t, m.id, m.body())
				res, err := b.RecordEvent(ctx, rec)
				if err != nil {
					t.Error(err)
					return
				}
				if res.Duplicate == "" {
					j.confirm(m.id, rec)
					news <- 1
				}
			})
		}
		sends.Wait()
		if len(news) != 1 {
			t.Fatalf("message %d recorded %d times, want once", i, len(news))
		}
	}
	wantOneToN(t, j, ids, `counts.user_messages("1m")`)
	wantOneToN(t, j, ids, `counts.user_duplicates("10m")`)
	misses := replicas[0].CopyMisses() + replicas[1].CopyMisses()
	if misses == 0 {
		t.Errorf("no batch judged ahead was recorded again: the test did not race the replicas' copies")
	}
	t.Logf("%d batches judged ahead and recorded again", misses)
}

// strikeGatedRules is a flood rule that acts once per burst: its strikes
// are read only past its count.
const strikeGatedRules = `rules:
  - id: flood
    description: more than 3 messages a minute, once per 10 minutes
    mode: enforce
    when: counts.user_messages("1m") > 3 && strikes.by_rule("flood", "10m") == 0
    actions: [flag]
    examples:
      - history: {'counts.user_messages("1m")': 4}
        event: {}
        expect: {match: true}
      - event: {}
        expect: {match: false}
`

// TestJudgedAheadWithStrikes: a message whose rules read strikes (past
// a count) is judged ahead once the replica has a copy of its user's
// strikes (strikecopy.go): the first message's read loads it, and the
// batches that strike the user (the fourth on) read it again with their
// COMMIT, so that every later message goes ahead too. (No action runs
// here to strike the user, so each message past the count matches.)
func TestJudgedAheadWithStrikes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, st := twoReplicas(t)
	j := newJudging(t, strikeGatedRules)
	user := t.Name()
	var matched, ahead []int
	for i := range 6 {
		m := message{id: fmt.Sprintf("%s-%d", user, i), user: user, channel: "messaging:c", text: "hi",
			at: t0.Add(time.Duration(i) * time.Second)}
		before := st.JudgedAhead()
		res, err := st.RecordEvent(ctx, j.record(t, m.id, m.body()))
		if err != nil {
			t.Fatal(err)
		}
		if st.JudgedAhead() > before {
			ahead = append(ahead, i)
		}
		if res.Decision != nil && len(res.Decision.Matches) > 0 {
			matched = append(matched, i)
		}
	}
	if fmt.Sprint(ahead) != "[1 2 3 4 5]" {
		t.Errorf("messages %v judged ahead, want [1 2 3 4 5]", ahead)
	}
	if got := st.StrikeCopyLoads(); got != 1 {
		t.Errorf("%d loads of strikes, want 1 (the first message's)", got)
	}
	if fmt.Sprint(matched) != "[3 4 5]" {
		t.Errorf("flood matched messages %v, want [3 4 5]", matched)
	}
	for i := range 6 {
		if got := j.saw(fmt.Sprintf("%s-%d", user, i), `counts.user_messages("1m")`); got != i+1 {
			t.Errorf("message %d: counts.user_messages(\"1m\") = %d, want %d", i, got, i+1)
		}
	}
}
