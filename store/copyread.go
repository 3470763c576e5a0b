package store

import (
	"fmt"
	"slices"
	"time"

	"moderator/policy"
)

// copyKind is one kind of copy the history read counts from: a user's
// marks (counts.user_*), or the young accounts' marks of a channel
// (counts.channel_young_messages).
type copyKind struct {
	name     string // in errors and as the cache key's prefix
	versions string // the table of their versions (migrations 0025, 0026)
	column   string // the key's column in b, counter_marks and versions
	where    string // which of the key's marks count ("true" for all)
	alias    string // of the CTEs and columns
	// capped: the values read every mark in the window up to HistoryCap,
	// so a copy short of the window still does when it holds HistoryCap
	// marks in it (see covers). Not so for the young accounts' messages,
	// whose cap applies to those young under each record's age.
	capped bool
	// of returns the key a record reads and, when it writes a mark that
	// the copy holds (marked), that mark. By value: keyOf asks it of every
	// record for every key of a batch, and a pointer made one allocation
	// each (5 % of the bytes BenchmarkBatcherCounting allocated).
	of func(jr judged) (key string, mark cachedMark, marked bool)
	// values computes the kind's values of a record at time at over
	// marks, sorted by time.
	values func(h policy.History, keys []policy.HistoryKey, marks []cachedMark, at time.Time, jr judged, window time.Duration)
}

var userCopies = &copyKind{name: "user", versions: "counter_versions", column: "user_id", where: "true", alias: "u", capped: true,
	of: func(jr judged) (string, cachedMark, bool) {
		if jr.mark == nil {
			return jr.user, cachedMark{}, false
		}
		return jr.user, cachedMark{channel: jr.channelID, fp: jr.fp, links: int32(jr.mark.Links), mentions: int32(jr.mark.Mentions)}, true
	},
	values: func(h policy.History, keys []policy.HistoryKey, marks []cachedMark, at time.Time, jr judged, window time.Duration) {
		userValues(h, keys, marks, at, jr.channelID, jr.fp, window)
	},
}

// copyKindOf is the kind of copy from which the value k is counted, nil
// for a value the history read computes in the database.
func copyKindOf(k policy.HistoryKey) *copyKind {
	switch k.Name {
	case policy.CountUserMessages, policy.CountUserChannelMessages, policy.CountUserLinks, policy.CountUserMentions,
		policy.CountUserDuplicates, policy.CountUserChannels:
		return userCopies
	case policy.CountChannelYoungMessages:
		return youngCopies
	}
	return nil
}

// youngCopies hold the marks of accounts young under the longest age a
// folder may set (m.young); the values keep those young under the
// record's own age.
var youngCopies = &copyKind{name: "channel", versions: "counter_channel_versions", column: "channel_cid", where: "m.young", alias: "y",
	of: func(jr judged) (string, cachedMark, bool) {
		if jr.mark == nil || !jr.mark.YoungUnder(policy.MaxYoungAccount) {
			return jr.channel, cachedMark{}, false
		}
		return jr.channel, cachedMark{created: jr.mark.AccountCreated}, true
	},
	values: func(h policy.History, keys []policy.HistoryKey, marks []cachedMark, at time.Time, jr judged, window time.Duration) {
		youngValues(h, keys, marks, at, jr.youngAge, window)
	},
}

// copyRead is the part of the history read that computes one kind of
// values from the replica's copies of the keys' marks (markCache): the
// statement checks each copy's version and loads the marks of the keys
// whose copy is missing, stale or too short, and the values are then
// counted in Go, record by record, in the batch's order.
type copyRead struct {
	kind   *copyKind
	cache  *markCache
	keys   []policy.HistoryKey
	window time.Duration // the longest of keys
	ids    []string      // the batch's keys, once each
	copies map[string]*userMarks
	// covered says of which keys the copy holds what every record of the
	// batch reads, as far as the records' times say (see covers).
	covered map[string]bool
	// loaded is what the read found, by key.
	loaded map[string]*loadedMarks
	// work are the keys' marks as the records judged so far see them
	// (their copy or what was loaded, then the batch's own), by key.
	work map[string][]cachedMark
	// wrote says of which keys this batch wrote marks; owned, of which
	// work is this read's own slice (not a copy's); took, of which it
	// appends to the copy's slice in place (appendsInPlace).
	wrote, owned, took map[string]bool
}

// loadedMarks is one key's part of the read: the version of its marks in
// the read's snapshot, and, when the copy could not be used, the marks
// after from.
type loadedMarks struct {
	version int64
	stale   bool
	from    time.Time
	marks   []cachedMark
}

// loadCap bounds the marks loaded for one key: a key with more in the
// window (a flood of thousands of messages) is counted from the most
// recent loadCap, which is exact for any message but one delivered after
// thousands of the same key's newer ones (HistoryCap's limit, further).
const loadCap = userMaxMarks

