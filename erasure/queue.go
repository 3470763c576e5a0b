package erasure

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"

	"moderator/jobs"
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

// Queue runs durable erasures, on the erasure queue of the process's
// jobs.Client.
type Queue struct {
	jobs.Attachment
	e         *Eraser
	retryBase time.Duration
	followUp  time.Duration
	queued    prometheus.Counter
	failures  prometheus.Counter
}

// QueueConfig configures a Queue. RetryBase is the wait before the first
// retry (default 5 s), doubled at each failed attempt up to an hour.
// FollowUpAfter is when an erasure's follow-up runs (default
// DefaultFollowUpAfter).
type QueueConfig struct {
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

// jobTimeout bounds one run of an erasure (its transaction); a failed run
// is retried. recordBudget is the time then allowed to record its end.
const (
	jobTimeout   = 35 * time.Second
	recordBudget = 5 * time.Second
)

// NewQueue returns the queue of durable erasures carried out by e; give it
// to jobs.New, which runs it.
func NewQueue(e *Eraser, cfg QueueConfig) *Queue {
	q := &Queue{
		e:         e,
		retryBase: cmp.Or(cfg.RetryBase, 5*time.Second),
		followUp:  cmp.Or(cfg.FollowUpAfter, DefaultFollowUpAfter),
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
	return q
}

// Register implements jobs.Queue: one erasure at a time per replica.
func (q *Queue) Register(workers *river.Workers) (jobs.Spec, error) {
	if err := river.AddWorkerSafely(workers, &worker{q: q}); err != nil {
		return jobs.Spec{}, fmt.Errorf("erasure queue: %w", err)
	}
	return jobs.Spec{Name: QueueName, Config: river.QueueConfig{MaxWorkers: 1}, LongestRun: jobTimeout + recordBudget}, nil
}

// insert queues an erasure job.
func (q *Queue) insert(ctx context.Context, args JobArgs, opts *river.InsertOpts) error {
	client, err := q.Client()
	if err != nil {
		return err
	}
	_, err = client.Insert(ctx, args, opts)
	return err
}

// EraseUserLater queues the system's erasure of a user, to be retried
// until it succeeds.
func (q *Queue) EraseUserLater(ctx context.Context, userID string) error {
	if err := q.insert(ctx, JobArgs{UserID: userID}, nil); err != nil {
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
	if err := q.insert(ctx, JobArgs{UserID: userID, FollowUp: true}, &opts); err != nil {
		return fmt.Errorf("schedule the follow-up of the erasure of %s: %w", userID, err)
	}
	return nil
}

type worker struct {
	river.WorkerDefaults[JobArgs]
	q *Queue
}

// Timeout bounds one run (jobTimeout).
func (w *worker) Timeout(*river.Job[JobArgs]) time.Duration { return jobTimeout }

// NextRetry waits RetryBase, then twice as long at each failed attempt,
// up to maxBackoff.
func (w *worker) NextRetry(job *river.Job[JobArgs]) time.Time {
	wait := w.q.retryBase
	for i := 1; i < job.Attempt && wait < maxBackoff; i++ {
		wait *= 2
	}
	return time.Now().Add(min(wait, maxBackoff))
}

// Work erases the user as the system (again, for a follow-up); a failure
// is counted and River retries it.
func (w *worker) Work(ctx context.Context, job *river.Job[JobArgs]) error {
	var err error
	if job.Args.FollowUp {
		err = w.q.e.followUp(ctx, job.Args.UserID)
	} else {
		err = w.q.e.EraseUser(ctx, job.Args.UserID)
	}
	if err != nil {
		w.q.failures.Inc()
		w.q.e.logger.Error("queued erasure failed; it will be retried", "user_id", job.Args.UserID,
			"attempt", job.Attempt, "error", err.Error())
		return err
	}
	return nil
}
