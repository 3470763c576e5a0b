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

// strikeValues are the three values strikeRules reads.
var strikeValues = []string{`strikes.count("7d")`, `strikes.of_type("warn", "7d")`, `strikes.by_rule("swearing", "1d")`}

func sawStrikes(j *judging, id string) [3]int {
	return [3]int{j.saw(id, strikeValues[0]), j.saw(id, strikeValues[1]), j.saw(id, strikeValues[2])}
}

// TestStrikeCopyJudgesAhead: once a history read has loaded a user's
// strikes, the user's next message is judged ahead from the replica's
// copy of them, with the values the read would have found; and whatever
// changes the user's strikes in between (an outcome that takes a strike
// back, an overturn, another replica's strike) fails the check, so that
// the batch is recorded again with the values as they now are.
func TestStrikeCopyJudgesAhead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name   string
		change func(t *testing.T, st, other *store.Store, j *judging, user string, actionID int64)
		at     time.Duration // the last message's time after t0
		want   [3]int
		misses int64
	}{
		{name: "nothing changed", at: 2 * time.Second, want: [3]int{1, 1, 1}},
		{name: "the strike's rule window passed", at: 23*time.Hour + 30*time.Minute, want: [3]int{1, 1, 0}},
		{name: "a failed outcome took the strike back", at: 2 * time.Second, misses: 1,
			change: func(t *testing.T, st, _ *store.Store, _ *judging, _ string, id int64) {
				err := pgx.BeginFunc(ctx, st.Pool(), func(tx pgx.Tx) error {
					return store.RecordOutcomesTx(ctx, tx, []store.OutcomeRow{{ActionID: id, Outcome: store.OutcomeFailed}})
				})
				if err != nil {
					t.Fatal(err)
				}
			}},
		{name: "an overturn took it back", at: 2 * time.Second, misses: 1,
			change: func(t *testing.T, st, _ *store.Store, _ *judging, _ string, id int64) { overturn(t, st, id) }},
		{name: "another replica struck the user", at: 2 * time.Second, want: [3]int{2, 2, 2}, misses: 1,
			change: func(t *testing.T, _, other *store.Store, j *judging, user string, _ int64) {
				m := message{id: user + "-elsewhere", user: user, channel: "messaging:s", text: "darn", at: t0.Add(1500 * time.Millisecond)}
				hooks := &actionHook{ids: map[int64][]int64{}}
				if _, err := other.RecordEvents(ctx, []store.EventRecord{j.record(t, m.id, m.body())}, hooks.hook); err != nil {
					t.Fatal(err)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			other, st := twoReplicas(t)
			j := newJudging(t, strikeRules)
			user := t.Name()
			hooks := &actionHook{ids: map[int64][]int64{}}
			send := func(m message) store.RecordResult {
				t.Helper()
				res, err := st.RecordEvents(ctx, []store.EventRecord{j.record(t, m.id, m.body())}, hooks.hook)
				if err != nil {
					t.Fatal(err)
				}
				return res[0]
			}
			// A warning an hour before: the first read loads the user's
			// (no) strikes, and the batch reads them again with its
			// COMMIT, its own strike included; the next message is judged
			// from them.
			first := send(message{id: user + "-0", user: user, channel: "messaging:s", text: "darn", at: t0.Add(-time.Hour)})
			ahead := st.JudgedAhead()
			send(message{id: user + "-1", user: user, channel: "messaging:s", text: "hello", at: t0})
			if st.JudgedAhead() != ahead+1 {
				t.Errorf("the message after the strike was not judged ahead")
			}
			if got := sawStrikes(j, user+"-1"); got != [3]int{1, 1, 1} {
				t.Errorf("judged from the copy: strikes %v, want [1 1 1]", got)
			}
			if got := st.StrikeCopyLoads(); got != 1 {
				t.Errorf("%d loads of strikes, want 1", got)
			}
			if tt.change != nil {
				tt.change(t, st, other, j, user, hooks.ids[first.EventID][0])
			}
			last := message{id: user + "-3", user: user, channel: "messaging:s", text: "hello", at: t0.Add(tt.at)}
			send(last)
			if got := sawStrikes(j, last.id); got != tt.want {
				t.Errorf("the last message: strikes %v, want %v", got, tt.want)
			}
			if got := st.CopyMisses(); got != tt.misses {
				t.Errorf("%d batches judged ahead recorded again, want %d", got, tt.misses)
			}
			if st.JudgedAhead() != ahead+2 {
				t.Errorf("the last message was not judged ahead")
			}
		})
	}
}

