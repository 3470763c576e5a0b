package appeals

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
)

// Limits on what a request may carry. They keep hostile input away from the
// database: every value is checked here, before any query runs.
const (
	maxBodyBytes     = 64 << 10 // a JSON body
	maxIDLen         = 255      // Stream's limit on user, channel and message ids
	maxCursorLen     = 512
	maxReasonLen     = 2000  // a reviewer's reason
	maxSearchTextLen = 200   // a full-text query
	maxStatementLen  = 10000 // a user's statement, in characters
	maxSourceLen     = 32
	defaultLimit     = 50
	maxLimit         = 200
	defaultAround    = 5
	maxAround        = 20
)

// paramError is a request value that is wrong: 400 invalid_parameter,
// naming the field.
type paramError struct {
	field string
	msg   string
}

func (e *paramError) Error() string { return e.field + ": " + e.msg }

func badParam(field, format string, args ...any) *paramError {
	return &paramError{field: field, msg: fmt.Sprintf(format, args...)}
}

// bodyError is a body that is not the JSON object expected: 400
// invalid_body, or 413 when it is too large.
type bodyError struct {
	tooLarge bool
	msg      string
}

func (e *bodyError) Error() string { return e.msg }

// query is a request's query string being read: each accessor checks its
// parameter and records the first problem in err.
type query struct {
	values url.Values
	err    error
}

// parseQuery reads r's query string, refusing a parameter given more than
// once. Which names a route accepts is its entry's in routes(), checked
// before the handler runs (onlyQuery).
func parseQuery(r *http.Request) *query {
	q := &query{}
	values, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		q.err = badParam("query", "not a valid query string")
		return q
	}
	q.values = values
	names := make([]string, 0, len(values))
	for name := range values {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if n := len(values[name]); n > 1 {
			q.fail(badParam(name, "given %d times; give it once", n))
		}
	}
	return q
}

// onlyQuery answers 400 naming the query parameters of r that are not in
// known, before next runs.
func (s *server) onlyQuery(known []string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		values, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			s.fail(w, r, badParam("query", "not a valid query string"))
			return
		}
		var unknown []string
		for name := range values {
			if !slices.Contains(known, name) {
				unknown = append(unknown, printable(name, 40))
			}
		}
		if len(unknown) > 0 {
			slices.Sort(unknown)
			if len(unknown) > 5 {
				unknown = append(unknown[:5], "…")
			}
			allowed := "none"
			if len(known) > 0 {
				allowed = strings.Join(known, ", ")
			}
			s.fail(w, r, badParam(strings.Join(unknown, ","), "unknown query parameter (this endpoint takes: %s)", allowed))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (q *query) fail(err error) {
	if q.err == nil {
		q.err = err
	}
}

// raw returns the parameter's value ("" when absent).
func (q *query) raw(name string) string {
	if q.values == nil {
		return ""
	}
	return q.values.Get(name)
}

// id reads an optional identifier of kind k.
func (q *query) id(name string, k idKind) string {
	v := q.raw(name)
	if v == "" {
		if _, given := q.values[name]; given {
			q.fail(badParam(name, "must not be empty when given"))
		}
		return ""
	}
	if err := checkID(name, v, k); err != nil {
		q.fail(err)
		return ""
	}
	return v
}

// enum reads an optional value that must be one of allowed.
func (q *query) enum(name string, allowed ...string) string {
	v := q.raw(name)
	if v == "" {
		if _, given := q.values[name]; given {
			q.fail(badParam(name, "must not be empty when given"))
		}
		return ""
	}
	if !slices.Contains(allowed, v) {
		q.fail(badParam(name, "must be one of %s, got %q", strings.Join(allowed, ", "), printable(v, 40)))
		return ""
	}
	return v
}

// time reads an optional RFC 3339 time.
func (q *query) time(name string) time.Time {
	v := q.raw(name)
	if v == "" {
		if _, given := q.values[name]; given {
			q.fail(badParam(name, "must not be empty when given"))
		}
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		q.fail(badParam(name, "must be an RFC 3339 time such as 2026-11-24T12:00:00Z, got %q", printable(v, 40)))
		return time.Time{}
	}
	return t
}

// timeRange reads from and to, with from before to when both are given.
func (q *query) timeRange() (from, to time.Time) {
	from, to = q.time("from"), q.time("to")
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		q.fail(badParam("from", "must be before to"))
	}
	return from, to
}

