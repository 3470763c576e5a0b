package policy

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
)

// Named conditions: a conditions: block of any rule file names boolean
// expressions that every rule of the folder may use by name, so that a
// ladder does not repeat its condition on each rung:
//
//	conditions:
//	  swore: contains_any(text.words, "profanity")
//	rules:
//	  - id: swear-first
//	    when: swore && strikes.by_rule("swear-first", "7d") == 0
//
// A condition is type-checked on its own (it must be true or false) and
// then inlined where it is used, so a rule using it is checked, costed,
// measured and explained (its evidence) as if it were written out.

// rawCondition is a condition as written.
type rawCondition struct {
	file    string
	line    int // of its name
	name    string
	src     string
	srcLine int // of its text's first line
	lines   []string
}

// condition is a checked condition.
type condition struct {
	name   string
	src    string
	file   string
	line   int
	broken bool // it has problems, reported at its definition
}

var conditionName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// compileConditions checks the conditions of the folder, each on its
// own, and returns them by name (broken ones included, marked, so that a
// rule using one is not also told that the name is unknown).
func (c *exprCompiler) compileConditions(raws []rawCondition) (map[string]*condition, []Problem) {
	conds := make(map[string]*condition)
	var problems []Problem
	for _, r := range raws {
		bad := func(line int, format string, args ...any) {
			problems = append(problems, Problem{File: r.file, Line: line, Msg: fmt.Sprintf(format, args...)})
		}
		if prev, dup := conds[r.name]; dup {
			bad(r.line, "condition %q is also defined at %s:%d", r.name, prev.file, prev.line)
			continue
		}
		if !conditionName.MatchString(r.name) {
			bad(r.line, "condition name %q: use lower-case letters, digits and _, starting with a letter", r.name)
			continue
		}
		if _, errs := c.compile(r.name, kindValue, false); len(errs) == 0 {
			bad(r.line, "condition name %q is already a name in rules: choose another", r.name)
			continue
		}
		conds[r.name] = &condition{name: r.name, src: r.src, file: r.file, line: r.line}
	}
	// Checked once all are known, so that one may use another.
	c.conditions = conds
	for _, r := range raws {
		cond, ok := conds[r.name]
		if !ok || cond.file != r.file || cond.line != r.line {
			continue
		}
		c.within = []string{r.name}
		_, errs := c.compile(r.src, kindCondition, false)
		c.within = nil
		if len(errs) > 0 {
			cond.broken = true
			for _, e := range errs {
				line, msg := placeExprError(e, r.lines, r.line, r.srcLine, r.src)
				problems = append(problems, Problem{File: r.file, Line: line, Msg: fmt.Sprintf("condition %s: %s", r.name, msg)})
			}
		}
	}
	return conds, problems
}

// conditionPatcher inlines the named conditions an expression uses.
type conditionPatcher struct {
	conds map[string]*condition
	cfg   *conf.Config
	errs  []fieldReadError
	stack []string // the conditions being inlined, to refuse a cycle
}

// Visit implements ast.Visitor.
func (p *conditionPatcher) Visit(np *ast.Node) {
	id, ok := (*np).(*ast.IdentifierNode)
	if !ok {
		return
	}
	cond, ok := p.conds[id.Value]
	if !ok {
		return
	}
	if cond.broken {
		p.errs = append(p.errs, fieldReadError{id, fmt.Sprintf("condition %s has problems (at %s:%d)", cond.name, cond.file, cond.line)})
		return
	}
	if slices.Contains(p.stack, cond.name) {
		p.errs = append(p.errs, fieldReadError{id, fmt.Sprintf("condition %s uses itself (%s)", cond.name, strings.Join(append(p.stack, cond.name), " → "))})
		return
	}
	tree, err := parser.ParseWithConfig(cond.src, p.cfg)
	if err != nil {
		p.errs = append(p.errs, fieldReadError{id, fmt.Sprintf("condition %s: %v", cond.name, err)})
		return
	}
	p.stack = append(p.stack, cond.name)
	ast.Walk(&tree.Node, p) // conditions it uses in turn
	p.stack = p.stack[:len(p.stack)-1]
	placeAt(tree.Node, id.Location())
	ast.Patch(np, tree.Node)
}

// placeAt gives every node of an inlined condition the location of the
// name it replaces, so that problems point at the rule's own text.
func placeAt(n ast.Node, loc file.Location) {
	ast.Walk(&n, locator{loc})
}

type locator struct{ loc file.Location }

func (l locator) Visit(np *ast.Node) { (*np).SetLocation(l.loc) }
