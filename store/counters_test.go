package store_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"moderator/policy"
	"moderator/store"
	"moderator/store/storetest"
)

// counterRules reads every kind of history value; only flood acts.
const counterRules = `rules:
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
      counts.user_channels("1h") + counts.channel_young_messages("5m") + strikes.count("7d") +
      strikes.of_type("mute", "7d") + strikes.by_rule("flood", "7d") > 1000
    actions: [flag]
    examples:
      - history: {'strikes.count("7d")': 1001}
        event: {}
        expect: {match: true}
      - history: {'counts.user_channels("1h")': 1000}
        event: {message: {text: "x"}}
        expect: {match: false}
`

// judging is a rule set and what its judges saw, per webhook id.
type judging struct {
	rs   *policy.RuleSet
	mu   sync.Mutex
	seen map[string]policy.History
	// last is what each record's judge saw last, and final what the
	// judge of the record that recorded a webhook id saw (see confirm):
	// a record judged ahead of its insert may turn out a duplicate, and
	// its judge has then seen a history that was never recorded.
	last  map[*policy.Deferred]policy.History
	final map[string]policy.History
}

func newJudging(t testing.TB, src string) *judging {
	t.Helper()
	rs, err := policy.Load(fstest.MapFS{"r.yaml": {Data: []byte(src)}})
	if err != nil {
		t.Fatal(err)
	}
	return &judging{rs: rs, seen: map[string]policy.History{}, last: map[*policy.Deferred]policy.History{},
		final: map[string]policy.History{}}
}

// record is an EventRecord of body whose decision is made in the
// recording transaction.
func (j *judging) record(t testing.TB, webhookID string, body []byte) store.EventRecord {
	t.Helper()
	ev, err := policy.ParseEvent(body)
	if err != nil {
		t.Fatal(err)
	}
	judge := j.rs.Defer(ev)
	decide := judge.Decide
	judge.Decide = func(h, shadow policy.History) policy.Decision {
		j.note(webhookID, judge, h)
		return decide(h, shadow)
	}
	known := judge.DecideKnown
	judge.DecideKnown = func(h, shadow policy.History) (policy.Decision, bool) {
		d, ok := known(h, shadow)
		if ok { // a void decision saw nothing that counts
			j.note(webhookID, judge, h)
		}
		return d, ok
	}
	return store.EventRecord{WebhookID: webhookID, BodySHA256: sha256.Sum256(body), Attempt: 1, APIKey: "k",
		Payload: body, Event: ev, Judge: judge}
}

// note keeps h as what the judge of webhookID (judge) saw.
func (j *judging) note(webhookID string, judge *policy.Deferred, h policy.History) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.seen[webhookID] = h
	j.last[judge] = h
}

// confirm says that rec, of webhook id webhookID, recorded its event
// (was not a duplicate): saw then answers with what its judge saw.
func (j *judging) confirm(webhookID string, rec store.EventRecord) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.final[webhookID] = j.last[rec.Judge]
}

// saw is the value key that the judge of webhookID saw: of the record
// confirmed to have recorded it, or else of the last judged.
func (j *judging) saw(webhookID, key string) int {
	k, err := policy.ParseHistoryKey(key)
	if err != nil {
		panic(err)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	h, ok := j.final[webhookID]
	if !ok {
		h, ok = j.seen[webhookID]
	}
	if !ok {
		return -1
	}
	return h[k]
}

// message is a message.new body.
type message struct {
	id, user, channel, text string
	at                      time.Time
	userCreated             time.Time // zero: a year before at
}

func (m message) body() []byte {
	created := m.userCreated
	if created.IsZero() {
		created = m.at.AddDate(-1, 0, 0)
	}
	b, _ := json.Marshal(map[string]any{
		"type": "message.new", "cid": m.channel, "created_at": m.at.Format(time.RFC3339Nano),
		"message": map[string]any{"id": m.id, "text": m.text, "created_at": m.at.Format(time.RFC3339Nano)},
		"user":    map[string]any{"id": m.user, "created_at": created.Format(time.RFC3339Nano)},
	})
	return b
}

var t0 = time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)

