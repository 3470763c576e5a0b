package actions_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"moderator/actions"
	"moderator/policy"
)

func TestPlan(t *testing.T) {
	t.Parallel()
	target := actions.Target{UserID: "u1", MessageID: "m1", ChannelCID: "messaging:c1", ParentID: "m1"}
	ban := func(rule string, minutes int, channelOnly bool) policy.Action {
		return policy.Action{Type: policy.ActionBan, RuleID: rule, TimeoutMinutes: minutes, ChannelOnly: channelOnly}
	}
	mute := func(rule string, minutes int) policy.Action {
		return policy.Action{Type: policy.ActionMute, RuleID: rule, TimeoutMinutes: minutes}
	}
	channelMute := func(rule string, minutes int) policy.Action {
		return policy.Action{Type: policy.ActionMute, RuleID: rule, TimeoutMinutes: minutes, ChannelOnly: true}
	}
	flag := policy.Action{Type: policy.ActionFlag, RuleID: "f"}
	flagUser := policy.Action{Type: policy.ActionFlag, RuleID: "fu", Target: "user"}
	softDelete := policy.Action{Type: policy.ActionDelete, RuleID: "d"}
	hardDelete := policy.Action{Type: policy.ActionDelete, RuleID: "dh", Hard: true}
	warn := policy.Action{Type: policy.ActionWarn, RuleID: "w", Text: "be nice"}

	tests := []struct {
		name string
		acts []policy.Action
		want []int // SupersededBy per action
	}{
		{"nothing", nil, []int{}},
		{"distinct actions all run", []policy.Action{flag, flagUser, softDelete, warn}, []int{-1, -1, -1, -1}},
		{"permanent ban beats timed", []policy.Action{ban("a", 60, false), ban("b", 0, false)}, []int{1, -1}},
		{"longer ban beats shorter", []policy.Action{ban("a", 60*24, false), ban("b", 60, false)}, []int{-1, 0}},
		{"global ban beats channel ban of the same length", []policy.Action{ban("a", 60, true), ban("b", 60, false)}, []int{1, -1}},
		{"longer channel ban beats shorter global ban", []policy.Action{ban("a", 60, false), ban("b", 120, true)}, []int{1, -1}},
		{"equal bans: the first wins", []policy.Action{ban("a", 60, false), ban("b", 60, false)}, []int{-1, 0}},
		{"ban supersedes a mute before it", []policy.Action{mute("m", 30), ban("b", 60, false)}, []int{1, -1}},
		{"ban supersedes a mute after it", []policy.Action{ban("b", 60, false), mute("m", 30)}, []int{-1, 0}},
		{"a shorter ban still supersedes a mute", []policy.Action{mute("m", 24*60), ban("b", 60, false)}, []int{1, -1}},
		{"app-wide ban supersedes a channel mute", []policy.Action{channelMute("m", 30), ban("b", 60, false)}, []int{1, -1}},
		{"channel ban supersedes a channel mute", []policy.Action{channelMute("m", 30), ban("b", 60, true)}, []int{1, -1}},
		{"channel ban leaves an app-wide mute", []policy.Action{mute("m", 30), ban("b", 60, true)}, []int{-1, -1}},
		{"mutes collapse to the longest", []policy.Action{mute("a", 30), mute("b", 90)}, []int{1, -1}},
		{"equal mutes: the first wins", []policy.Action{mute("a", 30), mute("b", 30)}, []int{-1, 0}},
		{"channel mutes collapse to the longest", []policy.Action{channelMute("a", 90), channelMute("b", 30)}, []int{-1, 0}},
		{"app-wide mute as long supersedes the channel mute", []policy.Action{channelMute("a", 30), mute("b", 30)}, []int{1, -1}},
		{"a longer channel mute stays beside a shorter app-wide one", []policy.Action{channelMute("a", 90), mute("b", 30)}, []int{-1, -1}},
		{"duplicate flags collapse", []policy.Action{flag, flag}, []int{-1, 0}},
		{"hard delete beats soft", []policy.Action{softDelete, hardDelete}, []int{1, -1}},
		{"identical warnings collapse", []policy.Action{warn, warn}, []int{-1, 0}},
		{"several bans and a mute: one ban", []policy.Action{ban("a", 60, false), mute("m", 10), ban("b", 0, true), ban("c", 0, false)}, []int{3, 3, 3, -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			plan := actions.Plan(target, tt.acts)
			got := make([]int, len(plan))
			for i, p := range plan {
				got[i] = p.SupersededBy
				if p.Position != i || p.Target != target || !cmp.Equal(p.Action, tt.acts[i]) {
					t.Errorf("plan[%d] = %+v, want position %d with its action and the target", i, p, i)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("superseded-by (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPlannedKey(t *testing.T) {
	t.Parallel()
	p := actions.Plan(actions.Target{}, []policy.Action{{Type: policy.ActionFlag}, {Type: policy.ActionWarn}})
	if got, want := p[1].Key(42), "e42-a1"; got != want {
		t.Fatalf("got key %q, want %q", got, want)
	}
}

func TestTargetOf(t *testing.T) {
	t.Parallel()
	ev, err := policy.ParseEvent([]byte(`{"type":"message.new","cid":"messaging:c1",
		"message":{"id":"m2","parent_id":"m1","user":{"id":"u1"}},"user":{"id":"u1"}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := actions.Target{UserID: "u1", MessageID: "m2", ChannelCID: "messaging:c1", ParentID: "m1"}
	if got := actions.TargetOf(ev); got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}
