// Package jobs runs the process's durable background jobs (the actions
// sent to Stream, the erasures retried until they succeed) with one River
// client for every queue.
//
// One client, not one per queue, because River elects one leader per
// database among all its clients, and only the leader runs maintenance:
// its rescuer gives a job left running by a dead process back to the
// queue, and it discards, as unknown, the jobs of any kind its own client
// has no worker for. With a client per queue, whichever led decided the
// fate of the other's jobs: stuck actions waited River's default hour, or
// were discarded, lost after a crash.
package jobs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
)

// Queue is one queue of jobs with its worker.
type Queue interface {
	// Register adds the queue's worker to workers and says how the queue
	// is run.
	Register(workers *river.Workers) (Spec, error)
	// Attach gives the queue the client that inserts its jobs; New calls
	// it once.
	Attach(client *river.Client[pgx.Tx])
}

// Attachment is the client a queue is attached to: a queue embeds it,
// which implements Attach, and inserts its jobs through Client.
type Attachment struct {
	client *river.Client[pgx.Tx]
}

// Attach implements Queue.
func (a *Attachment) Attach(client *river.Client[pgx.Tx]) { a.client = client }

// ErrNotAttached is Client's error for a queue in no jobs client: its jobs
// would never run, so they are not inserted.
var ErrNotAttached = errors.New("the queue is in no jobs client: its jobs would never run")

// Client is the client to insert the queue's jobs with.
func (a *Attachment) Client() (*river.Client[pgx.Tx], error) {
	if a.client == nil {
		return nil, ErrNotAttached
	}
	return a.client, nil
}

// Spec is how a queue is run.
type Spec struct {
	Name   string
	Config river.QueueConfig
	// LongestRun bounds a live run of one of its jobs: the worker's
	// Timeout plus the time it may take to record the end. A job running
	// longer belongs to a process that died.
	LongestRun time.Duration
}

// DefaultFetchCooldown and DefaultFetchPollInterval are River's fetch
// settings. A commit notifies the workers (LISTEN/NOTIFY), and River then
// fetches at most once per cooldown: River's 100 ms default alone would
// put the p99 from an action's enqueue to its first attempt near 100 ms;
// 5 ms keeps it well under the 50 ms target for the cost of a fetch query
// per 5 ms while jobs arrive. The poll interval is the fallback when a
// notification is missed.
const (
	DefaultFetchCooldown     = 5 * time.Millisecond
	DefaultFetchPollInterval = 200 * time.Millisecond
)

// rescueMargin is the time added to the longest live run before a job
// still marked running is rescued.
const rescueMargin = 5 * time.Second

// Config configures a Client. Zero fields take the defaults.
type Config struct {
	Logger            *slog.Logger
	FetchCooldown     time.Duration
	FetchPollInterval time.Duration
}

// Client runs every queue of the process.
type Client struct {
	river *river.Client[pgx.Tx]
	// RescueAfter is when a job still marked running is given back to
	// its queue.
	RescueAfter time.Duration
}

// New returns the client of queues, whose jobs live in pool's database
// (which must have River's tables: store.Migrate applies them); Start it
// once the schema is migrated.
//
// A job still running RescueAfter after it started (the longest live run
// of any queue, plus a margin) is rescued: River's default waits an hour.
// River's rescuer looks every 30 s and leaves alone a job younger than
// its own worker's Timeout, so a rescued job never runs beside its live
// run.
func New(pool *pgxpool.Pool, cfg Config, queues ...Queue) (*Client, error) {
	if len(queues) == 0 {
		return nil, errors.New("jobs: no queue")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	workers := river.NewWorkers()
	configs := make(map[string]river.QueueConfig, len(queues))
	var longest time.Duration
	for _, q := range queues {
		spec, err := q.Register(workers)
		if err != nil {
			return nil, fmt.Errorf("jobs: %w", err)
		}
		if _, dup := configs[spec.Name]; dup || spec.Name == "" || spec.LongestRun <= 0 {
			return nil, fmt.Errorf("jobs: queue %q: a name used once and a LongestRun are required", spec.Name)
		}
		configs[spec.Name] = spec.Config
		longest = max(longest, spec.LongestRun)
	}
	c := &Client{RescueAfter: longest + rescueMargin}
	rc, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Queues:               configs,
		Workers:              workers,
		FetchCooldown:        cmp.Or(cfg.FetchCooldown, DefaultFetchCooldown),
		FetchPollInterval:    cmp.Or(cfg.FetchPollInterval, DefaultFetchPollInterval),
		RescueStuckJobsAfter: c.RescueAfter,
		// Every worker here sets its own Timeout; River wants its default
		// no longer than the rescue.
		JobTimeout: longest,
		Logger:     cfg.Logger.With("component", "river"),
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	c.river = rc
	for _, q := range queues {
		q.Attach(rc)
	}
	return c, nil
}

// Start starts the workers of every queue. Jobs inserted before (even by
// another replica) are picked up; claiming uses SKIP LOCKED, so replicas
// share the queues.
func (c *Client) Start(ctx context.Context) error {
	if err := c.river.Start(ctx); err != nil {
		return fmt.Errorf("start the job workers: %w", err)
	}
	return nil
}

// Stop lets running jobs finish (until ctx ends, when they are cancelled
// and will be retried) and stops the workers.
func (c *Client) Stop(ctx context.Context) error {
	err := c.river.Stop(ctx)
	if err != nil && ctx.Err() != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		err = c.river.StopAndCancel(cctx)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("stop the job workers: %w", err)
	}
	return nil
}

// Subscribe passes River's job events through, for tests to wait on.
func (c *Client) Subscribe(kinds ...river.EventKind) (<-chan *river.Event, func()) {
	return c.river.Subscribe(kinds...)
}
