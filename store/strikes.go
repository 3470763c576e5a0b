package store

import (
	"context"
	"fmt"
	"time"

	"moderator/policy"
)

// Strikes (strikes.* in rules) are read from the strikes table (migration
// 0023): one row per action against a user that still counts, which the
// database's triggers write with the action and delete when an outcome or
// an overturn takes it back; and one row per would-be action of a shadow
// rule (queueShadowStrikes), which only the shadow rules read.

// strikeOutcomes are the outcomes that keep an action from being a
// strike (the trigger of migration 0023 lists them too): it was merged
// into another, failed, held back by a daily cap, or suppressed by an
// immunity. An action with no outcome yet (pending)
// or a dry run counts: the rules treat it as done, and a dry run shows
// the ladder as it would go.
var strikeOutcomes = []string{OutcomeSuperseded, OutcomeFailed, OutcomeHeld, OutcomeSuppressed}

// struckMessages is the strike value over the strike rows that pass
// filter, as two columns: the number of distinct messages they struck (a
// row without a message, of a user event, counts its event), so that one
// message is one strike however many of its events (message.new, each
// message.updated) and actions were acted on; and which of the batch's
// own messages (batchKeys, a text[] parameter) are among them, the only
// ones addBatchStrikes asks about. Returning every message struck instead
// cost more than the count: a user with a hundred strikes sent a hundred
// keys per value and judged record, decoded into maps.
func struckMessages(filter, batchKeys string) (count, ofBatch string) {
	return "count(DISTINCT a.mk) FILTER (WHERE " + filter + ")",
		"coalesce(array_agg(DISTINCT a.mk) FILTER (WHERE " + filter + " AND a.mk = ANY(" + batchKeys + ")), '{}')"
}

// strikeKey is what a strike counts of an event's actions: its message, or
// the event when it has none; the same as strikes.strike_key.
func strikeKey(ev *policy.Event, eventID int64) string {
	if m := ev.MessageIDOrEmpty(); m != "" {
		return "m:" + m
	}
	return fmt.Sprintf("e:%d", eventID)
}

// wouldStrike returns the actions of d that strike its user: the enforced
// ones, and with shadow the shadow rules' would-be ones too.
func wouldStrike(d *policy.Decision, shadow bool) []policy.Action {
	if !shadow {
		return d.Actions
	}
	acts := d.Actions
	for _, m := range d.Matches {
		if m.Mode == policy.ModeShadow && len(m.Actions) > 0 {
			acts = append(acts[:len(acts):len(acts)], m.Actions...)
		}
	}
	return acts
}

// addBatchStrikes adds to h the strikes of the user's earlier events (by
// event id) in this batch: their actions are written after the whole
// batch is judged, so the read cannot see them. Each counts as it would
// once recorded with no outcome yet (pending), by the actions its decision
// requested (with shadow, and its shadow rules' would-be ones), unless its
// message is the judged one or was counted already (struck: the messages
// the read counted, per key; updated here).
func addBatchStrikes(h policy.History, struck struckSet, recs []EventRecord, results []RecordResult,
	jr judged, keys []policy.HistoryKey, shadow bool) {
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
		if results[i].Duplicate != "" || d == nil || recs[i].Own || ev.SubjectUserID() != user ||
			ev.Type == policy.EventBeforeSend || (own != "" && ev.MessageIDOrEmpty() == own) {
			continue
		}
		acts := wouldStrike(d, shadow)
		if len(acts) == 0 {
			continue
		}
		mk := strikeKey(ev, results[i].EventID)
		t := policyNow(ev)
		for _, k := range keys {
			if !k.IsStrike() || (!now.IsZero() && !t.IsZero() && (t.Sub(now) > k.Window || now.Sub(t) >= k.Window)) {
				continue
			}
			if strikesFor(k, acts) && !struck[k][mk] {
				if struck[k] == nil {
					struck[k] = map[string]bool{}
				}
				struck[k][mk] = true
				h[k]++
			}
		}
	}
}

// strikesFor reports whether one of acts counts for the strike value k.
func strikesFor(k policy.HistoryKey, acts []policy.Action) bool {
	for _, a := range acts {
		switch k.Name {
		case policy.StrikesCount:
			if isStrikeType(a.Type) {
				return true
			}
		case policy.StrikesOfType:
			if string(a.Type) == k.Arg {
				return true
			}
		case policy.StrikesByRule:
			if a.RuleID == k.Arg && isStrikeType(a.Type) {
				return true
			}
		}
	}
	return false
}

func isStrikeType(t policy.ActionType) bool {
	switch t {
	case policy.ActionFlag, policy.ActionMute, policy.ActionBan, policy.ActionDelete, policy.ActionWarn:
		return true
	}
	return false
}

// queueShadowStrikes queues, with the decisions, the would-be strikes of
// the shadow (and demoted) rules that matched the new events, in the
// recording transaction: the lineage a shadow rule reads, so that a shadow ladder
// climbs as it would enforced. Events that strike nobody (the service's
// own, before-send checks, events without a user) write none, as their
// enforced actions would not.
func queueShadowStrikes(w *Writes, recs []EventRecord, results []RecordResult) {
	var (
		events                    []int64
		users, keys, rules, kinds []string
		ats                       []*time.Time
	)
	for i := range recs {
		r := &recs[i]
		if results[i].Duplicate != "" || r.Decision == nil || r.Own || r.Event == nil || r.Event.Type == policy.EventBeforeSend {
			continue
		}
		user := r.Event.SubjectUserID()
		if user == "" {
			continue
		}
		at := policyNow(r.Event)
		if at.IsZero() {
			at = r.ReceivedAt // zero: now(), as the event's received_at
		}
		for _, m := range r.Decision.Matches {
			if m.Mode != policy.ModeShadow {
				continue
			}
			for _, a := range m.Actions {
				if !isStrikeType(a.Type) {
					continue
				}
				events, users, ats = append(events, results[i].EventID), append(users, user), append(ats, nullTime(at))
				keys = append(keys, strikeKey(r.Event, results[i].EventID))
				rules, kinds = append(rules, a.RuleID), append(kinds, string(a.Type))
			}
		}
	}
	if len(events) == 0 {
		return
	}
	w.Queue(`INSERT INTO strikes (event_id, user_id, strike_key, rule_id, type, at, shadow)
		SELECT e, u, k, r, t, coalesce(at, now()), true
		FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[]) AS x(e, u, k, r, t, at)`,
		events, users, keys, rules, kinds, ats)
}

// ExpireStrikes deletes the strikes of events recorded more than
// retention ago, at most limit of them (oldest first), and returns how
// many it deleted; call it until it returns less than limit. Like
// ExpireCounterMarks, it finds them by event id.
func (s *Store) ExpireStrikes(ctx context.Context, retention time.Duration, limit int) (int64, error) {
	return s.expireByEvent(ctx, "strikes", "id", retention, limit)
}
