package webhook

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"moderator/spool"
)

// Metrics are the webhook edge's Prometheus collectors. The registry is
// made by the caller (no global registration).
type Metrics struct {
	deliveries        *prometheus.CounterVec
	signatureFailures *prometheus.CounterVec
	duration          prometheus.Histogram
	dbErrors          prometheus.Counter
	ruleMatches       *prometheus.CounterVec
	ruleErrors        *prometheus.CounterVec
	evaluation        prometheus.Histogram

	beforeSend             *prometheus.CounterVec
	beforeSendFailOpen     *prometheus.CounterVec
	beforeSendDuration     prometheus.Histogram
	beforeSendAuditDropped prometheus.Counter

	spoolAppends *prometheus.CounterVec
	replayed     *prometheus.CounterVec
	replayErrors prometheus.Counter
	// erasedRedacted counts deliveries redacted for an erased user.
	erasedRedacted prometheus.Counter
	reg            prometheus.Registerer
}

// Results of a spool append, as the label of moderator_spool_appends_total.
const (
	spoolAppended = "appended"
	spoolFull     = "full"
	spoolFailed   = "failed"
)

// NewMetrics creates the collectors and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moderator_webhooks_total",
			Help: "Webhook deliveries by outcome (recorded, own, ignored, duplicate, spooled, unauthorized, too_large, malformed, unavailable).",
		}, []string{"outcome"}),
		signatureFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moderator_webhook_signature_failures_total",
			Help: "Deliveries refused for their signature or API key, by reason (missing, malformed, mismatch, unknown_key).",
		}, []string{"reason"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "moderator_webhook_duration_seconds",
			Help:    "Time from request start to answer, for every webhook delivery.",
			Buckets: []float64{.0005, .001, .002, .003, .005, .0075, .01, .015, .025, .05, .1, .25, .5, 1, 2.5, 6},
		}),
		dbErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "moderator_webhook_db_errors_total",
			Help: "Deliveries that could not be recorded because of a database error (answered 503).",
		}),
		ruleMatches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moderator_rule_matches_total",
			Help: "Rule matches on newly recorded events, by rule and mode (enforce or shadow).",
		}, []string{"rule", "mode"}),
		ruleErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moderator_rule_errors_total",
			Help: "Rules that failed, panicked or were skipped for the time budget on a newly recorded event, by rule.",
		}, []string{"rule"}),
		evaluation: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "moderator_rules_evaluation_seconds",
			Help:    "Time to evaluate the rule set on one event.",
			Buckets: []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01},
		}),
		beforeSend: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moderator_before_send_total",
			Help: "Before-send hook requests by outcome (accept, block, rewrite, own, fail_open, unauthorized, too_large, malformed).",
		}, []string{"outcome"}),
		beforeSendFailOpen: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moderator_before_send_fail_open_total",
			Help: "Before-send requests accepted because of an internal failure, by reason (no_rules, rule_error, panic).",
		}, []string{"reason"}),
		beforeSendDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "moderator_before_send_duration_seconds",
			Help:    "Time from request start to answer, for every before-send request (target p99 5 ms).",
			Buckets: []float64{.00025, .0005, .001, .002, .003, .005, .0075, .01, .025, .05, .1, .5, 1.5},
		}),
		beforeSendAuditDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "moderator_before_send_audit_dropped_total",
			Help: "Before-send decisions not audited because the audit queue was full.",
		}),
		spoolAppends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moderator_spool_appends_total",
			Help: "Deliveries offered to the local spool while the database could not commit, by result (appended; full and failed were answered 503).",
		}, []string{"result"}),
		replayed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "moderator_spool_replayed_total",
			Help: "Spooled deliveries recorded in the database by the replayer, by outcome (recorded, own, ignored, duplicate, quarantined, set_aside); its rate is the replay rate.",
		}, []string{"outcome"}),
		replayErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "moderator_spool_replay_errors_total",
			Help: "Replay attempts that failed (the records stay spooled and are retried).",
		}),
		erasedRedacted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "moderator_webhook_erased_redacted_total",
			Help: "Deliveries about a user erased lately (a late retry, a replay, a reaction to their message) redacted before they were recorded.",
		}),
		reg: reg,
	}
	reg.MustRegister(m.spoolAppends, m.replayed, m.replayErrors)
	for _, r := range []string{spoolAppended, spoolFull, spoolFailed} {
		m.spoolAppends.WithLabelValues(r)
	}
	for _, o := range []string{OutcomeRecorded, OutcomeOwn, OutcomeIgnored, OutcomeDuplicate, OutcomeQuarantined, replaySetAside} {
		m.replayed.WithLabelValues(o)
	}
	reg.MustRegister(m.deliveries, m.signatureFailures, m.duration, m.dbErrors, m.ruleMatches, m.ruleErrors, m.evaluation,
		m.beforeSend, m.beforeSendFailOpen, m.beforeSendDuration, m.beforeSendAuditDropped, m.erasedRedacted)
	for _, o := range []string{BeforeSendAccept, BeforeSendBlock, BeforeSendRewrite, BeforeSendOwn, BeforeSendFailOpen,
		OutcomeUnauthorized, OutcomeTooLarge, OutcomeMalformed} {
		m.beforeSend.WithLabelValues(o)
	}
	for _, r := range []string{sigMissing, sigMalformed, sigMismatch, sigUnknown} {
		m.signatureFailures.WithLabelValues(r)
	}
	for _, r := range []string{FailOpenNoRules, FailOpenRuleError, FailOpenPanic} {
		m.beforeSendFailOpen.WithLabelValues(r)
	}
	for _, o := range []string{OutcomeRecorded, OutcomeOwn, OutcomeIgnored, OutcomeDuplicate, OutcomeSpooled, OutcomeQuarantined, OutcomeUnauthorized,
		OutcomeTooLarge, OutcomeMalformed, OutcomeUnavailable} {
		m.deliveries.WithLabelValues(o) // export zeros, so rate() works from the start
	}
	return m
}

// registerSpool exports the spool's state: its size, its backlog and how
// old that is, and whether it is full or failing.
func (m *Metrics) registerSpool(sp *spool.Spool) {
	gauge := func(name, help string, f func(spool.Stats) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return f(sp.Stats()) })
	}
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	m.reg.MustRegister(
		gauge("moderator_spool_records", "Deliveries in the local spool, waiting for the database.",
			func(s spool.Stats) float64 { return float64(s.Records) }),
		gauge("moderator_spool_bytes", "Bytes of the deliveries in the local spool.",
			func(s spool.Stats) float64 { return float64(s.Bytes) }),
		gauge("moderator_spool_disk_bytes", "Bytes of the spool's segment files (bounded by MODERATOR_SPOOL_MAX_BYTES).",
			func(s spool.Stats) float64 { return float64(s.Disk) }),
		gauge("moderator_spool_oldest_record_age_seconds", "Age of the oldest delivery in the spool; 0 when it is empty.",
			func(s spool.Stats) float64 {
				if s.Oldest.IsZero() {
					return 0
				}
				return time.Since(s.Oldest).Seconds()
			}),
		gauge("moderator_spool_full", "1 when the spool refused a delivery for want of room (answered 503).",
			func(s spool.Stats) float64 { return b2f(s.Full) }),
		gauge("moderator_spool_failed", "1 when the spool cannot write (a failed fsync): deliveries are answered 503.",
			func(s spool.Stats) float64 { return b2f(s.Err != nil) }),
	)
}
