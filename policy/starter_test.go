package policy

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestStarterPack loads ../rules, the pack staff start from (its examples
// run as part of Load), and checks decisions across its rules.
func TestStarterPack(t *testing.T) {
	t.Parallel()
	rs := loadTestdata(t, "../../rules")
	if got := len(rs.Rules()); got < 7 {
		t.Errorf("starter pack has %d rules, want the 7 the issue lists", got)
	}
	shadow := 0
	for _, r := range rs.Rules() {
		if r.Mode == ModeShadow {
			shadow++
		}
		if r.Examples < 2 {
			t.Errorf("rule %s has %d examples, want at least 2", r.ID, r.Examples)
		}
	}
	if shadow == 0 {
		t.Errorf("starter pack has no shadow rule")
	}

	young := map[string]any{"created_at": "2026-01-15T10:00:00Z"}
	tests := []struct {
		name    string
		partial map[string]any
		want    summary
	}{
		{"ordinary message", text("see you at the meeting"), summary{}},
		{"scam link stops the evaluation before the new-account rule",
			map[string]any{"user": young, "message": map[string]any{"text": "FREE nitro https://discord-nitro.gift/x"}},
			summary{Matches: []string{"scam-domains:enforce"}, Actions: []string{"delete@scam-domains", "ban@scam-domains"}}},
		{"invite and link from a new account",
			map[string]any{"user": young, "message": map[string]any{"text": "join discord.gg/xyz"}},
			summary{Matches: []string{"invite-links:enforce", "new-account-links:enforce"},
				Actions: []string{"delete@invite-links", "warn@invite-links", "flag@new-account-links"}}},
		{"evasive profanity",
			text("what the f\u200bü\u00adck"),
			// The ladder's first rung too: the event has no strikes.
			summary{Matches: []string{"profanity-warn:enforce", "profanity:enforce"}, Actions: []string{"warn@profanity-warn", "flag@profanity"}}},
		{"shouting is shadowed",
			text("THIS IS THE WORST CHANNEL EVER"),
			summary{Matches: []string{"caps-shouting:shadow"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, summarise(rs.Evaluate(exampleEvent(t, tt.partial)))); diff != "" {
				t.Errorf("decision (-want +got):\n%s", diff)
			}
		})
	}
}
