package policy

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/checker"
	"github.com/expr-lang/expr/compiler"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/optimizer"
	"github.com/expr-lang/expr/vm"
)

// Limits on expressions, checked at load. Together with the disabled
// builtins, the cost estimate and the VM's memory budget they bound what
// one rule can cost on any event.
const (
	maxExprBytes   = 4096    // length of one expression's source
	maxExprNodes   = 400     // AST nodes (expr.MaxNodes)
	maxExprDepth   = 40      // nesting of the AST
	maxPatternLen  = 1000    // a regular expression's source
	maxRangeLen    = 10_000  // a literal range a..b
	maxCost        = 1 << 20 // estimated steps on a worst-case event
	vmMemoryBudget = 100_000 // elements a run may allocate (ranges, arrays, maps)
)

// exprKind says what an expression is for: a rule's condition must be a
// bool, a template placeholder may be anything.
type exprKind int

const (
	kindCondition exprKind = iota
	kindValue
)

// program is a compiled expression.
type program struct {
	src      string
	prog     *vm.Program
	needs    needs
	evidence []probe
	history  []historyUse // the history functions it calls
	// gate is a condition's leading operands that read no history (see
	// gateOf); nil for none.
	gate *vm.Program
}

// probe computes one evidence value: the value of a member chain or call
// the expression reads (or, for `x matches "re"`, the text that matched).
type probe struct {
	key  string
	prog *vm.Program
	re   *regexp.Regexp
	// words marks a probe whose value is the word-list entries found in
	// the text (a hits call): what a rewrite action masks.
	words bool
}

// exprError is a problem at a line of an expression's source (1-based).
type exprError struct {
	line int
	from int // rune offset in the source, for exprPos; -1 when unknown
	col  int // 1-based column in the source line, shown when > 0
	msg  string
	hint string // what to write instead (plainwords.go)
}

// lineError is a problem at a line, without a position in it.
func lineError(line int, msg string) exprError { return exprError{line: line, from: -1, msg: msg} }

// text formats the problem with col as its column (0: none).
func (e exprError) text(col int) string {
	msg := e.msg
	if col > 0 {
		msg = fmt.Sprintf("%s (column %d)", msg, col)
	}
	return withHint(msg, e.hint)
}

// String formats the problem with its column in the expression.
func (e exprError) String() string { return e.text(e.col) }

// exprCompiler compiles the expressions of one rule set against the
// environment and the set's word lists.
type exprCompiler struct {
	lists      map[string]*wordList
	fields     map[string]*customField
	conditions map[string]*condition // set by compileConditions
	within     []string              // the condition being compiled, if one is
	opts       []expr.Option
}

func newExprCompiler(lists map[string]*wordList, fields map[string]*customField) *exprCompiler {
	opts := []expr.Option{
		expr.Env(Env{}),
		expr.MaxNodes(maxExprNodes),
		expr.DisableAllBuiltins(),
	}
	for _, name := range allowedBuiltins() {
		opts = append(opts, expr.EnableBuiltin(name))
	}
	opts = append(opts, functionOptions(lists)...)
	opts = append(opts, fieldOptions(fields)...)
	return &exprCompiler{lists: lists, fields: fields, opts: opts}
}