// TestStrikeCopyAndTheBatchsOwnStrikes: a record that would count the
// strike of an earlier record of its own batch (which no copy holds) is
// not judged ahead from the copy: a flood rule that acts once per burst
// acts once, on the message past the count, and not again on the next
// in the same batch, nor on the one after, judged from the strikes the
// batch read again with its COMMIT.
func TestStrikeCopyAndTheBatchsOwnStrikes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, st := twoReplicas(t)
	j := newJudging(t, strikeGatedRules)
	user := t.Name()
	hooks := &actionHook{ids: map[int64][]int64{}}
	msg := func(i int) (string, store.EventRecord) {
		m := message{id: fmt.Sprintf("%s-%d", user, i), user: user, channel: "messaging:c", text: "hi",
			at: t0.Add(time.Duration(i) * time.Second)}
		return m.id, j.record(t, m.id, m.body())
	}
	// Three messages under the count, one at a time: the strikes are
	// loaded with the first, and the others are judged ahead.
	for i := range 3 {
		_, rec := msg(i)
		if _, err := st.RecordEvents(ctx, []store.EventRecord{rec}, hooks.hook); err != nil {
			t.Fatal(err)
		}
	}
	if st.JudgedAhead() != 2 || st.StrikeCopyLoads() != 1 {
		t.Fatalf("%d batches judged ahead and %d loads of strikes, want 2 and 1", st.JudgedAhead(), st.StrikeCopyLoads())
	}
	// The fourth (past the count: flood acts) and the fifth in one batch.
	id3, rec3 := msg(3)
	id4, rec4 := msg(4)
	res, err := st.RecordEvents(ctx, []store.EventRecord{rec3, rec4}, hooks.hook)
	if err != nil {
		t.Fatal(err)
	}
	if st.JudgedAhead() != 2 {
		t.Errorf("the batch with a strike its second record counts was judged ahead")
	}
	if got := [2]int{j.saw(id3, `strikes.by_rule("flood", "10m")`), j.saw(id4, `strikes.by_rule("flood", "10m")`)}; got != [2]int{0, 1} {
		t.Errorf("strikes.by_rule(\"flood\", \"10m\") = %v, want [0 1]", got)
	}
	if acted := [2]bool{len(res[0].Decision.Actions) > 0, len(res[1].Decision.Actions) > 0}; acted != [2]bool{true, false} {
		t.Errorf("flood acted on %v, want only the first of the batch", acted)
	}
	// The batch read the user's strikes again with its COMMIT, its flag's
	// strike included: the next message is judged ahead from them, and
	// flood does not act again.
	id5, rec5 := msg(5)
	res, err = st.RecordEvents(ctx, []store.EventRecord{rec5}, hooks.hook)
	if err != nil {
		t.Fatal(err)
	}
	if st.JudgedAhead() != 3 || st.StrikeCopyLoads() != 1 || st.CopyMisses() != 0 {
		t.Errorf("%d batches judged ahead, %d recorded again and %d loads of strikes, want 3, 0 and 1",
			st.JudgedAhead(), st.CopyMisses(), st.StrikeCopyLoads())
	}
	if got := j.saw(id5, `strikes.by_rule("flood", "10m")`); got != 1 || len(res[0].Decision.Actions) > 0 {
		t.Errorf("the next message: strikes.by_rule(\"flood\", \"10m\") = %d and actions %v, want 1 and none", got, res[0].Decision.Actions)
	}
}

