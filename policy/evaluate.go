package policy

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
)

// Decision is what the rules concluded about one event: what the audit
// trail records and what the actions package carries out.
type Decision struct {
	RuleSetVersion string `json:"rule_set_version"`
	// Matches are the rules that matched, enforce and shadow alike, in
	// evaluation order (priority, then file order).
	Matches []Match `json:"matches,omitempty"`
	// Actions are the actions of the enforce-mode matches, in order.
	Actions []Action `json:"actions,omitempty"`
	// Errors are the rules that failed or were skipped on this event; the
	// other rules still ran.
	Errors []RuleError `json:"errors,omitempty"`
	// Block and Rewrite are the before-send answer, set only when an
	// enforce-mode before_send rule asked for it (block wins over rewrite).
	// Shadow matches never set them.
	Block   *Block   `json:"block,omitempty"`
	Rewrite *Rewrite `json:"rewrite,omitempty"`
}

// Block is a before-send refusal: Stream shows Text to the sender and does
// not save the message.
type Block struct {
	RuleID string `json:"rule_id"`
	Text   string `json:"text"`
}

// Rewrite is a before-send change of the message text: the words the
// rewrite rules' list functions found, masked (see MaskWords).
type Rewrite struct {
	RuleIDs []string `json:"rule_ids"`
	Words   []string `json:"words"` // the normalised entries masked
	Mask    string   `json:"mask"`  // MaskFirst, or MaskFull when any rewrite asked for it
	Text    string   `json:"text"`  // the new message text
}

// Matched reports whether any rule matched.
func (d Decision) Matched() bool { return len(d.Matches) > 0 }

// Match is one rule that matched, with why.
type Match struct {
	RuleID string `json:"rule_id"`
	Mode   Mode   `json:"mode"`
	// Evidence holds the values the rule's expression read, keyed by the
	// expression that read them: {"user.account_age": "3h0m0s",
	// "contains_any(text.words, \"profanity\")": ["darn"]}. Calls of the
	// list functions show the entries found; `x matches "re"` shows the
	// text that matched.
	Evidence map[string]any `json:"evidence"`
	// Actions are what the rule asks for; for a shadow rule, what it would
	// have asked for (they are not in Decision.Actions).
	Actions []Action `json:"actions,omitempty"`
	// Reason is the rule's reason template filled in, or its description.
	Reason string `json:"reason,omitempty"`
	// When is the rule's expression as written and Source where the rule
	// is: its file in the rules folder and its line ("links.yaml:4"). The
	// recorded decision keeps the exact expression that fired even after
	// the rule file changes.
	When   string `json:"when,omitempty"`
	Source string `json:"source,omitempty"`
}

// RuleError is a rule that could not be evaluated on an event.
type RuleError struct {
	RuleID string `json:"rule_id"`
	Error  string `json:"error"`
}

// budgetCheckEvery is how many rules run between two looks at the clock.
const budgetCheckEvery = 4

// errSkipped is recorded for the rules left when the budget runs out.
const errSkipped = "skipped: the event's evaluation budget was spent"

// Evaluate runs the rules that apply to ev's type, in order, and returns
// what they decided. It never panics: a rule that fails or panics is
// recorded in Decision.Errors and the others still run. An enforce-mode
// match of a rule with stop ends the evaluation. When the budget is spent
// the remaining rules are skipped and recorded as errors.
func (rs *RuleSet) Evaluate(ev *Event) (d Decision) { return rs.EvaluateWith(ev, nil) }

