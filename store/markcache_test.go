package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"moderator/store"
	"moderator/store/storetest"
)

// userRules read only user values, so that the history read of a batch
// touches counter_marks for nothing else.
const userRules = `rules:
  - id: flood
    description: more than 4 messages a minute
    mode: enforce
    when: counts.user_messages("1m") > 4
    actions: [{mute: {timeout: 10m}}]
    examples:
      - history: {'counts.user_messages("1m")': 5}
        event: {}
        expect: {match: true}
      - event: {}
        expect: {match: false}
  - id: watch
    description: reads the rest
    mode: shadow
    when: >
      counts.user_channel_messages("1m") + counts.user_links("1h") + counts.user_duplicates("10m") +
      counts.user_channels("1h") + counts.user_mentions("1h") > 1000
    actions: [flag]
    examples:
      - history: {'counts.user_links("1h")': 1001}
        event: {}
        expect: {match: true}
      - event: {}
        expect: {match: false}
`

// markReads records recs in one transaction and returns how many times
// st has loaded a key's marks from the database so far.
func markReads(t *testing.T, st *store.Store, recs ...store.EventRecord) int64 {
	t.Helper()
	if _, err := st.RecordEvents(context.Background(), recs, nil); err != nil {
		t.Fatal(err)
	}
	return st.CopyLoads()
}

// TestUserCountsFromMemory: once a replica has read a user's marks, it
// counts the user's next messages from its copy, without reading the
// marks again, and the values are those the database read gives: each
// message counts those before it, and a message delivered long after its
// time (older than the copy holds) still counts the marks of its window.
func TestUserCountsFromMemory(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	other, st := twoReplicas(t)
	j := newJudging(t, userRules)
	user := t.Name()
	msg := func(i int, at time.Time) store.EventRecord {
		m := message{id: fmt.Sprintf("%s-%d", user, i), user: user, channel: fmt.Sprintf("messaging:c%d", i%2),
			text: "same words", at: at}
		return j.record(t, m.id, m.body())
	}
	// The first on another replica: this one has no copy yet.
	if _, err := other.RecordEvent(ctx, msg(0, t0)); err != nil {
		t.Fatal(err)
	}
	read := markReads(t, st, msg(1, t0.Add(time.Second)))
	if read == 0 {
		t.Errorf("first message on this replica: no load, want the user's marks loaded")
	}
	for i := 2; i < 8; i++ {
		n := markReads(t, st, msg(i, t0.Add(time.Duration(i)*time.Second)))
		if n != read {
			t.Errorf("message %d: %d loads, want none (counted from the replica's copy)", i, n-read)
		}
		read = n
	}
	for i := range 8 {
		id := fmt.Sprintf("%s-%d", user, i)
		if got := j.saw(id, `counts.user_messages("1m")`); got != i+1 {
			t.Errorf("message %d: counts.user_messages(\"1m\") = %d, want %d", i, got, i+1)
		}
		if got := j.saw(id, `counts.user_channel_messages("1m")`); got != i/2+1 {
			t.Errorf("message %d: counts.user_channel_messages(\"1m\") = %d, want %d", i, got, i/2+1)
		}
		if got := j.saw(id, `counts.user_duplicates("10m")`); got != i+1 {
			t.Errorf("message %d: counts.user_duplicates(\"10m\") = %d, want %d", i, got, i+1)
		}
		if got, want := j.saw(id, `counts.user_channels("1h")`), min(i+1, 2); got != want {
			t.Errorf("message %d: counts.user_channels(\"1h\") = %d, want %d", i, got, want)
		}
	}
	// Two hours later the copy keeps only the last hour and a minute.
	later := t0.Add(2 * time.Hour)
	read = markReads(t, st, msg(8, later))
	if got := j.saw(user+"-8", `counts.user_channels("1h")`); got != 1 {
		t.Errorf("two hours later: counts.user_channels(\"1h\") = %d, want 1", got)
	}
	// A message from before that, delivered now, is counted against the
	// marks of its own hour, which the replica loads again.
	if n := markReads(t, st, msg(9, t0.Add(30*time.Minute))); n != read+1 {
		t.Errorf("late message: %d loads, want the marks its window needs loaded", n-read)
	}
	if got := j.saw(user+"-9", `counts.user_messages("1m")`); got != 1 {
		t.Errorf("late message: counts.user_messages(\"1m\") = %d, want 1 (its own)", got)
	}
	if got := j.saw(user+"-9", `counts.user_channels("1h")`); got != 2 {
		t.Errorf("late message: counts.user_channels(\"1h\") = %d, want 2 (the first eight and its own)", got)
	}
	if got := j.saw(user+"-9", `counts.user_duplicates("10m")`); got != 1 {
		t.Errorf("late message: counts.user_duplicates(\"10m\") = %d, want 1 (its own)", got)
	}
}

