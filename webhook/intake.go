package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"moderator/policy"
	"moderator/spool"
)

// Intake takes verified push deliveries to durable storage: to Postgres
// through the AuditLog, or, when the database cannot commit them for a
// reason that passes (unreachable, read-only, out of disk or connections),
// to the local spool, fsync'd before the 200. Its replayer (Replay) then
// records the spooled deliveries in the order they arrived, through the
// same judging and recording as a live one, so each is judged once and
// counted once. While the spool holds anything, live deliveries join it,
// so that events are judged, and counted, in order.
type Intake struct {
	logger *slog.Logger
	cfg    Config
	rules  Rules
	audit  AuditLog
	spool  *spool.Spool // nil: no spool, a failed commit answers 503
	m      *Metrics
	health commitHealth
	wake   chan struct{} // a delivery was spooled
	// replaying is held (a one-slot semaphore) while a chunk of the spool
	// is replayed, and while EraseSpooled rewrites the spool.
	replaying chan struct{}
}

// NewIntake returns the intake of POST /webhooks/stream. sp may be nil
// (no spool). Run Replay for as long as the intake takes deliveries.
func NewIntake(logger *slog.Logger, cfg Config, rules Rules, audit AuditLog, sp *spool.Spool, m *Metrics) *Intake {
	cfg.setDefaults()
	in := &Intake{logger: logger, cfg: cfg, rules: rules, audit: audit, spool: sp, m: m, wake: make(chan struct{}, 1),
		replaying: make(chan struct{}, 1)}
	if sp != nil {
		m.registerSpool(sp)
	}
	return in
}

// Handler returns the handler of POST /webhooks/stream with no spool; see
// Intake.Handler.
func Handler(logger *slog.Logger, cfg Config, rules Rules, audit AuditLog, m *Metrics) http.Handler {
	return NewIntake(logger, cfg, rules, audit, nil, m).Handler()
}

// Handler returns the handler of POST /webhooks/stream.
//
// Statuses: 200 recorded, duplicate, ignored, quarantined or spooled; 400 malformed;
// 401 unknown key or bad signature; 413 too large; 503 neither recorded nor
// spooled (Stream retries). Nothing is written for a rejected request, and
// 200 means committed, or fsync'd to the spool.
func (in *Intake) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		line := canonical{webhookID: r.Header.Get("X-Webhook-Id"), attempt: attempt(r)}
		status, body := in.serve(r, &line)
		writeJSON(w, status, body)

		elapsed := time.Since(start)
		in.m.duration.Observe(elapsed.Seconds())
		in.m.deliveries.WithLabelValues(line.outcome).Inc()
		if line.sigFailure != "" {
			in.m.signatureFailures.WithLabelValues(line.sigFailure).Inc()
		}
		line.log(r.Context(), in.logger, status, elapsed)
	})
}

// serve does the work of one delivery and returns the answer; it fills in
// the canonical log line as it goes.
func (in *Intake) serve(r *http.Request, line *canonical) (int, any) {
	received := time.Now()
	v, n, verr := readVerified(r, in.cfg)
	line.bytes = n
	if verr != nil {
		return line.fail(verr)
	}
	line.eventType, line.compressed = v.Event.Type, v.Compressed
	d := in.delivery(line.webhookID, line.attempt, *v, received)

	// Behind a backlog, a delivery waits its turn in the spool.
	if in.spool != nil && in.spool.Len() > 0 {
		return in.spoolDelivery(d, line, nil)
	}
	// The write outlives a sender that hung up: finishing it is cheap and
	// the retry will then be a duplicate instead of a second attempt.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), in.cfg.RecordTimeout)
	defer cancel()
	rec, err := in.record(ctx, &d, line)
	if err != nil {
		if in.spool != nil && in.transient(err) {
			return in.spoolDelivery(d, line, err)
		}
		in.m.dbErrors.Inc()
		return line.fail(&Error{Status: http.StatusServiceUnavailable, Outcome: OutcomeUnavailable,
			Msg: "cannot record the event right now; retry", Err: err})
	}
	in.noteRecorded(d, rec, line)
	if rec.QuarantineID != 0 {
		return http.StatusOK, quarantinedBody{Status: OutcomeQuarantined, QuarantineID: rec.QuarantineID}
	}
	// A retry of a hard user.deleted (a duplicate) erases again: the
	// erasure is idempotent. A failed one is queued; when it cannot be,
	// a 503 brings Stream's retry.
	if _, err := in.eraseDeleted(r.Context(), d.Event); err != nil {
		return line.fail(&Error{Status: http.StatusServiceUnavailable, Outcome: OutcomeUnavailable,
			Msg: "recorded, but the deleted user's content is not erased yet; retry", Err: err})
	}
	return http.StatusOK, okBody{Status: line.outcome, EventID: rec.EventID}
}

