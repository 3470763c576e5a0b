package store_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"moderator/policy"
	"moderator/store"
	"moderator/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

// record builds an EventRecord for body with a webhook id unique to the test.
func record(t *testing.T, webhookID, body string) store.EventRecord {
	t.Helper()
	ev, err := policy.ParseEvent([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return store.EventRecord{WebhookID: webhookID, BodySHA256: sha256.Sum256([]byte(body)), Attempt: 1,
		APIKey: "k", Payload: []byte(body), Event: ev}
}

func countEvents(t *testing.T, st *store.Store, where string, args ...any) int {
	t.Helper()
	var n int
	if err := st.Pool().QueryRow(context.Background(), "SELECT count(*) FROM events WHERE "+where, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRecordEventDeduplicates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.Store(t)
	id := t.Name()
	body := fmt.Sprintf(`{"type":"message.new","cid":"messaging:%s","message":{"id":"%s-m","text":"hi","user":{"id":"%s-u"}},"created_at":"2026-11-24T10:00:00Z"}`, id, id, id)

	first, err := st.RecordEvent(ctx, record(t, id+"-1", body))
	if err != nil {
		t.Fatal(err)
	}
	if first.Duplicate != "" || first.EventID == 0 {
		t.Fatalf("first delivery = %+v, want a new event", first)
	}
	retry, err := st.RecordEvent(ctx, record(t, id+"-1", body))
	if err != nil {
		t.Fatal(err)
	}
	if retry != (store.RecordResult{EventID: first.EventID, Duplicate: store.DuplicateWebhookID}) {
		t.Fatalf("retry = %+v, want duplicate of %d by webhook id", retry, first.EventID)
	}
	replay, err := st.RecordEvent(ctx, record(t, id+"-2", body))
	if err != nil {
		t.Fatal(err)
	}
	if replay != (store.RecordResult{EventID: first.EventID, Duplicate: store.DuplicateBody}) {
		t.Fatalf("replay = %+v, want duplicate of %d by body", replay, first.EventID)
	}
	if n := countEvents(t, st, "user_id = $1", id+"-u"); n != 1 {
		t.Fatalf("rows = %d, want 1", n)
	}
	var gotCID, gotMsg, gotType string
	if err := st.Pool().QueryRow(ctx, "SELECT channel_cid, message_id, type FROM events WHERE id = $1", first.EventID).Scan(&gotCID, &gotMsg, &gotType); err != nil {
		t.Fatal(err)
	}
	if gotCID != "messaging:"+id || gotMsg != id+"-m" || gotType != "message.new" {
		t.Fatalf("indexed columns = %q %q %q", gotCID, gotMsg, gotType)
	}
}

func TestRecordEventConcurrentDeliveries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.Store(t)
	id := t.Name()
	body := fmt.Sprintf(`{"type":"message.new","message":{"id":"%s","user":{"id":"%s"}}}`, id, id)
	var (
		wg              sync.WaitGroup
		mu              sync.Mutex
		inserted, dupes int
		errs            []error
	)
	for range 100 {
		wg.Go(func() {
			res, err := st.RecordEvent(ctx, record(t, id, body))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				errs = append(errs, err)
			case res.Duplicate == "":
				inserted++
			default:
				dupes++
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d errors, first: %v", len(errs), errs[0])
	}
	if inserted != 1 || dupes != 99 {
		t.Fatalf("inserted %d, duplicates %d; want 1 and 99", inserted, dupes)
	}
	if n := countEvents(t, st, "message_id = $1", id); n != 1 {
		t.Fatalf("rows = %d, want 1", n)
	}
}

func TestRecordEventPayloadsJSONBRefuses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.Store(t)
	tests := []struct {
		name, body, wantText string
		repaired             bool // the stored payload differs from the body
	}{
		{"nul escape", `{"type":"message.new","message":{"id":"nul-1","text":"a\u0000b"}}`, "a\uFFFDb", true},
		{"escaped backslash before u0000", `{"type":"message.new","message":{"id":"nul-2","text":"a\\u0000b"}}`, `a\u0000b`, false},
		{"invalid utf-8", "{\"type\":\"message.new\",\"message\":{\"id\":\"nul-3\",\"text\":\"a\xffb\"}}", "a\uFFFDb", true},
		{"lone high surrogate", `{"type":"message.new","message":{"id":"sur-1","text":"a\ud800b"}}`, "a\uFFFDb", true},
		{"lone high surrogate before an escape", `{"type":"message.new","message":{"id":"sur-2","text":"a\uD800\u0041"}}`, "a\uFFFDA", true},
		{"lone low surrogate", `{"type":"message.new","message":{"id":"sur-3","text":"a\udc00b"}}`, "a\uFFFDb", true},
		{"surrogate pair kept", `{"type":"message.new","message":{"id":"sur-4","text":"a\ud83d\ude00b"}}`, "a😀b", false},
		{"high surrogate at the end", `{"type":"message.new","message":{"id":"sur-5","text":"\ud800"}}`, "\uFFFD", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := st.RecordEvent(ctx, record(t, t.Name(), tt.body))
			if err != nil {
				t.Fatalf("RecordEvent: %v", err)
			}
			var text string
			if err := st.Pool().QueryRow(ctx, "SELECT payload->'message'->>'text' FROM events WHERE id = $1", res.EventID).Scan(&text); err != nil {
				t.Fatal(err)
			}
			if text != tt.wantText {
				t.Fatalf("stored text = %q, want %q", text, tt.wantText)
			}
			// The exact signed bytes are kept when the payload was repaired.
			var raw []byte
			err = st.Pool().QueryRow(ctx, "SELECT body FROM event_raw_bodies WHERE event_id = $1", res.EventID).Scan(&raw)
			switch {
			case tt.repaired && err != nil:
				t.Fatalf("raw body of a repaired payload: %v", err)
			case tt.repaired && string(raw) != tt.body:
				t.Fatalf("raw body = %q, want the body as sent", raw)
			case !tt.repaired && !errors.Is(err, pgx.ErrNoRows):
				t.Fatalf("raw body of a payload stored as sent: %v, want none", err)
			}
		})
	}
}

func TestEventsAreAppendOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.Store(t)
	res, err := st.RecordEvent(ctx, record(t, t.Name(), `{"type":"message.new","message":{"id":"append-only"}}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{"UPDATE events SET type = 'x' WHERE id = $1", "DELETE FROM events WHERE id = $1"} {
		_, err := st.Pool().Exec(ctx, stmt, res.EventID)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Errorf("%s: got %v, want insufficient_privilege from the append-only trigger", stmt, err)
		}
	}
}

func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := storetest.NewDatabase(t)
	const replicas = 4
	var wg sync.WaitGroup
	results := make([][]int, replicas)
	errs := make([]error, replicas)
	for i := range replicas {
		wg.Go(func() {
			pool, err := pgxpool.New(ctx, url)
			if err != nil {
				errs[i] = err
				return
			}
			defer pool.Close()
			results[i], errs[i] = store.New(pool).Migrate(ctx)
		})
	}
	wg.Wait()
	all, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for i := range replicas {
		if errs[i] != nil {
			t.Fatalf("replica %d: %v", i, errs[i])
		}
		total += len(results[i])
	}
	if total != len(all) {
		t.Fatalf("migrations applied %d times in all, want each of %d exactly once: %v", total, len(all), results)
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	again, err := store.New(pool).Migrate(ctx)
	if err != nil || len(again) != 0 {
		t.Fatalf("second migrate = %v, %v; want nothing to do", again, err)
	}
}

func TestRecordEventsBatchWithDuplicatesInside(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.Store(t)
	id := t.Name()
	a := fmt.Sprintf(`{"type":"message.new","message":{"id":"%s-a"}}`, id)
	b := fmt.Sprintf(`{"type":"message.new","message":{"id":"%s-b"}}`, id)
	var hooked []int64
	hook := func(ctx context.Context, tx pgx.Tx, evs []store.NewEvent) error {
		for _, e := range evs {
			hooked = append(hooked, e.EventID)
		}
		return nil
	}
	res, err := st.RecordEvents(ctx, []store.EventRecord{
		record(t, id+"-1", a), // new
		record(t, id+"-1", a), // a retry inside the same batch
		record(t, id+"-2", a), // a replay inside the same batch
		record(t, id+"-3", b), // new
	}, hook)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(hooked) != fmt.Sprint([]int64{res[0].EventID, res[3].EventID}) {
		t.Fatalf("hook saw events %v, want the two new ones %d and %d", hooked, res[0].EventID, res[3].EventID)
	}
	if res[0].Duplicate != "" || res[3].Duplicate != "" || res[0].EventID == res[3].EventID {
		t.Fatalf("new records: %+v %+v", res[0], res[3])
	}
	if res[1] != (store.RecordResult{EventID: res[0].EventID, Duplicate: store.DuplicateWebhookID}) {
		t.Fatalf("retry in batch = %+v, want duplicate of %d by webhook id", res[1], res[0].EventID)
	}
	if res[2] != (store.RecordResult{EventID: res[0].EventID, Duplicate: store.DuplicateBody}) {
		t.Fatalf("replay in batch = %+v, want duplicate of %d by body", res[2], res[0].EventID)
	}
}

func TestBatcherGroupsConcurrentWrites(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	st := storetest.Store(t)
	b := store.NewBatcher(st, store.BatcherConfig{MaxBatch: 16, Flushers: 2})
	stopped := make(chan struct{})
	go func() { b.Run(ctx); close(stopped) }()

	id := t.Name()
	// 100 distinct events, each delivered twice under one id (a retry), and
	// ten of them once more under a new id (a replay): 210 deliveries.
	const n = 210
	var wg sync.WaitGroup
	results := make([]store.RecordResult, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			event, wid := i/2, fmt.Sprintf("%s-%d", id, i/2)
			if i >= 200 {
				event, wid = (i-200)*10, fmt.Sprintf("%s-replay-%d", id, i)
			}
			body := fmt.Sprintf(`{"type":"message.new","message":{"id":"%s-%d","user":{"id":"%s"}}}`, id, event, id)
			results[i], errs[i] = b.RecordEvent(ctx, record(t, wid, body))
		})
	}
	wg.Wait()
	cancel()
	<-stopped
	newRows := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("record %d: %v", i, errs[i])
		}
		if results[i].Duplicate == "" {
			newRows++
		}
	}
	if newRows != 100 {
		t.Fatalf("%d records reported new, want 100", newRows)
	}
	if got := countEvents(t, st, "user_id = $1", id); got != 100 {
		t.Fatalf("rows = %d, want 100", got)
	}
}

func TestRecordEventWritesDecision(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.Store(t)
	id := t.Name()
	decision := &policy.Decision{
		RuleSetVersion: "v-test",
		Matches: []policy.Match{
			{RuleID: "links", Mode: policy.ModeEnforce, Evidence: map[string]any{"text.links": []string{"https://x.example"}}},
			{RuleID: "caps", Mode: policy.ModeShadow, Evidence: map[string]any{"text": "nul\x00 and bad \xff utf-8"}},
		},
		Actions: []policy.Action{{Type: "flag", RuleID: "links", Reason: "link"}},
		Errors:  []policy.RuleError{{RuleID: "broken", Error: "boom"}},
	}
	rec := record(t, id, fmt.Sprintf(`{"type":"message.new","message":{"id":"%s","user":{"id":"%s-u"}}}`, id, id))
	rec.Decision = decision
	res, err := st.RecordEvent(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	var (
		version           string
		matched, enforced []string
		userID            string
		actionType        string
		errCount          int
	)
	err = st.Pool().QueryRow(ctx, `SELECT d.rule_set_version, d.matched_rules, d.enforced_rules, d.user_id,
			d.actions->0->>'type', jsonb_array_length(d.errors)
		FROM decisions d JOIN events e ON e.id = d.event_id
		WHERE d.event_id = $1 AND e.rule_set_version = 'v-test'`, res.EventID).
		Scan(&version, &matched, &enforced, &userID, &actionType, &errCount)
	if err != nil {
		t.Fatalf("read decision: %v", err)
	}
	if version != "v-test" || fmt.Sprint(matched) != "[links caps]" || fmt.Sprint(enforced) != "[links]" ||
		userID != id+"-u" || actionType != "flag" || errCount != 1 {
		t.Fatalf("decision row = %q %v %v %q %q %d", version, matched, enforced, userID, actionType, errCount)
	}
	// A retry of the event writes no second decision.
	if _, err := st.RecordEvent(ctx, rec); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := st.Pool().QueryRow(ctx, "SELECT count(*) FROM decisions WHERE message_id = $1", id).Scan(&n); err != nil || n != 1 {
		t.Fatalf("decisions = %d (%v), want 1", n, err)
	}
	// No match and no error: the event carries the version, no decision row.
	quiet := record(t, id+"-quiet", fmt.Sprintf(`{"type":"message.new","message":{"id":"%s-quiet"}}`, id))
	quiet.Decision = &policy.Decision{RuleSetVersion: "v-test"}
	if _, err := st.RecordEvent(ctx, quiet); err != nil {
		t.Fatal(err)
	}
	if err := st.Pool().QueryRow(ctx, "SELECT count(*) FROM decisions WHERE message_id = $1", id+"-quiet").Scan(&n); err != nil || n != 0 {
		t.Fatalf("decisions for a quiet event = %d (%v), want 0", n, err)
	}
}

func TestRecordEventsHookErrorRollsBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := storetest.Store(t)
	id := t.Name()
	rec := record(t, id, fmt.Sprintf(`{"type":"message.new","message":{"id":"%s"}}`, id))
	rec.Decision = &policy.Decision{RuleSetVersion: "v", Matches: []policy.Match{{RuleID: "r", Mode: policy.ModeEnforce}}}
	failing := func(ctx context.Context, tx pgx.Tx, evs []store.NewEvent) error { return errors.New("queue full") }
	if _, err := st.RecordEvents(ctx, []store.EventRecord{rec}, failing); err == nil {
		t.Fatal("got nil error from a failing hook")
	}
	if n := countEvents(t, st, "message_id = $1", id); n != 0 {
		t.Fatalf("rows after a failed hook = %d, want 0 (rolled back)", n)
	}
	// Stream's retry then records it.
	if _, err := st.RecordEvents(ctx, []store.EventRecord{rec}, nil); err != nil {
		t.Fatal(err)
	}
	if n := countEvents(t, st, "message_id = $1", id); n != 1 {
		t.Fatalf("rows after the retry = %d, want 1", n)
	}
}

// TestBatcherBusy: a batch of eight or more queued records makes the
// intake busy (the word indexer then gives way); records committed one at
// a time do not. The records are queued before the flushers start, so the
// first batch takes them all whatever the machine's speed.
func TestBatcherBusy(t *testing.T) {
	t.Parallel()
	st := storetest.Store(t)
	for _, tc := range []struct {
		records int
		want    bool
	}{{1, false}, {7, false}, {8, true}} {
		t.Run(fmt.Sprint(tc.records), func(t *testing.T) {
			b := store.NewBatcher(st, store.BatcherConfig{MaxBatch: 16, Flushers: 1})
			waits := submitMessages(t, b, tc.records)
			if !b.BusyAt().IsZero() {
				t.Fatal("busy before any batch was taken")
			}
			runUntilAnswered(t, b, waits)
			if got := !b.BusyAt().IsZero(); got != tc.want {
				t.Fatalf("busy after a batch of %d = %v, want %v", tc.records, got, tc.want)
			}
		})
	}
}

// TestBatcherObserves: Observe hears of every batch, with each record's
// wait for a flusher (here at least the time the records were queued
// before the flusher started) and the time the batch took.
func TestBatcherObserves(t *testing.T) {
	t.Parallel()
	st := storetest.Store(t)
	var (
		mu    sync.Mutex
		stats []store.BatchStats
	)
	// The shared queue holds MaxBatch×Flushers records: four, all queued
	// before the flushers start.
	b := store.NewBatcher(st, store.BatcherConfig{MaxBatch: 2, Flushers: 2, Observe: func(s store.BatchStats) {
		mu.Lock()
		defer mu.Unlock()
		stats = append(stats, s)
	}})
	waits := submitMessages(t, b, 4)
	const held = 50 * time.Millisecond
	time.Sleep(held)
	runUntilAnswered(t, b, waits)
	mu.Lock()
	defer mu.Unlock()
	records := 0
	for _, s := range stats {
		if s.Records != len(s.Waits) || s.Records > 2 || s.Took <= 0 {
			t.Errorf("batch stats %+v: want 1 or 2 records, a wait for each, a positive time", s)
		}
		for _, w := range s.Waits {
			if w < held {
				t.Errorf("a record queued %v before its flusher started waited %v", held, w)
			}
		}
		records += s.Records
	}
	if records != 4 {
		t.Errorf("observed %d records in %d batches, want 4", records, len(stats))
	}
}

// TestBatcherObservesPaths: Observe hears which way each batch went: a
// message with nothing to judge, and one judged ahead that no rule
// matched, commit with their insert; a user's first message is judged
// after its history read, as is a retry judged ahead whose check fails;
// a message judged ahead that flood matches writes its decision after.
func TestBatcherObservesPaths(t *testing.T) {
	t.Parallel()
	st := storetest.Store(t)
	j := newJudging(t, userRules)
	paths := make(chan store.BatchPath, 16)
	b := store.NewBatcher(st, store.BatcherConfig{Observe: func(s store.BatchStats) { paths <- s.Path }})
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { b.Run(ctx); close(stopped) }()
	defer func() { cancel(); <-stopped }()

	user := t.Name()
	msg := func(i int) store.EventRecord {
		m := message{id: fmt.Sprintf("%s-%d", user, i), user: user, channel: "messaging:c", text: "hi",
			at: t0.Add(time.Duration(i) * time.Second)}
		return j.record(t, m.id, m.body())
	}
	unjudged := fmt.Sprintf(`{"type":"message.new","message":{"id":"%s-plain","user":{"id":"u"}}}`, user)
	steps := []struct {
		name string
		rec  store.EventRecord
		want store.BatchPath
	}{
		{"nothing to judge", record(t, user+"-plain", unjudged), store.PathInsert},
		{"the user's first message: no copy", msg(0), store.PathRead},
		{"the second: from the copy, nothing to write", msg(1), store.PathInsert},
		{"a retry of the second: the check fails", msg(1), store.PathRead},
		{"the third", msg(2), store.PathInsert},
		{"the fourth", msg(3), store.PathInsert},
		{"the fifth: flood matches, the decision is written", msg(4), store.PathAhead},
	}
	for _, s := range steps {
		if _, err := b.RecordEvent(ctx, s.rec); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		select {
		case got := <-paths:
			if got != s.want {
				t.Errorf("%s: path %q, want %q", s.name, got, s.want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no batch observed", s.name)
		}
	}
}

// submitMessages queues n messages of the test's own in b (not yet
// running) and returns their waits.
func submitMessages(t *testing.T, b *store.Batcher, n int) []func(context.Context) (store.RecordResult, error) {
	t.Helper()
	var waits []func(context.Context) (store.RecordResult, error)
	for i := range n {
		id := fmt.Sprintf("%s-%d", t.Name(), i)
		body := fmt.Sprintf(`{"type":"message.new","message":{"id":%q,"user":{"id":"u"}}}`, id)
		wait, err := b.Submit(context.Background(), record(t, id, body))
		if err != nil {
			t.Fatal(err)
		}
		waits = append(waits, wait)
	}
	return waits
}

// runUntilAnswered runs b until every wait has its answer, then stops it.
func runUntilAnswered(t *testing.T, b *store.Batcher, waits []func(context.Context) (store.RecordResult, error)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { b.Run(ctx); close(stopped) }()
	defer func() { cancel(); <-stopped }()
	for _, wait := range waits {
		if _, err := wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
}
