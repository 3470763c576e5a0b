package store

import (
	"cmp"
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"moderator/policy"
)

// lockClass is the first key of the advisory locks that serialise the
// counting of one user's (or channel's) events across transactions and
// replicas; the two-key form keeps them apart from other advisory locks.
const lockClass = 0x6d6f6463 // "modc"

// judged is a record with a Judge (a policy.Deferred).
type judged struct {
	i    int // index in the batch
	ev   *policy.Event
	at   *time.Time // nil: unknown, the database's now() stands in
	mark *policy.Mark
	// The user, channel and fingerprint its values read: its mark's, or
	// for a record not counted its own.
	user, channel string
	channelID     channelID // channel, interned once for the copies
	fp            int64
	youngAge      time.Duration // the record's young-account age
	// reads are the values its rules may read (policy.Deferred.Reads):
	// the read computes no other for it.
	reads []policy.HistoryKey
}

// readsAny reports whether jr's rules may read any of keys.
func (jr judged) readsAny(keys []policy.HistoryKey) bool {
	return slices.ContainsFunc(keys, func(k policy.HistoryKey) bool { return slices.Contains(jr.reads, k) })
}

// judging is the history read of a batch, prepared before its events are
// inserted so that it goes to the database in the same round trip (a
// pipeline: the insert, which takes the counter locks, then the read,
// whose snapshot follows them). The read finds the records it judges by
// their body hash among the events this transaction inserted, so it
// needs nothing from the insert's answer, and it skips duplicates as the
// insert did.
type judging struct {
	cands []judged // the records with a Judge, in batch order; ord is the index
	keys  []policy.HistoryKey
	// shadow: a record's rules have a shadow rule that reads strikes, so
	// the read also computes the shadow rules' strike values, over the
	// real strikes and the shadow rules' would-be ones.
	shadow bool
	order  []readColumn // the values in the order the read's columns hold them
	sql    string
	args   []any
	read   map[int]*readValues // by ord, for the records the read judged
	// copies compute the user values and the channels' young messages
	// from the replica's copies of their marks (copyRead).
	copies []*copyRead
	// strikes loads the users' strikes into the replica's copies, and
	// counts them for a batch judged ahead (strikecopy.go); nil when no
	// record reads a strike value.
	strikes *strikeRead
	recs    []EventRecord
	ats     map[int]time.Time // the records' times (b.at), by ord
	cache   *markCache
	// ahead: the records were judged from the copies before the insert
	// (prejudge), and sql is the check that replaces the read;
	// rolledBack, the check failed.
	ahead, rolledBack bool
}

// readValues is what the history read found for one record: its history,
// and, for each strike value, the messages it counted (struck), so that
// the batch's own earlier events add only messages not counted yet. The
// shadow ones are the shadow rules' (nil unless judging.shadow).
type readValues struct {
	h, shadow            policy.History
	struck, shadowStruck struckSet
}

// struckSet holds, by strike value, the messages (strikeKey) counted.
type struckSet map[policy.HistoryKey]map[string]bool

// prepareJudging returns the history read of recs, nil when no record has
// a Judge; with ahead, the records judged ahead from the replica's copies
// when they can be (see prejudge), and the check that replaces the read.
func prepareJudging(recs []EventRecord, cache *markCache, ahead bool) (*judging, error) {
	j := &judging{read: map[int]*readValues{}, ats: map[int]time.Time{}, cache: cache, recs: recs}
	history := false
	for i := range recs {
		r := &recs[i]
		if r.Judge == nil || r.Event == nil {
			continue
		}
		jr := judged{i: i, ev: r.Event, at: nullTime(policyNow(r.Event))}
		// Computed when the event was deferred, off this transaction's
		// path, unless the Judge was built by hand.
		m, counted := r.Judge.Mark, r.Judge.Counted
		if !r.Judge.Marked {
			m, counted = policy.MarkToJudge(r.Event, r.Judge.CountsMessages)
		}
		if counted {
			jr.mark = &m
		}
		jr.user, jr.channel, jr.fp, jr.youngAge = m.UserID, m.ChannelCID, m.Fingerprint, r.Judge.YoungAccount
		jr.channelID = channelOf(m.ChannelCID)
		jr.reads = r.Judge.Reads
		if jr.reads == nil {
			jr.reads = r.Judge.History
		}
		j.cands = append(j.cands, jr)
		j.shadow = j.shadow || r.Judge.ShadowStrikes
		history = history || len(r.Judge.History) > 0
		for _, k := range jr.reads {
			if !slices.Contains(j.keys, k) {
				j.keys = append(j.keys, k)
			}
		}
		j.keepCopies(jr, r.Judge.History)
	}
	// With no value to read, the read still writes the batch's marks.
	if !history {
		return nil, nil
	}
	if ahead && j.prejudge(recs) {
		return j, nil
	}
	if err := j.build(recs); err != nil {
		return nil, err
	}
	return j, nil
}

