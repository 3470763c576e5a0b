package store

import (
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"moderator/policy"
)

// Strike copies: the replica keeps, per user, the user's recent strikes
// as committed at one version of the user's strike_versions row
// (migration 0032), so that a batch whose rules read strikes can still be
// judged ahead (prejudge) instead of waiting for the history read. In
// the starter pack's closed loop almost no batch went ahead before them:
// each held a message of a user past ten a minute, whose flood rule then
// reads strikes.by_rule("flood", "10m"), and the ladder reads strikes for
// every swear word; a rules folder with those reads taken out judged 95 %
// of its batches ahead and spent 15-30 % less CPU a webhook (2026-12-06).
//
// The history read checks each copy's version in its own snapshot (after
// the counter locks), loads a user's strikes with their version when the
// copy is missing, out of date or too short, and counts the values from
// what it found (readValues): its own scans of the strikes table run only
// for users with more strikes than a copy holds. A batch judged ahead
// counts them from the copies, and its check compares each copy's version
// with the user's and has the batch recorded again the usual way when they
// differ. Strikes change outside the recording transactions (an outcome or
// an overturn takes one back, another replica acts), and the versions
// follow every change: exact either way.
//
// A batch that strikes a user makes the user's copy stale (its actions
// write strikes after it was judged): it reads the user's strikes again
// with its COMMIT (queueReload). A batch whose record would count
// another record's strike of the same batch (addBatchStrikes) is not
// judged ahead.

// strikeRow is what the strike values read of a strike.
type strikeRow struct {
	at     time.Time
	key    string // strike_key: what one strike is
	rule   string
	typ    string
	shadow bool
}

// userStrikes is a user's strikes with at after from (all of them), as
// committed at version, sorted by time. Never changed once stored.
type userStrikes struct {
	version int64
	from    time.Time
	rows    []strikeRow
	used    time.Time
}

const (
	// strikeLoadCap bounds the strikes of a user with a copy: one with
	// more (strike_versions.strikes, of any time kept) keeps none, and is
	// read by the database, whose scans read only the kinds the rules
	// count. A ladder needs a handful.
	strikeLoadCap = 100
	// cacheMaxStrikes bounds the strikes the copies hold (about 100 bytes
	// each): past it, the least recently used half are dropped.
	cacheMaxStrikes = 200_000
)

// StrikeCopyLoads returns how many times a history read has loaded a
// user's strikes because this replica's copy would not do: once per user,
// then after each change of the user's strikes by another writer (an
// outcome, an overturn, another replica). A batch that strikes the user
// reads them again with its commit, which is not counted.
func (s *Store) StrikeCopyLoads() int64 { return s.marks.strikeLoads.Load() }

func (c *markCache) lookupStrikes(user string) *userStrikes {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.strikes[user]
}

// storeStrikes keeps e as user's copy unless a newer one is there.
func (c *markCache) storeStrikes(user string, e *userStrikes) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.strikes[user]; ok {
		if old.version > e.version {
			return
		}
		c.strikeRows -= len(old.rows)
	}
	e.used = time.Now()
	c.strikes[user] = e
	c.strikeRows += len(e.rows)
	if c.strikeRows > cacheMaxStrikes {
		c.evictStrikes()
	}
}

// forgetStrikes drops the copies of users: a batch struck them.
func (c *markCache) forgetStrikes(users []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, u := range users {
		c.dropStrikes(u)
	}
}

func (c *markCache) dropStrikes(user string) {
	if old, ok := c.strikes[user]; ok {
		c.strikeRows -= len(old.rows)
		delete(c.strikes, user)
	}
}

// evictStrikes drops the least recently stored half of the strike copies.
func (c *markCache) evictStrikes() {
	evictOlderHalf(c.strikes, func(e *userStrikes) time.Time { return e.used }, c.dropStrikes)
}

