package policy

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/expr-lang/expr/vm"
)

// exampleBase is the event an example's partial event is merged over: a
// plain message.new from a year-old account in a 25-member channel, at a
// fixed time, so that examples only state what matters to the rule. The
// top-level user is the author (the message carries none), so an example
// can write user: {created_at: …}.
func exampleBase() map[string]any {
	return map[string]any{
		"type":                 "message.new",
		"created_at":           "2026-01-15T12:00:00Z",
		"cid":                  "messaging:general",
		"channel_type":         "messaging",
		"channel_id":           "general",
		"channel_member_count": 25,
		"message": map[string]any{
			"id":              "example-message",
			"text":            "hello everyone",
			"type":            "regular",
			"created_at":      "2026-01-15T12:00:00Z",
			"attachments":     []any{},
			"mentioned_users": []any{},
		},
		"user": map[string]any{
			"id":         "example-user",
			"role":       "user",
			"name":       "Example User",
			"created_at": "2025-01-15T12:00:00Z",
		},
		"channel": map[string]any{
			"cid":          "messaging:general",
			"type":         "messaging",
			"id":           "general",
			"name":         "General",
			"member_count": 25,
		},
	}
}

// ExampleEvent returns the event an example's partial event describes:
// partial deep-merged over the default example event (objects merge key
// by key; other values, lists included, replace). `moderator eval` and
// tests use it to build events the way rule files do.
func ExampleEvent(partial map[string]any) (*Event, error) {
	ev := exampleBase()
	mergeInto(ev, partial)
	body, err := json.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("encode example event: %w", err)
	}
	return ParseEvent(body)
}

// mergeInto merges src into dst: nested objects recursively, everything
// else replaced.
func mergeInto(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				dm = maps.Clone(dm)
				mergeInto(dm, sm)
				dst[k] = dm
				continue
			}
		}
		dst[k] = v
	}
}

// evidenceOnly drops evidence's second result.
func evidenceOnly(ev map[string]any, _ []string) map[string]any { return ev }

// runExamples runs the rule alone on each of its examples (mode, priority
// and stop do not matter here) and returns a problem for each example
// whose outcome differs from what it expects.
func (rs *RuleSet) runExamples(r *rule) []Problem {
	var problems []Problem
	m := rs.vms.Get().(*vm.VM)
	defer rs.vms.Put(m)
	for i, ex := range r.examples {
		name := fmt.Sprintf("example %d", i+1)
		if ex.name != "" {
			name = fmt.Sprintf("example %q", ex.name)
		}
		fail := func(line int, format string, args ...any) {
			problems = append(problems, Problem{File: r.file, Line: line,
				Msg: fmt.Sprintf("rule %s, %s: %s", r.id, name, fmt.Sprintf(format, args...))})
		}
		if msgs := exampleShape(ex.event, rs.fields); len(msgs) > 0 {
			for _, msg := range msgs {
				fail(ex.line, "%s", msg)
			}
			continue
		}
		ev, err := ExampleEvent(ex.event)
		if err != nil {
			fail(ex.line, "%v", err)
			continue
		}
		// A before_send rule's examples are before-send payloads unless
		// they name a type: the base event is a message.new.
		if _, typed := ex.event["type"]; !typed && slices.Equal(r.events, []string{EventBeforeSend}) {
			ev.Type = EventBeforeSend
		}
		h, ok := r.exampleHistory(ex, fail)
		if !ok {
			continue
		}
		env := newEnv(ev, needAll, rs.young)
		env.history = h
		matched := false
		if r.appliesTo(ev.Type) {
			matched, err = r.run(m, env)
			if err != nil {
				fail(ex.line, "the rule failed: %v", err)
				continue
			}
		}
		switch {
		case matched && !ex.match:
			fail(ex.line, "matched, but expect says no match (it read %s)", formatEvidence(evidenceOnly(r.evidence(m, env))))
			continue
		case !matched && ex.match:
			why := "it read " + formatEvidence(evidenceOnly(r.evidence(m, env)))
			if !r.appliesTo(ev.Type) {
				why = fmt.Sprintf("the rule does not apply to %s events", ev.Type)
			}
			fail(ex.line, "did not match, but expect says match (%s)", why)
			continue
		case !matched:
			if ex.hasActions && len(ex.actions) > 0 {
				fail(ex.actionsLine, "expects actions but no match")
			}
			continue
		}
		got := r.match(m, env)
		checkBeforeSend(ex, got, ev, fail)
		if ex.hasActions {
			var types []string
			for _, a := range got.Actions {
				types = append(types, string(a.Type))
			}
			if !slices.Equal(types, ex.actions) {
				fail(ex.actionsLine, "actions are [%s], expect says [%s]", strings.Join(types, ", "), strings.Join(ex.actions, ", "))
			}
		}
		if ex.hasReason && got.Reason != ex.reason {
			fail(ex.reasonLine, "reason is %q, expect says %q", got.Reason, ex.reason)
		}
	}
	return problems
}

// checkBeforeSend compares a before_send example's expected answer (the
// block text, or the rewritten message text) with the one the rule's
// actions give.
func checkBeforeSend(ex rawExample, got Match, ev *Event, fail func(line int, format string, args ...any)) {
	if !ex.hasBlock && !ex.hasText {
		return
	}
	block, rewrite := beforeSendAnswer(got.Actions, ev)
	if ex.hasBlock {
		switch {
		case block == nil:
			fail(ex.blockLine, "the message is not blocked, expect says blocked with %q", ex.block)
		case block.Text != ex.block:
			fail(ex.blockLine, "block text is %q, expect says %q", block.Text, ex.block)
		}
	}
	if ex.hasText {
		var text string
		if ev.Message != nil {
			text = ev.Message.Text
		}
		if rewrite != nil {
			text = rewrite.Text
		}
		if text != ex.text {
			fail(ex.textLine, "the message is sent as %q, expect says %q", text, ex.text)
		}
	}
}

// exampleHistory parses an example's history: each key must be a history
// value the rule reads, so that a typo is not an example that silently
// reads 0.
func (r *rule) exampleHistory(ex rawExample, fail func(line int, format string, args ...any)) (History, bool) {
	if len(ex.history) == 0 {
		return nil, true
	}
	h := make(History, len(ex.history))
	reads := r.historyKeys()
	ok := true
	for _, src := range slices.Sorted(maps.Keys(ex.history)) {
		k, err := ParseHistoryKey(src)
		if err != nil {
			fail(ex.historyLine, "%v", err)
			ok = false
			continue
		}
		if !slices.Contains(reads, k) {
			what := "it reads none"
			if len(reads) > 0 {
				what = "it reads " + JoinHistoryKeys(reads)
			}
			fail(ex.historyLine, "history sets %s, which the rule does not read (%s)", k, what)
			ok = false
			continue
		}
		if n := ex.history[src]; n < 0 {
			fail(ex.historyLine, "history %s = %d: counts are never negative", src, n)
			ok = false
			continue
		}
		h[k] = ex.history[src]
	}
	return h, ok
}

// formatEvidence writes evidence on one line for people, in a stable
// order.
func formatEvidence(ev map[string]any) string {
	if len(ev) == 0 {
		return "nothing"
	}
	keys := slices.Sorted(maps.Keys(ev))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + " = " + formatEvidenceValue(ev[k])
	}
	return strings.Join(parts, ", ")
}

func formatEvidenceValue(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return fmt.Sprintf("%q", v)
	case []string:
		q := make([]string, len(v))
		for i, s := range v {
			q[i] = fmt.Sprintf("%q", s)
		}
		return "[" + strings.Join(q, ", ") + "]"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