// keepCopies adds to j.keys the values of history counted from a copy
// that holds jr's mark, although jr's rules do not read them (a gate
// closed them: an older account's message under user.young && …): the
// batch then reads that copy's version and keeps the copy current with
// the mark it writes. Otherwise the mark would bump the key's version
// (migrations 0025, 0026) behind the copy's back, and the key's next
// reader would load its marks again: 432 of the 994 loads of a starter
// pack's closed loop of 30,000 webhooks, the channels' young marks of
// accounts one or two days old (2026-12-06).
func (j *judging) keepCopies(jr judged, history []policy.HistoryKey) {
	if jr.mark == nil {
		return
	}
	for _, k := range history {
		kind := copyKindOf(k)
		if kind == nil || slices.Contains(j.keys, k) {
			continue
		}
		if _, _, marked := kind.of(jr); marked {
			j.keys = append(j.keys, k)
		}
	}
}

// judge decides the fresh records with a Judge, in the order of their
// event ids (the batch's order, as the insert numbers them): each counts
// the ones before it. A record whose rules have a shadow rule reading
// strikes is decided with the shadow rules' history too.
func (j *judging) judge(recs []EventRecord, results []RecordResult) error {
	var todo []judged
	for n, jr := range j.cands {
		if results[jr.i].Duplicate != "" {
			continue
		}
		if _, ok := j.read[n]; !ok {
			return fmt.Errorf("read history: no values for event %d", results[jr.i].EventID)
		}
		todo = append(todo, jr)
	}
	slices.SortFunc(todo, func(a, b judged) int { return cmp.Compare(results[a.i].EventID, results[b.i].EventID) })
	ords := make(map[int]int, len(j.cands))
	for n, jr := range j.cands {
		ords[jr.i] = n
	}
	var batch []string
	if j.strikes != nil {
		batch = batchStrikeKeys(recs) // sorted
	}
	for _, jr := range todo {
		v := j.read[ords[jr.i]]
		if j.strikes != nil {
			j.strikes.readValues(v, jr, j.ats[ords[jr.i]], batch)
		}
		for _, c := range j.copies {
			if err := c.values(v.h, j.ats[ords[jr.i]], jr); err != nil {
				return err
			}
			for _, k := range c.keys {
				if v.shadow != nil {
					v.shadow[k] = v.h[k]
				}
			}
		}
		addBatchStrikes(v.h, v.struck, recs, results, jr, j.keys, false)
		var shadow policy.History
		if recs[jr.i].Judge.ShadowStrikes && v.shadow != nil {
			shadow = v.shadow
			addBatchStrikes(shadow, v.shadowStruck, recs, results, jr, j.keys, true)
		}
		d := recs[jr.i].Judge.Decide(v.h, shadow)
		recs[jr.i].Decision = &d
	}
	return nil
}

// queueReload queues on w, with the batch's COMMIT, the read of the
// strikes of the users it struck (strikeRead.queueReload). A nil j, or
// one whose records read no strikes, queues nothing.
func (j *judging) queueReload(w *Writes) {
	if j != nil && j.strikes != nil {
		j.strikes.queueReload(w, j.recs, j.cands)
	}
}

// settle keeps the marks the batch leaves in the replica's copies once
// its transaction has committed. Otherwise it drops the copies it wrote
// marks to, unless the transaction is known to have rolled back (its
// check failed: see prejudge), which left them as they were. A nil j
// does nothing.
func (j *judging) settle(committed bool) {
	if j == nil {
		return
	}
	if j.strikes != nil {
		j.strikes.settle(j.recs, committed)
	}
	for _, c := range j.copies {
		switch {
		case committed:
			c.commit()
		case j.rolledBack:
			c.release()
		default:
			c.abandon()
		}
	}
}

