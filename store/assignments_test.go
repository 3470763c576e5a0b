package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"moderator/store"
)

// TestAssignAppeal: a claim holds an appeal; of reviewers claiming at
// once exactly one gets it and the others are told who has it; only the
// holder releases; assign hands it over; a decided appeal is not
// claimed. Every change is a row and a staff act; no-ops write nothing.
func TestAssignAppeal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := newSeedStore(t)
	s := seedHistory(t, st, 6)
	act := s.actions[0]
	ap, err := st.RecordAppeal(ctx, store.NewAppeal{UserID: act.user, ActionID: act.id, Statement: "s", Source: "email", RecordedBy: "ann"})
	if err != nil {
		t.Fatal(err)
	}
	staff := func(role string) store.StaffAct { return store.StaffAct{Role: role} }

	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		winners []string
		held    int
	)
	for i := range 8 {
		wg.Go(func() {
			who := fmt.Sprintf("rev-%d", i)
			_, err := st.AssignAppeal(ctx, ap.ID, store.AssignClaim, "", who, staff("reviewer"))
			mu.Lock()
			defer mu.Unlock()
			var he *store.HeldError
			switch {
			case err == nil:
				winners = append(winners, who)
			case errors.As(err, &he) && errors.Is(err, store.ErrHeld):
				held++
			default:
				t.Errorf("claim: %v", err)
			}
		})
	}
	wg.Wait()
	if len(winners) != 1 || held != 7 {
		t.Fatalf("claims at once: %d won (%v), %d told it is held; want 1 and 7", len(winners), winners, held)
	}
	holder := winners[0]
	got, err := st.Appeal(ctx, ap.ID)
	if err != nil || got.AssignedTo != holder {
		t.Fatalf("appeal held by %q (%v), want %s", got.AssignedTo, err, holder)
	}

	before := tableCounts(t, st)
	if _, err := st.AssignAppeal(ctx, ap.ID, store.AssignClaim, "", holder, staff("reviewer")); err != nil {
		t.Fatalf("claiming again: %v", err)
	}
	if _, err := st.AssignAppeal(ctx, ap.ID, store.AssignRelease, "", "someone-else", staff("reviewer")); !errors.Is(err, store.ErrHeld) {
		t.Fatalf("release by another: got %v, want ErrHeld", err)
	}
	for _, tt := range []struct {
		act, assignee, actor, field string
	}{{"steal", "", "x", "act"}, {store.AssignAssign, " ", "x", "assignee"}, {store.AssignClaim, "", "", "actor"}} {
		if _, err := st.AssignAppeal(ctx, ap.ID, tt.act, tt.assignee, tt.actor, staff("reviewer")); func() bool {
			ie, ok := store.IsInputError(err)
			return !ok || ie.Field != tt.field
		}() {
			t.Errorf("%+v: got %v, want an input error on %s", tt, err, tt.field)
		}
	}
	if _, err := st.AssignAppeal(ctx, 999999, store.AssignClaim, "", "x", staff("reviewer")); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("claiming a missing appeal: got %v, want ErrNotFound", err)
	}
	if after := tableCounts(t, st); after["staff_audit"] != before["staff_audit"] || countRows(t, st, "appeal_assignments") != 1 {
		t.Fatalf("refused or idle claims wrote rows: staff_audit %d → %d, %d assignments", before["staff_audit"], after["staff_audit"], countRows(t, st, "appeal_assignments"))
	}

	if a, err := st.AssignAppeal(ctx, ap.ID, store.AssignAssign, "rita", "lead", staff("admin")); err != nil || a.AssignedTo != "rita" {
		t.Fatalf("assign to rita: %+v, %v", a, err)
	}
	if a, err := st.AssignAppeal(ctx, ap.ID, store.AssignRelease, "", "rita", staff("reviewer")); err != nil || a.AssignedTo != "" {
		t.Fatalf("rita releases: %+v, %v", a, err)
	}
	if n := countRows(t, st, "appeal_assignments"); n != 3 {
		t.Fatalf("got %d assignment rows, want 3 (claim, assign, release)", n)
	}
	var acts []string
	rows, err := st.Pool().Query(ctx, `SELECT actor || ':' || act FROM staff_audit WHERE target = $1 ORDER BY id`, fmt.Sprintf("appeal:%d", ap.ID))
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			t.Fatal(err)
		}
		acts = append(acts, a)
	}
	if want := []string{holder + ":claim_appeal", "lead:assign_appeal", "rita:release_appeal"}; fmt.Sprint(acts) != fmt.Sprint(want) {
		t.Fatalf("staff acts = %v, want %v", acts, want)
	}

	if _, err := st.DecideAppealUpheld(ctx, ap.ID, "rita", "stands", store.StaffAct{}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.AssignAppeal(ctx, ap.ID, store.AssignClaim, "", "rita", staff("reviewer")); !errors.Is(err, store.ErrAlreadyDecided) {
		t.Fatalf("claiming a decided appeal: got %v, want ErrAlreadyDecided", err)
	}
}

