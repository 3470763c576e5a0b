package policy

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// TestHostileRules: rules that would exhaust time or memory are refused
// at load, each with a reason at its line; the ones that load are bounded
// at run and never crash the evaluation.
func TestHostileRules(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		when    string
		wantErr string // "" when the rule loads
	}{
		{"huge literal", `message.text == "` + strings.Repeat("x", 5000) + `"`, "when: expression is 5018 bytes long; the limit is 4096"},
		{"too many nodes", strings.Repeat("message.mention_count > 1 || ", 120) + "true", "exceeds maximum allowed nodes"},
		{"deep nesting", strings.Repeat("!", 100) + "true", "nested more than 40 levels deep"},
		{"deep brackets", strings.Repeat("[", 60) + strings.Repeat("]", 60) + ` == []`, "nested more than 40 levels deep"},
		{"invalid regexp repetition", `text.lower matches "(a{1000}){1000}"`, "invalid repeat count"},
		{"pattern built at run time", `text.lower matches user.name`, "the pattern of matches must be a string literal"},
		{"very long pattern", `text.lower matches "` + strings.Repeat("a", 1100) + `"`, "pattern is 1100 bytes long; the limit is 1000"},
		{"string concatenation", `text.lower + text.lower == ""`, "+ adds numbers, durations and times only"},
		{"concatenating custom fields", `user.custom.a + user.custom.b == ""`, "+ adds numbers, durations and times only"},
		{"repeat", `repeat(text.lower, 1000000) == ""`, "unknown name repeat"},
		{"join", `join(text.words, ",") == ""`, "unknown name join"},
		{"replace", `replace(text.lower, "", text.lower) == ""`, "unknown name replace"},
		{"toJSON", `len(toJSON(message)) > 0`, "unknown name toJSON"},
		{"reduce", `reduce(1..30, #acc + #acc, 1) > 0`, "unknown name reduce"},
		{"groupBy", `len(groupBy(text.words, #)) > 0`, "unknown name groupBy"},
		{"sortBy", `len(sortBy(text.words, len(#))) > 0`, "unknown name sortBy"},
		{"flatten", `len(flatten([text.words, text.words])) > 0`, "unknown name flatten"},
		{"clock", `now() > event.created_at`, "unknown name now"},
		{"huge literal range", `len(1..100000000) > 0`, "range 1..100000000 has more than 10000 elements"},
		{"range sized by the event", `len(map(1..message.mention_count * 100000, #)) > 0`, "refused: allocates more than the memory budget"},
		{"nested loops over words", `any(text.words, any(text.words, any(text.words, # == "x")))`, "avoid nested loops"},
		{"quadratic search", `len(filter(text.words, len(split(text.lower, #)) > 1)) > 0`, "avoid nested loops"},
		{"big list of big strings", `len(map(text.words, upper(text.lower))) > 0`, "avoid nested loops"},
		{"loop over long strings", `sum(map(1..9999, len(text.normalized) + len(text.lower) + len(message.text))) > 0`, "avoid nested loops"},
		{"non-literal duration", `user.account_age < duration(user.name)`, "duration takes a literal"},
		{"catastrophic pattern for backtracking engines is linear in RE2", `text.lower matches "^(a+)+$"`, ""},
		{"index out of range is a run-time error", `message.mentions[5] == "x"`, ""},
		{"missing unchecked custom field is a run-time error", `int(user.custom.level) > 3`, ""},
		{"undeclared custom field", `user.custom.verified`, "custom field user.custom.verified is not declared: declare its type and default in a fields: block, like fields: {user.verified: {type: bool, default: false}}"},
		{"custom field read by a computed name", `user.custom[user.name] == "x"`, "read custom fields by name, like user.custom.verified, so that their type is known"},
		{"a bounded loop", `count(text.words, # in ["a", "b"]) > 3`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// After the rules, so that their lines stay put.
			yaml := ruleYAML(tt.when) + "fields:\n  user.a: {type: string}\n  user.b: {type: string}\n  user.level: {type: object}\n"
			rs, err := Load(fstest.MapFS{"r.yaml": {Data: []byte(yaml)}})
			if tt.wantErr != "" {
				var le *LoadError
				if !errors.As(err, &le) {
					t.Fatalf("got %v, want a load error containing %q", err, tt.wantErr)
				}
				if got := le.Problems[0]; got.Line != 4 || !strings.Contains(got.Msg, tt.wantErr) {
					t.Errorf("got %s, want r.yaml:4 with %q", got, tt.wantErr)
				}
				return
			}
			var le *LoadError
			if errors.As(err, &le) {
				// Examples may fail (they are trivial); the rule itself
				// must have compiled and passed the worst-case run.
				for _, p := range le.Problems {
					if !strings.Contains(p.Msg, "example") {
						t.Fatalf("got %s, want the rule to load", p)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, ev := range worstCaseEvents("message.new") {
				d := rs.Evaluate(ev)
				if d.RuleSetVersion == "" {
					t.Errorf("no decision")
				}
			}
		})
	}
}

// TestHostileLists: word lists are bounded too.
func TestHostileLists(t *testing.T) {
	t.Parallel()
	var big strings.Builder
	for i := range maxListEntries + 1 {
		fmt.Fprintf(&big, "w%d\n", i)
	}
	tests := []struct {
		name string
		data string
		want string
	}{
		{"too many entries", big.String(), fmt.Sprintf("words.txt:%d: list has more than %d entries", maxListEntries+1, maxListEntries)},
		{"long phrase", "a b c d e f g\n", "words.txt:1: phrase \"a b c d e f g\" has 7 words; the limit is 5"},
		{"invalid UTF-8", "ok\n\xff\xfe\n", "words.txt:2: entry is not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, problems := parseWordList("words.txt", []byte(tt.data))
			if len(problems) != 1 || problems[0].String() != tt.want {
				t.Errorf("got %v, want [%s]", problems, tt.want)
			}
		})
	}
}