// policyNow is the rules' "now" of ev (its time, or its message's).
func policyNow(ev *policy.Event) time.Time {
	t := ev.CreatedAt.Time
	if t.IsZero() && ev.Message != nil {
		t = ev.Message.CreatedAt.Time
	}
	return t
}

// lockKey is the advisory lock key (second half) of a user or channel: a
// hash, so two ids may share one, which only makes them wait for each
// other.
func lockKey(kind, id string) int32 {
	h := fnv.New32a()
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write([]byte(id))
	return int32(h.Sum32())
}

// judgeLocks returns the advisory lock keys of the records to judge,
// sorted: the user of every one (each writes a mark and reads its user's
// counts, or reads its strikes, written by the same transactions), and
// the channel of every message that changes a channel counter the rule
// set reads (locksChannel). A record that changes no channel counter
// (an edit; a message of an account older than the longest young age
// when only the young-message counter is read) only reads the channel's
// committed counts: reading without the lock is the same as being judged
// just before the messages in flight, and busy channels do not serialise
// for nothing.
//
// RecordEvents takes them in the statement that inserts the events,
// before any row is written (duplicates' keys included: they are not
// known yet), so that a transaction holds every lock before it waits for
// anything else, and cannot deadlock; the history read, a later
// statement, then sees whatever the previous holders committed.
func judgeLocks(recs []EventRecord) []int32 {
	var locks []int32
	for _, r := range recs {
		if r.Judge == nil || r.Event == nil {
			continue
		}
		if u := r.Event.SubjectUserID(); u != "" {
			locks = append(locks, lockKey("user", u))
		}
		if locksChannel(r) {
			locks = append(locks, lockKey("channel", r.Event.ChannelCID()))
		}
	}
	slices.Sort(locks)
	return slices.Compact(locks)
}

// locksChannel reports whether judging rec takes its channel's lock:
// counting it changes a channel counter that its rule set reads. With
// counts.channel_users that is every new message in the channel (its
// author may be new there), so such a rule serialises a channel's
// messages; with counts.channel_young_messages alone, only young
// accounts' messages.
//
// Young under the longest age a folder may set (policy.MaxYoungAccount),
// not the folder's own: such a message writes a young mark, which the
// channel's copy holds and which bumps the channel's version (migration
// 0026), whether or not the folder's age counts it. Taking the lock (and
// so being routed by the channel, routeKeysOf) keeps the copy current:
// a message of a two-day-old account under the default day's age took
// neither, wrote its mark beside a young account's batch in the other
// flusher, and left that batch's copy a version behind, to be loaded
// again for the channel's next young message: 638 of the 1,164 loads of
// a starter-pack closed loop of 30,000 webhooks (2026-12-06). The
// version's row lock serialised those writers in Postgres already.
func locksChannel(rec EventRecord) bool {
	return policy.ChangesChannelCounts(rec.Event, rec.Judge.History, policy.MaxYoungAccount)
}

// HistoryCap bounds the rows one history value is computed from: the most
// recent HistoryCap counter marks of the user (or of the channel, or of
// the young accounts in the channel) in the longest window read, and the
// user's most recent HistoryCap strikes of each kind (all of them, an
// action type's, a rule's) in the longest window read of that kind (and
// as many shadow ones for the shadow rules). Counts are exact up to it
// and stop near it, far above any threshold a rule needs, so that
// counting a flood of messages costs a bounded amount per message however
// long the flood goes on.
const HistoryCap = 1000

// batchArgs are the columns of b, the records to judge (see build), one
// array per column; young_us is each record's young-account age in
// microseconds.
func (j *judging) batchArgs(recs []EventRecord) []any {
	size := len(j.cands)
	var (
		ords     = make([]int32, 0, size)
		sums     = make([][]byte, 0, size)
		users    = make([]string, 0, size)
		msgs     = make([]*string, 0, size)
		chans    = make([]*string, 0, size)
		ats      = make([]*time.Time, 0, size)
		fps      = make([]*int64, 0, size)
		marked   = make([]bool, 0, size)
		links    = make([]int32, 0, size)
		youngs   = make([]bool, 0, size)
		mentions = make([]int32, 0, size)
		created  = make([]*time.Time, 0, size)
		youngUS  = make([]int64, 0, size)
	)
	for n, jr := range j.cands {
		ords = append(ords, int32(n))
		sums = append(sums, recs[jr.i].BodySHA256[:])
		ats = append(ats, jr.at)
		msgs = append(msgs, nullString(jr.ev.MessageIDOrEmpty()))
		youngUS = append(youngUS, recs[jr.i].Judge.YoungAccount.Microseconds())
		marked = append(marked, jr.mark != nil)
		var fp *int64
		if jr.fp != 0 {
			fp = &jr.fp
		}
		fps = append(fps, fp)
		users = append(users, jr.user)
		chans = append(chans, nullString(jr.channel))
		var m policy.Mark
		if jr.mark != nil {
			m = *jr.mark
		}
		links = append(links, int32(m.Links))
		mentions = append(mentions, int32(m.Mentions))
		created = append(created, nullTime(m.AccountCreated))
		// young marks the messages of every account that may be young
		// under any young-account age (the partial index's rows); the
		// read then compares account_created with the record's own age.
		youngs = append(youngs, m.YoungUnder(policy.MaxYoungAccount))
	}
	return []any{ords, sums, users, chans, ats, fps, marked, links, youngs, msgs, mentions, created, youngUS}
}

