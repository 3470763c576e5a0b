package store_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"moderator/store"
)

// BenchmarkSearchText measures the full-text search of message text on a
// seeded history: MODERATOR_BENCH_SEARCH_EVENTS events (default 100,000;
// the README's figure is for 1,000,000) of 5 to 14 words each, drawn from
// 20,000 words with a skewed (power-law) frequency, plus "hello" in one
// message of 5, "free" in one of 100 and "nitro" in one of 10,000, over
// 5,000 users. Each iteration runs every query of the mix once (one page
// of 50, newest first, as the console and the API ask); it reports the
// p50 and p95 of all the queries' times, and each query's p95.
func BenchmarkSearchText(b *testing.B) {
	n := 100_000
	if v := os.Getenv("MODERATOR_BENCH_SEARCH_EVENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1000 {
			b.Fatalf("MODERATOR_BENCH_SEARCH_EVENTS=%q: want a number of events, at least 1000", v)
		}
	}
	ctx := context.Background()
	st := newSeedStore(b)
	seedText(b, st, n, true)
	queries := []struct {
		name string
		f    store.AuditFilter
	}{
		{"common", store.AuditFilter{Text: "hello"}},
		{"medium", store.AuditFilter{Text: "free"}},
		{"rare", store.AuditFilter{Text: "nitro"}},
		{"zipf-top", store.AuditFilter{Text: "w1"}},
		{"zipf-tail", store.AuditFilter{Text: "w19000"}},
		{"two-words", store.AuditFilter{Text: "free nitro"}},
		{"phrase", store.AuditFilter{Text: `"hello free"`}},
		{"or", store.AuditFilter{Text: "nitro or w19999"}},
		{"absent", store.AuditFilter{Text: "zzzzzz"}},
		{"word+user", store.AuditFilter{Text: "hello", UserID: "u42"}},
		{"word+range", store.AuditFilter{Text: "free", From: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 11, 1, 6, 0, 0, 0, time.UTC)}},
		{"word+page2", store.AuditFilter{Text: "hello"}},
	}
	// The second page starts after the first page's cursor.
	p, err := st.SearchEvents(ctx, queries[0].f)
	if err != nil || p.NextCursor == "" {
		b.Fatalf("first page: %v (cursor %q)", err, p.NextCursor)
	}
	queries[len(queries)-1].f.Cursor = p.NextCursor

	per := make([][]time.Duration, len(queries))
	for b.Loop() {
		for i, q := range queries {
			start := time.Now()
			if _, err := st.SearchEvents(ctx, q.f); err != nil {
				b.Fatalf("%s: %v", q.name, err)
			}
			per[i] = append(per[i], time.Since(start))
		}
	}
	var all []time.Duration
	for i, q := range queries {
		all = append(all, per[i]...)
		b.ReportMetric(ms(percentile(per[i], 0.95)), "p95-ms-"+q.name)
	}
	b.ReportMetric(ms(percentile(all, 0.50)), "p50-ms")
	b.ReportMetric(ms(percentile(all, 0.95)), "p95-ms")
	b.ReportMetric(float64(n), "events")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// seedText writes n message events with chat-like text, and their words,
// straight in SQL, the words index dropped while they are written and
// built again after (as the migrations define it), then ANALYZE.
func seedText(tb testing.TB, st *store.Store, n int, words bool) {
	tb.Helper()
	ctx := context.Background()
	var indexDef string
	if err := st.Pool().QueryRow(ctx, `SELECT indexdef FROM pg_indexes WHERE indexname = 'event_words_words_idx'`).Scan(&indexDef); err != nil {
		tb.Fatalf("the words index: %v", err)
	}
	stmts := []string{
		`DROP INDEX event_words_words_idx`,
		fmt.Sprintf(`INSERT INTO events (webhook_id, body_sha256, attempt, api_key, compressed, body_bytes, received_at, type,
			user_id, channel_cid, message_id, own, ignored, payload, rule_set_version)
		SELECT 'w' || i, sha256(('w' || i)::bytea), 1, 'k', false, 100,
			timestamptz '2026-11-01' + i * interval '100 milliseconds', 'message.new',
			'u' || (i %% 5000), 'messaging:c' || (i %% 300), 'm' || i, false, false,
			jsonb_build_object('type', 'message.new', 'message', jsonb_build_object('id', 'm' || i, 'text',
				concat_ws(' ',
					CASE WHEN i %% 5 = 0 THEN 'hello' END,
					CASE WHEN i %% 100 = 7 THEN 'free' END,
					CASE WHEN i %% 10000 = 77 THEN 'nitro' END,
					(SELECT string_agg('w' || floor(pow(random(), 3) * 20000)::int, ' ')
						FROM generate_series(1, 5 + i %% 10) AS k WHERE i > 0)))),
			'v1'
		FROM generate_series(1, %d) AS i`, n),
		`INSERT INTO event_words SELECT id, received_at, to_tsvector('simple', coalesce(payload #>> '{message,text}', '')) FROM events`,
		indexDef,
		`ANALYZE events`,
		`ANALYZE event_words`,
	}
	if !words {
		stmts = []string{stmts[1], `ANALYZE events`}
	}
	for _, stmt := range stmts {
		if _, err := st.Pool().Exec(ctx, stmt); err != nil {
			tb.Fatalf("%.200s: %v", stmt, err)
		}
	}
}

// BenchmarkIndexEventWords measures the indexer that fills event_words,
// working through a backlog of 100,000 events (as after the upgrade) in
// the service's batches of 1,000.
func BenchmarkIndexEventWords(b *testing.B) {
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		st := newSeedStore(b)
		seedText(b, st, 100_000, false)
		b.StartTimer()
		start, total := time.Now(), int64(0)
		for {
			n, err := st.IndexEventWords(ctx, 1000)
			if err != nil {
				b.Fatal(err)
			}
			if total += n; n == 0 {
				break
			}
		}
		if total != 100_000 {
			b.Fatalf("indexed %d events, want 100000", total)
		}
		b.ReportMetric(float64(total)/time.Since(start).Seconds(), "events/s")
	}
}

// BenchmarkIndexEventWordsLive measures the indexer at the live edge: 250
// new events a pass beside a table already indexed, at two sizes; each
// pass also sweeps the ids its last mark settled for late events. Its
// ns/event should not grow with the table.
func BenchmarkIndexEventWordsLive(b *testing.B) {
	ctx := context.Background()
	for _, size := range []int{20_000, 200_000} {
		b.Run(fmt.Sprintf("indexed=%d", size), func(b *testing.B) {
			st := newSeedStore(b)
			seedText(b, st, size, true)
			next, total := size, int64(0)
			for b.Loop() {
				b.StopTimer()
				if _, err := st.Pool().Exec(ctx, `INSERT INTO events (webhook_id, body_sha256, attempt, api_key, compressed,
						body_bytes, type, user_id, own, ignored, payload)
						SELECT 'l' || i, sha256(('l' || i)::bytea), 1, 'k', false, 100, 'message.new', 'u' || (i % 5000),
							false, false, jsonb_build_object('message', jsonb_build_object('text', 'live words ' || i))
						FROM generate_series($1::int + 1, $1::int + 250) AS i`, next); err != nil {
					b.Fatal(err)
				}
				next += 250
				b.StartTimer()
				n, err := st.IndexEventWords(ctx, 250)
				if err != nil {
					b.Fatal(err)
				}
				total += n
			}
			if want := int64(next - size); total != want {
				b.Fatalf("indexed %d events, want %d", total, want)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(total), "ns/event")
		})
	}
}
