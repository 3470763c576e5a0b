package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"moderator/policy"
)

// Delivery is a verified event ready to be recorded.
type Delivery struct {
	WebhookID string // X-Webhook-Id, "" when absent
	Attempt   int    // X-Webhook-Attempt, 0 when absent or malformed
	Verified
	Own     bool // caused by the bot user: record, never evaluate
	Ignored bool // a type the service does not act on
	// ReceivedAt is when the delivery arrived (a replayed one keeps it).
	ReceivedAt time.Time
	// Decision is the rules' verdict; nil when the event was not evaluated
	// (our own echo, or no rule set loaded yet), or when Judge decides it.
	Decision *policy.Decision
	// Judge, when set, decides the event in the transaction that records
	// it, with the history (counters, strikes) its rules read.
	Judge *policy.Deferred
}

// Recorded is what the audit log did with a delivery.
type Recorded struct {
	EventID   int64
	Duplicate string // "" for a new event, else the duplicate kind ("webhook_id", "body")
	// Decision is the decision recorded with a new event (the delivery's,
	// or the one its Judge made); nil for duplicates.
	Decision *policy.Decision
	// QuarantineID is set (EventID is not) when the database refused the
	// event for its data and kept the delivery in quarantine instead;
	// QuarantineCause says why.
	QuarantineID    int64
	QuarantineCause string
}

// AuditLog records deliveries durably. RecordEvent returns only after the
// record is committed, or with an error when it could not be.
type AuditLog interface {
	RecordEvent(ctx context.Context, d Delivery) (Recorded, error)
}

// Rules judges events. Evaluate reports false when no rule set is loaded;
// it must not panic (policy.RuleSet.Evaluate recovers per rule).
type Rules interface {
	Evaluate(ev *policy.Event) (policy.Decision, bool)
}

// HistoryRules are Rules that may read an event's history. The push
// handler uses them when its Rules implement it: EvaluateOrDefer judges
// ev at once (j nil), or returns a Judge for the recording transaction
// when the rules that apply to ev read counters or strikes. ok is false
// when no rule set is loaded. One call, so that a reload cannot split
// the choice from the rule set that makes it.
type HistoryRules interface {
	EvaluateOrDefer(ev *policy.Event) (d policy.Decision, j *policy.Deferred, ok bool)
}

// Config is the webhook edge's configuration.
type Config struct {
	Keys                 Keyring
	BotUserID            string
	MaxBodyBytes         int64         // raw body limit; default 1 MiB
	MaxDecompressedBytes int64         // gunzipped body limit; default 8 MiB
	RecordTimeout        time.Duration // budget for the durable write; default 4 s (Stream waits 6 s; the spool needs a moment after it)
	// Transient says whether a failed write may pass by itself (the
	// database unreachable, read-only, out of disk or connections), so the
	// delivery is worth spooling; nil: every failure is.
	Transient func(error) bool
	// Eraser, when set, erases the content of a user Stream reports
	// deleted with hard_delete, once the event is recorded.
	Eraser UserEraser
	// Erased, when set, tells the users erased lately: their deliveries
	// (a late retry, a spooled replay, any later event about them) are
	// redacted before they are judged, spooled or recorded.
	Erased ErasedUsers
}

func (c *Config) setDefaults() {
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 1 << 20
	}
	if c.MaxDecompressedBytes <= 0 {
		c.MaxDecompressedBytes = 8 << 20
	}
	if c.RecordTimeout <= 0 {
		c.RecordTimeout = 4 * time.Second
	}
}

// canonical is the one log line written per delivery.
type canonical struct {
	webhookID  string
	attempt    int
	eventType  string
	outcome    string
	eventID    int64
	duplicate  string
	bytes      int
	compressed bool
	sigFailure string
	err        error
	// decision is the rules' verdict; unevaluated is set when no rule set
	// was loaded.
	decision    *policy.Decision
	unevaluated bool
	// Of a replayed delivery: how long it waited in the spool, and where
	// it was copied when the database refused it for good.
	replayedAfter time.Duration
	setAsideAt    string
}

func (c *canonical) log(ctx context.Context, logger *slog.Logger, status int, elapsed time.Duration) {
	c.logAs(ctx, logger, "webhook", status, elapsed)
}

