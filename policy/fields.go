package policy

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
)

// Custom fields are the keys of a user, message or channel that Stream
// does not define (user.custom.verified). Their values are whatever the
// app sent: a field may be missing, or be the string "true" where a rule
// expects a bool. A rules folder declares the custom fields its rules
// read, with a type and a default, in a fields: block of any rule file:
//
//	fields:
//	  user.verified: {type: bool, default: false}
//	  channel.tier: {type: string, default: ""}
//
// Rules are type-checked against the declared types, reading an
// undeclared field is a load error, and at run time the value is coerced
// to the type, or is the default when it is missing or cannot be
// coerced; so a custom field never makes a rule fail.

// fieldType is the declared type of a custom field.
type fieldType string

const (
	fieldBool    fieldType = "bool"
	fieldString  fieldType = "string"
	fieldInt     fieldType = "int"
	fieldFloat   fieldType = "float"
	fieldStrings fieldType = "strings" // a list of strings
	fieldObject  fieldType = "object"  // anything, unchecked: read it with care
)

func fieldTypes() []fieldType {
	return []fieldType{fieldBool, fieldString, fieldInt, fieldFloat, fieldStrings, fieldObject}
}

// goType is the type rules see for a field of type t.
func (t fieldType) goType() reflect.Type {
	switch t {
	case fieldBool:
		return reflect.TypeFor[bool]()
	case fieldString:
		return reflect.TypeFor[string]()
	case fieldInt:
		return reflect.TypeFor[int]()
	case fieldFloat:
		return reflect.TypeFor[float64]()
	case fieldStrings:
		return reflect.TypeFor[[]string]()
	}
	return reflect.TypeFor[any]()
}

// customField is a declared custom field.
type customField struct {
	key  string // "user.verified"
	typ  fieldType
	def  any // of typ's Go type
	file string
	line int
}

// rawField is a declaration as written.
type rawField struct {
	file    string
	line    int
	key     string
	typ     string
	def     any
	hasDef  bool
	defLine int
}

// fieldObjects are the objects that have custom fields, with the keys
// Stream defines for each (which are not custom).
func fieldObjects() map[string]map[string]bool {
	return map[string]map[string]bool{"user": userKnown, "message": messageKnown, "channel": channelKnown}
}

// compileFields checks the declarations of the folder and returns them by
// key.
func compileFields(raws []rawField) (map[string]*customField, []Problem) {
	fields := make(map[string]*customField)
	var problems []Problem
	objects := fieldObjects()
	for _, r := range raws {
		bad := func(line int, format string, args ...any) {
			problems = append(problems, Problem{File: r.file, Line: line, Msg: fmt.Sprintf(format, args...)})
		}
		object, name, ok := strings.Cut(r.key, ".")
		known, isObject := objects[object]
		switch {
		case !ok || !isObject || name == "" || strings.Contains(name, "."):
			bad(r.line, "field %q: name it user.NAME, message.NAME or channel.NAME", r.key)
			continue
		case known[name] || name == "custom":
			bad(r.line, "field %q is one of Stream's own fields, not a custom one: read it as %s", r.key, r.key)
			continue
		}
		if prev, dup := fields[r.key]; dup {
			bad(r.line, "field %q is also declared at %s:%d", r.key, prev.file, prev.line)
			continue
		}
		typ := fieldType(r.typ)
		if !slices.Contains(fieldTypes(), typ) {
			bad(r.line, "field %s: type %q: want one of %s", r.key, r.typ, joinTypes())
			continue
		}
		f := &customField{key: r.key, typ: typ, file: r.file, line: r.line, def: zeroOf(typ)}
		if r.hasDef {
			def, ok := coerceStrict(typ, r.def)
			if !ok {
				bad(r.defLine, "field %s: default %v is not a %s", r.key, r.def, typ)
				continue
			}
			f.def = def
		}
		fields[r.key] = f
	}
	return fields, problems
}

func joinTypes() string {
	var names []string
	for _, t := range fieldTypes() {
		names = append(names, string(t))
	}
	return strings.Join(names, ", ")
}

func zeroOf(t fieldType) any {
	switch t {
	case fieldBool:
		return false
	case fieldString:
		return ""
	case fieldInt:
		return 0
	case fieldFloat:
		return 0.0
	case fieldStrings:
		return []string{}
	}
	return nil
}

// value returns the field's value in custom, coerced to its type, or its
// default.
func (f *customField) value(custom map[string]any) any {
	_, name, _ := strings.Cut(f.key, ".")
	v, ok := custom[name]
	if !ok || v == nil {
		return f.def
	}
	if c, ok := coerce(f.typ, v); ok {
		return c
	}
	return f.def
}

// coerceStrict converts a declared default: only values of the type
// itself (a list of strings for strings).
func coerceStrict(t fieldType, v any) (any, bool) {
	switch t {
	case fieldString:
		s, ok := v.(string)
		return s, ok
	case fieldBool:
		b, ok := v.(bool)
		return b, ok
	}
	if _, isString := v.(string); isString && t != fieldObject {
		return nil, false
	}
	return coerce(t, v)
}

