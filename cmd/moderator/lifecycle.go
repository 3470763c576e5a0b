package main

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"moderator/store"
)

// lifecycleEvery is how often serve looks after the partitioned tables.
const lifecycleEvery = 24 * time.Hour

// lifecycleMetrics count what the daily upkeep of the audit tables did.
type lifecycleMetrics struct {
	runs    *prometheus.CounterVec // result: ok, error
	dropped prometheus.Counter
	kept    prometheus.Gauge
	rows    *prometheus.CounterVec // table
}

func newLifecycleMetrics(reg prometheus.Registerer) *lifecycleMetrics {
	m := &lifecycleMetrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moderator_retention_runs_total",
			Help: "Daily upkeep runs of the audit tables (partitions ahead, retention, deduplication keys), by result.",
		}, []string{"result"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "moderator_retention_partitions_dropped_total",
			Help: "Monthly partitions of events and decisions dropped past MODERATOR_RETENTION.",
		}),
		kept: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "moderator_retention_partitions_kept",
			Help: "Monthly partitions past MODERATOR_RETENTION kept at the last run because an open appeal depends on them.",
		}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moderator_retention_rows_deleted_total",
			Help: "Rows of the unpartitioned audit tables (actions and their calls, attempts and outcomes, before-send records, raw bodies, quarantine, daily counts) deleted past MODERATOR_RETENTION, by table.",
		}, []string{"table"}),
	}
	for _, r := range []string{"ok", "error"} {
		m.runs.WithLabelValues(r)
	}
	for _, t := range store.RetainedTables {
		m.rows.WithLabelValues(t)
	}
	reg.MustRegister(m.runs, m.dropped, m.kept, m.rows)
	return m
}

// keepAuditTables runs the upkeep of the audit tables at start (once
// migrated) and then daily: it creates the partitions of the coming
// months, drops the months past retention (store.DropPartitionsBefore
// keeps those an open appeal depends on), deletes the rows of the
// unpartitioned tables that went with them (store.DeletePastRetention,
// in batches), and forgets deduplication keys
// past store.DedupHorizon. Every replica runs it; each step is idempotent
// and serialised in the database.
func keepAuditTables(ctx context.Context, logger *slog.Logger, st *store.Store, retention time.Duration,
	m *lifecycleMetrics, migrated *atomic.Bool) {
	everyOnceMigrated(ctx, lifecycleEvery, migrated, func() {
		if err := upkeep(ctx, logger, st, retention, m); err != nil {
			m.runs.WithLabelValues("error").Inc()
			if ctx.Err() == nil {
				logger.Error("audit table upkeep", "error", err)
			}
			return
		}
		m.runs.WithLabelValues("ok").Inc()
	})
}

// upkeep is one run of keepAuditTables.
func upkeep(ctx context.Context, logger *slog.Logger, st *store.Store, retention time.Duration, m *lifecycleMetrics) error {
	created, err := st.EnsurePartitions(ctx)
	if err != nil {
		return err
	}
	if created > 0 {
		logger.Info("partitions created", "created", created, "months_ahead", store.PartitionsAhead)
	}
	cutoff := time.Now().Add(-retention)
	if err := dropMonths(ctx, logger, st, cutoff, retention, m); err != nil {
		return err
	}
	deleted, err := st.DeletePastRetention(ctx, cutoff, store.RetentionBatch)
	for _, table := range store.RetainedTables {
		if n := deleted[table]; n > 0 {
			m.rows.WithLabelValues(table).Add(float64(n))
			logger.Info("rows deleted past retention", "table", table, "deleted", n, "retention", retentionValue(retention))
		}
	}
	if err != nil {
		return err
	}
	pruned, err := st.PruneEventKeys(ctx, store.DedupHorizon)
	if err != nil {
		return err
	}
	if pruned > 0 {
		logger.Info("deduplication keys pruned", "deleted", pruned, "horizon", store.DedupHorizon.String())
	}
	return nil
}

// dropMonths drops the monthly partitions that ended before cutoff, but
// those an open appeal depends on, logging and counting each.
func dropMonths(ctx context.Context, logger *slog.Logger, st *store.Store, cutoff time.Time, retention time.Duration, m *lifecycleMetrics) error {
	parts, err := st.DropPartitionsBefore(ctx, cutoff)
	if err != nil {
		return err
	}
	kept := 0
	for _, p := range parts {
		if p.Kept {
			kept++
			logger.Info("partition past retention kept for an open appeal", "partition", p.Name, "month", p.Month.Format("2006-01"))
			continue
		}
		m.dropped.Inc()
		logger.Info("partition dropped past retention", "partition", p.Name, "month", p.Month.Format("2006-01"),
			"retention", retentionValue(retention))
	}
	m.kept.Set(float64(kept))
	return nil
}
