package store

import (
	"slices"
	"sync"
	"time"

	"moderator/policy"
)

// markCache keeps, per user (and per channel for the young accounts'
// messages), the counter marks of the user's recent
// messages as committed at one version of the user's counter_versions row
// (migration 0025), so that the history read counts the user's values
// from memory instead of scanning the user's marks for every judged
// message: with a few busy users, that scan was most of the intake's
// database time (a user's 1,000 most recent marks, read again for each of
// their messages).
//
// A copy is used only when the read finds, in its own snapshot and under
// the user's advisory lock, that the user's version is still the copy's;
// otherwise the read loads the user's marks again in the same statement.
// A batch's own marks join the copy after its commit, at the version its
// insert made. So a replica alone counts from memory, and replicas
// writing for the same user load what the others wrote: exact either way.
type markCache struct {
	mu    sync.Mutex
	users map[string]*userMarks
	// marks is the number of marks held, bounded by maxMarks.
	marks int
}

// userMarks is a user's marks with at after from (all of them), as
// committed at version, sorted by time.
type userMarks struct {
	version int64
	from    time.Time
	marks   []cachedMark // never changed in place: a new slice replaces it
	used    time.Time
}

// cachedMark is what the user values read of a mark.
type cachedMark struct {
	eventID  int64
	at       time.Time
	channel  string // "" for none
	fp       int64  // 0 for none
	links    int32
	mentions int32
	created  time.Time // the author's account creation; zero if unknown
}

const (
	// cacheMaxMarks bounds the marks held (about 100 bytes each): past it,
	// the least recently used users are dropped.
	cacheMaxMarks = 500_000
	// userMaxMarks bounds one user's: a user with more marks in the
	// window than this is counted from the database's most recent ones
	// (loadCap) and not kept.
	userMaxMarks = 5 * HistoryCap
	// keepSlack is how far before the longest window a copy keeps marks,
	// for messages delivered a little out of order.
	keepSlack = time.Minute
)

func newMarkCache() *markCache { return &markCache{users: map[string]*userMarks{}} }

// lookup returns the copy of the marks of a key of a kind, nil if none.
func (c *markCache) lookup(kind, id string) *userMarks {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.users[kind+":"+id]
}

// forget drops the copies of keys of a kind: a transaction that wrote
// their marks ended in doubt.
func (c *markCache) forget(kind string, ids []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		c.drop(kind + ":" + id)
	}
}

func (c *markCache) drop(user string) {
	if e, ok := c.users[user]; ok {
		c.marks -= len(e.marks)
		delete(c.users, user)
	}
}