// TestUserCountsSeeOtherWriters: a replica's copy of a user's marks is
// not used once another replica, or anything else, wrote marks of the
// user: it loads them again and counts them.
func TestUserCountsSeeOtherWriters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := storetest.NewDatabase(t)
	var replicas [2]*store.Store
	for i := range replicas {
		st, err := store.Open(ctx, storetest.Bounded(url))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		replicas[i] = st
	}
	if _, err := replicas[0].Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	j := newJudging(t, userRules)
	user := t.Name()
	send := func(st *store.Store, i int) {
		m := message{id: fmt.Sprintf("%s-%d", user, i), user: user, channel: "messaging:c", text: "hi",
			at: t0.Add(time.Duration(i) * time.Second)}
		if _, err := st.RecordEvent(ctx, j.record(t, m.id, m.body())); err != nil {
			t.Fatal(err)
		}
	}
	// 0, 1 on the first; 2, 3 on the second; 4 on the first again.
	for i, r := range []int{0, 0, 1, 1, 0} {
		send(replicas[r], i)
	}
	// A mark written by hand (or by a replica of an older version).
	if _, err := replicas[1].Pool().Exec(ctx, `INSERT INTO counter_marks (event_id, user_id, channel_cid, at, links, fingerprint, young, mentions)
		VALUES (-1, $1, 'messaging:c', $2, 0, NULL, false, 0)`, user, t0.Add(4500*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	send(replicas[0], 5)
	for i, want := range []int{1, 2, 3, 4, 5, 7} {
		if got := j.saw(fmt.Sprintf("%s-%d", user, i), `counts.user_messages("1m")`); got != want {
			t.Errorf("message %d: counts.user_messages(\"1m\") = %d, want %d", i, got, want)
		}
	}
}

// TestUserCountsAfterRollback: the marks of a batch whose transaction
// rolled back are not counted by the replica's next batches, even once
// the user's version is what that batch's commit would have made it.
func TestUserCountsAfterRollback(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.Store(t)
	j := newJudging(t, userRules)
	user := t.Name()
	msg := func(i int) store.EventRecord {
		m := message{id: fmt.Sprintf("%s-%d", user, i), user: user, channel: "messaging:c", text: "hi",
			at: t0.Add(time.Duration(i) * time.Second)}
		return j.record(t, m.id, m.body())
	}
	if _, err := st.RecordEvent(ctx, msg(0)); err != nil {
		t.Fatal(err)
	}
	fail := errors.New("refused")
	_, err := st.RecordEvents(ctx, []store.EventRecord{msg(1), msg(2)}, func(context.Context, pgx.Tx, []store.NewEvent) error {
		return fail
	})
	if !errors.Is(err, fail) {
		t.Fatalf("RecordEvents with a failing hook: got %v, want %v", err, fail)
	}
	// Another writer then brings the user's version to what the rolled
	// back batch would have made it.
	if _, err := st.Pool().Exec(ctx, `INSERT INTO counter_marks (event_id, user_id, channel_cid, at, links, fingerprint, young, mentions)
		VALUES (-1, $1, 'messaging:c', $2, 0, NULL, false, 0)`, user, t0.Add(1500*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.RecordEvent(ctx, msg(3)); err != nil {
		t.Fatal(err)
	}
	if got := j.saw(user+"-3", `counts.user_messages("1m")`); got != 3 {
		t.Errorf("after a rolled-back batch: counts.user_messages(\"1m\") = %d, want 3 (0, the other writer's and its own)", got)
	}
}

// youngCopyRules read only the young accounts' messages in the channel,
// for every message (the count comes first: see policy.gateOf).
const youngCopyRules = `rules:
  - id: raid
    description: a raid of new accounts
    mode: shadow
    when: counts.channel_young_messages("5m") > 20 && user.young
    actions: [flag]
    examples:
      - history: {'counts.channel_young_messages("5m")': 21}
        event: {user: {created_at: "2026-01-15T11:00:00Z"}}
        expect: {match: true}
      - event: {}
        expect: {match: false}
`

// TestOlderAccountsReadNoYoungCount: where the young accounts' count is
// read only for young accounts (user.young && …, as the starter pack's
// raid rule does), an older account's message reads no channel copy. It
// loads nothing although another replica has written young marks since
// this one's copy, and sees no count; a young account's message, alone
// or in the same batch, still counts every young mark exactly.
func TestOlderAccountsReadNoYoungCount(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	other, st := twoReplicas(t)
	j := newJudging(t, gatedYoungRules)
	channel := "messaging:" + t.Name()
	msg := func(i int, age time.Duration) store.EventRecord { return youngMessage(t, j, channel, i, age) }
	const young, old = time.Hour, 365 * 24 * time.Hour
	loads := markReads(t, st, msg(0, young))
	if _, err := other.RecordEvent(ctx, msg(1, young)); err != nil {
		t.Fatal(err)
	}
	if n := markReads(t, st, msg(2, old)); n != loads {
		t.Errorf("an older account's message: %d loads, want none (its rules read no young count)", n-loads)
	}
	if n := markReads(t, st, msg(3, old), msg(4, young), msg(5, old), msg(6, young)); n != loads+1 {
		t.Errorf("a batch of older and young accounts: %d loads, want 1 (the other replica's mark)", n-loads)
	}
	want := map[int]int{0: 1, 1: 2, 2: 0, 3: 0, 4: 3, 5: 0, 6: 4}
	for i, w := range want {
		if got := j.saw(fmt.Sprintf("%s-%d", t.Name(), i), `counts.channel_young_messages("5m")`); got != w {
			t.Errorf("message %d: counts.channel_young_messages(\"5m\") = %d, want %d", i, got, w)
		}
	}
}

// TestYoungCountsFromCopies: a replica counts a channel's young accounts'
// messages from its copy of their marks, without reading them again, and
// exactly while another replica writes some too; marks of accounts not
// young under the folder's age (a day) are kept but not counted.
func TestYoungCountsFromCopies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	other, st := twoReplicas(t)
	j := newJudging(t, youngCopyRules)
	channel := "messaging:" + t.Name()
	// Messages 0-9 by accounts an hour old, 10 by a three-day-old account,
	// 11 by a year-old one, 12-14 by new accounts again.
	msg := func(i int) store.EventRecord {
		at := t0.Add(time.Duration(i) * time.Second)
		created := at.Add(-time.Hour)
		switch i {
		case 10:
			created = at.Add(-72 * time.Hour)
		case 11:
			created = at.AddDate(-1, 0, 0)
		}
		m := message{id: fmt.Sprintf("%s-%d", t.Name(), i), user: fmt.Sprintf("u%d", i), channel: channel, text: "hi",
			at: at, userCreated: created}
		return j.record(t, m.id, m.body())
	}
	var read int64
	for i := range 15 {
		if i%4 == 3 {
			if _, err := other.RecordEvent(ctx, msg(i)); err != nil {
				t.Fatal(err)
			}
			continue
		}
		n := markReads(t, st, msg(i))
		if prev := i - 1; i > 1 && prev%4 != 3 && n != read {
			t.Errorf("message %d: %d loads, want none (counted from the replica's copy)", i, n-read)
		}
		read = n
	}
	want := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10, 10, 11, 12, 13}
	for i, w := range want {
		if got := j.saw(fmt.Sprintf("%s-%d", t.Name(), i), `counts.channel_young_messages("5m")`); got != w {
			t.Errorf("message %d: counts.channel_young_messages(\"5m\") = %d, want %d", i, got, w)
		}
	}
}

// TestUserCountsOfAFlood: a user's flood past what a copy keeps is
// counted from the copy's most recent marks, without loading them again
// for each message, and the values stop at store.HistoryCap as the
// database read's do, a late message's included.
func TestUserCountsOfAFlood(t *testing.T) {
	t.Parallel()
	st := oneConnStore(t)
	j := newJudging(t, userRules)
	user := t.Name()
	msg := func(i int, at time.Time) store.EventRecord {
		m := message{id: fmt.Sprintf("%s-%d", user, i), user: user, channel: "messaging:c", text: fmt.Sprint("flood ", i), at: at}
		return j.record(t, m.id, m.body())
	}
	const flood = 6 * store.HistoryCap
	for b := range flood / 500 {
		var recs []store.EventRecord
		for i := b * 500; i < (b+1)*500; i++ {
			recs = append(recs, msg(i, t0.Add(time.Duration(i)*time.Millisecond)))
		}
		markReads(t, st, recs...)
	}
	read := markReads(t, st, msg(flood, t0.Add(flood*time.Millisecond)))
	for i, at := range []time.Time{t0.Add((flood + 1) * time.Millisecond), t0.Add(10 * time.Millisecond)} {
		n := markReads(t, st, msg(flood+1+i, at))
		if n != read {
			t.Errorf("message at %v: %d loads, want none (counted from the replica's copy)", at.Sub(t0), n-read)
		}
		read = n
	}
	for i := flood - 1; i <= flood+2; i++ {
		if got := j.saw(fmt.Sprintf("%s-%d", user, i), `counts.user_messages("1m")`); got != store.HistoryCap {
			t.Errorf("message %d: counts.user_messages(\"1m\") = %d, want %d", i, got, store.HistoryCap)
		}
	}
}

// oneConnStore is a store on a new migrated database whose pool has one
// connection.
func oneConnStore(t *testing.T) *store.Store {
	t.Helper()
	_, st := twoReplicas(t)
	return st
}

// twoReplicas returns two stores on one new migrated database, as two
// replicas have: other with a pool of its own, st with one connection.
func twoReplicas(t *testing.T) (other, st *store.Store) {
	t.Helper()
	ctx := context.Background()
	url := storetest.NewDatabase(t)
	other, err := store.Open(ctx, storetest.Bounded(url))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(other.Close)
	if _, err := other.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return other, store.New(pool)
}

// gatedYoungRules reads the young accounts' count only for young accounts
// (user.young && …, as the starter pack's raid rule does), with the
// default young age of a day.
var gatedYoungRules = strings.Replace(youngCopyRules, `counts.channel_young_messages("5m") > 20 && user.young`,
	`user.young && counts.channel_young_messages("5m") > 20`, 1)

// youngMessage is a message in channel by an account age old at t0 + i s.
func youngMessage(t *testing.T, j *judging, channel string, i int, age time.Duration) store.EventRecord {
	t.Helper()
	at := t0.Add(time.Duration(i) * time.Second)
	m := message{id: fmt.Sprintf("%s-%d", t.Name(), i), user: fmt.Sprintf("%s-u%d", t.Name(), i), channel: channel,
		text: "hi", at: at, userCreated: at.Add(-age)}
	return j.record(t, m.id, m.body())
}

// TestYoungCopyKeptByOlderAccounts: a message of an account young under
// the longest age a folder may set but not under the folder's own (two
// days old, against a day) reads no young count, but writes a young mark
// that bumps the channel's version; its batch keeps the replica's copy
// current with it, so the channel's next young message loads nothing, and
// counts only the messages young under the folder's age.
func TestYoungCopyKeptByOlderAccounts(t *testing.T) {
	t.Parallel()
	_, st := twoReplicas(t) // a replica of its own: CopyLoads counts its loads alone
	j := newJudging(t, gatedYoungRules)
	channel := "messaging:" + t.Name()
	const young, older = time.Hour, 48 * time.Hour
	loads := markReads(t, st, youngMessage(t, j, channel, 0, young))
	markReads(t, st, youngMessage(t, j, channel, 1, older))
	markReads(t, st, youngMessage(t, j, channel, 2, older), youngMessage(t, j, channel, 3, older))
	if n := markReads(t, st, youngMessage(t, j, channel, 4, young)); n != loads {
		t.Errorf("a young account's message after older accounts' ones: %d loads, want none (the copy kept their marks)", n-loads)
	}
	for i, w := range map[int]int{0: 1, 4: 2} {
		if got := j.saw(fmt.Sprintf("%s-%d", t.Name(), i), `counts.channel_young_messages("5m")`); got != w {
			t.Errorf("message %d: counts.channel_young_messages(\"5m\") = %d, want %d", i, got, w)
		}
	}
}

// TestYoungCopyAcrossFlushers: a two-day-old account's message in a
// channel where a young account's batch is in flight (here waiting for
// its user's lock) waits for that batch, in its flusher, instead of
// writing its young mark beside it in the other flusher, which left the
// young batch's copy of the channel a version behind and made it load
// the channel's marks again.
func TestYoungCopyAcrossFlushers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, _ := twoReplicas(t) // a replica of its own, with a pool for both flushers
	j := newJudging(t, gatedYoungRules)
	b := runBatcher(t, st, store.BatcherConfig{Flushers: 2, Timeout: time.Minute})
	channel := "messaging:" + t.Name()
	const young, older = time.Hour, 48 * time.Hour
	if _, err := b.RecordEvent(ctx, youngMessage(t, j, channel, 0, young)); err != nil {
		t.Fatal(err)
	}
	loads := st.CopyLoads()

	tx, key := holdUserLock(t, st, fmt.Sprintf("%s-u%d", t.Name(), 1))
	waitYoung, err := b.Submit(ctx, youngMessage(t, j, channel, 1, young))
	if err != nil {
		t.Fatal(err)
	}
	waitForLockWait(t, st, key)
	waitOlder, err := b.Submit(ctx, youngMessage(t, j, channel, 2, older))
	if err != nil {
		t.Fatal(err)
	}
	// Time for the other flusher to commit it, as it did before the
	// channel's lock was taken for it; it must wait instead.
	quick, stop := context.WithTimeout(ctx, 2*time.Second)
	_, err = waitOlder(quick)
	stop()
	waits := []func(context.Context) (store.RecordResult, error){waitYoung, waitOlder}
	if err == nil {
		t.Error("the older account's message was committed while the young account's batch in its channel waited")
		waits = waits[:1] // its answer is taken
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	for _, wait := range waits {
		if res, err := wait(ctx); err != nil || res.EventID == 0 {
			t.Fatalf("once the lock is free: %+v, %v", res, err)
		}
	}
	if _, err := b.RecordEvent(ctx, youngMessage(t, j, channel, 3, young)); err != nil {
		t.Fatal(err)
	}
	if n := st.CopyLoads(); n != loads {
		t.Errorf("%d loads of the channel's marks, want none (the copy stayed current)", n-loads)
	}
	for i, w := range map[int]int{1: 2, 3: 3} {
		if got := j.saw(fmt.Sprintf("%s-%d", t.Name(), i), `counts.channel_young_messages("5m")`); got != w {
			t.Errorf("message %d: counts.channel_young_messages(\"5m\") = %d, want %d", i, got, w)
		}
	}
}
