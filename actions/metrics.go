package actions

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"moderator/policy"
)

// Metrics are the action runner's Prometheus metrics.
type Metrics struct {
	actions     *prometheus.CounterVec
	attempts    *prometheus.CounterVec
	rateLimited *prometheus.CounterVec
	startDelay  prometheus.Histogram
}

// NewMetrics registers the runner's metrics on reg. pool, when not nil,
// feeds the queue gauges (pending jobs and the age of the oldest), read
// from River's job table at scrape time.
func NewMetrics(reg prometheus.Registerer, pool *pgxpool.Pool) *Metrics {
	m := &Metrics{
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moderator_actions_total",
			Help: "Actions (and reversals) by type and outcome (applied, failed, held, dry_run, superseded, suppressed, nothing_to_undo).",
		}, []string{"type", "outcome"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moderator_action_attempts_total",
			Help: "Calls to Stream by action type and result (ok, already_done, retryable, permanent).",
		}, []string{"type", "result"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moderator_action_rate_limited_total",
			Help: "Answers 429 from Stream, by action type.",
		}, []string{"type"}),
		startDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "moderator_action_start_delay_seconds",
			Help:    "Time from enqueue (the decision's commit) to an action's first attempt.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5},
		}),
	}
	reg.MustRegister(m.actions, m.attempts, m.rateLimited, m.startDelay)
	m.precreate()
	if pool != nil {
		reg.MustRegister(queueCollector{pool: pool,
			depth: prometheus.NewDesc("moderator_action_queue_depth",
				"Action jobs waiting to run or be retried.", nil, nil),
			oldest: prometheus.NewDesc("moderator_action_oldest_pending_seconds",
				"Age of the oldest action job waiting to run or be retried.", nil, nil),
		})
	}
	return m
}

// precreate exports every known label combination at zero, so that an
// alert on rate() or increase() sees the first failure after a start.
func (m *Metrics) precreate() {
	types := []policy.ActionType{policy.ActionFlag, policy.ActionMute, policy.ActionBan, policy.ActionDelete,
		policy.ActionWarn, Unban, Unmute, Unflag, Undelete, Unwarn}
	for _, t := range types {
		for _, o := range []Outcome{Applied, Failed, Held, DryRun, Superseded, Suppressed, NothingUndone} {
			m.actions.WithLabelValues(string(t), string(o))
		}
		for _, r := range []string{"ok", "already_done", "retryable", "permanent"} {
			m.attempts.WithLabelValues(string(t), r)
		}
		m.rateLimited.WithLabelValues(string(t))
	}
}

func (m *Metrics) outcome(t policy.ActionType, o Outcome) {
	m.actions.WithLabelValues(string(t), string(o)).Inc()
}

func (m *Metrics) attempt(t policy.ActionType, err error) {
	result := "ok"
	switch {
	case err == nil:
	case IsAlreadyDone(err):
		result = "already_done"
	case IsRetryable(err):
		result = "retryable"
	default:
		result = "permanent"
	}
	m.attempts.WithLabelValues(string(t), result).Inc()
}

// queueCollector reads the queue's depth from River's table when scraped.
type queueCollector struct {
	pool          *pgxpool.Pool
	depth, oldest *prometheus.Desc
}

func (c queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.depth
	ch <- c.oldest
}

func (c queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var (
		n   int64
		age float64
	)
	err := c.pool.QueryRow(ctx, `SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)
		FROM river_job WHERE kind = $1 AND state IN ('available', 'scheduled', 'retryable', 'running')`, JobKind).Scan(&n, &age)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.depth, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(n))
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age)
}