// compile type-checks src, refuses what rules may not do, folds constant
// durations, estimates the worst-case cost and compiles it, with probes
// for the evidence when withEvidence.
func (c *exprCompiler) compile(src string, kind exprKind, withEvidence bool) (*program, []exprError) {
	if strings.TrimSpace(src) == "" {
		return nil, []exprError{lineError(1, "empty expression")}
	}
	if len(src) > maxExprBytes {
		return nil, []exprError{lineError(1, fmt.Sprintf("expression is %d bytes long; the limit is %d", len(src), maxExprBytes))}
	}
	cfg := conf.CreateNew()
	for _, op := range c.opts {
		op(cfg)
	}
	if kind == kindCondition {
		expr.AsBool()(cfg)
	}
	for name := range cfg.Disabled {
		delete(cfg.Builtins, name)
	}
	// Conditions are inlined first: they may read custom fields.
	// Each patcher costs the checker a pass, so it is added only when the
	// source may need it.
	cp := &conditionPatcher{conds: c.conditions, cfg: cfg, stack: slices.Clone(c.within)}
	usesCondition := false
	for name := range c.conditions {
		usesCondition = usesCondition || strings.Contains(src, name)
	}
	if usesCondition {
		cfg.Visitors = append(cfg.Visitors, cp)
	}
	fp := &fieldPatcher{fields: c.fields}
	if usesCondition || strings.Contains(src, "custom") {
		cfg.Visitors = append(cfg.Visitors, fp)
	}
	cfg.Check()

	tree, err := checker.ParseCheck(src, cfg)
	if patchErrs := append(cp.errs, fp.errs...); len(patchErrs) > 0 {
		// A broken condition or an undeclared custom field is the cause
		// of whatever the checker says about it.
		errs := make([]exprError, len(patchErrs))
		for i, e := range patchErrs {
			errs[i] = exprError{line: lineIn(src, e.node), from: e.node.Location().From, msg: e.msg}
		}
		return nil, errs
	}
	if err != nil {
		return nil, []exprError{fromExprError(err)}
	}
	w := &walker{c: c, src: src, scope: map[string]float64{}}
	w.walk(&tree.Node, 0)
	if len(w.errs) > 0 {
		return nil, w.errs
	}
	cost, _ := w.estimate(tree.Node, estScope{})
	if cost > maxCost {
		return nil, []exprError{lineError(1, fmt.Sprintf("expression could take about %.0f steps on a long message (the limit is %d): avoid nested loops over text.words and large ranges", cost, maxCost))}
	}
	if err := optimizer.Optimize(&tree.Node, cfg); err != nil {
		return nil, []exprError{fromExprError(err)}
	}
	prog, err := compiler.Compile(tree, cfg)
	if err != nil {
		return nil, []exprError{fromExprError(err)}
	}
	p := &program{src: src, prog: prog, needs: w.needs, history: w.history}
	if kind == kindCondition {
		p.gate = prog // reads no history: its rule's reason may
		if len(w.history) > 0 {
			p.gate = gateOf(tree, cfg)
		}
	}
	if withEvidence {
		for _, e := range w.evidence {
			ep, errs := c.compile(e.src, kindValue, false)
			if len(errs) > 0 {
				// A piece of a valid expression compiles on its own;
				// if one does not, it is left out of the evidence.
				continue
			}
			p.needs |= ep.needs
			p.evidence = append(p.evidence, probe{key: e.key, prog: ep.prog, re: e.re,
				words: strings.HasPrefix(e.src, fnHits+"(")})
		}
	}
	return p, nil
}

// fromExprError turns an expr-lang error into a line and a message in the
// words of rule files rather than Go type names.
func fromExprError(err error) exprError {
	var fe *file.Error
	if errors.As(err, &fe) {
		e := exprError{line: max(fe.Line, 1), from: fe.From, msg: envTypeNames().Replace(fe.Message), hint: exprHint(fe.Message)}
		if fe.Column > 0 || fe.Line > 1 {
			e.col = fe.Column + 1
		}
		return e
	}
	return exprError{line: 1, from: -1, msg: envTypeNames().Replace(err.Error()), hint: exprHint(err.Error())}
}

// envTypeNames rewrites the Go type names of the environment in checker
// messages ("type policy.UserEnv has no field acount_age").
func envTypeNames() *strings.Replacer {
	return strings.NewReplacer(
		"policy.EventEnv", "event",
		"policy.MessageEnv", "message",
		"policy.AttachmentEnv", "attachment",
		"policy.UserEnv", "user",
		"policy.ChannelEnv", "channel",
		"policy.TextEnv", "text",
		"policy.CountsEnv", "counts",
		"policy.StrikesEnv", "strikes",
		"policy.Env", "the rule environment",
	)
}

// isEnvRoot reports whether name is a top-level name of Env.
func isEnvRoot(name string) bool {
	switch name {
	case "event", "message", "user", "channel", "text":
		return true
	}
	return false
}

// evidenceItem is a sub-expression to record when the rule matches.
type evidenceItem struct {
	key string
	src string
	re  *regexp.Regexp
}

