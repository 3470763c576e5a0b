package policy

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// gatedRules has a rule of each shape: a raid rule gated by the account's
// age, a ladder rung gated by a named condition, a flood rule whose first
// operand reads history (never gated), and a rule that reads history only
// in its reason (gated by its whole condition).
const gatedRules = `conditions:
  swore: message.text contains "darn"
rules:
  - id: raid
    description: raid
    when: user.young && counts.channel_young_messages("5m") > 2
    mode: enforce
    actions: [flag]
    examples:
      - history:
          counts.channel_young_messages("5m"): 3
        event: {user: {created_at: "2026-01-15T11:00:00Z"}}
        expect: {match: true}
      - history:
          counts.channel_young_messages("5m"): 3
        event: {}
        expect: {match: false}
  - id: ladder
    description: ladder
    when: swore && message.text != "" && strikes.by_rule("ladder", "7d") == 0
    mode: enforce
    actions: [flag]
    examples:
      - {event: {message: {text: "darn"}}, expect: {match: true}}
      - history:
          strikes.by_rule("ladder", "7d"): 1
        event: {message: {text: "darn"}}
        expect: {match: false}
  - id: flood
    description: flood
    when: counts.user_messages("1m") > 3 && user.young
    mode: enforce
    actions: [flag]
    examples:
      - history:
          counts.user_messages("1m"): 4
        event: {user: {created_at: "2026-01-15T11:00:00Z"}}
        expect: {match: true}
      - history:
          counts.user_messages("1m"): 3
        event: {user: {created_at: "2026-01-15T11:00:00Z"}}
        expect: {match: false}
  - id: loud
    description: loud
    reason: '{{counts.user_links("1h")}} links'
    when: message.text == "LOUD"
    mode: enforce
    actions: [flag]
    examples:
      - {event: {message: {text: "LOUD"}}, expect: {match: true}}
      - {event: {message: {text: "quiet"}}, expect: {match: false}}
`

func TestDeferReadsWhatTheGatesAllow(t *testing.T) {
	t.Parallel()
	rs, err := Load(fstest.MapFS{"r.yaml": {Data: []byte(gatedRules)}})
	if err != nil {
		t.Fatal(err)
	}
	raid := HistoryKey{Name: CountChannelYoungMessages, Window: 5 * time.Minute}
	ladder := HistoryKey{Name: StrikesByRule, Arg: "ladder", Window: 7 * 24 * time.Hour}
	flood := HistoryKey{Name: CountUserMessages, Window: time.Minute}
	links := HistoryKey{Name: CountUserLinks, Window: time.Hour}
	now := time.Now().UTC()
	for _, tc := range []struct {
		name  string
		text  string
		young bool
		want  []HistoryKey
	}{
		{"an older account's clean message", "hello", false, []HistoryKey{flood}},
		{"a young account's clean message", "hello", true, []HistoryKey{raid, flood}},
		{"an older account swearing", "oh darn", false, []HistoryKey{ladder, flood}},
		{"a loud young account swearing", "LOUD", true, []HistoryKey{raid, flood, links}},
	} {
		created := now.Add(-5 * 365 * 24 * time.Hour)
		if tc.young {
			created = now.Add(-time.Hour)
		}
		ev, err := ExampleEvent(map[string]any{"created_at": now.Format(time.RFC3339),
			"message": map[string]any{"text": tc.text}, "user": map[string]any{"created_at": created.Format(time.RFC3339)}})
		if err != nil {
			t.Fatal(err)
		}
		d := rs.Defer(ev)
		got := slices.Clone(d.Reads)
		slices.SortFunc(got, compareHistoryKeys)
		want := slices.Clone(tc.want)
		slices.SortFunc(want, compareHistoryKeys)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: Reads (-want +got):\n%s", tc.name, diff)
		}
		// Deciding with only the values read gives the decision the full
		// history gives, whatever the values left out hold.
		full := History{raid: 50, ladder: 0, flood: 50, links: 7}
		part := History{}
		for _, k := range d.Reads {
			part[k] = full[k]
		}
		dec := rs.EvaluateWith(ev, full)
		if diff := cmp.Diff(dec, d.Decide(part, nil)); diff != "" {
			t.Errorf("%s: the decision from Reads differs from the full history's (-full +reads):\n%s", tc.name, diff)
		}
		// Again, as a retried transaction does: Defer's environment is
		// back in the pool by now, and the second decision fills its own.
		if diff := cmp.Diff(dec, d.Decide(part, nil)); diff != "" {
			t.Errorf("%s: a second Decide differs (-want +got):\n%s", tc.name, diff)
		}
	}
}

