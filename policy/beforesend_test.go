package policy

import (
	"os"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

// TestEvaluateBeforeSend runs the starter pack's before_send rules: block
// wins over rewrite, rewrite masks what the list found in the full text,
// and "*" rules never run on before_send.
func TestEvaluateBeforeSend(t *testing.T) {
	t.Parallel()
	rs, err := Load(os.DirFS("../rules"))
	if err != nil {
		t.Fatalf("load starter pack: %v", err)
	}
	tests := []struct {
		name        string
		text        string
		wantBlock   *Block
		wantRewrite *Rewrite
		wantActions []string
	}{
		{name: "clean", text: "hello there"},
		{
			name:        "profanity masked, first letter kept",
			text:        "what the FUCK, just piss off!",
			wantRewrite: &Rewrite{RuleIDs: []string{"mask-profanity"}, Words: []string{"fuck", "piss off"}, Mask: MaskFirst, Text: "what the F***, just p*** o**!"},
			wantActions: []string{"rewrite@mask-profanity"},
		},
		{
			name:        "scam link blocked even with profanity",
			text:        "shit, free nitro https://discord-nitro.gift/claim",
			wantBlock:   &Block{RuleID: "block-scam-links", Text: "Your message was not sent: discord-nitro.gift is a known scam site."},
			wantActions: []string{"block@block-scam-links", "rewrite@mask-profanity"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ev := exampleEvent(t, map[string]any{"message": map[string]any{"text": tt.text}})
			ev.Type = EventBeforeSend
			d := rs.Evaluate(ev)
			if diff := cmp.Diff(tt.wantBlock, d.Block); diff != "" {
				t.Errorf("Block (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantRewrite, d.Rewrite); diff != "" {
				t.Errorf("Rewrite (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantActions, summarise(d).Actions); diff != "" {
				t.Errorf("actions (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("message rules skip before_send", func(t *testing.T) {
		t.Parallel()
		ev := exampleEvent(t, map[string]any{"message": map[string]any{"text": "what the fuck"}})
		d := rs.Evaluate(ev)
		if d.Rewrite != nil || d.Block != nil {
			t.Errorf("message.new decision has before-send answer block=%v rewrite=%v, want none", d.Block, d.Rewrite)
		}
		for _, m := range d.Matches {
			if m.RuleID == "mask-profanity" || m.RuleID == "block-scam-links" {
				t.Errorf("before_send rule %s matched a message.new event", m.RuleID)
			}
		}
	})
}

func TestEventsMatchBeforeSend(t *testing.T) {
	t.Parallel()
	tests := []struct {
		events []string
		want   bool
	}{
		{[]string{"before_send"}, true},
		{[]string{"*"}, false},
		{[]string{"message.*"}, false},
		{[]string{"message.new"}, false},
	}
	for _, tt := range tests {
		if got := eventsMatch(tt.events, EventBeforeSend); got != tt.want {
			t.Errorf("eventsMatch(%q, before_send) = %v, want %v", tt.events, got, tt.want)
		}
	}
}

func TestMaskWords(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		text  string
		words []string
		full  bool
		want  string
	}{
		{"nothing to mask", "hello there", []string{"darn"}, false, "hello there"},
		{"no words", "darn it", nil, false, "darn it"},
		{"first letter kept, punctuation kept", "Darn, it!", []string{"darn"}, false, "D***, it!"},
		{"full mask", "darn it", []string{"darn"}, true, "**** it"},
		{"leetspeak spelling", "d4rn it", []string{"darn"}, false, "d*** it"},
		{"stretched", "daaaarn it", []string{"daaaarn"}, false, "d****** it"},
		{"phrase masks each word", "just piss  off\tnow", []string{"piss off"}, false, "just p***  o**\tnow"},
		{"every occurrence", "darn darn", []string{"darn"}, false, "d*** d***"},
		{"multi-byte letters", "ｄａｒｎ ok", []string{"darn"}, false, "ｄ*** ok"},
		{"innocent substring", "darnell", []string{"darn"}, false, "darnell"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := MaskWords(tt.text, tt.words, tt.full); got != tt.want {
				t.Errorf("MaskWords(%q, %q, %v) = %q, want %q", tt.text, tt.words, tt.full, got, tt.want)
			}
		})
	}
}

// TestBeforeSendExampleExpectations: examples assert a before_send rule's
// answer, the block text and the text the message is sent with.
func TestBeforeSendExampleExpectations(t *testing.T) {
	t.Parallel()
	_, err := Load(fstest.MapFS{
		"darn.txt": {Data: []byte("darn\n")},
		"r.yaml": {Data: []byte(`rules:
  - id: block-darn
    description: d
    events: [before_send]
    mode: enforce
    when: contains_any(text.words, "darn")
    actions:
      - block: {text: "No {{hits(text.words, \"darn\")}} here"}
    examples:
      - {event: {message: {text: "darn it"}}, expect: {match: true, block: "No darn here"}}
      - {event: {message: {text: "darn it"}}, expect: {match: true, block: "Not here"}}
      - {event: {message: {text: "fine"}}, expect: {match: false}}
  - id: mask-darn
    description: d
    events: [before_send]
    mode: enforce
    when: contains_any(text.words, "darn")
    actions:
      - rewrite: {mask: full}
    examples:
      - {event: {message: {text: "oh d4rn it"}}, expect: {match: true, text: "oh **** it"}}
      - {event: {message: {text: "oh darn it"}}, expect: {match: true, text: "oh d*** it"}}
      - {event: {message: {text: "oh darn it"}}, expect: {match: true, block: "x"}}
      - {event: {message: {text: "fine"}}, expect: {match: false}}
  - id: flag-darn
    description: d
    when: contains_any(text.words, "darn")
    actions: [flag]
    examples:
      - {event: {message: {text: "darn"}}, expect: {match: true, text: "d***"}}
      - {event: {message: {text: "fine"}}, expect: {match: false}}
`)},
	})
	got := problemsOf(t, err)
	want := []string{
		`r.yaml:11: rule block-darn, example 2: block text is "No darn here", expect says "Not here"`,
		`r.yaml:22: rule mask-darn, example 2: the message is sent as "oh **** it", expect says "oh d*** it"`,
		`r.yaml:23: rule mask-darn, example 3: the message is not blocked, expect says blocked with "x"`,
		`r.yaml:30: expect block: and text: check a before_send rule's answer; this rule runs on message.new, message.updated`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}
