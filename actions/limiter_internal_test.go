package actions

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"moderator/policy"
)

// TestLimiterNeverExceedsStreamWindows schedules a backlog through the
// limiter on a simulated clock and checks every window Stream counts: at
// most perMinute calls in any minute and perMinute/30 (at least 1) in any
// second, wherever the windows start, while the backlog drains at nearly the
// budget.
func TestLimiterNeverExceedsStreamWindows(t *testing.T) {
	t.Parallel()
	for _, perMinute := range []int{1, 2, 30, 59, 60, 61, 300, 1000} {
		t.Run(fmt.Sprint(perMinute), func(t *testing.T) {
			t.Parallel()
			l, err := newLimiters(map[policy.ActionType]int{policy.ActionBan: perMinute})
			if err != nil {
				t.Fatal(err)
			}
			lim := l.forType(policy.ActionBan)
			t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
			n := 3*perMinute + 5
			at := make([]time.Time, n)
			for i := range at {
				at[i] = t0.Add(lim.ReserveN(t0, 1).DelayFrom(t0))
			}
			sort.Slice(at, func(i, j int) bool { return at[i].Before(at[j]) })
			refill := perSecond(perMinute)
			perSec := max(perMinute/30, 1)
			for _, w := range []struct {
				size  time.Duration
				limit int
			}{{time.Minute, perMinute}, {time.Second, perSec}} {
				// The busiest window starts at a call.
				for i := range at {
					j := sort.Search(len(at), func(j int) bool { return !at[j].Before(at[i].Add(w.size)) })
					if got := j - i; got > w.limit {
						t.Fatalf("%d calls in the %s from %s, want at most %d", got, w.size, at[i].Sub(t0), w.limit)
					}
				}
			}
			// Drains at nearly the budget: 3 minutes' worth in about 3 minutes.
			if took, want := at[n-1].Sub(t0), time.Duration(float64(n)/float64(refill)*float64(time.Second)); took > want+time.Second {
				t.Fatalf("backlog of %d took %s, want about %s", n, took, want)
			}
		})
	}
}

func TestNewLimitersRefusesNonPositive(t *testing.T) {
	t.Parallel()
	if _, err := newLimiters(map[policy.ActionType]int{policy.ActionFlag: 0}); err == nil {
		t.Fatal("got nil error for a zero budget, want one")
	}
}
