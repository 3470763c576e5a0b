package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"moderator/store"
	"moderator/store/storetest"
)

// TestLockOverturnTargets: what an overturn reads of each action: its
// outcome, and whether a call may have taken effect (no answer, a timeout
// or a 5xx; not a 429 or a refusal).
func TestLockOverturnTargets(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.Store(t)
	tests := []struct {
		name     string
		statuses []int // attempts' HTTP statuses; 0: no answer
		outcome  string
		effect   bool
	}{
		{"never called", nil, "", false},
		{"rate limited", []int{429}, "", false},
		{"no answer", []int{429, 0}, "", true},
		{"server error", []int{503}, "", true},
		{"timeout", []int{408}, "", true},
		{"refused", []int{403}, store.OutcomeFailed, false},
		{"applied", []int{200}, store.OutcomeApplied, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id := recordWithActions(t, st, t.Name())[0]
			for _, s := range tt.statuses {
				if _, err := st.RecordAttempt(ctx, store.AttemptRow{ActionID: id, Endpoint: "POST /moderation/ban", HTTPStatus: s}); err != nil {
					t.Fatal(err)
				}
			}
			if tt.outcome != "" {
				if _, err := st.RecordOutcome(ctx, store.OutcomeRow{ActionID: id, Outcome: tt.outcome}); err != nil {
					t.Fatal(err)
				}
			}
			err := pgx.BeginFunc(ctx, st.Pool(), func(tx pgx.Tx) error {
				got, err := store.LockOverturnTargetsTx(ctx, tx, id, 0)
				if err != nil {
					return err
				}
				if len(got) != 1 || got[0].ActionID != id || got[0].Outcome != tt.outcome || got[0].MayHaveTakenEffect != tt.effect ||
					got[0].Type != "ban" || got[0].TargetUserID != "u" || string(got[0].Params) != `{"type": "ban"}` || got[0].DecisionID != 0 {
					t.Errorf("got %+v, want outcome %q, effect %t", got, tt.outcome, tt.effect)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
	err := pgx.BeginFunc(ctx, st.Pool(), func(tx pgx.Tx) error {
		_, err := store.LockOverturnTargetsTx(ctx, tx, 1<<40, 0)
		return err
	})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown action: got %v, want ErrNotFound", err)
	}
}

// TestImmunities: per (rule, user) the immunity lasting longest that is
// still in force; expired ones and other pairs do not count.
func TestImmunities(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.Store(t)
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	actionID := recordWithActions(t, st, t.Name())[0]
	user := t.Name() + "-user"
	var ov1, ov2 int64
	err := pgx.BeginFunc(ctx, st.Pool(), func(tx pgx.Tx) error {
		var err error
		if ov1, _, err = store.InsertOverturnTx(ctx, tx, store.NewOverturn{ActionID: actionID, Reviewer: "alice", Reason: "r", ImmuneUntil: now.Add(time.Hour)}); err != nil {
			return err
		}
		if ov2, _, err = store.InsertOverturnTx(ctx, tx, store.NewOverturn{ActionID: actionID, Reviewer: "bob", Reason: "r", ImmuneUntil: now.Add(2 * time.Hour)}); err != nil {
			return err
		}
		return store.InsertImmunitiesTx(ctx, tx, []store.ImmunityRow{
			{OverturnID: ov1, RuleID: "a", UserID: user, Until: now.Add(time.Hour)},
			{OverturnID: ov2, RuleID: "a", UserID: user, Until: now.Add(2 * time.Hour)},
			{OverturnID: ov1, RuleID: "b", UserID: user, Until: now.Add(-time.Minute)}, // over
			{OverturnID: ov1, RuleID: "c", UserID: user, Until: now.Add(time.Hour)},
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []store.Immunity
	err = pgx.BeginFunc(ctx, st.Pool(), func(tx pgx.Tx) error {
		var err error
		got, err = store.ImmunitiesTx(ctx, tx, []store.RuleUser{{RuleID: "a", UserID: user}, {RuleID: "b", UserID: user},
			{RuleID: "c", UserID: "someone-else"}}, now)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Immunity{{RuleID: "a", UserID: user, OverturnID: ov2, Reviewer: "bob", Until: now.Add(2 * time.Hour)}}
	if diff := cmp.Diff(want, got, cmp.Comparer(time.Time.Equal)); diff != "" {
		t.Fatalf("immunities (-want +got):\n%s", diff)
	}
}