// walker checks a type-checked expression tree for what rules may not do,
// folds literal durations, and collects the evidence to record and the
// derived values the expression reads.
type walker struct {
	c        *exprCompiler
	src      string
	errs     []exprError
	needs    needs
	evidence []evidenceItem
	history  []historyUse
	seen     map[string]bool
	scope    map[string]float64 // let variables in scope (value: estimated size)
	quiet    bool               // set by call: the call's arguments are not evidence
	mute     int                // > 0 while walking such arguments
}

func (w *walker) fail(n ast.Node, format string, args ...any) {
	w.errs = append(w.errs, exprError{line: w.lineOf(n), from: n.Location().From, msg: fmt.Sprintf(format, args...)})
}

// lineOf returns the 1-based line of n in the expression's source.
func (w *walker) lineOf(n ast.Node) int { return lineIn(w.src, n) }

// lineIn returns the 1-based line of n in src.
func lineIn(src string, n ast.Node) int {
	from := n.Location().From
	line := 1
	i := 0
	for _, r := range src {
		if i == from {
			break
		}
		if r == '\n' {
			line++
		}
		i++
	}
	return line
}

func (w *walker) record(key, src string, re *regexp.Regexp) {
	if w.mute > 0 {
		return
	}
	if w.seen == nil {
		w.seen = make(map[string]bool)
	}
	if w.seen[key] {
		return
	}
	w.seen[key] = true
	w.evidence = append(w.evidence, evidenceItem{key: key, src: src, re: re})
}

func (w *walker) walk(np *ast.Node, depth int) {
	if *np == nil || len(w.errs) > 10 {
		return
	}
	if depth > maxExprDepth {
		w.fail(*np, "expression is nested more than %d levels deep", maxExprDepth)
		return
	}
	d := depth + 1
	switch n := (*np).(type) {
	case *ast.IdentifierNode:
		// The whole text (or the whole environment, $env) may read any
		// derived value.
		_, isLet := w.scope[n.Value]
		if !isLet && (n.Value == "text" || n.Value == "$env") {
			w.needs |= needAll
		}
		if !isLet && isHistoryRoot(n.Value) {
			w.fail(n, "%s.… is a set of functions: call one with a literal window, like %s", n.Value, historyExample(n.Value))
		}
	case *ast.MemberNode:
		if id, ok := n.Node.(*ast.IdentifierNode); ok && id.Value == "$env" {
			if p, ok := n.Property.(*ast.StringNode); ok && isHistoryRoot(p.Value) {
				w.fail(n, "call %s.… directly, like %s", p.Value, historyExample(p.Value))
				return
			}
		}
		if path, ok := w.envChain(n); ok {
			if path[0] == "text" {
				w.needs |= textFieldNeeds(path[1])
			}
			w.record(n.String(), n.String(), nil)
			return
		}
		w.walk(&n.Node, d)
		w.walk(&n.Property, d)
	case *ast.ChainNode:
		w.walk(&n.Node, d)
	case *ast.UnaryNode:
		w.walk(&n.Node, d)
	case *ast.BinaryNode:
		w.binary(n)
		w.walk(&n.Left, d)
		w.walk(&n.Right, d)
	case *ast.CallNode:
		w.walkCall(np, n, d)
	case *ast.BuiltinNode:
		// expr-lang parses its looping builtins (reduce, groupBy, sortBy)
		// whatever the configuration says, so they are refused here.
		if !slices.Contains(allowedBuiltins(), n.Name) {
			w.fail(n, "unknown name %s (it is not available in rules)", n.Name)
			return
		}
		for i := range n.Arguments {
			w.walk(&n.Arguments[i], d)
		}
	case *ast.PredicateNode:
		w.walk(&n.Node, d)
	case *ast.SliceNode:
		w.walk(&n.Node, d)
		w.walk(&n.From, d)
		w.walk(&n.To, d)
	case *ast.ConditionalNode:
		w.walk(&n.Cond, d)
		w.walk(&n.Exp1, d)
		w.walk(&n.Exp2, d)
	case *ast.VariableDeclaratorNode:
		w.walk(&n.Value, d)
		_, size := w.estimate(n.Value, estScope{lets: w.scope})
		prev, shadowed := w.scope[n.Name]
		w.scope[n.Name] = size
		w.walk(&n.Expr, d)
		if shadowed {
			w.scope[n.Name] = prev
		} else {
			delete(w.scope, n.Name)
		}
	case *ast.SequenceNode:
		for i := range n.Nodes {
			w.walk(&n.Nodes[i], d)
		}
	case *ast.ArrayNode:
		for i := range n.Nodes {
			w.walk(&n.Nodes[i], d)
		}
	case *ast.MapNode:
		for i := range n.Pairs {
			w.walk(&n.Pairs[i], d)
		}
	case *ast.PairNode:
		w.walk(&n.Key, d)
		w.walk(&n.Value, d)
	}
}

