package backtest

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"moderator/policy"
	"moderator/store"
)

// Report is what a backtest found: per rule, what the candidate would
// have matched and done against what was recorded, and the totals.
type Report struct {
	// ID is the backtest's row in the backtests table, once recorded.
	ID        int64     `json:"id,omitempty"`
	Candidate Candidate `json:"candidate"`
	From      time.Time `json:"from"`
	To        time.Time `json:"to"`
	Channels  []string  `json:"channels,omitempty"`
	RuleIDs   []string  `json:"rule_ids,omitempty"`
	// Events is how many events of the window were replayed; Evaluated
	// how many the candidate judged (the service's own and ignored types
	// are never judged); Unreadable how many could not be decoded.
	Events     int64 `json:"events"`
	Evaluated  int64 `json:"evaluated"`
	Unreadable int64 `json:"unreadable,omitempty"`
	// RecordedVersions are the rule set versions that judged the window.
	RecordedVersions []string     `json:"recorded_versions"`
	Rules            []RuleReport `json:"rules"`
	Totals           []Total      `json:"totals"`
	// Summary says the totals in plain words: "would ban 12 more users,
	// would delete 3 fewer messages".
	Summary string `json:"summary"`
	// Elapsed is how long the backtest took, in seconds.
	Elapsed float64 `json:"elapsed_seconds"`
}

// Candidate describes the rule set replayed.
type Candidate struct {
	Version string `json:"version"`
	Rules   int    `json:"rules"`
	// FailingExamples are the candidate's examples that fail ("file:line:
	// message"): reported, but the draft is backtested all the same.
	FailingExamples []string `json:"failing_examples,omitempty"`
}

// RuleReport compares one rule's effect, by rule id.
type RuleReport struct {
	RuleID string `json:"rule_id"`
	// Mode is the rule's mode in the candidate; "" when the candidate no
	// longer has the rule (it only appears in the recorded decisions).
	Mode   policy.Mode `json:"mode,omitempty"`
	Source string      `json:"source,omitempty"`
	// FailingExamples counts the rule's failing examples in the candidate.
	FailingExamples int `json:"failing_examples,omitempty"`
	// Recorded and Candidate count matches and the events acted on.
	Recorded  Tally `json:"recorded"`
	Candidate Tally `json:"candidate"`
	// Errors counts the events on which the candidate's rule failed.
	Errors int64 `json:"errors,omitempty"`
	// Added: events the candidate would act on where nothing was done by
	// this rule; Removed: the reverse; Changed: both acted, differently
	// (mute → ban). MatchesAdded and MatchesRemoved count matches that
	// changed, actions or not (shadow rules included).
	Added          Change `json:"added"`
	Removed        Change `json:"removed"`
	Changed        Change `json:"changed"`
	MatchesAdded   int64  `json:"matches_added"`
	MatchesRemoved int64  `json:"matches_removed"`
}

// Tally counts one side's matches and the events its enforce actions
// concerned.
type Tally struct {
	Matches int64 `json:"matches"`
	Acted   int64 `json:"acted"`
}

// Change is one kind of difference: how many events, users and messages,
// and the first few events (by id) as samples.
type Change struct {
	Events   int64    `json:"events"`
	Users    int      `json:"users"`
	Messages int      `json:"messages"`
	Samples  []Sample `json:"samples,omitempty"`
}

// Sample is one event where the candidate differs.
type Sample struct {
	EventID    int64     `json:"event_id"`
	At         time.Time `json:"at"`
	UserID     string    `json:"user_id,omitempty"`
	ChannelCID string    `json:"channel_cid,omitempty"`
	MessageID  string    `json:"message_id,omitempty"`
	// Text is the start of the message (at most 80 characters), as
	// written: printers escape it.
	Text      string   `json:"text,omitempty"`
	Recorded  []string `json:"recorded"`
	Candidate []string `json:"candidate"`
	// Evidence is the values the expression read: the candidate's when it
	// matched, else the recorded match's.
	Evidence json.RawMessage `json:"evidence,omitempty"`
}

