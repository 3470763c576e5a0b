package main

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"moderator/appeals"
	"moderator/store"
)

// TestAuditReadsOverturns checks the read side against what the real
// overturn pipeline writes: an applied ban overturned (and its unban
// applied at the fake Stream), and a pending ban cancelled before it ran.
func TestAuditReadsOverturns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newOverturnEnv(t, overturnOptions{})
	_, applied := e.record(t, "ovu", "ov-m1", ban("bad-rule"))
	_, pending := e.record(t, "ovu", "ov-m2", ban("bad-rule"))
	// Cancel the second before any worker runs, then let the first run.
	e.overturn(t, appeals.OverturnRequest{DecisionID: pending})
	e.start(t)
	e.waitEnded(t, 2, "target_user_id = 'ovu' AND reverses_action_id IS NULL")
	res := e.overturn(t, appeals.OverturnRequest{DecisionID: applied})
	e.waitEnded(t, 3, "target_user_id = 'ovu'")

	ev, err := e.st.DecisionEvidence(ctx, applied, 5)
	if err != nil {
		t.Fatal(err)
	}
	var ban, unban store.ActionDetail
	for _, a := range ev.Actions {
		switch a.Type {
		case "ban":
			ban = a
		case "unban":
			unban = a
		}
	}
	if ban.Status != store.OutcomeApplied || len(ban.Attempts) == 0 || ban.Reversal == nil ||
		ban.Reversal.Disposition != appeals.DispositionReversed || ban.Reversal.OverturnID != res.OverturnID ||
		ban.Reversal.ReversalActionID != unban.ID || ban.Reversal.ReversalStatus != store.OutcomeApplied ||
		ban.Reversal.Reviewer != "alice" || ban.Reversal.Reason != "the message was a quote" {
		t.Errorf("the overturned ban reads %+v (reversal %+v)", ban, ban.Reversal)
	}
	if unban.ReversesActionID != ban.ID || unban.OverturnID != res.OverturnID || unban.Status != store.OutcomeApplied || len(unban.Attempts) != 1 {
		t.Errorf("the unban reads %+v", unban)
	}

	p, err := e.st.SearchActions(ctx, store.AuditFilter{UserID: "ovu", Outcome: store.OutcomeOverturned})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Items) != 2 {
		t.Fatalf("overturned actions of ovu: got %d, want the applied and the cancelled ban", len(p.Items))
	}
	cancelled := p.Items[0]
	if cancelled.ID == ban.ID {
		cancelled = p.Items[1]
	}
	if cancelled.Reversal == nil || cancelled.Reversal.Disposition != appeals.DispositionCancelled || cancelled.Status != store.OutcomeSuperseded {
		t.Errorf("the cancelled ban reads status %q reversal %+v", cancelled.Status, cancelled.Reversal)
	}

	stats, err := e.st.RuleStats(ctx, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	want := store.RuleStat{RuleID: "bad-rule", EnforceMatches: 2, Actions: 2, Taken: 1, Applied: 1, Superseded: 1,
		Overturned: 1, Cancelled: 1, OverturnRate: 1, TakenUsers: map[string]int{"ban": 1}, Did: "banned 1 user", WouldUsers: map[string]int{}}
	if len(stats) != 1 || !reflect.DeepEqual(stats[0], want) {
		t.Errorf("rule stats %+v, want [%+v]", stats, want)
	}

	tl, err := e.st.Timeline(ctx, "ovu", store.AuditFilter{Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, en := range tl.Items {
		kinds = append(kinds, en.Kind)
	}
	got := strings.Join(kinds, ",")
	for kind, n := range map[string]int{"event": 2, "decision": 2, "action": 3, "overturn": 2} {
		if c := strings.Count(","+got+",", ","+kind+","); c != n {
			t.Errorf("timeline has %d %s entries, want %d: %s", c, kind, n, got)
		}
	}
	if kinds[0] != store.KindAction && kinds[0] != store.KindOverturn {
		t.Errorf("timeline starts with %s, want the latest overturn or its unban: %s", kinds[0], got)
	}
}