// historyQuery gathers the parts of the history read: its parameters,
// its selected columns (in the order the keys of order are read) and its
// lateral joins.
type historyQuery struct {
	args  []any
	order []readColumn
	sel   []string
	joins []string
}

// readColumn is one value column of the history read.
type readColumn struct {
	key    policy.HistoryKey
	shadow bool // the shadow rules' strike value
}

func (q *historyQuery) param(v any) string {
	q.args = append(q.args, v)
	return fmt.Sprintf("$%d", len(q.args))
}

// within is the condition that col is within w of the record's time, on
// either side.
func (q *historyQuery) within(col string, w time.Duration) string {
	p := q.param(w)
	return fmt.Sprintf("%s > b.at - %s::interval AND %s <= b.at + %s::interval", col, p, col, p)
}

// channelUserCols are the columns counts.channel_users reads: all that
// counter_marks_channel_idx holds, so that its read is an index-only
// scan that stops at HistoryCap rows. (A plan that fetched every row of
// the window from the table and sorted them read 18,000 rows for the
// 1,000 it keeps in a channel with 150 messages a second: 92 ms against
// 0.5 ms.)
const channelUserCols = `m.user_id, m.at`

// marks adds a lateral join (alias) that computes cols over the most
// recent HistoryCap marks that pass where within window: those committed
// and, of this batch, those of the record and the records before it,
// each with the columns rowCols. The statement cannot see the marks it
// writes (ins, in build): the batch's own come from bm, each counted for
// its own record and those judged after it (a later event id).
func (q *historyQuery) marks(alias string, keys []policy.HistoryKey, cols []string, rowCols, where string, window time.Duration) {
	if len(cols) == 0 {
		return
	}
	limit := q.param(HistoryCap)
	in := where + " AND " + q.within("m.at", window)
	for _, k := range keys {
		q.order = append(q.order, readColumn{key: k})
	}
	q.sel = append(q.sel, alias+".*")
	q.joins = append(q.joins, `LEFT JOIN LATERAL (SELECT `+aliased(cols, alias)+`
			FROM (SELECT * FROM (
					(SELECT `+rowCols+` FROM counter_marks m WHERE `+in+` ORDER BY m.at DESC LIMIT `+limit+`)
					UNION ALL
					SELECT `+rowCols+` FROM bm m WHERE `+in+` AND m.event_id <= b.event_id) m
				ORDER BY m.at DESC LIMIT `+limit+`) m) `+alias+` ON true`)
}

// strikeScan is the strike values of the read that count one kind of
// strike row (policy.HistoryKey without its window: all strikes, those of
// an action type, or those of a rule), read by one index range scan of
// the user's rows of that kind in the longest of their windows.
type strikeScan struct {
	name, arg string
	keys      []policy.HistoryKey
	window    time.Duration // the longest
}

// strikeScans groups the strike values of keys by the rows they count, in
// the order first read.
func strikeScans(keys []policy.HistoryKey) []*strikeScan {
	var scans []*strikeScan
	for _, k := range keys {
		if !k.IsStrike() {
			continue
		}
		i := slices.IndexFunc(scans, func(s *strikeScan) bool { return s.name == k.Name && s.arg == k.Arg })
		if i < 0 {
			scans = append(scans, &strikeScan{name: k.Name, arg: k.Arg})
			i = len(scans) - 1
		}
		scans[i].keys = append(scans[i].keys, k)
		scans[i].window = max(scans[i].window, k.Window)
	}
	return scans
}

