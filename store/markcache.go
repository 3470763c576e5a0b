package store

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unique"

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
// A batch judged ahead from the copies (prejudge) has the same check in
// place of the read, and is recorded again the usual way when it fails.
// A batch's own marks join the copy after its commit, at the version its
// insert made. So a replica alone counts from memory, and replicas
// writing for the same user load what the others wrote: exact either way.
type markCache struct {
	mu    sync.Mutex
	users map[string]*userMarks
	// marks is the number of marks held, bounded by maxMarks.
	marks int
	// userLoads and channelLoads count the keys whose marks a read loaded
	// because their copy would not do (missing, stale, too short).
	userLoads, channelLoads atomic.Int64
	// ahead counts the batches judged ahead from the copies (prejudge);
	// moved, those of them that the check found stale (or with a retry
	// among their records), recorded again.
	ahead, moved atomic.Int64

	// strikes are the users' strike copies (strikecopy.go), strikeRows
	// the strikes they hold, bounded by cacheMaxStrikes; strikeLoads
	// counts the loads.
	strikes     map[string]*userStrikes
	strikeRows  int
	strikeLoads atomic.Int64
}

// CopyLoads returns how many times a history read has loaded a user's (or
// a channel's young accounts') marks because this replica's copy would
// not do: once per key and replica, then again whenever another writer
// committed for the key between the batch's lookup of its copy and its
// read: another replica, or this replica's other flusher. Many loads a
// batch mean the copies do not help.
func (s *Store) CopyLoads() int64 { return s.UserCopyLoads() + s.ChannelCopyLoads() }

// UserCopyLoads is CopyLoads of users' marks.
func (s *Store) UserCopyLoads() int64 { return s.marks.userLoads.Load() }

// ChannelCopyLoads is CopyLoads of channels' young accounts' marks. Until
// b61a2b8 they were most of the loads of the bench's closed loop: older
// accounts' young marks moved the channels' versions behind the copies'
// backs (see locksChannel); a rate near the young accounts' messages'
// says so again.
func (s *Store) ChannelCopyLoads() int64 { return s.marks.channelLoads.Load() }

// JudgedAhead returns how many batches this replica judged from its copies
// of marks before their insert (see prejudge), sparing them the history
// read: those with nothing else to write commit in one round trip.
func (s *Store) JudgedAhead() int64 { return s.marks.ahead.Load() }

// CopyMisses returns how many batches this replica judged ahead from its
// copies of marks (see prejudge) and then recorded again the usual way,
// because another writer had written marks of one of their keys or a
// record was a retry. Each costs a round trip; a steady rate of them
// means replicas share users' messages, and judging ahead rarely helps.
func (s *Store) CopyMisses() int64 { return s.marks.moved.Load() }

// userMarks is a user's marks with at after from (all of them), as
// committed at version, sorted by time.
type userMarks struct {
	version int64
	from    time.Time
	marks   []cachedMark // never changed in place, only appended to past its end
	used    time.Time
	// grown is taken by the one batch that may append to marks in place
	// (see copyRead.values): readers of the copy never look past its
	// length, so the batch's marks need no copy of the copy's.
	grown atomic.Bool
}

// cachedMark is what the user values read of a mark.
type cachedMark struct {
	at       time.Time
	channel  channelID // noChannel for none
	fp       int64     // 0 for none
	links    int32
	mentions int32
	created  time.Time // the author's account creation; zero if unknown
}

const (
	// cacheMaxMarks bounds the marks held (about 100 bytes each): past it,
	// the least recently used users are dropped.
	cacheMaxMarks = 500_000
	// userMaxMarks bounds one copy's: past it, the copy keeps only the
	// most recent keepMarks (a user's flood, a raid in a channel).
	userMaxMarks = 5 * HistoryCap
	keepMarks    = 4 * HistoryCap
	// keepSlack is how far before the longest window a copy keeps marks,
	// for messages delivered a little out of order.
	keepSlack = time.Minute
)

// countLoad counts a load of a key's marks of kind.
func (c *markCache) countLoad(kind *copyKind) {
	if kind == youngCopies {
		c.channelLoads.Add(1)
		return
	}
	c.userLoads.Add(1)
}

func newMarkCache() *markCache {
	return &markCache{users: map[string]*userMarks{}, strikes: map[string]*userStrikes{}}
}

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
		if cut := e.marks[n-1].at.Add(-keep - keepSlack); cut.After(e.from) {
			// Marks at cut itself go too: the copy holds those after from.
			e.marks, e.from = e.marks[after(e.marks, cut):], cut
		}
	}
	if n := len(e.marks); n > userMaxMarks {
		// A flood: the copy keeps the most recent keepMarks, enough for
		// the values of any message but a late one (see covers).
		cut := e.marks[n-keepMarks-1].at
		e.marks, e.from = e.marks[after(e.marks, cut):], cut
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.users[user]; ok && old.version > e.version {
		return
	}
	c.drop(user)
	e.used = time.Now()
	c.users[user] = e
	c.marks += len(e.marks)
	if c.marks > cacheMaxMarks {
		c.evict()
	}
}

