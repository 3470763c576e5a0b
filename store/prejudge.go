package store

import (
	"errors"
	"fmt"
	"maps"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"moderator/policy"
)

// Judging ahead: a batch whose every value the replica can count from its
// copies of the marks (markCache) is judged before its events are
// inserted, so that its decisions are known when the first pipeline is
// sent. That pipeline then carries, instead of the history read, a check
// that the copies were the database's (their versions, read after the
// insert took the counter locks) and that every judged record was new,
// and, when the batch has nothing else to write, its COMMIT: one round
// trip where it took two. Most batches at a steady few hundred webhooks a
// second are a message no rule matches from a user the replica has seen.
//
// When the check fails (another replica wrote marks of a key, or a
// record was a retry), counter_copies_moved (migration 0030) aborts the
// transaction, its COMMIT rolls it back, and the batch is recorded again
// the usual way: exact either way, at the cost of a round trip for the
// rare batch that raced another replica.

// copiesMovedCode is the SQLSTATE of counter_copies_moved.
const copiesMovedCode = "MDC01"

// isCopiesMoved reports whether err is the check of a batch judged ahead
// failing.
func isCopiesMoved(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == copiesMovedCode
}

// prejudge decides the records of j from the replica's copies, before
// their insert, when it can: every record has its time, no two share a
// body, every key's copy holds what its records read, and each record's
// rules read only values counted from copies (DecideKnown: a flood rule's
// strikes are read only past its count). It then sets each record's
// Decision, makes j.sql the check (see above) and reports true.
// Otherwise it leaves the records and the copies as they were.
func (j *judging) prejudge(recs []EventRecord) bool {
	bodies := make(map[[32]byte]bool, len(j.cands))
	for _, jr := range j.cands {
		sum := recs[jr.i].BodySHA256
		if jr.at == nil || bodies[sum] || !j.decidesKnown(recs[jr.i].Judge) {
			return false
		}
		bodies[sum] = true
	}
	copies := j.aheadCopies()
	for _, c := range copies {
		if !c.usable(j.cands) {
			return false
		}
	}
	for _, c := range copies {
		c.useCopies()
	}
	strikes := newStrikeRead(j.cache, j.keys, j.cands)
	for _, jr := range j.cands {
		if !decideAhead(recs, jr, copies, strikes, len(j.keys)) || strikes != nil && strikes.countsBatchStrike(recs, jr) {
			j.giveUpAhead(recs, copies)
			return false
		}
	}
	j.copies, j.strikes = copies, strikes
	j.sql, j.args = j.checkSQL(recs)
	j.ahead = true
	j.cache.ahead.Add(1)
	return true
}

// giveUpAhead undoes what prejudge did: the records are read the usual
// way.
func (j *judging) giveUpAhead(recs []EventRecord, copies []*copyRead) {
	for _, c := range copies {
		c.release()
	}
	j.undo(recs)
}

// decideAhead decides jr from copies (and from the strike copies, nil for
// none), and reports whether its rules read only the values they hold.
func decideAhead(recs []EventRecord, jr judged, copies []*copyRead, strikes *strikeRead, keys int) bool {
	h := make(policy.History, keys)
	for _, c := range copies {
		if err := c.values(h, *jr.at, jr); err != nil {
			return false // usable found every copy: cannot happen
		}
	}
	judge := recs[jr.i].Judge
	var shadow policy.History
	if judge.ShadowStrikes {
		// The shadow rules' history differs in strikes alone, which h lacks.
		shadow = maps.Clone(h)
	}
	if strikes != nil {
		strikes.values(h, shadow, jr)
	}
	if judge.DecideKnown == nil {
		d := judge.Decide(h, shadow)
		recs[jr.i].Decision = &d
		return true
	}
	d, known := judge.DecideKnown(h, shadow)
	recs[jr.i].Decision = &d
	return known
}

