package streamtest

import (
	"net/http"
	"strconv"
	"time"
)

// limiter is one route's rate limit: fixed one-minute windows of perMinute
// calls, and within them fixed one-second windows of perSecond calls, as
// Stream enforces. Refused calls are not counted.
type limiter struct {
	perMinute, perSecond int

	minute      time.Time
	minuteCount int
	second      time.Time
	secondCount int
}

func newLimiter(perMinute int) *limiter {
	perSecond := perMinute / 30
	if perSecond < 1 {
		perSecond = 1
	}
	return &limiter{perMinute: perMinute, perSecond: perSecond}
}

func (l *limiter) roll(now time.Time) {
	if m := now.Truncate(time.Minute); !m.Equal(l.minute) {
		l.minute, l.minuteCount = m, 0
	}
	if s := now.Truncate(time.Second); !s.Equal(l.second) {
		l.second, l.secondCount = s, 0
	}
}

// take counts a call, or refuses it and says how long until it would pass.
func (l *limiter) take(now time.Time) (bool, time.Duration) {
	l.roll(now)
	if l.minuteCount >= l.perMinute {
		return false, l.minute.Add(time.Minute).Sub(now)
	}
	if l.secondCount >= l.perSecond {
		return false, l.second.Add(time.Second).Sub(now)
	}
	l.minuteCount++
	l.secondCount++
	return true, 0
}

// rateState is what the X-RateLimit-* headers say.
type rateState struct {
	limit, remaining int
	reset            time.Time
}

func (l *limiter) peek(now time.Time) rateState {
	l.roll(now)
	rem := l.perMinute - l.minuteCount
	if rem < 0 {
		rem = 0
	}
	return rateState{limit: l.perMinute, remaining: rem, reset: l.minute.Add(time.Minute)}
}

func (rs rateState) set(h http.Header) {
	h.Set("X-RateLimit-Limit", strconv.Itoa(rs.limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(rs.remaining))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(rs.reset.Unix(), 10))
}
