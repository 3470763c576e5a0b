package policy

import (
	"errors"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// TestLoadErrors loads each broken folder under testdata/load and checks
// every problem, with its file and line, word for word.
func TestLoadErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		dir  string
		want []string
	}{
		{"bad-fields", []string{
			`rules.yaml:2: field "user.verified" is also declared at more.yaml:2`,
			`rules.yaml:3: field user.level: type "number": want one of bool, string, int, float, strings, object`,
			`rules.yaml:4: field user.tier: default 3 is not a string`,
			`rules.yaml:5: field "user.name" is one of Stream's own fields, not a custom one: read it as user.name`,
			`rules.yaml:6: field "team.size": name it user.NAME, message.NAME or channel.NAME`,
			`rules.yaml:7: field channel.tier needs a type (bool, string, int, float, strings, object), like channel.tier: {type: bool, default: false}`,
			`rules.yaml:8: field message.flags: unknown key "kind" (known: type, default, description)`,
			`rules.yaml:12: when: custom field user.custom.karma is not declared: declare its type and default in a fields: block, like fields: {user.karma: {type: bool, default: false}} (types: bool, string, int, float, strings, object)`,
		}},
		{"example-keys", []string{
			`rules.yaml:9: rule unverified-links, example 1: message.txt is not a field of Stream's events (did you mean "text"?); a custom field must be declared (fields: {message.txt: {type: …}})`,
			`rules.yaml:10: rule unverified-links, example 2: usr is not a field of Stream's events (did you mean "user"?)`,
			`rules.yaml:11: rule unverified-links, example 3: message.old_text is not a field of the event: the text before an edit is on the event: message_update: {old_text: …}`,
			`rules.yaml:12: rule unverified-links, example 4: user.verifed is not a field of Stream's events (did you mean "verified"?); a custom field must be declared (fields: {user.verifed: {type: …}})`,
			`rules.yaml:13: rule unverified-links, example 5: user.custom.level is not a declared custom field: declare it (fields: {user.level: {type: …}})`,
			`rules.yaml:14: rule unverified-links, example 6: message.attachments[0].titel is not a field of Stream's events (did you mean "title"?)`,
		}},
		{"typo-key", []string{
			`rules.yaml:4: rule: unknown key "wehn" (known: id, description, reason, events, mode, priority, stop, when, actions, examples, guard)`,
		}},
		{"type-error", []string{
			`rules.yaml:4: when: type user has no field acount_age (column 16)`,
			`rules.yaml:11: when: invalid operation: < (mismatched types time.Duration and string) (column 28): a duration compares only with a duration: write it as duration("24h") (or "30m", "7d")`,
		}},
		{"multiline-when", []string{
			`rules.yaml:7: when: type user has no field nmae (column 14)`,
		}},
		{"not-bool", []string{
			`rules.yaml:4: when: expected bool, but got int`,
		}},
		{"unknown-list", []string{
			`rules.yaml:4: when: contains_any: unknown word list "swears" (lists are the .txt files of the rules folder: profanity)`,
			`rules.yaml:11: when: contains_any: the list name must be a string literal, like contains_any(text.words, "profanity")`,
		}},
		{"bad-actions", []string{
			`rules.yaml:6: flag: unknown field "reasn"`,
			`rules.yaml:7: mute timeout 30s: Stream counts whole minutes, so use at least 1m and whole minutes`,
			`rules.yaml:8: ban delete_messages "all": want soft, pruning or hard`,
			`rules.yaml:9: unknown action "kick" (known: flag, mute, ban, delete, warn, block, rewrite)`,
			`rules.yaml:10: flag target "channel": want message or user`,
			`rules.yaml:11: warn needs a text: - warn: {text: "Please keep links out of this channel"}`,
			`rules.yaml:12: ban timeout 90 needs a unit, like 30m, 24h or 7d`,
			`rules.yaml:13: block works only before a message is sent: use it in a rule with events: [before_send]`,
			`rules.yaml:21: flag needs a message, but the rule also applies to user.banned events`,
			`rules.yaml:21: flag reason is 256 characters; Stream accepts at most 255`,
			`rules.yaml:22: delete needs a message, but the rule also applies to user.banned events`,
		}},
		{"bad-before-send", []string{
			`rules.yaml:5: rewrite masks the words a list function found, but this rule's when calls none: use contains_any(text.words, "list")`,
			`rules.yaml:7: flag cannot run before a message is sent: before_send rules take block or rewrite`,
			`rules.yaml:8: block needs a text, shown to the sender: - block: {text: "Links are not allowed here"}`,
			`rules.yaml:9: block: unknown field "hard"`,
			`rules.yaml:10: rewrite mask "half": want first (keep the first letter) or full`,
			`rules.yaml:16: before_send cannot be mixed with other events (it takes only block and rewrite): write a separate rule`,
			`rules.yaml:19: delete cannot run before a message is sent: before_send rules take block or rewrite`,
			`rules.yaml:26: rewrite masks the words a list function found, but this rule's when calls none: use contains_any(text.words, "list")`,
			`rules.yaml:36: rewrite works only before a message is sent: use it in a rule with events: [before_send]`,
		}},
		{"duplicate-ids", []string{
			`a.yaml:2: rule id "same" is also used at b.yml:3`,
			`b.yml:3: rule id "same" is also used at a.yaml:2`,
		}},
		{"examples-missing", []string{
			`rules.yaml:2: rule no-examples needs at least one example that matches and one that does not (it has 0 and 0)`,
			`rules.yaml:6: rule only-matching needs at least one example that matches and one that does not (it has 1 and 0)`,
			`rules.yaml:18: example needs expect: {match: true} or expect: {match: false}`,
		}},
		{"example-fails", []string{
			`rules.yaml:13: rule too-broad, example "new account with a link": actions are [flag], expect says [flag, delete]`,
			`rules.yaml:14: rule too-broad, example "week-old account with a link": matched, but expect says no match (it read text.links = ["https://example.com"], user.account_age = "168h0m0s")`,
			`rules.yaml:23: rule too-broad, example "reason": reason is "an example that shows the rule is wrong", expect says "something else"`,
			`rules.yaml:24: rule too-broad, example "not a message event": did not match, but expect says match (the rule does not apply to user.updated events)`,
		}},
		{"event-typo", []string{
			`rules.yaml:4: unknown event type "mesage.new" (did you mean "message.new"?)`,
		}},
		{"yaml-syntax", []string{
			`rules.yaml:4: ',' or ']' must be specified`,
		}},
		{"anchors", []string{
			`rules.yaml:2: YAML anchors, aliases and merge keys are not allowed in rule files`,
			`rules.yaml:7: YAML anchors, aliases and merge keys are not allowed in rule files`,
		}},
		{"bad-mode", []string{
			`rules.yaml:2: rule id "Bad_ID": use 1-64 lower-case letters, digits, -, _ or . (ids appear in the audit trail)`,
			`rules.yaml:4: mode "enforcing": want enforce or shadow`,
		}},
		{"bad-pattern", []string{
			"rules.yaml:4: when: error parsing regexp: missing closing ): `free (nitro` (column 22)",
			`rules.yaml:11: when: the pattern of matches must be a string literal, so that it is compiled once, at load`,
		}},
		{"bad-duration", []string{
			`rules.yaml:4: when: duration "3 days": want a whole number of days before "d", like 7d`,
		}},
		{"bad-list", []string{
			`words.txt:4: entry "!!!" has no letters or digits to match`,
			`words.txt:5: entry is 300 bytes long; the limit is 256`,
		}},
		{"empty", []string{
			`.: no rule files (*.yaml, *.yml) in the rules folder`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			t.Parallel()
			rs, err := Load(os.DirFS("testdata/load/" + tt.dir))
			if rs != nil {
				t.Fatalf("Load returned a rule set for a broken folder")
			}
			var le *LoadError
			if !errors.As(err, &le) {
				t.Fatalf("got error %v (%T), want a *LoadError", err, err)
			}
			var got []string
			for _, p := range le.Problems {
				got = append(got, p.String())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
			if got, want := err.Error(), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("Error() = %q, want the problems joined by newlines %q", got, want)
			}
		})
	}
}