// strikeRead is the part of a batch's judging that concerns the strike
// copies: judged ahead, the values counted from them and the check of
// their versions; read, the loads of the users' strikes whose copies will
// not do.
type strikeRead struct {
	cache  *markCache
	keys   []policy.HistoryKey // the strike values of the batch
	window time.Duration       // the longest of keys
	ids    []string            // the users whose records read them, once each
	copies map[string]*userStrikes
	// loaded is what the read found, by user: the copy (stale false) or
	// the strikes it loaded (nil when the user has more than
	// strikeLoadCap).
	loaded map[string]*loadedStrikes
	// used are, judged ahead, the records each user's copy decided;
	// struck, the users a record decided so far strikes.
	used   map[string][]int
	struck map[string]bool
	// reloaded are the copies of the users the batch struck, as its
	// transaction left them (queueReload).
	reloaded map[string]*userStrikes
}

type loadedStrikes struct {
	stale bool
	copy  *userStrikes
}

// newStrikeRead returns the strike part of the judging of cands, nil when
// none of their records reads a strike value.
func newStrikeRead(cache *markCache, keys []policy.HistoryKey, cands []judged) *strikeRead {
	r := &strikeRead{cache: cache, copies: map[string]*userStrikes{}, loaded: map[string]*loadedStrikes{}, used: map[string][]int{},
		reloaded: map[string]*userStrikes{}}
	for _, k := range keys {
		if k.IsStrike() {
			r.keys = append(r.keys, k)
			r.window = max(r.window, k.Window)
		}
	}
	if len(r.keys) == 0 {
		return nil
	}
	for _, jr := range cands {
		if jr.user == "" || !jr.readsAny(r.keys) || slices.Contains(r.ids, jr.user) {
			continue
		}
		r.ids = append(r.ids, jr.user)
		if c := cache.lookupStrikes(jr.user); c != nil {
			r.copies[jr.user] = c
		}
	}
	if len(r.ids) == 0 {
		return nil
	}
	return r
}

// values puts into h (and shadow, when not nil) the strike values jr
// reads, counted from its user's copy, when the copy holds every strike
// of their windows; it reports whether it did. A value it leaves out is
// one DecideKnown says it lacks, if the rules read it.
func (r *strikeRead) values(h, shadow policy.History, jr judged) bool {
	c := r.copies[jr.user]
	if c == nil || jr.at == nil {
		return false
	}
	at := *jr.at
	for _, k := range r.keys {
		if slices.Contains(jr.reads, k) && c.from.After(at.Add(-k.Window)) {
			return false
		}
	}
	r.count(c.rows, jr, at, &readValues{h: h, shadow: shadow}, nil)
	r.used[jr.user] = append(r.used[jr.user], jr.i)
	return true
}

// readValues puts into v the strike values of jr, at time at, counted
// from what the history read found of its user's strikes (a current copy,
// or those it loaded), with the messages of batch (batchStrikeKeys) they
// counted, for addBatchStrikes: the read computed them only for users
// with too many strikes for a copy.
func (r *strikeRead) readValues(v *readValues, jr judged, at time.Time, batch []string) {
	if l := r.loaded[jr.user]; l != nil && l.copy != nil {
		r.count(l.copy.rows, jr, at, v, batch)
	}
}

// count puts into v the values of the strike keys jr reads at time at,
// counted over rows: h's, and shadow's when not nil; with struck sets
// (a read's), the messages of batch each counted.
func (r *strikeRead) count(rows []strikeRow, jr judged, at time.Time, v *readValues, batch []string) {
	own := ownStrikeKey(jr)
	for _, k := range r.keys {
		if !slices.Contains(jr.reads, k) {
			continue
		}
		var struck []string
		v.h[k], struck = countStrikes(rows, k, at, own, false, batch)
		setStruck(v.struck, k, struck)
		if v.shadow != nil {
			v.shadow[k], struck = countStrikes(rows, k, at, own, true, batch)
			setStruck(v.shadowStruck, k, struck)
		}
	}
}

// setStruck makes keys set's messages of k; a nil set keeps none.
func setStruck(set struckSet, k policy.HistoryKey, keys []string) {
	if set == nil {
		return
	}
	if len(keys) == 0 {
		delete(set, k)
		return
	}
	set[k] = make(map[string]bool, len(keys))
	for _, m := range keys {
		set[k][m] = true
	}
}

// ownStrikeKey is the strike key of jr's message, "" for none: its own
// strikes are not counted (an edit is not judged against the strikes of
// the message it edits).
func ownStrikeKey(jr judged) string {
	if m := jr.ev.MessageIDOrEmpty(); m != "" {
		return "m:" + m
	}
	return ""
}

