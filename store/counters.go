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

// strikeOutcomes are the outcomes that keep an action from being a
// strike: it was merged into another, failed, held back by a daily cap,
// or suppressed by an immunity. An action with no outcome yet (pending)
// or a dry run counts: the rules treat it as done, and a dry run shows
// the ladder as it would go.
var strikeOutcomes = []string{OutcomeSuperseded, OutcomeFailed, OutcomeHeld, OutcomeSuppressed}

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
}

// judging is the history read of a batch, prepared before its events are
// inserted so that it goes to the database in the same round trip (a
// pipeline: the insert, which takes the counter locks, then the read,
// whose snapshot follows them). The read finds the records it judges by
// their body hash among the events this transaction inserted, so it
// needs nothing from the insert's answer, and it skips duplicates as the
// insert did.
type judging struct {
	cands  []judged // the records with a Judge, in batch order; ord is the index
	keys   []policy.HistoryKey
	sql    string
	args   []any
	values map[int]policy.History // by ord, for the records the read judged
	// struck holds, by ord and strike key, the messages (strikeKey) whose
	// strikes the read counted, so that the batch's own earlier events add
	// only messages not counted yet.
	struck map[int]map[policy.HistoryKey]map[string]bool
}

// prepareJudging returns the history read of recs, nil when no record has
// a Judge.
func prepareJudging(recs []EventRecord) (*judging, error) {
	j := &judging{values: map[int]policy.History{}, struck: map[int]map[policy.HistoryKey]map[string]bool{}}
	for i := range recs {
		r := &recs[i]
		if r.Judge == nil || r.Event == nil {
			continue
		}
		jr := judged{i: i, ev: r.Event, at: nullTime(policyNow(r.Event))}
		if r.Judge.CountsMessages {
			if m, ok := policy.MarkOf(r.Event); ok {
				jr.mark = &m
			}
		}
		j.cands = append(j.cands, jr)
		for _, k := range r.Judge.History {
			if !slices.Contains(j.keys, k) {
				j.keys = append(j.keys, k)
			}
		}
	}
	if len(j.cands) == 0 || len(j.keys) == 0 {
		return nil, nil
	}
	if err := j.build(recs); err != nil {
		return nil, err
	}
	return j, nil
}

// judge decides the fresh records with a Judge, in the order of their
// event ids (the batch's order, as the insert numbers them): each counts
// the ones before it.
func (j *judging) judge(recs []EventRecord, results []RecordResult) error {
	var todo []judged
	for n, jr := range j.cands {
		if results[jr.i].Duplicate != "" {
			continue
		}
		if _, ok := j.values[n]; !ok {
			return fmt.Errorf("read history: no values for event %d", results[jr.i].EventID)
		}
		todo = append(todo, jr)
	}
	slices.SortFunc(todo, func(a, b judged) int { return cmp.Compare(results[a.i].EventID, results[b.i].EventID) })
	ords := make(map[int]int, len(j.cands))
	for n, jr := range j.cands {
		ords[jr.i] = n
	}
	for _, jr := range todo {
		h := j.values[ords[jr.i]]
		addBatchStrikes(h, j.struck[ords[jr.i]], recs, results, jr, j.keys)
		d := recs[jr.i].Judge.Decide(h)
		recs[jr.i].Decision = &d
	}
	return nil
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
// counts, or reads its strikes, written by the same transactions), and,
// when a channel counter is read, the channel of every young account's
// message, which is what that counter counts. A message from an older
// account only reads the channel's committed count: it adds nothing to
// it, so reading without the lock is the same as being judged just
// before the messages in flight, and busy channels do not serialise.
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
		if c := r.Event.ChannelCID(); c != "" && slices.ContainsFunc(r.Judge.History, policy.HistoryKey.IsChannel) &&
			policy.YoungAuthor(r.Event) {
			locks = append(locks, lockKey("channel", c))
		}
	}
	slices.Sort(locks)
	return slices.Compact(locks)
}

