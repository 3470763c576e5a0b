package statement_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"moderator/policy"
	"moderator/statement"
	"moderator/store"
)

var decided = time.Date(2026, 12, 1, 20, 6, 0, 0, time.UTC)

// evidence is a decision of rule scam-domains on alice's message msg-2:
// a delete, pending, and a 7-day ban in the channel, applied a second
// after the decision; a shadow rule matched too.
func evidence(t *testing.T) store.Evidence {
	t.Helper()
	ban := policy.Action{Type: policy.ActionBan, RuleID: "scam-domains", TimeoutMinutes: 7 * 24 * 60, ChannelOnly: true, DeleteMessages: "soft"}
	del := policy.Action{Type: policy.ActionDelete, RuleID: "scam-domains"}
	params := func(a policy.Action) json.RawMessage {
		b, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	sent := decided.Add(-2 * time.Second)
	return store.Evidence{
		Decision:       store.DecisionSummary{ID: 42, EventID: 7, DecidedAt: decided, UserID: "alice", ChannelCID: "messaging:general", MessageID: "msg-2"},
		RuleSetVersion: "512136f066fa",
		Event: store.EventSnapshot{EventSummary: store.EventSummary{ID: 7, Type: "message.new", ReceivedAt: decided, CreatedAt: &sent,
			UserID: "alice", ChannelCID: "messaging:general", MessageID: "msg-2", Text: "FREE NITRO at https://discord-nitro.gift \u202eevil"}},
		Matches: []policy.Match{
			{RuleID: "scam-domains", Mode: policy.ModeEnforce, Reason: "scam link: discord-nitro.gift", Source: "domains.yaml:5",
				When: `domain_in(text.domains, "scam_domains")`, Evidence: map[string]any{`domain_in(text.domains, "scam_domains")`: []string{"discord-nitro.gift"}},
				Actions: []policy.Action{del, ban}},
			{RuleID: "shouting", Mode: policy.ModeShadow, Reason: "all caps", Evidence: map[string]any{"text.caps_ratio": 0.9}},
		},
		Requested: []policy.Action{del, ban},
		Actions: []store.ActionDetail{
			{ID: 1, EventID: 7, RuleID: "scam-domains", Type: "delete", MessageID: "msg-2", ChannelCID: "messaging:general", Params: params(del), Status: "pending"},
			{ID: 2, EventID: 7, RuleID: "scam-domains", Type: "ban", TargetUserID: "alice", ChannelCID: "messaging:general", Params: params(ban),
				Status: "applied", Outcome: &store.ActionOutcome{Outcome: "applied", At: decided.Add(time.Second)}},
		},
		Appeals: []store.Appeal{},
	}
}

func TestStatementOfAnAutomatedBan(t *testing.T) {
	t.Parallel()
	st, err := statement.New(evidence(t))
	if err != nil {
		t.Fatal(err)
	}
	applied := decided.Add(time.Second)
	ends := applied.Add(7 * 24 * time.Hour)
	want := []statement.Restriction{
		{ActionID: 1, Type: "delete", RuleID: "scam-domains", Restricts: true, Scope: "message", ChannelCID: "messaging:general",
			MessageID: "msg-2", Status: "pending", Description: "Deletion of your message msg-2. Decided, and being carried out."},
		{ActionID: 2, Type: "ban", RuleID: "scam-domains", Restricts: true, Scope: "channel", ChannelCID: "messaging:general",
			DurationMinutes: 7 * 24 * 60, EndsAt: &ends, DeleteMessages: "soft", Status: "applied", AppliedAt: &applied,
			Description: "A ban from posting in messaging:general for 7 days, with the deletion of your messages. " +
				"In effect from 1 December 2026, 20:06 UTC until 8 December 2026, 20:06 UTC."},
	}
	if diff := cmp.Diff(want, st.Restrictions); diff != "" {
		t.Errorf("restrictions (-want +got):\n%s", diff)
	}
	if !st.Restricted {
		t.Error("Restricted = false for an applied ban")
	}
	if diff := cmp.Diff([]statement.Ground{{RuleID: "scam-domains", RuleSetVersion: "512136f066fa", Source: "domains.yaml:5",
		Reason: "scam link: discord-nitro.gift"}}, st.Grounds); diff != "" {
		t.Errorf("grounds: only the enforcing rule, as recorded (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]statement.Value{{RuleID: "scam-domains", Expression: `domain_in(text.domains, "scam_domains")`,
		Value: `["discord-nitro.gift"]`}}, st.Facts.Values); diff != "" {
		t.Errorf("values read (-want +got):\n%s", diff)
	}
	if !st.Automation.Detection || !st.Automation.Decision || len(st.Automation.Reviews) != 0 {
		t.Errorf("automation %+v, want automated detection and decision, no review", st.Automation)
	}
	if by := time.Date(2027, 6, 1, 20, 6, 0, 0, time.UTC); !st.Redress.AppealBy.Equal(by) || st.Redress.Reference != "decision 42" {
		t.Errorf("redress: appeal by %v as %q, want %v and decision 42", st.Redress.AppealBy, st.Redress.Reference, by)
	}
	for _, part := range []string{
		"Statement of reasons for decision 42\nTo: alice\n",
		"1. What we decided\n- Deletion of your message msg-2.",
		"2. The facts we relied on\nYour message msg-2 in messaging:general, sent 1 December 2026, 20:05 UTC:\n" +
			`  "FREE NITRO at https://discord-nitro.gift \u202eevil"` + "\n",
		`- scam-domains: domain_in(text.domains, "scam_domains") = ["discord-nitro.gift"]`,
		"3. Use of automated means\nThe message was detected, and the decision taken, by automated means",
		"No person has reviewed it since.",
		`4. The grounds for the decision` + "\n" + `- The platform's rule scam-domains (rule set version 512136f066fa, domains.yaml:5): "scam link: discord-nitro.gift"`,
		"5. How you can seek redress\n- You can appeal this decision free of charge through the platform's complaint handling (in the app or by writing to its support) until 1 June 2027, quoting decision 42.",
		"out-of-court dispute settlement body certified under Article 21",
		"take the matter to a court",
	} {
		if !strings.Contains(st.Text, part) {
			t.Errorf("text lacks %q:\n%s", part, st.Text)
		}
	}
	if strings.ContainsRune(st.Text, '\u202e') || strings.Contains(st.Text, "shouting") {
		t.Errorf("text shows a raw bidirectional override or the shadow rule:\n%s", st.Text)
	}
}

