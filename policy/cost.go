package policy

import (
	"math"
	"reflect"
	"strings"

	"github.com/expr-lang/expr/ast"
)

// The cost estimate bounds the steps an expression can take on any event,
// so that a rule that would run for seconds on a long message is refused
// before it ever runs (even once, on the synthetic worst-case event). A
// step is roughly one VM instruction, or 16 bytes of string work. Sizes
// are upper bounds: a string's length, a list's elements.
const (
	sizeText     = maxTextBytes
	sizeDerived  = 4 * maxTextBytes // lower-casing and normalising may lengthen text
	sizeWords    = 2 * maxTextBytes // words of the normalised text
	sizeField    = 1024             // ids, names and other short fields
	sizeUnknown  = 8192             // custom fields (Stream caps custom data at a few KB)
	sizeListElem = 256              // an element of a list: a word, an id, a URL
	bytesPerStep = 16
)

// envSize returns the size bound of a member chain of the environment.
func envSize(path []string) float64 {
	key := strings.Join(path, ".")
	switch key {
	case "message.text", "message.old_text":
		return sizeText
	case "text.lower", "text.normalized":
		return sizeDerived
	case "text.words":
		return sizeWords
	case "text.links", "text.domains":
		return maxLinks
	case "message.mentions":
		return maxMentions
	case "message.attachments":
		return maxAttachments
	case "user.teams":
		return maxTeams
	}
	for _, p := range path {
		if p == "custom" {
			return sizeUnknown
		}
	}
	return sizeField
}

// estScope is what the estimate knows at a point of the tree: the sizes of
// let variables and of the current predicate element (#).
type estScope struct {
	lets map[string]float64
	elem float64
}

func (s estScope) with(name string, size float64) estScope {
	lets := make(map[string]float64, len(s.lets)+1)
	for k, v := range s.lets {
		lets[k] = v
	}
	lets[name] = size
	return estScope{lets: lets, elem: s.elem}
}

// estimate returns the cost of evaluating n and the size of its value.
func (w *walker) estimate(n ast.Node, s estScope) (cost, size float64) {
	if n == nil {
		return 0, 0
	}
	switch n := n.(type) {
	case *ast.NilNode, *ast.BoolNode, *ast.IntegerNode, *ast.FloatNode, *ast.ConstantNode:
		return 1, 1
	case *ast.StringNode:
		return 1, float64(len(n.Value))
	case *ast.IdentifierNode:
		if size, ok := s.lets[n.Value]; ok {
			return 1, size
		}
		return 1, sizeField
	case *ast.PointerNode:
		if n.Name == "" {
			return 1, max(s.elem, 1)
		}
		return 1, 1 // #index, #acc …
	case *ast.MemberNode:
		if path, ok := w.envChain(n); ok {
			return float64(len(path)), envSize(path)
		}
		c, _ := w.estimate(n.Node, s)
		pc, _ := w.estimate(n.Property, s)
		return c + pc + 1, sizeListElem
	case *ast.ChainNode:
		return w.estimate(n.Node, s)
	case *ast.UnaryNode:
		c, sz := w.estimate(n.Node, s)
		return c + 1, sz
	case *ast.BinaryNode:
		return w.estimateBinary(n, s)
	case *ast.CallNode:
		return w.estimateCall(n, s)
	case *ast.BuiltinNode:
		return w.estimateBuiltin(n, s)
	case *ast.PredicateNode:
		return w.estimate(n.Node, s)
	}
	return w.estimateCompound(n, s)
}

// estimateCompound is estimate for the nodes built of others: conditionals,
// let, sequences, literals of arrays and maps, and slices.
func (w *walker) estimateCompound(n ast.Node, s estScope) (cost, size float64) {
	switch n := n.(type) {
	case *ast.ConditionalNode:
		cc, _ := w.estimate(n.Cond, s)
		c1, s1 := w.estimate(n.Exp1, s)
		c2, s2 := w.estimate(n.Exp2, s)
		return cc + math.Max(c1, c2) + 1, math.Max(s1, s2)
	case *ast.VariableDeclaratorNode:
		vc, vs := w.estimate(n.Value, s)
		ec, es := w.estimate(n.Expr, s.with(n.Name, vs))
		return vc + ec + 1, es
	case *ast.SequenceNode:
		var c, sz float64
		for _, e := range n.Nodes {
			ec, es := w.estimate(e, s)
			c, sz = c+ec, es
		}
		return c, sz
	case *ast.ArrayNode:
		c := 1.0
		for _, e := range n.Nodes {
			ec, _ := w.estimate(e, s)
			c += ec
		}
		return c, float64(len(n.Nodes))
	case *ast.MapNode:
		c := 1.0
		for _, e := range n.Pairs {
			ec, _ := w.estimate(e, s)
			c += ec
		}
		return c, float64(len(n.Pairs))
	case *ast.PairNode:
		kc, _ := w.estimate(n.Key, s)
		vc, vs := w.estimate(n.Value, s)
		return kc + vc, vs
	case *ast.SliceNode:
		c, sz := w.estimate(n.Node, s)
		fc, _ := w.estimate(n.From, s)
		tc, _ := w.estimate(n.To, s)
		return c + fc + tc + sz/bytesPerStep, sz
	}
	return 1, sizeUnknown
}

