package store_test

import (
	"context"
	"testing"
	"time"

	"moderator/store/storetest"
)

// TestSharedCallBudget: the bucket lets one call through at once, then
// spaces the next ones by 1/rate however many ask (replicas share the row),
// takes back an unused reservation, and after Stream's 429 holds every call
// until the window's reset.
func TestSharedCallBudget(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.Store(t)
	endpoint := "flag-" + t.Name()
	const perSecond = 0.5 // one call every two seconds
	first, err := st.ReserveCall(ctx, endpoint, perSecond)
	if err != nil || first != 0 {
		t.Fatalf("first reservation: wait %v, %v; want none", first, err)
	}
	second, err := st.ReserveCall(ctx, endpoint, perSecond)
	if err != nil || second <= time.Second || second > 2*time.Second {
		t.Fatalf("second reservation: wait %v, %v; want about 2 s", second, err)
	}
	third, err := st.ReserveCall(ctx, endpoint, perSecond)
	if err != nil || third <= 3*time.Second || third > 4*time.Second {
		t.Fatalf("third reservation: wait %v, %v; want about 4 s (behind the second)", third, err)
	}
	if err := st.ReleaseCall(ctx, endpoint); err != nil {
		t.Fatal(err)
	}
	again, err := st.ReserveCall(ctx, endpoint, perSecond)
	if err != nil || again <= 3*time.Second || again > 4*time.Second {
		t.Fatalf("after a release: wait %v, %v; want the released place (about 4 s)", again, err)
	}

	// Stream said 429 until a minute from now: nobody calls before then.
	other := "ban-" + t.Name()
	if _, err := st.ReserveCall(ctx, other, 5); err != nil {
		t.Fatal(err)
	}
	if err := st.ObserveBudget(ctx, other, 5, 0, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	wait, err := st.ReserveCall(ctx, other, 5)
	if err != nil || wait < 58*time.Second || wait > 61*time.Second {
		t.Fatalf("after a 429: wait %v, %v; want about a minute", wait, err)
	}
}
