package policy

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/compiler"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
)

// A rule's gate is the longest run of its condition's leading && operands
// that read no history: `user.young && counts.channel_young_messages("5m")
// > 20` has the gate `user.young`, a ladder's `swore && strikes.by_rule(…)
// == 0` the gate `swore`. Where the gate is false the rule cannot match
// whatever the history says, so judging the event need not read the
// rule's history values: an older account's message does not read its
// channel's young-account count, a clean message does not read the
// ladder's strikes. Those reads were most of the history read's work for
// the starter pack (one message in ten is from a young account, one in
// twenty swears), and an older account's reading of a channel's young
// count raced with the other flusher's commits and loaded the channel's
// marks again half of the time.
//
// Decide evaluates the same gate on the same environment, gets false
// again, and && stops before any value left out is read: the decision is
// the one the full history gives.

// gateOf compiles the gate of a condition's checked and optimised tree
// that reads history; nil when its first operand does. (A condition that
// reads none is its own gate: its rule reads history only in its reason.)
func gateOf(tree *parser.Tree, cfg *conf.Config) *vm.Program {
	// a && b && c is ((a && b) && c): the operands are the left spine's
	// right children, and the spine's deepest node's left one.
	spine := []ast.Node{}
	n := tree.Node
	for {
		b, ok := n.(*ast.BinaryNode)
		if !ok || (b.Operator != "&&" && b.Operator != "and") {
			break
		}
		spine = append(spine, b)
		n = b.Left
	}
	// operands[i] is the i-th operand; prefix[i] the node of operands 0..i.
	operands, prefix := []ast.Node{n}, []ast.Node{n}
	for i := len(spine) - 1; i >= 0; i-- {
		operands = append(operands, spine[i].(*ast.BinaryNode).Right)
		prefix = append(prefix, spine[i])
	}
	free := 0
	for free < len(operands) && !readsHistory(operands[free]) {
		free++
	}
	if free == 0 {
		return nil
	}
	prog, err := compiler.Compile(&parser.Tree{Node: prefix[free-1], Source: tree.Source}, cfg)
	if err != nil {
		return nil // no gate: the rule's values are always read
	}
	return prog
}

// readsHistory reports whether the expression n may read a history value:
// it calls counts.… or strikes.…, or reads the whole environment.
func readsHistory(n ast.Node) bool {
	v := &historyFinder{}
	ast.Walk(&n, v)
	return v.found
}

type historyFinder struct{ found bool }

// Visit implements ast.Visitor.
func (v *historyFinder) Visit(np *ast.Node) {
	switch n := (*np).(type) {
	case *ast.IdentifierNode:
		if n.Value == "$env" || isHistoryRoot(n.Value) {
			v.found = true
		}
	case *ast.CallNode:
		if _, ok, _ := historyKeyOf(n); ok {
			v.found = true
		}
	}
}

// mayRead reports whether judging the event in env may read the rule's
// history values: the rule reads some, and it has no gate or its gate
// holds (or fails to run: the values are then read, as without a gate).
func (r *rule) mayRead(m *vm.VM, env *Env) bool {
	if len(r.history) == 0 {
		return false
	}
	if r.when == nil || r.when.gate == nil {
		return true
	}
	return gateHolds(m, r.when.gate, env)
}

func gateHolds(m *vm.VM, gate *vm.Program, env *Env) (holds bool) {
	defer func() {
		if p := recover(); p != nil {
			holds = true
		}
	}()
	out, err := m.Run(gate, env)
	if err != nil {
		return true
	}
	b, ok := out.(bool)
	return !ok || b
}

// readsOf returns the history values judging ev (its environment filled
// in env) may read: those of the rules that apply to its type and whose
// gate holds, in rs.history's order. It is rs.history itself when every
// rule's values may be read, and shares one slice among the events that
// leave out the same rules.
// closed lists (ascending) the rules that apply to ev but whose gate is
// false: they cannot match, and Decide skips them.
func (rs *RuleSet) readsOf(ev *Event, env *Env) (reads []HistoryKey, closed []int) {
	m := rs.vms.Get().(*vm.VM)
	defer rs.vms.Put(m)
	var skipped []int
	for i, r := range rs.rules {
		if len(r.history) == 0 {
			continue
		}
		if !r.appliesTo(ev.Type) {
			skipped = append(skipped, i)
		} else if !r.mayRead(m, env) {
			skipped, closed = append(skipped, i), append(closed, i)
		}
	}
	if len(skipped) == 0 {
		return rs.history, nil
	}
	return rs.reads.of(rs, skipped), closed
}

// readSets caches the history lists of readsOf by the rules left out (a
// bit per rule, for the first 64 rules). Every deferred message looks its
// list up, from as many goroutines as webhooks in flight: a sync.Map
// reads without a lock.
type readSets struct {
	sets sync.Map // uint64 -> []HistoryKey
	n    atomic.Int32
}

func (c *readSets) of(rs *RuleSet, skipped []int) []HistoryKey {
	var key uint64
	cached := skipped[len(skipped)-1] < 64
	if cached {
		for _, i := range skipped {
			key |= 1 << i
		}
		if keys, ok := c.sets.Load(key); ok {
			return keys.([]HistoryKey)
		}
	}
	keys := []HistoryKey{}
	for i, r := range rs.rules {
		if slices.Contains(skipped, i) {
			continue
		}
		for _, u := range r.history {
			if !slices.Contains(keys, u.key) {
				keys = append(keys, u.key)
			}
		}
	}
	slices.SortFunc(keys, compareHistoryKeys)
	if cached && c.n.Load() < maxReadSets {
		if _, loaded := c.sets.LoadOrStore(key, keys); !loaded {
			c.n.Add(1)
		}
	}
	return keys
}

// maxReadSets bounds the cached lists: a set of many gated rules could
// otherwise keep one per combination.
const maxReadSets = 1024
