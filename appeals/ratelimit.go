package appeals

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxBuckets bounds the limiter's memory whatever the number of subjects:
// staff are few, so reaching it means something is wrong, and the least
// recently seen subject's bucket is dropped to make room.
const maxBuckets = 10_000

// subjectLimiter is a token bucket per token subject: up to perMinute
// requests at once, refilled at perMinute a minute. A bucket left alone for
// a minute is full again, the same as a new one, so idle buckets are
// dropped without changing any answer; the sweep runs at most once a
// minute.
type subjectLimiter struct {
	mu        sync.Mutex
	limit     rate.Limit
	burst     int
	idle      time.Duration // time for an empty bucket to refill completely
	now       func() time.Time
	buckets   map[string]*bucket
	nextSweep time.Time
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

func newSubjectLimiter(perMinute int, now func() time.Time) *subjectLimiter {
	return &subjectLimiter{
		limit:   rate.Limit(float64(perMinute) / 60),
		burst:   perMinute,
		idle:    time.Minute,
		now:     now,
		buckets: map[string]*bucket{},
	}
}

// allow takes one request from key's bucket; when it is empty it returns
// false and how long until the next request would be allowed.
func (l *subjectLimiter) allow(key string) (ok bool, retryAfter time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if !now.Before(l.nextSweep) {
		l.sweep(now)
	}
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			l.evictOldest()
		}
		b = &bucket{lim: rate.NewLimiter(l.limit, l.burst)}
		l.buckets[key] = b
	}
	b.last = now
	if b.lim.AllowN(now, 1) {
		return true, 0
	}
	missing := 1 - b.lim.TokensAt(now)
	return false, time.Duration(missing / float64(l.limit) * float64(time.Second))
}

// sweep drops the buckets idle long enough to be full again.
func (l *subjectLimiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		if now.Sub(b.last) >= l.idle {
			delete(l.buckets, k)
		}
	}
	l.nextSweep = now.Add(l.idle)
}

func (l *subjectLimiter) evictOldest() {
	var (
		oldest string
		at     time.Time
	)
	for k, b := range l.buckets {
		if oldest == "" || b.last.Before(at) {
			oldest, at = k, b.last
		}
	}
	delete(l.buckets, oldest)
}

// size is the number of buckets held (for tests).
func (l *subjectLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
