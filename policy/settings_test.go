package policy

import (
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// youngRule matches a young account's message; its examples are a
// three-day-old account (young under 7d, not under the default day) and
// a year-old one.
const youngRule = `rules:
  - id: young-links
    description: links from young accounts
    when: user.young && len(text.links) > 0
    actions: [flag]
    examples:
      - event: {user: {created_at: "2026-01-12T12:00:00Z"}, message: {text: "see https://x.example"}}
        expect: {match: true}
      - event: {message: {text: "see https://x.example"}}
        expect: {match: false}
`

func TestYoungAccountSetting(t *testing.T) {
	t.Parallel()
	rs, err := Load(fstest.MapFS{"r.yaml": {Data: []byte(youngRule)}, "settings.yaml": {Data: []byte("settings:\n  young_account: 7d\n")}})
	if err != nil {
		t.Fatal(err)
	}
	if got := rs.YoungAccount(); got != 7*24*time.Hour {
		t.Errorf("YoungAccount() = %s, want 168h", got)
	}
	if d := rs.Defer(&Event{Type: "message.new"}); d.YoungAccount != 7*24*time.Hour {
		t.Errorf("Deferred.YoungAccount = %s, want the set's 168h", d.YoungAccount)
	}
	// Without the setting a day is young, and the three-day-old example
	// fails.
	_, err = Load(fstest.MapFS{"r.yaml": {Data: []byte(youngRule)}})
	want := []string{`r.yaml:7: rule young-links, example 1: did not match, but expect says match (it read text.links = ["https://x.example"], user.young = false)`}
	if diff := cmp.Diff(want, problemsOf(t, err)); diff != "" {
		t.Errorf("problems without the setting (-want +got):\n%s", diff)
	}
}

func TestYoungAccountDefault(t *testing.T) {
	t.Parallel()
	rs, err := Load(fstest.MapFS{"r.yaml": {Data: []byte(historyRule("r1", "[message.new]", `message.text == "a"`))}})
	if err != nil {
		t.Fatal(err)
	}
	if got := rs.YoungAccount(); got != DefaultYoungAccount {
		t.Errorf("YoungAccount() = %s, want the default %s", got, DefaultYoungAccount)
	}
	ev, _ := ExampleEvent(map[string]any{"user": map[string]any{"created_at": "2026-01-15T00:00:00Z"}})
	for _, tt := range []struct {
		age  time.Duration
		want bool
	}{{DefaultYoungAccount, true}, {12 * time.Hour, false}, {12*time.Hour + time.Second, true}} {
		if got := newEnv(ev, needAll, tt.age).User.Young; got != tt.want {
			t.Errorf("a 12h-old account under %s: user.young = %v, want %v", tt.age, got, tt.want)
		}
	}
	unknown, _ := ExampleEvent(map[string]any{"user": map[string]any{"created_at": nil}})
	if newEnv(unknown, needAll, MaxYoungAccount).User.Young {
		t.Errorf("an account of unknown age is young")
	}
}

func TestSettingsErrors(t *testing.T) {
	t.Parallel()
	rule := historyRule("r1", "[message.new]", `message.text == "a"`)
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"too short", map[string]string{"s.yaml": "settings:\n  young_account: 10s\n"}, []string{
			`s.yaml:2: settings: young_account "10s" is out of range: from 1m to 30d`}},
		{"too long", map[string]string{"s.yaml": "settings:\n  young_account: 45d\n"}, []string{
			`s.yaml:2: settings: young_account "45d" is out of range: from 1m to 30d`}},
		{"not a duration", map[string]string{"s.yaml": "settings:\n  young_account: a week\n"}, []string{
			`s.yaml:2: settings: young_account: duration "a week": want Go syntax with d for days, like 30m, 24h or 7d`}},
		{"a bare number", map[string]string{"s.yaml": "settings:\n  young_account: 7\n"}, []string{
			`s.yaml:2: settings: young_account: want a duration like 24h or 7d`}},
		{"misspelt", map[string]string{"s.yaml": "settings:\n  young_acount: 7d\n"}, []string{
			`s.yaml:2: settings: unknown key "young_acount" (known: young_account)`}},
		{"not a mapping", map[string]string{"s.yaml": "settings: [young_account]\n"}, []string{
			`s.yaml:1: settings must be a mapping`}},
		{"set twice", map[string]string{"a.yaml": "settings:\n  young_account: 7d\n", "b.yaml": "settings: {young_account: 3d}\n"}, []string{
			`b.yaml:1: settings: young_account is also set at a.yaml:2; set it once for the folder`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fsys := fstest.MapFS{"r.yaml": {Data: []byte(rule)}}
			for name, src := range tt.files {
				fsys[name] = &fstest.MapFile{Data: []byte(src)}
			}
			if diff := cmp.Diff(tt.want, loadProblems(t, fsys)); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}