// countStrikes is the value k of a record at time at whose message's
// strike key is own ("" for none) over rows, as the history read computes
// it (historyQuery.strikes, struckMessages): the distinct strike keys of
// the rows of k's kind within its window of at, on either side, but for
// the record's own message's; with shadow, the shadow rules' would-be
// strikes too. rows are at most strikeLoadCap, far under HistoryCap, so
// the read's cap never applies. struck are those of batch it counted.
func countStrikes(rows []strikeRow, k policy.HistoryKey, at time.Time, own string, shadow bool, batch []string) (
	n int, struck []string) {
	lo, hi := at.Add(-k.Window), at.Add(k.Window)
	var buf [16]string
	seen := buf[:0] // few: a linear search beats a map
	for i := range rows {
		s := &rows[i]
		if !s.at.After(lo) || s.at.After(hi) || (s.shadow && !shadow) || (own != "" && s.key == own) {
			continue
		}
		switch k.Name {
		case policy.StrikesOfType:
			if s.typ != k.Arg {
				continue
			}
		case policy.StrikesByRule:
			if s.rule != k.Arg {
				continue
			}
		}
		if !slices.Contains(seen, s.key) {
			seen = append(seen, s.key)
			if _, ok := slices.BinarySearch(batch, s.key); ok {
				struck = append(struck, s.key)
			}
		}
	}
	return len(seen), struck
}

// skipsScans is the condition on a record (b) of the read that its
// user's strikes are counted from the copies (readValues), not by the
// read's own scans: every user but those with too many strikes.
func (r *strikeRead) skipsScans(q *historyQuery) string {
	return " AND NOT coalesce((SELECT k.n <= " + q.param(strikeLoadCap) + " FROM sk k WHERE k.id = b.user_id), false)"
}

// countsBatchStrike reports, once jr is decided ahead, whether a record
// decided from a user's copy would count a strike of another record of
// the batch (addBatchStrikes), which the copy cannot hold: jr's, or an
// earlier record's. Such a batch is recorded the usual way; prejudge asks
// after each record, so that it stops at the first. Whatever the records'
// order, with the shadow rules' would-be strikes too: it only has to be
// safe, and is rare.
func (r *strikeRead) countsBatchStrike(recs []EventRecord, jr judged) bool {
	if r.struck == nil {
		// The records decided at once, before any was judged.
		r.struck = map[string]bool{}
		for i := range recs {
			if recs[i].Judge == nil {
				if u := strikingUser(&recs[i]); u != "" {
					r.struck[u] = true
				}
			}
		}
	}
	if r.struck[jr.user] && slices.Contains(r.used[jr.user], jr.i) {
		return true
	}
	u := strikingUser(&recs[jr.i])
	if u == "" {
		return false
	}
	r.struck[u] = true
	return slices.ContainsFunc(r.used[u], func(i int) bool { return i != jr.i })
}

// strikingUser is the user whose strikes rec's decision writes (its
// actions', or its shadow rules' would-be ones), "" for none.
func strikingUser(rec *EventRecord) string {
	d, ev := rec.Decision, rec.Event
	if d == nil || ev == nil || rec.Own || ev.Type == policy.EventBeforeSend || len(wouldStrike(d, true)) == 0 {
		return ""
	}
	return ev.SubjectUserID()
}

// versionMoved is the condition that a used copy's version is no longer
// its user's; "" when no copy was used.
func (r *strikeRead) versionMoved(q *historyQuery) string {
	var ids []string
	var versions []int64
	for _, id := range r.ids {
		if len(r.used[id]) > 0 {
			ids, versions = append(ids, id), append(versions, r.copies[id].version)
		}
	}
	if len(ids) == 0 {
		return ""
	}
	return fmt.Sprintf(`EXISTS (SELECT FROM unnest(%s::text[], %s::bigint[]) AS k(id, v)
		WHERE coalesce((SELECT x.version FROM strike_versions x WHERE x.user_id = k.id), 0) <> k.v)`,
		q.param(ids), q.param(versions))
}

