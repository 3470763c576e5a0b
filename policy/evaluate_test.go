package policy

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
)

func loadTestdata(t testing.TB, dir string) *RuleSet {
	t.Helper()
	rs, err := Load(os.DirFS("testdata/" + dir))
	if err != nil {
		t.Fatalf("Load testdata/%s: %v", dir, err)
	}
	return rs
}

func exampleEvent(t testing.TB, partial map[string]any) *Event {
	t.Helper()
	ev, err := ExampleEvent(partial)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// summary is a decision reduced to what TestEvaluate compares.
type summary struct {
	Matches []string // id:mode
	Actions []string // type@rule
	Errors  []string // rule: error
}

func summarise(d Decision) summary {
	var s summary
	for _, m := range d.Matches {
		s.Matches = append(s.Matches, m.RuleID+":"+string(m.Mode))
	}
	for _, a := range d.Actions {
		s.Actions = append(s.Actions, string(a.Type)+"@"+a.RuleID)
	}
	for _, e := range d.Errors {
		s.Errors = append(s.Errors, e.RuleID+": "+e.Error)
	}
	return s
}

func TestEvaluate(t *testing.T) {
	t.Parallel()
	rs := loadTestdata(t, "evaluate")
	levelErr := "level: a value the rule reads is missing (nil): give it a default with ??, like int(user.custom.level ?? 0)"
	tests := []struct {
		name    string
		partial map[string]any
		want    summary
	}{
		{
			name:    "nothing matches; the level rule fails without stopping the others",
			partial: nil,
			want:    summary{Errors: []string{levelErr}},
		},
		{
			name:    "enforce match asks for its actions",
			partial: map[string]any{"message": map[string]any{"text": "see https://a.example"}, "user": map[string]any{"level": 1}},
			want:    summary{Matches: []string{"links:enforce"}, Actions: []string{"flag@links"}},
		},
		{
			name:    "shadow match is recorded but asks for nothing",
			partial: map[string]any{"message": map[string]any{"text": "WHY IS NOBODY ANSWERING"}, "user": map[string]any{"level": 0}},
			want:    summary{Matches: []string{"shouting:shadow"}},
		},
		{
			name:    "priority order, and stop ends the evaluation after an enforce match",
			partial: map[string]any{"message": map[string]any{"text": "halt the shadow https://a.example"}, "user": map[string]any{"level": 9}},
			want:    summary{Matches: []string{"shadow-stop:shadow", "high-stop:enforce"}, Actions: []string{"delete@high-stop"}},
		},
		{
			name:    "a phrase stop word",
			partial: map[string]any{"message": map[string]any{"text": "please STOP   now"}, "user": map[string]any{"level": 9}},
			want:    summary{Matches: []string{"high-stop:enforce"}, Actions: []string{"delete@high-stop"}},
		},
		{
			name:    "a shadow rule's stop does not stop the rules after it",
			partial: map[string]any{"message": map[string]any{"text": "shadow https://a.example"}, "user": map[string]any{"level": 9}},
			want: summary{Matches: []string{"shadow-stop:shadow", "links:enforce", "level:enforce"},
				Actions: []string{"flag@links", "flag@level"}},
		},
		{
			name:    "rules apply only to their event types",
			partial: map[string]any{"type": "user.banned", "reason": "spam", "message": nil, "user": map[string]any{"level": 9}},
			want:    summary{Matches: []string{"spam-bans:enforce"}, Actions: []string{"mute@spam-bans"}},
		},
		{
			name:    "an event type no rule names",
			partial: map[string]any{"type": "channel.created", "message": map[string]any{"text": "halt"}},
			want:    summary{},
		},
		{
			name:    "message.updated is a default type",
			partial: map[string]any{"type": "message.updated", "message": map[string]any{"text": "halt"}},
			want:    summary{Matches: []string{"high-stop:enforce"}, Actions: []string{"delete@high-stop"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := rs.Evaluate(exampleEvent(t, tt.partial))
			if d.RuleSetVersion != rs.Version() {
				t.Errorf("decision version %q, want %q", d.RuleSetVersion, rs.Version())
			}
			got := summarise(d)
			for i, e := range got.Errors {
				if strings.HasPrefix(e, levelErr) {
					got.Errors[i] = levelErr
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("decision (-want +got):\n%s", diff)
			}
			if got, want := d.Matched(), len(tt.want.Matches) > 0; got != want {
				t.Errorf("Matched() = %v, want %v", got, want)
			}
		})
	}
}

func TestEvaluateMatchDetails(t *testing.T) {
	t.Parallel()
	rs := loadTestdata(t, "evaluate")
	d := rs.Evaluate(exampleEvent(t, map[string]any{
		"message": map[string]any{"text": "SHADOW HALT AT https://A.example/x NOW"},
		"user":    map[string]any{"id": "u1", "name": "Sam", "level": 2},
	}))
	want := []Match{
		{RuleID: "shadow-stop", Mode: ModeShadow, Evidence: map[string]any{`text.lower`: "shadow halt at https://a.example/x now"},
			Actions: []Action{{Type: ActionBan, RuleID: "shadow-stop", TimeoutMinutes: 60, Shadow: true, Reason: "A shadow rule's stop does not stop anything"}},
			Reason:  "A shadow rule's stop does not stop anything", When: `text.lower contains "shadow"`, Source: "rules.yaml:27"},
		{RuleID: "high-stop", Mode: ModeEnforce, Evidence: map[string]any{`contains_any(text.words, "stopwords")`: []string{"halt"}},
			Actions: []Action{{Type: ActionDelete, RuleID: "high-stop"}},
			Reason:  "Stop words end the evaluation", When: `contains_any(text.words, "stopwords")`, Source: "rules.yaml:16"},
	}
	if diff := cmp.Diff(want, d.Matches); diff != "" {
		t.Errorf("matches (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want[1].Actions, d.Actions); diff != "" {
		t.Errorf("actions (-want +got):\n%s", diff)
	}

	d = rs.Evaluate(exampleEvent(t, map[string]any{
		"message": map[string]any{"text": "STOP SHOUTING AT ME"},
		"user":    map[string]any{"id": "u1", "name": "Sam", "level": 2},
	}))
	want = []Match{
		{RuleID: "shouting", Mode: ModeShadow, Evidence: map[string]any{`text.caps_ratio`: 1.0, `text.length`: 19},
			Actions: []Action{{Type: ActionWarn, RuleID: "shouting", Text: "Sam, please don't shout (100% capitals)"}},
			Reason:  "Shouting", When: "text.caps_ratio >= 0.8 && text.length >= 10", Source: "rules.yaml:38"},
	}
	if diff := cmp.Diff(want, d.Matches); diff != "" {
		t.Errorf("matches (-want +got):\n%s", diff)
	}
	if len(d.Actions) != 0 {
		t.Errorf("a shadow match asked for %v", d.Actions)
	}

	d = rs.Evaluate(exampleEvent(t, map[string]any{
		"message": map[string]any{"text": "look at https://a.example"},
		"user":    map[string]any{"id": "u1", "name": "Sam", "level": 2},
	}))
	want = []Match{
		{RuleID: "links", Mode: ModeEnforce, Evidence: map[string]any{`text.links`: []string{"https://a.example"}},
			Actions: []Action{{Type: ActionFlag, RuleID: "links", Target: "message", Reason: "link to a.example from u1"}},
			Reason:  "links to a.example", When: "len(text.links) > 0", Source: "rules.yaml:5"},
	}
	if diff := cmp.Diff(want, d.Matches); diff != "" {
		t.Errorf("matches (-want +got):\n%s", diff)
	}
	// The decision is what the audit trail stores: it must encode.
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatalf("marshal decision: %v", err)
	}
	for _, s := range []string{`"rule_set_version":"` + rs.Version() + `"`, `"mode":"enforce"`, `"evidence":{"text.links":["https://a.example"]}`, `"target":"message"`} {
		if !strings.Contains(string(b), s) {
			t.Errorf("decision JSON %s lacks %s", b, s)
		}
	}
}

func TestEvaluateNil(t *testing.T) {
	t.Parallel()
	rs := loadTestdata(t, "evaluate")
	if diff := cmp.Diff(Decision{RuleSetVersion: rs.Version()}, rs.Evaluate(nil)); diff != "" {
		t.Errorf("Evaluate(nil) (-want +got):\n%s", diff)
	}
	// An event with nothing in it.
	d := rs.Evaluate(&Event{})
	if d.Matched() || len(d.Actions) > 0 {
		t.Errorf("empty event: got %+v, want no match", d)
	}
}

func TestEvaluateReasonIsCutToStreamsLimit(t *testing.T) {
	t.Parallel()
	yaml := `rules:
  - id: long
    description: d
    mode: enforce
    when: len(message.text) > 0
    actions:
      - flag: {reason: "said {{message.text}} {{message.text}}"}
      - ban: {reason: "said {{message.text}} {{message.text}}"}
    examples:
      - {event: {}, expect: {match: true}}
      - {event: {message: {text: ""}}, expect: {match: false}}
`
	rs, err := Load(fstest.MapFS{"r.yaml": {Data: []byte(yaml)}})
	if err != nil {
		t.Fatal(err)
	}
	d := rs.Evaluate(exampleEvent(t, text(strings.Repeat("ü", 1000))))
	if len(d.Actions) != 2 {
		t.Fatalf("got %d actions, want 2", len(d.Actions))
	}
	for _, a := range d.Actions {
		if n := len([]rune(a.Reason)); n != maxReasonRunes {
			t.Errorf("%s reason is %d characters, want %d", a.Type, n, maxReasonRunes)
		}
		if a.TimeoutMinutes != 0 {
			t.Errorf("%s timeout %d, want 0 (permanent)", a.Type, a.TimeoutMinutes)
		}
	}
}

// TestEvaluateBudget: once the budget is spent the remaining rules are
// skipped and recorded; a zero budget never skips.
func TestEvaluateBudget(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	b.WriteString("rules:\n")
	for i := range 10 {
		fmt.Fprintf(&b, "  - {id: r%d, description: d, when: 'message.text == \"x\"', actions: [flag], examples: [{event: {message: {text: x}}, expect: {match: true}}, {event: {}, expect: {match: false}}]}\n", i)
	}
	rs, err := Load(fstest.MapFS{"r.yaml": {Data: []byte(b.String())}})
	if err != nil {
		t.Fatal(err)
	}
	ev := exampleEvent(t, text("x"))

	d := rs.WithBudget(time.Nanosecond).Evaluate(ev)
	if got, want := len(d.Matches), budgetCheckEvery; got != want {
		t.Errorf("with a spent budget: %d rules ran, want %d (the clock is read every %d rules)", got, want, budgetCheckEvery)
	}
	if got, want := len(d.Errors), 10-budgetCheckEvery; got != want {
		t.Fatalf("with a spent budget: %d errors, want %d", got, want)
	}
	if got := d.Errors[0]; got.RuleID != fmt.Sprintf("r%d", budgetCheckEvery) || got.Error != errSkipped {
		t.Errorf("first skipped rule: got %+v, want r%d: %s", got, budgetCheckEvery, errSkipped)
	}

	if d := rs.WithBudget(0).Evaluate(ev); len(d.Matches) != 10 || len(d.Errors) != 0 {
		t.Errorf("without a budget: %d matches, %d errors; want 10 and 0", len(d.Matches), len(d.Errors))
	}
	if d := rs.Evaluate(ev); len(d.Matches) != 10 {
		t.Errorf("default budget: %d matches, want 10", len(d.Matches))
	}
}

// TestEvaluateConcurrent runs one set from many goroutines (run with -race).
func TestEvaluateConcurrent(t *testing.T) {
	t.Parallel()
	// No budget: eight goroutines on a busy machine must not skip rules.
	rs := loadTestdata(t, "evaluate").WithBudget(0)
	texts := []string{"halt", "https://a.example", "SHOUTING LOUDLY HERE", "shadow", "hello"}
	want := make([]summary, len(texts))
	for i, s := range texts {
		want[i] = summarise(rs.Evaluate(exampleEvent(t, map[string]any{"message": map[string]any{"text": s}, "user": map[string]any{"level": 1}})))
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				k := (g + i) % len(texts)
				got := summarise(rs.Evaluate(exampleEvent(t, map[string]any{"message": map[string]any{"text": texts[k]}, "user": map[string]any{"level": 1}})))
				if diff := cmp.Diff(want[k], got); diff != "" {
					t.Errorf("goroutine %d, %q (-want +got):\n%s", g, texts[k], diff)
					return
				}
			}
		})
	}
	wg.Wait()
}