func TestFloodTripsAtThreshold(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.Store(t)
	j := newJudging(t, counterRules)
	user := t.Name()
	for n := 1; n <= 7; n++ {
		id := fmt.Sprintf("%s-%d", user, n)
		m := message{id: id, user: user, channel: "messaging:" + user, text: fmt.Sprintf("message number %d", n), at: t0.Add(time.Duration(n) * time.Second)}
		res, err := st.RecordEvent(ctx, j.record(t, id, m.body()))
		if err != nil {
			t.Fatal(err)
		}
		if got := j.saw(id, `counts.user_messages("1m")`); got != n {
			t.Errorf("message %d: counts.user_messages(\"1m\") = %d, want %d", n, got, n)
		}
		flooded := res.Decision != nil && slices.ContainsFunc(res.Decision.Matches, func(m policy.Match) bool { return m.RuleID == "flood" })
		if want := n > 4; flooded != want {
			t.Errorf("message %d: flood matched %v, want %v", n, flooded, want)
		}
		if n == 5 {
			var evidence string
			if err := st.Pool().QueryRow(ctx, `SELECT matches->0->'evidence'->>'counts.user_messages("1m")' FROM decisions WHERE event_id = $1`,
				res.EventID).Scan(&evidence); err != nil {
				t.Fatal(err)
			}
			if evidence != "5" {
				t.Errorf("recorded evidence: got %s, want 5", evidence)
			}
		}
	}
}

func TestCountsIgnoreRetriesAndReplays(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.Store(t)
	j := newJudging(t, counterRules)
	user := t.Name()
	var bodies [][]byte
	for n := 1; n <= 3; n++ {
		m := message{id: fmt.Sprintf("%s-%d", user, n), user: user, channel: "messaging:" + user, text: "same text", at: t0.Add(time.Duration(n) * time.Second)}
		bodies = append(bodies, m.body())
		if _, err := st.RecordEvent(ctx, j.record(t, fmt.Sprintf("%s-w%d", user, n), m.body())); err != nil {
			t.Fatal(err)
		}
	}
	// A retry (same webhook id), a replay (same body, new id), and both in
	// one batch with a new message.
	retry, err := st.RecordEvent(ctx, j.record(t, user+"-w2", bodies[1]))
	if err != nil || retry.Duplicate != store.DuplicateWebhookID || retry.Decision != nil {
		t.Fatalf("retry: got %+v, %v, want a duplicate by webhook id without a decision", retry, err)
	}
	if _, err := st.RecordEvent(ctx, j.record(t, user+"-replay", bodies[2])); err != nil {
		t.Fatal(err)
	}
	m4 := message{id: user + "-4", user: user, channel: "messaging:" + user + "-b", text: "same  TEXT!", at: t0.Add(4 * time.Second)}
	if _, err := st.RecordEvents(ctx, []store.EventRecord{
		j.record(t, user+"-w1", bodies[0]), j.record(t, user+"-replay2", bodies[1]), j.record(t, user+"-w4", m4.body()),
	}, nil); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]int{
		`counts.user_messages("1m")`:         4,
		`counts.user_duplicates("10m")`:      4,
		`counts.user_channels("1h")`:         2,
		`counts.user_channel_messages("1m")`: 1,
	} {
		if got := j.saw(user+"-w4", key); got != want {
			t.Errorf("fourth message: %s = %d, want %d", key, got, want)
		}
	}
	var marks int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM counter_marks WHERE user_id = $1`, user).Scan(&marks); err != nil {
		t.Fatal(err)
	}
	if marks != 4 {
		t.Errorf("counter marks: got %d, want 4", marks)
	}
}

func TestCountWindowEdges(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.Store(t)
	j := newJudging(t, counterRules)
	tests := []struct {
		name  string
		after time.Duration // the second message, after the first
		want  int
	}{
		{"just inside", time.Minute - time.Millisecond, 2},
		{"on the edge", time.Minute, 1},
		{"just outside", time.Minute + time.Millisecond, 1},
		{"far earlier, delivered later", -time.Hour, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			user := t.Name()
			first := message{id: user + "-1", user: user, channel: "messaging:e", text: "one", at: t0}
			second := message{id: user + "-2", user: user, channel: "messaging:e", text: "two", at: t0.Add(tt.after)}
			for _, m := range []message{first, second} {
				if _, err := st.RecordEvent(ctx, j.record(t, m.id, m.body())); err != nil {
					t.Fatal(err)
				}
			}
			if got := j.saw(second.id, `counts.user_messages("1m")`); got != tt.want {
				t.Errorf(`counts.user_messages("1m") = %d, want %d`, got, tt.want)
			}
		})
	}
}

func TestEveryCounter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.Store(t)
	j := newJudging(t, counterRules)
	user, raider := t.Name(), t.Name()+"-raider"
	room := "messaging:" + t.Name()
	young := t0.Add(-2 * time.Hour)
	msgs := []message{
		{id: "1", user: user, channel: room, text: "see https://a.example and https://b.example", at: t0},
		{id: "2", user: user, channel: room + "-2", text: "Buy cheap followers now", at: t0.Add(time.Minute)},
		{id: "3", user: raider, channel: room, text: "raid", at: t0.Add(2 * time.Minute), userCreated: young},
		{id: "4", user: raider + "2", channel: room, text: "raid", at: t0.Add(3 * time.Minute), userCreated: young},
		{id: "5", user: user, channel: room, text: "buy ch3ap FOLLOWERS now!!!", at: t0.Add(4 * time.Minute)},
	}
	for _, m := range msgs {
		if _, err := st.RecordEvent(ctx, j.record(t, user+m.id, m.body())); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]int{}
	want := map[string]int{
		`counts.user_messages("1m")`:          1, // 2 is 3 minutes before 5
		`counts.user_channel_messages("1m")`:  1,
		`counts.user_links("1h")`:             2,
		`counts.user_duplicates("10m")`:       2,
		`counts.user_channels("1h")`:          2,
		`counts.channel_young_messages("5m")`: 2,
		`strikes.count("7d")`:                 0,
	}
	for k := range want {
		got[k] = j.saw(user+"5", k)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("history of the fifth message (-want +got):\n%s", diff)
	}
	if got := j.saw(user+"4", `counts.channel_young_messages("5m")`); got != 2 {
		t.Errorf("second raider: counts.channel_young_messages = %d, want 2", got)
	}
}

// actionHook records, for each new event with a decision, its actions as
// the actions package would (pending), then the outcomes in outcome (by
// rule id), and returns the action ids by event.
type actionHook struct {
	mu      sync.Mutex
	outcome map[string]string
	ids     map[int64][]int64
}

func (a *actionHook) hook(ctx context.Context, tx pgx.Tx, evs []store.NewEvent) error {
	for _, e := range evs {
		d := e.Record.Decision
		if d == nil {
			continue
		}
		var rows []store.ActionRow
		for i, act := range d.Actions {
			rows = append(rows, store.ActionRow{EventID: e.EventID, Position: i, RuleID: act.RuleID, Type: string(act.Type),
				TargetUserID: e.Record.Event.SubjectUserID(), MessageID: e.Record.Event.MessageIDOrEmpty(), Params: []byte(`{}`),
				Key: fmt.Sprintf("e%d-a%d", e.EventID, i)})
		}
		ids, err := store.InsertActions(ctx, tx, rows)
		if err != nil {
			return err
		}
		var outs []store.OutcomeRow
		for i, id := range ids {
			if o := a.outcome[rows[i].RuleID]; o != "" {
				outs = append(outs, store.OutcomeRow{ActionID: id, Outcome: o})
			}
		}
		if err := store.RecordOutcomesTx(ctx, tx, outs); err != nil {
			return err
		}
		a.mu.Lock()
		a.ids[e.EventID] = ids
		a.mu.Unlock()
	}
	return nil
}

// swearingRule warns for every "darn": the strikes the strike rules read.
const swearingRule = `
  - id: swearing
    description: swear words
    mode: enforce
    when: message.text contains "darn"
    actions: [{warn: {text: "language"}}]
    examples:
      - event: {message: {text: "darn"}}
        expect: {match: true}
      - event: {}
        expect: {match: false}`

const strikeRules = `rules:` + swearingRule + `
  - id: strikes
    description: reads strikes
    mode: shadow
    when: strikes.count("7d") + strikes.of_type("warn", "7d") + strikes.by_rule("swearing", "1d") > 1000
    actions: [flag]
    examples:
      - history: {'strikes.count("7d")': 1001}
        event: {}
        expect: {match: true}
      - event: {message: {text: "x"}}
        expect: {match: false}