// ctes are the read's common table expressions for the strike copies:
// sk, each user's version and number of strikes now, and the earliest
// time the batch's records need (lo); sl, the strikes of the users whose
// copy will not do, unless they have more than strikeLoadCap.
func (r *strikeRead) ctes(q *historyQuery) string {
	versions := make([]int64, len(r.ids))
	froms := make([]*time.Time, len(r.ids))
	for i, id := range r.ids {
		versions[i] = -1
		if c := r.copies[id]; c != nil {
			versions[i], froms[i] = c.version, &c.from
		}
	}
	ids, cached, cfrom := q.param(r.ids), q.param(versions), q.param(froms)
	window, limit := q.param(r.window), q.param(strikeLoadCap)
	return `,
		sk AS (
			SELECT x.ord, x.cur, x.n, x.lo, (x.cur <> x.cached OR x.cfrom IS NULL OR x.cfrom > x.lo) AS stale, x.id
			FROM (SELECT k.id, k.cached, k.cfrom, f.ord, f.lo, coalesce(v.version, 0) AS cur, coalesce(v.strikes, 0) AS n
				FROM unnest(` + ids + `::text[], ` + cached + `::bigint[], ` + cfrom + `::timestamptz[]) AS k(id, cached, cfrom)
				JOIN LATERAL (SELECT min(b.ord) AS ord, min(b.at) - ` + window + `::interval AS lo FROM b WHERE b.user_id = k.id) f ON true
				LEFT JOIN LATERAL (SELECT x.version, x.strikes FROM strike_versions x WHERE x.user_id = k.id LIMIT 1) v ON true
				) x
			WHERE x.ord IS NOT NULL),
		sl AS (
			SELECT k.ord, k.cur, k.n, k.stale, k.lo, l.* FROM sk k LEFT JOIN LATERAL (
				SELECT array_agg(s.at) AS ats, array_agg(s.strike_key) AS skeys, array_agg(s.rule_id) AS rules,
					array_agg(s.type) AS types, array_agg(s.shadow) AS shadows
				FROM (SELECT s.at, s.strike_key, s.rule_id, s.type, s.shadow FROM strikes s
					WHERE k.stale AND k.n <= ` + limit + ` AND s.user_id = k.id AND s.at > k.lo) s) l ON true)
		`
}

// columns are the read's columns of the strike copies.
func (r *strikeRead) columns() string {
	return "sl.cur, sl.n, sl.stale, sl.lo, sl.ats, sl.skeys, sl.rules, sl.types, sl.shadows"
}

// join joins the loads to the first record of each user.
func (r *strikeRead) join() string { return ` LEFT JOIN sl ON sl.ord = b.ord` }

// strikeCopyRow is where a row's strike copy columns are scanned.
type strikeCopyRow struct {
	cur     *int64
	n       *int64 // the user's strikes
	stale   *bool
	lo      *time.Time
	ats     []time.Time
	keys    []string
	rules   []string
	types   []string
	shadows []bool
}

func (u *strikeCopyRow) dest() []any {
	return []any{&u.cur, &u.n, &u.stale, &u.lo, &u.ats, &u.keys, &u.rules, &u.types, &u.shadows}
}

// take keeps what one row of the read says: on the first record of a
// user, the user's version and loaded strikes.
func (r *strikeRead) take(id string, u *strikeCopyRow) error {
	if u.cur == nil {
		return nil
	}
	if u.stale == nil || !*u.stale {
		if c := r.copies[id]; c != nil {
			r.loaded[id] = &loadedStrikes{copy: c}
		}
		return nil
	}
	c, err := u.copy(id)
	if err != nil {
		return err
	}
	if c != nil {
		r.cache.strikeLoads.Add(1)
	}
	r.loaded[id] = &loadedStrikes{stale: true, copy: c}
	return nil
}

