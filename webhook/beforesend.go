package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"moderator/policy"
)

// BeforeSendAudit takes before-send deliveries to record. Enqueue must not
// block: the answer to Stream never waits for the database. It reports
// false when the record could not be queued (the queue is full), which is
// counted and logged.
type BeforeSendAudit interface {
	Enqueue(d Delivery) bool
}

// Before-send outcomes, as metric labels and in the canonical log line.
const (
	BeforeSendAccept   = "accept"
	BeforeSendBlock    = "block"
	BeforeSendRewrite  = "rewrite"
	BeforeSendOwn      = "own"       // sent by our bot user: accepted unevaluated
	BeforeSendFailOpen = "fail_open" // an internal failure: accepted, see the reason
)

// Reasons for failing open: moderator_before_send_fail_open_total{reason}.
const (
	FailOpenNoRules   = "no_rules"   // no rule set loaded yet
	FailOpenRuleError = "rule_error" // a before_send rule failed or was skipped, and nothing blocked
	FailOpenPanic     = "panic"
)

// BeforeSendHandler returns the handler of POST /webhooks/stream/before-send,
// Stream's before-message-send hook (STREAM_API.md §1).
//
// The request is checked like a push delivery (body limits, gzip, and the
// signature, which is required: an unsigned request is answered 401, like
// a push webhook, because an open hook would let anyone probe the rules).
// Rejected requests get the push handler's 4xx answers; Stream lets the
// message through on any non-2xx, which is the fail-open it documents.
//
// A verified request is always answered 200, with one of:
//
//	{"message":{"type":"error","text":"…"}}  block: Stream refuses the message and shows the text
//	{"message":{"text":"…"}}                 rewrite: only the text changes
//	{}                                       accept
//
// Any internal failure (no rule set, a rule error, a panic) accepts, as
// Stream itself does when the hook fails, and is counted and logged. The
// delivery is then handed to audit without waiting: recording it must not
// delay the message.
func BeforeSendHandler(logger *slog.Logger, cfg Config, rules Rules, audit BeforeSendAudit, m *Metrics) http.Handler {
	cfg.setDefaults()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		line := beforeSendLine{canonical: canonical{webhookID: r.Header.Get("X-Webhook-Id"), attempt: attempt(r)}}
		status, body := serveBeforeSend(r, cfg, rules, audit, m, &line)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(body)

		elapsed := time.Since(start)
		m.beforeSendDuration.Observe(elapsed.Seconds())
		m.beforeSend.WithLabelValues(line.outcome).Inc()
		if line.failOpen != "" {
			m.beforeSendFailOpen.WithLabelValues(line.failOpen).Inc()
		}
		if line.sigFailure != "" {
			m.signatureFailures.WithLabelValues(line.sigFailure).Inc()
		}
		if line.queueFull {
			m.beforeSendAuditDropped.Inc()
		}
		line.log(r.Context(), logger, status, elapsed)
	})
}

// beforeSendLine is the canonical log line of a before-send request. It
// never holds the message text: the audit trail has it.
type beforeSendLine struct {
	canonical
	failOpen  string
	queueFull bool
	userID    string
	cid       string
}