// Deferred is a decision left to whoever can read the event's history
// exactly once: the transaction that records the event (store), which
// counts, reads the values History lists and calls Decide. The webhook
// edge hands it over; both use this one type.
type Deferred struct {
	// RuleSetVersion is recorded with the event, as for a Decision.
	RuleSetVersion string
	// History lists the values the rule set reads (RuleSet.History). It
	// is the rule set's own list, shared by every Deferred it makes: read
	// only.
	History []HistoryKey
	// Reads lists those of History that Decide may read for this event
	// (see gateOf): a value left out is never read, and need not be
	// computed. Shared, read only; nil means all of History.
	Reads []HistoryKey
	// CountsMessages: the event, when it is a new message, is counted
	// (RuleSet.CountsMessages).
	CountsMessages bool
	// YoungAccount is the rule set's young-account age, which
	// counts.channel_young_messages reads with.
	YoungAccount time.Duration
	// ShadowStrikes: a shadow rule of the set reads strikes
	// (RuleSet.ShadowReadsStrikes), so Decide wants a shadow history.
	ShadowStrikes bool
	// Mark is what the recording transaction needs of the event (see
	// MarkToJudge), computed when it is deferred, off that transaction,
	// when Marked; Counted says it is the event's own mark.
	Mark            Mark
	Counted, Marked bool
	// Decide evaluates the event with its history, and the shadow rules
	// with theirs (see EvaluateSplit; nil: they read h too). It runs
	// inside the recording transaction, so it must be quick and pure; it
	// may run again if the transaction is retried.
	Decide func(h, shadow History) Decision
	// DecideKnown is Decide with histories that may lack some of the
	// values Reads lists (those its caller could count without reading
	// the database): known is false, and the decision void, when the rules
	// read one they lack; call Decide with them all then. A rule that
	// cannot match whatever the lacking value (`count > 10 && strikes…`
	// with a count of 3) does not read it. Like Decide, it may be called
	// more than once.
	DecideKnown func(h, shadow History) (d Decision, known bool)
}

// Defer returns ev's decision deferred until its history is known. It
// fills ev's environment once, to find the values Decide may read
// (Reads), and Decide evaluates the rules in it.
func (rs *RuleSet) Defer(ev *Event) (d *Deferred) {
	// Not History(): its copy would cost an allocation per message.
	d = &Deferred{RuleSetVersion: rs.version, History: rs.history, CountsMessages: rs.CountsMessages(), YoungAccount: rs.young,
		ShadowStrikes: rs.shadowStrikes, Marked: true}
	// own decides in an environment of its own.
	own := func(h, shadow History, partial bool) (Decision, bool) {
		return rs.evaluateSplit(ev, h, shadow, partial)
	}
	d.Decide, d.DecideKnown = deciders(own)
	if ev == nil {
		d.Mark, d.Counted = MarkToJudge(ev, d.CountsMessages)
		return d
	}
	defer func() {
		if recover() != nil { // own then reports it
			d.Mark, d.Counted = MarkToJudge(ev, d.CountsMessages)
			d.Reads = nil
			d.Decide, d.DecideKnown = deciders(own)
		}
	}()
	env := rs.envs.Get().(*Env)
	env.fill(ev, rs.needs, rs.young)
	d.Mark, d.Counted = markIn(ev, env, rs.needs, d.CountsMessages)
	var closed []int
	d.Reads, closed = rs.readsOf(ev, env)
	// The first decision takes the environment and returns it to the
	// pool; a second (a retried transaction) fills its own.
	var held atomic.Pointer[Env]
	held.Store(env)
	d.Decide, d.DecideKnown = deciders(func(h, shadow History, partial bool) (Decision, bool) {
		env := held.Swap(nil)
		if env == nil {
			return own(h, shadow, partial)
		}
		defer func() {
			env.reset()
			rs.envs.Put(env)
		}()
		env.partial = partial
		dec := rs.evaluateIn(ev, env, h, shadow, closed)
		return dec, !env.missed
	})
	return d
}

// deciders are Deferred.Decide and DecideKnown over decide, which says
// with partial whether the histories may lack values.
func deciders(decide func(h, shadow History, partial bool) (Decision, bool)) (
	func(h, shadow History) Decision, func(h, shadow History) (Decision, bool)) {
	return func(h, shadow History) Decision {
			d, _ := decide(h, shadow, false)
			return d
		}, func(h, shadow History) (Decision, bool) {
			return decide(h, shadow, true)
		}
}

// MarkToJudge is what judging ev in the recording transaction needs: its
// mark, when counts (the rules count messages) and ev is counted (MarkOf);
// else the user, channel and text fingerprint it reads its history with.
func MarkToJudge(ev *Event, counts bool) (m Mark, counted bool) {
	if counts {
		if m, ok := MarkOf(ev); ok {
			return m, true
		}
	}
	text := ""
	if ev.Message != nil {
		text = ev.Message.Text
	}
	return Mark{UserID: ev.SubjectUserID(), ChannelCID: ev.ChannelCID(), Fingerprint: Fingerprint(text)}, false
}

// EvaluateOrDefer evaluates ev at once when its type needs no history
// (nil Deferred), else defers it (see NeedsHistory).
func (rs *RuleSet) EvaluateOrDefer(ev *Event) (Decision, *Deferred) {
	if !rs.NeedsHistory(ev.Type) {
		return rs.Evaluate(ev), nil
	}
	return Decision{}, rs.Defer(ev)
}