// copy is the copy of user id's strikes the row loaded, nil when the user
// has more than strikeLoadCap (none were loaded).
func (u *strikeCopyRow) copy(id string) (*userStrikes, error) {
	if u.n != nil && *u.n > strikeLoadCap {
		return nil, nil
	}
	n := len(u.ats)
	if u.cur == nil || u.lo == nil || len(u.keys) != n || len(u.rules) != n || len(u.types) != n || len(u.shadows) != n {
		return nil, fmt.Errorf("read history: strikes of user %q: columns missing or of different lengths", id)
	}
	rows := make([]strikeRow, n)
	for i := range n {
		rows[i] = strikeRow{at: u.ats[i], key: u.keys[i], rule: u.rules[i], typ: u.types[i], shadow: u.shadows[i]}
	}
	slices.SortFunc(rows, func(a, b strikeRow) int { return a.at.Compare(b.at) })
	return &userStrikes{version: *u.cur, from: *u.lo, rows: rows}, nil
}

// struckUsers are the users whose strikes recs' decisions write, once
// each.
func struckUsers(recs []EventRecord) []string {
	var struck []string
	for i := range recs {
		if u := strikingUser(&recs[i]); u != "" && !slices.Contains(struck, u) {
			struck = append(struck, u)
		}
	}
	return struck
}

// queueReload queues on w, the batch's last statements (sent with its
// COMMIT), the read of the strikes of the users it struck whose records
// read strike values, as the transaction leaves them: their actions wrote
// strikes, and outcomes that end at once (held, suppressed) may have
// taken some back, which the replica cannot tell from the decisions. So
// the user's next batch may still be judged ahead, where dropping the
// copy had it read the user's strikes again (12 % of the starter pack's
// batches at 500/s, 2026-12-06). The read's version and strikes are of
// one snapshot, so the copy is exact as of it; a change committed after
// it fails the next check.
func (r *strikeRead) queueReload(w *Writes, recs []EventRecord, cands []judged) {
	var ids []string
	var los []time.Time
	for _, u := range struckUsers(recs) {
		if !slices.Contains(r.ids, u) {
			continue
		}
		var lo time.Time
		for _, jr := range cands {
			if jr.user == u && jr.at != nil && (lo.IsZero() || jr.at.Before(lo)) {
				lo = *jr.at
			}
		}
		if !lo.IsZero() {
			ids, los = append(ids, u), append(los, lo.Add(-r.window))
		}
	}
	if len(ids) == 0 {
		return
	}
	w.Queue(`SELECT k.id, k.lo, coalesce(v.version, 0), coalesce(v.strikes, 0), l.ats, l.skeys, l.rules, l.types, l.shadows
		FROM unnest($1::text[], $2::timestamptz[]) AS k(id, lo)
		LEFT JOIN LATERAL (SELECT x.version, x.strikes FROM strike_versions x WHERE x.user_id = k.id LIMIT 1) v ON true
		LEFT JOIN LATERAL (SELECT array_agg(s.at) AS ats, array_agg(s.strike_key) AS skeys, array_agg(s.rule_id) AS rules,
				array_agg(s.type) AS types, array_agg(s.shadow) AS shadows
			FROM strikes s WHERE coalesce(v.strikes, 0) <= $3 AND s.user_id = k.id AND s.at > k.lo) l ON true`,
		ids, los, strikeLoadCap).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var id string
			var u strikeCopyRow
			if err := rows.Scan(&id, &u.lo, &u.cur, &u.n, &u.ats, &u.keys, &u.rules, &u.types, &u.shadows); err != nil {
				return fmt.Errorf("reload the strikes of the users struck: %w", err)
			}
			c, err := u.copy(id)
			if err != nil {
				return err
			}
			if c != nil {
				r.reloaded[id] = c
			}
		}
		return rows.Err()
	})
}

// settle keeps, once the batch has committed, the strikes the read loaded
// (or reloaded at its commit) as the users' copies, and drops the copies
// of the users the batch struck without reloading them, committed or not
// (their versions moved, or may have).
func (r *strikeRead) settle(recs []EventRecord, committed bool) {
	var drop []string
	for _, u := range struckUsers(recs) {
		if !committed || r.reloaded[u] == nil {
			drop = append(drop, u)
		}
	}
	if len(drop) > 0 {
		r.cache.forgetStrikes(drop)
	}
	if !committed {
		return
	}
	for id, l := range r.loaded {
		if l.stale && l.copy != nil && !slices.Contains(drop, id) && r.reloaded[id] == nil {
			r.cache.storeStrikes(id, l.copy)
		}
	}
	for id, c := range r.reloaded {
		r.cache.storeStrikes(id, c)
	}
}
