package store_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"moderator/policy"
	"moderator/store"
	"moderator/store/storetest"
)

// BenchmarkRecordEvent measures durable event writes with many concurrent
// writers, as the webhook handler does them (each call commits).
func BenchmarkRecordEvent(b *testing.B) {
	benchmarkRecord(b, storetest.Store(b).RecordEvent)
}

// BenchmarkBatcher measures the same writes grouped by a Batcher (group
// commit), as serve does them.
func BenchmarkBatcher(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	batcher := store.NewBatcher(storetest.Store(b), store.BatcherConfig{})
	stopped := make(chan struct{})
	go func() { batcher.Run(ctx); close(stopped) }()
	defer func() { cancel(); <-stopped }()
	benchmarkRecord(b, batcher.RecordEvent)
}

// benchRules read the starter pack's history values: the intake with them
// judges every message in the recording transaction.
const benchRules = `rules:
  - id: flood
    description: flood
    mode: enforce
    when: counts.user_messages("1m") > 10 && strikes.by_rule("flood", "10m") == 0
    actions: [{mute: {timeout: 15m}}]
    examples:
      - {history: {'counts.user_messages("1m")': 11}, event: {}, expect: {match: true}}
      - {event: {}, expect: {match: false}}
  - id: copy-paste
    description: copy-paste
    mode: shadow
    when: counts.user_duplicates("10m") >= 5 && counts.user_channels("10m") >= 3
    actions: [flag]
    examples:
      - {history: {'counts.user_duplicates("10m")': 5, 'counts.user_channels("10m")': 3}, event: {}, expect: {match: true}}
      - {event: {}, expect: {match: false}}
  - id: raid
    description: raid
    mode: shadow
    when: user.account_age < duration("24h") && counts.channel_young_messages("5m") > 20
    actions: [flag]
    examples:
      - {history: {'counts.channel_young_messages("5m")': 21}, event: {user: {created_at: "2026-01-15T11:00:00Z"}}, expect: {match: true}}
      - {event: {}, expect: {match: false}}
  - id: ladder
    description: ladder
    mode: enforce
    when: message.text contains "darn" && strikes.by_rule("flood", "7d") >= 2
    actions: [{ban: {timeout: 7d}}]
    examples:
      - {history: {'strikes.by_rule("flood", "7d")': 2}, event: {message: {text: "darn"}}, expect: {match: true}}
      - {event: {}, expect: {match: false}}
`

// BenchmarkBatcherCounting is BenchmarkBatcher with a rule set that reads
// counters and strikes: each message is counted and judged in the batch's
// transaction (advisory locks, counter marks, one history query).
func BenchmarkBatcherCounting(b *testing.B) { benchmarkCounting(b, benchRules) }

// raidAccountsRule reads counts.channel_users: every new message then
// takes its channel's lock, so a channel's messages are judged one after
// another (here 50 channels share the load).
const raidAccountsRule = `  - id: raid-accounts
    description: raid by accounts
    mode: shadow
    when: user.young && counts.channel_users("2m") > 25
    actions: [flag]
    examples:
      - {history: {'counts.channel_users("2m")': 26}, event: {user: {created_at: "2026-01-15T11:00:00Z"}}, expect: {match: true}}
      - {event: {}, expect: {match: false}}
`

// BenchmarkBatcherCountingChannelUsers is BenchmarkBatcherCounting with
// a raid rule on distinct accounts: what reading and serialising each
// channel costs.
func BenchmarkBatcherCountingChannelUsers(b *testing.B) {
	benchmarkCounting(b, benchRules+raidAccountsRule)
}

// BenchmarkBatcherCountingSerial is BenchmarkBatcherCounting with one
// writer, so that every batch holds one event: what a webhook costs at a
// few hundred a second, where a batch's fixed cost is all of it (its
// ns/op is the latency of one recording, judged).
func BenchmarkBatcherCountingSerial(b *testing.B) { benchmarkCountingWith(b, benchRules, true) }

func benchmarkCounting(b *testing.B, rules string) { benchmarkCountingWith(b, rules, false) }