// Total compares one effect over the whole window: distinct users or
// messages.
type Total struct {
	Action    policy.ActionType `json:"action"`
	Unit      string            `json:"unit"` // "users" or "messages"
	Recorded  int               `json:"recorded"`
	Candidate int               `json:"candidate"`
}

// recordedMatch is a match of a recorded decision, as much as a backtest
// reads of it.
type recordedMatch struct {
	RuleID   string          `json:"rule_id"`
	Mode     policy.Mode     `json:"mode"`
	Actions  []policy.Action `json:"actions"`
	Evidence json.RawMessage `json:"evidence"`
}

func decodeRecorded(row *store.ReplayRow) ([]recordedMatch, error) {
	if row.Matches == nil {
		return nil, nil
	}
	var ms []recordedMatch
	if err := json.Unmarshal(row.Matches, &ms); err != nil {
		return nil, fmt.Errorf("event %d: recorded matches: %w", row.ID, err)
	}
	return ms, nil
}

// describe writes an action without its texts, for comparing and
// showing: "ban 7d delete-messages=soft".
func describe(a policy.Action) string {
	a.Reason, a.Text, a.Words = "", "", nil
	return a.String()
}

func describeAll(as []policy.Action) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		out = append(out, describe(a))
	}
	slices.Sort(out)
	return out
}

// change accumulates a Change.
type change struct {
	Change
	users, messages *idSet
}

func (c *change) add(h *ids, it *item, sample func() Sample, samples int) {
	if c.users == nil {
		c.users, c.messages = h.set(), h.set()
	}
	c.Events++
	c.users.add(it.ev.SubjectUserID())
	c.messages.add(it.ev.MessageIDOrEmpty())
	if len(c.Samples) < samples {
		c.Samples = append(c.Samples, sample())
	}
}

func (c *change) done() (Change, error) {
	out := c.Change
	if c.users == nil {
		return out, nil
	}
	var err error
	if out.Users, err = c.users.count(); err != nil {
		return out, err
	}
	out.Messages, err = c.messages.count()
	return out, err
}

type ruleAgg struct {
	RuleReport
	added, removed, changed change
}

// effect is one Total being counted.
type effect struct {
	action      policy.ActionType
	unit        string
	rec, cand   *idSet
	verb, nouns string
}

// aggregate sums the comparison, in id order (so samples are the first
// events by id, whatever the parallelism).
type aggregate struct {
	opt      Options
	cand     *policy.RuleSet
	rules    map[string]*ruleAgg
	versions map[string]bool
	effects  []*effect
	ids      *ids
	rep      Report
}

func newAggregate(cand *policy.RuleSet, opt Options) *aggregate {
	a := &aggregate{opt: opt, cand: cand, rules: map[string]*ruleAgg{}, versions: map[string]bool{}, ids: newIDs(hashIDs(), idBudget)}
	a.rep.Candidate = Candidate{Version: cand.Version(), Rules: len(cand.Rules())}
	failing := map[string]int{}
	for _, p := range cand.FailingExamples() {
		a.rep.Candidate.FailingExamples = append(a.rep.Candidate.FailingExamples, p.String())
		if id, _, ok := strings.Cut(strings.TrimPrefix(p.Msg, "rule "), ","); ok {
			failing[id]++
		}
	}
	for _, info := range cand.Rules() {
		if !a.wanted(info.ID) {
			continue
		}
		a.rules[info.ID] = &ruleAgg{RuleReport: RuleReport{RuleID: info.ID, Mode: info.Mode,
			Source: fmt.Sprintf("%s:%d", info.File, info.Line), FailingExamples: failing[info.ID]}}
	}
	for _, e := range []struct {
		t           policy.ActionType
		unit, verb  string
		nouns       string
		userTargets bool
	}{
		{policy.ActionBan, "users", "ban", "users", true},
		{policy.ActionMute, "users", "mute", "users", true},
		{policy.ActionWarn, "users", "warn", "users", true},
		{policy.ActionFlag, "users", "flag", "users", true},
		{policy.ActionFlag, "messages", "flag", "messages", false},
		{policy.ActionDelete, "messages", "delete", "messages", false},
	} {
		a.effects = append(a.effects, &effect{action: e.t, unit: e.unit, rec: a.ids.set(), cand: a.ids.set(),
			verb: e.verb, nouns: e.nouns})
	}
	a.rep.From, a.rep.To = opt.From, opt.To
	a.rep.Channels, a.rep.RuleIDs = opt.Channels, opt.Rules
	return a
}