// store keeps e as the copy of a key of a kind unless a newer one is
// there (another flusher of this replica committed after), trimming marks
// older than keep before its newest.
func (c *markCache) store(kind, id string, e *userMarks, keep time.Duration) {
	user := kind + ":" + id
	if n := len(e.marks); n > 0 {
		cut := e.marks[n-1].at.Add(-keep - keepSlack)
		if cut.After(e.from) {
			i, _ := slices.BinarySearchFunc(e.marks, cut, func(m cachedMark, t time.Time) int { return m.at.Compare(t) })
			// Marks at cut itself go too: the copy holds those after from.
			for i < n && !e.marks[i].at.After(cut) {
				i++
			}
			e.marks, e.from = e.marks[i:], cut
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.users[user]; ok && old.version > e.version {
		return
	}
	c.drop(user)
	if len(e.marks) > userMaxMarks {
		return
	}
	e.used = time.Now()
	c.users[user] = e
	c.marks += len(e.marks)
	if c.marks > cacheMaxMarks {
		c.evict()
	}
}

// evict drops the least recently stored half of the copies.
func (c *markCache) evict() {
	var times []time.Time
	for _, e := range c.users {
		times = append(times, e.used)
	}
	slices.SortFunc(times, time.Time.Compare)
	median := times[len(times)/2]
	for u, e := range c.users {
		if !e.used.After(median) {
			c.drop(u)
		}
	}
}

// userValues computes the user values of keys for a record at time at of
// a user (channel and fingerprint are the record's, "" and 0 for none)
// over marks, sorted by time, as the database read would: over the most
// recent HistoryCap of them within window (the longest of keys) of at.
func userValues(h policy.History, keys []policy.HistoryKey, marks []cachedMark, at time.Time, channel string, fp int64,
	window time.Duration) {
	lo, hi := at.Add(-window), at.Add(window)
	// marks within (lo, hi]
	start, _ := slices.BinarySearchFunc(marks, lo, func(m cachedMark, t time.Time) int { return m.at.Compare(t) })
	for start < len(marks) && !marks[start].at.After(lo) {
		start++
	}
	end, _ := slices.BinarySearchFunc(marks, hi, func(m cachedMark, t time.Time) int { return m.at.Compare(t) })
	for end < len(marks) && !marks[end].at.After(hi) {
		end++
	}
	if end-start > HistoryCap {
		start = end - HistoryCap
	}
	in := marks[start:end]
	for _, k := range keys {
		klo, khi := at.Add(-k.Window), at.Add(k.Window)
		var n int
		var seen map[string]bool
		for i := range in {
			m := &in[i]
			if !m.at.After(klo) || m.at.After(khi) {
				continue
			}
			switch k.Name {
			case policy.CountUserMessages:
				n++
			case policy.CountUserChannelMessages:
				if channel != "" && m.channel == channel {
					n++
				}
			case policy.CountUserLinks:
				n += int(m.links)
			case policy.CountUserMentions:
				n += int(m.mentions)
			case policy.CountUserDuplicates:
				if fp != 0 && m.fp == fp {
					n++
				}
			case policy.CountUserChannels:
				if m.channel != "" && !seen[m.channel] {
					if seen == nil {
						seen = map[string]bool{}
					}
					seen[m.channel] = true
					n++
				}
			}
		}
		h[k] = n
	}
}

// youngValues computes the values of keys (counts.channel_young_messages)
// for a record at time at whose young-account age is age, over the
// channel's marks of accounts that may be young, sorted by time, as the
// database read would: over the most recent HistoryCap of those young
// under age within window (the longest of keys) of at. A mark whose
// account's creation is unknown (written before it was kept) counts.
func youngValues(h policy.History, keys []policy.HistoryKey, marks []cachedMark, at time.Time, age, window time.Duration) {
	lo, hi := at.Add(-window), at.Add(window)
	end, _ := slices.BinarySearchFunc(marks, hi, func(m cachedMark, t time.Time) int { return m.at.Compare(t) })
	for end < len(marks) && !marks[end].at.After(hi) {
		end++
	}
	counts := make([]int, len(keys))
	taken := 0
	for i := end - 1; i >= 0 && taken < HistoryCap && marks[i].at.After(lo); i-- {
		m := &marks[i]
		if !m.created.IsZero() && !m.created.After(m.at.Add(-age)) {
			continue
		}
		taken++
		for n, k := range keys {
			if m.at.After(at.Add(-k.Window)) && !m.at.After(at.Add(k.Window)) {
				counts[n]++
			}
		}
	}
	for n, k := range keys {
		h[k] = counts[n]
	}
}

// insertMark returns marks with m added in time order (after those of
// the same time), as a new slice.
func insertMark(marks []cachedMark, m cachedMark) []cachedMark {
	i, _ := slices.BinarySearchFunc(marks, m.at, func(c cachedMark, t time.Time) int { return c.at.Compare(t) })
	for i < len(marks) && !marks[i].at.After(m.at) {
		i++
	}
	out := make([]cachedMark, 0, len(marks)+1)
	out = append(out, marks[:i]...)
	out = append(out, m)
	return append(out, marks[i:]...)
}