func (c *beforeSendLine) log(ctx context.Context, logger *slog.Logger, status int, elapsed time.Duration) {
	level := slog.LevelInfo
	if status >= 400 || c.failOpen != "" || c.queueFull {
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{
		slog.String("outcome", c.outcome),
		slog.Int("status", status),
		slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
		slog.Int("bytes", c.bytes),
		slog.String("user_id", c.userID),
		slog.String("cid", c.cid),
	}
	if c.webhookID != "" {
		attrs = append(attrs, slog.String("webhook_id", c.webhookID))
	}
	if c.compressed {
		attrs = append(attrs, slog.Bool("gzip", true))
	}
	if d := c.decision; d != nil {
		attrs = append(attrs, slog.String("rules_version", d.RuleSetVersion))
		if len(d.Matches) > 0 {
			ids := make([]string, len(d.Matches))
			for i, mt := range d.Matches {
				ids[i] = mt.RuleID + ":" + string(mt.Mode)
			}
			attrs = append(attrs, slog.Any("matched", ids))
		}
		if len(d.Errors) > 0 {
			// A rule that fails lets the event through unjudged: say
			// which, and why, at WARN.
			attrs = append(attrs, slog.Any("rule_errors", ruleErrorList(d.Errors)))
			level = max(level, slog.LevelWarn)
		}
	}
	if c.failOpen != "" {
		attrs = append(attrs, slog.String("fail_open", c.failOpen))
	}
	if c.queueFull {
		attrs = append(attrs, slog.Bool("audit_dropped", true))
	}
	if c.err != nil {
		attrs = append(attrs, slog.String("error", c.err.Error()))
	}
	logger.LogAttrs(ctx, level, "before_send", attrs...)
}

// acceptAnswer is the body of an accepting answer.
const acceptAnswer = "{}"

type beforeSendAnswer struct {
	Message answerMessage `json:"message"`
}

type answerMessage struct {
	Type string `json:"type,omitempty"`
	Text string `json:"text"`
}

// serveBeforeSend does the work of one request and returns the answer.
func serveBeforeSend(r *http.Request, cfg Config, rules Rules, audit BeforeSendAudit, m *Metrics, line *beforeSendLine) (int, []byte) {
	fail := func(e *Error) (int, []byte) {
		line.outcome, line.err, line.sigFailure = e.Outcome, e, signatureFailure(e)
		b, _ := json.Marshal(errorBody{Error: e.Msg})
		return e.Status, b
	}
	v, n, verr := readVerified(r, cfg)
	line.bytes = n
	if verr != nil {
		return fail(verr)
	}
	// The payload has no type: this is what before_send rules opt in to.
	v.Event.Type = policy.EventBeforeSend
	line.eventType, line.compressed = v.Event.Type, v.Compressed
	line.cid = v.Event.ChannelCID()
	if u := v.Event.User; u != nil {
		line.userID = u.ID
	}

	d := Delivery{WebhookID: line.webhookID, Attempt: line.attempt, Verified: *v}
	d.Own = v.Event.CausedBy(cfg.BotUserID) || (v.Event.User != nil && cfg.BotUserID != "" && v.Event.User.ID == cfg.BotUserID)
	status, body := http.StatusOK, []byte(acceptAnswer)
	if d.Own {
		line.outcome = BeforeSendOwn
	} else {
		start := time.Now()
		dec, ok, failure := evaluateSafely(rules, v.Event)
		m.evaluation.Observe(time.Since(start).Seconds())
		if ok {
			d.Decision = &dec
			line.decision = &dec
		}
		line.outcome, body, line.failOpen, line.err = answer(dec, ok, failure)
		if line.failOpen == "" && ok {
			for _, mt := range dec.Matches {
				m.ruleMatches.WithLabelValues(mt.RuleID, string(mt.Mode)).Inc()
			}
		}
		if ok {
			for _, e := range dec.Errors {
				m.ruleErrors.WithLabelValues(e.RuleID).Inc()
			}
		}
	}
	if !audit.Enqueue(d) {
		line.queueFull = true
	}
	return status, body
}

// evaluateSafely runs the rules, turning a panic into a failure (Rules
// must not panic, but a before-send answer is never worth a 500).
func evaluateSafely(rules Rules, ev *policy.Event) (dec policy.Decision, ok bool, failure error) {
	defer func() {
		if p := recover(); p != nil {
			dec, ok, failure = policy.Decision{}, false, fmt.Errorf("panic: %v", p)
		}
	}()
	dec, ok = rules.Evaluate(ev)
	return dec, ok, nil
}

// answer turns a decision into the outcome and the body Stream reads, and
// the fail-open reason when the message is accepted because something
// failed. A block or rewrite decided by rules that ran still applies when
// another rule failed.
func answer(dec policy.Decision, ok bool, failure error) (outcome string, body []byte, failOpen string, err error) {
	switch {
	case failure != nil:
		return BeforeSendFailOpen, []byte(acceptAnswer), FailOpenPanic, failure
	case !ok:
		return BeforeSendFailOpen, []byte(acceptAnswer), FailOpenNoRules, nil
	case dec.Block != nil:
		b, err := marshalAnswer(answerMessage{Type: "error", Text: dec.Block.Text})
		if err != nil {
			return BeforeSendFailOpen, []byte(acceptAnswer), FailOpenPanic, err
		}
		return BeforeSendBlock, b, "", nil
	case dec.Rewrite != nil:
		b, err := marshalAnswer(answerMessage{Text: dec.Rewrite.Text})
		if err != nil {
			return BeforeSendFailOpen, []byte(acceptAnswer), FailOpenPanic, err
		}
		return BeforeSendRewrite, b, "", nil
	case len(dec.Errors) > 0:
		return BeforeSendFailOpen, []byte(acceptAnswer), FailOpenRuleError,
			fmt.Errorf("rule %s: %s", dec.Errors[0].RuleID, dec.Errors[0].Error)
	}
	return BeforeSendAccept, []byte(acceptAnswer), "", nil
}

// marshalAnswer encodes {"message": m} without HTML escaping, so the text
// reaches the sender as the rule wrote it.
func marshalAnswer(m answerMessage) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(beforeSendAnswer{Message: m}); err != nil {
		return nil, fmt.Errorf("encode before-send answer: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
