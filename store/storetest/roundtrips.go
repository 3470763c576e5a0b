package storetest

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"moderator/store"
)

// TracedStore is OwnStore whose round trips to Postgres the returned
// RoundTrips counts.
func TracedStore(t testing.TB) (*store.Store, *RoundTrips) {
	t.Helper()
	trips := &RoundTrips{}
	return OwnStoreWith(t, func(cfg *pgxpool.Config) { cfg.ConnConfig.Tracer = trips }), trips
}

// RoundTrips is a pgx tracer (ConnConfig.Tracer) that counts a pool's
// round trips to Postgres: each statement sent on its own, by its first
// word ("SELECT", "commit"), and each pipeline (pgx.Batch) once, as
// "batch".
type RoundTrips struct {
	mu   sync.Mutex
	sent []string
}

// Take returns the round trips since the last Take.
func (r *RoundTrips) Take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.sent
	r.sent = nil
	return out
}

func (r *RoundTrips) add(what string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sent = append(r.sent, what)
}

// TraceQueryStart implements pgx.QueryTracer.
func (r *RoundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	r.add(strings.Fields(d.SQL)[0])
	return ctx
}

// TraceQueryEnd implements pgx.QueryTracer.
func (r *RoundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TraceBatchStart implements pgx.BatchTracer.
func (r *RoundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	r.add("batch")
	return ctx
}

// TraceBatchQuery implements pgx.BatchTracer.
func (r *RoundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

// TraceBatchEnd implements pgx.BatchTracer.
func (r *RoundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}