func (c *canonical) logAs(ctx context.Context, logger *slog.Logger, msg string, status int, elapsed time.Duration) {
	level := slog.LevelInfo
	switch {
	case status >= 500:
		level = slog.LevelError
	case status >= 400, c.outcome == OutcomeQuarantined:
		level = slog.LevelWarn
	}
	attrs := []slog.Attr{
		slog.String("webhook_id", policy.SafeID(c.webhookID)), // as stored: a 10 KB id is not logged whole
		slog.Int("attempt", c.attempt),
		slog.String("type", c.eventType),
		slog.String("outcome", c.outcome),
		slog.Int("status", status),
		slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
		slog.Int("bytes", c.bytes),
	}
	if c.compressed {
		attrs = append(attrs, slog.Bool("gzip", true))
	}
	if c.eventID != 0 {
		attrs = append(attrs, slog.Int64("event_id", c.eventID))
	}
	if c.duplicate != "" {
		attrs = append(attrs, slog.String("duplicate_of", c.duplicate))
	}
	if d := c.decision; d != nil {
		attrs = append(attrs, slog.String("rules_version", d.RuleSetVersion))
		if len(d.Matches) > 0 {
			ids := make([]string, len(d.Matches))
			for i, mt := range d.Matches {
				ids[i] = mt.RuleID + ":" + string(mt.Mode)
			}
			attrs = append(attrs, slog.Any("matched", ids), slog.Int("actions", len(d.Actions)))
		}
		if len(d.Errors) > 0 {
			// A rule that fails lets the event through unjudged: say
			// which, and why, at WARN.
			attrs = append(attrs, slog.Any("rule_errors", ruleErrorList(d.Errors)))
			level = max(level, slog.LevelWarn)
		}
	}
	if c.unevaluated {
		attrs = append(attrs, slog.Bool("unevaluated", true))
	}
	if c.replayedAfter > 0 {
		attrs = append(attrs, slog.Float64("spooled_for_s", c.replayedAfter.Seconds()))
	}
	if c.setAsideAt != "" {
		attrs = append(attrs, slog.String("set_aside_at", c.setAsideAt))
	}
	if c.err != nil {
		attrs = append(attrs, slog.String("error", c.err.Error()))
	}
	logger.LogAttrs(ctx, level, msg, attrs...)
}

// fail fills the line for a refused delivery and returns its answer.
func (c *canonical) fail(e *Error) (int, any) {
	c.outcome, c.err, c.sigFailure = e.Outcome, e, signatureFailure(e)
	return e.Status, errorBody{Error: e.Msg}
}

// readVerified reads a webhook's body under cfg's limits and verifies and
// parses it; it also returns how many raw bytes it read. Both endpoints
// (push and before-send) take deliveries this way.
func readVerified(r *http.Request, cfg Config) (*Verified, int, *Error) {
	if r.ContentLength > cfg.MaxBodyBytes {
		return nil, 0, tooLarge(cfg.MaxBodyBytes)
	}
	// Refuse what the headers alone condemn before reading a byte.
	if _, err := cfg.Keys.checkHeaders(r.Header.Get("X-Api-Key"), r.Header.Get("X-Signature")); err != nil {
		return nil, 0, err
	}
	raw, err := readBody(r, cfg.MaxBodyBytes)
	if err != nil {
		return nil, len(raw), &Error{Status: http.StatusBadRequest, Outcome: OutcomeMalformed, Msg: "body: read failed", Err: err}
	}
	if int64(len(raw)) > cfg.MaxBodyBytes {
		return nil, len(raw), tooLarge(cfg.MaxBodyBytes)
	}
	v, err := cfg.Keys.VerifyAndParse(r.Header.Get("X-Api-Key"), r.Header.Get("X-Signature"), raw, cfg.MaxDecompressedBytes)
	if err != nil {
		return nil, len(raw), err.(*Error)
	}
	return v, len(raw), nil
}

// readBody reads at most limit+1 bytes of r's body: enough to know it is
// too large. With a Content-Length it reads into a buffer of that size
// (one byte more, for the end), where io.ReadAll would grow one from 512
// bytes and copy it at each step: four allocations and three copies for
// a typical 1.7 KB event, on every webhook.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	body := io.LimitReader(r.Body, limit+1)
	if r.ContentLength <= 0 || r.ContentLength > limit {
		return io.ReadAll(body)
	}
	buf := make([]byte, r.ContentLength+1)
	n, err := io.ReadFull(body, buf)
	switch err {
	case io.ErrUnexpectedEOF, io.EOF:
		return buf[:n], nil // the whole body, as its length said
	case nil: // longer than its Content-Length said: the rest too
		rest, err := io.ReadAll(body)
		return append(buf, rest...), err
	}
	return buf[:n], err
}

func tooLarge(limit int64) *Error {
	return &Error{Status: http.StatusRequestEntityTooLarge, Outcome: OutcomeTooLarge,
		Msg: fmt.Sprintf("body: exceeds %d bytes", limit)}
}

func attempt(r *http.Request) int {
	n, err := strconv.Atoi(r.Header.Get("X-Webhook-Attempt"))
	if err != nil || n < 0 {
		return 0
	}
	return n
}

type okBody struct {
	Status  string `json:"status"`
	EventID int64  `json:"event_id,omitempty"`
}

type quarantinedBody struct {
	Status       string `json:"status"`
	QuarantineID int64  `json:"quarantine_id"`
}

type errorBody struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// handledTypes are the event types the service evaluates or audits for
// moderation (STREAM_API.md §1). Others are recorded as ignored: Stream
// adds types, and an app subscribed to everything sends them all.
var handledTypes = map[string]bool{
	"message.new": true, "message.updated": true, "message.deleted": true, "message.flagged": true,
	"message.unflagged": true, "user.flagged": true, "user.unflagged": true, "user.banned": true,
	"user.unbanned": true, "user.muted": true, "user.unmuted": true, "user.updated": true,
	"user.deleted": true, "user.deactivated": true, "user.reactivated": true, "reaction.new": true,
	"reaction.updated": true, "channel.created": true, "channel.updated": true, "member.added": true,
	"member.updated": true, "member.removed": true,
}

// ruleErrorList formats a decision's rule errors for the log, as
// "rule_id: error".
func ruleErrorList(errs []policy.RuleError) []string {
	out := make([]string, len(errs))
	for i, e := range errs {
		out[i] = e.RuleID + ": " + e.Error
	}
	return out
}