// needs is the condition that the record (b) may read sc's values (see
// judged.reads), "" when every record may: a record that may not reads
// no row (the condition, on b alone, is the scan's one-time filter), and
// its values are 0.
func (q *historyQuery) needs(sc *strikeScan, cands []judged) string {
	need := make([]bool, len(cands))
	all := true
	for i, jr := range cands {
		need[i] = jr.readsAny(sc.keys)
		all = all && need[i]
	}
	if all {
		return ""
	}
	return " AND (" + q.param(need) + "::bool[])[b.ord + 1]"
}

// rowsOf is the condition on a strike row (s) that sc counts: its rule
// or its action type, each the head of an index after the user
// (migration 0027), or none.
func (q *historyQuery) rowsOf(sc *strikeScan) string {
	switch sc.name {
	case policy.StrikesOfType:
		return " AND s.type = " + q.param(sc.arg)
	case policy.StrikesByRule:
		return " AND s.rule_id = " + q.param(sc.arg)
	}
	return ""
}

// strikes adds a lateral join per strikeScan that computes its values
// over the user's most recent HistoryCap rows of its kind in its longest
// window, leaving out the judged message's own (an edit is not judged
// against the strikes of the message it edits). Each kind is capped on
// its own, so a flood of one rule's strikes (a spammer's thousand
// deletes) never crowds another rule's out of a ladder's count, and each
// scan reads only the rows it counts. Each value is two columns
// (struckMessages): its count, and which of batchKeys, the strike keys of
// the batch's own messages, it counted. With shadow, each value has a
// second pair, the shadow rules', over the real strikes and the shadow
// rules' would-be ones, read apart so that they never crowd real ones out
// of the cap.
func (q *historyQuery) strikes(keys []policy.HistoryKey, shadow bool, batchKeys []string, cands []judged, copies *strikeRead) {
	scans := strikeScans(keys)
	if len(scans) == 0 {
		return
	}
	limit := q.param(HistoryCap)
	batch := q.param(batchKeys) + "::text[]"
	skip := ""
	if copies != nil {
		skip = copies.skipsScans(q)
	}
	for n, sc := range scans {
		of := q.needs(sc, cands) + q.rowsOf(sc) + skip
		within := q.within("s.at", sc.window)
		rows := func(shadow string) string {
			return `(SELECT s.strike_key AS mk, s.at AS t, s.shadow FROM strikes s
				WHERE s.user_id = b.user_id AND s.shadow = ` + shadow + of + ` AND ` + within + `
					AND (b.message_id IS NULL OR s.strike_key <> 'm:' || b.message_id)
				ORDER BY s.at DESC LIMIT ` + limit + `)`
		}
		from := rows("false")
		var cols []string
		value := func(k policy.HistoryKey, shadowCol bool, filter string) {
			q.order = append(q.order, readColumn{key: k, shadow: shadowCol})
			count, ofBatch := struckMessages(filter, batch)
			cols = append(cols, count, ofBatch)
		}
		for _, k := range sc.keys {
			real := q.within("a.t", k.Window)
			if shadow {
				real = "NOT a.shadow AND " + real
			}
			value(k, false, real)
		}
		if shadow {
			from += " UNION ALL " + rows("true")
			for _, k := range sc.keys {
				value(k, true, q.within("a.t", k.Window))
			}
		}
		alias := fmt.Sprintf("s%d", n)
		q.sel = append(q.sel, alias+".*")
		q.joins = append(q.joins, `LEFT JOIN LATERAL (SELECT `+aliased(cols, alias+"_")+` FROM (`+from+`) a) `+alias+` ON true`)
	}
}