func newCopyRead(kind *copyKind, cache *markCache, keys []policy.HistoryKey, cands []judged) *copyRead {
	r := &copyRead{kind: kind, cache: cache, keys: keys, copies: map[string]*userMarks{}, covered: map[string]bool{},
		loaded: map[string]*loadedMarks{}, work: map[string][]cachedMark{}, wrote: map[string]bool{}, owned: map[string]bool{},
		took: map[string]bool{}}
	for _, k := range keys {
		r.window = max(r.window, k.Window)
	}
	for _, jr := range cands {
		id, _, _ := r.keyOf(jr)
		if id == "" || slices.Contains(r.ids, id) {
			continue
		}
		r.ids = append(r.ids, id)
		if c := cache.lookup(kind.name, id); c != nil {
			r.copies[id] = c
		}
	}
	for id, c := range r.copies {
		r.covered[id] = kind.capped && r.covers(c, id, cands)
	}
	return r
}

// keyOf is kind.of for a record that reads the kind's values or writes a
// mark its copy holds (which the records after it count), and "" for
// one that does neither: an older account's message, whose rules read no
// young-account count, reads no channel's copy, and so neither loads it
// nor finds it stale while the other flusher commits young marks.
func (r *copyRead) keyOf(jr judged) (string, cachedMark, bool) {
	id, mark, marked := r.kind.of(jr)
	if !marked && !jr.readsAny(r.keys) {
		return "", cachedMark{}, false
	}
	return id, mark, marked
}

// covers reports whether c holds what the values of the records of key id
// read: the marks of each record's window, or, short of it, HistoryCap
// marks of the window after c.from, the most recent of which are all the
// values read (in a flood, the copy keeps only the most recent marks). A
// record without a time (the database's now() stands in) is left to the
// read's check of the first kind.
func (r *copyRead) covers(c *userMarks, id string, cands []judged) bool {
	for _, jr := range cands {
		if key, _, _ := r.keyOf(jr); key != id {
			continue
		}
		if jr.at == nil {
			return false
		}
		if !jr.at.Add(-r.window).Before(c.from) {
			continue
		}
		if after(c.marks, jr.at.Add(r.window))-after(c.marks, c.from) < HistoryCap {
			return false
		}
	}
	return true
}

// ctes are the read's common table expressions for the kind: <alias>k,
// each key's version now and the earliest time the batch's records need
// (lo); <alias>l, the marks of the keys whose copy will not do. A copy
// will do when its version is the key's and it covers the records (as
// covers found, or holding every mark after lo).
func (r *copyRead) ctes(q *historyQuery) string {
	versions := make([]int64, len(r.ids))
	froms := make([]*time.Time, len(r.ids))
	covered := make([]bool, len(r.ids))
	for i, id := range r.ids {
		versions[i] = -1
		if c := r.copies[id]; c != nil {
			versions[i], froms[i], covered[i] = c.version, &c.from, r.covered[id]
		}
	}
	ids, cached, cfrom, cov := q.param(r.ids), q.param(versions), q.param(froms), q.param(covered)
	window, limit := q.param(r.window), q.param(loadCap)
	a, col := r.kind.alias, r.kind.column
	return `,
		` + a + `k AS (
			SELECT x.id, x.cur, x.ord, x.lo,
				(x.cur <> x.cached OR NOT x.covered AND (x.cfrom IS NULL OR x.cfrom > x.lo)) AS stale
			FROM (SELECT k.id, k.cached, k.cfrom, k.covered, f.ord, f.lo,
					coalesce((SELECT v.version FROM ` + r.kind.versions + ` v WHERE v.` + col + ` = k.id), 0) AS cur
				FROM unnest(` + ids + `::text[], ` + cached + `::bigint[], ` + cfrom + `::timestamptz[], ` + cov + `::bool[])
					AS k(id, cached, cfrom, covered)
				JOIN LATERAL (SELECT min(b.ord) AS ord, min(b.at) - ` + window + `::interval AS lo FROM b WHERE b.` + col + ` = k.id) f ON true
				) x
			WHERE x.ord IS NOT NULL),
		` + a + `l AS (
			SELECT k.ord, k.cur, k.stale, k.lo, l.* FROM ` + a + `k k LEFT JOIN LATERAL (
				SELECT array_agg(m.at) AS ats, array_agg(m.channel_cid) AS chans,
					array_agg(m.fingerprint) AS fps, array_agg(m.links) AS links, array_agg(m.mentions) AS mentions,
					array_agg(m.account_created) AS created
				FROM (SELECT m.at, m.channel_cid, m.fingerprint, m.links, m.mentions, m.account_created FROM counter_marks m
					WHERE k.stale AND m.` + col + ` = k.id AND ` + r.kind.where + ` AND m.at > k.lo
					ORDER BY m.at DESC LIMIT ` + limit + `) m) l ON true)
		`
}

// columns are the read's columns of the kind.
func (r *copyRead) columns() string {
	a := r.kind.alias + "l."
	return a + "cur, " + a + "stale, " + a + "lo, " + a + "ats, " + a + "chans, " + a + "fps, " +
		a + "links, " + a + "mentions, " + a + "created"
}

// join joins the kind's loads to the first record of each key.
func (r *copyRead) join() string {
	return ` LEFT JOIN ` + r.kind.alias + `l ON ` + r.kind.alias + `l.ord = b.ord`
}

