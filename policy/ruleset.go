package policy

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr/vm"
	"github.com/goccy/go-yaml/ast"
)

// DefaultBudget is how long Evaluate may spend on one event before it
// skips the remaining rules (recording each as an error). Each rule is
// bounded at load (microseconds on a normal message, at most a few
// milliseconds on a worst-case one); the budget bounds the sum, with room
// for a busy machine, since it is wall time.
const DefaultBudget = 20 * time.Millisecond

// Mode says whether a matched rule's actions are carried out.
type Mode string

const (
	// ModeEnforce: the rule's actions are requested.
	ModeEnforce Mode = "enforce"
	// ModeShadow: the rule is evaluated and its matches audited with the
	// actions it would have asked for, but it asks for none. It is the
	// default, so that a new rule goes live only when someone says so.
	ModeShadow Mode = "shadow"
)

// RuleSet is a compiled, immutable set of rules. It is safe for
// concurrent use.
type RuleSet struct {
	notes []Problem // what the load report mentions: empty files, ignored drafts
	// failing lists the examples that failed in a set loaded by LoadDraft
	// (Load refuses such a set).
	failing []Problem
	version string
	rules   []*rule // in evaluation order: priority (higher first), then file and position
	lists   map[string]*wordList
	fields  map[string]*customField // declared custom fields, by key (user.verified)
	needs   needs
	history []HistoryKey  // what the rules read of the past, sorted
	young   time.Duration // settings: young_account
	// shadowStrikes: a shadow rule reads strikes (ShadowReadsStrikes).
	shadowStrikes bool
	budget        time.Duration
	vms           *sync.Pool // of *vm.VM
	envs          *sync.Pool // of *Env
	reads         *readSets  // see readsOf
}

// rule is a compiled rule.
type rule struct {
	id          string
	file        string
	line        int
	description string
	reason      *template // nil: the description
	events      []string  // exact types, "*", or "family.*"
	mode        Mode
	priority    int
	stop        bool
	when        *program
	whenLine    int
	actions     []actionSpec
	examples    []rawExample
	history     []historyUse // lines are of the rule file
	guard       Guard
	sum         string // digest(), as loaded: a demoted copy keeps it
	// The rule as written, for Diff.
	reasonSrc   string
	actionsSrc  []string
	examplesSrc string
}

// RuleInfo describes a rule for status pages and `moderator rules test`.
type RuleInfo struct {
	ID          string       `json:"id"`
	File        string       `json:"file"`
	Line        int          `json:"line"`
	Description string       `json:"description,omitempty"`
	Mode        Mode         `json:"mode"`
	Events      []string     `json:"events"`
	Priority    int          `json:"priority,omitempty"`
	Stop        bool         `json:"stop,omitempty"`
	When        string       `json:"when"`
	Actions     []ActionType `json:"actions,omitempty"`
	Examples    int          `json:"examples"`
	// History lists the history values the rule reads, as it calls them.
	History []string `json:"history,omitempty"`
	// Guard is the rule's own demotion guard (zero fields: the defaults).
	Guard Guard `json:"guard,omitzero"`
	// Digest identifies the rule's definition: a demotion holds until it
	// changes.
	Digest string `json:"digest"`
}

// Problem is one thing wrong with a rules folder, at a place in a file.
type Problem struct {
	File string
	Line int
	Msg  string
}

// String formats the problem as compilers do: "file:line: message".
func (p Problem) String() string {
	if p.Line <= 0 {
		return p.File + ": " + p.Msg
	}
	return p.File + ":" + strconv.Itoa(p.Line) + ": " + p.Msg
}

// LoadError is every problem Load found. A folder with problems yields no
// rule set at all: half a rule set is not what staff reviewed.
type LoadError struct {
	Problems []Problem
}

