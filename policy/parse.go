package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// Limits on rule files.
const (
	maxRuleFileBytes = 1 << 20
	maxRules         = 1000
	maxExamples      = 50
	maxActions       = 10
)

// rawRule is a rule as written, with the line of every part, before its
// expressions are compiled.
type rawRule struct {
	file        string
	line        int
	id          string
	idLine      int
	description string
	reason      string
	reasonLine  int
	events      []string
	eventsLine  int
	mode        string
	modeLine    int
	priority    int
	stop        bool
	when        string
	whenLine    int      // line of the expression's first line
	whenKeyLine int      // line of the when: key
	lines       []string // the file's lines, to place errors in a folded when
	actions     []rawAction
	examples    []rawExample
	guard       *rawGuard
	guardLine   int
}

// rawGuard is a rule's guard: when to demote it to shadow for reviewers
// overturning too many of its actions.
type rawGuard struct {
	MaxOverturnRate *float64 `yaml:"max_overturn_rate"`
	MinActions      *int     `yaml:"min_actions"`
	Window          string   `yaml:"window"`
}

type rawAction struct {
	line   int
	typ    string
	params ast.Node // nil when the action takes none
}

// rawExample is an example as written: an event (partial, merged over
// the default example event) and what the rule must do with it.
type rawExample struct {
	line        int
	name        string
	event       map[string]any
	match       bool
	hasMatch    bool
	actions     []string
	hasActions  bool
	actionsLine int
	reason      string
	hasReason   bool
	reasonLine  int
	// block and text are a before_send rule's answer: the text shown to
	// the sender of a blocked message, or the message's rewritten text.
	block, text       string
	hasBlock, hasText bool
	blockLine         int
	textLine          int
	// history sets the history values the rule reads, keyed as the rule
	// calls them: {`counts.user_messages("1m")`: 11}; the rest read 0.
	history     map[string]int
	historyLine int
}

// fileParser collects the problems of one rule file.
type fileParser struct {
	file     string
	lines    []string
	problems []Problem
}

