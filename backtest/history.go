package backtest

import (
	"time"

	"moderator/policy"
	"moderator/store"
)

// The history a candidate reads is rebuilt in memory from the event
// stream, read in id order, with the same definitions as the store's
// live read (store/counters.go): a value covers the marks whose time is
// within the window of the event's time, on either side, among the
// events recorded before it and itself, up to store.HistoryCap rows.

// counters holds the recent marks of every user, of every channel and of
// young accounts per channel: the rows each of the store's reads counts.
// It is used by one goroutine, in id order.
type counters struct {
	keys     []policy.HistoryKey // the counter keys the candidate reads
	young    time.Duration       // the candidate's young-account age
	user     map[string][]policy.Mark
	channel  map[string][]policy.Mark // every mark, for counts.channel_users
	youngs   map[string][]policy.Mark // young accounts' marks, for counts.channel_young_messages
	maxUser  time.Duration
	maxChan  time.Duration
	maxYoung time.Duration
	seen     map[string]bool // scratch for the distinct counts
	latest   time.Time
	swept    time.Time
	sweepGap time.Duration
}

func newCounters(keys []policy.HistoryKey, young time.Duration) *counters {
	c := &counters{young: young, user: map[string][]policy.Mark{}, channel: map[string][]policy.Mark{}, youngs: map[string][]policy.Mark{}}
	for _, k := range keys {
		switch {
		case k.IsStrike():
			continue
		case k.Name == policy.CountChannelUsers:
			c.maxChan = max(c.maxChan, k.Window)
		case k.Name == policy.CountChannelYoungMessages:
			c.maxYoung = max(c.maxYoung, k.Window)
		default:
			c.maxUser = max(c.maxUser, k.Window)
		}
		c.keys = append(c.keys, k)
	}
	c.sweepGap = max(c.maxUser, c.maxChan, c.maxYoung, time.Hour)
	return c
}

// add records a counted message.
func (c *counters) add(m policy.Mark) {
	if c.maxUser > 0 {
		c.user[m.UserID] = push(c.user[m.UserID], m, c.maxUser)
	}
	if c.maxChan > 0 && m.ChannelCID != "" {
		c.channel[m.ChannelCID] = push(c.channel[m.ChannelCID], m, c.maxChan)
	}
	if c.maxYoung > 0 && m.ChannelCID != "" && m.YoungUnder(c.young) {
		c.youngs[m.ChannelCID] = push(c.youngs[m.ChannelCID], m, c.maxYoung)
	}
	if m.At.After(c.latest) {
		c.latest = m.At
	}
	if c.latest.Sub(c.swept) > c.sweepGap {
		c.sweep()
	}
}

// push appends m to marks, dropping the marks that no later event can
// count (older than the window before m, or past the cap).
func push(marks []policy.Mark, m policy.Mark, window time.Duration) []policy.Mark {
	drop := 0
	for drop < len(marks) && !marks[drop].At.After(m.At.Add(-window)) {
		drop++
	}
	if over := len(marks) - drop + 1 - store.HistoryCap; over > 0 {
		drop += over
	}
	if drop > 0 {
		marks = append(marks[:0], marks[drop:]...)
	}
	return append(marks, m)
}

// sweep forgets the users and channels with no mark in the longest
// window, so that memory follows the active users, not the event count.
func (c *counters) sweep() {
	for _, set := range []struct {
		marks  map[string][]policy.Mark
		window time.Duration
	}{{c.user, c.maxUser}, {c.channel, c.maxChan}, {c.youngs, c.maxYoung}} {
		for id, ms := range set.marks {
			if len(ms) == 0 || !ms[len(ms)-1].At.After(c.latest.Add(-set.window)) {
				delete(set.marks, id)
			}
		}
	}
	c.swept = c.latest
}

// read fills h with the counter values of an event by user in channel at
// time at, whose text has fingerprint fp.
func (c *counters) read(h policy.History, user, channel string, at time.Time, fp int64) {
	for _, k := range c.keys {
		marks := c.user[user]
		switch k.Name {
		case policy.CountChannelUsers:
			marks = c.channel[channel]
		case policy.CountChannelYoungMessages:
			marks = c.youngs[channel]
		}
		h[k] = c.countMarks(marks, k, channel, at, fp)
	}
}

// countMarks is the value of k over marks, for an event in channel at
// time at whose text has fingerprint fp.
func (c *counters) countMarks(marks []policy.Mark, k policy.HistoryKey, channel string, at time.Time, fp int64) int {
	lo, hi := at.Add(-k.Window), at.Add(k.Window)
	n := 0
	if c.seen == nil {
		c.seen = map[string]bool{}
	}
	clear(c.seen) // distinct channels (user_channels) or users (channel_users)
	distinct := func(v string) {
		if v != "" && !c.seen[v] {
			c.seen[v] = true
			n++
		}
	}
	for i := range marks {
		m := &marks[i]
		if !m.At.After(lo) || m.At.After(hi) {
			continue
		}
		switch k.Name {
		case policy.CountUserMessages, policy.CountChannelYoungMessages:
			n++
		case policy.CountUserChannelMessages:
			if m.ChannelCID == channel {
				n++
			}
		case policy.CountUserLinks:
			n += m.Links
		case policy.CountUserMentions:
			n += m.Mentions
		case policy.CountUserDuplicates:
			if fp != 0 && m.Fingerprint == fp {
				n++
			}
		case policy.CountUserChannels:
			distinct(m.ChannelCID)
		case policy.CountChannelUsers:
			distinct(m.UserID)
		}
	}
	return n
}