// Error lists the problems, one per line.
func (e *LoadError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Load compiles the rules folder fsys: every rule file (*.yaml, *.yml) and
// word list (*.txt, named by its file name without the extension) in it
// and its subfolders. Other files, and files and folders whose names start
// with "." or "_" (editors' files, drafts), are ignored; ignored drafts
// are listed in the set's Notes. Each rule's condition is type-checked
// against Env, its actions validated, its cost bounded and its run on a
// synthetic worst-case event measured, and then its examples are run. The
// set is returned only when all of that passes; otherwise the error is a
// *LoadError listing every problem found.
//
// Nothing in the folder can crash or stall the caller: only regular files
// are read (see readRulesFolder), each under a byte limit, rule files are
// measured before they are parsed (checkYAMLShape), and a panic anywhere
// in the load, a library's included, refuses the set with its message.
// fsys should not follow symbolic links out of the folder nor block on
// open (rules.OpenDir gives such a view of a folder on disk).
func Load(fsys fs.FS) (*RuleSet, error) {
	return guard(".", func() (*RuleSet, error) { return load(fsys, defaultLimits()) })
}

// guard runs f, turning a panic into a LoadError for file: a bug in a
// library (or here) must refuse the rule set, never stop the service.
func guard[T any](file string, f func() (T, error)) (v T, err error) {
	defer func() {
		if p := recover(); p != nil {
			var zero T
			v, err = zero, &LoadError{Problems: []Problem{{File: file,
				Msg: fmt.Sprintf("could not be loaded: internal error: %v (please report it; the set in force stays)", p)}}}
		}
	}()
	return f()
}

// LoadDraft is Load for a candidate rule set that is not going live (a
// backtest): examples that fail do not refuse the set but are listed by
// FailingExamples, because the candidate is a draft and seeing what it
// would do is the point. Everything else refuses it as Load does: a rule
// that does not compile or is too costly cannot be evaluated.
func LoadDraft(fsys fs.FS) (*RuleSet, error) {
	return guard(".", func() (*RuleSet, error) { return loadWith(fsys, defaultLimits(), true) })
}

// FailingExamples lists the examples that failed in a set loaded by
// LoadDraft, as "file:line" problems; empty for a set loaded by Load.
func (rs *RuleSet) FailingExamples() []Problem { return slices.Clone(rs.failing) }

// load is Load with the worst-case limits as a parameter, for tests.
func load(fsys fs.FS, lim worstCaseLimits) (*RuleSet, error) { return loadWith(fsys, lim, false) }

// loadWith is load; draft keeps failing examples out of the problems
// (see LoadDraft).
func loadWith(fsys fs.FS, lim worstCaseLimits, draft bool) (*RuleSet, error) {
	src, err := readSources(fsys)
	if err != nil {
		return nil, err
	}
	problems, notes := src.problems, src.notes
	parsed, ps := parseRuleFiles(src.ruleFiles, &notes)
	problems = append(problems, ps...)
	fields, ps := compileFields(parsed.fields)
	problems = append(problems, ps...)
	set, ps := compileSettings(parsed.settings)
	problems = append(problems, ps...)
	c := newExprCompiler(src.lists, fields)
	_, ps = c.compileConditions(parsed.conditions)
	problems = append(problems, ps...)
	rs := &RuleSet{
		version: src.version,
		lists:   src.lists,
		fields:  fields,
		young:   set.youngAccount,
		budget:  DefaultBudget,
		vms:     newVMPool(),
		envs:    &sync.Pool{New: func() any { return new(Env) }},
		reads:   &readSets{},
	}
	ids, ps := rs.compileRules(c, parsed.rules)
	problems = append(problems, ps...)
	sortProblems(notes)
	rs.notes = notes
	broken, ps := rs.linkHistory(ids, parsed.rules)
	problems = append(problems, ps...)
	problems = append(problems, rs.measureAndRunExamples(lim, broken, draft)...)
	sortProblems(rs.failing)
	if len(problems) > 0 {
		sortProblems(problems)
		return nil, &LoadError{Problems: problems}
	}
	return rs, nil
}

// sources is what a rules folder holds, read: its word lists, compiled,
// its rule files, unparsed, and its version.
type sources struct {
	lists     map[string]*wordList
	ruleFiles []sourceFile
	version   string
	notes     []Problem
	problems  []Problem
}

// readSources reads the folder (readRulesFolder), compiles its word lists
// and hashes everything into the version.
func readSources(fsys fs.FS) (sources, error) {
	files, notes, problems, err := readRulesFolder(fsys)
	if err != nil {
		return sources{}, err
	}
	src := sources{lists: make(map[string]*wordList), notes: notes, problems: problems}
	hash := sha256.New()
	for _, f := range files {
		// The version covers names and contents, length-prefixed so that
		// no two folders hash alike.
		fmt.Fprintf(hash, "%d:%s%d:", len(f.path), f.path, len(f.data))
		hash.Write(f.data)
		ext := path.Ext(f.path)
		if ext != ".txt" {
			src.ruleFiles = append(src.ruleFiles, f)
			continue
		}
		name := strings.TrimSuffix(path.Base(f.path), ext)
		if prev, dup := src.lists[name]; dup {
			src.problems = append(src.problems, Problem{File: f.path, Msg: fmt.Sprintf("word list %q is also defined by %s", name, prev.file)})
			continue
		}
		l, ps := parseWordList(f.path, f.data)
		src.problems = append(src.problems, ps...)
		src.notes = append(src.notes, l.warnings...)
		src.lists[name] = l
	}
	refused := slices.ContainsFunc(src.problems, func(p Problem) bool { return path.Ext(p.File) != ".txt" })
	if len(src.ruleFiles) == 0 && !refused {
		src.problems = append(src.problems, Problem{File: ".", Msg: "no rule files (*.yaml, *.yml) in the rules folder"})
	}
	src.version = hex.EncodeToString(hash.Sum(nil))[:12]
	return src, nil
}

// compileRules compiles the rules into rs, in evaluation order, and
// returns them by id.
func (rs *RuleSet) compileRules(c *exprCompiler, raws []rawRule) (map[string]*rule, []Problem) {
	var problems []Problem
	ids := make(map[string]*rule)
	for _, raw := range raws {
		r, ps := c.compileRule(raw)
		problems = append(problems, ps...)
		if r == nil {
			continue
		}
		if prev, dup := ids[r.id]; dup {
			problems = append(problems,
				Problem{File: r.file, Line: r.line, Msg: fmt.Sprintf("rule id %q is also used at %s:%d", r.id, prev.file, prev.line)},
				Problem{File: prev.file, Line: prev.line, Msg: fmt.Sprintf("rule id %q is also used at %s:%d", r.id, r.file, r.line)})
			continue
		}
		ids[r.id] = r
		rs.rules = append(rs.rules, r)
	}
	// Stable: equal priorities keep file and position order.
	slices.SortStableFunc(rs.rules, func(a, b *rule) int { return cmp.Compare(b.priority, a.priority) })
	return ids, problems
}

// linkHistory gathers what the rules read of the past and checks that each
// strikes.by_rule names a rule of the set; it returns the rules whose
// examples cannot run for want of one. A rule that is written (in raws)
// but failed to compile has its own problems: it is not called missing.
func (rs *RuleSet) linkHistory(ids map[string]*rule, raws []rawRule) (map[*rule]bool, []Problem) {
	declared := make(map[string]bool)
	for _, raw := range raws {
		declared[raw.id] = true
	}
	var problems []Problem
	broken := make(map[*rule]bool)
	for _, r := range rs.rules {
		rs.needs |= r.needs()
		for _, u := range r.history {
			if _, ok := ids[u.key.Arg]; u.key.Name == StrikesByRule && !ok {
				broken[r] = true
				if !declared[u.key.Arg] {
					problems = append(problems, Problem{File: r.file, Line: u.line,
						Msg: fmt.Sprintf("%s: no rule %q in this rules folder%s", StrikesByRule, u.key.Arg, suggest(u.key.Arg, slices.Collect(maps.Keys(declared))))})
				}
			}
			if !slices.Contains(rs.history, u.key) {
				rs.history = append(rs.history, u.key)
			}
		}
	}
	slices.SortFunc(rs.history, compareHistoryKeys)
	rs.shadowStrikes = rs.findShadowStrikes()
	return broken, problems
}

// measureAndRunExamples measures every rule that compiled on the
// worst-case events and runs its examples, even when other rules have
// problems, so that one run reports everything. In a draft, failing
// examples are kept in rs.failing instead of refusing the set.
func (rs *RuleSet) measureAndRunExamples(lim worstCaseLimits, broken map[*rule]bool, draft bool) []Problem {
	var problems []Problem
	worst := make(map[string][]*Env)
	for _, r := range rs.rules {
		if broken[r] {
			continue
		}
		if ps := rs.checkWorstCase(r, lim, worst); len(ps) > 0 {
			problems = append(problems, ps...)
			continue
		}
		if draft {
			rs.failing = append(rs.failing, rs.runExamples(r)...)
			continue
		}
		problems = append(problems, rs.runExamples(r)...)
	}
	return problems
}

// parseRuleFiles parses every rule file, noting the ones that declare
// nothing, and gathers their rules and declarations.
func parseRuleFiles(files []sourceFile, notes *[]Problem) (ruleFile, []Problem) {
	var all ruleFile
	var problems []Problem
	for _, f := range files {
		rf, ps := parseRuleFileGuarded(f.path, f.data)
		problems = append(problems, ps...)
		if rf.empty() && len(ps) == 0 {
			*notes = append(*notes, Problem{File: f.path, Msg: "no rules in this file"})
		}
		all.rules = append(all.rules, rf.rules...)
		all.fields = append(all.fields, rf.fields...)
		all.conditions = append(all.conditions, rf.conditions...)
		all.settings = append(all.settings, rf.settings...)
	}
	return all, problems
}

func sortProblems(ps []Problem) {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line))
	})
}

