package store

import (
	"fmt"
	"slices"
	"time"

	"moderator/policy"
)

// userRead is the part of the history read that computes the user values
// (counts.user_*) from the replica's copies of the users' marks
// (markCache): the statement checks each copy's version and loads the
// marks of the users whose copy is missing, stale or too short, and the
// values are then counted in Go, record by record, in the batch's order.
type userRead struct {
	cache  *markCache
	keys   []policy.HistoryKey
	window time.Duration // the longest of keys
	users  []string      // the batch's users with a subject, once each
	copies map[string]*userMarks
	// What the read found, by user.
	loaded map[string]*loadedMarks
	// ats are the records' times (the database's now() for those with
	// none), by ord.
	ats map[int]time.Time
	// work are the users' marks as the records judged so far see them
	// (their copy or what was loaded, then the batch's own), by user.
	work map[string][]cachedMark
	// wrote says which users this batch wrote marks of.
	wrote map[string]bool
}

// loadedMarks is one user's part of the read: the version of the user's
// marks in the read's snapshot, and, when the copy could not be used,
// the marks after from.
type loadedMarks struct {
	version int64
	stale   bool
	from    time.Time
	marks   []cachedMark
}

// loadCap bounds the marks loaded for one user: a user with more in the
// window (a flood of thousands of messages) is counted from the most
// recent loadCap, which is exact for any message but one delivered after
// thousands of the same user's newer ones (HistoryCap's limit, further).
const loadCap = userMaxMarks

func newUserRead(cache *markCache, keys []policy.HistoryKey, cands []judged, users []string) *userRead {
	r := &userRead{cache: cache, keys: keys, copies: map[string]*userMarks{}, loaded: map[string]*loadedMarks{},
		ats: map[int]time.Time{}, work: map[string][]cachedMark{}, wrote: map[string]bool{}}
	for _, k := range keys {
		r.window = max(r.window, k.Window)
	}
	for n := range cands {
		u := users[n]
		if u == "" || slices.Contains(r.users, u) {
			continue
		}
		r.users = append(r.users, u)
		if c := cache.lookup(u); c != nil {
			r.copies[u] = c
		}
	}
	return r
}

// ctes are the read's common table expressions for the user values: uk,
// each user's version now and the earliest time the batch's records need
// (lo); ul, the marks of the users whose copy will not do. A copy will do
// when its version is the user's and it holds every mark after lo.
func (r *userRead) ctes(q *historyQuery) string {
	versions := make([]int64, len(r.users))
	froms := make([]*time.Time, len(r.users))
	for i, u := range r.users {
		versions[i] = -1
		if c := r.copies[u]; c != nil {
			versions[i], froms[i] = c.version, &c.from
		}
	}
	users, cached, cfrom := q.param(r.users), q.param(versions), q.param(froms)
	window, limit := q.param(r.window), q.param(loadCap)
	return `,
		uk AS (
			SELECT k.user_id, coalesce(v.version, 0) AS cur, f.ord, f.lo,
				(coalesce(v.version, 0) <> k.cached OR k.cfrom IS NULL OR k.cfrom > f.lo) AS stale
			FROM unnest(` + users + `::text[], ` + cached + `::bigint[], ` + cfrom + `::timestamptz[]) AS k(user_id, cached, cfrom)
			JOIN LATERAL (SELECT min(b.ord) AS ord, min(b.at) - ` + window + `::interval AS lo FROM b WHERE b.user_id = k.user_id) f ON true
			LEFT JOIN counter_versions v ON v.user_id = k.user_id
			WHERE f.ord IS NOT NULL),
		ul AS (
			SELECT uk.ord, uk.cur, uk.stale, uk.lo, l.* FROM uk LEFT JOIN LATERAL (
				SELECT array_agg(m.event_id) AS ids, array_agg(m.at) AS ats, array_agg(m.channel_cid) AS chans,
					array_agg(m.fingerprint) AS fps, array_agg(m.links) AS links, array_agg(m.mentions) AS mentions
				FROM (SELECT m.event_id, m.at, m.channel_cid, m.fingerprint, m.links, m.mentions FROM counter_marks m
					WHERE uk.stale AND m.user_id = uk.user_id AND m.at > uk.lo
					ORDER BY m.at DESC LIMIT ` + limit + `) m) l ON true)
		`
}

// columns are the read's columns of the user values, after b.ord.
const userColumns = `b.at, ul.cur, ul.stale, ul.lo, ul.ids, ul.ats, ul.chans, ul.fps, ul.links, ul.mentions`

