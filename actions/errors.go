package actions

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// ErrInvalidRequest marks a request the client refused to send because it
// breaks Stream's contract (an empty target, a reason over MaxReasonLength,
// a negative timeout …). Resending it cannot succeed, so IsPermanent reports
// it as permanent.
var ErrInvalidRequest = errors.New("invalid request")

// maxRetryWait caps RetryAt so that a bogus Retry-After or X-RateLimit-Reset
// header cannot park an action for days. Stream's windows are one minute.
const maxRetryWait = time.Hour

// RateLimit is the rate-limit window Stream reports in the X-RateLimit-*
// headers of every response, for the endpoint that was called. The zero
// value means the response carried no such headers (edge answers often
// don't).
type RateLimit struct {
	// Limit is the number of calls allowed in the current one-minute window.
	Limit int
	// Remaining is the number of calls left in the current window.
	Remaining int
	// Reset is when the current window ends (X-RateLimit-Reset, Unix seconds).
	Reset time.Time
}

// IsZero reports whether no rate-limit header was present.
func (r RateLimit) IsZero() bool {
	return r.Limit == 0 && r.Remaining == 0 && r.Reset.IsZero()
}

// parseRateLimit reads the X-RateLimit-* headers. Malformed values are
// ignored rather than failing the call: the headers are advice, the status
// code is the answer.
func parseRateLimit(h http.Header) RateLimit {
	var rl RateLimit
	if n, err := strconv.Atoi(strings.TrimSpace(h.Get("X-RateLimit-Limit"))); err == nil && n >= 0 {
		rl.Limit = n
	}
	if n, err := strconv.Atoi(strings.TrimSpace(h.Get("X-RateLimit-Remaining"))); err == nil && n >= 0 {
		rl.Remaining = n
	}
	if n, err := strconv.ParseInt(strings.TrimSpace(h.Get("X-RateLimit-Reset")), 10, 64); err == nil && n > 0 {
		rl.Reset = time.Unix(n, 0).UTC()
	}
	return rl
}

// parseRetryAfter reads a Retry-After header in either of its forms: delay
// seconds or an HTTP date (relative to now). Absent, malformed or past
// values give zero.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(maxRetryWait/time.Second) {
			return maxRetryWait
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// APIError is a non-2xx answer from Stream (or from the edge in front of
// it). StatusCode is always set; Code, Message and Unrecoverable come from
// Stream's JSON error body when there is one.
type APIError struct {
	// StatusCode is the HTTP status of the answer.
	StatusCode int
	// Code is Stream's error code (4 input error, 9 rate limited, 16 does not
	// exist, 17 not allowed, 2 bad API key, 5 and 40-43 token errors, …), or
	// 0 when the answer was not Stream's JSON error body.
	Code int
	// Message is Stream's message, or a short description of a non-JSON
	// answer. It never contains the API secret or the server token: Stream
	// does not echo them and the client never adds them.
	Message string
	// ExceptionFields names the offending request fields, when Stream did.
	ExceptionFields map[string]string
	// Unrecoverable is Stream's own "do not retry" verdict.
	Unrecoverable bool
	// RetryAfter is the Retry-After header, zero when absent.
	RetryAfter time.Duration
	// RateLimit is the window reported with the error.
	RateLimit RateLimit
}

// Error describes the answer without any credentials.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "stream answered HTTP %d", e.StatusCode)
	if e.Code != 0 {
		fmt.Fprintf(&b, " code %d", e.Code)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.Unrecoverable {
		b.WriteString(" (unrecoverable)")
	}
	return b.String()
}

// streamErrorBody is Stream's error body. Only the fields the client acts
// on are decoded; exception_fields is decoded loosely because its values are
// documented as strings but nothing guarantees it.
type streamErrorBody struct {
	Code            *int           `json:"code"`
	Message         string         `json:"message"`
	ExceptionFields map[string]any `json:"exception_fields"`
	Unrecoverable   bool           `json:"unrecoverable"`
}

// parseAPIError builds an APIError from a non-2xx answer. Edge answers (a
// 429 or 502 HTML page) are not JSON: the status code alone then classifies
// the error, as STREAM_API.md advises.
func parseAPIError(status int, h http.Header, body []byte, now time.Time) *APIError {
	e := &APIError{
		StatusCode: status,
		RetryAfter: parseRetryAfter(h.Get("Retry-After"), now),
		RateLimit:  parseRateLimit(h),
	}
	var wire streamErrorBody
	if err := json.Unmarshal(body, &wire); err == nil && (wire.Code != nil || wire.Message != "") {
		if wire.Code != nil {
			e.Code = *wire.Code
		}
		e.Message = wire.Message
		e.Unrecoverable = wire.Unrecoverable
		if len(wire.ExceptionFields) > 0 {
			e.ExceptionFields = make(map[string]string, len(wire.ExceptionFields))
			for k, v := range wire.ExceptionFields {
				e.ExceptionFields[k] = fmt.Sprint(v)
			}
		}
		return e
	}
	e.Message = describeNonJSON(status, body)
	return e
}

