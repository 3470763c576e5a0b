package store_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync/atomic"
	"testing"
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

func benchmarkRecord(b *testing.B, record func(context.Context, store.EventRecord) (store.RecordResult, error)) {
	ctx := context.Background()
	var seq atomic.Int64
	run := time.Now().UnixNano()
	b.SetParallelism(16) // × GOMAXPROCS writers
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := seq.Add(1)
			body := fmt.Appendf(nil, `{"type":"message.new","cid":"messaging:bench","created_at":"2026-11-24T10:00:00Z",`+
				`"message":{"id":"bench-%d-%d","text":"a typical message of about this length, give or take a few words","user":{"id":"u%d"}},"user":{"id":"u%d"}}`,
				run, n, n%500, n%500)
			ev, err := policy.ParseEvent(body)
			if err != nil {
				b.Fatal(err)
			}
			_, err = record(ctx, store.EventRecord{WebhookID: fmt.Sprintf("bench-%d-%d", run, n),
				BodySHA256: sha256.Sum256(body), Attempt: 1, APIKey: "k", Payload: body, Event: ev})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
