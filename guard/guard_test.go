package guard_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"moderator/guard"
	"moderator/policy"
	"moderator/store"
	"moderator/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

const noisyRule = `rules:
  - id: noisy
    description: flags too much
    mode: enforce
    when: message.text contains "x"%s
    actions: [flag]
    examples:
      - {event: {message: {text: "x"}}, expect: {match: true}}
      - {event: {message: {text: "y"}}, expect: {match: false}}
`

func ruleSet(t *testing.T, extra string) *policy.RuleSet {
	t.Helper()
	rs, err := policy.Load(fstest.MapFS{"r.yaml": {Data: fmt.Appendf(nil, noisyRule, extra)}})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// history records the rule's actions, each applied, and overturns some.
type history struct {
	t  *testing.T
	st *store.Store
	n  int
}

func (h *history) take(overturn bool) {
	h.t.Helper()
	ctx := context.Background()
	h.n++
	body := fmt.Appendf(nil, `{"type":"message.new","cid":"messaging:g","message":{"id":"m%d","text":"x","user":{"id":"u%d"}},"user":{"id":"u%d"}}`, h.n, h.n, h.n)
	ev, err := policy.ParseEvent(body)
	if err != nil {
		h.t.Fatal(err)
	}
	a := policy.Action{Type: policy.ActionFlag, RuleID: "noisy", Target: "message"}
	rec := store.EventRecord{WebhookID: fmt.Sprintf("g%d", h.n), BodySHA256: sha256.Sum256(body), Attempt: 1, APIKey: "k", Payload: body, Event: ev,
		Decision: &policy.Decision{RuleSetVersion: "v", Matches: []policy.Match{{RuleID: "noisy", Mode: policy.ModeEnforce, Actions: []policy.Action{a}}},
			Actions: []policy.Action{a}}}
	var id int64
	_, err = h.st.RecordEvents(ctx, []store.EventRecord{rec}, func(ctx context.Context, tx pgx.Tx, evs []store.NewEvent) error {
		p, _ := json.Marshal(a)
		ids, err := store.InsertActions(ctx, tx, []store.ActionRow{{EventID: evs[0].EventID, RuleID: "noisy", Type: "flag",
			TargetUserID: fmt.Sprintf("u%d", h.n), MessageID: fmt.Sprintf("m%d", h.n), Params: p, Key: fmt.Sprintf("g%d", h.n)}})
		if err == nil {
			id = ids[0]
		}
		return err
	})
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.st.RecordOutcome(ctx, store.OutcomeRow{ActionID: id, Outcome: store.OutcomeApplied}); err != nil {
		h.t.Fatal(err)
	}
	if !overturn {
		return
	}
	err = pgx.BeginFunc(ctx, h.st.Pool(), func(tx pgx.Tx) error {
		oid, _, err := store.InsertOverturnTx(ctx, tx, store.NewOverturn{ActionID: id, Reviewer: "rita", Reason: "not spam"})
		if err != nil {
			return err
		}
		return store.InsertReversalsTx(ctx, tx, []store.ReversalRow{{OverturnID: oid, ActionID: id, Disposition: store.DispositionNothingToUndo}})
	})
	if err != nil {
		h.t.Fatal(err)
	}
}

func staffRows(t *testing.T, st *store.Store) []string {
	t.Helper()
	rows, err := st.Pool().Query(context.Background(), `SELECT actor || ' ' || act || ' ' || coalesce(target, '-') FROM staff_audit ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The guard trips at the threshold and not one action before, is
// audited, survives a restart, ends when the rule changes, and is
// restored by an admin (after which only new actions count).
func TestDemotion(t *testing.T) {
	ctx := context.Background()
	url := storetest.NewDatabase(t)
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	st := store.New(pool)
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	rs := ruleSet(t, "")
	h := &history{t: t, st: st}
	// 19 taken actions, 6 overturned (32 %): under min_actions.
	for i := range 19 {
		h.take(i < 6)
	}
	check := func() guard.Result {
		t.Helper()
		res, err := guard.Check(ctx, st, rs, guard.Defaults, time.Now().Add(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := check(); len(res.Demoted) != 0 || len(res.Active) != 0 || res.Rates[0].Taken != 19 || res.Rates[0].Overturned != 6 {
		t.Fatalf("19 actions: %+v; want no demotion", res)
	}
	// The 20th: 6 of 20 is 30 %, the threshold.
	h.take(false)
	res := check()
	if len(res.Demoted) != 1 || res.Demoted[0].RuleID != "noisy" || len(res.Active) != 1 || res.Demoted[0].Taken != 20 {
		t.Fatalf("20 actions: %+v; want noisy demoted", res)
	}
	if !strings.Contains(res.Demoted[0].Reason, "6 of 20 taken actions overturned") {
		t.Errorf("reason %q", res.Demoted[0].Reason)
	}
	if again := check(); len(again.Demoted) != 0 || len(again.Active) != 1 {
		t.Errorf("a second check demoted again: %+v", again)
	}
	if got := staffRows(t, st); len(got) != 1 || got[0] != "system demote_rule rule:noisy" {
		t.Errorf("staff audit %q", got)
	}

	// A restart: a new store on the same database finds it in force.
	pool2, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool2.Close()
	state, err := store.New(pool2).GuardState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	live := guard.Apply(ruleSet(t, ""), state.Active)
	if live.Rules()[0].Mode != policy.ModeShadow {
		t.Errorf("after a restart: mode %s, want shadow", live.Rules()[0].Mode)
	}
	if d := live.Evaluate(&policy.Event{Type: "message.new", Message: &policy.Message{Text: "x"}}); len(d.Actions) != 0 {
		t.Errorf("a demoted rule asked for %v", d.Actions)
	}
	// Its text changed: the demotion no longer holds.
	edited := guard.Apply(ruleSet(t, " && len(message.text) < 100"), state.Active)
	if edited.Rules()[0].Mode != policy.ModeEnforce {
		t.Errorf("after an edit: mode %s, want enforce", edited.Rules()[0].Mode)
	}

	// An admin restores it; then only actions taken since count.
	if err := st.RestoreRule(ctx, "noisy", "false alarm: the rule is fixed", store.StaffAct{Actor: "ada", Role: "admin"}); err != nil {
		t.Fatal(err)
	}
	if err := st.RestoreRule(ctx, "noisy", "again", store.StaffAct{Actor: "ada", Role: "admin"}); err == nil {
		t.Error("restoring a rule that is not demoted: no error")
	}
	res = check()
	if len(res.Demoted) != 0 || len(res.Active) != 0 || res.Rates[0].Taken != 0 {
		t.Errorf("after the restore: %+v; want nothing counted yet", res)
	}
	if got := staffRows(t, st); len(got) != 2 || got[1] != "ada restore_rule rule:noisy" {
		t.Errorf("staff audit %q", got)
	}
	if guard.Apply(rs, res.Active).Rules()[0].Mode != policy.ModeEnforce {
		t.Error("restored rule not enforced")
	}
}

// A rule's own guard overrides the defaults.
func TestRuleGuard(t *testing.T) {
	rs := ruleSet(t, "\n    guard: {max_overturn_rate: 0.5, min_actions: 2, window: 1h}")
	g := rs.Rules()[0].Guard.Or(guard.Defaults)
	if g.Trips(2, 0) || !g.Trips(2, 1) || g.Window != time.Hour {
		t.Errorf("guard %+v", g)
	}
}
