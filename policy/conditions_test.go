package policy

import (
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

// TestConditions: named conditions are shared by the folder's rules, may
// use one another and custom fields, and gate nothing by themselves: the
// rules' examples still run.
func TestConditions(t *testing.T) {
	t.Parallel()
	rs, err := Load(fstest.MapFS{
		"conditions.yaml": {Data: []byte(`conditions:
  young: user.account_age < duration("24h")
  linking: len(text.links) > 0
  young_linker: young && linking && !user.custom.verified
fields:
  user.verified: {type: bool}
`)},
		"rules.yaml": {Data: []byte(`rules:
  - id: young-links
    description: links from young accounts
    when: young_linker
    actions: [flag]
    examples:
      - {event: {user: {created_at: "2026-01-15T11:00:00Z"}, message: {text: "see https://a.example"}}, expect: {match: true}}
      - {event: {user: {created_at: "2026-01-15T11:00:00Z", verified: "true"}, message: {text: "see https://a.example"}}, expect: {match: false}}
      - {event: {message: {text: "see https://a.example"}}, expect: {match: false}}
  - id: young-shouting
    description: capitals from young accounts
    when: young && text.caps_ratio > 0.8
    actions: [flag]
    examples:
      - {event: {user: {created_at: "2026-01-15T11:00:00Z"}, message: {text: "STOP IT ALL NOW"}}, expect: {match: true}}
      - {event: {message: {text: "STOP IT ALL NOW"}}, expect: {match: false}}
`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := ExampleEvent(map[string]any{"user": map[string]any{"created_at": "2026-01-15T11:30:00Z"}, "message": map[string]any{"text": "https://x.example"}})
	if err != nil {
		t.Fatal(err)
	}
	d := rs.Evaluate(ev)
	if len(d.Matches) != 1 || d.Matches[0].RuleID != "young-links" {
		t.Fatalf("matches = %+v, want young-links", d.Matches)
	}
	// The evidence shows what the inlined condition read.
	if _, ok := d.Matches[0].Evidence["user.account_age"]; !ok {
		t.Errorf("evidence %v lacks user.account_age", d.Matches[0].Evidence)
	}
}

func TestConditionErrors(t *testing.T) {
	t.Parallel()
	_, err := Load(fstest.MapFS{
		"a.yaml": {Data: []byte(`conditions:
  young: user.account_age < duration("24h")
  user: message.text == "x"
  Bad-Name: user.online
  word_count: len(text.words)
  typo: >-
    message.text == "x" &&
    user.nmae == "y"
  loop_a: loop_b
  loop_b: loop_a
`)},
		"b.yaml": {Data: []byte(`conditions:
  young: user.online
rules:
  - id: r
    description: d
    when: typo || young
    actions: [flag]
    examples:
      - {event: {}, expect: {match: true}}
      - {event: {}, expect: {match: false}}
`)},
	})
	got := problemsOf(t, err)
	want := []string{
		`a.yaml:3: condition name "user" is already a name in rules: choose another`,
		`a.yaml:4: condition name "Bad-Name": use lower-case letters, digits and _, starting with a letter`,
		`a.yaml:5: condition word_count: expected bool, but got int`,
		`a.yaml:8: condition typo: type user has no field nmae (column 10)`,
		`a.yaml:9: condition loop_a: condition loop_a uses itself (loop_a → loop_b → loop_a)`,
		`a.yaml:10: condition loop_b: condition loop_a has problems (at a.yaml:9)`,
		`b.yaml:2: condition "young" is also defined at a.yaml:2`,
		`b.yaml:6: when: condition typo has problems (at a.yaml:6)`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}
