package store_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5"

	"moderator/store"
)

func TestRecordStaffAct(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := newSeedStore(t)
	act := store.StaffAct{Actor: "ann", Role: "reviewer", Act: store.ActTimeline, TargetUserID: "bob",
		Target: "decision:3", Reason: "appeal 4", Params: map[string]any{"limit": 50, "rule_id": "links"}}
	if err := st.RecordStaffAct(ctx, act); err != nil {
		t.Fatal(err)
	}
	err := pgx.BeginFunc(ctx, st.Pool(), func(tx pgx.Tx) error {
		return store.RecordStaffActTx(ctx, tx, store.StaffAct{Actor: "cli:root", Role: "admin", Act: store.ActSearch})
	})
	if err != nil {
		t.Fatal(err)
	}
	// A rolled-back transaction leaves no row.
	_ = pgx.BeginFunc(ctx, st.Pool(), func(tx pgx.Tx) error {
		if err := store.RecordStaffActTx(ctx, tx, store.StaffAct{Actor: "ghost", Act: store.ActSearch}); err != nil {
			t.Fatal(err)
		}
		return errors.New("roll back")
	})
	type row struct {
		Actor, Role, Act, TargetUserID, Target, Reason, Params string
	}
	rows, err := st.Pool().Query(ctx, `SELECT actor, role, act, coalesce(target_user_id, '') AS targetuserid,
		coalesce(target, '') AS target, coalesce(reason, '') AS reason, params::text AS params FROM staff_audit ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByName[row])
	if err != nil {
		t.Fatal(err)
	}
	want := []row{
		{"ann", "reviewer", "timeline", "bob", "decision:3", "appeal 4", `{"limit": 50, "rule_id": "links"}`},
		{"cli:root", "admin", "search", "", "", "", `{}`},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("staff_audit (-want +got):\n%s", diff)
	}
	for _, bad := range []store.StaffAct{{Act: "search"}, {Actor: "ann"}} {
		err := st.RecordStaffAct(ctx, bad)
		if _, ok := store.IsInputError(err); !ok {
			t.Errorf("RecordStaffAct(%+v) = %v, want an input error", bad, err)
		}
	}
}

func TestRecordAppeal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := newSeedStore(t)
	s := seedHistory(t, st, 12)
	act := s.actions[0] // alice's
	other := firstAction(s, func(a *seedAction) bool { return a.user != act.user && !a.isReversal })
	rev := firstAction(s, func(a *seedAction) bool { return a.isReversal })

	a, err := st.RecordAppeal(ctx, store.NewAppeal{UserID: act.user, ActionID: act.id, Statement: "I only posted a link to our docs",
		Source: "email", RecordedBy: "ann"})
	if err != nil {
		t.Fatal(err)
	}
	if a.ID == 0 || a.Status != store.AppealPending || a.Decision != nil || a.CreatedAt.IsZero() {
		t.Fatalf("got %+v, want a new pending appeal", a)
	}
	got, err := st.Appeal(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, got); diff != "" {
		t.Errorf("Appeal (-recorded +read):\n%s", diff)
	}
	if got.ActionID != act.id || got.DecisionID != 0 || got.Statement != "I only posted a link to our docs" {
		t.Errorf("got %+v", got)
	}

	// A decision, and an action with its own decision, are fine too.
	if _, err := st.RecordAppeal(ctx, store.NewAppeal{UserID: act.user, DecisionID: act.decisionID, Statement: "s", Source: "in_app", RecordedBy: "ann"}); err != nil {
		t.Errorf("appeal of a decision: %v", err)
	}
	if _, err := st.RecordAppeal(ctx, store.NewAppeal{UserID: act.user, ActionID: act.id, DecisionID: act.decisionID, Statement: "s", Source: "in_app", RecordedBy: "ann"}); err != nil {
		t.Errorf("appeal of an action with its decision: %v", err)
	}

	before := tableCounts(t, st)
	for _, tt := range []struct {
		name  string
		in    store.NewAppeal
		is    error
		field string
	}{
		{"missing action", store.NewAppeal{UserID: act.user, ActionID: 999999, Statement: "s", Source: "x", RecordedBy: "ann"}, store.ErrNotFound, ""},
		{"missing decision", store.NewAppeal{UserID: act.user, DecisionID: 999999, Statement: "s", Source: "x", RecordedBy: "ann"}, store.ErrNotFound, ""},
		{"another user's action", store.NewAppeal{UserID: act.user, ActionID: other.id, Statement: "s", Source: "x", RecordedBy: "ann"}, store.ErrWrongUser, ""},
		{"another user's decision", store.NewAppeal{UserID: act.user, DecisionID: other.decisionID, Statement: "s", Source: "x", RecordedBy: "ann"}, store.ErrWrongUser, ""},
		{"action of another decision", store.NewAppeal{UserID: act.user, ActionID: act.id, DecisionID: other.decisionID, Statement: "s", Source: "x", RecordedBy: "ann"}, nil, "action_id"},
		{"nothing appealed", store.NewAppeal{UserID: act.user, Statement: "s", Source: "x", RecordedBy: "ann"}, nil, "action_id"},
		{"no user", store.NewAppeal{ActionID: act.id, Statement: "s", Source: "x", RecordedBy: "ann"}, nil, "user_id"},
		{"blank statement", store.NewAppeal{UserID: act.user, ActionID: act.id, Statement: "  ", Source: "x", RecordedBy: "ann"}, nil, "statement"},
		{"NUL in statement", store.NewAppeal{UserID: act.user, ActionID: act.id, Statement: "a\x00b", Source: "x", RecordedBy: "ann"}, nil, "statement"},
		{"no source", store.NewAppeal{UserID: act.user, ActionID: act.id, Statement: "s", RecordedBy: "ann"}, nil, "source"},
		{"no recorder", store.NewAppeal{UserID: act.user, ActionID: act.id, Statement: "s", Source: "x"}, nil, "recorded_by"},
		{"negative id", store.NewAppeal{UserID: act.user, ActionID: -1, Statement: "s", Source: "x", RecordedBy: "ann"}, nil, "action_id"},
		{"a reversal", store.NewAppeal{UserID: rev.user, ActionID: rev.id, Statement: "s", Source: "x", RecordedBy: "ann"}, nil, "action_id"},
	} {
		_, err := st.RecordAppeal(ctx, tt.in)
		if tt.is != nil {
			if !errors.Is(err, tt.is) {
				t.Errorf("%s: got %v, want %v", tt.name, err, tt.is)
			}
			continue
		}
		ie, ok := store.IsInputError(err)
		if !ok || ie.Field != tt.field {
			t.Errorf("%s: got %v, want an input error on %s", tt.name, err, tt.field)
		}
	}
	if diff := cmp.Diff(before, tableCounts(t, st)); diff != "" {
		t.Errorf("refused appeals wrote rows (-before +after):\n%s", diff)
	}
	if _, err := st.Appeal(ctx, 999999); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Appeal(999999) = %v, want ErrNotFound", err)
	}
}

func firstAction(s *seed, ok func(*seedAction) bool) *seedAction {
	for _, a := range s.actions {
		if ok(a) {
			return a
		}
	}
	panic("seed has no such action")
}

func TestDecideAppealUpheld(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := newSeedStore(t)
	s := seedHistory(t, st, 6)
	act := s.actions[0]
	ap, err := st.RecordAppeal(ctx, store.NewAppeal{UserID: act.user, ActionID: act.id, Statement: "s", Source: "email", RecordedBy: "ann"})
	if err != nil {
		t.Fatal(err)
	}
	staff := store.StaffAct{Actor: "rita", Role: "reviewer", TargetUserID: act.user}

	// Refused without a reason or a reviewer: nothing written.
	before := tableCounts(t, st)
	for _, tt := range []struct{ reviewer, reason, field string }{{"rita", " ", "reason"}, {"", "spam it was", "reviewer"}} {
		_, err := st.DecideAppealUpheld(ctx, ap.ID, tt.reviewer, tt.reason, staff)
		if ie, ok := store.IsInputError(err); !ok || ie.Field != tt.field {
			t.Errorf("reviewer %q reason %q: got %v, want an input error on %s", tt.reviewer, tt.reason, err, tt.field)
		}
	}
	if _, err := st.DecideAppealUpheld(ctx, 999999, "rita", "r", staff); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deciding a missing appeal: got %v, want ErrNotFound", err)
	}
	if diff := cmp.Diff(before, tableCounts(t, st)); diff != "" {
		t.Errorf("refused decisions wrote rows (-before +after):\n%s", diff)
	}

	// Two reviewers at once: exactly one decides.
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		decided   []store.AppealDecision
		conflicts int
	)
	for range 8 {
		wg.Go(func() {
			d, err := st.DecideAppealUpheld(ctx, ap.ID, "rita", "the link was to a scam site", staff)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				decided = append(decided, d)
			case errors.Is(err, store.ErrAlreadyDecided):
				conflicts++
			default:
				t.Errorf("decide: %v", err)
			}
		})
	}
	wg.Wait()
	if len(decided) != 1 || conflicts != 7 {
		t.Fatalf("got %d decisions and %d conflicts, want 1 and 7", len(decided), conflicts)
	}
	got, err := st.Appeal(ctx, ap.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := &store.AppealDecision{ID: decided[0].ID, AppealID: ap.ID, Outcome: store.AppealUpheld, Reviewer: "rita",
		Reason: "the link was to a scam site", DecidedAt: decided[0].DecidedAt}
	if diff := cmp.Diff(want, got.Decision); diff != "" || got.Status != store.AppealUpheld {
		t.Errorf("status %q, decision (-want +got):\n%s", got.Status, diff)
	}
	var n int
	var target, reason, act2 string
	if err := st.Pool().QueryRow(ctx, `SELECT count(*), max(target), max(reason), max(act) FROM staff_audit WHERE actor = 'rita'`).
		Scan(&n, &target, &reason, &act2); err != nil {
		t.Fatal(err)
	}
	if n != 1 || target != "appeal:"+itoa(ap.ID) || reason != "the link was to a scam site" || act2 != store.ActDecideAppeal {
		t.Errorf("staff audit: %d rows, target %q, reason %q, act %q; want one decide_appeal row for the appeal", n, target, reason, act2)
	}
}

func TestRecordAppealDecisionTx(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := newSeedStore(t)
	s := seedHistory(t, st, 6)
	act := s.actions[0]
	ap, err := st.RecordAppeal(ctx, store.NewAppeal{UserID: act.user, ActionID: act.id, Statement: "s", Source: "email", RecordedBy: "ann"})
	if err != nil {
		t.Fatal(err)
	}
	var overturnID int64
	if err := st.Pool().QueryRow(ctx, `INSERT INTO overturns (action_id, appeal_id, reviewer, reason) VALUES ($1, $2, 'rita', 'wrong') RETURNING id`,
		act.id, ap.ID).Scan(&overturnID); err != nil {
		t.Fatal(err)
	}
	// Refusals do not abort the caller's transaction: it can go on and commit.
	var d store.AppealDecision
	err = pgx.BeginFunc(ctx, st.Pool(), func(tx pgx.Tx) error {
		if _, err := store.RecordAppealDecisionTx(ctx, tx, store.AppealDecisionRow{AppealID: ap.ID, Outcome: store.AppealOverturned,
			Reviewer: "rita", Reason: "wrong"}); err == nil {
			t.Error("overturned without an overturn id: got nil error")
		}
		if _, err := store.RecordAppealDecisionTx(ctx, tx, store.AppealDecisionRow{AppealID: 999999, Outcome: store.AppealUpheld,
			Reviewer: "rita", Reason: "wrong"}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("missing appeal: got %v, want ErrNotFound", err)
		}
		var err error
		d, err = store.RecordAppealDecisionTx(ctx, tx, store.AppealDecisionRow{AppealID: ap.ID, Outcome: store.AppealOverturned,
			Reviewer: "rita", Reason: "wrong", OverturnID: overturnID})
		if err != nil {
			return err
		}
		if _, err := store.RecordAppealDecisionTx(ctx, tx, store.AppealDecisionRow{AppealID: ap.ID, Outcome: store.AppealUpheld,
			Reviewer: "sam", Reason: "no"}); !errors.Is(err, store.ErrAlreadyDecided) {
			t.Errorf("second decision in the same tx: got %v, want ErrAlreadyDecided", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := st.Appeal(ctx, ap.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != store.AppealOverturned || got.Decision == nil || got.Decision.OverturnID != overturnID || got.Decision.ID != d.ID {
		t.Errorf("got %+v (decision %+v), want overturned by overturn %d", got, got.Decision, overturnID)
	}
	if _, err := st.DecideAppealUpheld(ctx, ap.ID, "sam", "no", store.StaffAct{Actor: "sam"}); !errors.Is(err, store.ErrAlreadyDecided) {
		t.Errorf("upholding an overturned appeal: got %v, want ErrAlreadyDecided", err)
	}
}

func TestListAppeals(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := newSeedStore(t)
	s := seedHistory(t, st, 12)
	var all []store.Appeal
	for i, a := range s.actions {
		if a.isReversal {
			continue
		}
		ap, err := st.RecordAppeal(ctx, store.NewAppeal{UserID: a.user, ActionID: a.id, Statement: "s", Source: "email", RecordedBy: "ann"})
		if err != nil {
			t.Fatal(err)
		}
		switch i % 3 {
		case 1:
			d, err := st.DecideAppealUpheld(ctx, ap.ID, "rita", "stands", store.StaffAct{Actor: "rita"})
			if err != nil {
				t.Fatal(err)
			}
			ap.Status, ap.Decision = store.AppealUpheld, &d
		case 2:
			var d store.AppealDecision
			err := pgx.BeginFunc(ctx, st.Pool(), func(tx pgx.Tx) error {
				var overturnID int64
				if err := tx.QueryRow(ctx, `INSERT INTO overturns (action_id, appeal_id, reviewer, reason) VALUES ($1, $2, 'rita', 'wrong')
					RETURNING id`, a.id, ap.ID).Scan(&overturnID); err != nil {
					return err
				}
				var err error
				d, err = store.RecordAppealDecisionTx(ctx, tx, store.AppealDecisionRow{AppealID: ap.ID, Outcome: store.AppealOverturned,
					Reviewer: "rita", Reason: "wrong", OverturnID: overturnID})
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			ap.Status, ap.Decision = store.AppealOverturned, &d
		}
		all = append(all, ap)
	}
	newestFirst(all, func(a store.Appeal) time.Time { return a.CreatedAt }, func(a store.Appeal) int64 { return a.ID })
	mid := all[len(all)/2].CreatedAt // a range edge on a row: [mid, …) has it, [… , mid) does not
	for _, f := range []store.AppealFilter{
		{From: mid}, {To: mid}, {From: mid, To: mid.Add(time.Microsecond)}, {Status: store.AppealPending, To: mid},
		{}, {UserID: "bob"}, {Status: store.AppealPending}, {Status: store.AppealUpheld}, {Status: store.AppealOverturned},
		{UserID: "alice", Status: store.AppealUpheld}, {UserID: "' OR 1=1 --"}, {Status: "'; DROP TABLE appeals; --"},
		{Sort: store.SortOldest}, {Sort: store.SortOldest, Status: store.AppealPending}, {Sort: store.SortOldest, From: mid},
		{RuleID: "links"}, {ActionType: "ban"}, {RuleID: "profanity", ActionType: "flag", Sort: store.SortOldest},
		{RuleID: "' OR 1=1 --"}, {ActionType: "nuke"},
	} {
		var want []store.Appeal
		for _, a := range all {
			if (f.UserID == "" || a.UserID == f.UserID) && (f.Status == "" || a.Status == f.Status) &&
				(f.RuleID == "" || slices.Contains(a.Rules, f.RuleID)) && (f.ActionType == "" || slices.Contains(a.ActionTypes, f.ActionType)) &&
				(f.From.IsZero() || !a.CreatedAt.Before(f.From)) && (f.To.IsZero() || a.CreatedAt.Before(f.To)) {
				want = append(want, a)
			}
		}
		if f.Sort == store.SortOldest {
			slices.Reverse(want)
		}
		var got []store.Appeal
		f.Limit = 2
		for pages := 0; ; pages++ {
			p, err := st.ListAppeals(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, p.Items...)
			if p.NextCursor == "" {
				break
			}
			f.Cursor = p.NextCursor
			if pages > len(all) {
				t.Fatal("pagination does not end")
			}
		}
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("filter %+v (-want +got):\n%s", f, diff)
		}
	}
	for _, status := range []string{store.AppealPending, store.AppealUpheld, store.AppealOverturned} {
		if !slices.ContainsFunc(all, func(a store.Appeal) bool { return a.Status == status }) {
			t.Errorf("no %s appeal in the seed", status)
		}
	}
	if _, err := st.ListAppeals(ctx, store.AppealFilter{Cursor: "bm9wZQ"}); !errors.Is(err, store.ErrBadCursor) {
		t.Errorf("bad cursor: got %v, want ErrBadCursor", err)
	}
	// A cursor belongs to its order.
	p, err := st.ListAppeals(ctx, store.AppealFilter{Limit: 1})
	if err != nil || p.NextCursor == "" {
		t.Fatalf("first page: %v, cursor %q", err, p.NextCursor)
	}
	if _, err := st.ListAppeals(ctx, store.AppealFilter{Sort: store.SortOldest, Cursor: p.NextCursor}); !errors.Is(err, store.ErrBadCursor) {
		t.Errorf("a newest-first cursor in the oldest-first order: got %v, want ErrBadCursor", err)
	}
	for _, a := range all {
		if len(a.Rules) != 1 || len(a.ActionTypes) != 1 {
			t.Errorf("appeal %d of one action: rules %v, action types %v", a.ID, a.Rules, a.ActionTypes)
		}
	}
}
