package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"moderator/store"
	"moderator/store/storetest"
)

// BenchmarkDailySlots measures recording transactions that take daily-cap
// slots for two action types (as a batch with flags and mutes does in
// enforce mode) and commit, from 8 connections at once: the counter rows
// stay locked until each commit, so every such batch waits for the
// others. "pipelined" is store.TakeDailySlots (one round trip); "one at a
// time" is how it was done before 2026-12-05 (three round trips a type),
// the baseline of the same run:
//
//	go test ./store -run XXX -bench BenchmarkDailySlots -benchtime 2000x -count 3
func BenchmarkDailySlots(b *testing.B) {
	ctx := context.Background()
	st := storetest.Store(b)
	for _, bench := range []struct {
		name string
		take func(ctx context.Context, tx pgx.Tx, day time.Time, wants []store.DailyWant) error
	}{
		{"pipelined", func(ctx context.Context, tx pgx.Tx, day time.Time, wants []store.DailyWant) error {
			_, err := store.TakeDailySlots(ctx, tx, day, wants)
			return err
		}},
		{"one at a time", takeSlotsOneAtATime},
	} {
		b.Run(bench.name, func(b *testing.B) {
			// A day of its own, far from any test's, for each run.
			day := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, int(time.Now().UnixNano()%30000))
			wants := []store.DailyWant{{Type: "flag", Want: 2, Limit: 1 << 30}, {Type: "mute", Want: 1, Limit: 1 << 30}}
			b.SetParallelism(4) // 8 goroutines on 2 cores
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := pgx.BeginFunc(ctx, st.Pool(), func(tx pgx.Tx) error { return bench.take(ctx, tx, day, wants) }); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// takeSlotsOneAtATime is TakeDailySlots as it was before it was pipelined:
// three statements a type, each its own round trip.
func takeSlotsOneAtATime(ctx context.Context, tx pgx.Tx, day time.Time, wants []store.DailyWant) error {
	d := day.UTC().Format(time.DateOnly)
	for _, w := range wants { // sorted by type
		if _, err := tx.Exec(ctx, `INSERT INTO action_daily_counts (day, type, n) VALUES ($1::date, $2, 0)
			ON CONFLICT (day, type) DO NOTHING`, d, w.Type); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT n FROM action_daily_counts WHERE day = $1::date AND type = $2 FOR UPDATE`,
			d, w.Type).Scan(&n); err != nil {
			return err
		}
		granted := max(min(w.Want, w.Limit-n), 0)
		if granted == 0 {
			continue
		}
		if _, err := tx.Exec(ctx, `UPDATE action_daily_counts SET n = n + $3 WHERE day = $1::date AND type = $2`,
			d, w.Type, granted); err != nil {
			return fmt.Errorf("update: %w", err)
		}
	}
	return nil
}