func newVMPool() *sync.Pool {
	return &sync.Pool{New: func() any { return &vm.VM{MemoryBudget: vmMemoryBudget} }}
}

// Version returns the rule set's content hash: the first 12 hex digits of
// a SHA-256 over the names and contents of every rule file and word list.
// The same folder always has the same version; decisions record it.
func (rs *RuleSet) Version() string { return rs.version }

// Notes is the load report: what loaded without being a problem but
// may not be what staff meant, such as a file with no rules, or a file
// or folder ignored because its name starts with "_".
func (rs *RuleSet) Notes() []Problem { return slices.Clone(rs.notes) }

// Rules describes the rules in evaluation order.
func (rs *RuleSet) Rules() []RuleInfo {
	out := make([]RuleInfo, len(rs.rules))
	for i, r := range rs.rules {
		info := RuleInfo{
			ID:          r.id,
			File:        r.file,
			Line:        r.line,
			Description: r.description,
			Mode:        r.mode,
			Events:      slices.Clone(r.events),
			Priority:    r.priority,
			Stop:        r.stop,
			When:        r.when.src,
			Examples:    len(r.examples),
			Guard:       r.guard,
			Digest:      r.sum,
		}
		for _, a := range r.actions {
			info.Actions = append(info.Actions, a.action.Type)
		}
		for _, k := range r.historyKeys() {
			info.History = append(info.History, k.String())
		}
		out[i] = info
	}
	return out
}