// TestGateOfShapes: which leading operands make a gate.
func TestGateOfShapes(t *testing.T) {
	t.Parallel()
	rs, err := Load(fstest.MapFS{"r.yaml": {Data: []byte(gatedRules)}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs.rules {
		gated := r.when.gate != nil
		if want := r.id != "flood"; gated != want {
			t.Errorf("rule %s: gated %v, want %v", r.id, gated, want)
		}
	}
}

// TestDeferMarkFromTheEnvironment: where the rules read the text's links
// and normalised form, Defer takes the mark's links and fingerprint from
// the environment it filled; the mark is MarkOf's.
func TestDeferMarkFromTheEnvironment(t *testing.T) {
	t.Parallel()
	rs, err := Load(fstest.MapFS{"r.yaml": {Data: []byte(`rules:
  - id: spam
    description: links and a word
    when: counts.user_messages("1m") > 1 && (len(text.links) > 1 || text.normalized contains "free")
    mode: enforce
    actions: [flag]
    examples:
      - history:
          counts.user_messages("1m"): 2
        event: {message: {text: "FR33 stuff"}}
        expect: {match: true}
      - event: {message: {text: "free"}}
        expect: {match: false}
`)}})
	if err != nil {
		t.Fatal(err)
	}
	if rs.needs&needLinks == 0 || rs.needs&needNormalized == 0 {
		t.Fatalf("the rule set's needs %b lack links or the normalised text: the test would not take the path", rs.needs)
	}
	for _, text := range []string{"", "hello", "F R E E   m0ney at https://a.example and https://b.example/x",
		"sееe https://xn--80ak6aa92e.com ÀÁÂ " + strings.Repeat("ha", 3000)} {
		ev, err := ExampleEvent(map[string]any{"message": map[string]any{"text": text,
			"attachments": []any{map[string]any{"type": "image", "title_link": "https://c.example/p"}}}})
		if err != nil {
			t.Fatal(err)
		}
		d := rs.Defer(ev)
		want, ok := MarkOf(ev)
		if !ok || !d.Counted || d.Mark != want {
			t.Errorf("%.40q: Defer's mark %+v (counted %v), want MarkOf's %+v", text, d.Mark, d.Counted, want)
		}
	}
}

// TestDeferConcurrently: webhooks are deferred from many goroutines at
// once, sharing the rule set's cache of read lists (run it with -race).
func TestDeferConcurrently(t *testing.T) {
	t.Parallel()
	rs, err := Load(fstest.MapFS{"r.yaml": {Data: []byte(gatedRules)}})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	evs := make([]*Event, 4)
	wants := make([]int, 4)
	for i, text := range []string{"hello", "oh darn", "LOUD", "darn LOUD"} {
		ev, err := ExampleEvent(map[string]any{"created_at": now.Format(time.RFC3339), "message": map[string]any{"text": text}})
		if err != nil {
			t.Fatal(err)
		}
		evs[i], wants[i] = ev, len(rs.Defer(ev).Reads)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for n := range 200 {
				i := (g + n) % len(evs)
				d := rs.Defer(evs[i])
				if got := len(d.Reads); got != wants[i] {
					t.Errorf("event %d: %d values to read, want %d", i, got, wants[i])
					return
				}
				d.Decide(History{}, nil)
			}
		})
	}
	wg.Wait()
}

// TestDecideKnown: deciding with a history that lacks some values is
// known exactly when the rules read none of those lacking, and is then
// the decision of the full history; first and second calls alike (the
// second fills an environment of its own).
func TestDecideKnown(t *testing.T) {
	t.Parallel()
	rs, err := Load(fstest.MapFS{"r.yaml": {Data: []byte(`rules:
  - id: flood
    description: more than 10 a minute, once per 10 minutes
    when: counts.user_messages("1m") > 10 && strikes.by_rule("flood", "10m") == 0
    mode: enforce
    actions: [flag]
    examples:
      - history: {counts.user_messages("1m"): 11}
        event: {}
        expect: {match: true}
      - event: {}
        expect: {match: false}
  - id: noisy
    description: a reason that reads links
    reason: '{{counts.user_links("1h")}} links'
    when: message.text == "LOUD"
    mode: enforce
    actions: [flag]
    examples:
      - {event: {message: {text: "LOUD"}}, expect: {match: true}}
      - {event: {message: {text: "quiet"}}, expect: {match: false}}
`)}})
	if err != nil {
		t.Fatal(err)
	}
	msgs := HistoryKey{Name: CountUserMessages, Window: time.Minute}
	strikes := HistoryKey{Name: StrikesByRule, Arg: "flood", Window: 10 * time.Minute}
	links := HistoryKey{Name: CountUserLinks, Window: time.Hour}
	for _, tc := range []struct {
		name  string
		text  string
		count int
		known bool
	}{
		{"few messages: the strikes are not read", "hi", 3, true},
		{"a flood: the strikes are read", "hi", 11, false},
		{"a matched rule's reason reads a value lacking", "LOUD", 3, false},
	} {
		ev, err := ExampleEvent(map[string]any{"message": map[string]any{"text": tc.text}})
		if err != nil {
			t.Fatal(err)
		}
		full := History{msgs: tc.count, strikes: 0, links: 2}
		want := rs.EvaluateWith(ev, full)
		d := rs.Defer(ev)
		for call := range 2 {
			dec, known := d.DecideKnown(History{msgs: tc.count}, nil)
			if known != tc.known {
				t.Errorf("%s, call %d: known %v, want %v", tc.name, call+1, known, tc.known)
			}
			if known {
				if diff := cmp.Diff(want, dec); diff != "" {
					t.Errorf("%s, call %d: decision differs from the full history's (-want +got):\n%s", tc.name, call+1, diff)
				}
			}
		}
		if diff := cmp.Diff(want, d.Decide(full, nil)); diff != "" {
			t.Errorf("%s: Decide with the full history after DecideKnown (-want +got):\n%s", tc.name, diff)
		}
	}
}
