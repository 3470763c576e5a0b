package store_test

import (
	"context"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"moderator/store"
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

// openReplicas opens n stores on the package database, each with a pool of
// its own, as n replicas of the service would.
func openReplicas(t testing.TB, n int) []*store.Store {
	t.Helper()
	out := make([]*store.Store, n)
	for i := range out {
		s, err := store.Open(context.Background(), storetest.Bounded(storetest.URL(t)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		out[i] = s
	}
	return out
}

// TestReserveCallIsShared: two replicas taking calls from one endpoint's
// budget (one call every 10 s) in turn are paced as one: the k-th call of
// either waits about k-1 slots, whoever asks. The slack allows for the time
// the reservations themselves take on a loaded machine.
func TestReserveCallIsShared(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	replicas := openReplicas(t, 2)
	const perSecond, slot = 0.1, 10 * time.Second
	for k := range 6 {
		wait, err := replicas[k%2].ReserveCall(ctx, "test-shared", perSecond)
		if err != nil {
			t.Fatal(err)
		}
		want := time.Duration(k) * slot
		if wait > want || wait < want-slot/2 {
			t.Fatalf("call %d (replica %d) waits %s, want about %s (one budget for both)", k+1, k%2+1, wait, want)
		}
	}
}

// TestObserveBudgetFewLeft: Stream says 3 calls are left in a window that
// resets in a minute (other clients of the app used the rest). At one call
// a second the bucket would let 60 through by then; it now lets through
// only 3, the last at the reset, so the next call waits most of the minute.
func TestObserveBudgetFewLeft(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.Store(t)
	endpoint := "few-" + t.Name()
	if _, err := st.ReserveCall(ctx, endpoint, 1); err != nil {
		t.Fatal(err)
	}
	if err := st.ObserveBudget(ctx, endpoint, 1, 3, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	for k := range 3 {
		wait, err := st.ReserveCall(ctx, endpoint, 1)
		if err != nil {
			t.Fatal(err)
		}
		if want := time.Duration(58+k) * time.Second; wait < want-5*time.Second || wait > want+time.Second/2 {
			t.Fatalf("call %d of the 3 left waits %s, want about %s (the 3 go by the reset)", k+1, wait, want)
		}
	}
}

// BenchmarkReserveCall is the cost of taking a call from the shared budget:
// one statement (and its commit) on the endpoint's row, by one caller
// alone (its latency) and by 8 callers per core at once on the same row
// (ns/op is then the inverse of the throughput the row allows).
func BenchmarkReserveCall(b *testing.B) {
	st := openReplicas(b, 1)[0]
	ctx := context.Background()
	for _, callers := range []int{1, 8} {
		b.Run(map[int]string{1: "one", 8: "contended"}[callers], func(b *testing.B) {
			var waited atomic.Int64
			b.SetParallelism(callers)
			if callers == 1 {
				defer func(p int) { runtime.GOMAXPROCS(p) }(runtime.GOMAXPROCS(1))
			}
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					wait, err := st.ReserveCall(ctx, "bench", 1e9) // never waits: the cost alone
					if err != nil {
						b.Error(err)
						return
					}
					if wait > 0 {
						waited.Add(1)
					}
				}
			})
			b.ReportMetric(float64(waited.Load()), "waits")
		})
	}
}