// WithBudget returns a copy of the set that spends at most d on one event
// (0: no limit). The copy shares the compiled rules.
func (rs *RuleSet) WithBudget(d time.Duration) *RuleSet {
	c := *rs
	c.budget = d
	return &c
}

// History lists the history values the set's rules read, sorted: what
// the caller must compute (in the recording transaction) and pass to
// EvaluateWith. Empty when no rule reads any: such a set costs nothing
// extra per event.
func (rs *RuleSet) History() []HistoryKey { return slices.Clone(rs.history) }

// CountsMessages reports whether a rule of the set reads a counter, so
// that every new message must be counted (history.go's Mark), whether or
// not a rule reading a counter applies to it.
func (rs *RuleSet) CountsMessages() bool {
	return slices.ContainsFunc(rs.history, func(k HistoryKey) bool { return !k.IsStrike() })
}

// ShadowReadsStrikes reports whether a shadow rule of the set (written in
// shadow mode, or demoted by WithShadow) reads strikes: such a rule keeps
// a would-be strike lineage of its own, and its events are judged with a
// second history (EvaluateSplit). A set without one costs nothing extra.
func (rs *RuleSet) ShadowReadsStrikes() bool { return rs.shadowStrikes }

func (rs *RuleSet) findShadowStrikes() bool {
	for _, r := range rs.rules {
		if r.mode == ModeShadow && slices.ContainsFunc(r.history, func(u historyUse) bool { return u.key.IsStrike() }) {
			return true
		}
	}
	return false
}

