// Package streamtest is a fake of Stream Chat's server-side REST API for
// tests across the project. It enforces the contract STREAM_API.md
// describes on every request (api_key, server token, Stream-Auth-Type,
// acting user, required fields, limits), answers violations with Stream's
// error body and codes, keeps the state moderation changes (bans, mutes,
// flags, messages, users) so tests can check effects, records every
// request, can be scripted (errors, rate-limit answers, edge HTML, slow
// answers, dropped connections) and rate-limits each endpoint the way Stream
// does: per minute, and per second at a thirtieth of that.
//
// Where Stream's behaviour is undocumented (the text of a second flag's
// error, what a second ban answers) the fake picks a plausible answer and
// says so in the doc comment of the route. It imports nothing of this
// module.
package streamtest

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Routes, as "METHOD /path" patterns. They name routes in Script, Calls and
// WithRateLimit.
const (
	RouteBan              = "POST /moderation/ban"
	RouteUnban            = "DELETE /moderation/ban"
	RouteMute             = "POST /moderation/mute"
	RouteUnmute           = "POST /moderation/unmute"
	RouteFlag             = "POST /moderation/flag"
	RouteUnflag           = "POST /moderation/unflag"
	RouteDeleteMessage    = "DELETE /messages/{id}"
	RouteUndeleteMessage  = "POST /messages/{id}/undelete"
	RouteSendMessage      = "POST /channels/{type}/{id}/message"
	RouteUpsertUsers      = "POST /users"
	RouteQueryBannedUsers = "GET /query_banned_users"
)

// Default credentials of a Server made without WithCredentials.
const (
	DefaultKey    = "streamtest-key"
	DefaultSecret = "streamtest-secret"
)

// unlimited is the per-minute limit of a route whose limiting is off: large
// enough never to bite, while the headers stay meaningful.
const unlimited = 1 << 30

// maxBody bounds a request body, as Stream's own limit would.
const maxBody = 10 << 20

// DefaultRateLimits returns Stream's published server-side per-minute
// limits for the fake's routes. Undelete and query bans are not published;
// the fake uses 300 for them.
func DefaultRateLimits() map[string]int {
	return map[string]int{
		RouteBan:              300,
		RouteUnban:            300,
		RouteMute:             300,
		RouteUnmute:           300,
		RouteFlag:             300,
		RouteUnflag:           300,
		RouteUpsertUsers:      300,
		RouteSendMessage:      1000,
		RouteDeleteMessage:    1000,
		RouteUndeleteMessage:  300,
		RouteQueryBannedUsers: 300,
	}
}

// Option configures a Server.
type Option func(*config)

type config struct {
	key, secret string
	now         func() time.Time
	limits      map[string]int
	strict      bool
}

// WithCredentials sets the API key and secret the server accepts.
func WithCredentials(key, secret string) Option {
	return func(c *config) { c.key, c.secret = key, secret }
}

// WithClock makes the server read time from now: ban and mute expiry, and
// the rate-limit windows. Tests of rate limiting use a Clock so that they
// never depend on real time.
func WithClock(now func() time.Time) Option {
	return func(c *config) { c.now = now }
}

// WithRateLimit sets a route's per-minute limit (its per-second limit is a
// thirtieth of it, at least 1). Zero or less turns limiting off for the
// route.
func WithRateLimit(route string, perMinute int) Option {
	return func(c *config) {
		if perMinute <= 0 {
			perMinute = unlimited
		}
		c.limits[route] = perMinute
	}
}

// WithoutRateLimits turns rate limiting off on every route.
func WithoutRateLimits() Option {
	return func(c *config) {
		for r := range c.limits {
			c.limits[r] = unlimited
		}
	}
}

// StrictTargets makes flag, ban, mute, delete and undelete of a user or
// message the fake has never seen answer 404 code 16, as Stream does. By
// default the fake creates unknown targets on first use, so that tests need
// not seed them.
func StrictTargets() Option {
	return func(c *config) { c.strict = true }
}