func TestStatementAfterReviews(t *testing.T) {
	t.Parallel()
	ev := evidence(t)
	appealed := decided.Add(time.Hour)
	upheld := decided.Add(2 * time.Hour)
	lifted := decided.Add(3 * time.Hour)
	ev.Appeals = []store.Appeal{{ID: 5, UserID: "alice", DecisionID: 42, CreatedAt: appealed, Status: "upheld",
		Decision: &store.AppealDecision{AppealID: 5, Outcome: "upheld", Reason: "the link is a known scam", DecidedAt: upheld}}}
	ev.Actions[1].Reversal = &store.ActionReversal{OverturnID: 9, Disposition: "reversed", Reason: "second look: a security researcher", At: lifted}
	st, err := statement.New(ev)
	if err != nil {
		t.Fatal(err)
	}
	want := []statement.Review{
		{AppealID: 5, Outcome: "upheld", AppealAt: &appealed, DecidedAt: &upheld, Reason: "the link is a known scam"},
		{Outcome: "overturned", DecidedAt: &lifted, Reason: "second look: a security researcher"},
	}
	if diff := cmp.Diff(want, st.Automation.Reviews); diff != "" {
		t.Errorf("reviews (-want +got):\n%s", diff)
	}
	for _, part := range []string{
		"A person lifted it on 1 December 2026, 23:06 UTC.",
		`- After your appeal of 1 December 2026, 21:06 UTC, a person reviewed the decision and upheld it on 1 December 2026, 22:06 UTC: "the link is a known scam"`,
		`- A person reviewed the decision and overturned it on 1 December 2026, 23:06 UTC: "second look: a security researcher"`,
	} {
		if !strings.Contains(st.Text, part) {
			t.Errorf("text lacks %q:\n%s", part, st.Text)
		}
	}
}

