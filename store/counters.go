package store

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"moderator/policy"
)

// Judge decides an event inside the transaction that records it, once the
// history its rules read is known. The webhook hands one over instead of
// a Decision when the rule set in force reads counters or strikes: the
// counts then include exactly the events committed before this one (and
// the event itself), so a retry, a replay or a crash never counts twice.
type Judge struct {
	// RuleSetVersion is recorded with the event, as for a Decision.
	RuleSetVersion string
	// History lists the values Decide needs (policy.RuleSet.History).
	History []policy.HistoryKey
	// CountsMessages: the event, when it is a new message, is counted
	// (policy.RuleSet.CountsMessages).
	CountsMessages bool
	// Decide evaluates the event with its history. It runs inside the
	// transaction, so it must be quick and pure; it may run again if the
	// transaction is retried.
	Decide func(h policy.History) policy.Decision
}

// strikeOutcomes are the outcomes that keep an action from being a
// strike: it was merged into another, failed, held back by a daily cap,
// or suppressed by an immunity. An action with no outcome yet (pending)
// or a dry run counts: the rules treat it as done, and a dry run shows
// the ladder as it would go.
var strikeOutcomes = []string{OutcomeSuperseded, OutcomeFailed, OutcomeHeld, "suppressed"}

// lockClass is the first key of the advisory locks that serialise the
// counting of one user's (or channel's) events across transactions and
// replicas; the two-key form keeps them apart from other advisory locks.
const lockClass = 0x6d6f6463 // "modc"

// judged is a record to judge in this transaction.
type judged struct {
	i    int // index in the batch
	ev   *policy.Event
	at   *time.Time // nil: unknown, the database's now() stands in
	mark *policy.Mark
}

