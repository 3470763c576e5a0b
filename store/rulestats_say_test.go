package store

import "testing"

// TestRuleStatSay: what a rule did and what its shadow matches would have
// done, in plain words, in the same order of action types, side by side
// for a rule that was both (demoted or switched in the period).
func TestRuleStatSay(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		taken, would       map[string]int
		wantDid, wantWould string
	}{
		{nil, nil, "", ""},
		{map[string]int{"mute": 3, "ban": 1}, nil, "banned 1 user, muted 3 users", ""},
		{nil, map[string]int{"delete": 2, "warn": 1}, "", "would warn 1 user, would delete messages of 2 users"},
		{map[string]int{"flag": 1}, map[string]int{"flag": 4}, "flagged 1 user", "would flag 4 users"},
	} {
		s := RuleStat{TakenUsers: tt.taken, WouldUsers: tt.would}
		s.say()
		if s.Did != tt.wantDid || s.Would != tt.wantWould {
			t.Errorf("taken %v, would %v: got %q and %q, want %q and %q", tt.taken, tt.would, s.Did, s.Would, tt.wantDid, tt.wantWould)
		}
	}
}