func TestStatementOfWhatDidNotRestrict(t *testing.T) {
	t.Parallel()
	ev := evidence(t)
	flag := policy.Action{Type: policy.ActionFlag, RuleID: "scam-domains", Target: "user"}
	b, _ := json.Marshal(flag)
	ev.Actions = []store.ActionDetail{
		{ID: 3, RuleID: "scam-domains", Type: "flag", Params: b, Status: "applied", Outcome: &store.ActionOutcome{Outcome: "applied", At: decided}},
		{ID: 4, RuleID: "scam-domains", Type: "ban", Params: ev.Actions[1].Params, Status: "dry_run", Outcome: &store.ActionOutcome{Outcome: "dry_run", At: decided}},
	}
	st, err := statement.New(ev)
	if err != nil {
		t.Fatal(err)
	}
	if st.Restricted {
		t.Error("Restricted = true for a flag and a dry-run ban")
	}
	for _, part := range []string{
		"1. What we decided\nNo restriction of your messages or your account has taken effect.\n",
		"- A report of your account to the platform's moderators for review. Carried out on 1 December 2026, 20:06 UTC.",
		"for 7 days, with the deletion of your messages. Decided but not carried out: the service was running in a trial mode.",
	} {
		if !strings.Contains(st.Text, part) {
			t.Errorf("text lacks %q:\n%s", part, st.Text)
		}
	}
}

func TestStatementOfABeforeSendBlock(t *testing.T) {
	t.Parallel()
	ev := evidence(t)
	ev.Actions = nil
	ev.Event.Type, ev.Event.MessageID, ev.Decision.MessageID = policy.EventBeforeSend, "", ""
	ev.Requested = []policy.Action{{Type: policy.ActionBlock, RuleID: "slurs", Text: "not allowed here"}}
	st, err := statement.New(ev)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Restrictions) != 1 || st.Restrictions[0].Type != "block" || st.Restrictions[0].Status != "applied" || !st.Restricted {
		t.Errorf("restrictions %+v, want one applied block", st.Restrictions)
	}
	if !strings.Contains(st.Text, "- Refusal of your message: it was not sent. Carried out on 1 December 2026, 20:06 UTC.") ||
		!strings.Contains(st.Text, "2. The facts we relied on\nThe message you tried to send in messaging:general, sent ") {
		t.Errorf("text does not say the message was blocked:\n%s", st.Text)
	}
}

func TestNoStatementWithoutAction(t *testing.T) {
	t.Parallel()
	ev := evidence(t)
	ev.Actions, ev.Requested = nil, nil
	ev.Matches = ev.Matches[1:] // the shadow rule alone
	_, err := statement.New(ev)
	if !errors.Is(err, statement.ErrNothingDecided) {
		t.Errorf("statement of a shadow-only decision: %v, want ErrNothingDecided", err)
	}
}

// TestRestrictionWords: each kind of action in plain words, with its
// scope, length and shadow, and what became of it.
func TestRestrictionWords(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		action policy.Action
		status string
		want   string
	}{
		{policy.Action{Type: policy.ActionMute, TimeoutMinutes: 15, Shadow: true}, "held",
			"A shadow mute: you may not post anywhere in the app for 15 minutes (a shadow restriction: you can still post, but nobody else sees your messages). Decided but held back by a daily limit, and not carried out."},
		{policy.Action{Type: policy.ActionMute, TimeoutMinutes: 120, ChannelOnly: true}, "failed",
			"A mute: you may not post in messaging:general for 2 hours. Decided but it could not be carried out."},
		{policy.Action{Type: policy.ActionBan, DeleteMessages: "hard"}, "superseded",
			"A ban from posting anywhere in the app, with no end date, with the permanent deletion of your messages. Decided but not carried out: a stronger action of the same decision replaced it."},
		{policy.Action{Type: policy.ActionDelete, Hard: true}, "suppressed",
			"Permanent deletion of your message msg-2. Decided but not carried out: a person had overturned this rule's earlier action against you."},
		{policy.Action{Type: policy.ActionFlag}, "pending",
			"A report of your message msg-2 to the platform's moderators for review (it stays visible). Decided, and being carried out."},
		{policy.Action{Type: policy.ActionWarn, Text: "be nice"}, "dry_run",
			"A warning posted to you in messaging:general. Decided but not carried out: the service was running in a trial mode."},
	} {
		ev := evidence(t)
		tt.action.RuleID = "r"
		b, err := json.Marshal(tt.action)
		if err != nil {
			t.Fatal(err)
		}
		ev.Actions = []store.ActionDetail{{ID: 9, RuleID: "r", Type: string(tt.action.Type), MessageID: "msg-2", ChannelCID: "messaging:general",
			Params: b, Status: tt.status}}
		st, err := statement.New(ev)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Restrictions[0].Description; got != tt.want {
			t.Errorf("%s %s:\n got %q\nwant %q", tt.action.Type, tt.status, got, tt.want)
		}
		if st.Restricted {
			t.Errorf("%s %s: Restricted, though nothing took effect", tt.action.Type, tt.status)
		}
	}
}
