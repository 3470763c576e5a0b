package policy

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/expr-lang/expr/parser"
	"github.com/google/go-cmp/cmp"
)

// historyRule is a rule file with one rule whose when is when, on line 5,
// with a matching and a non-matching example that read no history.
func historyRule(id, events, when string) string {
	return `rules:
  - id: ` + id + `
    description: test
    events: ` + events + `
    when: ` + when + `
    mode: enforce
    actions: [flag]
    examples:
      - event: {message: {text: "a"}}
        expect: {match: true}
      - event: {message: {text: "b"}}
        expect: {match: false}
`
}

func loadProblems(t *testing.T, fsys fstest.MapFS) []string {
	t.Helper()
	_, err := Load(fsys)
	return problemsOf(t, err)
}

// problemsOf returns the problems of a *LoadError as file:line: message,
// failing the test for any other error or none.
func problemsOf(t *testing.T, err error) []string {
	t.Helper()
	var le *LoadError
	if !errors.As(err, &le) {
		t.Fatalf("Load: got %v, want a *LoadError", err)
	}
	var got []string
	for _, p := range le.Problems {
		got = append(got, p.String())
	}
	return got
}

func TestHistoryLoadErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		when string
		want []string
	}{
		{"window not a literal", `let w = "1m"; counts.user_messages(w) > 3`, []string{
			`r.yaml:5: when: counts.user_messages: its arguments must be string literals, like counts.user_messages("1h"), so that the history it needs is known when the rules load`}},
		{"window too long", `counts.user_messages("31d") > 3`, []string{
			`r.yaml:5: when: counts.user_messages: window "31d" is out of range: from 1s to 30d`}},
		{"window too short", `counts.user_links("500ms") > 3`, []string{
			`r.yaml:5: when: counts.user_links: window "500ms" is out of range: from 1s to 30d`}},
		{"window not a duration", `strikes.count("a week") > 0`, []string{
			`r.yaml:5: when: strikes.count: window: duration "a week": want Go syntax with d for days, like 30m, 24h or 7d`}},
		{"unknown action type", `strikes.of_type("kick", "7d") > 0`, []string{
			`r.yaml:5: when: strikes.of_type: unknown action type "kick" (strikes are of flag, mute, ban, delete, warn)`}},
		{"unknown rule", `strikes.by_rule("profanty", "7d") > 0`, []string{
			`r.yaml:5: strikes.by_rule: no rule "profanty" in this rules folder`}},
		{"misspelt counter", `counts.user_mesages("1m") > 3`, []string{
			`r.yaml:5: when: type counts has no method user_mesages (column 18)`}},
		{"namespace as a value", `counts != nil`, []string{
			`r.yaml:5: when: counts.… is a set of functions: call one with a literal window, like counts.user_messages("1m")`}},
		{"function as a value", `let f = strikes.count; f("7d") > 0`, []string{
			`r.yaml:5: when: strikes.… is a set of functions: call one with a literal window, like strikes.count("7d")`}},
		{"mentions window too long", `counts.user_mentions("45d") > 3`, []string{
			`r.yaml:5: when: counts.user_mentions: window "45d" is out of range: from 1s to 30d`}},
		{"channel users with two arguments", `counts.channel_users("mute", "1m") > 3`, []string{
			`r.yaml:5: when: too many arguments to call channel_users (column 18)`}},
		{"channel users window not a literal", `let w = "1m"; counts.channel_users(w) > 3`, []string{
			`r.yaml:5: when: counts.channel_users: its arguments must be string literals, like counts.channel_users("1h"), so that the history it needs is known when the rules load`}},
		{"wrong number of arguments", `strikes.of_type("7d") > 0`, []string{
			`r.yaml:5: when: not enough arguments to call of_type (column 19)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := loadProblems(t, fstest.MapFS{"r.yaml": {Data: []byte(historyRule("r1", "[message.new]", tt.when))}})
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHistoryRefusedBeforeSend(t *testing.T) {
	t.Parallel()
	src := `rules:
  - id: flood-block
    description: test
    events: [before_send]
    when: counts.user_messages("1m") > 10
    mode: enforce
    actions: [{block: {text: "slow down"}}]
    examples:
      - event: {message: {text: "a"}}
        expect: {match: true}
      - event: {message: {text: "b"}}
        expect: {match: false}
`
	got := loadProblems(t, fstest.MapFS{"r.yaml": {Data: []byte(src)}})
	want := []string{`r.yaml:5: counts.user_messages cannot be read by a before_send rule: the hook answers before the database is asked (read it in a message.new rule)`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}

// ladder is a warn, mute, ban escalation with examples setting history.
const ladder = `rules:
  - id: swearing
    description: swear words
    mode: enforce
    when: message.text contains "darn"
    actions: [flag]
    examples:
      - event: {message: {text: "darn"}}
        expect: {match: true}
      - event: {message: {text: "hello"}}
        expect: {match: false}
  - id: flood
    description: more than 10 messages a minute
    reason: "{{counts.user_messages(\"1m\")}} messages in a minute"
    mode: enforce
    when: counts.user_messages("1m") > 10
    actions: [{mute: {timeout: 10m}}]
    examples:
      - name: the eleventh
        history:
          counts.user_messages("1m"): 11
        event: {}
        expect: {match: true, actions: [mute], reason: "11 messages in a minute"}
      - name: the tenth
        history:
          counts.user_messages("60s"): 10
        event: {}
        expect: {match: false}
  - id: second-offence
    description: swearing after an earlier strike
    mode: enforce
    when: >
      message.text contains "darn" &&
      strikes.by_rule("swearing", "7d") == 1 && strikes.of_type("mute", "7d") == 0
    actions: [{mute: {timeout: 1h}}]
    examples:
      - history:
          strikes.by_rule("swearing", "7d"): 1
        event: {message: {text: "darn"}}
        expect: {match: true}
      - event: {message: {text: "darn"}}
        expect: {match: false}
`

func TestHistoryEvaluate(t *testing.T) {
	t.Parallel()
	rs, err := Load(fstest.MapFS{"r.yaml": {Data: []byte(ladder)}})
	if err != nil {
		t.Fatal(err)
	}
	wantKeys := []HistoryKey{
		{Name: CountUserMessages, Window: time.Minute},
		{Name: StrikesByRule, Arg: "swearing", Window: 7 * 24 * time.Hour},
		{Name: StrikesOfType, Arg: "mute", Window: 7 * 24 * time.Hour},
	}
	if diff := cmp.Diff(wantKeys, rs.History()); diff != "" {
		t.Errorf("History (-want +got):\n%s", diff)
	}
	if !rs.NeedsHistory("message.new") || !rs.CountsMessages() {
		t.Errorf("NeedsHistory(message.new), CountsMessages: got false, want true")
	}
	if rs.NeedsHistory("user.banned") || rs.NeedsHistory(EventBeforeSend) {
		t.Errorf("NeedsHistory: got true for an event type no history rule reads")
	}

	ev, err := ExampleEvent(map[string]any{"message": map[string]any{"text": "darn"}})
	if err != nil {
		t.Fatal(err)
	}
	// Without history, only the first rule matches.
	if got := matchedIDs(rs.Evaluate(ev)); !cmp.Equal(got, []string{"swearing"}) {
		t.Errorf("without history: matched %v, want [swearing]", got)
	}
	d := rs.EvaluateWith(ev, History{
		{Name: CountUserMessages, Window: time.Minute}:                     11,
		{Name: StrikesByRule, Arg: "swearing", Window: 7 * 24 * time.Hour}: 1,
	})
	if got := matchedIDs(d); !cmp.Equal(got, []string{"swearing", "flood", "second-offence"}) {
		t.Fatalf("with history: matched %v, want [swearing flood second-offence]", got)
	}
	wantEvidence := map[string]any{
		`message.text contains "darn"`:      nil, // not recorded: only reads are
		`strikes.by_rule("swearing", "7d")`: 1,
		`strikes.of_type("mute", "7d")`:     0,
		`message.text`:                      "darn",
	}
	delete(wantEvidence, `message.text contains "darn"`)
	if diff := cmp.Diff(wantEvidence, d.Matches[2].Evidence); diff != "" {
		t.Errorf("evidence (-want +got):\n%s", diff)
	}
	if got, want := d.Matches[1].Reason, "11 messages in a minute"; got != want {
		t.Errorf("reason: got %q, want %q", got, want)
	}
	if got, want := d.Matches[1].Evidence[`counts.user_messages("1m")`], any(11); got != want {
		t.Errorf("flood evidence: got %v, want %v", got, want)
	}
}

func matchedIDs(d Decision) []string {
	var ids []string
	for _, m := range d.Matches {
		ids = append(ids, m.RuleID)
	}
	return ids
}

func TestHistoryExampleErrors(t *testing.T) {
	t.Parallel()
	src := `rules:
  - id: flood
    description: test
    mode: enforce
    when: counts.user_messages("1m") > 10
    actions: [flag]
    examples:
      - history:
          counts.user_messages("1m"): 11
        event: {}
        expect: {match: true}
      - name: reads another window
        history:
          counts.user_messages("5m"): 11
        event: {}
        expect: {match: false}
      - name: not a call
        history:
          counts: 11
        event: {}
        expect: {match: false}
      - name: stops short
        history:
          counts.user_messages("1m"): 10
        event: {}
        expect: {match: true}
`
	got := loadProblems(t, fstest.MapFS{"r.yaml": {Data: []byte(src)}})
	want := []string{
		`r.yaml:13: rule flood, example "reads another window": history sets counts.user_messages("5m"), which the rule does not read (it reads counts.user_messages("1m"))`,
		`r.yaml:18: rule flood, example "not a call": history key "counts": want a call such as counts.user_messages("1m") or strikes.count("7d")`,
		`r.yaml:22: rule flood, example "stops short": did not match, but expect says match (it read counts.user_messages("1m") = 10)`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}

func TestParseHistoryKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		src  string
		want HistoryKey
		err  string
	}{
		{src: `counts.user_messages("1m")`, want: HistoryKey{Name: CountUserMessages, Window: time.Minute}},
		{src: `strikes.of_type("ban", "30d")`, want: HistoryKey{Name: StrikesOfType, Arg: "ban", Window: 30 * 24 * time.Hour}},
		{src: `counts.channel_young_messages("90s")`, want: HistoryKey{Name: CountChannelYoungMessages, Window: 90 * time.Second}},
		{src: `counts.user_mentions("10m")`, want: HistoryKey{Name: CountUserMentions, Window: 10 * time.Minute}},
		{src: `counts.channel_users("1h")`, want: HistoryKey{Name: CountChannelUsers, Window: time.Hour}},
		{src: `counts.user_msgs("1m")`, err: `history key "counts.user_msgs(\"1m\")": unknown function counts.user_msgs`},
		{src: `strikes.count(7)`, err: "must be string literals"},
		{src: `strikes.count("7d"`, err: `history key "strikes.count(\"7d\""`},
	}
	for _, tt := range tests {
		got, err := ParseHistoryKey(tt.src)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseHistoryKey(%s): got error %v, want one containing %q", tt.src, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseHistoryKey(%s): %v", tt.src, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseHistoryKey(%s): got %+v, want %+v", tt.src, got, tt.want)
		}
		if back, _ := ParseHistoryKey(got.String()); back != got {
			t.Errorf("%s: String() = %s does not parse back", tt.src, got)
		}
	}
}

func TestMarkOf(t *testing.T) {
	t.Parallel()
	created := time.Date(2026, 1, 15, 11, 0, 0, 0, time.UTC) // an hour before the example's time
	young, err := ExampleEvent(map[string]any{
		"user": map[string]any{"id": "raider", "created_at": created.Format(time.RFC3339)},
		"message": map[string]any{"text": "JOIN https://a.example and https://b.example NOW",
			"mentioned_users": []any{map[string]any{"id": "a"}, map[string]any{"id": "b"}, map[string]any{"id": "c"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, ok := MarkOf(young)
	want := Mark{UserID: "raider", ChannelCID: "messaging:general", At: exampleTime(), Links: 2, Mentions: 3,
		Fingerprint: Fingerprint("JOIN https://a.example and https://b.example NOW"), AccountCreated: created}
	if !ok || got != want {
		t.Errorf("MarkOf: got %+v, %v, want %+v, true", got, ok, want)
	}
	// The age the mark is young under is the reader's, not fixed when it
	// was counted.
	for _, tt := range []struct {
		age  time.Duration
		want bool
	}{{time.Hour, false}, {time.Hour + time.Second, true}, {DefaultYoungAccount, true}, {30 * time.Minute, false}} {
		if got := got.YoungUnder(tt.age); got != tt.want {
			t.Errorf("an hour-old account: YoungUnder(%s) = %v, want %v", tt.age, got, tt.want)
		}
	}
	old, _ := ExampleEvent(map[string]any{})
	if m, _ := MarkOf(old); m.YoungUnder(MaxYoungAccount) {
		t.Errorf("a year-old account counts as young")
	}
	// Without the event's time the age is unknown: never young.
	undated := *young
	undated.CreatedAt, undated.Message = Time{}, &Message{Text: "x", User: young.Message.User}
	if m, ok := MarkOf(&undated); !ok || !m.AccountCreated.IsZero() || m.YoungUnder(MaxYoungAccount) {
		t.Errorf("undated message: got %+v, %v, want a mark with no account time, never young", m, ok)
	}
	banned, _ := ExampleEvent(map[string]any{"type": "user.banned"})
	if _, ok := MarkOf(banned); ok {
		t.Errorf("MarkOf(user.banned): got true, want false (only new messages are counted)")
	}
}

func TestFingerprint(t *testing.T) {
	t.Parallel()
	same := []string{"Buy cheap followers now!!!", "buy   cheap followers NOW", "Buy ch3ap f0llowers now 2024", "buuuy cheap followers now."}
	for _, s := range same[1:] {
		if Fingerprint(s) != Fingerprint(same[0]) {
			t.Errorf("Fingerprint(%q) differs from Fingerprint(%q)", s, same[0])
		}
	}
	if Fingerprint("buy cheap followers now") == Fingerprint("buy cheap followers later") {
		t.Errorf("different texts share a fingerprint")
	}
	for _, s := range []string{"", "123 456", "!!!", "🎉🎉"} {
		if fp := Fingerprint(s); fp != 0 {
			t.Errorf("Fingerprint(%q) = %d, want 0 (no letters)", s, fp)
		}
	}
}

// TestHistoryCallCost: a history value is a number read before the rules
// run, so comparing it costs a step, not the work of comparing an
// unknown value of custom-field size.
func TestHistoryCallCost(t *testing.T) {
	t.Parallel()
	for _, src := range []string{`counts.user_mentions("1m") > 10`, `counts.channel_users("5m") > 25`, `strikes.of_type("mute", "7d") >= 1`} {
		tree, err := parser.Parse(src)
		if err != nil {
			t.Fatal(err)
		}
		w := &walker{scope: map[string]float64{}}
		if cost, _ := w.estimate(tree.Node, estScope{}); cost > 10 {
			t.Errorf("%s: estimated %.0f steps, want at most 10", src, cost)
		}
	}
}

// TestDeferMarks: a deferred event carries the mark its recording
// transaction needs, computed when it is deferred: a counted message its
// own mark (MarkOf), any other event the user, channel and fingerprint it
// reads with.
func TestDeferMarks(t *testing.T) {
	t.Parallel()
	rs, err := Load(fstest.MapFS{"r.yaml": {Data: []byte(historyRule("r1", "[message.new, message.updated]",
		`message.text == "a" && counts.user_messages("1m") >= 0`))}})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := ExampleEvent(map[string]any{"message": map[string]any{"text": "see https://x.example and https://y.example"}})
	if err != nil {
		t.Fatal(err)
	}
	d := rs.Defer(msg)
	want, ok := MarkOf(msg)
	if !ok || !d.Marked || !d.Counted || d.Mark != want {
		t.Errorf("new message: Defer's mark %+v (counted %v, marked %v), want MarkOf's %+v", d.Mark, d.Counted, d.Marked, want)
	}
	if want.Links != 2 || want.UserID == "" {
		t.Errorf("MarkOf = %+v, want the author and 2 links", want)
	}
	upd := *msg
	upd.Type = "message.updated"
	d = rs.Defer(&upd)
	if d.Counted || d.Mark.UserID != msg.SubjectUserID() || d.Mark.ChannelCID != msg.ChannelCID() ||
		d.Mark.Fingerprint != Fingerprint(msg.Message.Text) || d.Mark.Links != 0 {
		t.Errorf("update: Defer's mark %+v (counted %v), want only its user, channel and fingerprint", d.Mark, d.Counted)
	}
}
