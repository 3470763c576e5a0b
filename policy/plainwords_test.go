package policy

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

// TestPlainWordErrors: the errors staff found confusing each say what to
// write instead, at the right line (and column), word for word.
func TestPlainWordErrors(t *testing.T) {
	t.Parallel()
	// rule is a rule file whose when is the YAML text after "when:".
	rule := func(when string) string {
		return "rules:\n  - id: r\n    description: d\n    when: " + when +
			"\n    actions: [flag]\n    examples:\n      - {event: {message: {text: \"x\"}}, expect: {match: true}}\n      - {event: {message: {text: \"y\"}}, expect: {match: false}}\n"
	}
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"a duration compared with a number", map[string]string{"r.yaml": rule(`user.account_age < 24`)}, []string{
			`r.yaml:4: when: invalid operation: < (mismatched types time.Duration and int) (column 28): a duration compares only with a duration: write it as duration("24h") (or "30m", "7d")`,
		}},
		{"a number compared with a duration", map[string]string{"r.yaml": rule(`1.5 > user.account_age`)}, []string{
			`r.yaml:4: when: invalid operation: > (mismatched types float64 and time.Duration) (column 15): a duration compares only with a duration: write it as duration("24h") (or "30m", "7d")`,
		}},
		{"an unquoted duration", map[string]string{"r.yaml": rule(`user.account_age < duration(24h)`)}, []string{
			`r.yaml:4: when: bad number syntax: "24h" (column 41): quote the duration: duration("24h")`,
		}},
		{"a backslash in double quotes", map[string]string{"r.yaml": rule(`'text.lower matches "\d+"'`)}, []string{
			"r.yaml:4: when: invalid char escape (column 33): in double quotes a backslash starts an escape (\\n, \\t); write a pattern with backslashes in backticks, like matches `\\d+`",
		}},
		{"a single =", map[string]string{"r.yaml": rule(`message.text = "x"`)}, []string{
			`r.yaml:4: when: unexpected token Operator("=") (column 24): to compare, write == (a single = is not an operator)`,
		}},
		{"a tab", map[string]string{"r.yaml": "rules:\n  - id: r\n\tdescription: d\n"}, []string{
			`r.yaml:3: found character '	' that cannot start any token: a tab: indent with spaces, not tabs`,
		}},
		{"a key indented less", map[string]string{"r.yaml": "rules:\n  - id: r\n    description: d\n   when: x\n"}, []string{
			"r.yaml:4: value is not allowed in this context: indentation: this line or the next is indented differently from the keys beside it (the keys of one rule line up under its first key; list items start with - at one column)",
		}},
		{"a key indented more", map[string]string{"r.yaml": "rules:\n  - id: r\n    description: d\n      when: x\n"}, []string{
			"r.yaml:3: mapping value is not allowed in this context: indentation: this line or the next is indented differently from the keys beside it (the keys of one rule line up under its first key; list items start with - at one column)",
		}},
		{"folded >-, error on the first line", map[string]string{"r.yaml": rule(">-\n      user.nmae == \"y\" &&\n      message.text == \"x\"")}, []string{
			`r.yaml:5: when: type user has no field nmae (column 12)`,
		}},
		{"folded >-, error on the second line", map[string]string{"r.yaml": rule(">-\n      message.text == \"x\" &&\n      user.nmae == \"y\"")}, []string{
			`r.yaml:6: when: type user has no field nmae (column 12)`,
		}},
		{"folded > with a blank line", map[string]string{"r.yaml": rule(">\n\n      message.text == \"x\" &&\n\n      user.nmae == \"y\"")}, []string{
			`r.yaml:8: when: type user has no field nmae (column 12)`,
		}},
		{"plain scalar over lines", map[string]string{"r.yaml": rule("\n      message.text == \"x\" &&\n        user.nmae == \"y\"")}, []string{
			`r.yaml:6: when: type user has no field nmae (column 14)`,
		}},
		{"literal |", map[string]string{"r.yaml": rule("|\n      message.text == \"x\" &&\n      user.nmae == \"y\"")}, []string{
			`r.yaml:6: when: type user has no field nmae (column 12)`,
		}},
		{"a rule that fails to compile is not missing", map[string]string{
			"flood.yaml":  strings.Replace(rule(`message.txet == "x"`), "id: r", "id: flood", 1),
			"ladder.yaml": strings.Replace(rule(`strikes.by_rule("flood", "7d") > 0`), "id: r", "id: ladder", 1),
		}, []string{
			`flood.yaml:4: when: type message has no field txet (column 19)`,
		}},
		{"a rule that does not exist is", map[string]string{
			"ladder.yaml": strings.Replace(rule(`strikes.by_rule("flod", "7d") > 0`), "id: r", "id: ladder", 1),
		}, []string{
			`ladder.yaml:4: strikes.by_rule: no rule "flod" in this rules folder`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fsys := fstest.MapFS{}
			for name, data := range tt.files {
				fsys[name] = &fstest.MapFile{Data: []byte(data)}
			}
			_, err := Load(fsys)
			got := problemsOf(t, err)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}