// evict drops the least recently stored half of the copies.
func (c *markCache) evict() {
	evictOlderHalf(c.users, func(e *userMarks) time.Time { return e.used }, c.drop)
}

// evictOlderHalf calls drop for each key of copies (not empty) stored at
// or before the median time used gives.
func evictOlderHalf[E any](copies map[string]E, used func(E) time.Time, drop func(key string)) {
	times := make([]time.Time, 0, len(copies))
	for _, e := range copies {
		times = append(times, used(e))
	}
	slices.SortFunc(times, time.Time.Compare)
	median := times[len(times)/2]
	for k, e := range copies {
		if !used(e).After(median) {
			drop(k)
		}
	}
}

// channelID is a channel's cid, interned: marks compare channels by a
// pointer instead of their bytes (counts.user_channels looked at every
// mark of a busy user's copy with string compares, 8 % of the intake's
// CPU on a grown database), and the copies hold each cid once.
type channelID = unique.Handle[string]

// noChannel is the channelID of a mark without a channel.
var noChannel channelID

// channelOf interns cid; "" is noChannel.
func channelOf(cid string) channelID {
	if cid == "" {
		return noChannel
	}
	return unique.Make(cid)
}

// userValues computes the user values of keys for a record at time at of
// a user (channel and fingerprint are the record's, noChannel and 0 for none)
// over marks, sorted by time, as the database read would: over the most
// recent HistoryCap of them within window (the longest of keys) of at.
func userValues(h policy.History, keys []policy.HistoryKey, marks []cachedMark, at time.Time, channel channelID, fp int64,
	window time.Duration) {
	start, end := after(marks, at.Add(-window)), after(marks, at.Add(window))
	if end-start > HistoryCap {
		start = end - HistoryCap
	}
	in := marks[start:end]
	for _, k := range keys {
		// The key's own window, within in: a count of messages is the
		// length of that range.
		kin := in[after(in, at.Add(-k.Window)):after(in, at.Add(k.Window))]
		n := 0
		switch k.Name {
		case policy.CountUserMessages:
			n = len(kin)
		case policy.CountUserChannelMessages:
			for i := range kin {
				if channel != noChannel && kin[i].channel == channel {
					n++
				}
			}
		case policy.CountUserLinks:
			for i := range kin {
				n += int(kin[i].links)
			}
		case policy.CountUserMentions:
			for i := range kin {
				n += int(kin[i].mentions)
			}
		case policy.CountUserDuplicates:
			for i := range kin {
				if fp != 0 && kin[i].fp == fp {
					n++
				}
			}
		case policy.CountUserChannels:
			n = distinctChannels(kin)
		}
		h[k] = n
	}
}

// distinctChannels counts the channels of marks (none for noChannel).
func distinctChannels(marks []cachedMark) int {
	var buf [16]channelID
	seen := buf[:0] // few: a linear search beats a map
	for i := range marks {
		if c := marks[i].channel; c != noChannel && !slices.Contains(seen, c) {
			seen = append(seen, c)
		}
	}
	return len(seen)
}

// after is the index of the first of marks (sorted by time) after t.
func after(marks []cachedMark, t time.Time) int {
	i, _ := slices.BinarySearchFunc(marks, t, func(m cachedMark, t time.Time) int { return m.at.Compare(t) })
	for i < len(marks) && !marks[i].at.After(t) {
		i++
	}
	return i
}

// youngValues computes the values of keys (counts.channel_young_messages)
// for a record at time at whose young-account age is age, over the
// channel's marks of accounts that may be young, sorted by time, as the
// database read would: over the most recent HistoryCap of those young
// under age within window (the longest of keys) of at. A mark whose
// account's creation is unknown (written before it was kept) counts.
func youngValues(h policy.History, keys []policy.HistoryKey, marks []cachedMark, at time.Time, age, window time.Duration) {
	lo, end := at.Add(-window), after(marks, at.Add(window))
	counts := make([]int, len(keys))
	// Each key's window, computed once rather than for every mark.
	var fromBuf, toBuf [4]time.Time // a rule set reads few windows
	from, to := fromBuf[:0], toBuf[:0]
	for _, k := range keys {
		from, to = append(from, at.Add(-k.Window)), append(to, at.Add(k.Window))
	}
	taken := 0
	for i := end - 1; i >= 0 && taken < HistoryCap && marks[i].at.After(lo); i-- {
		m := &marks[i]
		if !m.created.IsZero() && !m.created.After(m.at.Add(-age)) {
			continue
		}
		taken++
		for n := range keys {
			if m.at.After(from[n]) && !m.at.After(to[n]) {
				counts[n]++
			}
		}
	}
	for n, k := range keys {
		h[k] = counts[n]
	}
}

// insertMark adds m to marks in time order (after those of the same
// time) and returns the slice, which it may change in place: marks must
// be the caller's own.
func insertMark(marks []cachedMark, m cachedMark) []cachedMark {
	i := after(marks, m.at)
	return slices.Insert(marks, i, m)
}
