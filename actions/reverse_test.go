package actions_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"moderator/actions"
	"moderator/policy"
)

func TestPlanUndo(t *testing.T) {
	t.Parallel()
	ban := policy.Action{Type: policy.ActionBan, RuleID: "r"}
	tests := []struct {
		name        string
		action      policy.Action
		outcome     actions.Outcome
		effect      bool // a call may have taken effect
		disposition actions.Disposition
		reversal    policy.ActionType
		cancel      bool
		note        string
	}{
		{"applied ban", ban, actions.Applied, false, actions.Reversed, actions.Unban, false, ""},
		{"applied mute", policy.Action{Type: policy.ActionMute}, actions.Applied, false, actions.Reversed, actions.Unmute, false, ""},
		{"applied message flag", policy.Action{Type: policy.ActionFlag}, actions.Applied, false, actions.Reversed, actions.Unflag, false, ""},
		{"applied user flag", policy.Action{Type: policy.ActionFlag, Target: "user"}, actions.Applied, false, actions.Reversed, actions.Unflag, false, ""},
		{"applied soft delete", policy.Action{Type: policy.ActionDelete}, actions.Applied, false, actions.Reversed, actions.Undelete, false, ""},
		{"applied warning", policy.Action{Type: policy.ActionWarn}, actions.Applied, false, actions.Reversed, actions.Unwarn, false, ""},
		{"applied hard delete", policy.Action{Type: policy.ActionDelete, Hard: true}, actions.Applied, false, actions.NothingToUndo, "", false, "a hard delete cannot be undone"},
		{"pending, never called", ban, "", false, actions.Cancelled, "", true, ""},
		{"pending after a lost answer", ban, "", true, actions.Reversed, actions.Unban, true, ""},
		{"pending hard delete after a lost answer", policy.Action{Type: policy.ActionDelete, Hard: true}, "", true, actions.Cancelled, "", true, "a hard delete cannot be undone"},
		{"failed for good", ban, actions.Failed, false, actions.NothingToUndo, "", false, "it failed: Stream refused it"},
		{"failed after lost answers", ban, actions.Failed, true, actions.Reversed, actions.Unban, false, ""},
		{"held", ban, actions.Held, false, actions.NothingToUndo, "", false, "it ended held: nothing was sent to Stream"},
		{"superseded", ban, actions.Superseded, false, actions.NothingToUndo, "", false, "it ended superseded: nothing was sent to Stream"},
		{"suppressed", ban, actions.Suppressed, false, actions.NothingToUndo, "", false, "it ended suppressed: nothing was sent to Stream"},
		{"dry run", ban, actions.DryRun, false, actions.NothingToUndo, "", false, "it ended dry_run: nothing was sent to Stream"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := actions.Recorded{ActionID: 7, Action: tt.action, Outcome: tt.outcome, MayHaveTakenEffect: tt.effect}
			u := actions.PlanUndo(rec)
			got := []any{u.Disposition, u.Reversal, u.Cancel, u.Note}
			want := []any{tt.disposition, tt.reversal, tt.cancel, tt.note}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("undo (-want +got):\n%s", diff)
			}
			if u.ActionID != 7 {
				t.Fatalf("got action %d, want 7", u.ActionID)
			}
		})
	}
}