// judgeRecords computes the history of the fresh records that carry a
// Judge, in batch order, and sets their Decision. It takes the advisory
// locks of their users (and of the channels young accounts post in, when
// a channel counter is read) in sorted order, so that concurrent batches
// on any replica serialise per key without deadlocking, and each sees the
// rows the others committed; it writes their counter marks and reads
// every value in two statements.
func judgeRecords(ctx context.Context, tx pgx.Tx, recs []EventRecord, results []RecordResult) error {
	var todo []judged
	var keys []policy.HistoryKey
	channels := false
	for i := range recs {
		j := recs[i].Judge
		if j == nil || results[i].Duplicate != "" {
			continue
		}
		jr := judged{i: i, ev: recs[i].Event, at: nullTime(policyNow(recs[i].Event))}
		if j.CountsMessages {
			if m, ok := policy.MarkOf(recs[i].Event); ok {
				jr.mark = &m
			}
		}
		todo = append(todo, jr)
		for _, k := range j.History {
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
			channels = channels || k.IsChannel()
		}
	}
	if len(todo) == 0 {
		return nil
	}
	if err := lockAndMark(ctx, tx, results, todo, historyLocks(todo, channels)); err != nil {
		return err
	}
	hist, err := readHistory(ctx, tx, results, todo, keys)
	if err != nil {
		return err
	}
	for n, jr := range todo {
		addBatchStrikes(hist[n], recs, results, jr, keys)
		d := recs[jr.i].Judge.Decide(hist[n])
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

func lockKey(kind, id string) int32 {
	h := fnv.New32a()
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write([]byte(id))
	return int32(h.Sum32())
}

// historyLocks returns the transaction's advisory lock keys, sorted: the
// user of every judged record (each writes a mark and reads its user's
// counts, or reads its strikes, written by the same transactions), and,
// when a channel counter is read, the channel of every young account's
// message, which is what that counter counts. A message from an older
// account only reads the channel's committed count: it adds nothing to
// it, so reading without the lock is the same as being judged just
// before the messages in flight, and busy channels do not serialise.
func historyLocks(todo []judged, channels bool) []int32 {
	var locks []int32
	for _, jr := range todo {
		if u := jr.ev.SubjectUserID(); u != "" {
			locks = append(locks, lockKey("user", u))
		}
		if c := jr.ev.ChannelCID(); channels && c != "" && jr.mark != nil && jr.mark.Young {
			locks = append(locks, lockKey("channel", c))
		}
	}
	slices.Sort(locks)
	return slices.Compact(locks)
}

// lockAndMark takes the advisory locks, in the order given, and writes
// the counter marks of the judged new messages, in one statement: the
// locks are an InitPlan, taken before the first row is written. The
// history read that follows is a new statement, whose snapshot includes
// whatever the transactions that held the locks committed.
func lockAndMark(ctx context.Context, tx pgx.Tx, results []RecordResult, todo []judged, locks []int32) error {
	var (
		ids   []int64
		users []string
		chans []*string
		ats   []*time.Time
		links []int32
		fps   []*int64
		young []bool
	)
	for _, jr := range todo {
		m := jr.mark
		if m == nil {
			continue
		}
		ids = append(ids, results[jr.i].EventID)
		users = append(users, m.UserID)
		chans = append(chans, nullString(m.ChannelCID))
		ats = append(ats, jr.at)
		links = append(links, int32(m.Links))
		var fp *int64
		if m.Fingerprint != 0 {
			fp = &m.Fingerprint
		}
		fps = append(fps, fp)
		young = append(young, m.Young)
	}
	if len(ids) == 0 {
		if len(locks) == 0 {
			return nil
		}
		// unnest yields the keys in array order, so they are taken sorted.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, k) FROM unnest($2::int[]) AS k`, lockClass, locks); err != nil {
			return fmt.Errorf("lock counters: %w", err)
		}
		return nil
	}
	_, err := tx.Exec(ctx, `
		INSERT INTO counter_marks (event_id, user_id, channel_cid, at, links, fingerprint, young)
		SELECT e, u, c, coalesce(a, now()), l, f, y
		FROM unnest($1::bigint[], $2::text[], $3::text[], $4::timestamptz[], $5::int[], $6::bigint[], $7::bool[])
			AS r(e, u, c, a, l, f, y)
		WHERE (SELECT count(pg_advisory_xact_lock($8, k)) FROM unnest($9::int[]) AS k) >= 0
		ON CONFLICT (event_id) DO NOTHING`,
		ids, users, chans, ats, links, fps, young, lockClass, locks)
	if err != nil {
		return fmt.Errorf("lock counters and insert counter marks: %w", err)
	}
	return nil
}

// readHistory reads every key for every judged record in one statement.
// A record counts the marks committed by other transactions and, of its
// own batch, those of the records before it and its own: the order in
// which they are judged, as if one at a time.
//
// A value covers the rows whose time is within the window of the
// record's time, on either side: a message delivered a little out of
// order still counts the newer one recorded before it.
func readHistory(ctx context.Context, tx pgx.Tx, results []RecordResult, todo []judged, keys []policy.HistoryKey) ([]policy.History, error) {
	out := make([]policy.History, len(todo))
	for n := range out {
		out[n] = make(policy.History, len(keys))
	}
	if len(keys) == 0 {
		return out, nil
	}
	var (
		ords   []int32
		users  []string
		chans  []*string
		ats    []*time.Time
		fps    []*int64
		bmIDs  []int64
		bmOrds []int32
	)
	for n, jr := range todo {
		ords = append(ords, int32(n))
		users = append(users, jr.ev.SubjectUserID())
		chans = append(chans, nullString(jr.ev.ChannelCID()))
		ats = append(ats, jr.at)
		var fp *int64
		if jr.mark != nil {
			if jr.mark.Fingerprint != 0 {
				fp = &jr.mark.Fingerprint
			}
			bmIDs = append(bmIDs, results[jr.i].EventID)
			bmOrds = append(bmOrds, int32(n))
		} else if f := policy.Fingerprint(messageText(jr.ev)); f != 0 {
			fp = &f
		}
		fps = append(fps, fp)
	}
	args := []any{ords, users, chans, ats, fps}
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
	for _, k := range keys {
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
			strike = append(strike, "count(DISTINCT a.event_id) FILTER (WHERE "+within("a.t", k.Window)+")")
		case policy.StrikesOfType:
			strike = append(strike, "count(DISTINCT a.event_id) FILTER (WHERE a.type = "+param(k.Arg)+" AND "+within("a.t", k.Window)+")")
		case policy.StrikesByRule:
			strike = append(strike, "count(DISTINCT a.event_id) FILTER (WHERE a.rule_id = "+param(k.Arg)+" AND "+within("a.t", k.Window)+")")
		default:
			return nil, fmt.Errorf("read history: unknown history value %s", k)
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
	// A mark of this batch counts only for the records judged after it.
	var batchOrder string
	if len(user) > 0 || len(channel) > 0 {
		batchOrder = fmt.Sprintf(`coalesce((%s::int[])[array_position(%s::bigint[], m.event_id)], -1) <= b.ord`, param(bmOrds), param(bmIDs))
	}
	var sel, joins []string
	if len(user) > 0 {
		sel = append(sel, "u.*")
		joins = append(joins, `LEFT JOIN LATERAL (SELECT `+aliased(user, "u")+`
			FROM counter_marks m
			WHERE m.user_id = b.user_id AND `+within("m.at", maxUser)+` AND `+batchOrder+`) u ON true`)
	}
	if len(channel) > 0 {
		sel = append(sel, "c.*")
		joins = append(joins, `LEFT JOIN LATERAL (SELECT `+aliased(channel, "c")+`
			FROM counter_marks m
			WHERE m.channel_cid = b.channel_cid AND m.young AND `+within("m.at", maxChannel)+` AND `+batchOrder+`) c ON true`)
	}
	if len(strike) > 0 {
		sel = append(sel, "s.*")
		joins = append(joins, `LEFT JOIN LATERAL (SELECT `+aliased(strike, "s")+`
			FROM (SELECT a.event_id, a.type, a.rule_id, coalesce(e.created_at, e.received_at) AS t
				FROM actions a JOIN events e ON e.id = a.event_id
				WHERE a.target_user_id = b.user_id AND a.reverses_action_id IS NULL
					AND NOT EXISTS (SELECT 1 FROM action_outcomes o WHERE o.action_id = a.id AND o.outcome = ANY(`+param(strikeOutcomes)+`))
					AND NOT EXISTS (SELECT 1 FROM action_reversals r WHERE r.action_id = a.id)) a
			WHERE `+within("a.t", maxStrike)+`) s ON true`)
	}
	sql := `WITH b AS (
			SELECT ord, user_id, channel_cid, coalesce(at, now()) AS at, fp
			FROM unnest($1::int[], $2::text[], $3::text[], $4::timestamptz[], $5::bigint[]) AS b(ord, user_id, channel_cid, at, fp))
		SELECT b.ord, ` + strings.Join(sel, ", ") + ` FROM b ` + strings.Join(joins, " ") + ` ORDER BY b.ord`
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	defer rows.Close()
	// The columns come in the order of user, channel, strike values.
	order := make([]policy.HistoryKey, 0, len(keys))
	for _, group := range []func(policy.HistoryKey) bool{
		func(k policy.HistoryKey) bool { return !k.IsStrike() && !k.IsChannel() },
		func(k policy.HistoryKey) bool { return k.IsChannel() },
		func(k policy.HistoryKey) bool { return k.IsStrike() },
	} {
		for _, k := range keys {
			if group(k) {
				order = append(order, k)
			}
		}
	}
	vals := make([]int64, len(order))
	dest := make([]any, 1+len(order))
	var ord int32
	dest[0] = &ord
	for i := range vals {
		dest[i+1] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("read history: %w", err)
		}
		for i, k := range order {
			out[ord][k] = int(vals[i])
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	return out, nil
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

// addBatchStrikes adds to h the strikes of the user's earlier events in
// this batch: their actions are written after the whole batch is judged,
// so the query cannot see them. Each counts as it would once recorded
// with no outcome yet (pending), by the actions its decision requested.
func addBatchStrikes(h policy.History, recs []EventRecord, results []RecordResult, jr judged, keys []policy.HistoryKey) {
	user := jr.ev.SubjectUserID()
	if user == "" {
		return
	}
	now := policyNow(jr.ev)
	for i := range jr.i {
		d, ev := recs[i].Decision, recs[i].Event
		if results[i].Duplicate != "" || d == nil || len(d.Actions) == 0 || recs[i].Own || ev.SubjectUserID() != user ||
			ev.Type == policy.EventBeforeSend {
			continue
		}
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
			if hit {
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