// shadowStrikeRules: a shadow rule flags every "darn" (would-be strikes,
// which only shadow rules count), another reads them for every message,
// and a third acts on them for a message that says "again".
const shadowStrikeRules = `rules:
  - id: trial
    description: a rule on trial
    mode: shadow
    when: message.text contains "darn"
    actions: [flag]
    examples:
      - event: {message: {text: "darn"}}
        expect: {match: true}
      - event: {}
        expect: {match: false}
  - id: trial-count
    description: reads the trial's would-be strikes
    mode: shadow
    when: strikes.by_rule("trial", "1d") > 1000
    actions: [flag]
    examples:
      - history: {'strikes.by_rule("trial", "1d")': 1001}
        event: {}
        expect: {match: true}
      - event: {}
        expect: {match: false}
  - id: trial-again
    description: acts on them
    mode: shadow
    when: message.text == "again" && strikes.by_rule("trial", "1d") == 1
    actions: [{warn: {text: "again"}}]
    examples:
      - history: {'strikes.by_rule("trial", "1d")': 1}
        event: {message: {text: "again"}}
        expect: {match: true}
      - event: {message: {text: "again"}}
        expect: {match: false}
`

// TestStrikeCopyShadowStrikes: judged ahead from the copy, a shadow rule
// counts the shadow rules' would-be strikes and an enforced reader would
// not: the values the history read gives each.
func TestStrikeCopyShadowStrikes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, st := twoReplicas(t)
	j := newJudging(t, shadowStrikeRules)
	user := t.Name()
	var last store.RecordResult
	for i, text := range []string{"darn", "hello", "again"} {
		m := message{id: fmt.Sprintf("%s-%d", user, i), user: user, channel: "messaging:c", text: text,
			at: t0.Add(time.Duration(i) * time.Second)}
		res, err := st.RecordEvents(ctx, []store.EventRecord{j.record(t, m.id, m.body())}, nil)
		if err != nil {
			t.Fatal(err)
		}
		last = res[0]
	}
	if st.JudgedAhead() != 2 || st.StrikeCopyLoads() != 1 {
		// The first read loads the (no) strikes; the first batch, which
		// wrote a shadow strike, reads them again with its COMMIT.
		t.Fatalf("%d batches judged ahead and %d loads of strikes, want 2 and 1", st.JudgedAhead(), st.StrikeCopyLoads())
	}
	if got := j.saw(user+"-2", `strikes.by_rule("trial", "1d")`); got != 0 {
		t.Errorf("the enforced rules' strikes.by_rule(\"trial\", \"1d\") = %d, want 0 (shadow strikes are not theirs)", got)
	}
	var matched []string
	for _, m := range last.Decision.Matches {
		matched = append(matched, m.RuleID)
	}
	if fmt.Sprint(matched) != "[trial-again]" {
		t.Errorf("the third message matched %v, want [trial-again] (the trial's would-be strike counted)", matched)
	}
}

// TestStrikeCopyNotForManyStrikes: a user with more strikes than a copy
// holds (a spammer's deletes) has none loaded, and is read by the
// database, exact as before.
func TestStrikeCopyNotForManyStrikes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, st := twoReplicas(t)
	j := newJudging(t, strikeRules)
	user := t.Name()
	if _, err := st.Pool().Exec(ctx, `
		INSERT INTO strikes (event_id, user_id, strike_key, rule_id, type, at, shadow)
		SELECT 0, $1, 'm:spam-' || i, 'spam', 'delete', $2::timestamptz - i * interval '1 second', false
		FROM generate_series(1, 150) i`, user, t0); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		m := message{id: fmt.Sprintf("%s-%d", user, i), user: user, channel: "messaging:c", text: "hello",
			at: t0.Add(time.Duration(i) * time.Second)}
		if _, err := st.RecordEvents(ctx, []store.EventRecord{j.record(t, m.id, m.body())}, nil); err != nil {
			t.Fatal(err)
		}
		if got := sawStrikes(j, m.id); got != [3]int{150, 0, 0} {
			t.Errorf("message %d: strikes %v, want [150 0 0]", i, got)
		}
	}
	if st.StrikeCopyLoads() != 0 || st.JudgedAhead() != 0 {
		t.Errorf("%d loads of strikes and %d batches judged ahead, want none", st.StrikeCopyLoads(), st.JudgedAhead())
	}
}