// NeedsHistory reports whether an event of type t must be judged with
// its history: a rule that applies to t reads it, or t is a new message
// and the set counts messages. Events for which it is false are judged
// with Evaluate alone.
func (rs *RuleSet) NeedsHistory(t string) bool {
	if len(rs.history) == 0 || t == EventBeforeSend {
		return false
	}
	if t == "message.new" && rs.CountsMessages() {
		return true
	}
	for _, r := range rs.rules {
		if len(r.history) > 0 && r.appliesTo(t) {
			return true
		}
	}
	return false
}

// historyKeys returns the distinct history values the rule reads.
func (r *rule) historyKeys() []HistoryKey {
	var keys []HistoryKey
	for _, u := range r.history {
		if !slices.Contains(keys, u.key) {
			keys = append(keys, u.key)
		}
	}
	return keys
}

func (r *rule) needs() needs {
	nd := r.when.needs | r.reason.needs()
	for _, a := range r.actions {
		nd |= a.reason.needs() | a.text.needs()
	}
	return nd
}

// appliesTo reports whether the rule is evaluated on events of type t.
func (r *rule) appliesTo(t string) bool { return eventsMatch(r.events, t) }

// AppliesTo reports whether the rule is evaluated on events of type t.
func (r RuleInfo) AppliesTo(t string) bool { return eventsMatch(r.Events, t) }

// EventBeforeSend is the pseudo event type of the before-send phase.
// Stream's before-send payload has no type; the webhook sets this one
// before evaluating. Only rules that name it run there: "*" does not
// cover it, because only block and rewrite make sense before a message
// exists.
const EventBeforeSend = "before_send"

// eventsMatch reports whether the event type t is one of events: an exact
// type, "*" (every event but before_send) or a family such as "message.*".
func eventsMatch(events []string, t string) bool {
	for _, e := range events {
		if e == t {
			return true
		}
		if t == EventBeforeSend {
			continue
		}
		if e == "*" {
			return true
		}
		if family, ok := strings.CutSuffix(e, ".*"); ok && strings.HasPrefix(t, family+".") {
			return true
		}
	}
	return false
}

// knownEventTypes are the Stream event types a rule may name. A type not
// listed is refused, so that "mesage.new" is a load error instead of a
// rule that never runs; "family.*" and "*" match by prefix.
func knownEventTypes() []string {
	return []string{
		"message.new", "message.updated", "message.deleted", "message.undeleted", "message.read",
		"message.flagged", "message.unflagged",
		"reaction.new", "reaction.updated", "reaction.deleted",
		"member.added", "member.updated", "member.removed",
		"channel.created", "channel.updated", "channel.deleted", "channel.truncated", "channel.hidden",
		"channel.visible", "channel.muted", "channel.unmuted", "channel.frozen", "channel.unfrozen",
		"user.updated", "user.deleted", "user.banned", "user.unbanned", "user.flagged", "user.unflagged",
		"user.muted", "user.unmuted", "user.deactivated", "user.reactivated", "user.presence.changed",
		"user.unread_message_reminder", "user.messages.deleted",
		"thread.updated",
		EventBeforeSend,
	}
}