// TestHostileRuleFiles: rule files that would be expensive to read.
func TestHostileRuleFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		data string
		want string
	}{
		{"huge file", "rules:\n" + strings.Repeat("# padding\n", maxRuleFileBytes/10+1),
			fmt.Sprintf("r.yaml: file is %d bytes long; the limit for a rule file is %d", len("rules:\n")+10*(maxRuleFileBytes/10+1), maxRuleFileBytes)},
		{"alias bomb", "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nrules: [*b]\n",
			"r.yaml:1: YAML anchors, aliases and merge keys are not allowed in rule files"},
		{"not a mapping", "- just\n- a list\n", "r.yaml:1: a rule file is a mapping with a rules: list"},
		{"rules not a list", "rules: yes\n", "r.yaml:1: rules: must be a list of rules"},
		{"rule not a mapping", "rules:\n  - just a string\n", "r.yaml:2: a rule must be a mapping with id, when, actions and examples"},
		{"unknown top-level key", "rulez: []\n", `r.yaml:1: rule file: unknown key "rulez" (known: rules, conditions, fields, settings)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Load(fstest.MapFS{"r.yaml": {Data: []byte(tt.data)}})
			var le *LoadError
			if !errors.As(err, &le) {
				t.Fatalf("got %v, want a *LoadError", err)
			}
			if got := le.Problems[0].String(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestWorstCaseLimits: the measured run refuses rules over the limits. The
// limits are set so low that every rule is over them, so the test does not
// depend on the machine's speed.
func TestWorstCaseLimits(t *testing.T) {
	t.Parallel()
	fsys := fstest.MapFS{"r.yaml": {Data: []byte(ruleYAML(`len(split(text.lower, "")) > 0 && message.text == "x"`))}}
	tests := []struct {
		name string
		lim  worstCaseLimits
		want string
	}{
		{"time", worstCaseLimits{time: 1, alloc: 1 << 40}, "r.yaml:4: when: refused: takes "},
		{"memory", worstCaseLimits{time: time.Hour, alloc: 1024}, "r.yaml:4: when: refused: allocates "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := load(fsys, tt.lim)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("got %v, want %q…", err, tt.want)
			}
		})
	}
	if _, err := load(fsys, defaultLimits()); err != nil {
		t.Errorf("default limits: %v", err)
	}
}