// number reads an optional whole number in [least, most]; def when absent.
// Values above most are clamped to it when clamp is set.
func (q *query) number(name string, def, least, most int, clamp bool) int {
	v := q.raw(name)
	if v == "" {
		if _, given := q.values[name]; given {
			q.fail(badParam(name, "must not be empty when given"))
		}
		return def
	}
	if !allDigits(v) {
		q.fail(badParam(name, "must be a whole number from %d to %d, got %q", least, most, printable(v, 20)))
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n > most { // err: too many digits for an int
		if clamp {
			return most
		}
		q.fail(badParam(name, "must be a whole number from %d to %d, got %q", least, most, printable(v, 20)))
		return def
	}
	if n < least {
		q.fail(badParam(name, "must be a whole number from %d to %d, got %d", least, most, n))
		return def
	}
	return n
}

// text reads an optional free-text parameter of at most max characters:
// valid UTF-8, not blank when given, without control characters.
func (q *query) text(name string, max int) string {
	v := q.raw(name)
	if _, given := q.values[name]; !given {
		return ""
	}
	if err := requiredText(name, v, max); err != nil {
		q.fail(err)
		return ""
	}
	return v
}

// limit reads the page size: 1..200, larger values clamped to 200.
func (q *query) limit() int { return q.number("limit", defaultLimit, 1, maxLimit, true) }

// cursor reads the opaque page cursor; the store judges its content.
func (q *query) cursor() string {
	v := q.raw("cursor")
	if v == "" {
		return ""
	}
	if len(v) > maxCursorLen || !isCursor(v) {
		q.fail(badParam("cursor", "not a cursor from a previous page's next_cursor"))
		return ""
	}
	return v
}

func allDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// isCursor accepts the URL-safe base64 alphabet that cursors use.
func isCursor(s string) bool {
	return !strings.ContainsFunc(s, func(c rune) bool { return !isBase64URL(c) && c != '=' && c != '.' })
}

// isBase64URL reports whether c is in the URL-safe base64 alphabet
// (RFC 4648 §5), without padding.
func isBase64URL(c rune) bool { return isAlnum(c) || c == '-' || c == '_' }

// idKind is a kind of identifier, each with Stream's (or policy's) charset.
type idKind int

const (
	idUser      idKind = iota // Stream user id: letters, digits, @ _ - (and . + for e-mail-like ids)
	idMessage                 // Stream message id: as a user id (clients make them user id + uuid)
	idChannel                 // a channel cid, type:id: letters, digits, - _ ! and one ':'
	idRule                    // policy rule id: 1-64 lower-case letters, digits, - _ .
	idEventType               // an event type such as message.new
)

// checkID checks v against kind k's charset and length.
func checkID(field, v string, k idKind) error {
	max := maxIDLen
	switch k {
	case idRule, idEventType:
		max = 64
	}
	if len(v) > max {
		return badParam(field, "at most %d characters, got %d", max, len(v))
	}
	var ok func(rune) bool
	var want string
	switch k {
	case idUser, idMessage:
		ok = func(c rune) bool { return isAlnum(c) || strings.ContainsRune("@_-.+", c) }
		want = "letters, digits, @, _, -, . and +"
	case idChannel:
		if typ, id, found := strings.Cut(v, ":"); !found || typ == "" || id == "" {
			return badParam(field, "must be a channel cid such as messaging:general, got %q", printable(v, 40))
		}
		ok = func(c rune) bool { return isAlnum(c) || strings.ContainsRune("-_!:", c) }
		want = "type:id with letters, digits, -, _ and !"
		if strings.Count(v, ":") != 1 {
			return badParam(field, "must be a channel cid such as messaging:general, got %q", printable(v, 40))
		}
	case idRule:
		ok = func(c rune) bool {
			return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.ContainsRune("-_.", c)
		}
		want = "lower-case letters, digits, -, _ and ."
	case idEventType:
		ok = func(c rune) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.' }
		want = "an event type such as message.new"
	}
	for _, c := range v {
		if !ok(c) {
			return badParam(field, "must be %s, got %q", want, printable(v, 40))
		}
	}
	return nil
}

func isAlnum(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// pathID reads a positive numeric id from the route's {name}.
func pathID(r *http.Request, name string) (int64, error) {
	v := chi.URLParam(r, name)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 || !allDigits(v) {
		return 0, badParam(name, "must be a positive whole number, got %q", printable(v, 40))
	}
	return n, nil
}

// pathString reads the route's {name} as an identifier of kind k.
func pathString(r *http.Request, name string, k idKind) (string, error) {
	v := chi.URLParam(r, name)
	if raw, err := url.PathUnescape(v); err == nil {
		v = raw
	}
	if v == "" {
		return "", badParam(name, "is required")
	}
	if err := checkID(name, v, k); err != nil {
		return "", err
	}
	return v, nil
}

// printable quotes at most n characters of s for a message, keeping
// control characters and invalid UTF-8 out of answers and logs.
func printable(s string, n int) string {
	var b strings.Builder
	count := 0
	for _, c := range s {
		if count == n {
			b.WriteString("…")
			break
		}
		if c == utf8.RuneError || !unicode.IsPrint(c) {
			b.WriteRune('?')
		} else {
			b.WriteRune(c)
		}
		count++
	}
	return b.String()
}

// decodeBody reads a JSON object of at most maxBodyBytes into v, refusing
// unknown fields, trailing data and anything that is not one object.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	return decodeBodyMax(w, r, v, maxBodyBytes)
}

// decodeBodyMax is decodeBody with a limit of its own (a backtest's
// candidate is larger than a reason).
func decodeBodyMax(w http.ResponseWriter, r *http.Request, v any, limit int64) error {
	body := http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bodyDecodeError(err, limit)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return bodyDecodeError(err, limit)
		}
		return &bodyError{msg: "the body must hold one JSON object and nothing after it"}
	}
	return nil
}

