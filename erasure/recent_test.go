package erasure_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"moderator/erasure"
	"moderator/store"
	"moderator/store/storetest"
)

type failingLister struct{}

func (failingLister) ErasedSince(context.Context, time.Time) (map[string]time.Time, error) {
	return nil, errors.New("database down")
}

// TestRecentTwoReplicas: the replica that erases knows it at once; the
// other learns it from the database at its next refresh, and so does a
// replica started later; an erasure under way (added, not yet recorded)
// survives a refresh.
func TestRecentTwoReplicas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.Store(t)
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	recordMessage(t, st, "recent-ann", "ann text")
	one, two := erasure.NewRecent(st, logger), erasure.NewRecent(st, logger)
	for _, r := range []*erasure.Recent{one, two} {
		if err := r.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if one.Erased("recent-ann") || two.Erased("recent-ann") || one.Erased("") {
		t.Fatal("a user not erased is in the set")
	}
	e := erasure.New(st, logger)
	e.Recent = one
	if _, err := e.Erase(ctx, "recent-ann", store.StaffAct{Actor: "ann", Role: "admin", Reason: "ticket 3"}); err != nil {
		t.Fatal(err)
	}
	if !one.Erased("recent-ann") {
		t.Error("the erasing replica does not know the erasure")
	}
	if two.Erased("recent-ann") {
		t.Error("the other replica knew the erasure before refreshing")
	}
	two.Add("recent-under-way")
	if err := two.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if !two.Erased("recent-ann") || !two.Erased("recent-under-way") {
		t.Errorf("after a refresh the other replica knows ann %v, the erasure under way %v; want both",
			two.Erased("recent-ann"), two.Erased("recent-under-way"))
	}
	late := erasure.NewRecent(st, logger)
	if err := late.Refresh(ctx); err != nil || !late.Erased("recent-ann") {
		t.Errorf("a replica started after the erasure: erased %v (%v), want true", late.Erased("recent-ann"), err)
	}
}

// TestRecentKeepsItsSetWhenRefreshFails: a failed refresh answers its
// error and keeps what the set held.
func TestRecentKeepsItsSetWhenRefreshFails(t *testing.T) {
	t.Parallel()
	r := erasure.NewRecent(failingLister{}, slog.New(slog.NewTextHandler(t.Output(), nil)))
	r.Add("kept")
	if err := r.Refresh(context.Background()); err == nil {
		t.Error("a failing refresh answered no error")
	}
	if !r.Erased("kept") || r.Len() != 1 {
		t.Errorf("after a failed refresh: kept %v, %d users; want the set as it was", r.Erased("kept"), r.Len())
	}
}
