package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"moderator/policy"
	"moderator/store"
	"moderator/store/storetest"
)

// strikeRows returns the strikes rows of user: by action id for the real
// ones, "shadow" and the rule for the shadow ones, with their strike key.
func strikeRows(t *testing.T, st *store.Store, user string) map[string]string {
	t.Helper()
	rows, err := st.Pool().Query(context.Background(), `SELECT coalesce(action_id::text, 'shadow ' || rule_id), strike_key
		FROM strikes WHERE user_id = $1`, user)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]string{}
	for rows.Next() {
		var id, key string
		if err := rows.Scan(&id, &key); err != nil {
			t.Fatal(err)
		}
		got[id] = key
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestStrikeRowsFollowActions: an action against a user writes its strike
// row with it; an outcome that is not a strike (recorded later, by the
// job) and an overturn delete it; applied and dry-run actions keep it, and
// a second outcome, which does not stand, changes nothing.
func TestStrikeRowsFollowActions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.Store(t)
	j := newJudging(t, strikeRules)
	user := t.Name()
	hooks := &actionHook{ids: map[int64][]int64{}}
	var actionIDs []int64
	for i := range 5 {
		m := message{id: fmt.Sprintf("%s-%d", user, i), user: user, channel: "messaging:s", text: "darn", at: t0.Add(time.Duration(i) * time.Minute)}
		res, err := st.RecordEvents(ctx, []store.EventRecord{j.record(t, m.id, m.body())}, hooks.hook)
		if err != nil {
			t.Fatal(err)
		}
		actionIDs = append(actionIDs, hooks.ids[res[0].EventID][0])
	}
	want := map[string]string{}
	for i, id := range actionIDs {
		want[fmt.Sprint(id)] = fmt.Sprintf("m:%s-%d", user, i)
	}
	if d := cmp.Diff(want, strikeRows(t, st, user)); d != "" {
		t.Fatalf("strikes of the five warnings (-want +got):\n%s", d)
	}
	for i, o := range []string{store.OutcomeApplied, store.OutcomeFailed, store.OutcomeDryRun, store.OutcomeHeld} {
		if ok, err := st.RecordOutcome(ctx, store.OutcomeRow{ActionID: actionIDs[i], Outcome: o}); err != nil || !ok {
			t.Fatalf("record %s: got %t, %v", o, ok, err)
		}
	}
	if ok, err := st.RecordOutcome(ctx, store.OutcomeRow{ActionID: actionIDs[0], Outcome: store.OutcomeFailed}); err != nil || ok {
		t.Fatalf("second outcome: got %t, %v, want false (the first stands)", ok, err)
	}
	overturn(t, st, actionIDs[4])
	delete(want, fmt.Sprint(actionIDs[1]))
	delete(want, fmt.Sprint(actionIDs[3]))
	delete(want, fmt.Sprint(actionIDs[4]))
	if d := cmp.Diff(want, strikeRows(t, st, user)); d != "" {
		t.Errorf("strikes after applied, failed, dry run, held and an overturn (-want +got):\n%s", d)
	}
}

// TestExpireStrikes: strikes go with their event's recording time, as
// counter marks do.
func TestExpireStrikes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openURL(t, storetest.NewDatabase(t))
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	j := newJudging(t, strikeRules)
	hooks := &actionHook{ids: map[int64][]int64{}}
	for i := range 3 {
		m := message{id: fmt.Sprint(i), user: "u", channel: "messaging:x", text: "darn", at: t0}
		if _, err := st.RecordEvents(ctx, []store.EventRecord{j.record(t, m.id, m.body())}, hooks.hook); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := st.ExpireStrikes(ctx, 24*time.Hour, 100); err != nil || n != 0 {
		t.Fatalf("ExpireStrikes(1d): got %d, %v, want 0", n, err)
	}
	if n, err := st.ExpireStrikes(ctx, 0, 2); err != nil || n != 2 {
		t.Fatalf("ExpireStrikes(0, 2): got %d, %v, want 2", n, err)
	}
	if n, err := st.ExpireStrikes(ctx, 0, 2); err != nil || n != 1 {
		t.Fatalf("ExpireStrikes(0, 2) again: got %d, %v, want 1", n, err)
	}
}

