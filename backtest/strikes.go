package backtest

import (
	"hash/maphash"
	"strconv"
	"time"

	"moderator/policy"
	"moderator/store"
)

// Strikes are rebuilt per user, with the store's definitions
// (store/counters.go): a strike is one message (or, without a message,
// one event) whose actions against its user count, one offence however
// many actions and edits, while an action still counts (until its end, if
// any), within the key's window of the event's time on either side.
//
// A window of a million events holds hundreds of thousands of strikes
// for as long as the longest strike window (7 days in the starter pack),
// so a strike is kept small and free of pointers (the collector never
// scans the lists), and only the actions some key of the candidate can
// count are kept at all.

// strikeTypes are the action types that make a strike, by their code in
// strikeAct.typ (0: not a strike).
var strikeTypes = [...]policy.ActionType{1: policy.ActionFlag, 2: policy.ActionMute, 3: policy.ActionBan,
	4: policy.ActionDelete, 5: policy.ActionWarn}

// strikeTable is what the candidate's strike keys read of actions: built
// once per run, read-only after (the workers share it).
type strikeTable struct {
	keys   []policy.HistoryKey
	window time.Duration // the longest
	seed   maphash.Seed
	rules  map[string]uint16 // the rules some strikes.by_rule key reads, from 1
	kType  []uint8           // per key: the type strikes.of_type counts
	kRule  []uint16          // per key: the rule strikes.by_rule counts
	// anyRule is set by type code when a key counts actions of that type
	// whatever their rule (strikes.count, strikes.of_type).
	anyRule [len(strikeTypes)]bool
}

func newStrikeTable(keys []policy.HistoryKey) *strikeTable {
	t := &strikeTable{seed: maphash.MakeSeed(), rules: map[string]uint16{}}
	for _, k := range keys {
		if !k.IsStrike() {
			continue
		}
		t.keys = append(t.keys, k)
		t.window = max(t.window, k.Window)
		var typ uint8
		var rule uint16
		switch k.Name {
		case policy.StrikesCount:
			for c := 1; c < len(strikeTypes); c++ {
				t.anyRule[c] = true
			}
		case policy.StrikesOfType:
			typ = typeCode(policy.ActionType(k.Arg))
			t.anyRule[typ] = true
		case policy.StrikesByRule:
			if t.rules[k.Arg] == 0 {
				t.rules[k.Arg] = uint16(len(t.rules) + 1)
			}
			rule = t.rules[k.Arg]
		}
		t.kType, t.kRule = append(t.kType, typ), append(t.kRule, rule)
	}
	return t
}

// typeCode is the code of an action type in strikeTypes, 0 if it makes
// no strike.
func typeCode(t policy.ActionType) uint8 {
	for c := 1; c < len(strikeTypes); c++ {
		if strikeTypes[c] == t {
			return uint8(c)
		}
	}
	return 0
}

// strikeAct is one action of a strike that a key can count.
type strikeAct struct {
	end  int64  // Unix nanoseconds when it stopped counting; 0: it still counts
	rule uint16 // its rule's code in strikeTable.rules; 0: no key reads it by rule
	typ  uint8  // its type's code in strikeTypes
}

// strike is one struck message (or event) of a lineage.
type strike struct {
	key      uint64 // the hash of what it counts: the message, else the event
	at       int64  // its event's time, Unix nanoseconds
	first, n uint32 // its actions: strikeList.acts[first:first+n]
}

// strikeList is a time-ordered list of strikes and their actions.
type strikeList struct {
	strikes []strike
	acts    []strikeAct
}

// lineage is the would-be strikes of one user for the candidate: the
// strikes recorded before the window, then those of the candidate's own
// enforce actions (and, for its shadow rules, those of its shadow
// matches, on top of enforce).
type lineage struct {
	enforce strikeList
	shadow  strikeList
}

// empty reports whether the lineage holds no strike.
func (l *lineage) empty() bool { return len(l.enforce.strikes) == 0 && len(l.shadow.strikes) == 0 }

// messageKey and eventKey are the hashes strike keys are made of: the
// store's "m:" and the message id, or "e:" and the event id.
func (t *strikeTable) messageKey(message string) uint64 {
	return maphash.Comparable(t.seed, struckID{'m', message})
}

func (t *strikeTable) key(message string, eventID int64) uint64 {
	if message != "" {
		return t.messageKey(message)
	}
	return maphash.Comparable(t.seed, struckID{'e', strconv.FormatInt(eventID, 10)})
}