// batchStrikeKeys is the strike keys the batch's records may add
// (addBatchStrikes), judged or decided at once: their messages'. A record
// without a message strikes its new event, which no committed strike can
// hold.
func batchStrikeKeys(recs []EventRecord) []string {
	keys := make([]string, 0, len(recs))
	for _, r := range recs {
		if r.Event == nil {
			continue
		}
		if m := r.Event.MessageIDOrEmpty(); m != "" {
			keys = append(keys, "m:"+m)
		}
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// markGroup is the values of one lateral join over counter marks.
type markGroup struct {
	keys   []policy.HistoryKey
	cols   []string
	window time.Duration // the longest
}

func (g *markGroup) add(k policy.HistoryKey, col string) {
	g.keys = append(g.keys, k)
	g.cols = append(g.cols, col)
	g.window = max(g.window, k.Window)
}

// build writes the history read: one statement that writes the counter
// marks of the batch's new messages and reads every key for every record
// it judges. A record counts the marks committed by other transactions
// and, of its own batch, those of the records before it and its own: the
// order in which they are judged, as if one at a time.
//
// A value covers the rows whose time is within the window of the
// record's time, on either side: a message delivered a little out of
// order still counts the newer one recorded before it.
func (j *judging) build(recs []EventRecord) error {
	q := &historyQuery{args: j.batchArgs(recs)}
	var user, young, chanUsers markGroup
	for _, k := range j.keys {
		switch copyKindOf(k) {
		case userCopies:
			user.add(k, "") // counted from the marks in Go (copyRead)
			continue
		case youngCopies:
			young.add(k, "") // counted from the marks in Go (copyRead)
			continue
		}
		switch k.Name {
		case policy.CountChannelUsers:
			chanUsers.add(k, "count(DISTINCT m.user_id) FILTER (WHERE "+q.within("m.at", k.Window)+")")
		case policy.StrikesCount, policy.StrikesOfType, policy.StrikesByRule:
			// read by strikes, below
		default:
			return fmt.Errorf("read history: unknown history value %s", k)
		}
	}
	// The user values, and the young accounts' messages in a channel
	// (those younger than the record's age when posted; m.young, younger
	// than the longest age, is what counter_marks_channel_young_idx holds),
	// are counted from the replica's copies of their marks.
	var ctes, joins string
	sel := []string{"b.at"}
	for _, g := range []struct {
		kind *copyKind
		keys []policy.HistoryKey
	}{{userCopies, user.keys}, {youngCopies, young.keys}} {
		if len(g.keys) == 0 {
			continue
		}
		c := newCopyRead(g.kind, j.cache, g.keys, j.cands)
		j.copies = append(j.copies, c)
		ctes += c.ctes(q)
		sel = append(sel, c.columns())
		joins += c.join()
	}
	if j.strikes = newStrikeRead(j.cache, j.keys, j.cands); j.strikes != nil {
		ctes += j.strikes.ctes(q)
		sel = append(sel, j.strikes.columns())
		joins += j.strikes.join()
	}
	q.marks("cu", chanUsers.keys, chanUsers.cols, channelUserCols, "m.channel_cid = b.channel_cid", chanUsers.window)
	q.strikes(j.keys, j.shadow, batchStrikeKeys(recs), j.cands, j.strikes)
	sel = append(sel, q.sel...)
	j.sql = batchCTE + ctes + ` SELECT b.ord, ` + strings.Join(sel, ", ") + ` FROM b` + joins + ` ` + strings.Join(q.joins, " ") + ` ORDER BY b.ord`
	j.args = q.args
	j.order = q.order
	return nil
}

// batchCTE is the start of the history read: b, the records to judge,
// found among the events this transaction inserted, the first record of
// each body only, as the insert kept only the first: by the dedup key
// this transaction wrote for it (event_keys, xmin), a primary-key lookup.
// The events table itself has no index on the body hash since it is
// partitioned (event_keys deduplicates), and looking there read every
// partition for every record: 9,148 -> 1,382 events/s in
// BenchmarkBatcherCounting. Each is looked up in a subquery of its own
// (LIMIT keeps the planner from flattening it into a join): the
// statement is prepared once and runs a generic plan. bm are the marks
// of the batch's counted records, which ins writes.
const batchCTE = `WITH b AS (
			SELECT DISTINCT ON (c.sha) c.ord, c.user_id, c.channel_cid, coalesce(c.at, now()) AS at, c.fp, c.marked,
				c.links, c.young, c.message_id, c.mentions, c.account_created, c.young_us, e.id AS event_id
			FROM unnest($1::int[], $2::bytea[], $3::text[], $4::text[], $5::timestamptz[], $6::bigint[], $7::bool[], $8::int[], $9::bool[],
					$10::text[], $11::int[], $12::timestamptz[], $13::bigint[])
				AS c(ord, sha, user_id, channel_cid, at, fp, marked, links, young, message_id, mentions, account_created, young_us)
			JOIN LATERAL (SELECT k.event_id AS id FROM event_keys k WHERE k.body_sha256 = c.sha AND k.xmin = pg_current_xact_id()::xid
				LIMIT 1) e ON true
			ORDER BY c.sha, c.ord),
		bm AS (SELECT event_id, user_id, channel_cid, at, links, fp AS fingerprint, young, mentions, account_created FROM b WHERE marked),
		ins AS (
			INSERT INTO counter_marks (event_id, user_id, channel_cid, at, links, fingerprint, young, mentions, account_created)
			SELECT * FROM bm ON CONFLICT (event_id) DO NOTHING)
		`

// scan reads the values of the history read. The shadow history has the
// counter values of the other and its own strike values.
func (j *judging) scan(rows pgx.Rows) error {
	defer rows.Close()
	order := j.order
	vals := make([]int64, len(order))
	struck := make([][]string, len(order)) // strike values: the batch's messages among those struck
	var (
		ord   int32
		at    time.Time
		crows = make([]copyRow, len(j.copies))
	)
	dest := []any{&ord, &at}
	for i := range crows {
		dest = append(dest, crows[i].dest()...)
	}
	var srow strikeCopyRow
	if j.strikes != nil {
		dest = append(dest, srow.dest()...)
	}
	for i, c := range order {
		dest = append(dest, &vals[i])
		if c.key.IsStrike() {
			dest = append(dest, &struck[i])
		}
	}
	for rows.Next() {
		if err := scanRow(rows, dest...); err != nil {
			return fmt.Errorf("read history: %w", err)
		}
		v := &readValues{h: make(policy.History, len(j.keys)), struck: struckSet{}}
		if j.shadow {
			v.shadow, v.shadowStruck = make(policy.History, len(j.keys)), struckSet{}
		}
		for i, c := range order {
			if !c.key.IsStrike() {
				v.h[c.key] = int(vals[i])
				if v.shadow != nil {
					v.shadow[c.key] = int(vals[i])
				}
				continue
			}
			h, set := v.h, v.struck
			if c.shadow {
				h, set = v.shadow, v.shadowStruck
			}
			h[c.key] = int(vals[i])
			if len(struck[i]) > 0 {
				set[c.key] = make(map[string]bool, len(struck[i]))
				for _, m := range struck[i] {
					set[c.key][m] = true
				}
			}
		}
		j.read[int(ord)] = v
		j.ats[int(ord)] = at
		for i, c := range j.copies {
			// The key's loads join its first record in b, which may be
			// one that does not read it (keyOf): the kind's own key.
			id, _, _ := c.kind.of(j.cands[ord])
			if err := c.take(id, &crows[i]); err != nil {
				return err
			}
		}
		if j.strikes != nil {
			if err := j.strikes.take(j.cands[ord].user, &srow); err != nil {
				return err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read history: %w", err)
	}
	return nil
}

func aliased(cols []string, prefix string) string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = fmt.Sprintf("%s AS %s%d", c, prefix, i)
	}
	return strings.Join(out, ", ")
}

// CounterRetention is how long counter marks are kept after their event
// was recorded: the longest window rules may read, plus a day.
const CounterRetention = policy.MaxHistoryWindow + 24*time.Hour

// ExpireCounterMarks deletes counter marks of events recorded more than
// retention ago, at most limit of them (oldest first), and returns how
// many it deleted; call it until it returns less than limit. It finds them
// by event id (ids grow with the time of recording), so it needs no index
// of its own.
func (s *Store) ExpireCounterMarks(ctx context.Context, retention time.Duration, limit int) (int64, error) {
	return s.expireByEvent(ctx, "counter_marks", "event_id", retention, limit)
}

// expireByEvent deletes the rows of table (a working table with an
// event_id column, whose primary key is key) of events recorded more than
// retention ago, at most limit of them, oldest first. table and key are
// constants of the callers, never input.
func (s *Store) expireByEvent(ctx context.Context, table, key string, retention time.Duration, limit int) (int64, error) {
	tag, err := s.pool.Exec(ctx, `
		DELETE FROM `+table+` WHERE `+key+` IN (
			SELECT `+key+` FROM `+table+`
			WHERE event_id <= (SELECT id FROM events WHERE received_at < now() - $1::interval
				ORDER BY received_at DESC LIMIT 1)
			ORDER BY event_id LIMIT $2)`, retention, limit)
	if err != nil {
		return 0, fmt.Errorf("expire %s: %w", table, err)
	}
	return tag.RowsAffected(), nil
}
