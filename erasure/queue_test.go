package erasure_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"

	"moderator/erasure"
	"moderator/jobs"
	"moderator/store"
	"moderator/store/storetest"
)

// failingFirst is the real store, failing its first n erasures as a
// database outage would.
type failingFirst struct {
	*store.Store
	mu    sync.Mutex
	fails int
}

func (f *failingFirst) EraseUser(ctx context.Context, userID string, act store.StaffAct, spooled int) (store.Erasure, error) {
	f.mu.Lock()
	fail := f.fails > 0
	f.fails--
	f.mu.Unlock()
	if fail {
		return store.Erasure{}, errors.New("connection refused")
	}
	return f.Store.EraseUser(ctx, userID, act, spooled)
}

// newWorkers is the jobs client running q on st's database.
func newWorkers(t *testing.T, st *store.Store, logger *slog.Logger, q *erasure.Queue) *jobs.Client {
	t.Helper()
	workers, err := jobs.New(st.Pool(), jobs.Config{Logger: logger}, q)
	if err != nil {
		t.Fatal(err)
	}
	return workers
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestQueuedErasureRetriedUntilItSucceeds: an erasure queued (as Stream's
// user.deleted's is when it fails at once) fails twice, is counted twice
// in moderator_erasure_failures_total, and is retried until it erases the
// user as the system, once.
func TestQueuedErasureRetriedUntilItSucceeds(t *testing.T) {
	// Not parallel: the River clients of one database elect one leader,
	// whose scheduler promotes scheduled jobs; two tests would wait on a
	// handover.
	ctx := context.Background()
	st := storetest.Store(t)
	recordMessage(t, st, "queued-dee", "dee text")
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	e := erasure.New(&failingFirst{Store: st, fails: 2}, logger)
	reg := prometheus.NewRegistry()
	q := erasure.NewQueue(e, erasure.QueueConfig{Reg: reg, RetryBase: time.Millisecond})
	e.Later = q
	workers := newWorkers(t, st, logger, q)
	events, cancel := workers.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed)
	defer cancel()
	if err := e.EraseUserLater(ctx, "queued-dee"); err != nil {
		t.Fatal(err)
	}
	if err := workers.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = workers.Stop(ctx) }()
	failed := 0
	for done := false; !done; {
		select {
		case ev := <-events:
			if ev.Job.Kind != erasure.JobKind {
				continue
			}
			if ev.Kind == river.EventKindJobFailed {
				failed++
				continue
			}
			done = true
		case <-time.After(time.Minute):
			t.Fatalf("the queued erasure did not complete (%d failed attempts seen)", failed)
		}
	}
	if failed != 2 {
		t.Errorf("%d failed attempts, want 2", failed)
	}
	if n := counterValue(t, reg, "moderator_erasure_failures_total"); n != 2 {
		t.Errorf("moderator_erasure_failures_total = %v, want 2", n)
	}
	if n := counterValue(t, reg, "moderator_erasures_queued_total"); n != 1 {
		t.Errorf("moderator_erasures_queued_total = %v, want 1", n)
	}
	if n, actor := erasures(t, st, "queued-dee"); n != 1 || actor != store.ActorSystem {
		t.Errorf("staff audit: %d erasures by %q, want 1 by the system", n, actor)
	}
	var text string
	if err := st.Pool().QueryRow(ctx, `SELECT payload #>> '{message,text}' FROM events WHERE user_id = 'queued-dee'`).Scan(&text); err != nil || text != store.Redacted {
		t.Errorf("after the queued erasure the event holds %q (%v), want the marker", text, err)
	}
}

// TestEraseUserLaterWithoutQueue: an Eraser with no queue says so rather
// than dropping the erasure.
func TestEraseUserLaterWithoutQueue(t *testing.T) {
	t.Parallel()
	e := erasure.New(storetest.Store(t), slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err := e.EraseUserLater(context.Background(), "nobody"); err == nil {
		t.Error("queued without a queue: no error")
	}
}

// TestErasureFollowUp: an erasure schedules its follow-up; a message
// recorded after the erasure (as one another replica took before it
// learned the erasure would be) is redacted when the follow-up runs, as
// the system, and the follow-up schedules none of its own.
func TestErasureFollowUp(t *testing.T) {
	// Not parallel: the River clients of one database elect one leader,
	// whose scheduler promotes scheduled jobs; two tests would wait on a
	// handover.
	ctx := context.Background()
	st := storetest.Store(t)
	logger := slog.New(slog.NewTextHandler(t.Output(), nil))
	e := erasure.New(st, logger)
	q := erasure.NewQueue(e, erasure.QueueConfig{Reg: prometheus.NewRegistry(), FollowUpAfter: time.Millisecond})
	e.Later = q
	workers := newWorkers(t, st, logger, q)
	if _, err := e.Erase(ctx, "follow-eli", store.StaffAct{Actor: "ann", Role: "admin", Reason: "ticket 4"}); err != nil {
		t.Fatal(err)
	}
	recordMessage(t, st, "follow-eli", "slipped text")
	events, cancel := workers.Subscribe(river.EventKindJobCompleted)
	defer cancel()
	if err := workers.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = workers.Stop(ctx) }()
	for done := false; !done; {
		select {
		case ev := <-events:
			done = ev.Job.Kind == erasure.JobKind && strings.Contains(string(ev.Job.EncodedArgs), `"follow-eli"`)
		case <-time.After(time.Minute):
			t.Fatal("the follow-up did not run")
		}
	}
	var text string
	if err := st.Pool().QueryRow(ctx, `SELECT payload #>> '{message,text}' FROM events WHERE user_id = 'follow-eli'`).Scan(&text); err != nil || text != store.Redacted {
		t.Errorf("after the follow-up the slipped message holds %q (%v), want the marker", text, err)
	}
	rows, err := st.Pool().Query(ctx, `SELECT actor FROM staff_audit WHERE act = 'erase' AND target_user_id = 'follow-eli' ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	if acts, err := pgx.CollectRows(rows, pgx.RowTo[string]); err != nil || len(acts) != 2 || acts[0] != "ann" || acts[1] != store.ActorSystem {
		t.Errorf("erasures recorded by %v (%v), want ann's then the system's", acts, err)
	}
	var jobs int
	if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = $1 AND args ->> 'user_id' = 'follow-eli'`,
		erasure.JobKind).Scan(&jobs); err != nil || jobs != 1 {
		t.Errorf("%d erasure jobs for the user (%v), want the one follow-up", jobs, err)
	}
}
