// Package store owns the service's Postgres database: the connection pool,
// the schema migrations, and the audit trail's writes and queries
// (deduplicated event records, decisions, actions with their attempts and
// outcomes, overturns with their reversals and the rule immunities they
// grant) and the daily action counters. Its migrations include those of
// the job queue (River), whose jobs live in the same database so that they
// commit with the events. SQL lives next to the method that runs it.
//
// Store may import policy types; it never imports actions, webhook or cmd.
package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Store is the audit trail in Postgres. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
	// textProbe overrides defaultTextProbe (tests: 0 keeps it).
	textProbe int
	// marks are this replica's copies of users' recent counter marks.
	marks *markCache
	// words holds the word indexer's marks (see wordsMark).
	words wordsState
}

// Open connects a pool to the database at url. It does not wait for the
// database to be reachable: a service must start, and report unready,
// while Postgres is down, and recover by itself when it returns.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's message may echo the URL, password included: keep it out.
		return nil, fmt.Errorf("parse database url: invalid connection string")
	}
	// Fail fast when the server is gone, so the webhook can answer 503 well
	// inside Stream's 6 s request timeout and Stream retries.
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > 2*time.Second {
		cfg.ConnConfig.ConnectTimeout = 2 * time.Second
	}
	// 16 unless the URL says otherwise: an operator's pool_max_conns is
	// kept, whatever it is (a small database, several replicas).
	if cfg.MaxConns < 16 && !strings.Contains(url, "pool_max_conns") {
		cfg.MaxConns = 16
	}
	if cfg.MaxConns < 2 {
		return nil, fmt.Errorf("DATABASE_URL: pool_max_conns must be at least 2, got %d "+
			"(migrations hold one connection while the job queue's migrations use another)", cfg.MaxConns)
	}
	cfg.HealthCheckPeriod = 5 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("create pool: %w", err)
	}
	return &Store{pool: pool, marks: newMarkCache()}, nil
}

// New wraps an existing pool; tests use it.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool, marks: newMarkCache()} }

// Pool returns the underlying pool, for packages (such as the job queue)
// that need to share it.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close closes every connection.
func (s *Store) Close() { s.pool.Close() }

// Ping checks that the database answers a query.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.pool.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}

// acquireWait is how long a write keeps asking for a connection that the
// server refuses (too many connections, starting up, a failover) before it
// fails: a moment's refusal should not fail a whole batch.
const acquireWait = time.Second

// acquire takes a connection from the pool, retrying refused connections
// for up to acquireWait. (A pool at its size already waits for a
// connection to be released, up to ctx's deadline.)
func (s *Store) acquire(ctx context.Context) (*pgxpool.Conn, error) {
	deadline := time.Now().Add(acquireWait)
	pause := 50 * time.Millisecond
	for {
		conn, err := s.pool.Acquire(ctx)
		if err == nil {
			return conn, nil
		}
		if ctx.Err() != nil || time.Now().Add(pause).After(deadline) {
			return nil, fmt.Errorf("acquire connection: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("acquire connection: %w", err)
		case <-time.After(pause):
		}
		pause *= 2
	}
}

// querier is what a pool and a transaction have in common.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}
