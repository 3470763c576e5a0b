package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"moderator/policy"
	"moderator/store"
)

func (s *seed) wantDecisions(f store.AuditFilter) []int64 {
	var evs []*seedEvent
	for _, e := range s.events {
		if e.decisionID == 0 || (f.UserID != "" && e.user != f.UserID) || (f.MessageID != "" && e.message != f.MessageID) ||
			(f.ChannelCID != "" && e.channel != f.ChannelCID) || (f.EventType != "" && e.typ != f.EventType) ||
			(f.RuleID != "" && !slices.Contains(e.rules, f.RuleID)) || !inRange(e.decidedAt, f) {
			continue
		}
		if f.ActionType != "" && !slices.ContainsFunc(e.actions, func(a *seedAction) bool { return a.typ == f.ActionType }) {
			continue
		}
		if f.Outcome != "" && !slices.ContainsFunc(e.actions, func(a *seedAction) bool { return actionMatches(a, "", f.Outcome) }) {
			continue
		}
		evs = append(evs, e)
	}
	newestFirst(evs, func(e *seedEvent) time.Time { return e.decidedAt }, func(e *seedEvent) int64 { return e.decisionID })
	return ids(evs, func(e *seedEvent) int64 { return e.decisionID })
}

func (s *seed) wantActions(f store.AuditFilter) []int64 {
	var acts []*seedAction
	for _, a := range s.actions {
		if (f.UserID != "" && a.user != f.UserID) || (f.MessageID != "" && a.message != f.MessageID) ||
			(f.ChannelCID != "" && a.channel != f.ChannelCID) || (f.RuleID != "" && a.rule != f.RuleID) ||
			(f.EventType != "" && a.eventType != f.EventType) || !actionMatches(a, f.ActionType, f.Outcome) || !inRange(a.at, f) {
			continue
		}
		acts = append(acts, a)
	}
	newestFirst(acts, func(a *seedAction) time.Time { return a.at }, func(a *seedAction) int64 { return a.id })
	return ids(acts, func(a *seedAction) int64 { return a.id })
}

func TestSearchDecisionsAndActionsFilters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := newSeedStore(t)
	s := seedHistory(t, st, 60)
	extra := []store.AuditFilter{{ActionType: "unban"}, {UserID: "alice", Outcome: store.OutcomeOverturned}, {EventType: "message.updated", ActionType: "ban"}}
	for _, f := range append(s.filters(), extra...) {
		for _, limit := range []int{0, 5} {
			f.Limit = limit
			got := walk(t, f, func(f store.AuditFilter) (store.Page[store.DecisionSummary], error) {
				return st.SearchDecisions(ctx, f)
			},
				func(d store.DecisionSummary) int64 { return d.ID }, nil)
			if diff := cmp.Diff(s.wantDecisions(f), got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("decisions, filter %+v (-want +got):\n%s", f, diff)
			}
			got = walk(t, f, func(f store.AuditFilter) (store.Page[store.ActionDetail], error) { return st.SearchActions(ctx, f) },
				func(a store.ActionDetail) int64 { return a.ID }, nil)
			if diff := cmp.Diff(s.wantActions(f), got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("actions, filter %+v (-want +got):\n%s", f, diff)
			}
		}
	}
	for _, f := range []store.AuditFilter{{Outcome: store.OutcomeOverturned}, {Outcome: store.OutcomePending}, {ActionType: "unban"},
		{Outcome: store.OutcomeSuppressed}, {RuleID: "caps"}} {
		if len(s.wantActions(f)) == 0 && len(s.wantDecisions(f)) == 0 {
			t.Errorf("seed has nothing for %+v", f)
		}
	}
}

func TestSearchDecisionsRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := newSeedStore(t)
	s := seedHistory(t, st, 10)
	ev := s.events[4] // i=4: profanity and caps matched, profanity enforced
	p, err := st.SearchDecisions(ctx, store.AuditFilter{MessageID: ev.message})
	if err != nil {
		t.Fatal(err)
	}
	want := []store.DecisionSummary{{ID: ev.decisionID, EventID: ev.id, EventType: "message.new", DecidedAt: ev.decidedAt,
		RuleSetVersion: "v1", UserID: ev.user, ChannelCID: ev.channel, MessageID: ev.message}}
	want[0].MatchedRules, want[0].EnforcedRules, want[0].ShadowActionTypes = ev.rules, ev.enforced, ev.shadowActs
	for _, a := range ev.actions {
		want[0].ActionTypes = append(want[0].ActionTypes, a.typ)
	}
	if len(ev.rules) != 2 || len(ev.enforced) != 1 || len(ev.shadowActs) != 1 {
		t.Fatalf("seed event 4 = %+v, want two matches, one enforced, one shadow with an action", ev)
	}
	if diff := cmp.Diff(want, p.Items, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestAction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := newSeedStore(t)
	s := seedHistory(t, st, 40)
	act := firstAction(s, func(a *seedAction) bool { return a.overturned && a.attempts > 0 })
	got, err := st.Action(ctx, act.id)
	if err != nil {
		t.Fatal(err)
	}
	params, _ := json.Marshal(policy.Action{Type: policy.ActionType(act.typ), RuleID: act.rule, Reason: "because " + act.rule})
	want := store.ActionDetail{ID: act.id, EventID: act.eventID, DecisionID: act.decisionID, Position: 0, RuleID: act.rule,
		Type: act.typ, TargetUserID: act.user, MessageID: act.message, ChannelCID: act.channel, Params: params,
		CreatedAt: act.at, Status: store.OutcomeApplied,
		Outcome: &store.ActionOutcome{Outcome: store.OutcomeApplied, Reason: "r", At: act.at.Add(5 * time.Second)},
		Reversal: &store.ActionReversal{OverturnID: act.overturnID, Disposition: "reversed", Reviewer: "rev", Reason: "wrong call",
			At: act.overturnAt, ReversalActionID: act.reversalID, ReversalType: "un" + act.typ, ReversalStatus: store.OutcomeApplied}}
	for n := 1; n <= act.attempts; n++ {
		status := 503
		if n == act.attempts {
			status = 201
		}
		want.Attempts = append(want.Attempts, store.ActionAttempt{Attempt: n, Endpoint: "POST /moderation/ban", HTTPStatus: status,
			DurationMS: 1.5, At: act.at.Add(time.Duration(n) * time.Second)})
	}
	if diff := cmp.Diff(want, got, jsonEqual(), cmpopts.IgnoreFields(store.ActionDetail{}, "Attempts")); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want.Attempts, got.Attempts, jsonEqual()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	rev, err := st.Action(ctx, act.reversalID)
	if err != nil {
		t.Fatal(err)
	}
	if rev.ReversesActionID != act.id || rev.OverturnID != act.overturnID || rev.Type != "un"+act.typ || rev.Reversal != nil {
		t.Errorf("reversal action = %+v, want one reversing %d in overturn %d", rev, act.id, act.overturnID)
	}
	pending := firstAction(s, func(a *seedAction) bool { return a.outcome == "" })
	if got, err := st.Action(ctx, pending.id); err != nil || got.Status != store.OutcomePending || got.Outcome != nil {
		t.Errorf("pending action: got status %q outcome %+v, %v", got.Status, got.Outcome, err)
	}
	if _, err := st.Action(ctx, 999999); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Action(999999) = %v, want ErrNotFound", err)
	}
}

// jsonEqual compares raw JSON by value and times by instant.
func jsonEqual() cmp.Option {
	return cmp.Options{
		cmp.Comparer(func(a, b json.RawMessage) bool {
			if len(a) == 0 || len(b) == 0 {
				return len(a) == len(b)
			}
			var x, y any
			if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
				return string(a) == string(b)
			}
			return cmp.Equal(x, y)
		}),
		cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) }),
	}
}