// userJoin joins ul to the first record of each user.
const userJoin = ` LEFT JOIN ul ON ul.ord = b.ord`

// userRow is where a row's user columns are scanned.
type userRow struct {
	at       time.Time
	cur      *int64
	stale    *bool
	lo       *time.Time
	ids      []int64
	ats      []time.Time
	chans    []*string
	fps      []*int64
	links    []int32
	mentions []int32
}

func (u *userRow) dest() []any {
	return []any{&u.at, &u.cur, &u.stale, &u.lo, &u.ids, &u.ats, &u.chans, &u.fps, &u.links, &u.mentions}
}

// take keeps what one row of the read says: its record's time and, on
// the first record of a user, the user's version and loaded marks.
func (r *userRead) take(ord int, user string, u *userRow) error {
	r.ats[ord] = u.at
	if u.cur == nil {
		return nil
	}
	l := &loadedMarks{version: *u.cur, stale: u.stale != nil && *u.stale}
	if l.stale {
		if u.lo == nil {
			return fmt.Errorf("read history: no time for user %q", user)
		}
		l.from = *u.lo
		n := len(u.ids)
		if len(u.ats) != n || len(u.chans) != n || len(u.fps) != n || len(u.links) != n || len(u.mentions) != n {
			return fmt.Errorf("read history: marks of user %q: columns of different lengths", user)
		}
		l.marks = make([]cachedMark, n)
		for i := range n {
			m := cachedMark{eventID: u.ids[i], at: u.ats[i], links: u.links[i], mentions: u.mentions[i]}
			if u.chans[i] != nil {
				m.channel = *u.chans[i]
			}
			if u.fps[i] != nil {
				m.fp = *u.fps[i]
			}
			l.marks[n-1-i] = m // loaded newest first
		}
		if n == loadCap {
			// Truncated: the copy holds the marks after the oldest loaded
			// one's time, not those at it.
			l.from = l.marks[0].at
			i := 0
			for i < n && !l.marks[i].at.After(l.from) {
				i++
			}
			l.marks = l.marks[i:]
		}
	}
	r.loaded[user] = l
	return nil
}

// values computes the user values of the record jr (ord, its event id,
// its user, channel and fingerprint) into h, after adding its own mark to
// what the records judged before it see.
func (r *userRead) values(h policy.History, ord int, jr judged, eventID int64, user, channel string, fp int64) error {
	if user == "" {
		for _, k := range r.keys {
			h[k] = 0
		}
		return nil
	}
	at, ok := r.ats[ord]
	if !ok {
		return fmt.Errorf("read history: no time for event %d", eventID)
	}
	marks, ok := r.work[user]
	if !ok {
		l := r.loaded[user]
		switch {
		case l == nil:
			return fmt.Errorf("read history: no marks of user %q", user)
		case l.stale:
			marks = l.marks
		default:
			marks = r.copies[user].marks
		}
	}
	if jr.mark != nil {
		m := cachedMark{eventID: eventID, at: at, channel: jr.mark.ChannelCID, fp: jr.mark.Fingerprint,
			links: int32(jr.mark.Links), mentions: int32(jr.mark.Mentions)}
		marks = insertMark(marks, m)
		r.wrote[user] = true
	}
	r.work[user] = marks
	userValues(h, r.keys, marks, at, channel, fp, r.window)
	return nil
}

// commit keeps the users' marks as this batch leaves them, at the
// versions its commit made: call it once the commit has succeeded.
func (r *userRead) commit() {
	for u, l := range r.loaded {
		marks, ok := r.work[u]
		if !ok {
			continue
		}
		e := &userMarks{version: l.version, from: l.from}
		if !l.stale {
			e.from = r.copies[u].from
		}
		if r.wrote[u] {
			e.version++ // the trigger's bump (migration 0025)
		}
		e.marks = marks
		r.cache.store(u, e, r.window)
	}
}

// abandon drops the copies of the users this batch wrote marks of: its
// transaction failed, or its commit's fate is unknown.
func (r *userRead) abandon() {
	var users []string
	for u := range r.wrote {
		users = append(users, u)
	}
	r.cache.forget(users)
}

// scanDest adds the user columns to dest when r is not nil.
func (r *userRead) scanDest(dest []any, u *userRow) []any {
	if r == nil {
		return dest
	}
	return append(dest, u.dest()...)
}
