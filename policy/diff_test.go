package policy

import (
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

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
	// A setting changes what rules read without changing a rule.
	week := load(map[string]string{"a.yaml": "rules:" + rule("keep", `message.text contains "x"`, "flag") +
		rule("edit", `message.text contains "y"`, "flag") + rule("drop", `message.text contains "x"`, "delete"),
		"settings.yaml": "settings: {young_account: 7d}\n"})
	if got := Diff(old, week); got.Empty() || got.String() != "settings young_account: 1d → 7d" {
		t.Errorf("young_account changed: %+v, %q", got, got.String())
	}
}

func TestGuard(t *testing.T) {
	t.Parallel()
	def := Guard{MaxOverturnRate: 0.3, MinActions: 20, Window: 7 * 24 * time.Hour}
	g := Guard{MinActions: 10}.Or(def)
	if g != (Guard{MaxOverturnRate: 0.3, MinActions: 10, Window: 7 * 24 * time.Hour}) {
		t.Errorf("Or: %+v", g)
	}
	for _, tt := range []struct {
		taken, overturned int
		want              bool
	}{{19, 19, false}, {20, 5, false}, {20, 6, true}, {30, 9, true}, {30, 8, false}, {0, 0, false}} {
		if got := def.Trips(tt.taken, tt.overturned); got != tt.want {
			t.Errorf("Trips(%d, %d) = %v, want %v", tt.taken, tt.overturned, got, tt.want)
		}
	}
	for _, tt := range []struct{ guard, want string }{
		{"{max_overturn_rate: 1.5}", "rules.yaml:6: guard max_overturn_rate 1.5: want a share above 0 and at most 1, like 0.3"},
		{"{min_actions: 0}", "rules.yaml:6: guard min_actions 0: want at least 1"},
		{"{window: 90d}", `rules.yaml:6: guard window "90d": want a duration from 1h to 30d, like 7d`},
		{"{windw: 7d}", "rules.yaml:6: guard: unknown field \"windw\""},
	} {
		src := "rules:\n  - id: r\n    description: d\n    mode: enforce\n    when: message.text == \"x\"\n    guard: " + tt.guard +
			"\n    actions: [flag]\n    examples:\n      - {event: {message: {text: x}}, expect: {match: true}}\n      - {event: {message: {text: y}}, expect: {match: false}}\n"
		_, err := Load(fstest.MapFS{"rules.yaml": {Data: []byte(src)}})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("guard %s: %v, want %q", tt.guard, err, tt.want)
		}
	}
	src := "rules:\n  - id: r\n    description: d\n    mode: enforce\n    when: message.text == \"x\"\n    guard: {max_overturn_rate: 0.5, min_actions: 5, window: 2d}" +
		"\n    actions: [flag]\n    examples:\n      - {event: {message: {text: x}}, expect: {match: true}}\n      - {event: {message: {text: y}}, expect: {match: false}}\n"
	rs, err := Load(fstest.MapFS{"rules.yaml": {Data: []byte(src)}})
	if err != nil {
		t.Fatal(err)
	}
	if g := rs.Rules()[0].Guard; g != (Guard{MaxOverturnRate: 0.5, MinActions: 5, Window: 48 * time.Hour}) {
		t.Errorf("guard %+v", g)
	}
	shadowed := rs.WithShadow(map[string]bool{"r": true})
	if shadowed.Rules()[0].Mode != ModeShadow || rs.Rules()[0].Mode != ModeEnforce || shadowed.Rules()[0].Digest != rs.Rules()[0].Digest {
		t.Errorf("WithShadow: %v / %v", shadowed.Rules()[0], rs.Rules()[0])
	}
	ev := &Event{Type: "message.new", Message: &Message{Text: "x"}}
	if d := shadowed.Evaluate(ev); len(d.Matches) != 1 || len(d.Actions) != 0 || d.Matches[0].Mode != ModeShadow {
		t.Errorf("a demoted rule asked for actions: %+v", d)
	}
}

// TestShadowReadsStrikes: a set asks for the shadow rules' history (its
// Deferred says so) only when a shadow rule reads strikes, written in
// shadow or demoted; the shadow history is what the shadow rules read.
func TestShadowReadsStrikes(t *testing.T) {
	t.Parallel()
	rule := func(id, mode, when string) string {
		hist := ""
		if strings.Contains(when, "strikes") {
			hist = `history: {'strikes.count("7d")': 1}, `
		}
		return "  - id: " + id + "\n    description: d\n    mode: " + mode + "\n    when: " + when +
			"\n    actions: [flag]\n    examples:\n      - {" + hist + "event: {message: {text: x}}, expect: {match: true}}" +
			"\n      - {event: {message: {text: y}}, expect: {match: false}}\n"
	}
	ladder := `message.text == "x" && strikes.count("7d") == 1`
	tests := []struct {
		name   string
		src    string
		demote map[string]bool
		want   bool
	}{
		{name: "enforce only", src: rule("a", "enforce", ladder)},
		{name: "shadow without strikes", src: rule("a", "enforce", ladder) + rule("b", "shadow", `message.text == "x"`)},
		{name: "shadow reading strikes", src: rule("a", "shadow", ladder), want: true},
		{name: "demoted", src: rule("a", "enforce", ladder), demote: map[string]bool{"a": true}, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rs, err := Load(fstest.MapFS{"rules.yaml": {Data: []byte("rules:\n" + tt.src)}})
			if err != nil {
				t.Fatal(err)
			}
			rs = rs.WithShadow(tt.demote)
			ev := &Event{Type: "message.new", Message: &Message{Text: "x"}}
			def := rs.Defer(ev)
			if rs.ShadowReadsStrikes() != tt.want || def.ShadowStrikes != tt.want {
				t.Errorf("ShadowReadsStrikes %t, Deferred.ShadowStrikes %t, want %t", rs.ShadowReadsStrikes(), def.ShadowStrikes, tt.want)
			}
			k := HistoryKey{Name: StrikesCount, Window: 7 * 24 * time.Hour}
			d := def.Decide(History{k: 0}, History{k: 1})
			// Only a shadow rule reads the shadow history, where its ladder
			// is at 1; the enforce one reads 0.
			matched := slices.ContainsFunc(d.Matches, func(m Match) bool { return m.RuleID == "a" })
			if want := rs.Rules()[0].Mode == ModeShadow; matched != want {
				t.Errorf("rule a (%s) matched: %t, want %t", rs.Rules()[0].Mode, matched, want)
			}
		})
	}
}
