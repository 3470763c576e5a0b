package streamtest

import (
	"net/http"
	"strconv"
	"time"
)

type answerKind int

const (
	kindError answerKind = iota
	kindRaw
	kindRateLimited
	kindPass
	kindDrop
	kindApplyThenDrop
)

// Answer is a scripted answer for one request on a route. Build one with
// Status, Error, RateLimited, Raw, Pass, Disconnect or ApplyThenDisconnect,
// and adjust it with its methods; each method returns a changed copy.
type Answer struct {
	kind          answerKind
	status        int
	code          int
	message       string
	unrecoverable bool
	contentType   string
	body          string
	reset         time.Time
	delay         time.Duration
	header        http.Header
}

// Status answers with Stream's error body for status, with the code that
// usually goes with it (400→4, 403→17, 404→16, 408→23, 429→9, 5xx→-1).
func Status(status int) Answer {
	return Answer{kind: kindError, status: status, code: codeForStatus(status),
		message: "scripted " + strconv.Itoa(status) + " " + http.StatusText(status)}
}

// Error answers with Stream's error body with the given status, code and
// message detail.
func Error(status, code int, message string) Answer {
	return Answer{kind: kindError, status: status, code: code, message: message}
}

// RateLimited answers 429 code 9 with X-RateLimit-Remaining 0 and
// X-RateLimit-Reset at reset, as Stream does over its limit. Add a
// Retry-After with WithHeader when the test needs one.
func RateLimited(reset time.Time) Answer {
	return Answer{kind: kindRateLimited, status: http.StatusTooManyRequests, code: 9,
		message: "Too many requests, check response headers for more information.", reset: reset}
}

// Raw answers with an arbitrary status and body, e.g. the HTML page an edge
// proxy returns on a 502. Rate-limit headers are still added.
func Raw(status int, contentType, body string) Answer {
	return Answer{kind: kindRaw, status: status, contentType: contentType, body: body}
}

// Pass handles the request normally. Combined with After it makes a slow
// answer; in a queue it lets a request through between scripted ones.
func Pass() Answer { return Answer{kind: kindPass} }

// Disconnect closes the connection without answering and without any
// effect: the client sees a network error.
func Disconnect() Answer { return Answer{kind: kindDrop} }

// ApplyThenDisconnect handles the request normally, so its effect happens,
// then closes the connection instead of answering: the client cannot tell
// whether the action took effect, the case exactly-once handling exists for.
func ApplyThenDisconnect() Answer { return Answer{kind: kindApplyThenDrop} }

// After delays the answer by d. The wait ends early when the client gives
// up or the server closes.
func (a Answer) After(d time.Duration) Answer {
	a.delay = d
	return a
}

// WithHeader adds a response header, e.g. Retry-After.
func (a Answer) WithHeader(key, value string) Answer {
	h := a.header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Add(key, value)
	a.header = h
	return a
}

// Unrecoverable sets "unrecoverable": true in the error body.
func (a Answer) Unrecoverable() Answer {
	a.unrecoverable = true
	return a
}

// Script queues answers for the next requests on route, one answer per
// request, in order; when the queue is empty the route behaves normally.
// Scripted answers come after authentication (a request that breaks the
// contract is still refused) and bypass the rate limiter, except Pass and
// ApplyThenDisconnect, which are handled normally.
func (s *Server) Script(route string, answers ...Answer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scripts[route] = append(s.scripts[route], answers...)
}

// popScript takes the next scripted answer for route. The lock must be
// held.
func (s *Server) popScript(route string) (Answer, bool) {
	q := s.scripts[route]
	if len(q) == 0 {
		return Answer{}, false
	}
	a := q[0]
	if len(q) == 1 {
		delete(s.scripts, route)
	} else {
		s.scripts[route] = q[1:]
	}
	return a, true
}

// answerScripted serves a scripted answer. It is called without the lock.
func (s *Server) answerScripted(w http.ResponseWriter, r *http.Request, route string, h handler, raw []byte, idx int, a Answer, start time.Time) {
	if a.delay > 0 {
		t := time.NewTimer(a.delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return // the client gave up; Status stays 0
		case <-s.done:
			// Closing: drop rather than let net/http send an empty 200
			// that a client would take for success.
			drop(w)
			return
		}
	}

	s.mu.Lock()
	now := s.now()
	var rep reply
	switch a.kind {
	case kindDrop:
		s.mu.Unlock()
		drop(w)
		return
	case kindPass, kindApplyThenDrop:
		rep = s.limitAndHandle(route, h, call{r: r, body: raw, now: now})
		if a.kind == kindApplyThenDrop {
			s.mu.Unlock()
			drop(w)
			return
		}
	case kindRaw:
		rl := s.limiters[route].peek(now)
		s.requests[idx].Status = a.status
		s.mu.Unlock()
		rl.set(w.Header())
		for k, vs := range a.header {
			w.Header()[k] = vs
		}
		if a.contentType != "" {
			w.Header().Set("Content-Type", a.contentType)
		}
		w.WriteHeader(a.status)
		_, _ = w.Write([]byte(a.body))
		return
	default: // kindError, kindRateLimited
		e := newError(a.status, a.code, opName(route), a.message)
		e.Unrecoverable = a.unrecoverable
		rep = reply{err: e}
	}
	rl := s.limiters[route].peek(now)
	if a.kind == kindRateLimited {
		rl.remaining, rl.reset = 0, a.reset
	}
	s.finish(idx, rep)
	s.mu.Unlock()
	writeReply(w, rep, rl, a.header, start)
}