// eventsKnown reports whether e names known event types: a known type,
// "*", or "family.*" for a family with known types.
func eventsKnown(e string, known []string) bool {
	if e == "*" || slices.Contains(known, e) {
		return true
	}
	family, ok := strings.CutSuffix(e, ".*")
	return ok && slices.ContainsFunc(known, func(k string) bool { return strings.HasPrefix(k, family+".") })
}

func defaultEvents() []string { return []string{"message.new", "message.updated"} }

// validRuleID reports whether id is 1-64 lower-case letters, digits, -, _
// or ., starting with a letter or digit: ids go into the audit trail, URLs
// and log lines.
func validRuleID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
		case i > 0 && (r == '-' || r == '_' || r == '.'):
		default:
			return false
		}
	}
	return true
}

// compileRule turns a parsed rule into a compiled one, or returns its
// problems.
func (c *exprCompiler) compileRule(raw rawRule) (*rule, []Problem) {
	var problems []Problem
	bad := func(line int, format string, args ...any) {
		problems = append(problems, Problem{File: raw.file, Line: line, Msg: fmt.Sprintf(format, args...)})
	}
	exprBad := func(base int, what string, errs []exprError) {
		for _, e := range errs {
			bad(base+e.line-1, "%s: %s", what, e.String())
		}
	}
	r := &rule{
		id:          raw.id,
		file:        raw.file,
		line:        raw.line,
		description: raw.description,
		priority:    raw.priority,
		stop:        raw.stop,
		whenLine:    raw.whenLine,
		examples:    raw.examples,
		reasonSrc:   raw.reason,
		actionsSrc:  actionsSource(raw.actions),
		examplesSrc: examplesSource(raw.examples),
	}
	if !validRuleID(raw.id) {
		bad(raw.idLine, "rule id %q: use 1-64 lower-case letters, digits, -, _ or . (ids appear in the audit trail)", raw.id)
	}
	if raw.description == "" {
		bad(raw.line, "rule %s has no description (reviewers read it)", raw.id)
	}
	if g, err := compileGuard(raw.guard); err != nil {
		bad(raw.guardLine, "%v", err)
	} else {
		r.guard = g
	}

	switch Mode(raw.mode) {
	case "", ModeShadow:
		r.mode = ModeShadow
	case ModeEnforce:
		r.mode = ModeEnforce
	default:
		bad(raw.modeLine, "mode %q: want enforce or shadow", raw.mode)
	}

	var valid []string // the known events; actions are checked against them
	r.events, valid = checkEvents(raw, bad)

	when, errs := c.compile(raw.when, kindCondition, true)
	for _, e := range errs {
		// The file's line and column, wherever YAML folded the text.
		line, msg := placeExprError(e, raw.lines, raw.whenKeyLine, raw.whenLine, raw.when)
		bad(line, "when: %s", msg)
	}
	r.when = when
	if when != nil && slices.ContainsFunc(raw.actions, func(a rawAction) bool { return a.typ == string(ActionRewrite) }) &&
		!slices.ContainsFunc(when.evidence, func(p probe) bool { return p.words }) {
		bad(raw.whenLine, "rewrite masks the words a list function found, but this rule's when calls none: use contains_any(text.words, \"list\")")
	}

	if when != nil {
		for _, u := range when.history {
			r.history = append(r.history, historyUse{key: u.key, line: raw.whenLine + u.line - 1})
		}
	}

	if raw.reason != "" {
		t, errs := c.parseTemplate(raw.reason)
		exprBad(raw.reasonLine, "reason", errs)
		r.reason = t
		for _, k := range t.historyKeys() {
			r.history = append(r.history, historyUse{key: k, line: raw.reasonLine})
		}
	}

	if len(raw.actions) == 0 {
		bad(raw.line, "rule %s has no actions (a shadow rule lists the actions it would take)", raw.id)
	}
	for _, a := range raw.actions {
		spec, ps := c.compileAction(raw, a, valid)
		problems = append(problems, ps...)
		if spec != nil {
			spec.action.RuleID = raw.id
			r.actions = append(r.actions, *spec)
		}
	}

	r.addActionHistory()
	if slices.Contains(r.events, EventBeforeSend) {
		for _, u := range r.history {
			bad(u.line, "%s cannot be read by a before_send rule: the hook answers before the database is asked (read it in a message.new rule)", u.key.Name)
		}
	}

	checkExamples(raw, r.events, bad)
	if len(problems) > 0 {
		return nil, problems
	}
	r.sum = r.digest()
	return r, nil
}

