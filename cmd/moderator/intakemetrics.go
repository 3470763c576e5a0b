package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"moderator/store"
)

// newIntakeMetrics registers the batcher's histograms with reg and returns
// the function that feeds them (store.BatcherConfig.Observe). With
// moderator_webhook_duration_seconds they say where a webhook's time goes:
// waiting for a flusher (the database is the bottleneck: a slow commit, a
// burst), or in its batch's transaction (round trips, judging, commit).
// copies (the store) says whether the replica's copies of the counter
// marks spare the history read its loads, and how many batches they let
// it judge ahead.
// copyCounts are the store's counters of its copies of counter marks.
type copyCounts interface {
	UserCopyLoads() int64
	ChannelCopyLoads() int64
	StrikeCopyLoads() int64
	JudgedAhead() int64
	CopyMisses() int64
}

func newIntakeMetrics(reg prometheus.Registerer, copies copyCounts) func(store.BatchStats) {
	wait := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "moderator_intake_wait_seconds",
		Help:    "Time a webhook waited for a flusher, from its verification to its batch being taken: the intake's queue for the database.",
		Buckets: []float64{.0001, .0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 6},
	})
	took := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "moderator_intake_batch_seconds",
		Help: "Time a batch of webhooks took, from being taken to its answers: its transaction's round trips, the judging, the commit. " +
			"By path: insert (committed with its insert, one round trip: nothing to write after the events), " +
			"ahead (judged from this replica's copies, then its decisions, actions and outcomes written: one or two round trips more), " +
			"read (judged after reading its history in the transaction), write (nothing to judge, something written after the insert), " +
			"failed (not recorded). A batch in which a rule matched takes two to three times as long as one of path insert.",
		Buckets: []float64{.0005, .001, .002, .003, .005, .0075, .01, .015, .025, .05, .1, .25, .5, 1, 2.5, 6},
	}, []string{"path"})
	records := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "moderator_intake_batch_records",
		Help:    "Webhooks per batch (one transaction, one commit): one or two at a few hundred a second, more while they queue.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 9), // 1 … 256, the largest batch
	})
	loads := func(kind string, count func() int64) prometheus.CounterFunc {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "moderator_intake_copy_loads_total",
			Help: "Times a history read loaded a user's (kind=user) or a channel's young accounts' (kind=channel) counter marks, or a user's strikes (kind=strikes), " +
				"because this replica's copy was missing, stale or too short: about once per key, and again whenever this replica's other flusher, or another replica, wrote for the key while a read was in flight; " +
				"strikes again after each change of the user's strikes by another writer (an outcome or an overturn that takes one back, another replica). " +
				"A rate near the webhooks' means the copies do not help.",
			ConstLabels: prometheus.Labels{"kind": kind},
		}, func() float64 { return float64(count()) })
	}
	userLoads, channelLoads := loads("user", copies.UserCopyLoads), loads("channel", copies.ChannelCopyLoads)
	strikeLoads := loads("strikes", copies.StrikeCopyLoads)
	ahead := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "moderator_intake_judged_ahead_total",
		Help: "Batches judged from this replica's copies of counter marks (and of strikes) before their insert, sparing the history read: " +
			"those no rule matched commit in one round trip instead of two.",
	}, func() float64 { return float64(copies.JudgedAhead()) })
	misses := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "moderator_intake_copy_misses_total",
		Help: "Batches judged ahead whose check found a copy stale (another replica wrote marks of the user or channel, or a user's strikes changed) or a retry among them, " +
			"and that were recorded again the usual way, at the cost of a round trip. A rate near moderator_intake_judged_ahead_total's means replicas share users.",
	}, func() float64 { return float64(copies.CopyMisses()) })
	reg.MustRegister(wait, took, records, userLoads, channelLoads, strikeLoads, ahead, misses)
	return func(st store.BatchStats) {
		for _, w := range st.Waits {
			wait.Observe(w.Seconds())
		}
		took.WithLabelValues(string(st.Path)).Observe(st.Took.Seconds())
		records.Observe(float64(st.Records))
	}
}