type tlKey struct {
	Kind string
	ID   int64
}

func TestTimeline(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := newSeedStore(t)
	s := seedHistory(t, st, 40)
	const user = "alice"
	type entry struct {
		at   time.Time
		rank int
		key  tlKey
	}
	var want []entry
	for _, e := range s.events {
		if e.user != user {
			continue
		}
		want = append(want, entry{e.at, 1, tlKey{"event", e.id}})
		if e.decisionID != 0 {
			want = append(want, entry{e.decidedAt, 2, tlKey{"decision", e.decisionID}})
		}
	}
	for _, a := range s.actions {
		if a.user != user {
			continue
		}
		want = append(want, entry{a.at, 3, tlKey{"action", a.id}})
		if a.overturned {
			want = append(want, entry{a.overturnAt, 6, tlKey{"overturn", a.overturnID}})
		}
	}
	// An appeal decided, and one pending.
	acts := slices.DeleteFunc(slices.Clone(s.actions), func(a *seedAction) bool { return a.user != user || a.isReversal })
	for i, a := range acts[:2] {
		ap, err := st.RecordAppeal(ctx, store.NewAppeal{UserID: user, ActionID: a.id, Statement: "please", Source: "email", RecordedBy: "ann"})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, entry{ap.CreatedAt, 4, tlKey{"appeal", ap.ID}})
		if i == 0 {
			d, err := st.DecideAppealUpheld(ctx, ap.ID, "rita", "stands", store.StaffAct{Actor: "rita"})
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, entry{d.DecidedAt, 5, tlKey{"appeal_decision", d.ID}})
		}
	}
	// Another user's appeal is not alice's history.
	bobs := firstAction(s, func(a *seedAction) bool { return a.user == "bob" })
	if _, err := st.RecordAppeal(ctx, store.NewAppeal{UserID: "bob", ActionID: bobs.id, Statement: "x", Source: "email", RecordedBy: "ann"}); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(want, func(a, b entry) int {
		if c := b.at.Compare(a.at); c != 0 {
			return c
		}
		if a.rank != b.rank {
			return b.rank - a.rank
		}
		return int(b.key.ID - a.key.ID)
	})
	keys := func(es []entry) []tlKey {
		out := make([]tlKey, len(es))
		for i, e := range es {
			out[i] = e.key
		}
		return out
	}
	for _, limit := range []int{1, 3, 200} {
		var got []tlKey
		f := store.AuditFilter{Limit: limit}
		for pages := 0; ; pages++ {
			p, err := st.Timeline(ctx, user, f)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range p.Items {
				got = append(got, tlKey{e.Kind, e.ID})
			}
			if p.NextCursor == "" {
				break
			}
			f.Cursor = p.NextCursor
			if pages > 500 {
				t.Fatal("pagination does not end")
			}
		}
		if diff := cmp.Diff(keys(want), got); diff != "" {
			t.Errorf("limit %d (-want +got):\n%s", limit, diff)
		}
	}
	// The time range keeps [From, To).
	from, to := s.base.Add(10*time.Minute), s.base.Add(20*time.Minute)
	var inRangeWant []tlKey
	for _, e := range want {
		if !e.at.Before(from) && e.at.Before(to) {
			inRangeWant = append(inRangeWant, e.key)
		}
	}
	p, err := st.Timeline(ctx, user, store.AuditFilter{From: from, To: to, Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	var got []tlKey
	for _, e := range p.Items {
		got = append(got, tlKey{e.Kind, e.ID})
	}
	if diff := cmp.Diff(inRangeWant, got); diff != "" {
		t.Errorf("range (-want +got):\n%s", diff)
	}
	// Kinds must all be there, or the test proves little.
	seen := map[string]bool{}
	for _, k := range keys(want) {
		seen[k.Kind] = true
	}
	if len(seen) != 6 {
		t.Errorf("the timeline has kinds %v, want all six", seen)
	}
	if _, err := st.Timeline(ctx, "", store.AuditFilter{}); err == nil {
		t.Error("Timeline of no user: got nil error")
	}
	ep, _ := st.SearchEvents(ctx, store.AuditFilter{Limit: 1})
	if _, err := st.Timeline(ctx, user, store.AuditFilter{Cursor: ep.NextCursor}); !errors.Is(err, store.ErrBadCursor) {
		t.Errorf("events cursor for a timeline: got %v, want ErrBadCursor", err)
	}
	for _, v := range hostile {
		p, err := st.Timeline(ctx, v, store.AuditFilter{})
		if err != nil || len(p.Items) != 0 {
			t.Errorf("timeline of %q: got %d entries, %v; want none", v, len(p.Items), err)
		}
	}
}

func TestDecisionEvidence(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := newSeedStore(t)
	s := seedHistory(t, st, 60)
	// The model of the conversation: message.new events in the same
	// channel, top-level or in the same thread, by (time, id).
	conversation := func(e *seedEvent, around int) (before, after []string) {
		var msgs []*seedEvent
		for _, m := range s.events {
			if m.typ == "message.new" && m.channel == e.channel && m.parent == e.parent {
				msgs = append(msgs, m)
			}
		}
		for _, m := range msgs {
			switch {
			case m.at.Before(e.at) || (m.at.Equal(e.at) && m.id < e.id):
				before = append(before, m.message)
			case m.at.After(e.at) || (m.at.Equal(e.at) && m.id > e.id):
				after = append(after, m.message)
			}
		}
		before = before[max(0, len(before)-around):]
		after = after[:min(len(after), around)]
		return before, after
	}
	var reply, top *seedEvent
	for _, e := range s.events {
		if e.decisionID == 0 || e.typ != "message.new" {
			continue
		}
		if e.parent != "" && reply == nil && e.at.After(s.base.Add(20*time.Minute)) {
			reply = e
		}
		if e.parent == "" && top == nil && e.at.After(s.base.Add(30*time.Minute)) && len(e.actions) > 0 {
			top = e
		}
	}
	if reply == nil || top == nil {
		t.Fatal("seed has no reply or top-level message with a decision")
	}
	for _, tt := range []struct {
		ev        *seedEvent
		around    int
		wantScope string
	}{{top, 3, "channel"}, {top, 0, "channel"}, {top, 1000, "channel"}, {reply, 2, "thread"}, {reply, 50, "thread"}} {
		ev, err := st.DecisionEvidence(ctx, tt.ev.decisionID, tt.around)
		if err != nil {
			t.Fatal(err)
		}
		wantBefore, wantAfter := conversation(tt.ev, min(tt.around, store.MaxContext))
		var gotBefore, gotAfter []string
		for _, m := range ev.Context.Before {
			gotBefore = append(gotBefore, m.MessageID)
		}
		for _, m := range ev.Context.After {
			gotAfter = append(gotAfter, m.MessageID)
		}
		if ev.Context.Scope != tt.wantScope {
			t.Errorf("%s around %d: scope %q, want %q", tt.ev.message, tt.around, ev.Context.Scope, tt.wantScope)
		}
		if diff := cmp.Diff(wantBefore, gotBefore, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s around %d: before (-want +got):\n%s", tt.ev.message, tt.around, diff)
		}
		if diff := cmp.Diff(wantAfter, gotAfter, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s around %d: after (-want +got):\n%s", tt.ev.message, tt.around, diff)
		}
		if tt.around >= 3 && (len(wantBefore) < 2 || len(wantAfter) < 2) {
			t.Errorf("%s: the seed gives too little context (%v, %v) to prove much", tt.ev.message, wantBefore, wantAfter)
		}
		if tt.ev.parent != "" {
			if ev.Context.Parent == nil || ev.Context.Parent.MessageID != tt.ev.parent {
				t.Errorf("%s: parent %+v, want %s", tt.ev.message, ev.Context.Parent, tt.ev.parent)
			}
		} else if ev.Context.Parent != nil {
			t.Errorf("%s: a top-level message has parent %+v", tt.ev.message, ev.Context.Parent)
		}
	}

	// The rest of the evidence, on the top-level message.
	ap, err := st.RecordAppeal(ctx, store.NewAppeal{UserID: top.user, DecisionID: top.decisionID, Statement: "context!", Source: "email", RecordedBy: "ann"})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := st.DecisionEvidence(ctx, top.decisionID, 1)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Decision.ID != top.decisionID || ev.Event.ID != top.id || ev.RuleSetVersion != "v1" {
		t.Errorf("decision %d event %d version %q, want %d %d v1", ev.Decision.ID, ev.Event.ID, ev.RuleSetVersion, top.decisionID, top.id)
	}
	var payload struct {
		Message struct{ ID, Text string }
	}
	if err := json.Unmarshal(ev.Event.Payload, &payload); err != nil || payload.Message.ID != top.message || payload.Message.Text != top.text {
		t.Errorf("payload %s (%v), want the message %s", ev.Event.Payload, err, top.message)
	}
	var gotRules []string
	for _, m := range ev.Matches {
		gotRules = append(gotRules, m.RuleID)
		if m.When != "when-"+m.RuleID || m.Source != "rules/"+m.RuleID+".yaml:3" || m.Reason != "because "+m.RuleID {
			t.Errorf("match %+v: want its expression, source and reason", m)
		}
		if diff := cmp.Diff(map[string]any{"text.words": []any{"w" + m.RuleID}}, m.Evidence); diff != "" {
			t.Errorf("match %s evidence (-want +got):\n%s", m.RuleID, diff)
		}
	}
	if diff := cmp.Diff(top.rules, gotRules); diff != "" {
		t.Errorf("matches (-want +got):\n%s", diff)
	}
	var wantActs, gotActs []int64
	for _, a := range s.actions {
		if a.eventID == top.id {
			wantActs = append(wantActs, a.id)
		}
	}
	for _, a := range ev.Actions {
		gotActs = append(gotActs, a.ID)
	}
	if diff := cmp.Diff(wantActs, gotActs); diff != "" || len(wantActs) == 0 {
		t.Errorf("actions (-want +got):\n%s", diff)
	}
	if len(ev.Requested) != len(top.enforced) {
		t.Errorf("requested %v, want one per enforced rule %v", ev.Requested, top.enforced)
	}
	if len(ev.Appeals) != 1 || ev.Appeals[0].ID != ap.ID {
		t.Errorf("appeals %+v, want the one recorded", ev.Appeals)
	}
	// It encodes as the API returns it: snake_case, raw payload.
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"rule_set_version":"v1"`, `"payload":{`, `"when":"when-`, `"context":{"scope":"channel"`, `"before":[`} {
		if !json.Valid(b) || !strings.Contains(string(b), key) {
			t.Errorf("evidence JSON lacks %s: %s", key, b)
		}
	}
	if _, err := st.DecisionEvidence(ctx, 999999, 3); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DecisionEvidence(999999) = %v, want ErrNotFound", err)
	}
}