// TestStrikeCopySparesTheRead: a batch read in the transaction (here,
// messages without a time, which are never judged ahead) counts its
// user's strikes from the replica's current copy and reads no strike
// row, with the values the read's scans give.
func TestStrikeCopySparesTheRead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// A database of its own: pg_stat_xact_user_tables also counts what a
	// backend has not reported yet.
	st := storetest.OwnStore(t)
	j := newJudging(t, strikeRules)
	user := t.Name()
	if _, err := st.Pool().Exec(ctx, `
		INSERT INTO strikes (event_id, user_id, strike_key, rule_id, type, at, shadow)
		SELECT 0, $1, 'm:swear-' || i, 'swearing', 'warn', now() - i * interval '1 hour', false
		FROM generate_series(1, 5) i`, user); err != nil {
		t.Fatal(err)
	}
	// No created_at: the database's now() is the messages' time.
	send := func(i int) (id string, fetched int64) {
		t.Helper()
		id = fmt.Sprintf("%s-%d", user, i)
		body := fmt.Appendf(nil, `{"type":"message.new","cid":"messaging:c","message":{"id":%q,"text":"hello"},"user":{"id":%q}}`, id, user)
		_, err := st.RecordEvents(ctx, []store.EventRecord{j.record(t, id, body)}, func(ctx context.Context, tx pgx.Tx, _ []store.NewEvent) error {
			return tx.QueryRow(ctx, `SELECT coalesce(sum(idx_tup_fetch), 0) FROM pg_stat_xact_user_tables WHERE relname = 'strikes'`).Scan(&fetched)
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := sawStrikes(j, id); got != [3]int{5, 5, 5} {
			t.Errorf("message %d: strikes %v, want [5 5 5]", i, got)
		}
		return id, fetched
	}
	if _, fetched := send(0); fetched < 5 {
		t.Errorf("the first read fetched %d strike rows, want its load of the 5", fetched)
	}
	// A new backend: one's pending statistics of the earlier transactions
	// show in pg_stat_xact_user_tables until it reports them.
	st.Pool().Reset()
	if _, fetched := send(1); fetched != 0 {
		t.Errorf("with a current copy, the read fetched %d strike rows, want none", fetched)
	}
	if st.StrikeCopyLoads() != 1 || st.JudgedAhead() != 0 {
		t.Errorf("%d loads of strikes and %d batches judged ahead, want 1 and 0", st.StrikeCopyLoads(), st.JudgedAhead())
	}
}

// TestStrikeCopyReloadAfterAnotherWriter: another transaction that
// changes the user's strikes while a batch that struck the user is in
// flight (a hand moving a strike's time) commits before the batch reads
// the user's strikes again with its COMMIT: the copy holds the change,
// and the next message, judged ahead from it, counts it.
func TestStrikeCopyReloadAfterAnotherWriter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	other, st := twoReplicas(t)
	j := newJudging(t, strikeRules)
	user := t.Name()
	if _, err := st.Pool().Exec(ctx, `INSERT INTO strikes (event_id, user_id, strike_key, rule_id, type, at, shadow)
		VALUES (0, $1, 'm:before', 'swearing', 'warn', $2, false)`, user, t0.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	var moved bool
	// No action is recorded: the batch's decision strikes the user, but
	// only the other transaction writes the user's strikes.
	hook := func(ctx context.Context, _ pgx.Tx, _ []store.NewEvent) error {
		if !moved {
			return nil
		}
		_, err := other.Pool().Exec(ctx, `UPDATE strikes SET at = $2 WHERE user_id = $1`, user, t0.Add(-72*time.Hour))
		return err
	}
	send := func(i int, text string) string {
		t.Helper()
		m := message{id: fmt.Sprintf("%s-%d", user, i), user: user, channel: "messaging:s", text: text,
			at: t0.Add(time.Duration(i) * time.Second)}
		if _, err := st.RecordEvents(ctx, []store.EventRecord{j.record(t, m.id, m.body())}, hook); err != nil {
			t.Fatal(err)
		}
		return m.id
	}
	send(0, "hello")
	moved = true
	send(1, "darn")
	moved = false
	id := send(2, "hello")
	if got := sawStrikes(j, id); got != [3]int{1, 1, 0} {
		t.Errorf("after the strike moved three days back: strikes %v, want [1 1 0]", got)
	}
	if st.JudgedAhead() != 2 || st.CopyMisses() != 0 || st.StrikeCopyLoads() != 1 {
		t.Errorf("%d batches judged ahead, %d recorded again, %d loads of strikes, want 2, 0 and 1",
			st.JudgedAhead(), st.CopyMisses(), st.StrikeCopyLoads())
	}
}
