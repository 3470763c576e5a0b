package store_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"moderator/policy"
	"moderator/store"
	"moderator/store/storetest"
)

// poison is a record Postgres refuses for its data whatever is retried: its
// event was not made storable by policy.ParseEvent (NUL in an id column).
func poison(t *testing.T, webhookID string) store.EventRecord {
	t.Helper()
	body := fmt.Sprintf(`{"type":"message.new","user":{"id":%q}}`, webhookID+"\x00")
	return store.EventRecord{WebhookID: webhookID, BodySHA256: sha256.Sum256([]byte(body)), Attempt: 2, APIKey: "k",
		Payload: []byte(body), Event: &policy.Event{Type: "message.new", User: &policy.User{ID: webhookID + "\x00"}}}
}

// TestBatcherQuarantinesOnlyTheRefusedRecord: one record that Postgres
// refuses, in a batch with good ones, is quarantined, and the good ones are
// recorded; its retry finds the same quarantine row.
func TestBatcherQuarantinesOnlyTheRefusedRecord(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := storetest.Store(t)
	b := store.NewBatcher(st, store.BatcherConfig{MaxBatch: 64, Flushers: 1})
	id := t.Name()

	// Queue every record before the flusher starts, so that they share
	// one batch.
	const n = 9
	recs := make([]store.EventRecord, n)
	for i := range n {
		recs[i] = record(t, fmt.Sprintf("%s-%d", id, i),
			fmt.Sprintf(`{"type":"message.new","message":{"id":"%s-%d","user":{"id":"%s"}}}`, id, i, id))
	}
	bad := []int{3, 7}
	for _, i := range bad {
		recs[i] = poison(t, fmt.Sprintf("%s-bad-%d", id, i))
	}
	results := make([]store.RecordResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { results[i], errs[i] = b.RecordEvent(ctx, recs[i]) })
	}
	for b.Queued() < n {
		time.Sleep(time.Millisecond)
	}
	stopped := make(chan struct{})
	go func() { b.Run(ctx); close(stopped) }()
	wg.Wait()

	for i := range n {
		if errs[i] != nil {
			t.Fatalf("record %d: %v", i, errs[i])
		}
		isBad := i == bad[0] || i == bad[1]
		switch r := results[i]; {
		case isBad && (r.QuarantineID == 0 || r.EventID != 0):
			t.Errorf("refused record %d: %+v, want quarantined", i, r)
		case isBad && !strings.Contains(r.QuarantineCause, "22021"):
			t.Errorf("refused record %d: cause %q, want the SQLSTATE", i, r.QuarantineCause)
		case !isBad && (r.EventID == 0 || r.QuarantineID != 0 || r.Duplicate != ""):
			t.Errorf("good record %d: %+v, want recorded", i, r)
		}
	}
	if got := countEvents(t, st, "user_id = $1", id); got != n-len(bad) {
		t.Fatalf("recorded %d events, want %d", got, n-len(bad))
	}

	// A retry (Stream did not get the answer) finds the same row.
	again, err := b.RecordEvent(ctx, recs[bad[0]])
	if err != nil || again.QuarantineID != results[bad[0]].QuarantineID {
		t.Fatalf("retry of a quarantined record = %+v, %v; want quarantine row %d", again, err, results[bad[0]].QuarantineID)
	}
	cancel()
	<-stopped

	// What was kept: the exact body, the headers, the error.
	page, err := st.Quarantine(context.Background(), store.AuditFilter{Limit: 200})
	if err != nil {
		t.Fatal(err)
	}
	var q *store.Quarantined
	for i := range page.Items {
		if page.Items[i].ID == results[bad[0]].QuarantineID {
			q = &page.Items[i]
		}
	}
	if q == nil {
		t.Fatalf("quarantine row %d not listed", results[bad[0]].QuarantineID)
	}
	want := recs[bad[0]]
	if string(q.Body) != string(want.Payload) || q.BodyBytes != len(want.Payload) || q.WebhookID != want.WebhookID ||
		q.Attempt != 2 || q.APIKey != "k" || q.SQLState != "22021" || q.EventType != "message.new" ||
		q.Headers["X-Webhook-Id"] != want.WebhookID || q.Error == "" {
		t.Errorf("quarantined row = %+v", *q)
	}
}

func TestQuarantineListPages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.Store(t)
	b := store.NewBatcher(st, store.BatcherConfig{})
	bctx, cancel := context.WithCancel(ctx)
	stopped := make(chan struct{})
	go func() { b.Run(bctx); close(stopped) }()
	defer func() { cancel(); <-stopped }()

	from := time.Now().Add(-time.Second)
	var ids []int64
	for i := range 5 {
		res, err := b.RecordEvent(ctx, poison(t, fmt.Sprintf("%s-%d", t.Name(), i)))
		if err != nil || res.QuarantineID == 0 {
			t.Fatalf("poison %d: %+v, %v", i, res, err)
		}
		ids = append(ids, res.QuarantineID)
	}
	// Other tests quarantine too: page through everything since from and
	// find ours, newest first.
	var got []int64
	f := store.AuditFilter{From: from, Limit: 2}
	for pages := 0; ; pages++ {
		if pages > 100 {
			t.Fatal("pages never end")
		}
		page, err := st.Quarantine(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) > 2 {
			t.Fatalf("page of %d items, limit 2", len(page.Items))
		}
		for _, it := range page.Items {
			for _, id := range ids {
				if it.ID == id {
					got = append(got, id)
				}
			}
		}
		if page.NextCursor == "" {
			break
		}
		f.Cursor = page.NextCursor
	}
	if len(got) != len(ids) {
		t.Fatalf("listed %v, want %v", got, ids)
	}
	for i := range got {
		if got[i] != ids[len(ids)-1-i] {
			t.Fatalf("listed %v, want newest first %v", got, ids)
		}
	}
	if _, err := st.Quarantine(ctx, store.AuditFilter{Cursor: "bogus"}); err != store.ErrBadCursor {
		t.Fatalf("bad cursor: %v, want ErrBadCursor", err)
	}
}