// addActionHistory adds the history values its actions' texts read, at
// the rule's line.
func (r *rule) addActionHistory() {
	for _, a := range r.actions {
		for _, k := range append(a.reason.historyKeys(), a.text.historyKeys()...) {
			r.history = append(r.history, historyUse{key: k, line: r.line})
		}
	}
}

// checkEvents returns the events a rule applies to (its own, or the
// default) and those of them that are known, reporting the others.
func checkEvents(raw rawRule, bad func(line int, format string, args ...any)) (events, valid []string) {
	events = raw.events
	if raw.events == nil {
		events = defaultEvents()
	}
	if len(events) == 0 {
		bad(raw.eventsLine, "events is empty: leave it out for message.new and message.updated, or use \"*\" for every event")
	}
	known := knownEventTypes()
	for _, e := range events {
		if !eventsKnown(e, known) {
			bad(raw.eventsLine, "unknown event type %q%s", e, suggest(e, known))
			continue
		}
		valid = append(valid, e)
	}
	if slices.Contains(events, EventBeforeSend) && len(events) > 1 {
		bad(raw.eventsLine, "before_send cannot be mixed with other events (it takes only block and rewrite): write a separate rule")
	}
	return events, valid
}

// checkExamples checks what a rule's examples are, before they run: at
// least one that matches and one that does not, and the before-send
// expectations only on a before_send rule.
func checkExamples(raw rawRule, events []string, bad func(line int, format string, args ...any)) {
	var matching, nonMatching int
	for _, ex := range raw.examples {
		if (ex.hasBlock || ex.hasText) && !slices.Contains(events, EventBeforeSend) {
			bad(cmp.Or(ex.blockLine, ex.textLine), "expect block: and text: check a before_send rule's answer; this rule runs on %s", strings.Join(events, ", "))
		}
		if ex.match {
			matching++
		} else {
			nonMatching++
		}
	}
	if matching == 0 || nonMatching == 0 {
		bad(raw.line, "rule %s needs at least one example that matches and one that does not (it has %d and %d)", raw.id, matching, nonMatching)
	}
}

// hasParam reports whether the action's parameters name key.
func hasParam(a rawAction, key string) bool {
	if m, ok := a.params.(*ast.MappingNode); ok {
		for _, kv := range m.Values {
			if kv.Key.String() == key {
				return true
			}
		}
	}
	return false
}

// paramLine returns the line where the value of an action's parameter
// starts (the line after "reason: |" for a block), or the action's line.
func paramLine(a rawAction, key string) int {
	if m, ok := a.params.(*ast.MappingNode); ok {
		for _, kv := range m.Values {
			if kv.Key.String() == key {
				return valueLine(kv.Value)
			}
		}
	}
	return a.line
}

// suggest returns ` (did you mean "x"?)` for the known name closest to s,
// when one is close.
func suggest(s string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if d := editDistance(s, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between a and b, for short
// names.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