// delivery makes a verified body a Delivery: its headers, its time, and
// whether it is the service's own echo or of a type it ignores. An
// erased user's content in it is redacted first (redactErased).
func (in *Intake) delivery(webhookID string, attempt int, v Verified, received time.Time) Delivery {
	in.redactErased(&v)
	d := Delivery{WebhookID: webhookID, Attempt: attempt, Verified: v, ReceivedAt: received}
	d.Own = v.Event.CausedBy(in.cfg.BotUserID)
	d.Ignored = !d.Own && !handledTypes[v.Event.Type]
	return d
}

// record judges d (at once, or in the recording transaction when its rules
// read history) and records it. A live delivery and a replayed one take
// this same path.
func (in *Intake) record(ctx context.Context, d *Delivery, line *canonical) (Recorded, error) {
	in.judge(d, line)
	rec, err := in.audit.RecordEvent(ctx, *d)
	in.health.note(err, in.transient)
	return rec, err
}

// judge evaluates the rules on d, or leaves d a Judge for the transaction.
func (in *Intake) judge(d *Delivery, line *canonical) {
	if d.Own {
		return
	}
	start := time.Now()
	var (
		dec   policy.Decision
		judge *policy.Deferred
		ok    bool
	)
	if hr, withHistory := in.rules.(HistoryRules); withHistory {
		dec, judge, ok = hr.EvaluateOrDefer(d.Event)
	} else {
		dec, ok = in.rules.Evaluate(d.Event)
	}
	switch {
	case !ok:
		line.unevaluated = true
	case judge != nil:
		// Timed when it runs, in the transaction.
		j := *judge
		j.Decide = func(h, shadow policy.History) policy.Decision {
			start := time.Now()
			defer func() { in.m.evaluation.Observe(time.Since(start).Seconds()) }()
			return judge.Decide(h, shadow)
		}
		j.DecideKnown = func(h, shadow policy.History) (policy.Decision, bool) {
			start := time.Now()
			defer func() { in.m.evaluation.Observe(time.Since(start).Seconds()) }()
			return judge.DecideKnown(h, shadow)
		}
		d.Judge = &j
	default:
		d.Decision = &dec
		line.decision = &dec
	}
	if judge == nil {
		in.m.evaluation.Observe(time.Since(start).Seconds())
	}
}

// noteRecorded fills the log line and the rule metrics for a recorded
// (or quarantined) delivery.
func (in *Intake) noteRecorded(d Delivery, rec Recorded, line *canonical) {
	if rec.QuarantineID != 0 {
		line.decision = nil
		line.outcome, line.err = OutcomeQuarantined, errors.New(rec.QuarantineCause)
		return
	}
	line.eventID, line.duplicate = rec.EventID, rec.Duplicate
	if d.Judge != nil && rec.Decision != nil {
		line.decision = rec.Decision
	}
	if dec := line.decision; dec != nil && rec.Duplicate == "" {
		for _, mt := range dec.Matches {
			in.m.ruleMatches.WithLabelValues(mt.RuleID, string(mt.Mode)).Inc()
		}
		for _, e := range dec.Errors {
			in.m.ruleErrors.WithLabelValues(e.RuleID).Inc()
		}
	}
	switch {
	case rec.Duplicate != "":
		line.outcome = OutcomeDuplicate
	case d.Own:
		line.outcome = OutcomeOwn
	case d.Ignored:
		line.outcome = OutcomeIgnored
	default:
		line.outcome = OutcomeRecorded
	}
}