func TestRuleStats(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := newSeedStore(t)
	s := seedHistory(t, st, 60)
	model := func(from, to time.Time) []store.RuleStat {
		f := store.AuditFilter{From: from, To: to}
		by := map[string]*store.RuleStat{}
		would := map[string]map[string]map[string]bool{} // rule → type → users
		taken := map[string]map[string]map[string]bool{} // rule → type → users of taken actions
		get := func(r string) *store.RuleStat {
			if by[r] == nil {
				by[r] = &store.RuleStat{RuleID: r}
			}
			return by[r]
		}
		for _, e := range s.events {
			if e.decisionID == 0 || !inRange(e.decidedAt, f) {
				continue
			}
			for _, r := range e.rules {
				if slices.Contains(e.enforced, r) {
					get(r).EnforceMatches++
				} else {
					get(r).ShadowMatches++
					// Its would-be action is of the event's action type.
					if len(e.actions) > 0 {
						if would[r] == nil {
							would[r] = map[string]map[string]bool{}
						}
						if would[r][e.actions[0].typ] == nil {
							would[r][e.actions[0].typ] = map[string]bool{}
						}
						would[r][e.actions[0].typ][e.user] = true
					}
				}
			}
			for _, r := range e.errored {
				get(r).Errors++
			}
		}
		for _, a := range s.actions {
			if a.isReversal || !inRange(a.at, f) {
				continue
			}
			rs := get(a.rule)
			rs.Actions++
			if a.outcome == store.OutcomeApplied || a.outcome == store.OutcomeDryRun {
				if taken[a.rule] == nil {
					taken[a.rule] = map[string]map[string]bool{}
				}
				if taken[a.rule][a.typ] == nil {
					taken[a.rule][a.typ] = map[string]bool{}
				}
				taken[a.rule][a.typ][a.user] = true
			}
			switch a.outcome {
			case store.OutcomeApplied:
				rs.Applied++
			case store.OutcomeDryRun:
				rs.DryRun++
			case store.OutcomeFailed:
				rs.Failed++
			case store.OutcomeHeld:
				rs.Held++
			case store.OutcomeSuperseded:
				rs.Superseded++
			case store.OutcomeSuppressed:
				rs.Suppressed++
			case "":
				rs.Pending++
			}
			if a.overturned {
				rs.Overturned++
			}
		}
		var out []store.RuleStat
		for _, rs := range by {
			rs.Taken = rs.Applied + rs.DryRun
			for typ, users := range would[rs.RuleID] {
				if rs.WouldUsers == nil {
					rs.WouldUsers = map[string]int{}
				}
				rs.WouldUsers[typ] = len(users)
			}
			for typ, users := range taken[rs.RuleID] {
				if rs.TakenUsers == nil {
					rs.TakenUsers = map[string]int{}
				}
				rs.TakenUsers[typ] = len(users)
			}
			if rs.Taken > 0 {
				rs.OverturnRate = float64(rs.Overturned) / float64(rs.Taken)
			}
			out = append(out, *rs)
		}
		slices.SortFunc(out, func(a, b store.RuleStat) int { return strings.Compare(a.RuleID, b.RuleID) })
		return out
	}
	for _, r := range [][2]time.Time{
		{}, {s.base.Add(10 * time.Minute), s.base.Add(40 * time.Minute)}, {s.base.Add(59 * time.Minute), {}},
		{s.base.Add(time.Hour), {}},
	} {
		got, err := st.RuleStats(ctx, r[0], r[1])
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(model(r[0], r[1]), got, cmpopts.EquateEmpty(), cmpopts.EquateApprox(0, 1e-9),
			cmpopts.IgnoreFields(store.RuleStat{}, "Would", "Did")); diff != "" {
			t.Errorf("range %v (-want +got):\n%s", r, diff)
		}
	}
	all, _ := st.RuleStats(ctx, time.Time{}, time.Time{})
	var overturned, shadow, errored int
	for _, rs := range all {
		overturned += rs.Overturned
		shadow += rs.ShadowMatches
		errored += rs.Errors
	}
	for _, rs := range all {
		if rs.RuleID == "caps" && (len(rs.WouldUsers) == 0 || !strings.HasPrefix(rs.Would, "would ") || rs.Did != "") {
			t.Errorf("caps (shadow): would %v %q, did %q", rs.WouldUsers, rs.Would, rs.Did)
		}
		if rs.RuleID != "caps" && rs.Taken > 0 && (len(rs.TakenUsers) == 0 || rs.Would != "") {
			t.Errorf("%s (enforce): did %v %q, would %q", rs.RuleID, rs.TakenUsers, rs.Did, rs.Would)
		}
	}
	if overturned == 0 || shadow == 0 || errored == 0 {
		t.Errorf("seed gives %d overturned, %d shadow matches and %d rule errors: too little to prove the figures", overturned, shadow, errored)
	}
}