// decidesKnown reports whether a record's judge can be asked to decide
// with the values counted from copies alone: it says when its rules read
// another (DecideKnown), or they read no other.
func (j *judging) decidesKnown(judge *policy.Deferred) bool {
	if judge.DecideKnown != nil {
		return true
	}
	for _, k := range j.keys {
		if copyKindOf(k) == nil {
			return false
		}
	}
	return true
}

// aheadCopies are the reads of j's values that copies hold, by kind.
func (j *judging) aheadCopies() []*copyRead {
	var user, young []policy.HistoryKey
	for _, k := range j.keys {
		switch copyKindOf(k) {
		case userCopies:
			user = append(user, k)
		case youngCopies:
			young = append(young, k)
		}
	}
	var copies []*copyRead
	if len(user) > 0 {
		copies = append(copies, newCopyRead(userCopies, j.cache, user, j.cands))
	}
	if len(young) > 0 {
		copies = append(copies, newCopyRead(youngCopies, j.cache, young, j.cands))
	}
	return copies
}

// undo forgets the decisions prejudge made.
func (j *judging) undo(recs []EventRecord) {
	for _, jr := range j.cands {
		recs[jr.i].Decision = nil
	}
}

// checkSQL is the statement that replaces the history read of a batch
// judged ahead: it writes the batch's marks, as the read does, and calls
// counter_copies_moved when a judged record was not inserted (a
// duplicate) or a key's version is not its copy's. Its snapshot follows
// the insert's counter locks, as the read's does.
func (j *judging) checkSQL(recs []EventRecord) (string, []any) {
	q := &historyQuery{args: j.batchArgs(recs)}
	moved := []string{"(SELECT count(*) FROM b) <> " + q.param(len(j.cands))}
	for _, c := range j.copies {
		moved = append(moved, c.versionMoved(q))
	}
	if j.strikes != nil {
		if m := j.strikes.versionMoved(q); m != "" {
			moved = append(moved, m)
		}
	}
	return batchCTE + ` SELECT counter_copies_moved() WHERE ` + strings.Join(moved, " OR "), q.args
}

// usable reports whether the copies hold what the records of cands read
// of r's kind, as far as the replica knows: a copy of every key, covering
// the records (covers), or holding every mark after the earliest time the
// records of the key read. The check confirms their versions.
func (r *copyRead) usable(cands []judged) bool {
	for _, id := range r.ids {
		c := r.copies[id]
		if c == nil {
			return false
		}
		if r.covered[id] {
			continue
		}
		for _, jr := range cands {
			if key, _, _ := r.kind.of(jr); key == id && (jr.at == nil || c.from.After(jr.at.Add(-r.window))) {
				return false
			}
		}
	}
	return true
}

// release gives back the copies' slices this read took to append to in
// place (appendsInPlace), for a batch not judged ahead after all, or whose
// check failed: the marks it appended lie past their copies' ends, where
// nothing reads, and the next batch may write over them. The copies stay:
// a stale one is found so by the next read's check.
func (r *copyRead) release() {
	for id := range r.took {
		r.copies[id].grown.Store(false)
	}
}

// useCopies makes the copies what the read found: each key at its copy's
// version, nothing loaded.
func (r *copyRead) useCopies() {
	for _, id := range r.ids {
		r.loaded[id] = &loadedMarks{version: r.copies[id].version}
	}
}

// versionMoved is the condition that a key's version is no longer its
// copy's.
func (r *copyRead) versionMoved(q *historyQuery) string {
	versions := make([]int64, len(r.ids))
	for i, id := range r.ids {
		versions[i] = r.copies[id].version
	}
	col := r.kind.column
	return fmt.Sprintf(`EXISTS (SELECT FROM unnest(%s::text[], %s::bigint[]) AS k(id, v)
		WHERE coalesce((SELECT x.version FROM %s x WHERE x.%s = k.id), 0) <> k.v)`,
		q.param(r.ids), q.param(versions), r.kind.versions, col)
}
