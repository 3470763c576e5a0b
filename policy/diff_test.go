package policy

import (
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

func TestDiff(t *testing.T) {
	t.Parallel()
	rule := func(id, when, action string) string {
		return `
  - id: ` + id + `
    description: rule ` + id + `
    mode: enforce
    when: ` + when + `
    actions: [` + action + `]
    examples:
      - {event: {message: {text: "x y"}}, expect: {match: true}}
      - {event: {message: {text: "nothing"}}, expect: {match: false}}
`
	}
	load := func(files map[string]string) *RuleSet {
		t.Helper()
		fsys := fstest.MapFS{}
		for name, data := range files {
			fsys[name] = &fstest.MapFile{Data: []byte(data)}
		}
		rs, err := Load(fsys)
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	old := load(map[string]string{"a.yaml": "rules:" + rule("keep", `message.text contains "x"`, "flag") +
		rule("edit", `message.text contains "y"`, "flag") + rule("drop", `message.text contains "x"`, "delete")})
	// keep moves down its file (an edit above it); edit gets another
	// condition and action; drop goes; fresh comes.
	new := load(map[string]string{"a.yaml": "# a comment\n\nrules:" + rule("edit", `message.text contains "x y"`, "delete") +
		rule("keep", `message.text contains "x"`, "flag") + rule("fresh", `message.text contains "x"`, "flag")})
	got := Diff(old, new)
	want := Changes{From: old.Version(), To: new.Version(), Added: []string{"fresh"}, Removed: []string{"drop"},
		Changed: []RuleChange{{ID: "edit", Fields: []string{"when", "actions"}}}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Diff (-want +got):\n%s", d)
	}
	if s := got.String(); s != "added fresh; removed drop; changed edit (when, actions)" {
		t.Errorf("String() = %q", s)
	}
	if first := Diff(nil, old); len(first.Added) != 3 || first.From != "" {
		t.Errorf("from nothing: %+v", first)
	}
	if same := Diff(old, old); !same.Empty() || same.String() != "no rule changed" {
		t.Errorf("same set: %+v", same)
	}
}