// estimateBinary is estimate for an operator between two values.
func (w *walker) estimateBinary(n *ast.BinaryNode, s estScope) (cost, size float64) {
	lc, ls := w.estimate(n.Left, s)
	rc, rs := w.estimate(n.Right, s)
	c := lc + rc + 1
	switch n.Operator {
	case "..":
		elems := float64(vmMemoryBudget)
		l, lok := n.Left.(*ast.IntegerNode)
		r, rok := n.Right.(*ast.IntegerNode)
		if lok && rok {
			elems = math.Max(float64(r.Value-l.Value+1), 0)
		}
		return c + elems, elems
	case "in", "not in":
		return c + rs, 1
	case "matches":
		// RE2 runs in time linear in the text, times the size of the
		// pattern when it has to simulate the automaton.
		pattern := 1.0
		if p, ok := n.Right.(*ast.StringNode); ok {
			pattern = math.Max(float64(len(p.Value))/8, 1)
		}
		return c + ls/2*pattern, 1
	case "contains", "startsWith", "endsWith", "==", "!=", "<", "<=", ">", ">=":
		return c + (ls+rs)/bytesPerStep, 1
	case "??", "or", "||", "and", "&&":
		return c, math.Max(ls, rs)
	}
	return c, math.Max(ls, rs)
}

func (w *walker) estimateCall(n *ast.CallNode, s estScope) (cost, size float64) {
	c := 1.0
	var sizes []float64
	for _, a := range n.Arguments {
		ac, as := w.estimate(a, s)
		c += ac
		sizes = append(sizes, as)
	}
	arg := func(i int) float64 {
		if i < len(sizes) {
			return sizes[i]
		}
		return 1
	}
	if _, isHistory, _ := historyKeyOf(n); isHistory {
		return c, 1 // a number the caller read beforehand: no work here
	}
	name := ""
	if id, ok := n.Callee.(*ast.IdentifierNode); ok {
		name = id.Value
	}
	switch name {
	case fnContainsAny, fnHits:
		return c + arg(0)*(2+maxPhraseWords), arg(0)
	case fnDomainIn, fnDomainHits:
		return c + arg(0)*8, arg(0)
	case fnInList:
		return c + arg(0)/bytesPerStep*8 + 4, 1
	case fnNormalize:
		return c + arg(0)/2, 4 * math.Min(arg(0), maxTextBytes)
	case fnWords:
		return c + arg(0), 2 * math.Min(arg(0), maxTextBytes)
	}
	return c, sizeUnknown
}

func (w *walker) estimateBuiltin(n *ast.BuiltinNode, s estScope) (cost, size float64) {
	if len(n.Arguments) == 0 {
		return 1, 1
	}
	cc, cs := w.estimate(n.Arguments[0], s)
	switch n.Name {
	case "all", "none", "any", "one", "filter", "map", "find", "findIndex", "findLast", "findLastIndex", "count", "sum":
		if len(n.Arguments) < 2 {
			return cc + cs, 1 // count(list), sum(list)
		}
		elem := float64(sizeListElem)
		if b, ok := n.Arguments[0].(*ast.BinaryNode); ok && b.Operator == ".." {
			elem = 1
		}
		inner := estScope{lets: s.lets, elem: elem}
		bc, bs := w.estimate(n.Arguments[1], inner)
		c := cc + cs*(bc+2)
		switch n.Name {
		case "filter":
			return c, cs
		case "map":
			return c, cs
		case "find", "findLast":
			return c, bs
		}
		return c, 1
	}
	rest := 0.0
	for _, a := range n.Arguments[1:] {
		ac, _ := w.estimate(a, s)
		rest += ac
	}
	c := cc + rest + 1
	switch n.Name {
	case "len":
		// len counts the runes of a string.
		if t := n.Arguments[0].Type(); t == nil || t.Kind() == reflect.String || t.Kind() == reflect.Interface {
			return c + cs/bytesPerStep, 1
		}
		return c, 1
	case "abs", "ceil", "floor", "round", "int", "float":
		return c, 1
	case "trim", "trimPrefix", "trimSuffix", "indexOf", "lastIndexOf", "hasPrefix", "hasSuffix":
		return c + cs/bytesPerStep, cs
	case "upper", "lower":
		return c + cs/bytesPerStep, 2 * cs
	case "split":
		return c + cs/bytesPerStep, cs
	case "max", "min", "mean", "median", "take", "keys", "values", "reverse":
		return c + cs, cs
	case "uniq", "sort":
		return c + cs*math.Log2(cs+2), cs
	case "first", "last", "get":
		return c, sizeListElem
	}
	return c + cs, sizeUnknown
}