// spoolDelivery appends d to the spool and answers 200 spooled once it is
// fsync'd, or 503 when the spool cannot take it (full, or the disk
// failing). cause is the failed commit that sent d here, nil when d joined
// a backlog.
func (in *Intake) spoolDelivery(d Delivery, line *canonical, cause error) (int, any) {
	line.decision, line.unevaluated = nil, false // judged when replayed
	err := in.spool.Append(encodeDelivery(d))
	switch {
	case err == nil:
		in.m.spoolAppends.WithLabelValues(spoolAppended).Inc()
		line.outcome, line.err = OutcomeSpooled, cause
		select {
		case in.wake <- struct{}{}:
		default:
		}
		return http.StatusOK, okBody{Status: OutcomeSpooled}
	case errors.Is(err, spool.ErrFull):
		in.m.spoolAppends.WithLabelValues(spoolFull).Inc()
	default:
		in.m.spoolAppends.WithLabelValues(spoolFailed).Inc()
	}
	if cause != nil {
		err = fmt.Errorf("%w; and the spool refused it: %w", cause, err)
	}
	return line.fail(&Error{Status: http.StatusServiceUnavailable, Outcome: OutcomeUnavailable,
		Msg: "cannot record the event right now; retry", Err: err})
}

// transient reports whether a failed record may pass by itself.
func (in *Intake) transient(err error) bool {
	if in.cfg.Transient == nil {
		return err != nil
	}
	return in.cfg.Transient(err)
}

// commitFailureGrace is how long commits may keep failing before
// readiness reports it.
const commitFailureGrace = 5 * time.Second

// Ready says whether the intake can take deliveries durably. err is set
// when it cannot (503): the spool is full or cannot write, or, without a
// spool, commits have failed for more than a few seconds. degraded names
// what is wrong while deliveries are still taken (200): "spooling", or
// commits failing while the spool takes their deliveries.
func (in *Intake) Ready() (degraded []string, err error) {
	failing := in.health.failingFor(commitFailureGrace)
	if in.spool == nil {
		if failing != nil {
			return nil, failing
		}
		return nil, nil
	}
	st := in.spool.Stats()
	switch {
	case st.Err != nil:
		return nil, fmt.Errorf("spool cannot write: %w", st.Err)
	case st.Full:
		return nil, fmt.Errorf("spool is full (%d records, %d bytes)", st.Records, st.Disk)
	}
	if st.Records > 0 {
		degraded = append(degraded, "spooling")
	}
	if failing != nil {
		degraded = append(degraded, failing.Error())
	}
	return degraded, nil
}

// commitHealth remembers since when commits fail.
type commitHealth struct {
	mu      sync.Mutex
	since   time.Time // first failure since the last success; zero when the last commit succeeded
	lastErr error
}

// note records the outcome of a commit; failures that are not transient
// (a record Postgres refuses) say nothing about the database's health.
func (h *commitHealth) note(err error, transient func(error) bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case err == nil:
		h.since, h.lastErr = time.Time{}, nil
	case transient(err):
		if h.since.IsZero() {
			h.since = time.Now()
		}
		h.lastErr = err
	}
}

// failingFor returns an error when commits have failed for longer than
// grace, else nil.
func (h *commitHealth) failingFor(grace time.Duration) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.since.IsZero() || time.Since(h.since) < grace {
		return nil
	}
	return fmt.Errorf("commits failing for %s: %w", time.Since(h.since).Round(time.Second), h.lastErr)
}