`

func TestStrikes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.Store(t)
	j := newJudging(t, strikeRules)
	tests := []struct {
		name    string
		outcome string // of the earlier warning; "" pending
		reverse func(t *testing.T, actionID int64)
		ago     time.Duration
		want    [3]int // strikes.count("7d"), of_type("warn", "7d"), by_rule("swearing", "1d")
	}{
		{name: "pending", want: [3]int{1, 1, 1}, ago: time.Hour},
		{name: "applied", outcome: store.OutcomeApplied, want: [3]int{1, 1, 1}, ago: time.Hour},
		{name: "dry run", outcome: store.OutcomeDryRun, want: [3]int{1, 1, 1}, ago: time.Hour},
		{name: "two days ago", outcome: store.OutcomeApplied, want: [3]int{1, 1, 0}, ago: 48 * time.Hour},
		{name: "eight days ago", outcome: store.OutcomeApplied, want: [3]int{0, 0, 0}, ago: 8 * 24 * time.Hour},
		{name: "failed", outcome: store.OutcomeFailed, ago: time.Hour},
		{name: "held", outcome: store.OutcomeHeld, ago: time.Hour},
		{name: "superseded", outcome: store.OutcomeSuperseded, ago: time.Hour},
		{name: "suppressed", outcome: "suppressed", ago: time.Hour},
		{name: "overturned", outcome: store.OutcomeApplied, ago: time.Hour, reverse: func(t *testing.T, id int64) {
			overturn(t, st, id)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			user := t.Name()
			hooks := &actionHook{outcome: map[string]string{"swearing": tt.outcome}, ids: map[int64][]int64{}}
			first := message{id: user + "-1", user: user, channel: "messaging:s", text: "darn", at: t0.Add(-tt.ago)}
			res, err := st.RecordEvents(ctx, []store.EventRecord{j.record(t, first.id, first.body())}, hooks.hook)
			if err != nil {
				t.Fatal(err)
			}
			if tt.reverse != nil {
				tt.reverse(t, hooks.ids[res[0].EventID][0])
			}
			second := message{id: user + "-2", user: user, channel: "messaging:s", text: "hello", at: t0}
			if _, err := st.RecordEvents(ctx, []store.EventRecord{j.record(t, second.id, second.body())}, hooks.hook); err != nil {
				t.Fatal(err)
			}
			got := [3]int{j.saw(second.id, `strikes.count("7d")`), j.saw(second.id, `strikes.of_type("warn", "7d")`),
				j.saw(second.id, `strikes.by_rule("swearing", "1d")`)}
			if got != tt.want {
				t.Errorf("strikes: got %v, want %v", got, tt.want)
			}
		})
	}
}

// gatedStrikeRules read a rule's strikes only for messages that say
// "again" (the condition's first operand, its gate: see policy.gateOf).
const gatedStrikeRules = `rules:` + swearingRule + `
  - id: again
    description: reads strikes for repeat offenders
    mode: shadow
    when: message.text contains "again" && strikes.by_rule("swearing", "1d") > 1000
    actions: [flag]
    examples:
      - history: {'strikes.by_rule("swearing", "1d")': 1001}
        event: {message: {text: "again"}}
        expect: {match: true}
      - event: {message: {text: "again"}}
        expect: {match: false}