// coerce converts a value sent by the app to type t: a string "true" to a
// bool, a number to an int when it is whole, a string to a number when
// it parses, a single string to a list of one. It reports false when v
// cannot be had as a t.
func coerce(t fieldType, v any) (any, bool) {
	switch t {
	case fieldBool:
		switch x := v.(type) {
		case bool:
			return x, true
		case string:
			b, err := strconv.ParseBool(strings.TrimSpace(x))
			return b, err == nil
		}
		if f, ok := number(v); ok && (f == 0 || f == 1) {
			return f == 1, true
		}
	case fieldString:
		switch x := v.(type) {
		case string:
			return x, true
		case bool:
			return strconv.FormatBool(x), true
		}
		if f, ok := number(v); ok {
			return strconv.FormatFloat(f, 'f', -1, 64), true
		}
	case fieldInt:
		f, ok := number(v)
		if s, isString := v.(string); isString {
			n, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			f, ok = n, err == nil
		}
		if ok && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return int(f), true
		}
	case fieldFloat:
		if s, isString := v.(string); isString {
			f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
			return f, err == nil && !math.IsInf(f, 0) && !math.IsNaN(f)
		}
		return number(v)
	case fieldStrings:
		switch x := v.(type) {
		case string:
			return []string{x}, true
		case []string:
			return x, true
		case []any:
			out := make([]string, 0, len(x))
			for _, e := range x {
				s, ok := e.(string)
				if !ok {
					return nil, false
				}
				out = append(out, s)
			}
			return out, true
		}
	case fieldObject:
		return v, true
	}
	return nil, false
}

// number returns v as a float64 when it is a number.
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint64:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

// fieldFunction is the function a read of a declared custom field of
// type t becomes: fieldFunction(t)(user.custom, "user.verified").
func fieldFunction(t fieldType) string { return "$field_" + string(t) }

// fieldOptions declares the field functions, one per type, to expr.
func fieldOptions(fields map[string]*customField) []expr.Option {
	var opts []expr.Option
	for _, t := range fieldTypes() {
		fn := func(p ...any) (any, error) {
			custom, _ := p[0].(map[string]any)
			key, _ := p[1].(string)
			f, ok := fields[key]
			if !ok {
				return nil, fmt.Errorf("custom field %s is not declared", key)
			}
			return f.value(custom), nil
		}
		sig := reflect.FuncOf([]reflect.Type{reflect.TypeFor[map[string]any](), reflect.TypeFor[string]()}, []reflect.Type{t.goType()}, false)
		opts = append(opts, expr.Function(fieldFunction(t), fn, reflect.New(sig).Interface()))
	}
	return opts
}

// fieldPatcher rewrites every read of a custom field (user.custom.x or
// user.custom["x"]) into a call of its type's field function, so that the
// checker sees the declared type, and records reads of undeclared fields.
type fieldPatcher struct {
	fields map[string]*customField
	errs   []fieldReadError
}

// fieldReadError is a read of a custom field that is not declared.
type fieldReadError struct {
	node ast.Node
	msg  string
}

// Visit implements ast.Visitor.
func (p *fieldPatcher) Visit(np *ast.Node) {
	m, ok := (*np).(*ast.MemberNode)
	if !ok {
		return
	}
	object, ok := customOf(m.Node)
	if !ok {
		return
	}
	prop, ok := m.Property.(*ast.StringNode)
	if !ok {
		p.errs = append(p.errs, fieldReadError{m, fmt.Sprintf("read custom fields by name, like %s.custom.verified, so that their type is known", object)})
		return
	}
	key := object + "." + prop.Value
	f, ok := p.fields[key]
	if !ok {
		p.errs = append(p.errs, fieldReadError{m, fmt.Sprintf(
			"custom field %s.custom.%s is not declared: declare its type and default in a fields: block, like fields: {%s: {type: bool, default: false}} (types: %s)",
			object, prop.Value, key, joinTypes())})
		return
	}
	call := &ast.CallNode{
		Callee:    &ast.IdentifierNode{Value: fieldFunction(f.typ)},
		Arguments: []ast.Node{m.Node, &ast.StringNode{Value: key}},
	}
	call.SetLocation(m.Location())
	ast.Patch(np, call)
}

// customOf reports whether n is user.custom, message.custom or
// channel.custom, and which.
func customOf(n ast.Node) (string, bool) {
	m, ok := n.(*ast.MemberNode)
	if !ok {
		return "", false
	}
	if p, ok := m.Property.(*ast.StringNode); !ok || p.Value != "custom" {
		return "", false
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	if !ok {
		return "", false
	}
	if _, has := fieldObjects()[id.Value]; !has {
		return "", false
	}
	return id.Value, true
}

// fieldKeyOf returns "user.custom.verified" for a call a fieldPatcher
// made, the key it is recorded under in the evidence.
func fieldKeyOf(n *ast.CallNode) (string, bool) {
	callee, ok := n.Callee.(*ast.IdentifierNode)
	if !ok || !strings.HasPrefix(callee.Value, "$field_") || len(n.Arguments) != 2 {
		return "", false
	}
	key, ok := n.Arguments[1].(*ast.StringNode)
	if !ok {
		return "", false
	}
	object, name, _ := strings.Cut(key.Value, ".")
	return object + ".custom." + name, true
}