// strikesMigration is the version of the migration that adds strikes.
func strikesMigration(t *testing.T) int {
	t.Helper()
	all, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range all {
		if m.Name == "strikes" {
			return m.Version
		}
	}
	t.Fatal("no strikes migration")
	return 0
}

// TestStrikesMigrationBackfills migrates a database an older release
// filled: the actions that still count become strikes (pending, not
// failed, not overturned, not reversals, not past retention), and the
// shadow matches of recorded decisions become shadow strikes.
func TestStrikesMigrationBackfills(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := openEmpty(t)
	if err := st.MigrateTo(ctx, strikesMigration(t)-1); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	pending, _ := insertOldEvent(t, st, "pending", now)
	failed, _ := insertOldEvent(t, st, "failed", now)
	overturned, _ := insertOldEvent(t, st, "overturned", now)
	old, _ := insertOldEvent(t, st, "old", now.AddDate(0, 0, -40))
	act := func(event int64, key string, reverses *int64) int64 {
		var id int64
		if err := st.Pool().QueryRow(ctx, `INSERT INTO actions (event_id, position, rule_id, type, target_user_id, message_id,
				params, idempotency_key, reverses_action_id) VALUES ($1, 0, 'r1', 'warn', 'u1', $2, '{}', $2, $3) RETURNING id`,
			event, key, reverses).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}
	pendingAct := act(pending, "pending", nil)
	failedAct := act(failed, "failed", nil)
	overturnedAct := act(overturned, "overturned", nil)
	act(overturned, "reversal", &overturnedAct)
	act(old, "old", nil)
	for _, stmt := range []string{
		fmt.Sprintf(`INSERT INTO action_outcomes (action_id, outcome) VALUES (%d, 'failed')`, failedAct),
		fmt.Sprintf(`WITH o AS (INSERT INTO overturns (action_id, reviewer, reason) VALUES (%d, 'rita', 'quote') RETURNING id)
			INSERT INTO action_reversals (overturn_id, action_id, disposition) SELECT id, %d, 'nothing_to_undo' FROM o`,
			overturnedAct, overturnedAct),
		`INSERT INTO events (webhook_id, body_sha256, attempt, api_key, compressed, body_bytes, type, user_id, message_id, own,
			ignored, payload) VALUES ('shadowed', '\x01', 1, 'k', false, 2, 'message.new', 'u1', 'shadowed', false, false, '{}')`,
		`INSERT INTO decisions (event_id, rule_set_version, matched_rules, enforced_rules, user_id, message_id, matches, actions, errors)
			SELECT id, 'v1', '{watch,log}', '{}', 'u1', 'shadowed',
				'[{"rule_id": "watch", "mode": "shadow", "actions": [{"type": "mute", "rule_id": "watch"}]},
				  {"rule_id": "log", "mode": "enforce"}]', '[]', '[]'
			FROM events WHERE webhook_id = 'shadowed'`,
	} {
		if _, err := st.Pool().Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{fmt.Sprint(pendingAct): "m:pending", "shadow watch": "m:shadowed"}
	if d := cmp.Diff(want, strikeRows(t, st, "u1")); d != "" {
		t.Errorf("strikes after the migration (-want +got):\n%s", d)
	}
}

// shadowLadder is a ladder and a flood guard in shadow, written so or
// demoted (see TestShadowStrikeLineage), and an enforce rule that reads
// strikes and never matches.
const shadowLadder = `rules:
  - id: profanity
    description: swear words
    mode: MODE
    when: message.text contains "darn"
    actions: [flag]
    examples: [{event: {message: {text: "darn"}}, expect: {match: true}}, {event: {}, expect: {match: false}}]
  - id: warn
    description: first rung
    mode: MODE
    when: message.text contains "darn" && strikes.by_rule("profanity", "7d") == 0
    actions: [{warn: {text: "language"}}]
    examples: [{event: {message: {text: "darn"}}, expect: {match: true}}, {event: {}, expect: {match: false}}]
  - id: mute
    description: second rung
    mode: MODE
    when: message.text contains "darn" && strikes.by_rule("profanity", "7d") == 1
    actions: [{mute: {timeout: 1h}}]
    examples: [{history: {'strikes.by_rule("profanity", "7d")': 1}, event: {message: {text: "darn"}}, expect: {match: true}}, {event: {}, expect: {match: false}}]
  - id: ban
    description: third rung
    mode: MODE
    when: message.text contains "darn" && strikes.by_rule("profanity", "7d") >= 2
    actions: [ban]
    examples: [{history: {'strikes.by_rule("profanity", "7d")': 2}, event: {message: {text: "darn"}}, expect: {match: true}}, {event: {}, expect: {match: false}}]
  - id: flood
    description: once per burst
    mode: MODE
    when: counts.user_messages("1m") > 3 && strikes.by_rule("flood", "10m") == 0
    actions: [{mute: {timeout: 10m}}]
    examples: [{history: {'counts.user_messages("1m")': 4}, event: {}, expect: {match: true}}, {event: {}, expect: {match: false}}]
  - id: enforced
    description: reads strikes, never matches
    mode: enforce
    when: strikes.count("7d") + strikes.by_rule("profanity", "7d") + strikes.by_rule("flood", "10m") > 1000
    actions: [flag]
    examples: [{history: {'strikes.count("7d")': 1001}, event: {}, expect: {match: true}}, {event: {}, expect: {match: false}}]
`

// TestShadowStrikeLineage: a shadow ladder climbs warn, mute, ban over
// three swear words, and a shadow flood guard matches once in a burst of
// six messages, exactly as they would enforced, with no action recorded
// (so no call to Stream); the enforce rule reading the same strikes sees
// none of the shadow ones. The same for rules written in shadow and for
// enforce rules demoted by their guard, message by message and in one
// batch (the batch's earlier would-be strikes count too).
func TestShadowStrikeLineage(t *testing.T) {
	t.Parallel()
	ladder := []string{"profanity", "warn"}
	for _, demoted := range []bool{false, true} {
		for _, oneBatch := range []bool{false, true} {
			t.Run(fmt.Sprintf("demoted=%t/one batch=%t", demoted, oneBatch), func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				st := storetest.Store(t)
				src := strings.ReplaceAll(shadowLadder, "MODE", "shadow")
				if demoted {
					src = strings.ReplaceAll(shadowLadder, "MODE", "enforce")
				}
				j := newJudging(t, src)
				if demoted {
					j.rs = j.rs.WithShadow(map[string]bool{"profanity": true, "warn": true, "mute": true, "ban": true, "flood": true})
				}
				user := t.Name()
				var recs []store.EventRecord
				for i, text := range []string{"darn", "hello", "darn it", "darn again", "hi", "bye"} {
					m := message{id: fmt.Sprintf("%s-%d", user, i), user: user, channel: "messaging:s", text: text,
						at: t0.Add(time.Duration(i) * 5 * time.Second)}
					recs = append(recs, j.record(t, m.id, m.body()))
				}
				var results []store.RecordResult
				hooks := &actionHook{ids: map[int64][]int64{}}
				if oneBatch {
					res, err := st.RecordEvents(ctx, recs, hooks.hook)
					if err != nil {
						t.Fatal(err)
					}
					results = res
				} else {
					for _, r := range recs {
						res, err := st.RecordEvents(ctx, []store.EventRecord{r}, hooks.hook)
						if err != nil {
							t.Fatal(err)
						}
						results = append(results, res[0])
					}
				}
				var got [][]string
				for _, r := range results {
					var ids []string
					for _, m := range r.Decision.Matches {
						if m.Mode != policy.ModeShadow {
							t.Errorf("%s matched in mode %s", m.RuleID, m.Mode)
						}
						ids = append(ids, m.RuleID)
					}
					got = append(got, ids)
				}
				want := [][]string{ladder, nil, {"profanity", "mute"}, {"profanity", "ban", "flood"}, nil, nil}
				if d := cmp.Diff(want, got); d != "" {
					t.Errorf("shadow matches of the six messages (-want +got):\n%s", d)
				}
				var actions int
				if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM actions WHERE target_user_id = $1`, user).Scan(&actions); err != nil {
					t.Fatal(err)
				}
				if actions != 0 {
					t.Errorf("%d actions recorded, want none", actions)
				}
				for _, k := range []string{`strikes.count("7d")`, `strikes.by_rule("profanity", "7d")`, `strikes.by_rule("flood", "10m")`} {
					if n := j.saw(recs[5].WebhookID, k); n != 0 {
						t.Errorf("the enforce rule read %s = %d, want 0 (shadow strikes are not its)", k, n)
					}
				}
			})
		}
	}
}

// TestStrikeTakesItsEventsTime: an action's strike takes its event's time,
// found in the month's partition without probing the older months (a
// year of them made each strike a dozen index probes), and in an older
// month's when the event is older.
func TestStrikeTakesItsEventsTime(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.OwnStore(t)
	if _, err := st.Pool().Exec(ctx, `SELECT moderator_ensure_partitions(now() - interval '3 months', 3)`); err != nil {
		t.Fatal(err)
	}
	// An event of this month and one of two months ago, each with an
	// action against alice, each in a transaction of its own; the first
	// also counts the scans of the partitions before this month's.
	record := func(ago string) (eventTime time.Time, olderScans int64) {
		t.Helper()
		tx, err := st.Pool().Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		var id int64
		err = tx.QueryRow(ctx, `INSERT INTO events (id, webhook_id, body_sha256, attempt, api_key, compressed, body_bytes, type,
				created_at, user_id, payload, own, ignored, received_at)
			SELECT nextval('event_ids'), 'w-' || $1::text, sha256(convert_to($1::text, 'UTF8')), 0, 'k', false, 2, 'message.new',
				now() - $1::text::interval - interval '1 minute', 'alice', '{}', false, false, now() - $1::text::interval
			RETURNING id, created_at`, ago).Scan(&id, &eventTime)
		if err != nil {
			t.Fatal(err)
		}
		// pg_stat_xact_user_tables also counts what the backend has not
		// reported yet (the migrations' scans, say): count the difference.
		scans := func() int64 {
			var n int64
			err := tx.QueryRow(ctx, `SELECT coalesce(sum(seq_scan + coalesce(idx_scan, 0)), 0) FROM pg_stat_xact_user_tables
				WHERE relname LIKE 'events\_2%' AND relname < 'events_' || to_char(now() AT TIME ZONE 'UTC', 'YYYY_MM')`).Scan(&n)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		before := scans()
		if _, err := tx.Exec(ctx, `INSERT INTO actions (event_id, position, rule_id, type, target_user_id, params, idempotency_key)
			VALUES ($1, 0, 'r', 'flag', 'alice', '{}', $2)`, id, fmt.Sprintf("%d-0", id)); err != nil {
			t.Fatal(err)
		}
		olderScans = scans() - before
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		return eventTime, olderScans
	}
	now, scans := record("0 days")
	if scans != 0 {
		t.Errorf("this month's event: %d scans of older months' partitions, want 0", scans)
	}
	old, _ := record("2 months")
	rows, err := st.Pool().Query(ctx, `SELECT at FROM strikes WHERE user_id = 'alice' ORDER BY at`)
	if err != nil {
		t.Fatal(err)
	}
	ats, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
	if err != nil {
		t.Fatal(err)
	}
	if want := []time.Time{old, now}; !cmp.Equal(ats, want) {
		t.Errorf("strike times %v, want the events' %v", ats, want)
	}
}