func bodyDecodeError(err error, limit int64) error {
	var (
		mbe  *http.MaxBytesError
		syn  *json.SyntaxError
		typ  *json.UnmarshalTypeError
		size = fmt.Sprintf("the body is larger than %d KiB", limit>>10)
	)
	switch {
	case errors.As(err, &mbe):
		return &bodyError{tooLarge: true, msg: size}
	case errors.Is(err, io.EOF):
		return &bodyError{msg: "the body is empty; it must be a JSON object"}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &bodyError{msg: "the body is not complete JSON"}
	case errors.As(err, &syn):
		return &bodyError{msg: fmt.Sprintf("the body is not valid JSON (at byte %d)", syn.Offset)}
	case errors.As(err, &typ):
		if typ.Field == "" {
			return &bodyError{msg: "the body must be a JSON object"}
		}
		return badParam(typ.Field, "must be a %s", jsonKind(typ.Type.Kind().String()))
	}
	// encoding/json words an unknown field as: json: unknown field "name".
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		field, uerr := strconv.Unquote(name)
		if uerr != nil {
			field = name
		}
		return badParam(printable(field, 40), "unknown field")
	}
	return &bodyError{msg: "the body is not the JSON object expected"}
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "int", "int64", "int32":
		return "whole number"
	case "bool":
		return "boolean"
	}
	return goKind
}

// requiredText checks a free-text body field: present, not blank, valid
// UTF-8 without control characters other than newlines and tabs, and at
// most max characters.
func requiredText(field, v string, max int) error {
	if strings.TrimSpace(v) == "" {
		return badParam(field, "is required and must not be blank")
	}
	return optionalText(field, v, max)
}

func optionalText(field, v string, max int) error {
	if !utf8.ValidString(v) {
		return badParam(field, "must be valid UTF-8")
	}
	if n := utf8.RuneCountInString(v); n > max {
		return badParam(field, "at most %d characters, got %d", max, n)
	}
	for _, c := range v {
		if unicode.IsControl(c) && c != '\n' && c != '\t' && c != '\r' {
			return badParam(field, "must not contain control characters")
		}
	}
	return nil
}