type struckID struct {
	kind byte
	id   string
}

// add appends a strike of the actions that the keys can count, or
// nothing if none can. An action the rules in force also took on that
// event (same type and rule, in recorded) ends when the recorded one
// ended: had the candidate been in force, reviewers would have
// overturned it as well, and a failed call would have failed.
func (t *strikeTable) add(l *strikeList, key uint64, at time.Time, actions []policy.Action, recorded []store.PastStrike) {
	first := uint32(len(l.acts))
	for _, a := range actions {
		act, ok := t.act(a.Type, a.RuleID)
		if !ok {
			continue
		}
		for _, r := range recorded {
			if r.Type == a.Type && r.RuleID == a.RuleID && r.End != nil {
				act.end = r.End.UnixNano()
			}
		}
		l.acts = append(l.acts, act)
	}
	if n := uint32(len(l.acts)) - first; n > 0 {
		l.strikes = append(l.strikes, strike{key: key, at: at.UnixNano(), first: first, n: n})
	}
}

// addPast adds a strike recorded before the window: to the last strike
// when it is of the same event's message (its other actions), else as a
// new one.
func (t *strikeTable) addPast(l *strikeList, p store.PastStrike) {
	act, ok := t.act(p.Type, p.RuleID)
	if !ok {
		return
	}
	if p.End != nil {
		act.end = p.End.UnixNano()
	}
	key := t.key(p.MessageID, p.EventID)
	at := p.At.UnixNano()
	if n := len(l.strikes); n > 0 && l.strikes[n-1].key == key && l.strikes[n-1].at == at {
		l.acts = append(l.acts, act)
		l.strikes[n-1].n++
		return
	}
	l.strikes = append(l.strikes, strike{key: key, at: at, first: uint32(len(l.acts)), n: 1})
	l.acts = append(l.acts, act)
}

// act is the action as kept, if some key can count it.
func (t *strikeTable) act(typ policy.ActionType, rule string) (strikeAct, bool) {
	a := strikeAct{typ: typeCode(typ), rule: t.rules[rule]}
	return a, a.typ != 0 && (a.rule != 0 || t.anyRule[a.typ])
}

// trim drops the strikes older than the longest window before now.
func (t *strikeTable) trim(l *strikeList, now time.Time) {
	lo := now.Add(-t.window).UnixNano()
	drop := 0
	for drop < len(l.strikes) && l.strikes[drop].at <= lo {
		drop++
	}
	if drop == 0 {
		return
	}
	if drop == len(l.strikes) {
		l.strikes, l.acts = l.strikes[:0], l.acts[:0]
		return
	}
	cut := l.strikes[drop].first
	l.strikes = append(l.strikes[:0], l.strikes[drop:]...)
	l.acts = append(l.acts[:0], l.acts[cut:]...)
	for i := range l.strikes {
		l.strikes[i].first -= cut
	}
}

// count sets in h the strikes of lists at time now for an event about
// message own: the distinct messages struck in each window, the judged
// message's own strikes left out (an edit is not judged against the
// strikes of the message it edits).
func (t *strikeTable) count(h policy.History, now time.Time, own string, lists ...*strikeList) {
	var ownKey uint64
	if own != "" {
		ownKey = t.messageKey(own)
	}
	at := now.UnixNano()
	var seen map[uint64]bool // a message struck twice (its edits) counts once
	for i, k := range t.keys {
		lo, hi := at-int64(k.Window), at+int64(k.Window)
		clear(seen)
		n := 0
		for _, l := range lists {
			for j := range l.strikes {
				s := &l.strikes[j]
				if s.at <= lo || s.at > hi || (own != "" && s.key == ownKey) || seen[s.key] || !t.hits(l.acts[s.first:s.first+s.n], i, at) {
					continue
				}
				if seen == nil {
					seen = make(map[uint64]bool)
				}
				seen[s.key] = true
				n++
			}
		}
		h[k] = n
	}
}

// hits reports whether one of acts counts for key i at now.
func (t *strikeTable) hits(acts []strikeAct, i int, now int64) bool {
	for _, a := range acts {
		if a.end != 0 && a.end <= now {
			continue
		}
		switch t.keys[i].Name {
		case policy.StrikesCount:
			return true
		case policy.StrikesOfType:
			if a.typ == t.kType[i] {
				return true
			}
		case policy.StrikesByRule:
			if a.rule == t.kRule[i] {
				return true
			}
		}
	}
	return false
}