// TestLoadEveryTestdataFolderIsTested keeps TestLoadErrors in step with
// testdata/load.
func TestLoadEveryTestdataFolderIsTested(t *testing.T) {
	t.Parallel()
	entries, err := os.ReadDir("testdata/load")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(entries), 20; got != want {
		t.Errorf("testdata/load has %d folders, TestLoadErrors covers %d: add the new ones to the table", got, want)
	}
}

// ruleYAML is a rule file with one rule and two trivial examples, for
// tests about what loads.
func ruleYAML(when string) string {
	return "rules:\n  - id: r\n    description: test rule\n    when: " + yamlQuote(when) +
		"\n    actions: [flag]\n    examples:\n      - {event: {message: {text: \"x\"}}, expect: {match: true}}\n      - {event: {message: {text: \"y\"}}, expect: {match: false}}\n"
}

func yamlQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

func TestLoadFolderLayout(t *testing.T) {
	t.Parallel()
	rule := func(id string) *fstest.MapFile {
		return &fstest.MapFile{Data: []byte(strings.ReplaceAll(ruleYAML(`message.text == "x"`), "id: r", "id: "+id))}
	}
	fsys := fstest.MapFS{
		"a.yaml":             rule("a"),
		"sub/b.yml":          rule("b"),
		".hidden/c.yaml":     rule("c"),
		"_drafts/d.yaml":     rule("d"),
		".e.yaml":            rule("e"),
		"README.md":          {Data: []byte("# not a rule file")},
		"embed.go":           {Data: []byte("package rules")},
		"sub/lists/bad.txt":  {Data: []byte("darn\n")},
		"sub/lists/bad2.txt": {Data: []byte("heck\n")},
	}
	rs, err := Load(fsys)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	var ids []string
	for _, r := range rs.Rules() {
		ids = append(ids, r.ID+"@"+r.File)
	}
	if diff := cmp.Diff([]string{"a@a.yaml", "b@sub/b.yml"}, ids); diff != "" {
		t.Errorf("rules loaded (-want +got):\n%s", diff)
	}
	if _, ok := rs.lists["bad2"]; !ok {
		t.Errorf("list bad2 in a subfolder was not loaded")
	}

	fsys["other/bad.txt"] = &fstest.MapFile{Data: []byte("gosh\n")}
	_, err = Load(fsys)
	if got, want := err.Error(), `sub/lists/bad.txt: word list "bad" is also defined by other/bad.txt`; got != want {
		t.Errorf("duplicate list: got %q, want %q", got, want)
	}
}

