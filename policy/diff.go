package policy

import (
	"fmt"
	"slices"
	"strings"
)

// Changes says what differs between two versions of a rule set, by rule
// id: for GET /api/v1/rules and the reload log line, so that staff see
// what a reload put in force.
type Changes struct {
	From    string       `json:"from_version"`
	To      string       `json:"to_version"`
	Added   []string     `json:"added"`
	Removed []string     `json:"removed"`
	Changed []RuleChange `json:"changed"`
	// Settings lists the folder settings that changed, as
	// "young_account: 1d → 7d": they change what rules read without
	// changing any rule.
	Settings []string `json:"settings,omitempty"`
}

// RuleChange is a rule in both versions whose definition differs, and
// the fields that do: description, mode, events, priority, stop, when,
// reason, actions, examples, file, guard.
type RuleChange struct {
	ID     string   `json:"id"`
	Fields []string `json:"fields"`
}

// Empty reports whether nothing changed.
func (c Changes) Empty() bool { return len(c.Added)+len(c.Removed)+len(c.Changed)+len(c.Settings) == 0 }

// String lists the changes in a line: "added a, b; removed c; changed
// d (when, actions)".
func (c Changes) String() string {
	var parts []string
	if len(c.Added) > 0 {
		parts = append(parts, "added "+strings.Join(c.Added, ", "))
	}
	if len(c.Removed) > 0 {
		parts = append(parts, "removed "+strings.Join(c.Removed, ", "))
	}
	if len(c.Changed) > 0 {
		ch := make([]string, len(c.Changed))
		for i, r := range c.Changed {
			ch[i] = r.ID + " (" + strings.Join(r.Fields, ", ") + ")"
		}
		parts = append(parts, "changed "+strings.Join(ch, ", "))
	}
	if len(c.Settings) > 0 {
		parts = append(parts, "settings "+strings.Join(c.Settings, ", "))
	}
	if len(parts) == 0 {
		return "no rule changed"
	}
	return strings.Join(parts, "; ")
}

// Diff compares the rules of old (nil: none) and new. Lines are not
// compared: a rule moved down its file by an edit above it is the same
// rule. Word lists are not rules; a rule whose list changed reads the new
// list under the same definition.
func Diff(old, new *RuleSet) Changes {
	c := Changes{Added: []string{}, Removed: []string{}, Changed: []RuleChange{}}
	before := map[string]*rule{}
	if old != nil {
		c.From = old.version
		for _, r := range old.rules {
			before[r.id] = r
		}
	}
	if new == nil {
		return c
	}
	c.To = new.version
	oldYoung := DefaultYoungAccount
	if old != nil {
		oldYoung = old.young
	}
	if oldYoung != new.young {
		c.Settings = append(c.Settings, settingYoungAccount+": "+formatWindow(oldYoung)+" → "+formatWindow(new.young))
	}
	after := map[string]bool{}
	for _, r := range new.rules {
		after[r.id] = true
		prev, ok := before[r.id]
		if !ok {
			c.Added = append(c.Added, r.id)
			continue
		}
		var fields []string
		a, b := prev.definition(), r.definition()
		for _, f := range definitionFields {
			if a[f] != b[f] {
				fields = append(fields, f)
			}
		}
		if len(fields) > 0 {
			c.Changed = append(c.Changed, RuleChange{ID: r.id, Fields: fields})
		}
	}
	for id := range before {
		if !after[id] {
			c.Removed = append(c.Removed, id)
		}
	}
	slices.Sort(c.Added)
	slices.Sort(c.Removed)
	slices.SortFunc(c.Changed, func(x, y RuleChange) int { return strings.Compare(x.ID, y.ID) })
	return c
}

// definitionFields are the fields Diff compares, in the order it lists
// them.
var definitionFields = []string{"description", "mode", "events", "priority", "stop", "when", "reason", "actions", "examples", "file", "guard"}

// definition returns each compared field of the rule as text.
func (r *rule) definition() map[string]string {
	return map[string]string{
		"description": r.description,
		"mode":        string(r.mode),
		"events":      strings.Join(r.events, ","),
		"priority":    fmt.Sprint(r.priority),
		"stop":        fmt.Sprint(r.stop),
		"when":        r.when.src,
		"reason":      r.reasonSrc,
		"actions":     strings.Join(r.actionsSrc, "\n"),
		"examples":    r.examplesSrc,
		"file":        r.file,
		"guard":       fmt.Sprint(r.guard),
	}
}

// actionsSource writes a rule's actions as written, for Diff.
func actionsSource(raws []rawAction) []string {
	out := make([]string, len(raws))
	for i, a := range raws {
		out[i] = a.typ
		if a.params != nil {
			out[i] += " " + a.params.String()
		}
	}
	return out
}

// examplesSource writes a rule's examples without their lines, for Diff.
func examplesSource(exs []rawExample) string {
	var b strings.Builder
	for _, ex := range exs {
		fmt.Fprintf(&b, "%q %v %v %v %v %q %v %v\n", ex.name, ex.event, ex.match, ex.hasMatch, ex.actions, ex.reason, ex.hasReason, ex.history)
	}
	return b.String()
}