// HistoryCap bounds the rows one history value is computed from: the most
// recent HistoryCap counter marks of the user (or young accounts' marks
// of the channel) in the longest window read, and the user's most recent
// HistoryCap actions. Counts are exact up to it and stop near it, far
// above any threshold a rule needs, so that counting a flood of messages
// costs a bounded amount per message however long the flood goes on.
const HistoryCap = 1000

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
	var (
		ords   []int32
		sums   [][]byte
		users  []string
		msgs   []*string
		chans  []*string
		ats    []*time.Time
		fps    []*int64
		marked []bool
		links  []int32
		youngs []bool
	)
	for n, jr := range j.cands {
		ords = append(ords, int32(n))
		sums = append(sums, recs[jr.i].BodySHA256[:])
		ats = append(ats, jr.at)
		msgs = append(msgs, nullString(jr.ev.MessageIDOrEmpty()))
		var fp *int64
		if m := jr.mark; m != nil {
			if m.Fingerprint != 0 {
				fp = &m.Fingerprint
			}
			users = append(users, m.UserID)
			chans = append(chans, nullString(m.ChannelCID))
			links = append(links, int32(m.Links))
			youngs = append(youngs, m.Young)
		} else {
			if f := policy.Fingerprint(messageText(jr.ev)); f != 0 {
				fp = &f
			}
			users = append(users, jr.ev.SubjectUserID())
			chans = append(chans, nullString(jr.ev.ChannelCID()))
			links = append(links, 0)
			youngs = append(youngs, false)
		}
		marked = append(marked, jr.mark != nil)
		fps = append(fps, fp)
	}
	args := []any{ords, sums, users, chans, ats, fps, marked, links, youngs, msgs}
	param := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	within := func(col string, w time.Duration) string {
		p := param(w)
		return fmt.Sprintf("%s > b.at - %s::interval AND %s <= b.at + %s::interval", col, p, col, p)
	}
	var maxUser, maxChannel, maxStrike time.Duration
	var user, channel, strike []string
	for _, k := range j.keys {
		switch k.Name {
		case policy.CountUserMessages:
			user = append(user, "count(*) FILTER (WHERE "+within("m.at", k.Window)+")")
		case policy.CountUserChannelMessages:
			user = append(user, "count(*) FILTER (WHERE m.channel_cid = b.channel_cid AND "+within("m.at", k.Window)+")")
		case policy.CountUserLinks:
			user = append(user, "coalesce(sum(m.links) FILTER (WHERE "+within("m.at", k.Window)+"), 0)")
		case policy.CountUserDuplicates:
			user = append(user, "count(*) FILTER (WHERE m.fingerprint = b.fp AND "+within("m.at", k.Window)+")")
		case policy.CountUserChannels:
			user = append(user, "count(DISTINCT m.channel_cid) FILTER (WHERE "+within("m.at", k.Window)+")")
		case policy.CountChannelYoungMessages:
			channel = append(channel, "count(*) FILTER (WHERE "+within("m.at", k.Window)+")")
		case policy.StrikesCount:
			strike = append(strike, struckMessages(within("a.t", k.Window)))
		case policy.StrikesOfType:
			strike = append(strike, struckMessages("a.type = "+param(k.Arg)+" AND "+within("a.t", k.Window)))
		case policy.StrikesByRule:
			strike = append(strike, struckMessages("a.rule_id = "+param(k.Arg)+" AND "+within("a.t", k.Window)))
		default:
			return fmt.Errorf("read history: unknown history value %s", k)
		}
		switch {
		case k.IsStrike():
			maxStrike = max(maxStrike, k.Window)
		case k.IsChannel():
			maxChannel = max(maxChannel, k.Window)
		default:
			maxUser = max(maxUser, k.Window)
		}
	}
	// The statement cannot see the marks it writes (ins, below): the
	// batch's own come from bm, each counted for its own record and those
	// judged after it (a later event id).
	limit := param(HistoryCap)
	const markCols = `m.event_id, m.user_id, m.channel_cid, m.at, m.links, m.fingerprint, m.young`
	var sel, joins []string
	if len(user) > 0 {
		sel = append(sel, "u.*")
		joins = append(joins, `LEFT JOIN LATERAL (SELECT `+aliased(user, "u")+`
			FROM (SELECT * FROM (
					(SELECT `+markCols+` FROM counter_marks m
						WHERE m.user_id = b.user_id AND `+within("m.at", maxUser)+` ORDER BY m.at DESC LIMIT `+limit+`)
					UNION ALL
					SELECT `+markCols+` FROM bm m
						WHERE m.user_id = b.user_id AND m.event_id <= b.event_id AND `+within("m.at", maxUser)+`) m
				ORDER BY m.at DESC LIMIT `+limit+`) m) u ON true`)
	}
	if len(channel) > 0 {
		sel = append(sel, "c.*")
		joins = append(joins, `LEFT JOIN LATERAL (SELECT `+aliased(channel, "c")+`
			FROM (SELECT * FROM (
					(SELECT `+markCols+` FROM counter_marks m
						WHERE m.channel_cid = b.channel_cid AND m.young AND `+within("m.at", maxChannel)+` ORDER BY m.at DESC LIMIT `+limit+`)
					UNION ALL
					SELECT `+markCols+` FROM bm m
						WHERE m.channel_cid = b.channel_cid AND m.young AND m.event_id <= b.event_id AND `+within("m.at", maxChannel)+`) m
				ORDER BY m.at DESC LIMIT `+limit+`) m) c ON true`)
	}
	if len(strike) > 0 {
		sel = append(sel, "s.*")
		joins = append(joins, `LEFT JOIN LATERAL (SELECT `+aliased(strike, "s")+`
			FROM (SELECT coalesce('m:' || a.message_id, 'e:' || a.event_id) AS mk, a.type, a.rule_id,
					coalesce(e.created_at, e.received_at) AS t
				FROM actions a JOIN events e ON e.id = a.event_id
				WHERE a.target_user_id = b.user_id AND a.reverses_action_id IS NULL
					AND (b.message_id IS NULL OR a.message_id IS DISTINCT FROM b.message_id)
					AND NOT EXISTS (SELECT 1 FROM action_outcomes o WHERE o.action_id = a.id AND o.outcome = ANY(`+param(strikeOutcomes)+`))
					AND NOT EXISTS (SELECT 1 FROM action_reversals r WHERE r.action_id = a.id)
				ORDER BY a.created_at DESC LIMIT `+limit+`) a
			WHERE `+within("a.t", maxStrike)+`) s ON true`)
	}
	// b: the records to judge, found among the events this transaction
	// inserted, the first record of each body only, as the insert kept
	// only the first: by the dedup key this transaction wrote for it
	// (event_keys, xmin), a primary-key lookup. The events table itself
	// has no index on the body hash since it is partitioned (event_keys
	// deduplicates), and looking there read every partition for every
	// record: 9,148 -> 1,382 events/s in BenchmarkBatcherCounting. Each
	// is looked up in a subquery of its own (LIMIT keeps the planner from
	// flattening it into a join): the statement is prepared once and runs
	// a generic plan.
	j.sql = `WITH b AS (
			SELECT DISTINCT ON (c.sha) c.ord, c.user_id, c.channel_cid, coalesce(c.at, now()) AS at, c.fp, c.marked,
				c.links, c.young, c.message_id, e.id AS event_id
			FROM unnest($1::int[], $2::bytea[], $3::text[], $4::text[], $5::timestamptz[], $6::bigint[], $7::bool[], $8::int[], $9::bool[],
					$10::text[])
				AS c(ord, sha, user_id, channel_cid, at, fp, marked, links, young, message_id)
			JOIN LATERAL (SELECT k.event_id AS id FROM event_keys k WHERE k.body_sha256 = c.sha AND k.xmin = pg_current_xact_id()::xid
				LIMIT 1) e ON true
			ORDER BY c.sha, c.ord),
		bm AS (SELECT event_id, user_id, channel_cid, at, links, fp AS fingerprint, young FROM b WHERE marked),
		ins AS (
			INSERT INTO counter_marks (event_id, user_id, channel_cid, at, links, fingerprint, young)
			SELECT * FROM bm ON CONFLICT (event_id) DO NOTHING)
		SELECT b.ord, ` + strings.Join(sel, ", ") + ` FROM b ` + strings.Join(joins, " ") + ` ORDER BY b.ord`
	j.args = args
	return nil
}