func TestLoadReadError(t *testing.T) {
	t.Parallel()
	_, err := Load(os.DirFS("testdata/does-not-exist"))
	var le *LoadError
	if err == nil || errors.As(err, &le) {
		t.Fatalf("got %v, want a plain error for an unreadable folder", err)
	}
	if !strings.Contains(err.Error(), "read rules folder") {
		t.Errorf("got %q, want it to say what failed", err)
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	base := fstest.MapFS{
		"a.yaml":  {Data: []byte(ruleYAML(`message.text == "x"`))},
		"w.txt":   {Data: []byte("darn\n")},
		"doc.md":  {Data: []byte("docs")},
		".x.yaml": {Data: []byte("ignored")},
	}
	load := func(fsys fstest.MapFS) string {
		t.Helper()
		rs, err := Load(fsys)
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		return rs.Version()
	}
	v := load(base)
	if len(v) != 12 || strings.Trim(v, "0123456789abcdef") != "" {
		t.Errorf("version %q: want 12 hex digits", v)
	}
	if again := load(base); again != v {
		t.Errorf("same folder: got version %s, then %s", v, again)
	}

	changed := func(edit func(fstest.MapFS)) fstest.MapFS {
		c := fstest.MapFS{}
		for k, f := range base {
			c[k] = &fstest.MapFile{Data: f.Data}
		}
		edit(c)
		return c
	}
	if got := load(changed(func(c fstest.MapFS) { c["doc.md"].Data = []byte("other docs") })); got != v {
		t.Errorf("a non-rule file changed the version: %s → %s", v, got)
	}
	if got := load(changed(func(c fstest.MapFS) { c["w.txt"].Data = []byte("darn\nheck\n") })); got == v {
		t.Errorf("a word list change kept version %s", v)
	}
	if got := load(changed(func(c fstest.MapFS) { c["a.yaml"].Data = []byte(ruleYAML(`message.text == "x" `)) })); got == v {
		t.Errorf("a rule change kept version %s", v)
	}
	if got := load(changed(func(c fstest.MapFS) { c["b.yaml"] = c["a.yaml"]; delete(c, "a.yaml") })); got == v {
		t.Errorf("renaming a rule file kept version %s", v)
	}
}

func TestRules(t *testing.T) {
	t.Parallel()
	yaml := `rules:
  - id: low
    description: Low priority
    when: message.mention_count > 1
    actions: [flag]
    examples:
      - {event: {message: {mentioned_users: [{id: a}, {id: b}]}}, expect: {match: true}}
      - {event: {}, expect: {match: false}}
  - id: high
    description: High priority
    mode: enforce
    priority: 5
    stop: true
    events: [message.new, user.*]
    when: message.mention_count > 1
    actions: [delete, {ban: {timeout: 1h}}]
    examples:
      - {event: {message: {mentioned_users: [{id: a}, {id: b}]}}, expect: {match: true}}
      - {event: {}, expect: {match: false}}
      - {event: {}, expect: {match: false}}
`
	if _, err := Load(fstest.MapFS{"r.yaml": {Data: []byte(yaml)}}); err == nil {
		t.Fatalf("Load: a rule with delete and user.* events loaded")
	}
	yaml = strings.Replace(yaml, "[delete, {ban", "[{flag: {target: user}}, {ban", 1)
	rs, err := Load(fstest.MapFS{"r.yaml": {Data: []byte(yaml)}})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := []RuleInfo{
		{ID: "high", File: "r.yaml", Line: 9, Description: "High priority", Mode: ModeEnforce, Events: []string{"message.new", "user.*"},
			Priority: 5, Stop: true, When: "message.mention_count > 1", Actions: []ActionType{ActionFlag, ActionBan}, Examples: 3},
		{ID: "low", File: "r.yaml", Line: 2, Description: "Low priority", Mode: ModeShadow, Events: []string{"message.new", "message.updated"},
			When: "message.mention_count > 1", Actions: []ActionType{ActionFlag}, Examples: 2},
	}
	if diff := cmp.Diff(want, rs.Rules(), cmpopts.IgnoreFields(RuleInfo{}, "Digest")); diff != "" {
		t.Errorf("Rules() (-want +got):\n%s", diff)
	}
	for _, tt := range []struct {
		typ  string
		want bool
	}{{"message.new", true}, {"user.banned", true}, {"message.updated", false}, {"reaction.new", false}} {
		if got := rs.Rules()[0].AppliesTo(tt.typ); got != tt.want {
			t.Errorf("AppliesTo(%q) = %v, want %v", tt.typ, got, tt.want)
		}
	}
}

func TestLoadTemplateErrors(t *testing.T) {
	t.Parallel()
	yaml := `rules:
  - id: t
    description: d
    reason: "hello {{user.nmae}}"
    when: message.mention_count > 1
    actions:
      - warn: {text: "hi {{user.name"}
      - flag: {reason: "{{len(text.words) > 1}} {{hits(text.words, \"nope\")}}"}
      - ban:
          reason: |
            first line
            {{message.text matches user.name}}
    examples:
      - {event: {}, expect: {match: true}}
      - {event: {}, expect: {match: false}}
`
	_, err := Load(fstest.MapFS{"r.yaml": {Data: []byte(yaml)}})
	want := []string{
		`r.yaml:4: reason: in {{user.nmae}}: type user has no field nmae (column 6)`,
		`r.yaml:7: warn text: {{ without a closing }}`,
		`r.yaml:8: flag reason: in {{hits(text.words, "nope")}}: hits: unknown word list "nope" (lists are the .txt files of the rules folder: there are none)`,
		`r.yaml:12: ban reason: in {{message.text matches user.name}}: the pattern of matches must be a string literal, so that it is compiled once, at load`,
	}
	var le *LoadError
	if !errors.As(err, &le) {
		t.Fatalf("got %v, want a *LoadError", err)
	}
	var got []string
	for _, p := range le.Problems {
		got = append(got, p.String())
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}
