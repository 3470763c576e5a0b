package policy

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// TestWholeMessageJudged: the starter pack judges a message whole, up to
// Stream's 5,000 characters: a scam link or a swear word at the end of a
// 5,000-character CJK message (15,000 bytes; the rules used to read only
// the first 4,096 bytes) is found on the push path and before send, and a
// longer message is flagged for what the rules could not judge.
func TestWholeMessageJudged(t *testing.T) {
	t.Parallel()
	// No time budget: under the race detector on a busy machine, judging
	// 5,000 characters may outlast it, and this test is about what is
	// judged, not how fast.
	rs := loadTestdata(t, "../../rules").WithBudget(0)
	cjk := []rune(strings.Repeat("今天天气很好，我们下午去公园散步吧。", 400))
	upTo := func(n int, tail string) string {
		return string(cjk[:n-utf8.RuneCountInString(tail)]) + tail
	}
	tests := []struct {
		name       string
		text       string
		beforeSend bool
		wantRule   string // a rule that must match
		notRule    string // a rule that must not
	}{
		{"scam link at character 5000", upTo(MaxTextRunes, " https://discord-nitro.gift/claim"), false, "scam-domains", "over-long-message"},
		{"scam link at character 5000, before send", upTo(MaxTextRunes, " https://discord-nitro.gift/claim"), true, "block-scam-links", ""},
		{"swear word at character 5000", upTo(MaxTextRunes, " what the fuck"), false, "profanity", "over-long-message"},
		{"swear word at character 5000, before send", upTo(MaxTextRunes, " what the fuck"), true, "mask-profanity", ""},
		{"5,001 characters", upTo(MaxTextRunes+1, " hello"), false, "over-long-message", ""},
		{"a link past the limit is not judged, and the message is flagged",
			upTo(MaxTextRunes+40, " https://discord-nitro.gift/claim"), false, "over-long-message", "scam-domains"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ev := exampleEvent(t, map[string]any{"message": map[string]any{"text": tt.text}})
			if tt.beforeSend {
				ev.Type = EventBeforeSend
			}
			d := rs.Evaluate(ev)
			var matched []string
			for _, m := range d.Matches {
				matched = append(matched, m.RuleID)
			}
			if !slices.Contains(matched, tt.wantRule) {
				t.Errorf("matched %v, want %s", matched, tt.wantRule)
			}
			if tt.notRule != "" && slices.Contains(matched, tt.notRule) {
				t.Errorf("matched %v, want no %s", matched, tt.notRule)
			}
			if len(d.Errors) > 0 {
				t.Errorf("rule errors: %v", d.Errors)
			}
		})
	}
	// The rewrite masks the word at the end of the long message.
	ev := exampleEvent(t, map[string]any{"message": map[string]any{"text": upTo(MaxTextRunes, " what the fuck")}})
	ev.Type = EventBeforeSend
	d := rs.Evaluate(ev)
	if d.Rewrite == nil || !strings.HasSuffix(d.Rewrite.Text, " what the f***") {
		t.Errorf("rewrite = %+v, want the last word masked", d.Rewrite)
	}
}
