package backtest

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"moderator/policy"
	"moderator/store"
)

// TestStrikeList: the compact strike lists count as the store defines
// strikes (one per message within the window, an ended action no
// longer, the judged message's own left out), keep only the actions a
// key can count, and stay right when trimming drops strikes and their
// actions from the front.
func TestStrikeList(t *testing.T) {
	t.Parallel()
	byRule := policy.HistoryKey{Name: policy.StrikesByRule, Arg: "swear", Window: time.Hour}
	mutes := policy.HistoryKey{Name: policy.StrikesOfType, Arg: "mute", Window: 24 * time.Hour}
	all := policy.HistoryKey{Name: policy.StrikesCount, Window: 10 * time.Minute}
	tab := newStrikeTable([]policy.HistoryKey{byRule, mutes, all, {Name: policy.CountUserMessages, Window: time.Minute}})
	if len(tab.keys) != 3 || tab.window != 24*time.Hour {
		t.Fatalf("table keys %v, window %v; want the three strike keys and 24h", tab.keys, tab.window)
	}
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	var l strikeList
	add := func(msg string, at time.Duration, acts ...policy.Action) {
		tab.add(&l, tab.key(msg, 0), t0.Add(at), acts, nil)
	}
	swearWarn := policy.Action{Type: policy.ActionWarn, RuleID: "swear"}
	add("m1", 0, policy.Action{Type: policy.ActionMute, RuleID: "flood"}, swearWarn)
	add("m2", 20*time.Minute, policy.Action{Type: policy.ActionRewrite, RuleID: "swear"}) // a rewrite is no strike
	add("m3", 30*time.Minute, swearWarn)
	add("m3", 31*time.Minute, swearWarn) // its edit: the same message
	// An action the rules in force also took ends as the recorded one did.
	ended := t0.Add(50 * time.Minute)
	tab.add(&l, tab.key("m4", 0), t0.Add(40*time.Minute), []policy.Action{swearWarn},
		[]store.PastStrike{{Type: policy.ActionWarn, RuleID: "swear", End: &ended}})
	add("", 45*time.Minute, policy.Action{Type: policy.ActionFlag, RuleID: "other"}) // no message: the event
	if len(l.strikes) != 5 || len(l.acts) != 6 {
		t.Fatalf("%d strikes and %d actions kept, want 5 and 6 (the rewrite dropped)", len(l.strikes), len(l.acts))
	}

	read := func(now time.Duration, own string) map[string]int {
		h := policy.History{}
		tab.count(h, t0.Add(now), own, &l)
		return map[string]int{"by_rule": h[byRule], "mutes": h[mutes], "count": h[all]}
	}
	for _, tt := range []struct {
		name string
		now  time.Duration
		own  string
		want map[string]int
	}{
		{"all in the hour", 46 * time.Minute, "", map[string]int{"by_rule": 3, "mutes": 1, "count": 2}},
		{"its own message left out", 46 * time.Minute, "m3", map[string]int{"by_rule": 2, "mutes": 1, "count": 2}},
		{"the overturned warning ended", 54 * time.Minute, "", map[string]int{"by_rule": 2, "mutes": 1, "count": 1}},
		{"a strike exactly a window old is out", 55 * time.Minute, "", map[string]int{"by_rule": 2, "mutes": 1, "count": 0}},
		{"m1 out of the hour", 61 * time.Minute, "", map[string]int{"by_rule": 1, "mutes": 1, "count": 0}},
	} {
		if diff := cmp.Diff(tt.want, read(tt.now, tt.own)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.name, diff)
		}
	}

	// Trimming at 24h30m drops m1 and m3 (both entries), and the actions'
	// positions follow.
	tab.trim(&l, t0.Add(24*time.Hour+35*time.Minute))
	if len(l.strikes) != 2 || len(l.acts) != 2 {
		t.Fatalf("after trimming: %d strikes, %d actions; want 2 and 2", len(l.strikes), len(l.acts))
	}
	if got := read(24*time.Hour+36*time.Minute, ""); got["mutes"] != 0 {
		t.Errorf("after trimming, mutes = %d, want 0 (m1 left the window)", got["mutes"])
	}
	for i, s := range l.strikes {
		if int(s.first) != i || s.n != 1 {
			t.Errorf("strike %d covers actions [%d, +%d), want [%d, +1)", i, s.first, s.n, i)
		}
	}
}

// TestPartitionSweep: a lineage whose strikes all left the longest window
// is forgotten once an hour of event time has passed; others stay.
func TestPartitionSweep(t *testing.T) {
	t.Parallel()
	tab := newStrikeTable([]policy.HistoryKey{{Name: policy.StrikesCount, Window: 2 * time.Hour}})
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	p := &partition{lineages: map[string]*lineage{}}
	for user, at := range map[string]time.Duration{"old": 0, "recent": 3 * time.Hour} {
		lin := &lineage{}
		tab.add(&lin.enforce, tab.key(user+"-m", 0), t0.Add(at), []policy.Action{{Type: policy.ActionWarn, RuleID: "r"}}, nil)
		p.lineages[user] = lin
	}
	steps := []struct {
		at   time.Duration
		want int
	}{
		{150 * time.Minute, 2}, // swept as of 1h30m: old's strike (at 0) is still in its 2h window
		{180 * time.Minute, 2}, // within the hour since: no sweep
		{211 * time.Minute, 1}, // swept as of 2h31m: old's strike left the window
	}
	for _, s := range steps {
		p.sweep(tab, t0.Add(s.at))
		if len(p.lineages) != s.want || p.lineages["recent"] == nil {
			t.Errorf("lineages after a sweep at %v: %v, want %d with recent's", s.at, p.lineages, s.want)
		}
	}
}
