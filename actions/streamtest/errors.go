package streamtest

import (
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// moreInfo is the more_info link Stream puts in its error bodies.
const moreInfo = "https://getstream.io/chat/docs/api_errors_response"

// msgNoActingUser is Stream's answer to a server-side moderation call that
// names no acting user.
const msgNoActingUser = "either user or user_id must be provided when using server side auth"

// apiError is Stream's error body, field for field.
type apiError struct {
	Code            int               `json:"code"`
	Message         string            `json:"message"`
	ExceptionFields map[string]string `json:"exception_fields"`
	StatusCode      int               `json:"StatusCode"`
	Duration        string            `json:"duration"`
	MoreInfo        string            `json:"more_info"`
	Details         []any             `json:"details"`
	Unrecoverable   bool              `json:"unrecoverable"`

	retryAfter time.Duration
}

// newError builds an error in Stream's message style:
// `Op failed with error: "detail"`.
func newError(status, code int, op, detail string) *apiError {
	return &apiError{
		Code:            code,
		Message:         fmt.Sprintf("%s failed with error: %q", op, detail),
		ExceptionFields: map[string]string{},
		StatusCode:      status,
		MoreInfo:        moreInfo,
		Details:         []any{},
	}
}

// errInput is code 4, HTTP 400. Stream marks input errors unrecoverable
// here (an inference: resending the same invalid request cannot succeed).
func errInput(op, field, detail string) *apiError {
	e := newError(http.StatusBadRequest, 4, op, detail)
	if field != "" {
		e.ExceptionFields[field] = detail
	}
	e.Unrecoverable = true
	return e
}

func errRequired(op, field string) *apiError {
	return errInput(op, field, field+" is a required field")
}

func errNoActingUser(op, field string) *apiError {
	return errInput(op, field, msgNoActingUser)
}

func errNotFound(op, detail string) *apiError {
	e := newError(http.StatusNotFound, 16, op, detail)
	e.Unrecoverable = true
	return e
}

func errAuth(code int, detail string) *apiError {
	return newError(http.StatusUnauthorized, code, "Auth", detail)
}

// codeForStatus is the Stream code that usually goes with an HTTP status.
func codeForStatus(status int) int {
	switch status {
	case http.StatusBadRequest:
		return 4
	case http.StatusUnauthorized:
		return 5
	case http.StatusForbidden:
		return 17
	case http.StatusNotFound:
		return 16
	case http.StatusRequestTimeout:
		return 23
	case http.StatusRequestEntityTooLarge:
		return 22
	case http.StatusTooManyRequests:
		return 9
	}
	return -1
}

func formatDuration(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 2, 64) + "ms"
}

func itoa(n int) string { return strconv.Itoa(n) }

func ceilSeconds(d time.Duration) int64 {
	s := int64(d / time.Second)
	if d%time.Second != 0 {
		s++
	}
	if s < 1 {
		s = 1
	}
	return s
}