func (p *fileParser) bad(line int, format string, args ...any) {
	p.problems = append(p.problems, Problem{File: p.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

func lineOf(n ast.Node) int {
	if n == nil || n.GetToken() == nil {
		return 0
	}
	return n.GetToken().Position.Line
}

// ruleFile is what one rule file declares.
type ruleFile struct {
	rules      []rawRule
	fields     []rawField
	conditions []rawCondition
	settings   []rawSetting
}

// empty reports whether the file declares nothing.
func (f ruleFile) empty() bool {
	return len(f.rules) == 0 && len(f.fields) == 0 && len(f.conditions) == 0 && len(f.settings) == 0
}

// parseRuleFileGuarded is parseRuleFile turning a panic (of the YAML
// library, say) into a problem of the file.
func parseRuleFileGuarded(file string, data []byte) (ruleFile, []Problem) {
	var problems []Problem
	rf, err := guard(file, func() (ruleFile, error) {
		rf, ps := parseRuleFile(file, data)
		problems = ps
		return rf, nil
	})
	var le *LoadError
	if errors.As(err, &le) {
		return ruleFile{}, le.Problems
	}
	return rf, problems
}

// topLevelKeys are the keys of a rule file.
func topLevelKeys() []string { return []string{"rules", "conditions", "fields", "settings"} }

// parseRuleFile reads the rules and declarations of one file. Structure
// errors (unknown keys, wrong types) are problems; each rule is read
// independently, so one broken rule does not hide the problems of the
// others.
func parseRuleFile(file string, data []byte) (ruleFile, []Problem) {
	p := &fileParser{file: file, lines: strings.Split(string(data), "\n")}
	var rf ruleFile
	if len(data) > maxRuleFileBytes {
		p.bad(0, "file is %d bytes long; the limit is %d", len(data), maxRuleFileBytes)
		return rf, p.problems
	}
	if line, msg := checkYAMLShape(data); msg != "" {
		p.bad(line, "%s", msg)
		return rf, p.problems
	}
	bodies, ok := p.documents(data)
	if !ok {
		return rf, p.problems
	}
	for _, body := range bodies {
		top, ok := body.(*ast.MappingNode)
		if !ok {
			p.bad(lineOf(body), "a rule file is a mapping with a rules: list")
			continue
		}
		p.keys(top, "rule file", topLevelKeys(), func(key string, _ int, v ast.Node) {
			switch key {
			case "rules":
				rf.rules = append(rf.rules, p.rules(v, len(rf.rules))...)
			case "fields":
				rf.fields = append(rf.fields, p.fields(v)...)
			case "conditions":
				rf.conditions = append(rf.conditions, p.conditions(v)...)
			case "settings":
				rf.settings = append(rf.settings, p.settings(v)...)
			}
		})
	}
	return rf, p.problems
}

// documents parses data and returns the bodies of its documents, or
// records why it cannot.
func (p *fileParser) documents(data []byte) ([]ast.Node, bool) {
	f, err := parser.ParseBytes(data, 0)
	if err != nil {
		p.yamlError(0, err)
		return nil, false
	}
	// An empty, comment-only or "---"-only file has documents without a
	// body, which the library's own walkers do not expect (goccy/go-yaml
	// #753): only bodies are walked here.
	var bodies []ast.Node
	for _, doc := range f.Docs {
		if doc == nil || doc.Body == nil {
			continue
		}
		if _, isNull := doc.Body.(*ast.NullNode); !isNull {
			bodies = append(bodies, doc.Body)
		}
	}
	// Anchors and aliases can expand a small file into a huge document
	// ("billion laughs"); rule files have no need for them.
	before := len(p.problems)
	for _, body := range bodies {
		for _, typ := range []ast.NodeType{ast.AnchorType, ast.AliasType, ast.MergeKeyType} {
			for _, n := range ast.Filter(typ, body) {
				p.bad(lineOf(n), "YAML anchors, aliases and merge keys are not allowed in rule files")
			}
		}
	}
	return bodies, len(p.problems) == before
}

// rules reads a rules: list; have is how many rules the file already has.
func (p *fileParser) rules(v ast.Node, have int) []rawRule {
	seq, ok := v.(*ast.SequenceNode)
	if !ok {
		if _, isNull := v.(*ast.NullNode); !isNull {
			p.bad(lineOf(v), "rules: must be a list of rules")
		}
		return nil
	}
	var rules []rawRule
	for _, item := range seq.Values {
		if have+len(rules) == maxRules {
			p.bad(lineOf(item), "more than %d rules in one file", maxRules)
			break
		}
		if r, ok := p.rule(item); ok {
			rules = append(rules, r)
		}
	}
	return rules
}

// conditions reads a conditions: block: name: expression.
func (p *fileParser) conditions(v ast.Node) []rawCondition {
	m, ok := p.mapping(v, "conditions")
	if !ok {
		return nil
	}
	var out []rawCondition
	p.keysAny(m, "conditions", func(name string, line int, v ast.Node) {
		src, ok := p.str(v, "condition "+name)
		if !ok {
			return
		}
		if strings.TrimSpace(src) == "" {
			p.bad(line, "condition %s is empty", name)
			return
		}
		out = append(out, rawCondition{file: p.file, line: line, name: name, src: src, srcLine: valueLine(v), lines: p.lines})
	})
	return out
}

// fields reads a fields: block: custom field declarations,
// user.verified: {type: bool, default: false}.
func (p *fileParser) fields(v ast.Node) []rawField {
	m, ok := p.mapping(v, "fields")
	if !ok {
		return nil
	}
	var out []rawField
	p.keysAny(m, "fields", func(key string, line int, v ast.Node) {
		f := rawField{file: p.file, line: line, key: key}
		dm, ok := p.mapping(v, "field "+key)
		if !ok {
			return
		}
		p.keys(dm, "field "+key, []string{"type", "default", "description"}, func(k string, kl int, v ast.Node) {
			switch k {
			case "type":
				f.typ, _ = p.str(v, "type")
			case "default":
				f.hasDef = p.decode(v, &f.def, "default")
				f.defLine = kl
			}
		})
		if f.typ == "" {
			p.bad(line, "field %s needs a type (%s), like %s: {type: bool, default: false}", key, joinTypes(), key)
			return
		}
		out = append(out, f)
	})
	return out
}

// yamlError records err at the line its token names, or at line.
func (p *fileParser) yamlError(line int, err error) {
	var ye yaml.Error
	if errors.As(err, &ye) {
		if tk := ye.GetToken(); tk != nil {
			line = tk.Position.Line
		}
		p.bad(line, "%s", withHint(ye.GetMessage(), yamlHint(ye.GetMessage())))
		return
	}
	p.bad(line, "%s", withHint(err.Error(), yamlHint(err.Error())))
}

// decode decodes a node into v strictly (unknown keys are errors).
func (p *fileParser) decode(n ast.Node, v any, what string) bool {
	if err := yaml.NodeToValue(n, v, yaml.Strict()); err != nil {
		var ye yaml.Error
		if errors.As(err, &ye) {
			line := lineOf(n)
			if tk := ye.GetToken(); tk != nil {
				line = tk.Position.Line
			}
			p.bad(line, "%s: %s", what, ye.GetMessage())
			return false
		}
		p.bad(lineOf(n), "%s: %v", what, err)
		return false
	}
	return true
}

// str decodes a scalar string.
func (p *fileParser) str(n ast.Node, what string) (string, bool) {
	switch n := n.(type) {
	case *ast.StringNode:
		return n.Value, true
	case *ast.LiteralNode:
		return n.Value.Value, true
	case *ast.NullNode:
		return "", true
	}
	p.bad(lineOf(n), "%s must be a string", what)
	return "", false
}

// mapping returns n as a mapping, recording a problem when it is not one.
func (p *fileParser) mapping(n ast.Node, what string) (*ast.MappingNode, bool) {
	switch m := n.(type) {
	case *ast.MappingNode:
		return m, true
	case *ast.NullNode:
		return &ast.MappingNode{}, true
	}
	p.bad(lineOf(n), "%s must be a mapping", what)
	return nil, false
}

// keys iterates a mapping's keys, refusing duplicates and keys not in
// known; it calls fn with each known key and its value.
func (p *fileParser) keys(m *ast.MappingNode, what string, known []string, fn func(key string, keyLine int, v ast.Node)) {
	p.keysAny(m, what, func(key string, line int, v ast.Node) {
		if !slices.Contains(known, key) {
			p.bad(line, "%s: unknown key %q (known: %s)", what, key, strings.Join(known, ", "))
			return
		}
		fn(key, line, v)
	})
}

// keysAny iterates a mapping's keys, refusing duplicates.
func (p *fileParser) keysAny(m *ast.MappingNode, what string, fn func(key string, keyLine int, v ast.Node)) {
	seen := make(map[string]int)
	for _, kv := range m.Values {
		key := kv.Key.String()
		line := lineOf(kv.Key)
		if prev, dup := seen[key]; dup {
			p.bad(line, "%s: %q is already set at line %d", what, key, prev)
			continue
		}
		seen[key] = line
		fn(key, line, kv.Value)
	}
}

// valueLine returns the line where a scalar's text starts: the line after
// the indicator for a block scalar (when: |).
func valueLine(n ast.Node) int {
	if l, ok := n.(*ast.LiteralNode); ok && l.Value != nil {
		return lineOf(l.Value)
	}
	return lineOf(n)
}

func (p *fileParser) rule(item ast.Node) (rawRule, bool) {
	r := rawRule{file: p.file, line: lineOf(item), lines: p.lines}
	m, ok := item.(*ast.MappingNode)
	if !ok {
		p.bad(lineOf(item), "a rule must be a mapping with id, when, actions and examples")
		return r, false
	}
	if len(m.Values) > 0 {
		r.line = lineOf(m.Values[0].Key)
	}
	before := len(p.problems)
	known := []string{"id", "description", "reason", "events", "mode", "priority", "stop", "when", "actions", "examples", "guard"}
	p.keys(m, "rule", known, func(key string, line int, v ast.Node) {
		switch key {
		case "id":
			r.id, _ = p.str(v, "id")
			r.idLine = line
		case "description":
			r.description, _ = p.str(v, "description")
		case "reason":
			r.reason, _ = p.str(v, "reason")
			r.reasonLine = valueLine(v)
		case "events":
			r.eventsLine = line
			if s, ok := v.(*ast.StringNode); ok {
				r.events = []string{s.Value}
				return
			}
			p.decode(v, &r.events, "events")
			if r.events == nil {
				r.events = []string{}
			}
		case "mode":
			r.mode, _ = p.str(v, "mode")
			r.modeLine = line
		case "priority":
			p.decode(v, &r.priority, "priority")
		case "stop":
			p.decode(v, &r.stop, "stop")
		case "when":
			r.when, _ = p.str(v, "when")
			r.whenLine = valueLine(v)
			r.whenKeyLine = line
		case "actions":
			r.actions = p.actions(v)
		case "examples":
			r.examples = p.examples(v)
		case "guard":
			r.guard, r.guardLine = &rawGuard{}, line
			p.decode(v, r.guard, "guard")
		}
	})
	if r.id == "" && len(p.problems) == before {
		p.bad(r.line, "rule has no id")
	}
	if r.when == "" && len(p.problems) == before {
		p.bad(r.line, "rule %s has no when", r.id)
	}
	return r, len(p.problems) == before
}

func (p *fileParser) actions(v ast.Node) []rawAction {
	if _, isNull := v.(*ast.NullNode); isNull {
		return nil
	}
	seq, ok := v.(*ast.SequenceNode)
	if !ok {
		p.bad(lineOf(v), "actions must be a list, like [flag] or [{ban: {timeout: 24h}}]")
		return nil
	}
	var out []rawAction
	for _, item := range seq.Values {
		if len(out) == maxActions {
			p.bad(lineOf(item), "more than %d actions", maxActions)
			break
		}
		switch n := item.(type) {
		case *ast.StringNode:
			out = append(out, rawAction{line: lineOf(n), typ: n.Value})
		case *ast.MappingNode:
			if len(n.Values) != 1 {
				p.bad(lineOf(n), "an action is one key, its type, with its parameters: - flag: {reason: \"spam\"}")
				continue
			}
			kv := n.Values[0]
			params := kv.Value
			if _, isNull := params.(*ast.NullNode); isNull {
				params = nil
			}
			out = append(out, rawAction{line: lineOf(kv.Key), typ: kv.Key.String(), params: params})
		default:
			p.bad(lineOf(item), "an action is a type (- delete) or a type with parameters (- ban: {timeout: 24h})")
		}
	}
	return out
}

func (p *fileParser) examples(v ast.Node) []rawExample {
	if _, isNull := v.(*ast.NullNode); isNull {
		return nil
	}
	seq, ok := v.(*ast.SequenceNode)
	if !ok {
		p.bad(lineOf(v), "examples must be a list")
		return nil
	}
	var out []rawExample
	for _, item := range seq.Values {
		if len(out) == maxExamples {
			p.bad(lineOf(item), "more than %d examples", maxExamples)
			break
		}
		m, ok := p.mapping(item, "an example")
		if !ok {
			continue
		}
		ex := rawExample{line: lineOf(item)}
		if len(m.Values) > 0 {
			ex.line = lineOf(m.Values[0].Key)
		}
		p.keys(m, "example", []string{"name", "event", "history", "expect"}, func(key string, line int, v ast.Node) {
			switch key {
			case "history":
				ex.historyLine = line
				if _, ok := p.mapping(v, "history"); ok {
					p.decode(v, &ex.history, "history")
				}
			case "name":
				ex.name, _ = p.str(v, "name")
			case "event":
				if _, ok := p.mapping(v, "event"); ok {
					p.decode(v, &ex.event, "event")
				}
			case "expect":
				em, ok := p.mapping(v, "expect")
				if !ok {
					return
				}
				p.keys(em, "expect", []string{"match", "actions", "reason", "block", "text"}, func(key string, line int, v ast.Node) {
					switch key {
					case "match":
						ex.hasMatch = p.decode(v, &ex.match, "match")
					case "actions":
						ex.hasActions = p.decode(v, &ex.actions, "actions")
						ex.actionsLine = line
					case "reason":
						ex.reason, ex.hasReason = p.str(v, "reason")
						ex.reasonLine = line
					case "block":
						ex.block, ex.hasBlock = p.str(v, "block")
						ex.blockLine = line
					case "text":
						ex.text, ex.hasText = p.str(v, "text")
						ex.textLine = line
					}
				})
			}
		})
		if !ex.hasMatch {
			p.bad(ex.line, "example needs expect: {match: true} or expect: {match: false}")
		}
		out = append(out, ex)
	}
	return out
}
