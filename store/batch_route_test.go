package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"moderator/store"
	"moderator/store/storetest"
)

// TestBatcherRoutesAroundABusyFlusher: while one flusher's batch waits (here
// for a user's counter lock, held by another transaction; in life a slow
// commit or a burst), records of other users are committed by the other
// flusher instead of queueing behind it. Before 2026-12-06 a user's
// flusher was fixed by the hash of its id, and half of them waited.
func TestBatcherRoutesAroundABusyFlusher(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.Store(t)
	j := newJudging(t, counterRules)
	b := runBatcher(t, st, store.BatcherConfig{Flushers: 2, Timeout: time.Minute})

	slow := t.Name() + "-slow"
	tx, key := holdUserLock(t, st, slow)
	m := message{id: slow, user: slow, channel: "messaging:" + slow, text: "hi", at: t0}
	waitSlow, err := b.Submit(ctx, j.record(t, slow, m.body()))
	if err != nil {
		t.Fatal(err)
	}
	waitForLockWait(t, st, key)

	for i := range 8 {
		user := fmt.Sprintf("%s-%d", t.Name(), i)
		m := message{id: user, user: user, channel: "messaging:" + user, text: "hi", at: t0}
		quick, stop := context.WithTimeout(ctx, 5*time.Second)
		_, err := b.RecordEvent(quick, j.record(t, user, m.body()))
		stop()
		if err != nil {
			t.Fatalf("user %d, while another user's batch waits: %v", i, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if res, err := waitSlow(ctx); err != nil || res.EventID == 0 {
		t.Fatalf("the waiting record, once the lock is free: %+v, %v", res, err)
	}
}

// holdUserLock takes user's counter lock in a transaction of its own,
// which the test commits to let the user's batches go on (it is rolled
// back when the test ends otherwise), and returns it with the lock's key.
func holdUserLock(t *testing.T, st *store.Store, user string) (pgx.Tx, int32) {
	t.Helper()
	ctx := context.Background()
	tx, err := st.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.WithoutCancel(ctx)) })
	class, key := store.UserLockForTest(user)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, class, key); err != nil {
		t.Fatal(err)
	}
	return tx, key
}

// runBatcher starts a Batcher on st with cfg, stopped when the test ends.
func runBatcher(t *testing.T, st *store.Store, cfg store.BatcherConfig) *store.Batcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b := store.NewBatcher(st, cfg)
	stopped := make(chan struct{})
	go func() { b.Run(ctx); close(stopped) }()
	t.Cleanup(func() { cancel(); <-stopped })
	return b
}

// waitForLockWait returns once a backend waits for the advisory lock key.
func waitForLockWait(t *testing.T, st *store.Store, key int32) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var waiting bool
		err := st.Pool().QueryRow(context.Background(), `SELECT EXISTS (SELECT 1 FROM pg_locks
			WHERE locktype = 'advisory' AND NOT granted AND objid = $1::oid)`, uint32(key)).Scan(&waiting)
		if err != nil {
			t.Fatal(err)
		}
		if waiting {
			return
		}
	}
	t.Fatal("no batch waits for the held lock")
}

// TestBatcherKeepsEachUsersOrder: records of one user submitted one after
// another are committed in that order, however the flushers share the
// users out: each user's events take ids in the order submitted.
func TestBatcherKeepsEachUsersOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.Store(t)
	j := newJudging(t, counterRules)
	b := runBatcher(t, st, store.BatcherConfig{MaxBatch: 4, Flushers: 2})

	const users, each = 6, 30
	ids := make([][]int64, users)
	var wg sync.WaitGroup
	errs := make(chan error, users*each)
	for u := range users {
		wg.Go(func() {
			user := fmt.Sprintf("%s-%d", t.Name(), u)
			var waits []func(context.Context) (store.RecordResult, error)
			for i := range each {
				id := fmt.Sprintf("%s-%d", user, i)
				m := message{id: id, user: user, channel: fmt.Sprintf("messaging:%s-%d", t.Name(), i%3), text: "hi",
					at: t0.Add(time.Duration(i) * time.Second)}
				wait, err := b.Submit(ctx, j.record(t, id, m.body()))
				if err != nil {
					errs <- err
					return
				}
				waits = append(waits, wait)
			}
			for _, wait := range waits {
				res, err := wait(ctx)
				if err != nil {
					errs <- err
					return
				}
				ids[u] = append(ids[u], res.EventID)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for u, got := range ids {
		for i := 1; i < len(got); i++ {
			if got[i] <= got[i-1] {
				t.Fatalf("user %d: record %d took event id %d after record %d's %d: out of order", u, i, got[i], i-1, got[i-1])
			}
		}
	}
}