// benchmarkCountingWith records events with rules judged in the batch's
// transaction: one at a time when serial, else as benchmarkRecord does.
func benchmarkCountingWith(b *testing.B, rules string, serial bool) {
	rs, err := policy.Load(fstest.MapFS{"r.yaml": {Data: []byte(rules)}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	batcher := store.NewBatcher(storetest.Store(b), store.BatcherConfig{})
	stopped := make(chan struct{})
	go func() { batcher.Run(ctx); close(stopped) }()
	defer func() { cancel(); <-stopped }()
	record := func(ctx context.Context, rec store.EventRecord) (store.RecordResult, error) {
		rec.Judge = rs.Defer(rec.Event)
		return batcher.RecordEvent(ctx, rec)
	}
	if serial {
		benchmarkRecordSerial(b, record)
		return
	}
	benchmarkRecord(b, record)
}

func benchmarkRecord(b *testing.B, record func(context.Context, store.EventRecord) (store.RecordResult, error)) {
	ctx := context.Background()
	var seq atomic.Int64
	run := time.Now().UnixNano()
	b.SetParallelism(16) // × GOMAXPROCS writers
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := record(ctx, benchRecord(b, run, seq.Add(1))); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// benchmarkRecordSerial records b.N events one after another.
func benchmarkRecordSerial(b *testing.B, record func(context.Context, store.EventRecord) (store.RecordResult, error)) {
	ctx := context.Background()
	run := time.Now().UnixNano()
	b.ReportAllocs()
	for n := range int64(b.N) {
		if _, err := record(ctx, benchRecord(b, run, n+1)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// benchRecord is the benchmarks' message number n of the run: 5,000 users
// in 50 channels, at 5,000 messages a second of event time.
func benchRecord(b *testing.B, run, n int64) store.EventRecord {
	at := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC).Add(time.Duration(n) * 200 * time.Microsecond).Format(time.RFC3339Nano)
	body := fmt.Appendf(nil, `{"type":"message.new","cid":"messaging:bench-%d","created_at":%q,`+
		`"message":{"id":"bench-%d-%d","text":"a typical message of about this length, give or take a few words","user":{"id":"u%d-%d"}},"user":{"id":"u%d-%d"}}`,
		n%50, at, run, n, run, n%5000, run, n%5000)
	ev, err := policy.ParseEvent(body)
	if err != nil {
		b.Fatal(err)
	}
	return store.EventRecord{WebhookID: fmt.Sprintf("bench-%d-%d", run, n),
		BodySHA256: sha256.Sum256(body), Attempt: 1, APIKey: "k", Payload: body, Event: ev}
}

// BenchmarkBatcherErasureIndexes measures what the erasure's three partial
// indexes on events (migration 0022: actor differing from subject, and
// messages quoting another; 0024: a message whose author differs from the
// subject) cost the intake: BenchmarkBatcher on one
// database without them, then with them, alternating; compare the two
// events/s of one run.
func BenchmarkBatcherErasureIndexes(b *testing.B) {
	ctx := context.Background()
	st := storetest.OwnStore(b)
	const create = `CREATE INDEX IF NOT EXISTS events_actor_idx ON events (actor_id)
			WHERE actor_id IS NOT NULL AND actor_id IS DISTINCT FROM user_id;
		CREATE INDEX IF NOT EXISTS events_quoted_user_idx ON events ((payload #>> '{message,quoted_message,user,id}'))
			WHERE payload #> '{message,quoted_message}' IS NOT NULL;
		CREATE INDEX IF NOT EXISTS events_message_author_idx ON events ((payload #>> '{message,user,id}'))
			WHERE payload #>> '{message,user,id}' IS DISTINCT FROM user_id`
	for _, c := range []struct{ name, sql string }{
		{"without", `DROP INDEX IF EXISTS events_actor_idx; DROP INDEX IF EXISTS events_quoted_user_idx;
			DROP INDEX IF EXISTS events_message_author_idx`},
		{"with", create},
	} {
		b.Run(c.name, func(b *testing.B) {
			if _, err := st.Pool().Exec(ctx, c.sql); err != nil {
				b.Fatal(err)
			}
			bctx, cancel := context.WithCancel(ctx)
			batcher := store.NewBatcher(st, store.BatcherConfig{})
			stopped := make(chan struct{})
			go func() { batcher.Run(bctx); close(stopped) }()
			defer func() { cancel(); <-stopped }()
			benchmarkRecord(b, batcher.RecordEvent)
		})
	}
	if _, err := st.Pool().Exec(ctx, create); err != nil {
		b.Fatal(err)
	}
}