// describeNonJSON keeps a short plain-text body (an edge's "Too Many
// Requests") and replaces anything else, such as an HTML page, by the
// status text: the audit trail wants a line, not a page.
func describeNonJSON(status int, body []byte) string {
	text := strings.TrimSpace(string(body))
	printable := text != "" && len(text) <= 200 && !strings.HasPrefix(text, "<") &&
		strings.IndexFunc(text, func(r rune) bool { return !unicode.IsPrint(r) }) < 0
	if printable {
		return text
	}
	if st := http.StatusText(status); st != "" {
		return st + " (no Stream error body)"
	}
	return "no Stream error body"
}

// class is the verdict on a failed call; exactly one applies to any error.
type class int

const (
	classNone class = iota
	classDone
	classRetryable
	classPermanent
)

func classify(err error) class {
	if err == nil {
		return classNone
	}
	var ae *APIError
	if errors.As(err, &ae) {
		switch {
		case alreadyDone(ae):
			return classDone
		case ae.Unrecoverable:
			return classPermanent
		case ae.StatusCode == http.StatusRequestTimeout,
			ae.StatusCode == http.StatusTooManyRequests,
			ae.StatusCode >= 500:
			return classRetryable
		default:
			return classPermanent
		}
	}
	if errors.Is(err, ErrInvalidRequest) {
		return classPermanent
	}
	// Network errors, timeouts, cancellations and truncated answers: the
	// outcome is unknown, and every action is idempotent in effect, so the
	// safe move is to try again.
	return classRetryable
}

// alreadyDone recognises Stream's answers to a repeat of an action that
// already took effect: a second flag of the same target ("already flagged"
// style input error) or a message sent twice with the same client-chosen ID
// ("already exists"). Stream documents neither text; GetStream's own Flutter
// SDK treats any code-4 answer to a flag as "already flagged", which is too
// broad here because code 4 also means a missing field. Matching "already"
// in a 400 (or any 409) keeps real input errors permanent.
func alreadyDone(e *APIError) bool {
	if e.StatusCode == http.StatusConflict {
		return true
	}
	return e.StatusCode == http.StatusBadRequest && (e.Code == 4 || e.Code == 0) &&
		strings.Contains(strings.ToLower(e.Message), "already")
}

// IsAlreadyDone reports whether err is Stream saying the action had already
// taken effect (a second flag of the same message, a message ID that already
// exists). The job layer records such an attempt as applied. For any non-nil
// error exactly one of IsAlreadyDone, IsRetryable and IsPermanent is true.
func IsAlreadyDone(err error) bool { return classify(err) == classDone }

// IsRetryable reports whether the call may succeed if tried again later:
// network errors, timeouts and cancellations (the outcome is unknown), and
// HTTP 408, 429 and 5xx, unless Stream marked the error unrecoverable.
func IsRetryable(err error) bool { return classify(err) == classRetryable }

// IsPermanent reports whether trying again cannot help: any other 4xx (400
// input, 401 credentials, 403 not allowed, 404 does not exist, 413 too big),
// an answer marked unrecoverable, unexpected statuses, and requests the
// client refused to send (ErrInvalidRequest).
func IsPermanent(err error) bool { return classify(err) == classPermanent }

// IsNotFound reports whether Stream answered that the target does not exist
// (HTTP 404 or code 16). A job deleting a message can count this as done;
// one flagging it cannot, which is why this is not part of IsAlreadyDone.
func IsNotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && (ae.StatusCode == http.StatusNotFound || ae.Code == 16)
}

// RetryAt returns the earliest time Stream asked to be called again after
// err: now plus Retry-After when present, otherwise, for a 429, the end of
// the rate-limit window (X-RateLimit-Reset). It returns the zero time when
// Stream gave no usable hint; the caller then applies its own backoff. The
// answer is capped at one hour after now.
func RetryAt(err error, now time.Time) time.Time {
	var ae *APIError
	if !errors.As(err, &ae) {
		return time.Time{}
	}
	var at time.Time
	switch {
	case ae.RetryAfter > 0:
		at = now.Add(ae.RetryAfter)
	case ae.StatusCode == http.StatusTooManyRequests && ae.RateLimit.Reset.After(now):
		at = ae.RateLimit.Reset
	default:
		return time.Time{}
	}
	if limit := now.Add(maxRetryWait); at.After(limit) {
		at = limit
	}
	return at
}
