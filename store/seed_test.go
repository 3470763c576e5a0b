package store_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"moderator/policy"
	"moderator/store"
	"moderator/store/storetest"
)

// A seeded history, written row by row with explicit times so that the
// tests know the exact order, and kept as a model the tests filter in Go
// to get the answer a search must give.

type seedAction struct {
	id          int64
	eventID     int64
	decisionID  int64
	rule        string
	typ         string
	user        string
	message     string
	channel     string
	at          time.Time
	outcome     string // "" pending
	overturned  bool
	reversalID  int64 // the unban/unflag… action
	overturnID  int64
	attempts    int
	isReversal  bool
	eventType   string
	reversesID  int64
	reversalOut string
	overturnAt  time.Time
}

type seedEvent struct {
	id         int64
	at         time.Time
	typ        string
	user       string
	channel    string
	message    string
	parent     string
	text       string
	decisionID int64
	decidedAt  time.Time
	rules      []string // matched
	enforced   []string
	shadowActs []string // the types its shadow matches would have asked for
	errored    []string // rules that failed on it
	actions    []*seedAction
}

type seed struct {
	st      *store.Store
	base    time.Time
	serial  int // makes each event's webhook id and body unique
	events  []*seedEvent
	actions []*seedAction // every action, reversal actions too
}

// newSeedStore returns a store on a migrated database of the test's own,
// so that counts and full-list comparisons see only what the test wrote.
func newSeedStore(t testing.TB) *store.Store {
	t.Helper()
	return storetest.OwnStore(t)
}

var (
	seedUsers    = []string{"alice", "bob", "carol"}
	seedChannels = []string{"messaging:general", "messaging:random"}
	seedRules    = []string{"links", "profanity", "caps"} // caps is shadow
	seedOutcomes = []string{store.OutcomeApplied, store.OutcomeFailed, store.OutcomeDryRun, "", store.OutcomeHeld,
		store.OutcomeSuperseded, store.OutcomeSuppressed, store.OutcomeApplied}
	seedTypes = []string{"ban", "flag", "mute", "delete", "warn"}
)

// seedHistory writes n events a minute apart from base: every user and
// channel in turn, a decision on two events of three, actions of every type
// and outcome, some of them overturned (with an unban/unflag… reversal that
// itself has an outcome), and replies in a thread.
func seedHistory(t *testing.T, st *store.Store, n int) *seed {
	t.Helper()
	s := &seed{st: st, base: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)}
	for i := range n {
		s.addEvent(t, i)
	}
	return s
}

func (s *seed) addEvent(t *testing.T, i int) *seedEvent {
	t.Helper()
	ctx := context.Background()
	ev := &seedEvent{
		at:      s.base.Add(time.Duration(i) * time.Minute),
		typ:     "message.new",
		user:    seedUsers[i%len(seedUsers)],
		channel: seedChannels[(i/3)%len(seedChannels)],
		message: fmt.Sprintf("m%03d", i),
		text:    fmt.Sprintf("message number %d", i),
	}
	switch {
	case i%7 == 6:
		ev.typ = "message.updated"
	case i%11 == 10:
		ev.typ, ev.message, ev.text = "user.banned", "", ""
	case i%4 == 3 && i > 3:
		// A reply in the thread of m000 or m001 (both in general).
		ev.parent, ev.channel = fmt.Sprintf("m%03d", (i/4)%2), seedChannels[0]
	}
	payload := map[string]any{"type": ev.typ, "cid": ev.channel, "user": map[string]any{"id": ev.user}}
	if ev.message != "" {
		msg := map[string]any{"id": ev.message, "text": ev.text, "user": map[string]any{"id": ev.user}}
		if ev.parent != "" {
			msg["parent_id"] = ev.parent
		}
		payload["message"] = msg
	}
	body, _ := json.Marshal(payload)
	s.serial++
	key := fmt.Sprintf("wh-%d-%d-%d", i, s.base.UnixMicro(), s.serial)
	sum := sha256.Sum256([]byte(key))
	err := s.st.Pool().QueryRow(ctx, `INSERT INTO events (webhook_id, body_sha256, attempt, api_key, compressed, body_bytes,
		received_at, type, created_at, user_id, actor_id, channel_cid, message_id, own, ignored, payload, rule_set_version)
		VALUES ($1, $2, 1, 'k', false, $3, $4, $5, $4, $6, $6, $7, $8, false, false, $9, 'v1') RETURNING id`,
		key, sum[:], len(body), ev.at, ev.typ, ev.user, ev.channel, nullable(ev.message), body).
		Scan(&ev.id)
	if err != nil {
		t.Fatal(err)
	}
	s.events = append(s.events, ev)
	if i%3 == 2 {
		return ev // no rule matched
	}
	// One or two matched rules; caps is shadow.
	ev.rules = []string{seedRules[i%len(seedRules)]}
	if i%4 == 0 {
		ev.rules = append(ev.rules, "caps")
	}
	var matches []policy.Match
	var acts []policy.Action
	for _, r := range ev.rules {
		mode := policy.ModeEnforce
		if r == "caps" {
			mode = policy.ModeShadow
		}
		a := policy.Action{Type: policy.ActionType(seedTypes[i%len(seedTypes)]), RuleID: r, Reason: "because " + r}
		matches = append(matches, policy.Match{RuleID: r, Mode: mode, Evidence: map[string]any{"text.words": []string{"w" + r}},
			Actions: []policy.Action{a}, Reason: "because " + r, When: "when-" + r, Source: "rules/" + r + ".yaml:3"})
		if mode == policy.ModeEnforce {
			ev.enforced = append(ev.enforced, r)
			acts = append(acts, a)
		} else {
			ev.shadowActs = append(ev.shadowActs, string(a.Type))
		}
	}
	mj, _ := json.Marshal(matches)
	aj, _ := json.Marshal(acts)
	errs := []policy.RuleError{}
	if i%5 == 1 {
		ev.errored = []string{"fragile"} // a rule that failed at run time
		errs = append(errs, policy.RuleError{RuleID: "fragile", Error: "boom"})
	}
	ej, _ := json.Marshal(errs)
	ev.decidedAt = ev.at.Add(time.Millisecond)
	if err := s.st.Pool().QueryRow(ctx, `INSERT INTO decisions (event_id, decided_at, rule_set_version, matched_rules,
		enforced_rules, user_id, channel_cid, message_id, matches, actions, errors)
		VALUES ($1, $2, 'v1', $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id`,
		ev.id, ev.decidedAt, ev.rules, ev.enforced, ev.user, ev.channel, nullable(ev.message), mj, aj, ej).Scan(&ev.decisionID); err != nil {
		t.Fatal(err)
	}
	for pos, a := range acts {
		act := &seedAction{eventID: ev.id, decisionID: ev.decisionID, rule: a.RuleID, typ: string(a.Type), user: ev.user,
			message: ev.message, channel: ev.channel, at: ev.at.Add(2 * time.Millisecond), eventType: ev.typ,
			outcome: seedOutcomes[i%len(seedOutcomes)], attempts: i % 3}
		s.insertAction(t, act, pos, a)
		ev.actions = append(ev.actions, act)
		if act.outcome == store.OutcomeApplied && i%2 == 0 {
			s.overturn(t, act)
		}
	}
	return ev
}