func TestAppealNotesAndQueue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := newSeedStore(t)
	q, err := st.AppealQueueStats(ctx)
	if err != nil || q.Pending != 0 || !q.OldestPending.IsZero() {
		t.Fatalf("empty queue: %+v, %v", q, err)
	}
	s := seedHistory(t, st, 6)
	var ids []int64
	for _, act := range s.actions {
		if act.isReversal || len(ids) == 3 {
			continue
		}
		ap, err := st.RecordAppeal(ctx, store.NewAppeal{UserID: act.user, ActionID: act.id, Statement: "s", Source: "email", RecordedBy: "ann"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ap.ID)
	}
	first, err := st.Appeal(ctx, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.DecideAppealUpheld(ctx, ids[0], "rita", "stands", store.StaffAct{}); err != nil {
		t.Fatal(err)
	}
	second, _ := st.Appeal(ctx, ids[1])
	q, err = st.AppealQueueStats(ctx)
	if err != nil || q.Pending != 2 || !q.OldestPending.Equal(second.CreatedAt) || q.OldestPending.Equal(first.CreatedAt) {
		t.Fatalf("queue = %+v (%v), want 2 pending, the oldest at %s", q, err, second.CreatedAt)
	}

	before := countRows(t, st, "appeal_notes")
	for _, body := range []string{"", "  ", "a\x00b", strings.Repeat("x", 6000)} {
		if _, err := st.AddAppealNote(ctx, ids[1], "rita", body, store.StaffAct{Role: "reviewer"}); err == nil {
			t.Errorf("note %q: accepted", body)
		}
	}
	if _, err := st.AddAppealNote(ctx, 999999, "rita", "hi", store.StaffAct{Role: "reviewer"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("note on a missing appeal: got %v, want ErrNotFound", err)
	}
	if n := countRows(t, st, "appeal_notes"); n != before {
		t.Fatalf("refused notes wrote %d rows", n-before)
	}
	for _, body := range []string{"checked the thread", "<b>second</b>"} {
		if _, err := st.AddAppealNote(ctx, ids[1], "rita", body, store.StaffAct{Role: "reviewer"}); err != nil {
			t.Fatal(err)
		}
	}
	notes, err := st.AppealNotes(ctx, ids[1])
	if err != nil || len(notes) != 2 || notes[0].Body != "checked the thread" || notes[1].Author != "rita" {
		t.Fatalf("notes = %+v, %v", notes, err)
	}
}

func TestConsoleSessions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := newSeedStore(t)
	live := store.ConsoleSession{Subject: "rita", Role: "reviewer", CSRFToken: "c", ExpiresAt: time.Now().Add(time.Hour)}
	if err := st.CreateConsoleSession(ctx, []byte("live"), live); err != nil {
		t.Fatal(err)
	}
	expired := live
	expired.ExpiresAt = time.Now().Add(-time.Second)
	if err := st.CreateConsoleSession(ctx, []byte("old"), expired); err != nil {
		t.Fatal(err)
	}
	if got, err := st.ConsoleSession(ctx, []byte("live")); err != nil || got.Subject != "rita" || got.CSRFToken != "c" {
		t.Fatalf("live session: %+v, %v", got, err)
	}
	if _, err := st.ConsoleSession(ctx, []byte("old")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired session: got %v, want ErrNotFound", err)
	}
	if _, err := st.ConsoleSession(ctx, []byte("nope")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown session: got %v, want ErrNotFound", err)
	}
	// A new sign-in sweeps the expired ones.
	if err := st.CreateConsoleSession(ctx, []byte("other"), live); err != nil {
		t.Fatal(err)
	}
	if n := countRows(t, st, "console_sessions"); n != 2 {
		t.Fatalf("got %d sessions, want 2 (the expired one swept)", n)
	}
	if err := st.DeleteConsoleSession(ctx, []byte("live")); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ConsoleSession(ctx, []byte("live")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("signed-out session: got %v, want ErrNotFound", err)
	}
	if err := st.CreateConsoleSession(ctx, nil, live); err == nil {
		t.Fatal("a session without an id was stored")
	}
}

func countRows(t *testing.T, st *store.Store, table string) int {
	t.Helper()
	var n int
	if err := st.Pool().QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}