// Request is one request the server received.
type Request struct {
	// Route is the matched pattern (RouteBan …), empty for an unknown path.
	Route  string
	Method string
	Path   string
	Query  url.Values
	Header http.Header
	// Body is the JSON body decoded into a map, nil when there was none or
	// it was not a JSON object.
	Body    map[string]any
	RawBody []byte
	// At is the server clock's time at arrival.
	At time.Time
	// Status is the HTTP status answered; 0 when the connection was dropped
	// or the client went away first.
	Status int
	// Code is the Stream error code answered, 0 on success.
	Code int
	// Scripted reports whether a scripted answer was used.
	Scripted bool
}

// Server is the fake. It is safe for concurrent use.
type Server struct {
	// URL is the base URL to give the client.
	URL string
	// Key and Secret are the credentials the server accepts.
	Key    string
	Secret string

	srv    *httptest.Server
	now    func() time.Time
	strict bool
	done   chan struct{}

	mu       sync.Mutex
	requests []Request
	scripts  map[string][]Answer
	limiters map[string]*limiter
	st       state
}

// New starts a Server that is closed when the test ends.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	cfg := config{key: DefaultKey, secret: DefaultSecret, now: time.Now, limits: DefaultRateLimits()}
	for _, o := range opts {
		o(&cfg)
	}
	s := &Server{
		Key:      cfg.key,
		Secret:   cfg.secret,
		now:      cfg.now,
		strict:   cfg.strict,
		done:     make(chan struct{}),
		scripts:  make(map[string][]Answer),
		limiters: make(map[string]*limiter),
		st:       newState(),
	}
	for route, perMinute := range cfg.limits {
		s.limiters[route] = newLimiter(perMinute)
	}
	s.limiters[""] = newLimiter(unlimited)

	mux := http.NewServeMux()
	for route, h := range s.routes() {
		mux.Handle(route, s.wrap(route, h))
	}
	mux.Handle("/", s.wrap("", nil))
	s.srv = httptest.NewServer(mux)
	s.URL = s.srv.URL
	t.Cleanup(func() {
		close(s.done) // wake delayed answers so Close does not wait for them
		s.srv.Close()
	})
	return s
}

// Requests returns every request received so far, in arrival order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		out[i] = r.clone()
	}
	return out
}

// Calls returns the requests received on route (e.g. RouteBan or
// "POST /moderation/ban"), whatever was answered.
func (s *Server) Calls(route string) []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Request
	for _, r := range s.requests {
		if r.Route == route {
			out = append(out, r.clone())
		}
	}
	return out
}

func (r Request) clone() Request {
	c := r
	c.Query = cloneValues(r.Query)
	c.Header = r.Header.Clone()
	c.RawBody = bytes.Clone(r.RawBody)
	if r.Body != nil {
		// Re-decoding is the simplest deep copy of a JSON map.
		c.Body = decodeObject(r.RawBody)
	}
	return c
}