func (a *aggregate) wanted(rule string) bool {
	return len(a.opt.Rules) == 0 || slices.Contains(a.opt.Rules, rule)
}

func (a *aggregate) rule(id string) *ruleAgg {
	r := a.rules[id]
	if r == nil {
		r = &ruleAgg{RuleReport: RuleReport{RuleID: id}}
		a.rules[id] = r
	}
	return r
}

// add compares one event's two decisions.
func (a *aggregate) add(it *item) error {
	if it.row == nil {
		return nil
	}
	a.rep.Events++
	if it.err != nil {
		a.rep.Unreadable++
		return nil
	}
	if !it.judged {
		return nil
	}
	a.rep.Evaluated++
	if it.row.RuleSetVersion != "" {
		a.versions[it.row.RuleSetVersion] = true
	}
	if !it.reported || (len(it.recorded) == 0 && len(it.decision.Matches) == 0 && len(it.decision.Errors) == 0) {
		return nil
	}
	rec := map[string]recordedMatch{}
	for _, m := range it.recorded {
		if a.wanted(m.RuleID) {
			rec[m.RuleID] = m
		}
	}
	cand := map[string]policy.Match{}
	for _, m := range it.decision.Matches {
		if a.wanted(m.RuleID) {
			cand[m.RuleID] = m
		}
	}
	for _, e := range it.decision.Errors {
		if e.RuleID != "" && a.wanted(e.RuleID) {
			a.rule(e.RuleID).Errors++
		}
	}
	ids := make([]string, 0, len(rec)+len(cand))
	for id := range rec {
		ids = append(ids, id)
	}
	for id := range cand {
		if _, ok := rec[id]; !ok {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		a.compareRule(it, id, rec, cand)
	}
	a.countEffects(it, rec)
	return nil
}

// compareRule compares one rule's match on one event.
func (a *aggregate) compareRule(it *item, id string, rec map[string]recordedMatch, cand map[string]policy.Match) {
	r := a.rule(id)
	rm, inRec := rec[id]
	cm, inCand := cand[id]
	var recActs, candActs []string
	if inRec {
		r.Recorded.Matches++
		if rm.Mode == policy.ModeEnforce && len(rm.Actions) > 0 {
			r.Recorded.Acted++
			recActs = describeAll(rm.Actions)
		}
	}
	if inCand {
		r.Candidate.Matches++
		if cm.Mode == policy.ModeEnforce && len(cm.Actions) > 0 {
			r.Candidate.Acted++
			candActs = describeAll(cm.Actions)
		}
	}
	switch {
	case inCand && !inRec:
		r.MatchesAdded++
	case inRec && !inCand:
		r.MatchesRemoved++
	}
	sample := func() Sample {
		s := a.sample(it)
		s.Recorded, s.Candidate = orEmpty(recActs), orEmpty(candActs)
		if inCand {
			s.Evidence, _ = json.Marshal(cm.Evidence)
		} else {
			s.Evidence = rm.Evidence
		}
		return s
	}
	switch {
	case candActs != nil && recActs == nil:
		r.added.add(a.ids, it, sample, a.opt.Samples)
	case recActs != nil && candActs == nil:
		r.removed.add(a.ids, it, sample, a.opt.Samples)
	case recActs != nil && !slices.Equal(recActs, candActs):
		r.changed.add(a.ids, it, sample, a.opt.Samples)
	}
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// sample describes the event of it.
func (a *aggregate) sample(it *item) Sample {
	s := Sample{EventID: it.row.ID, At: it.at, UserID: it.ev.SubjectUserID(), ChannelCID: it.ev.ChannelCID(),
		MessageID: it.ev.MessageIDOrEmpty()}
	if it.ev.Message != nil {
		s.Text = excerpt(it.ev.Message.Text, 80)
	}
	return s
}

// excerpt returns the first n characters of s, with "…" when cut.
func excerpt(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i := 0
	for j := range s {
		if i == n {
			return s[:j] + "…"
		}
		i++
	}
	return s
}

// countEffects adds the event's enforce actions (of the reported rules)
// to the totals.
func (a *aggregate) countEffects(it *item, rec map[string]recordedMatch) {
	user, msg := it.ev.SubjectUserID(), it.ev.MessageIDOrEmpty()
	add := func(acts []policy.Action, side func(*effect) *idSet) {
		for _, act := range acts {
			for _, e := range a.effects {
				if e.action != act.Type {
					continue
				}
				target := user
				if e.unit == "messages" {
					target = msg
				}
				if act.Type == policy.ActionFlag && (act.Target == "user") != (e.unit == "users") {
					continue
				}
				side(e).add(target)
			}
		}
	}
	for _, m := range rec {
		if m.Mode == policy.ModeEnforce {
			add(m.Actions, func(e *effect) *idSet { return e.rec })
		}
	}
	for _, act := range it.decision.Actions {
		if a.wanted(act.RuleID) {
			add([]policy.Action{act}, func(e *effect) *idSet { return e.cand })
		}
	}
}

// report finishes the sums and frees the spilled ids.
func (a *aggregate) report() (*Report, error) {
	defer a.ids.close()
	if a.ids.err != nil {
		return nil, a.ids.err
	}
	rep := a.rep
	for v := range a.versions {
		rep.RecordedVersions = append(rep.RecordedVersions, v)
	}
	slices.Sort(rep.RecordedVersions)
	if rep.RecordedVersions == nil {
		rep.RecordedVersions = []string{}
	}
	rep.Rules = []RuleReport{}
	for _, r := range a.rules {
		rr := r.RuleReport
		for _, c := range []struct {
			to   *Change
			from *change
		}{{&rr.Added, &r.added}, {&rr.Removed, &r.removed}, {&rr.Changed, &r.changed}} {
			var err error
			if *c.to, err = c.from.done(); err != nil {
				return nil, err
			}
		}
		rep.Rules = append(rep.Rules, rr)
	}
	// Rules with differences first, then by id.
	slices.SortFunc(rep.Rules, func(x, y RuleReport) int {
		return cmp.Or(-cmp.Compare(x.differences(), y.differences()), cmp.Compare(x.RuleID, y.RuleID))
	})
	var words []string
	for _, e := range a.effects {
		t := Total{Action: e.action, Unit: e.unit}
		var err error
		if t.Recorded, err = e.rec.count(); err != nil {
			return nil, err
		}
		if t.Candidate, err = e.cand.count(); err != nil {
			return nil, err
		}
		rep.Totals = append(rep.Totals, t)
		switch d := t.Candidate - t.Recorded; {
		case d > 0:
			words = append(words, fmt.Sprintf("would %s %d more %s", e.verb, d, plural(d, e.nouns)))
		case d < 0:
			words = append(words, fmt.Sprintf("would %s %d fewer %s", e.verb, -d, plural(-d, e.nouns)))
		}
	}
	rep.Summary = strings.Join(words, ", ")
	if rep.Summary == "" {
		rep.Summary = "no change in who or what would be acted on"
	}
	return &rep, nil
}

// differences counts the events on which the rule differs.
func (r RuleReport) differences() int64 {
	return r.Added.Events + r.Removed.Events + r.Changed.Events + r.MatchesAdded + r.MatchesRemoved
}

// plural returns nouns ("users") for n other than 1, else the singular.
func plural(n int, nouns string) string {
	if n == 1 {
		return strings.TrimSuffix(nouns, "s")
	}
	return nouns
}