// TestSearchEventsText: the full-text filter finds messages by their
// words, whatever their case, with phrases, or and -word; other filters
// still apply; hostile queries find nothing and break nothing.
func TestSearchEventsText(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := newSeedStore(t)
	texts := map[string]string{
		"t1": "FREE Nitro on discord: discord-nitro.gift",
		"t2": "nitro is free, they say",
		"t3": "hello world",
		"t4": "free as in freedom",
		"t5": "'; DROP TABLE events; --",
	}
	for _, id := range []string{"t1", "t2", "t3", "t4", "t5"} {
		user := "ann"
		if id == "t2" {
			user = "bob"
		}
		body, _ := json.Marshal(map[string]any{"type": "message.new", "cid": "messaging:x",
			"message": map[string]any{"id": id, "text": texts[id], "user": map[string]any{"id": user}}, "user": map[string]any{"id": user}})
		if _, err := st.RecordEvent(ctx, record(t, "text-"+id, string(body))); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := st.IndexEventWords(ctx, 100); err != nil || n != 5 {
		t.Fatalf("indexed %d events' words (%v), want 5", n, err)
	}
	for _, tt := range []struct {
		f    store.AuditFilter
		want []string // message ids, newest first
	}{
		{store.AuditFilter{Text: "nitro"}, []string{"t2", "t1"}},
		{store.AuditFilter{Text: "NITRO"}, []string{"t2", "t1"}},
		{store.AuditFilter{Text: "free nitro"}, []string{"t2", "t1"}},
		{store.AuditFilter{Text: `"free nitro"`}, []string{"t1"}},
		{store.AuditFilter{Text: "nitro -discord"}, []string{"t2"}},
		{store.AuditFilter{Text: "world or freedom"}, []string{"t4", "t3"}},
		{store.AuditFilter{Text: "nitro", UserID: "ann"}, []string{"t1"}},
		{store.AuditFilter{Text: "drop table"}, []string{"t5"}},
		{store.AuditFilter{Text: "' OR 1=1 --"}, nil},
		{store.AuditFilter{Text: "&|!():*"}, nil},
		{store.AuditFilter{Text: "a\x00b"}, nil},
		{store.AuditFilter{Text: "nitr"}, nil}, // words, not prefixes
	} {
		// Both ways of finding a page: from the index's matches, and (a
		// probe of 1) walking the time index.
		for _, probe := range []int{0, 1} {
			st.SetTextProbe(probe)
			var got []string
			f := tt.f
			f.Limit = 1
			for pages := 0; pages < 10; pages++ {
				p, err := st.SearchEvents(ctx, f)
				if err != nil {
					t.Fatalf("%+v: %v", f, err)
				}
				for _, e := range p.Items {
					got = append(got, e.MessageID)
				}
				if f.Cursor = p.NextCursor; f.Cursor == "" {
					break
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("text %q user %q, probe %d: got %v, want %v", tt.f.Text, tt.f.UserID, probe, got, tt.want)
			}
		}
	}
}

// TestIndexEventWords: the indexer writes the words of every recorded
// event once, in batches, including an event whose transaction commits
// after a later event was indexed; two indexers at once write nothing
// twice.
func TestIndexEventWords(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := newSeedStore(t)
	insert := func(q interface {
		Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
	}, id string) {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"type": "message.new", "message": map[string]any{"id": id, "text": "word " + id}})
		if _, err := q.Exec(ctx, `INSERT INTO events (webhook_id, body_sha256, attempt, api_key, compressed, body_bytes, type,
			message_id, own, ignored, payload) VALUES ($1::text, sha256(convert_to($1::text, 'UTF8')), 1, 'k', false, 10, 'message.new', $1::text, false, false, $2)`,
			id, body); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"a1", "a2", "a3"} {
		insert(st.Pool(), id)
	}
	// An event whose transaction is still open while later ones are
	// recorded and indexed.
	late, err := st.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	insert(late, "late")
	insert(st.Pool(), "a4")
	var got []int64
	for {
		n, err := st.IndexEventWords(ctx, 2)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, n)
		if n == 0 {
			break
		}
	}
	if fmt.Sprint(got) != "[2 2 0]" {
		t.Fatalf("batches of 2 indexed %v, want [2 2 0]", got)
	}
	if err := late.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var total atomic.Int64
	for range 4 {
		wg.Go(func() {
			n, err := st.IndexEventWords(ctx, 100)
			if err != nil {
				t.Error(err)
			}
			total.Add(n)
		})
	}
	wg.Wait()
	for total.Load() < 1 {
		n, err := st.IndexEventWords(ctx, 100)
		if err != nil {
			t.Fatal(err)
		}
		total.Add(n)
	}
	var rows, late2 int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE words @@ 'late'::tsquery) FROM event_words`).Scan(&rows, &late2); err != nil {
		t.Fatal(err)
	}
	if rows != 5 || late2 != 1 || total.Load() != 1 {
		t.Fatalf("event_words has %d rows (%d for the late event), the second round wrote %d; want 5, 1, 1", rows, late2, total.Load())
	}
}

// TestIndexEventWordsLateFarBelow: an event whose recording transaction
// commits after far more events than any fixed look-back were recorded and
// indexed (here 50,000 ids; the indexer looked back 10,000 until
// 2026-12-06) is indexed all the same once it commits, and no event is
// indexed twice, with two replicas taking turns at indexing.
func TestIndexEventWordsLateFarBelow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := newSeedStore(t)
	replicas := []*store.Store{st, store.New(st.Pool())} // each with marks of its own
	turn := 0
	msg := func(id string) store.EventRecord {
		body, _ := json.Marshal(map[string]any{"type": "message.new", "cid": "messaging:x",
			"message": map[string]any{"id": id, "text": "word " + id, "user": map[string]any{"id": "ann"}}})
		return record(t, "far-"+id, string(body))
	}
	indexAll := func() int64 {
		t.Helper()
		var total int64
		for {
			turn++
			n, err := replicas[turn%2].IndexEventWords(ctx, 100)
			if err != nil {
				t.Fatal(err)
			}
			if total += n; n == 0 {
				return total
			}
		}
	}
	if _, err := st.RecordEvent(ctx, msg("before")); err != nil {
		t.Fatal(err)
	}
	// The late event's recording transaction: its hook holds it open
	// after the insert until released.
	inserted, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := st.RecordEventsWith(ctx, []store.EventRecord{msg("late")}, store.Hooks{
			Tx: func(context.Context, pgx.Tx, []store.NewEvent) error {
				close(inserted)
				<-release
				return nil
			}})
		done <- err
	}()
	<-inserted
	// As if 50,000 events were recorded meanwhile, then one more.
	if _, err := st.Pool().Exec(ctx, `SELECT setval('event_ids', nextval('event_ids') + 50000)`); err != nil {
		t.Fatal(err)
	}
	if _, err := st.RecordEvent(ctx, msg("after")); err != nil {
		t.Fatal(err)
	}
	if n := indexAll(); n != 2 {
		t.Fatalf("with the late event uncommitted, indexed %d events; want 2", n)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Its mark settles once no transaction that was running when it was
	// made runs any more; other tests' transactions may hold it a little.
	var n int64
	for deadline := time.Now().Add(10 * time.Second); n == 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		n += indexAll()
	}
	if n != 1 {
		t.Fatalf("after the late event committed, indexed %d events; want 1", n)
	}
	var rows, late int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE words @@ 'late'::tsquery) FROM event_words`).Scan(&rows, &late); err != nil {
		t.Fatal(err)
	}
	if rows != 3 || late != 1 {
		t.Fatalf("event_words has %d rows, %d of them the late event's; want 3, 1", rows, late)
	}
}