// walkCall walks a call: a custom field's read is evidence as the field
// (user.custom.verified), a rule function is checked (call), and the
// arguments are walked, as evidence unless the call is recorded whole.
func (w *walker) walkCall(np *ast.Node, n *ast.CallNode, d int) {
	if key, ok := fieldKeyOf(n); ok {
		w.record(key, key, nil)
		return
	}
	w.quiet = false
	w.call(np, n)
	if _, folded := (*np).(*ast.ConstantNode); folded {
		return
	}
	quiet := w.quiet
	w.quiet = false
	for i := range n.Arguments {
		if quiet {
			w.mute++
		}
		w.walk(&n.Arguments[i], d)
		if quiet {
			w.mute--
		}
	}
}

// envChain returns the path of a member chain rooted at the environment
// with literal properties (user.custom.tier, message.attachments[0]), the
// values the evidence can read on their own.
func (w *walker) envChain(n ast.Node) ([]string, bool) {
	var path []string
	for {
		switch m := n.(type) {
		case *ast.MemberNode:
			switch p := m.Property.(type) {
			case *ast.StringNode:
				path = append(path, p.Value)
			case *ast.IntegerNode:
				path = append(path, fmt.Sprint(p.Value))
			default:
				return nil, false
			}
			n = m.Node
		case *ast.ChainNode:
			n = m.Node
		case *ast.IdentifierNode:
			if _, isLet := w.scope[m.Value]; isLet || !isEnvRoot(m.Value) {
				return nil, false
			}
			path = append(path, m.Value)
			for i, j := 0, len(path)-1; i < j; i, j = i+1, j-1 {
				path[i], path[j] = path[j], path[i]
			}
			return path, true
		default:
			return nil, false
		}
	}
}

// binary checks the operators that could build unbounded values or
// compile patterns at run time.
func (w *walker) binary(n *ast.BinaryNode) {
	switch n.Operator {
	case "matches":
		s, ok := n.Right.(*ast.StringNode)
		if !ok {
			w.fail(n, "the pattern of matches must be a string literal, so that it is compiled once, at load")
			return
		}
		if len(s.Value) > maxPatternLen {
			w.fail(n, "pattern is %d bytes long; the limit is %d", len(s.Value), maxPatternLen)
			return
		}
		re, err := regexp.Compile(s.Value)
		if err != nil {
			w.fail(n, "pattern: %v", err)
			return
		}
		if w.closed(n.Left) {
			w.record(n.String(), n.Left.String(), re)
		}
	case "+":
		if !addable(n.Left.Type()) && !addable(n.Right.Type()) {
			w.fail(n, "+ adds numbers, durations and times only; rules cannot build strings or lists (compare the parts instead)")
		}
	case "..":
		l, lok := n.Left.(*ast.IntegerNode)
		r, rok := n.Right.(*ast.IntegerNode)
		if lok && rok && r.Value-l.Value >= maxRangeLen {
			w.fail(n, "range %d..%d has more than %d elements", l.Value, r.Value, maxRangeLen)
		}
	}
}

