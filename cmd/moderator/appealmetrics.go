package main

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"moderator/store"
)

// appealQueueCollector reads the appeals queue when scraped: how many
// appeals wait for a decision, and how long the oldest has waited.
type appealQueueCollector struct {
	st              *store.Store
	pending, oldest *prometheus.Desc
}

func newAppealQueueCollector(st *store.Store) appealQueueCollector {
	return appealQueueCollector{st: st,
		pending: prometheus.NewDesc("moderator_appeals_pending", "Appeals waiting for a decision.", nil, nil),
		oldest: prometheus.NewDesc("moderator_appeals_oldest_pending_seconds",
			"How long the oldest appeal waiting for a decision has waited (0 when none waits).", nil, nil),
	}
}

func (c appealQueueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pending
	ch <- c.oldest
}

func (c appealQueueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	q, err := c.st.AppealQueueStats(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.pending, err)
		return
	}
	var age float64
	if !q.OldestPending.IsZero() {
		age = max(0, time.Since(q.OldestPending).Seconds())
	}
	ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(q.Pending))
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age)
}