`

// TestStrikesReadOnlyWhereGatesHold: in one batch, the records whose
// rules can read a strike value get it, and those whose gate is false
// read no strike row (their value is not computed), whatever their order
// in the batch.
func TestStrikesReadOnlyWhereGatesHold(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.Store(t)
	j := newJudging(t, gatedStrikeRules)
	hooks := &actionHook{outcome: map[string]string{}, ids: map[int64][]int64{}}
	ann, bob := t.Name()+"-ann", t.Name()+"-bob"
	var earlier []store.EventRecord
	for _, u := range []string{ann, bob} {
		m := message{id: u + "-0", user: u, channel: "messaging:s", text: "darn", at: t0.Add(-time.Hour)}
		earlier = append(earlier, j.record(t, m.id, m.body()))
	}
	if _, err := st.RecordEvents(ctx, earlier, hooks.hook); err != nil {
		t.Fatal(err)
	}
	batch := []message{
		{id: bob + "-1", user: bob, channel: "messaging:s", text: "hello", at: t0},
		{id: ann + "-1", user: ann, channel: "messaging:s", text: "again", at: t0.Add(time.Second)},
		{id: bob + "-2", user: bob, channel: "messaging:s", text: "hello again", at: t0.Add(2 * time.Second)},
		{id: ann + "-2", user: ann, channel: "messaging:s", text: "bye", at: t0.Add(3 * time.Second)},
	}
	var recs []store.EventRecord
	for _, m := range batch {
		recs = append(recs, j.record(t, m.id, m.body()))
	}
	if _, err := st.RecordEvents(ctx, recs, hooks.hook); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{bob + "-1": 0, ann + "-1": 1, bob + "-2": 1, ann + "-2": 0}
	for id, w := range want {
		if got := j.saw(id, `strikes.by_rule("swearing", "1d")`); got != w {
			t.Errorf("%s: strikes.by_rule(\"swearing\", \"1d\") = %d, want %d", id, got, w)
		}
	}
}

// overturn records a staff overturn of an action, as the overturn
// pipeline does: the overturn, the reversal action (which never counts
// as a strike itself) and the action_reversals row.
func overturn(t *testing.T, st *store.Store, actionID int64) {
	t.Helper()
	ctx := context.Background()
	err := pgx.BeginFunc(ctx, st.Pool(), func(tx pgx.Tx) error {
		var overturnID, eventID int64
		var user string
		if err := tx.QueryRow(ctx, `SELECT event_id, target_user_id FROM actions WHERE id = $1`, actionID).Scan(&eventID, &user); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `INSERT INTO overturns (action_id, reviewer, reason) VALUES ($1, 'staff', 'a mistake') RETURNING id`,
			actionID).Scan(&overturnID); err != nil {
			return err
		}
		var reversalID int64
		if err := tx.QueryRow(ctx, `INSERT INTO actions (event_id, position, rule_id, type, target_user_id, params, idempotency_key,
				reverses_action_id, overturn_id) VALUES ($1, 100, 'swearing', 'warn', $2, '{}', $3, $4, $5) RETURNING id`,
			eventID, user, fmt.Sprintf("reverse-%d", actionID), actionID, overturnID).Scan(&reversalID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO action_reversals (overturn_id, action_id, disposition, reversal_action_id)
			VALUES ($1, $2, 'reversed', $3)`, overturnID, actionID, reversalID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestStrikesWithinOneBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.Store(t)
	j := newJudging(t, strikeRules)
	user := t.Name()
	hooks := &actionHook{ids: map[int64][]int64{}}
	first := message{id: user + "-1", user: user, channel: "messaging:s", text: "darn", at: t0}
	second := message{id: user + "-2", user: user, channel: "messaging:s", text: "darn again", at: t0.Add(time.Second)}
	other := message{id: user + "-3", user: user + "-other", channel: "messaging:s", text: "hi", at: t0.Add(time.Second)}
	if _, err := st.RecordEvents(ctx, []store.EventRecord{j.record(t, first.id, first.body()), j.record(t, second.id, second.body()),
		j.record(t, other.id, other.body())}, hooks.hook); err != nil {
		t.Fatal(err)
	}
	if got := j.saw(second.id, `strikes.of_type("warn", "7d")`); got != 1 {
		t.Errorf("second message of the batch: strikes.of_type(\"warn\", \"7d\") = %d, want 1", got)
	}
	if got := j.saw(other.id, `strikes.count("7d")`); got != 0 {
		t.Errorf("another user: strikes.count(\"7d\") = %d, want 0", got)
	}
}