// copyRow is where a row's columns of one kind are scanned.
type copyRow struct {
	cur      *int64
	stale    *bool
	lo       *time.Time
	ats      []time.Time
	chans    []*string
	fps      []*int64
	links    []int32
	mentions []int32
	created  []*time.Time
}

func (u *copyRow) dest() []any {
	return []any{&u.cur, &u.stale, &u.lo, &u.ats, &u.chans, &u.fps, &u.links, &u.mentions, &u.created}
}

// take keeps what one row of the read says: on the first record of a
// key, the key's version and loaded marks.
func (r *copyRead) take(id string, u *copyRow) error {
	if u.cur == nil {
		return nil
	}
	l := &loadedMarks{version: *u.cur, stale: u.stale != nil && *u.stale}
	if l.stale {
		if u.lo == nil {
			return fmt.Errorf("read history: no time for %s %q", r.kind.name, id)
		}
		marks, err := u.marks()
		if err != nil {
			return fmt.Errorf("read history: marks of %s %q: %w", r.kind.name, id, err)
		}
		r.cache.countLoad(r.kind)
		l.from, l.marks = *u.lo, marks
		if len(marks) == loadCap {
			// Truncated: the copy holds the marks after the oldest loaded
			// one's time, not those at it.
			l.from = marks[0].at
			i := 0
			for i < len(marks) && !marks[i].at.After(l.from) {
				i++
			}
			l.marks = marks[i:]
		}
	}
	r.loaded[id] = l
	return nil
}

// marks are the loaded marks, oldest first.
func (u *copyRow) marks() ([]cachedMark, error) {
	n := len(u.ats)
	if len(u.chans) != n || len(u.fps) != n || len(u.links) != n || len(u.mentions) != n || len(u.created) != n {
		return nil, fmt.Errorf("columns of different lengths")
	}
	marks := make([]cachedMark, n)
	for i := range n {
		m := cachedMark{at: u.ats[i], links: u.links[i], mentions: u.mentions[i]}
		if u.chans[i] != nil {
			m.channel = channelOf(*u.chans[i])
		}
		if u.fps[i] != nil {
			m.fp = *u.fps[i]
		}
		if u.created[i] != nil {
			m.created = *u.created[i]
		}
		marks[n-1-i] = m // loaded newest first
	}
	return marks, nil
}

// values computes the kind's values of the record jr at time at into h,
// after adding its own mark to what the records judged before it see.
func (r *copyRead) values(h policy.History, at time.Time, jr judged) error {
	id, own, marked := r.keyOf(jr)
	if id == "" {
		for _, k := range r.keys {
			h[k] = 0
		}
		return nil
	}
	marks, ok := r.work[id]
	if !ok {
		l := r.loaded[id]
		switch {
		case l == nil:
			return fmt.Errorf("read history: no marks of %s %q", r.kind.name, id)
		case l.stale:
			marks = l.marks
			r.owned[id] = true // loaded for this batch alone
		default:
			marks = r.copies[id].marks
		}
	}
	if marked {
		own.at = at
		if !r.owned[id] && !r.appendsInPlace(id, marks, at) {
			// The copy's slice is shared: this batch's marks go to its own.
			marks = append(make([]cachedMark, 0, len(marks)+8), marks...)
			r.owned[id] = true
		}
		marks = insertMark(marks, own)
		r.wrote[id] = true
	}
	r.work[id] = marks
	r.kind.values(h, r.keys, marks, at, jr, r.window)
	return nil
}

// appendsInPlace reports whether this batch may add a mark at time at to
// marks, the copy of id, by appending to its slice: the mark goes last,
// and the batch is the first to append to this copy (a copy is appended
// to once: after that, its slice's tail is another batch's). It then owns
// the slice for the rest of its marks.
func (r *copyRead) appendsInPlace(id string, marks []cachedMark, at time.Time) bool {
	c := r.copies[id]
	if c == nil || len(marks) != len(c.marks) || (len(marks) > 0 && at.Before(marks[len(marks)-1].at)) {
		return false
	}
	if !c.grown.CompareAndSwap(false, true) {
		return false
	}
	r.owned[id], r.took[id] = true, true
	return true
}

// commit keeps the keys' marks as this batch leaves them, at the versions
// its commit made: call it once the commit has succeeded.
func (r *copyRead) commit() {
	for id, l := range r.loaded {
		marks, ok := r.work[id]
		if !ok {
			continue
		}
		e := &userMarks{version: l.version, from: l.from, marks: marks}
		if !l.stale {
			e.from = r.copies[id].from
		}
		if r.wrote[id] {
			e.version++ // the trigger's bump (migrations 0025, 0026)
		}
		r.cache.store(r.kind.name, id, e, r.window)
	}
}

// abandon drops the copies of the keys this batch wrote marks of: its
// transaction failed, or its commit's fate is unknown.
func (r *copyRead) abandon() {
	var ids []string
	for id := range r.wrote {
		ids = append(ids, id)
	}
	r.cache.forget(r.kind.name, ids)
}