func cloneValues(v url.Values) url.Values {
	if v == nil {
		return nil
	}
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

func decodeObject(b []byte) map[string]any {
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	return m
}

// call is what a route handler gets: the request, its raw body and the
// server time, with the server lock held.
type call struct {
	r    *http.Request
	body []byte
	now  time.Time
}

// reply is a handler's answer: a success payload or a Stream error.
type reply struct {
	status int
	body   any
	err    *apiError
}

func ok(body any) reply { return reply{status: http.StatusOK, body: body} }

type handler func(c call) reply

// wrap runs the contract checks every route shares, in Stream's order as
// far as it is observable: authentication, then (in the fake) a scripted
// answer, then the rate limit, then the route's own validation and effect.
func (s *Server) wrap(route string, h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		raw, readErr := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))

		s.mu.Lock()
		now := s.now()
		idx := len(s.requests)
		s.requests = append(s.requests, Request{
			Route: route, Method: r.Method, Path: r.URL.Path, Query: cloneValues(r.URL.Query()),
			Header: r.Header.Clone(), Body: decodeObject(raw), RawBody: raw, At: now,
		})

		var rep reply
		switch {
		case route == "":
			rep = reply{err: errNotFound("Unknown", "no route for "+r.Method+" "+r.URL.Path)}
		case readErr != nil:
			rep = reply{err: newError(http.StatusRequestEntityTooLarge, 22, opName(route), "request body is too large")}
		default:
			if e := s.authenticate(r, route); e != nil {
				rep = reply{err: e}
				break
			}
			if a, ok := s.popScript(route); ok {
				s.requests[idx].Scripted = true
				s.mu.Unlock()
				s.answerScripted(w, r, route, h, raw, idx, a, start)
				return
			}
			rep = s.limitAndHandle(route, h, call{r: r, body: raw, now: now})
		}
		rl := s.limiters[route].peek(now)
		s.finish(idx, rep)
		s.mu.Unlock()
		writeReply(w, rep, rl, nil, start)
	})
}

// limitAndHandle applies the route's rate limit and then its handler. The
// lock must be held.
func (s *Server) limitAndHandle(route string, h handler, c call) reply {
	if okLimit, retry := s.limiters[route].take(c.now); !okLimit {
		e := newError(http.StatusTooManyRequests, 9, opName(route), "Too many requests, check response headers for more information.")
		e.retryAfter = retry
		return reply{err: e}
	}
	return h(c)
}

// finish records the answer of request idx. The lock must be held.
func (s *Server) finish(idx int, rep reply) {
	if rep.err != nil {
		s.requests[idx].Status, s.requests[idx].Code = rep.err.StatusCode, rep.err.Code
		return
	}
	s.requests[idx].Status = rep.status
}

// writeReply writes a reply with the rate-limit headers every Stream answer
// carries.
func writeReply(w http.ResponseWriter, rep reply, rl rateState, extra http.Header, start time.Time) {
	h := w.Header()
	rl.set(h)
	for k, vs := range extra {
		h[k] = vs
	}
	h.Set("Content-Type", "application/json; charset=utf-8")
	dur := formatDuration(time.Since(start))
	var payload any
	status := rep.status
	if rep.err != nil {
		rep.err.Duration = dur
		if rep.err.retryAfter > 0 && h.Get("Retry-After") == "" {
			h.Set("Retry-After", itoa(int(ceilSeconds(rep.err.retryAfter))))
		}
		payload, status = rep.err, rep.err.StatusCode
	} else {
		m := map[string]any{}
		if body, ok := rep.body.(map[string]any); ok {
			for k, v := range body {
				m[k] = v
			}
		}
		m["duration"] = dur
		payload = m
	}
	b, _ := json.Marshal(payload)
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// drop closes the connection without an answer, with a TCP reset where
// possible, as a crashed proxy or a network fault would.
func drop(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("streamtest: response writer cannot be hijacked")
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// opName is the operation name Stream puts in front of its error messages
// ("Ban failed with error: …"). The names are inferred from Stream's
// messages seen in the wild, not documented.
func opName(route string) string {
	switch route {
	case RouteBan:
		return "BanUser"
	case RouteUnban:
		return "UnbanUser"
	case RouteMute:
		return "MuteUser"
	case RouteUnmute:
		return "UnmuteUser"
	case RouteFlag:
		return "Flag"
	case RouteUnflag:
		return "Unflag"
	case RouteDeleteMessage:
		return "DeleteMessage"
	case RouteUndeleteMessage:
		return "UndeleteMessage"
	case RouteSendMessage:
		return "SendMessage"
	case RouteUpsertUsers:
		return "UpdateUsers"
	case RouteQueryBannedUsers:
		return "QueryBannedUsers"
	}
	return strings.ReplaceAll(route, " ", "")
}
