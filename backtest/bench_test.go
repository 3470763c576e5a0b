package backtest_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"moderator/backtest"
	"moderator/policy"
	"moderator/store"
	"moderator/store/storetest"
)

// benchEvents is how many events the benchmarks replay (BACKTEST_BENCH_EVENTS
// overrides it, e.g. 1000000 for the README's figure).
func benchEvents() int {
	if n, err := strconv.Atoi(os.Getenv("BACKTEST_BENCH_EVENTS")); err == nil && n > 0 {
		return n
	}
	return 50_000
}

// benchShape is the stream the benchmarks store: by default, for each
// 50,000 events 2,000 users over an hour (a user posts about 25 messages
// an hour however many events are stored). BACKTEST_BENCH_USERS fixes the
// users and BACKTEST_BENCH_RATE their messages an hour, so that the span
// grows with the events instead: the shape that shows memory flat, with a
// population that does not grow with the window and, past 7 days (the
// starter ladder's longest window), state that expires.
func benchShape(n int) (users int, span time.Duration) {
	scale := max(1, n/50_000)
	users, span = 2000*scale, time.Duration(scale)*time.Hour
	u, err1 := strconv.Atoi(os.Getenv("BACKTEST_BENCH_USERS"))
	r, err2 := strconv.ParseFloat(os.Getenv("BACKTEST_BENCH_RATE"), 64)
	if err1 == nil && err2 == nil && u > 0 && r > 0 {
		users, span = u, time.Duration(float64(n)/(float64(u)*r)*float64(time.Hour))
	}
	return users, span
}

var benchDB struct {
	sync.Once
	st   *store.Store
	from time.Time
	to   time.Time
	err  error
}

// benchStore is the package database holding benchEvents() messages in
// 20 channels, shaped by benchShape: a sixth with links, a sixth
// shouting, a sixth swearing.
func benchStore(b *testing.B) (*store.Store, time.Time, time.Time) {
	benchDB.Do(func() {
		ctx := context.Background()
		// The package's database: the tests each make their own.
		pool, err := pgxpool.New(ctx, storetest.URL(b))
		if err != nil {
			benchDB.err = err
			return
		}
		st := store.New(pool)
		if _, err := st.Migrate(ctx); err != nil {
			benchDB.err = err
			return
		}
		n := benchEvents()
		users, span := benchShape(n)
		now := time.Now()
		start := now.Add(-span)
		texts := []string{"hello all, how is everyone today?", "check https://example.com/deal it is great",
			"WHY IS NOBODY ANSWERING MY QUESTION", "what the fuck is this", "see you tomorrow at the meetup", "lol"}
		rows := make([][]any, 0, 10_000)
		flush := func() error {
			_, err := pool.CopyFrom(ctx, pgx.Identifier{"events"}, []string{"webhook_id", "body_sha256", "attempt", "api_key",
				"compressed", "body_bytes", "received_at", "type", "created_at", "user_id", "channel_cid", "message_id", "own",
				"ignored", "payload", "rule_set_version"}, pgx.CopyFromRows(rows))
			rows = rows[:0]
			return err
		}
		for i := range n {
			at := start.Add(span / time.Duration(n) * time.Duration(i)) // step first: i*span overflows
			user, channel, msg := fmt.Sprintf("u%d", i%users), fmt.Sprintf("messaging:c%d", i%20), fmt.Sprintf("m%d", i)
			body, _ := json.Marshal(map[string]any{"type": "message.new", "created_at": at.UTC().Format(time.RFC3339Nano), "cid": channel,
				"message": map[string]any{"id": msg, "text": texts[i%len(texts)], "user": map[string]any{"id": user, "created_at": "2026-01-01T00:00:00Z"}},
				"user":    map[string]any{"id": user, "created_at": "2026-01-01T00:00:00Z"}})
			sum := sha256.Sum256(body)
			rows = append(rows, []any{msg, sum[:], 1, "k", false, len(body), at, "message.new", at, user, channel, msg, false, false, string(body), "bench"})
			if len(rows) == cap(rows) {
				if err := flush(); err != nil {
					benchDB.err = err
					return
				}
			}
		}
		if err := flush(); err != nil {
			benchDB.err = err
			return
		}
		if _, err := pool.Exec(ctx, "ANALYZE events"); err != nil {
			benchDB.err = err
			return
		}
		benchDB.st, benchDB.from, benchDB.to = st, start.Add(-time.Minute), now.Add(time.Minute)
	})
	if benchDB.err != nil {
		b.Fatal(benchDB.err)
	}
	return benchDB.st, benchDB.from, benchDB.to
}

// starter loads the starter pack; stateless leaves out the two files whose
// rules read counters and strikes.
func starter(b *testing.B, stateless bool) *policy.RuleSet {
	m := fstest.MapFS{}
	err := fs.WalkDir(os.DirFS("../rules"), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || (stateless && (p == "flood.yaml" || p == "ladder.yaml")) || strings.HasSuffix(p, ".go") {
			return err
		}
		data, err := os.ReadFile("../rules/" + p)
		m[p] = &fstest.MapFile{Data: data}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	rs, err := policy.Load(m)
	if err != nil {
		b.Fatal(err)
	}
	if got := len(rs.History()) > 0; got == stateless {
		b.Fatalf("stateless %v, but the set reads history: %v", stateless, got)
	}
	return rs
}

func benchBacktest(b *testing.B, stateless bool) {
	st, from, to := benchStore(b)
	cand := starter(b, stateless)
	runtime.GC()
	peak := watchHeap()
	b.ResetTimer()
	var events, runs int64
	start, cpu0 := time.Now(), cpuTime()
	for b.Loop() {
		runs++
		rep, err := backtest.Run(context.Background(), st, cand, backtest.Options{From: from, To: to, Samples: 5})
		if err != nil {
			b.Fatal(err)
		}
		events += rep.Evaluated
	}
	b.ReportMetric(float64(events)/time.Since(start).Seconds(), "events/s")
	b.ReportMetric(float64(events)/float64(runs), "events/run")
	// The process's own CPU per event (Postgres's is not in it): the
	// figure that does not depend on what else the shared cores run.
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(events), "cpu-µs/event")
	live, heap := peak()
	// The most the backtest kept (the live heap after a collection) and the
	// most the heap held, garbage included (what the process's memory
	// follows): both should not grow with the events replayed.
	b.ReportMetric(float64(live)/(1<<20), "peak-live-MB")
	b.ReportMetric(float64(heap)/(1<<20), "peak-heap-MB")
}

// watchHeap samples the heap until the returned function is called, which
// returns the largest live heap (as of the last collection) and the
// largest heap in use seen meanwhile.
func watchHeap() (stop func() (live, heap uint64)) {
	samples := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/heap/objects:bytes"}}
	var live, heap uint64
	read := func() {
		metrics.Read(samples)
		live, heap = max(live, samples[0].Value.Uint64()), max(heap, samples[1].Value.Uint64())
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				read()
			}
		}
	})
	return func() (uint64, uint64) {
		close(done)
		wg.Wait()
		read()
		return live, heap
	}
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkBacktestStateless replays the stored messages through the
// starter pack without its counting rules (target ≥ 20,000 events/s).
func BenchmarkBacktestStateless(b *testing.B) { benchBacktest(b, true) }

// BenchmarkBacktestHistory replays them through the whole starter pack,
// whose flood, copy-paste, raid and ladder rules read counters and
// strikes (target ≥ 5,000 events/s).
func BenchmarkBacktestHistory(b *testing.B) { benchBacktest(b, false) }