// scan reads the values of the history read.
func (j *judging) scan(rows pgx.Rows) error {
	defer rows.Close()
	// The columns come in the order of user, channel, strike values.
	order := make([]policy.HistoryKey, 0, len(j.keys))
	for _, group := range []func(policy.HistoryKey) bool{
		func(k policy.HistoryKey) bool { return !k.IsStrike() && !k.IsChannel() },
		func(k policy.HistoryKey) bool { return k.IsChannel() },
		func(k policy.HistoryKey) bool { return k.IsStrike() },
	} {
		for _, k := range j.keys {
			if group(k) {
				order = append(order, k)
			}
		}
	}
	vals := make([]int64, len(order))
	struck := make([][]string, len(order)) // strike values: the messages struck
	dest := make([]any, 1+len(order))
	var ord int32
	dest[0] = &ord
	for i, k := range order {
		if k.IsStrike() {
			dest[i+1] = &struck[i]
		} else {
			dest[i+1] = &vals[i]
		}
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("read history: %w", err)
		}
		h := make(policy.History, len(order))
		sets := map[policy.HistoryKey]map[string]bool{}
		for i, k := range order {
			if !k.IsStrike() {
				h[k] = int(vals[i])
				continue
			}
			h[k] = len(struck[i])
			sets[k] = make(map[string]bool, len(struck[i]))
			for _, m := range struck[i] {
				sets[k][m] = true
			}
		}
		j.values[int(ord)] = h
		j.struck[int(ord)] = sets
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

func messageText(ev *policy.Event) string {
	if ev.Message == nil {
		return ""
	}
	return ev.Message.Text
}

// struckMessages is the strike value over the actions that pass filter:
// the distinct messages they acted on (an action without a message, on a
// user event, counts its event). So one message is one strike however
// many of its events (message.new, each message.updated) and actions were
// acted on; scan counts them.
func struckMessages(filter string) string {
	return "coalesce(array_agg(DISTINCT a.mk) FILTER (WHERE " + filter + "), '{}')"
}

// strikeKey is what a strike counts of an event's actions: its message, or
// the event when it has none; the same as the read's mk.
func strikeKey(ev *policy.Event, eventID int64) string {
	if m := ev.MessageIDOrEmpty(); m != "" {
		return "m:" + m
	}
	return fmt.Sprintf("e:%d", eventID)
}

// addBatchStrikes adds to h the strikes of the user's earlier events (by
// event id) in this batch: their actions are written after the whole batch is judged,
// so the query cannot see them. Each counts as it would once recorded
// with no outcome yet (pending), by the actions its decision requested,
// unless its message is the judged one or was counted already (struck:
// the messages the read counted, per key; updated here).
func addBatchStrikes(h policy.History, struck map[policy.HistoryKey]map[string]bool, recs []EventRecord, results []RecordResult,
	jr judged, keys []policy.HistoryKey) {
	user := jr.ev.SubjectUserID()
	if user == "" {
		return
	}
	now := policyNow(jr.ev)
	own := jr.ev.MessageIDOrEmpty()
	for i := range recs {
		if results[i].EventID >= results[jr.i].EventID {
			continue
		}
		d, ev := recs[i].Decision, recs[i].Event
		if results[i].Duplicate != "" || d == nil || len(d.Actions) == 0 || recs[i].Own || ev.SubjectUserID() != user ||
			ev.Type == policy.EventBeforeSend || (own != "" && ev.MessageIDOrEmpty() == own) {
			continue
		}
		mk := strikeKey(ev, results[i].EventID)
		t := policyNow(ev)
		for _, k := range keys {
			if !k.IsStrike() || (!now.IsZero() && !t.IsZero() && (t.Sub(now) > k.Window || now.Sub(t) >= k.Window)) {
				continue
			}
			hit := false
			for _, a := range d.Actions {
				switch k.Name {
				case policy.StrikesCount:
					hit = hit || isStrikeType(a.Type)
				case policy.StrikesOfType:
					hit = hit || string(a.Type) == k.Arg
				case policy.StrikesByRule:
					hit = hit || (a.RuleID == k.Arg && isStrikeType(a.Type))
				}
			}
			if hit && !struck[k][mk] {
				if struck[k] == nil {
					struck[k] = map[string]bool{}
				}
				struck[k][mk] = true
				h[k]++
			}
		}
	}
}

func isStrikeType(t policy.ActionType) bool {
	switch t {
	case policy.ActionFlag, policy.ActionMute, policy.ActionBan, policy.ActionDelete, policy.ActionWarn:
		return true
	}
	return false
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
	tag, err := s.pool.Exec(ctx, `
		DELETE FROM counter_marks WHERE event_id IN (
			SELECT event_id FROM counter_marks
			WHERE event_id <= (SELECT id FROM events WHERE received_at < now() - $1::interval
				ORDER BY received_at DESC LIMIT 1)
			ORDER BY event_id LIMIT $2)`, retention, limit)
	if err != nil {
		return 0, fmt.Errorf("expire counter marks: %w", err)
	}
	return tag.RowsAffected(), nil
}