// EvaluateWith is Evaluate with the event's history: the values of the
// keys RuleSet.History lists, computed by the caller. A key h lacks reads
// 0; the evidence of a matched rule shows each value it read
// (`counts.user_messages("1m") = 11`).
func (rs *RuleSet) EvaluateWith(ev *Event, h History) (d Decision) {
	return rs.EvaluateSplit(ev, h, nil)
}

// EvaluateSplit is EvaluateWith with a history of their own for the shadow
// rules: the strikes a shadow rule reads include what the shadow rules
// would have done (their would-be strikes), so that a shadow ladder climbs
// as it would enforced and a shadow "once per burst" guard fires once.
// A nil shadow history means the shadow rules read h, as enforce ones do.
func (rs *RuleSet) EvaluateSplit(ev *Event, h, shadow History) Decision {
	d, _ := rs.evaluateSplit(ev, h, shadow, false)
	return d
}

// evaluateSplit is EvaluateSplit; with partial, the histories may lack
// values, and known is false when the rules read one (see
// Deferred.DecideKnown).
func (rs *RuleSet) evaluateSplit(ev *Event, h, shadow History, partial bool) (d Decision, known bool) {
	d.RuleSetVersion = rs.version
	if ev == nil {
		return d, true
	}
	defer func() {
		if p := recover(); p != nil {
			d.Errors = append(d.Errors, RuleError{Error: fmt.Sprintf("panic: %v", p)})
		}
	}()
	env := rs.envs.Get().(*Env)
	defer func() {
		env.reset()
		rs.envs.Put(env)
	}()
	env.fill(ev, rs.needs, rs.young)
	env.partial = partial
	d = rs.evaluateIn(ev, env, h, shadow, nil)
	return d, !env.missed
}

// evaluateIn is EvaluateSplit in ev's environment, filled. The rules of
// closed (indices, ascending) are skipped: their gates were found false
// in env, so they cannot match (see gateOf).
func (rs *RuleSet) evaluateIn(ev *Event, env *Env, h, shadow History, closed []int) (d Decision) {
	d.RuleSetVersion = rs.version
	defer func() {
		if p := recover(); p != nil {
			d.Errors = append(d.Errors, RuleError{Error: fmt.Sprintf("panic: %v", p)})
		}
	}()
	env.history = h
	m := rs.vms.Get().(*vm.VM)
	defer rs.vms.Put(m)

	// The clock is read only when there are enough rules for a check.
	var start time.Time
	if rs.budget > 0 && len(rs.rules) > budgetCheckEvery {
		start = time.Now()
	}
	checked := 0
	for i, r := range rs.rules {
		if !r.appliesTo(ev.Type) {
			continue
		}
		if len(closed) > 0 && closed[0] == i {
			closed = closed[1:]
			continue
		}
		// Reading the clock costs as much as a simple rule, so it is read
		// every few rules; each rule's own cost is bounded at load.
		if !start.IsZero() && checked > 0 && checked%budgetCheckEvery == 0 && time.Since(start) > rs.budget {
			for _, skipped := range rs.rules[i:] {
				if skipped.appliesTo(ev.Type) {
					d.Errors = append(d.Errors, RuleError{RuleID: skipped.id, Error: errSkipped})
				}
			}
			break
		}
		checked++
		env.history = h
		if shadow != nil && r.mode == ModeShadow {
			env.history = shadow
		}
		matched, err := r.run(m, env)
		if err != nil {
			d.Errors = append(d.Errors, RuleError{RuleID: r.id, Error: err.Error()})
			continue
		}
		if !matched {
			continue
		}
		match := r.match(m, env)
		d.Matches = append(d.Matches, match)
		if r.mode == ModeEnforce {
			d.Actions = append(d.Actions, match.Actions...)
			if r.stop {
				break
			}
		}
	}
	d.beforeSend(ev)
	return d
}

// beforeSend fills Block or Rewrite from the enforce actions (see
// beforeSendAnswer).
func (d *Decision) beforeSend(ev *Event) {
	d.Block, d.Rewrite = beforeSendAnswer(d.Actions, ev)
}

