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

// strikeBenchRules is a ladder that acts on every message, so that each
// user's strikes grow with the run: what the strike read costs for users
// with a history of offences.
const strikeBenchRules = `rules:
  - id: swearing
    description: every message here swears
    mode: enforce
    when: message.text contains "darn"
    actions: [flag]
    examples: [{event: {message: {text: "darn"}}, expect: {match: true}}, {event: {}, expect: {match: false}}]
  - id: ladder
    description: reads strikes
    mode: enforce
    when: message.text contains "darn" && strikes.by_rule("swearing", "7d") >= 3 && strikes.of_type("mute", "1d") == 0
    actions: [{mute: {timeout: 10m}}]
    examples: [{history: {'strikes.by_rule("swearing", "7d")': 3}, event: {message: {text: "darn"}}, expect: {match: true}}, {event: {}, expect: {match: false}}]
`

// BenchmarkBatcherStrikes records messages of 200 users through a Batcher
// with a rule set that reads strikes and acts on every message (its
// actions recorded in the batch's transaction): each read finds a user's
// strikes among a growing number of actions.
func BenchmarkBatcherStrikes(b *testing.B) {
	rs, err := policy.Load(fstest.MapFS{"r.yaml": {Data: []byte(strikeBenchRules)}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	hooks := &actionHook{ids: map[int64][]int64{}}
	batcher := store.NewBatcher(storetest.Store(b), store.BatcherConfig{Hook: hooks.hook})
	stopped := make(chan struct{})
	go func() { batcher.Run(ctx); close(stopped) }()
	defer func() { cancel(); <-stopped }()
	var seq atomic.Int64
	run := time.Now().UnixNano()
	b.SetParallelism(16)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := seq.Add(1)
			at := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Second).Format(time.RFC3339Nano)
			body := fmt.Appendf(nil, `{"type":"message.new","cid":"messaging:bench","created_at":%q,`+
				`"message":{"id":"s-%d-%d","text":"darn it","user":{"id":"s%d-%d"}},"user":{"id":"s%d-%d"}}`,
				at, run, n, run, n%200, run, n%200)
			ev, err := policy.ParseEvent(body)
			if err != nil {
				b.Fatal(err)
			}
			_, err = batcher.RecordEvent(ctx, store.EventRecord{WebhookID: fmt.Sprintf("s-%d-%d", run, n),
				BodySHA256: sha256.Sum256(body), Attempt: 1, APIKey: "k", Payload: body, Event: ev, Judge: rs.Defer(ev)})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
