package main

import (
	"fmt"
	"testing"
	"time"

	"moderator/actions/streamtest"
	"moderator/store/storetest"
)

// TestTwoReplicasShareTheBudget: two replicas on one database, each
// configured with the app's 120 flags a minute, work a backlog of 130 flags
// against a fake that enforces 120 a minute (and 4 a second). Alone, each
// would pace itself at 120 a minute and together they would pass the
// minute's budget after half a minute; sharing the budget in Postgres, they
// together stay within it: no 429, and no sliding minute with more than the
// budget.
func TestTwoReplicasShareTheBudget(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("works a backlog for over a minute")
	}
	const budget, n = 120, 130
	fake := streamtest.New(t, streamtest.WithCredentials(e2eKey, e2eSecret), streamtest.WithRateLimit(streamtest.RouteFlag, budget))
	env := map[string]string{"MODERATOR_RATE_LIMITS": fmt.Sprintf("flag=%d", budget)}
	dbURL := storetest.NewDatabase(t)
	first := startActionsOn(t, dbURL, fake, env)
	second := startActionsOn(t, dbURL, fake, env)
	for i := range n {
		id := fmt.Sprintf("share-%d", i)
		fake.AddMessage(streamtest.Message{ID: id, CID: "messaging:e2e", UserID: "sharer", Text: "flagme"})
		replica := first
		if i%2 == 1 {
			replica = second
		}
		replica.mustSend(t, id, authoredBy(id, "sharer", "flagme"))
	}
	first.waitApplied(t, n, 3*time.Minute)
	calls := fake.Calls(streamtest.RouteFlag)
	limited := 0
	for _, c := range calls {
		if c.Status == 429 {
			limited++
		}
	}
	if limited != 0 || len(calls) != n {
		t.Fatalf("got %d flag calls of which %d answered 429, want %d and none", len(calls), limited, n)
	}
	// However Stream's fixed windows fall, no minute holds more than the
	// budget: in every sliding minute, at most budget calls (each replica
	// alone would pace itself at the budget, together twice that).
	// The bucket reserves at most the budget in any minute; the calls'
	// flight may shift one or two across the edge on a busy machine.
	// Unshared, the two replicas sent 173 a minute.
	if most := busiest(calls, time.Minute); most > budget+3 {
		t.Fatalf("%d calls in the busiest minute, want at most %d (and 3 of jitter)", most, budget)
	}
	from, last := calls[0].At, calls[len(calls)-1].At
	t.Logf("two replicas: %d flags in %s, %.1f a minute against a budget of %d",
		n, last.Sub(from).Round(time.Second), float64(n-1)/last.Sub(from).Minutes(), budget)
}