// addable reports whether a value of type t makes + arithmetic rather than
// concatenation.
func addable(t reflect.Type) bool {
	if t == nil {
		return false
	}
	switch t {
	case reflect.TypeFor[time.Duration](), reflect.TypeFor[time.Time]():
		return true
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

// call checks the rule language's functions: list names and durations
// must be literals (so that they are checked at load), and literal
// durations are folded into constants.
func (w *walker) call(np *ast.Node, n *ast.CallNode) {
	if key, ok, err := historyKeyOf(n); ok {
		if err != nil {
			w.fail(n, "%v", err)
			return
		}
		w.history = append(w.history, historyUse{key: key, line: w.lineOf(n)})
		w.record(n.String(), n.String(), nil)
		return
	}
	callee, ok := n.Callee.(*ast.IdentifierNode)
	if !ok {
		return
	}
	switch name := callee.Value; {
	case listFunction(name):
		if len(n.Arguments) != 2 {
			return // the checker has said so
		}
		lit, ok := n.Arguments[1].(*ast.StringNode)
		if !ok {
			w.fail(n, "%s: the list name must be a string literal, like %s(text.words, \"profanity\")", name, name)
			return
		}
		if _, ok := w.c.lists[lit.Value]; !ok {
			w.fail(n, "%s: unknown word list %q (lists are the .txt files of the rules folder: %s)", name, lit.Value, listNames(w.c.lists))
			return
		}
		if w.closed(n) {
			// The entries found explain the call better than the whole
			// list it searched, so the arguments are not recorded.
			ev := &ast.CallNode{Callee: &ast.IdentifierNode{Value: evidenceFunction(name)}, Arguments: n.Arguments}
			w.record(n.String(), ev.String(), nil)
			w.quiet = true
		}
	case name == fnDuration:
		if len(n.Arguments) != 1 {
			return
		}
		lit, ok := n.Arguments[0].(*ast.StringNode)
		if !ok {
			w.fail(n, "duration takes a literal, like duration(\"24h\") or duration(\"7d\")")
			return
		}
		d, err := ParseDuration(lit.Value)
		if err != nil {
			w.fail(n, "%v", err)
			return
		}
		c := &ast.ConstantNode{Value: d}
		c.SetType(reflect.TypeFor[time.Duration]())
		c.SetLocation(n.Location())
		ast.Patch(np, c)
	}
}

// historyExample is a call of the namespace root, for messages.
func historyExample(root string) string {
	if root == "strikes" {
		return `strikes.count("7d")`
	}
	return `counts.user_messages("1m")`
}

func listNames(lists map[string]*wordList) string {
	if len(lists) == 0 {
		return "there are none"
	}
	names := make([]string, 0, len(lists))
	for name := range lists {
		names = append(names, name)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// closed reports whether n can be evaluated on its own: it reads no
// predicate element (#) and no let variable.
func (w *walker) closed(n ast.Node) bool {
	ok := true
	var visit func(n ast.Node)
	visit = func(n ast.Node) {
		if !ok || n == nil {
			return
		}
		switch n := n.(type) {
		case *ast.PointerNode, *ast.PredicateNode, *ast.VariableDeclaratorNode:
			ok = false
		case *ast.IdentifierNode:
			if _, isLet := w.scope[n.Value]; isLet {
				ok = false
			}
		case *ast.MemberNode:
			visit(n.Node)
			visit(n.Property)
		case *ast.ChainNode:
			visit(n.Node)
		case *ast.UnaryNode:
			visit(n.Node)
		case *ast.BinaryNode:
			visit(n.Left)
			visit(n.Right)
		case *ast.CallNode:
			for _, a := range n.Arguments {
				visit(a)
			}
		case *ast.BuiltinNode:
			for _, a := range n.Arguments {
				visit(a)
			}
		case *ast.ArrayNode:
			for _, e := range n.Nodes {
				visit(e)
			}
		case *ast.SliceNode:
			visit(n.Node)
			visit(n.From)
			visit(n.To)
		case *ast.ConditionalNode:
			visit(n.Cond)
			visit(n.Exp1)
			visit(n.Exp2)
		case *ast.NilNode, *ast.BoolNode, *ast.IntegerNode, *ast.FloatNode, *ast.StringNode, *ast.ConstantNode:
		default:
			ok = false
		}
	}
	visit(n)
	return ok
}
