package appeals

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"moderator/statement"
	"moderator/store"
)

// handlerFunc is a handler that returns its error for one place to map
// to a status (fail): the client gets a safe message, the log the details.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

func (s *server) handle(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.fail(w, r, err)
		}
	}
}

// lookupError is a store sentinel with what it concerns, for the message.
type lookupError struct {
	what string // "decision 12"
	err  error  // store.ErrNotFound, ErrAlreadyDecided, ErrAlreadyOverturned, ErrWrongUser
}

func (e *lookupError) Error() string { return e.what + ": " + e.err.Error() }
func (e *lookupError) Unwrap() error { return e.err }

// about names what err concerns when it is one of the store's sentinels,
// so that the answer can say "decision 12: not found"; other errors are
// returned as they are.
func about(err error, format string, args ...any) error {
	for _, sentinel := range []error{store.ErrNotFound, store.ErrAlreadyDecided, store.ErrAlreadyOverturned, store.ErrWrongUser} {
		if errors.Is(err, sentinel) {
			return &lookupError{what: fmt.Sprintf(format, args...), err: sentinel}
		}
	}
	return err
}

// auditError: the staff act could not be recorded, so the request
// is refused (reads of user history must leave a trace).
type auditError struct{ err error }

func (e *auditError) Error() string { return "record staff act: " + e.err.Error() }
func (e *auditError) Unwrap() error { return e.err }

// unavailableError is a dependency that is not configured or not
// answering: 503.
type unavailableError struct{ msg string }

func (e *unavailableError) Error() string { return e.msg }

// fail answers err with its status and the JSON error body.
func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var (
		pe   *paramError
		be   *bodyError
		le   *lookupError
		ue   *unavailableError
		ae   *auditError
		ie   *store.InputError
		held *store.HeldError
		msg  string
	)
	switch {
	case errors.As(err, &ae):
		// Checked first: whatever went wrong underneath, the answer is
		// that the act could not be recorded.
		logFrom(r.Context()).err = err
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "", "the staff audit log could not be written, so the request is refused; retry shortly")
	case errors.As(err, &pe):
		writeError(w, http.StatusBadRequest, CodeInvalidParameter, pe.field, pe.Error())
	case errors.As(err, &be):
		if be.tooLarge {
			writeError(w, http.StatusRequestEntityTooLarge, CodeTooLarge, "", be.msg)
			return
		}
		writeError(w, http.StatusBadRequest, CodeInvalidBody, "", be.msg)
	case errors.As(err, &ie):
		// The store's own check, behind ours: a value it refuses.
		writeError(w, http.StatusBadRequest, CodeInvalidParameter, ie.Field, ie.Error())
	case errors.Is(err, store.ErrWrongUser):
		msg = "user_id: the action or decision concerns another user"
		if errors.As(err, &le) {
			msg = "user_id: " + le.Error()
		}
		writeError(w, http.StatusBadRequest, CodeInvalidParameter, "user_id", msg)
	case errors.Is(err, store.ErrBadCursor):
		writeError(w, http.StatusBadRequest, CodeInvalidParameter, "cursor", "cursor: not a cursor from a previous page's next_cursor (it may be for another search)")
	case errors.Is(err, store.ErrNotFound):
		msg = "not found"
		if errors.As(err, &le) {
			msg = le.Error()
		}
		writeError(w, http.StatusNotFound, CodeNotFound, "", msg)
	case errors.Is(err, statement.ErrNothingDecided):
		writeError(w, http.StatusNotFound, CodeNotFound, "", err.Error())
	case errors.Is(err, store.ErrNotDemoted):
		writeError(w, http.StatusConflict, CodeConflict, "", "the rule is not demoted: nothing to restore")
	case errors.Is(err, store.ErrBacktestRunning):
		writeError(w, http.StatusConflict, CodeConflict, "", store.ErrBacktestRunning.Error())
	case errors.As(err, &held):
		writeError(w, http.StatusConflict, CodeConflict, "", held.Error()+": they release it, or someone assigns it, first")
	case errors.Is(err, store.ErrAlreadyDecided), errors.Is(err, store.ErrAlreadyOverturned):
		msg = store.ErrAlreadyOverturned.Error()
		if errors.Is(err, store.ErrAlreadyDecided) {
			msg = store.ErrAlreadyDecided.Error()
		}
		if errors.As(err, &le) {
			msg = le.Error()
		}
		writeError(w, http.StatusConflict, CodeConflict, "", msg)
	case errors.As(err, &ue):
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "", ue.msg)
	case isUnavailable(err):
		logFrom(r.Context()).err = err
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "", "the database did not answer; retry shortly")
	default:
		logFrom(r.Context()).err = err
		writeError(w, http.StatusInternalServerError, CodeInternal, "", "internal error")
	}
}

// IsUnavailable reports whether err says that the database could not be
// reached or did not answer in time (the console answers 503 for it, as
// the staff API does).
func IsUnavailable(err error) bool { return isUnavailable(err) }

// isUnavailable reports whether err says that the database could not be
// reached or did not answer in time, rather than that a query was wrong.
func isUnavailable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// 08: connection exception; 53: insufficient resources; 57P: the
		// server is shutting down or starting; 57014: statement timeout.
		c := pgErr.Code
		return strings.HasPrefix(c, "08") || strings.HasPrefix(c, "53") || strings.HasPrefix(c, "57P") || c == "57014"
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	switch {
	case errors.As(err, &ce), errors.As(err, &ne), pgconn.Timeout(err),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return true
	}
	// pgxpool's closed pool: "closed pool" (puddle.ErrClosedPool).
	return strings.Contains(err.Error(), "closed pool")
}
