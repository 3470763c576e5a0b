package erasure

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
)

// JobKind and QueueName are the River job of a durable erasure and its
// queue (every replica works it; River's SKIP LOCKED shares it out).
const (
	JobKind   = "erase_user"
	QueueName = "erasure"
)

// maxAttempts makes a durable erasure retried until it succeeds, in
// practice: with the backoff capped at maxBackoff, 500 attempts last
// about a month, far beyond any database outage the alert lets pass.
const (
	maxAttempts = 500
	maxBackoff  = time.Hour
)

// JobArgs is a durable erasure, as the system: Stream's user.deleted with
// hard_delete whose erasure failed at once (when its spooled delivery
// was replayed, the delivery itself was acknowledged, so nothing else
// would ask again), or the follow-up of any erasure.
type JobArgs struct {
	UserID string `json:"user_id"`
	// FollowUp marks the re-run of a done erasure (Queue.FollowUp), which
	// schedules none of its own.
	FollowUp bool `json:"follow_up,omitempty"`
}

// Kind implements river.JobArgs.
func (JobArgs) Kind() string { return JobKind }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (JobArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueName, MaxAttempts: maxAttempts}
}

// Queue runs durable erasures: a River client of its own, on the erasure
// queue, beside the action runner's.
type Queue struct {
	river    *river.Client[pgx.Tx]
	followUp time.Duration
	queued   prometheus.Counter
	failures prometheus.Counter
}

// QueueConfig configures a Queue. RetryBase is the wait before the first
// retry (default 5 s), doubled at each failed attempt up to an hour.
// FollowUpAfter is when an erasure's follow-up runs (default
// DefaultFollowUpAfter).
type QueueConfig struct {
	Logger        *slog.Logger
	Reg           prometheus.Registerer
	RetryBase     time.Duration
	FollowUpAfter time.Duration
}

// DefaultFollowUpAfter is when an erasure is run again, as the system: by
// then every replica has known it for minutes (Recent refreshes every
// few seconds) and Stream has stopped retrying what it sent before, so
// the re-run catches what slipped between (a delivery another replica
// recorded before it learned the erasure, one in a transaction that
// committed after it). It usually changes nothing.
const DefaultFollowUpAfter = 2 * time.Minute

// NewQueue returns the queue of durable erasures carried out by e; Start
// it once the schema is migrated.
func NewQueue(pool *pgxpool.Pool, e *Eraser, cfg QueueConfig) (*Queue, error) {
	q := &Queue{
		queued: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "moderator_erasures_queued_total",
			Help: "Erasures of users Stream deleted put in the durable queue because they failed at once.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "moderator_erasure_failures_total",
			Help: "Failed attempts of queued erasures (each is retried until it succeeds); a deleted user's content is still stored.",
		}),
	}
	if cfg.Reg != nil {
		cfg.Reg.MustRegister(q.queued, q.failures)
	}
	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, &worker{e: e, failures: q.failures}); err != nil {
		return nil, fmt.Errorf("erasure queue: %w", err)
	}
	rc, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Queues:      map[string]river.QueueConfig{QueueName: {MaxWorkers: 1}},
		Workers:     workers,
		RetryPolicy: retryPolicy{base: cmpOr(cfg.RetryBase, 5*time.Second)},
		Logger:      cfg.Logger.With("component", "river", "queue", QueueName),
	})
	if err != nil {
		return nil, fmt.Errorf("erasure queue: %w", err)
	}
	q.river, q.followUp = rc, cmpOr(cfg.FollowUpAfter, DefaultFollowUpAfter)
	return q, nil
}

func cmpOr(v, def time.Duration) time.Duration {
	if v <= 0 {
		return def
	}
	return v
}

// EraseUserLater queues the system's erasure of a user, to be retried
// until it succeeds.
func (q *Queue) EraseUserLater(ctx context.Context, userID string) error {
	if _, err := q.river.Insert(ctx, JobArgs{UserID: userID}, nil); err != nil {
		return fmt.Errorf("queue the erasure of %s: %w", userID, err)
	}
	q.queued.Inc()
	return nil
}

// FollowUp schedules the re-run of a done erasure of userID, as the
// system, after QueueConfig.FollowUpAfter.
func (q *Queue) FollowUp(ctx context.Context, userID string) error {
	opts := JobArgs{}.InsertOpts()
	opts.ScheduledAt = time.Now().Add(q.followUp)
	if _, err := q.river.Insert(ctx, JobArgs{UserID: userID, FollowUp: true}, &opts); err != nil {
		return fmt.Errorf("schedule the follow-up of the erasure of %s: %w", userID, err)
	}
	return nil
}

// Start starts working the queue (jobs queued before, by any replica,
// included).
func (q *Queue) Start(ctx context.Context) error {
	if err := q.river.Start(ctx); err != nil {
		return fmt.Errorf("start the erasure queue: %w", err)
	}
	return nil
}

// Stop lets a running erasure finish (until ctx ends) and stops.
func (q *Queue) Stop(ctx context.Context) error {
	if err := q.river.Stop(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("stop the erasure queue: %w", err)
	}
	return nil
}

// Subscribe passes River's job events through, for tests to wait on.
func (q *Queue) Subscribe(kinds ...river.EventKind) (<-chan *river.Event, func()) {
	return q.river.Subscribe(kinds...)
}

type worker struct {
	river.WorkerDefaults[JobArgs]
	e        *Eraser
	failures prometheus.Counter
}

// Work erases the user as the system (again, for a follow-up); a failure
// is counted and River retries it.
func (w *worker) Work(ctx context.Context, job *river.Job[JobArgs]) error {
	var err error
	if job.Args.FollowUp {
		err = w.e.followUp(ctx, job.Args.UserID)
	} else {
		err = w.e.EraseUser(ctx, job.Args.UserID)
	}
	if err != nil {
		w.failures.Inc()
		w.e.logger.Error("queued erasure failed; it will be retried", "user_id", job.Args.UserID,
			"attempt", job.Attempt, "error", err.Error())
		return err
	}
	return nil
}

// retryPolicy waits base, then twice as long at each failed attempt, up
// to maxBackoff.
type retryPolicy struct{ base time.Duration }

func (p retryPolicy) NextRetry(job *rivertype.JobRow) time.Time {
	wait := p.base
	for i := 1; i < job.Attempt && wait < maxBackoff; i++ {
		wait *= 2
	}
	return time.Now().Add(min(wait, maxBackoff))
}
