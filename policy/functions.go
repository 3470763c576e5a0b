package policy

import (
	"fmt"
	"time"

	"github.com/expr-lang/expr"
)

// allowedBuiltins are the expr-lang builtins rules may use. Everything
// else is disabled: builtins that build strings or lists without bound
// (repeat, join, replace, concat, flatten, reduce, toJSON, string …), read
// the clock (now, date) or are of no use to moderation. Each of those is a
// load error ("unknown name").
func allowedBuiltins() []string {
	return []string{
		"all", "none", "any", "one", "filter", "map", "find", "findIndex", "findLast", "findLastIndex",
		"count", "sum", "len", "abs", "ceil", "floor", "round", "int", "float",
		"trim", "trimPrefix", "trimSuffix", "upper", "lower", "split", "indexOf", "lastIndexOf",
		"hasPrefix", "hasSuffix", "max", "min", "mean", "median", "first", "last", "get", "take",
		"keys", "values", "uniq", "sort", "reverse",
	}
}

// Names of the rule language's own functions.
const (
	fnContainsAny = "contains_any" // contains_any(xs, "list") bool
	fnHits        = "hits"         // hits(xs, "list") []string: the entries found
	fnInList      = "in_list"      // in_list(x, "list") bool
	fnDomainIn    = "domain_in"    // domain_in(domains, "list") bool: a domain or a parent is listed
	fnDomainHits  = "domain_hits"  // domain_hits(domains, "list") []string
	fnNormalize   = "normalize"    // normalize(s) string, as text.normalized
	fnWords       = "words"        // words(s) []string: the words of normalize(s)
	fnDuration    = "duration"     // duration("7d") time.Duration, folded at load
)

// listFunction reports whether the function's second argument names a
// word list (and so must be a literal naming one).
func listFunction(name string) bool {
	switch name {
	case fnContainsAny, fnHits, fnInList, fnDomainIn, fnDomainHits:
		return true
	}
	return false
}

// evidenceFunction is the function whose value explains a call to name in
// the evidence: the entries that made contains_any true rather than true.
func evidenceFunction(name string) string {
	switch name {
	case fnContainsAny:
		return fnHits
	case fnDomainIn:
		return fnDomainHits
	}
	return name
}

// functionOptions declares the rule language's functions over a rule
// set's word lists. Types are declared so that misuse is a load error.
func functionOptions(lists map[string]*wordList) []expr.Option {
	list := func(v any) (*wordList, error) {
		name, _ := v.(string)
		l, ok := lists[name]
		if !ok {
			return nil, fmt.Errorf("unknown word list %q", name)
		}
		return l, nil
	}
	return []expr.Option{
		expr.Function(fnContainsAny, func(p ...any) (any, error) {
			l, err := list(p[1])
			if err != nil {
				return nil, err
			}
			xs, err := stringsArg(p[0])
			return len(l.hits(xs, true)) > 0, err
		}, new(func([]string, string) bool)),
		expr.Function(fnHits, func(p ...any) (any, error) {
			l, err := list(p[1])
			if err != nil {
				return nil, err
			}
			xs, err := stringsArg(p[0])
			return l.hits(xs, false), err
		}, new(func([]string, string) []string)),
		expr.Function(fnInList, func(p ...any) (any, error) {
			l, err := list(p[1])
			if err != nil {
				return nil, err
			}
			x, _ := p[0].(string)
			return l.has(x) || l.has(Normalize(capText(x))), nil
		}, new(func(string, string) bool)),
		expr.Function(fnDomainIn, func(p ...any) (any, error) {
			l, err := list(p[1])
			if err != nil {
				return nil, err
			}
			ds, err := stringsArg(p[0])
			return len(l.domainHits(ds, true)) > 0, err
		}, new(func([]string, string) bool), new(func(string, string) bool)),
		expr.Function(fnDomainHits, func(p ...any) (any, error) {
			l, err := list(p[1])
			if err != nil {
				return nil, err
			}
			ds, err := stringsArg(p[0])
			return l.domainHits(ds, false), err
		}, new(func([]string, string) []string), new(func(string, string) []string)),
		expr.Function(fnNormalize, func(p ...any) (any, error) {
			s, _ := p[0].(string)
			return Normalize(capText(s)), nil
		}, new(func(string) string)),
		expr.Function(fnWords, func(p ...any) (any, error) {
			s, _ := p[0].(string)
			return Words(Normalize(capText(s))), nil
		}, new(func(string) []string)),
		expr.Function(fnDuration, func(p ...any) (any, error) {
			s, _ := p[0].(string)
			return ParseDuration(s)
		}, new(func(string) time.Duration)),
	}
}

// stringsArg accepts the forms a list of strings takes at run time: a
// typed []string, a single string, or the []any of a custom field.
func stringsArg(v any) ([]string, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case []string:
		return v, nil
	case string:
		return []string{v}, nil
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("want a list of strings, got an element of type %T", e)
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("want a list of strings, got %T", v)
}