// edited is a message.updated body: m's text changed to text at at.
func edited(m message, text string, at time.Time) []byte {
	b, _ := json.Marshal(map[string]any{
		"type": "message.updated", "cid": m.channel, "created_at": at.Format(time.RFC3339Nano),
		"message": map[string]any{"id": m.id, "text": text, "created_at": m.at.Format(time.RFC3339Nano),
			"updated_at": at.Format(time.RFC3339Nano), "user": map[string]any{"id": m.user}},
		"message_update": map[string]any{"old_text": m.text},
		"user":           map[string]any{"id": m.user, "created_at": m.at.AddDate(-1, 0, 0).Format(time.RFC3339Nano)},
	})
	return b
}

// TestStrikesCountMessages: a strike is a message acted on, not an event:
// a message and two edits, each acted on, are one strike for the user's
// next message, and an edit is not judged against its own message's
// earlier strikes; the same in separate batches, in one batch, and in two
// (the second batch's edit strikes a message the first committed as
// struck, which the next message must not count again).
func TestStrikesCountMessages(t *testing.T) {
	t.Parallel()
	for _, batches := range [][]int{{1, 1, 1, 1}, {4}, {2, 2}} {
		t.Run(fmt.Sprintf("batches=%v", batches), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			st := storetest.Store(t)
			j := newJudging(t, strikeRules)
			user := t.Name()
			hooks := &actionHook{ids: map[int64][]int64{}}
			m := message{id: user + "-m", user: user, channel: "messaging:s", text: "darn", at: t0}
			next := message{id: user + "-n", user: user, channel: "messaging:s", text: "hello", at: t0.Add(3 * time.Minute)}
			recs := []store.EventRecord{
				j.record(t, user+"new", m.body()),
				j.record(t, user+"edit-1", edited(m, "darn it", t0.Add(time.Minute))),
				j.record(t, user+"edit-2", edited(m, "darn it all", t0.Add(2*time.Minute))),
				j.record(t, user+"next", next.body()),
			}
			for _, n := range batches {
				if _, err := st.RecordEvents(ctx, recs[:n], hooks.hook); err != nil {
					t.Fatal(err)
				}
				recs = recs[n:]
			}
			var warns int
			if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM actions WHERE target_user_id = $1 AND type = 'warn'`, user).Scan(&warns); err != nil {
				t.Fatal(err)
			}
			if warns != 3 {
				t.Fatalf("got %d warn actions, want 3 (the message and each edit matched)", warns)
			}
			for _, id := range []string{"new", "edit-1", "edit-2"} {
				if got := j.saw(user+id, `strikes.count("7d")`); got != 0 {
					t.Errorf("%s: strikes.count = %d, want 0 (its own message's strikes are not prior offences)", id, got)
				}
			}
			got := [3]int{j.saw(user+"next", `strikes.count("7d")`), j.saw(user+"next", `strikes.of_type("warn", "7d")`),
				j.saw(user+"next", `strikes.by_rule("swearing", "1d")`)}
			if got != [3]int{1, 1, 1} {
				t.Errorf("the next message: strikes %v, want [1 1 1] (one message struck)", got)
			}
		})
	}
}

// ladderRules read one rule's strikes and one action type's, as a
// ladder does, and no count of every strike.
const ladderRules = `rules:` + swearingRule + `
  - id: ladder
    description: reads one rule's strikes and one type's
    mode: shadow
    when: strikes.of_type("warn", "7d") + strikes.by_rule("swearing", "1d") > 1000
    actions: [flag]
    examples:
      - history: {'strikes.of_type("warn", "7d")': 1001}
        event: {}
        expect: {match: true}
      - event: {message: {text: "x"}}
        expect: {match: false}
`

// TestStrikesOfOneKindAreNotCrowdedOut: a user with more strikes of one
// rule than a value counts (a spammer's flood of deletes, newer than
// anything else) still has the rest counted: each rule's and each action
// type's strikes are read on their own, by their own index range scan,
// so a ladder on another rule climbs as it should and the read does not
// wade through the flood. Reading the user's most recent HistoryCap
// strikes of every kind and filtering them counted none, after reading
// HistoryCap rows.
func TestStrikesOfOneKindAreNotCrowdedOut(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// A database of its own: pg_stat_xact_user_tables also counts what a
	// backend has not reported yet, and no other test reads strikes here.
	st := storetest.OwnStore(t)
	j := newJudging(t, ladderRules)
	user := t.Name()
	next := message{id: user + "-next", user: user, channel: "messaging:s", text: "hello", at: t0}
	// Two warnings for swearing three hours before, then a flood of
	// deletes by another rule, one a second over the last half hour.
	if _, err := st.Pool().Exec(ctx, `
		INSERT INTO strikes (event_id, user_id, strike_key, rule_id, type, at, shadow)
		SELECT 0, $1, 'm:swear-' || i, 'swearing', 'warn', $2::timestamptz - interval '3 hours' + i * interval '1 minute', false
		FROM generate_series(1, 2) i
		UNION ALL
		SELECT 0, $1, 'm:spam-' || i, 'spam', 'delete', $2::timestamptz - interval '30 minutes' + i * interval '1 second', false
		FROM generate_series(1, $3::int) i`, user, t0, store.HistoryCap+200); err != nil {
		t.Fatal(err)
	}
	var fetched int64 // strike rows the transaction read through an index
	_, err := st.RecordEvents(ctx, []store.EventRecord{j.record(t, next.id, next.body())}, func(ctx context.Context, tx pgx.Tx, _ []store.NewEvent) error {
		return tx.QueryRow(ctx, `SELECT idx_tup_fetch FROM pg_stat_xact_user_tables WHERE relname = 'strikes'`).Scan(&fetched)
	})
	if err != nil {
		t.Fatal(err)
	}
	got := [2]int{j.saw(next.id, `strikes.of_type("warn", "7d")`), j.saw(next.id, `strikes.by_rule("swearing", "1d")`)}
	if want := [2]int{2, 2}; got != want {
		t.Errorf("strikes.of_type(warn), by_rule(swearing) = %v, want %v (the warnings, not crowded out by the deletes)", got, want)
	}
	if fetched > 4 {
		t.Errorf("%d strike rows read, want at most 4 (the warnings, once for each value)", fetched)
	}
}

// TestCountsAcrossReplicas runs two stores (two pools, as two replicas
// would have) with a batcher each on one database, and delivers one
// user's burst to both at once, every message twice (Stream's retries
// land on either replica). Each message must see a different count, and
// the counts must be exactly 1..n: no message counted twice or missed.
func TestCountsAcrossReplicas(t *testing.T) {
	t.Parallel()
	j := newJudging(t, counterRules)
	const n = 60
	user := t.Name()
	ids, bodies := make([]string, n), make([][]byte, n)
	for i := range n {
		m := message{id: fmt.Sprintf("%s-%d", user, i), user: user, channel: fmt.Sprintf("messaging:%s-%d", user, i%3),
			text: "flood", at: t0.Add(time.Duration(i) * 100 * time.Millisecond)}
		ids[i], bodies[i] = m.id, m.body()
	}
	recordOnTwoReplicas(t, j, ids, bodies)
	wantOneToN(t, j, ids, `counts.user_duplicates("10m")`)
}

// recordOnTwoReplicas starts two batchers, each on a store of its own on
// the package database, as two replicas would run, and records every
// body through both at once (Stream's retries land on either replica),
// the i-th as webhook ids[i]; it returns once all are recorded.
func recordOnTwoReplicas(t *testing.T, j *judging, ids []string, bodies [][]byte) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	var batchers []*store.Batcher
	for range 2 {
		st, err := store.Open(ctx, storetest.Bounded(storetest.URL(t)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(st.Close)
		b := store.NewBatcher(st, store.BatcherConfig{})
		wg.Go(func() { b.Run(ctx) })
		batchers = append(batchers, b)
	}
	var sends sync.WaitGroup
	errs := make(chan error, 2*len(ids))
	for i := range ids {
		for copy := range 2 {
			sends.Go(func() {
				rec := j.record(t, ids[i], bodies[i])
				res, err := batchers[(i+copy)%2].RecordEvent(ctx, rec)
				if err == nil && res.Duplicate == "" {
					j.confirm(ids[i], rec)
				}
				errs <- err
			})
		}
	}
	sends.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// wantOneToN checks that the messages ids saw the history value key as
// exactly 1, 2, …, len(ids), in some order: each counted once, none
// twice, none missed.
func wantOneToN(t *testing.T, j *judging, ids []string, key string) {
	t.Helper()
	var counts []int
	for _, id := range ids {
		counts = append(counts, j.saw(id, key))
	}
	slices.Sort(counts)
	want := make([]int, len(ids))
	for i := range want {
		want[i] = i + 1
	}
	if diff := cmp.Diff(want, counts); diff != "" {
		t.Errorf("%s seen by the messages, sorted (-want +got):\n%s", key, diff)
	}
}

func TestExpireCounterMarks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := storetest.NewDatabase(t)
	st, err := store.Open(ctx, storetest.Bounded(url))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	j := newJudging(t, counterRules)
	for i := range 3 {
		m := message{id: fmt.Sprint(i), user: "u", channel: "messaging:x", text: "hi", at: t0}
		if _, err := st.RecordEvent(ctx, j.record(t, m.id, m.body())); err != nil {
			t.Fatal(err)
		}
	}
	// Nothing is older than a day.
	if n, err := st.ExpireCounterMarks(ctx, 24*time.Hour, 100); err != nil || n != 0 {
		t.Fatalf("ExpireCounterMarks(1d): got %d, %v, want 0", n, err)
	}
	// Everything recorded before now is older than 0, two at a time.
	if n, err := st.ExpireCounterMarks(ctx, 0, 2); err != nil || n != 2 {
		t.Fatalf("ExpireCounterMarks(0, 2): got %d, %v, want 2", n, err)
	}
	if n, err := st.ExpireCounterMarks(ctx, 0, 2); err != nil || n != 1 {
		t.Fatalf("ExpireCounterMarks(0, 2) again: got %d, %v, want 1", n, err)
	}
}

// TestCountsStopAtTheCap: a flood far past any threshold costs a bounded
// amount to count: values stop at store.HistoryCap. It also judges one
// big batch in order: each message counts those before it.
func TestCountsStopAtTheCap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.Store(t)
	j := newJudging(t, counterRules)
	user := t.Name()
	var recs []store.EventRecord
	n := store.HistoryCap + 5
	for i := range n {
		m := message{id: fmt.Sprintf("%s-%d", user, i), user: user, channel: "messaging:cap", text: "spam",
			at: t0.Add(time.Duration(i) * time.Millisecond)}
		recs = append(recs, j.record(t, m.id, m.body()))
	}
	if _, err := st.RecordEvents(ctx, recs, nil); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 9, store.HistoryCap - 1, n - 1} {
		want := min(i+1, store.HistoryCap)
		if got := j.saw(fmt.Sprintf("%s-%d", user, i), `counts.user_messages("1m")`); got != want {
			t.Errorf("message %d: counts.user_messages(\"1m\") = %d, want %d", i+1, got, want)
		}
	}
}

// TestHistoryReadFindsEventsByIndex records judged batches on one
// connection while the events table is nearly empty (the recording
// transaction runs generic plans, made at its first batch; and Postgres
// would keep one after five custom plans anyway), then fills the table and
// checks that later batches do not read it sequentially: the read must find
// the batch's events by their body hash whatever the table looked like
// when the plan was made, or every batch costs a scan of the whole table.
// Strikes and the versions of the counter marks' copies, too, are read by
// index.
func TestHistoryReadFindsEventsByIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := store.Open(ctx, storetest.NewDatabase(t)+"&pool_max_conns=2")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	j := newJudging(t, counterRules)
	judged := func(batch int) []store.EventRecord {
		var recs []store.EventRecord
		for i := range 10 {
			m := message{id: fmt.Sprintf("b%d-%d", batch, i), user: fmt.Sprintf("u%d", i), channel: "messaging:c",
				text: "hello there", at: t0.Add(time.Duration(batch) * time.Second)}
			recs = append(recs, j.record(t, m.id, m.body()))
		}
		return recs
	}
	for batch := range 8 {
		if _, err := st.RecordEvents(ctx, judged(batch), nil); err != nil {
			t.Fatal(err)
		}
	}
	var filler []store.EventRecord
	for i := range 2000 {
		body := message{id: fmt.Sprintf("filler-%d", i), user: fmt.Sprintf("f%d", i), channel: "messaging:filler",
			text: "filler", at: t0}.body()
		ev, err := policy.ParseEvent(body)
		if err != nil {
			t.Fatal(err)
		}
		filler = append(filler, store.EventRecord{WebhookID: fmt.Sprintf("filler-%d", i), BodySHA256: sha256.Sum256(body),
			Attempt: 1, APIKey: "k", Payload: body, Event: ev})
	}
	if _, err := st.RecordEvents(ctx, filler, nil); err != nil {
		t.Fatal(err)
	}
	// Strikes of other users, as a live table holds them (an empty one is
	// best scanned whole).
	if _, err := st.Pool().Exec(ctx, `INSERT INTO strikes (event_id, user_id, strike_key, rule_id, type, at, shadow)
		SELECT i, 'f' || (i % 2000), 'e:' || i, 'flood', 'mute', $1::timestamptz - i * interval '1 second', i % 3 = 0
		FROM generate_series(1, 20000) AS i`, t0); err != nil {
		t.Fatal(err)
	}
	// The versions of other users' and channels' marks.
	if _, err := st.Pool().Exec(ctx, `INSERT INTO counter_versions (user_id, version)
		SELECT 'f' || i, 1 FROM generate_series(1, 20000) AS i`); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pool().Exec(ctx, `INSERT INTO counter_channel_versions (channel_cid, version)
		SELECT 'messaging:f' || i, 1 FROM generate_series(1, 20000) AS i`); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pool().Exec(ctx, `INSERT INTO strike_versions (user_id, version, strikes)
		SELECT 'f' || i, 1, 1 FROM generate_series(1, 20000) AS i ON CONFLICT DO NOTHING`); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pool().Exec(ctx, `ANALYZE strikes, counter_versions, counter_channel_versions, strike_versions`); err != nil {
		t.Fatal(err)
	}
	reportPendingStats(t, st)
	for batch := 8; batch < 12; batch++ {
		// The view counts this backend's reads not yet reported, this
		// transaction's included.
		var read, strikeScans, versionRows int64
		_, err := st.RecordEvents(ctx, judged(batch), func(ctx context.Context, tx pgx.Tx, _ []store.NewEvent) error {
			return tx.QueryRow(ctx, `SELECT (SELECT seq_tup_read FROM pg_stat_xact_user_tables WHERE relname = 'events'),
				(SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relname = 'strikes'),
				(SELECT sum(seq_tup_read) FROM pg_stat_xact_user_tables
					WHERE relname IN ('counter_versions', 'counter_channel_versions', 'strike_versions'))`).Scan(&read, &strikeScans, &versionRows)
		})
		if err != nil {
			t.Fatal(err)
		}
		if read != 0 {
			t.Errorf("batch %d: got %d events rows read sequentially, want 0", batch, read)
		}
		if strikeScans != 0 {
			t.Errorf("batch %d: strikes scanned sequentially %d times, want 0 (an index range scan per user)", batch, strikeScans)
		}
		if versionRows != 0 {
			t.Errorf("batch %d: %d rows of the counter and strike versions read sequentially, want 0 (a key lookup each)", batch, versionRows)
		}
	}
}

// reportPendingStats makes every backend of st's pool report its pending
// table statistics. Since PostgreSQL 15, pg_stat_xact_user_tables counts
// what the backend has not reported yet besides the transaction's own
// reads, so the migrations' and the setup's scans would count against the
// batch measured next, on whichever connection the pool hands it (seen:
// 4 sequential scans of strikes in most runs, none in others). A backend
// reports when it goes idle at least a second after its last report.
func reportPendingStats(t *testing.T, st *store.Store) {
	t.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	conns := st.Pool().Stat().MaxConns()
	errs := make(chan error, conns)
	for range conns {
		c, err := st.Pool().Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			defer c.Release()
			_, err := c.Exec(ctx, `SELECT pg_sleep(1.1)`)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}