func (s *seed) insertAction(t *testing.T, act *seedAction, pos int, a policy.Action) {
	t.Helper()
	ctx := context.Background()
	params, _ := json.Marshal(a)
	if err := s.st.Pool().QueryRow(ctx, `INSERT INTO actions (event_id, position, rule_id, type, target_user_id,
		message_id, channel_cid, params, idempotency_key, created_at, reverses_action_id, overturn_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id`,
		act.eventID, pos, act.rule, act.typ, act.user, nullable(act.message), act.channel, params,
		fmt.Sprintf("%d:%d:%s", act.eventID, pos, act.typ), act.at, nullInt(act.reversesID), nullInt(act.overturnID)).Scan(&act.id); err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= act.attempts; n++ {
		status := 503
		if n == act.attempts {
			status = 201
		}
		if _, err := s.st.Pool().Exec(ctx, `INSERT INTO action_attempts (action_id, attempt, endpoint, http_status, duration_ms, at)
			VALUES ($1, $2, 'POST /moderation/ban', $3, 1.5, $4)`, act.id, n, status, act.at.Add(time.Duration(n)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if act.outcome != "" {
		if _, err := s.st.Pool().Exec(ctx, `INSERT INTO action_outcomes (action_id, outcome, reason, at) VALUES ($1, $2, 'r', $3)`,
			act.id, act.outcome, act.at.Add(5*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	s.actions = append(s.actions, act)
}

// overturn writes what the overturn pipeline writes for one action: the
// overturn, the reversal action (applied) and the action_reversals row.
func (s *seed) overturn(t *testing.T, act *seedAction) {
	t.Helper()
	ctx := context.Background()
	at := act.at.Add(10 * time.Second)
	if err := s.st.Pool().QueryRow(ctx, `INSERT INTO overturns (action_id, reviewer, reason, created_at)
		VALUES ($1, 'rev', 'wrong call', $2) RETURNING id`, act.id, at).Scan(&act.overturnID); err != nil {
		t.Fatal(err)
	}
	rev := &seedAction{eventID: act.eventID, decisionID: act.decisionID, rule: act.rule, typ: "un" + act.typ, user: act.user,
		message: act.message, channel: act.channel, at: at, eventType: act.eventType, outcome: store.OutcomeApplied,
		attempts: 1, isReversal: true, reversesID: act.id, overturnID: act.overturnID}
	s.insertAction(t, rev, 100, policy.Action{Type: policy.ActionType(rev.typ)})
	if _, err := s.st.Pool().Exec(ctx, `INSERT INTO action_reversals (overturn_id, action_id, disposition, reversal_action_id, created_at)
		VALUES ($1, $2, 'reversed', $3, $4)`, act.overturnID, act.id, rev.id, at); err != nil {
		t.Fatal(err)
	}
	act.overturned, act.reversalID, act.reversalOut, act.overturnAt = true, rev.id, rev.outcome, at
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func nullInt(n int64) *int64 {
	if n == 0 {
		return nil
	}
	return &n
}

// tableCounts counts the rows of every audit table, to show a query wrote
// nothing.
func tableCounts(t *testing.T, st *store.Store) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, tbl := range []string{"events", "decisions", "actions", "action_attempts", "action_outcomes", "appeals",
		"appeal_decisions", "overturns", "action_reversals", "staff_audit"} {
		var n int
		if err := st.Pool().QueryRow(context.Background(), "SELECT count(*) FROM "+pgx.Identifier{tbl}.Sanitize()).Scan(&n); err != nil {
			t.Fatal(err)
		}
		out[tbl] = n
	}
	return out
}

// newestFirst sorts ids by time then id, descending, as the lists order.
func newestFirst[T any](xs []T, at func(T) time.Time, id func(T) int64) {
	slices.SortFunc(xs, func(a, b T) int {
		if c := at(b).Compare(at(a)); c != 0 {
			return c
		}
		return int(id(b) - id(a))
	})
}