// beforeSendAnswer is the before-send answer actions ask for: the first
// block wins; otherwise the words of every rewrite are masked in the full
// message text (also past the first MaxTextRunes characters the rules
// read). A rewrite that would not change the text is dropped, so the
// message is accepted as it is.
func beforeSendAnswer(actions []Action, ev *Event) (*Block, *Rewrite) {
	var rw *Rewrite
	for _, a := range actions {
		switch a.Type {
		case ActionBlock:
			return &Block{RuleID: a.RuleID, Text: a.Text}, nil
		case ActionRewrite:
			if rw == nil {
				rw = &Rewrite{Mask: MaskFirst}
			}
			if !slices.Contains(rw.RuleIDs, a.RuleID) {
				rw.RuleIDs = append(rw.RuleIDs, a.RuleID)
			}
			for _, w := range a.Words {
				if !slices.Contains(rw.Words, w) {
					rw.Words = append(rw.Words, w)
				}
			}
			if a.Mask == MaskFull {
				rw.Mask = MaskFull
			}
		}
	}
	if rw == nil || ev.Message == nil {
		return nil, nil
	}
	text := MaskWords(ev.Message.Text, rw.Words, rw.Mask == MaskFull)
	if text == ev.Message.Text {
		return nil, nil
	}
	rw.Text = text
	return nil, rw
}

// run evaluates the rule's condition, turning a panic into an error.
func (r *rule) run(m *vm.VM, env *Env) (matched bool, err error) {
	defer func() {
		if p := recover(); p != nil {
			matched, err = false, fmt.Errorf("panic: %v", p)
		}
	}()
	out, err := m.Run(r.when.prog, env)
	if err != nil {
		return false, runError(err)
	}
	b, _ := out.(bool)
	return b, nil
}

// runError shortens an expr-lang run error to one line (the VM's errors
// carry a multi-line source snippet).
func runError(err error) error {
	msg := err.Error()
	var fe *file.Error
	if errors.As(err, &fe) {
		msg = fe.Message
	}
	// expr-lang reports a missing (nil) value reaching a function or a
	// loop through reflect; say it in the rule's terms.
	if strings.Contains(msg, "on zero Value") {
		msg = "a value the rule reads is missing (nil): give it a default with ??, like int(user.custom.level ?? 0), or declare the custom field with a type and a default (" + msg + ")"
	}
	return errors.New(msg)
}

// match builds the Match of a rule that matched: its evidence, reason and
// filled actions.
func (r *rule) match(m *vm.VM, env *Env) Match {
	evidence, words := r.evidence(m, env)
	match := Match{RuleID: r.id, Mode: r.mode, Evidence: evidence, When: r.when.src, Source: r.file + ":" + strconv.Itoa(r.line)}
	if r.reason != nil {
		match.Reason = r.reason.render(m, env)
	} else {
		match.Reason = r.description
	}
	for _, spec := range r.actions {
		a := spec.action
		switch {
		case spec.reason != nil:
			a.Reason = truncateRunes(spec.reason.render(m, env), maxReasonRunes)
		case a.Type == ActionFlag || a.Type == ActionBan || a.Type == ActionMute:
			a.Reason = truncateRunes(match.Reason, maxReasonRunes)
		}
		if spec.text != nil {
			limit := maxWarnRunes
			if a.Type == ActionBlock {
				limit = maxBlockRunes
			}
			a.Text = truncateRunes(spec.text.render(m, env), limit)
		}
		if a.Type == ActionRewrite {
			a.Words = words
		}
		match.Actions = append(match.Actions, a)
	}
	return match
}

// evidence computes the values the rule's expression read. A probe that
// fails (an index out of range, say) is left out. words are the word-list
// entries the expression's list functions found, all of them (the
// evidence keeps only the first few): what a rewrite masks.
func (r *rule) evidence(m *vm.VM, env *Env) (ev map[string]any, words []string) {
	ev = make(map[string]any, len(r.when.evidence))
	for _, p := range r.when.evidence {
		v, err := safeRun(m, p.prog, env)
		if err != nil {
			continue
		}
		if p.words {
			if ws, ok := v.([]string); ok {
				for _, w := range ws {
					if !slices.Contains(words, w) {
						words = append(words, w)
					}
				}
			}
		}
		if p.re != nil {
			s, _ := v.(string)
			loc := p.re.FindStringIndex(s)
			if loc == nil {
				ev[p.key] = nil
				continue
			}
			v = s[loc[0]:loc[1]]
		}
		ev[p.key] = evidenceValue(v)
	}
	return ev, words
}

func safeRun(m *vm.VM, prog *vm.Program, env *Env) (out any, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return m.Run(prog, env)
}
