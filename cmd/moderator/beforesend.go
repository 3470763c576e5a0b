package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"moderator/policy"
	"moderator/store"
	"moderator/webhook"
)

// beforeSendQueue records before-send decisions off the request path: the
// answer to Stream must not wait for the database, yet the decision is
// audited as soon as it can be. Deliveries wait in a bounded queue and a
// few writers hand them to the batcher (so they share its transactions and
// deduplication), each retrying its delivery until the database takes it:
// a slow or unreachable database delays the audit row, it does not lose
// it, unless the queue fills (counted by the handler) or the service stops
// first (logged). A decision the database refuses for its data is kept in
// quarantine by the batcher, and never retried: retrying it forever would
// pin a writer (eight such records once pinned them all, and every later
// decision went unaudited).
type beforeSendQueue struct {
	audit       *storeAudit
	logger      *slog.Logger
	queue       chan webhook.Delivery
	writers     int
	errors      prometheus.Counter
	quarantined prometheus.Counter
	dropped     prometheus.Counter
}

// newBeforeSendQueue makes a queue holding up to size deliveries; with
// 500 requests/s that is several seconds of database outage.
func newBeforeSendQueue(audit *storeAudit, logger *slog.Logger, reg prometheus.Registerer, size, writers int) *beforeSendQueue {
	q := &beforeSendQueue{audit: audit, logger: logger, queue: make(chan webhook.Delivery, size), writers: writers,
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "moderator_before_send_audit_errors_total",
			Help: "Failed attempts to record a before-send decision (database slow or down); each is retried.",
		}),
		quarantined: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "moderator_before_send_audit_quarantined_total",
			Help: "Before-send decisions the database refused for their data, kept in the quarantine table.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "moderator_before_send_audit_refused_total",
			Help: "Before-send decisions refused by the database that not even the quarantine could keep (logged).",
		})}
	reg.MustRegister(q.errors, q.quarantined, q.dropped, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "moderator_before_send_audit_queue",
		Help: "Before-send decisions waiting to be recorded.",
	}, func() float64 { return float64(len(q.queue)) }))
	return q
}

// Enqueue implements webhook.BeforeSendAudit; it never blocks.
func (q *beforeSendQueue) Enqueue(d webhook.Delivery) bool {
	select {
	case q.queue <- d:
		return true
	default:
		return false
	}
}

// run writes queued deliveries until ctx ends.
func (q *beforeSendQueue) run(ctx context.Context) {
	var wg sync.WaitGroup
	for range q.writers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case d := <-q.queue:
					q.write(ctx, d)
				}
			}
		})
	}
	wg.Wait()
	if n := len(q.queue); n > 0 {
		q.logger.Error("before-send decisions not audited: the service stopped first", "count", n)
	}
}

// write records one delivery, retrying while the database cannot take it
// (store.IsTransient); a delivery it refuses for good is quarantined or,
// failing that, logged and dropped.
func (q *beforeSendQueue) write(ctx context.Context, d webhook.Delivery) {
	retry(ctx, q.logger, "recording a before-send decision", 100*time.Millisecond, 5*time.Second, func() error {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		rec, err := q.audit.RecordEvent(wctx, d)
		switch {
		case err == nil && rec.QuarantineID != 0:
			q.quarantined.Inc()
			q.logger.Warn("before-send decision quarantined: the database refused it", "webhook_id", d.WebhookID,
				"quarantine_id", rec.QuarantineID, "error", rec.QuarantineCause)
		case store.IsPermanent(err):
			q.dropped.Inc()
			q.logger.Error("before-send decision not audited: the database refused it, and its quarantine too",
				"webhook_id", d.WebhookID, "error", err)
			return nil
		case err != nil:
			q.errors.Inc()
		}
		return err
	})
}

// linkWindow is how long after a before-send decision its message.new may
// arrive and still be linked to it. Stream posts message.new within
// seconds; the window allows for its retries.
const linkWindow = 10 * time.Minute

// linkBeforeSend is the batcher's early hook (its statements go with the
// events' insert, in the batch's first round trip): it records the key of
// every message a before-send decision rewrote (keyed by the rewritten
// text, as Stream saves it) and links every new message.new to the
// rewrite with the same key, in the transaction that records them; the
// keys go first, so a message recorded in the same batch as its decision
// is linked. A blocked message never arrives; accepted ones are not
// keyed, because there is nothing to link (they were not changed) and
// keying every message costs a write per request (measured: p99 from 4.8
// to 7.5 ms at 500 requests/s).
//
// The link is the author, the channel and the saved text, because the
// message has no id when the hook runs. It is audit only: the push path
// evaluates the message as Stream saved it, so after a rewrite the masked
// words are no longer there to act on, and nothing is acted on twice; a
// message that slipped past the hook (it failed open, or was not called)
// is still judged in full. Two identical messages from one user in one
// channel within the window link to the latest decision, which made the
// same choice for the same text.
func linkBeforeSend(logger *slog.Logger) store.EarlyHook {
	return func(w *store.Writes, recs []store.EventRecord) {
		var keys []store.BeforeSendKey
		var msgs []store.MessageKey
		for i := range recs {
			r := &recs[i]
			ev := r.Event
			if ev == nil || r.Own {
				continue
			}
			switch ev.Type {
			case policy.EventBeforeSend:
				if r.Decision == nil || r.Decision.Rewrite == nil {
					continue
				}
				if k, ok := policy.MessageKeyOf(ev, r.Decision.Rewrite.Text); ok {
					keys = append(keys, store.BeforeSendKey{Body: r.BodySHA256, Key: k, Outcome: webhook.BeforeSendRewrite})
				}
			case "message.new":
				if k, ok := policy.MessageKeyOf(ev, ""); ok {
					msgs = append(msgs, store.MessageKey{Body: r.BodySHA256, Key: k})
				}
			}
		}
		store.QueueBeforeSendKeys(w, keys)
		store.QueueLinks(w, msgs, linkWindow, func(links []store.BeforeSendLink) {
			for _, l := range links {
				logger.Debug("message linked to its before-send decision", "event_id", l.MessageEventID,
					"before_send_event_id", l.BeforeSendEventID, "before_send", l.Outcome)
			}
		})
	}
}
