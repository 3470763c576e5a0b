package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"moderator/actions/streamtest"
	"moderator/appeals"
	"moderator/policy"
)

func mute(rule string, minutes int) policy.Action {
	return policy.Action{Type: policy.ActionMute, RuleID: rule, TimeoutMinutes: minutes, Reason: "flooding"}
}

// TestMuteSilences: a mute is a ban with a timeout at Stream, by the bot,
// app-wide by default, in the event's channel with channel, a shadow ban
// with shadow; the request carries only the contract's fields.
func TestMuteSilences(t *testing.T) {
	t.Parallel()
	e := newOverturnEnv(t, overturnOptions{})
	e.start(t)
	channel := mute("r-chan", 60)
	channel.ChannelOnly = true
	shadow := mute("r-shadow", 24*60)
	shadow.Shadow = true
	tests := []struct {
		user     string
		act      policy.Action
		wantBody map[string]any
		wantBan  streamtest.Ban
	}{
		{"mia", mute("r-flood", 15),
			map[string]any{"target_user_id": "mia", "banned_by_id": e2eBot, "timeout": float64(15), "reason": "flooding"},
			streamtest.Ban{UserID: "mia", BannedByID: e2eBot, Reason: "flooding"}},
		{"chan", channel,
			map[string]any{"target_user_id": "chan", "banned_by_id": e2eBot, "timeout": float64(60), "reason": "flooding", "channel_cid": "messaging:ov"},
			streamtest.Ban{UserID: "chan", BannedByID: e2eBot, Reason: "flooding", ChannelCID: "messaging:ov"}},
		{"sam", shadow,
			map[string]any{"target_user_id": "sam", "banned_by_id": e2eBot, "timeout": float64(24 * 60), "reason": "flooding", "shadow": true},
			streamtest.Ban{UserID: "sam", BannedByID: e2eBot, Reason: "flooding", Shadow: true}},
	}
	for _, tt := range tests {
		before := time.Now()
		eventID, _ := e.record(t, tt.user, "m-"+tt.user, tt.act)
		if a := e.waitEnded(t, 1, "a.event_id = $1", eventID)[0]; a.Outcome != "applied" {
			t.Fatalf("%s's mute = %+v, want applied", tt.user, a)
		}
		after := time.Now()
		var call *streamtest.Request
		for _, c := range e.fake.Calls(streamtest.RouteBan) {
			if c.Body["target_user_id"] == tt.user {
				call = &c
			}
		}
		if call == nil {
			t.Fatalf("no ban call for %s", tt.user)
		}
		if diff := cmp.Diff(tt.wantBody, call.Body); diff != "" {
			t.Fatalf("%s: ban body (-want +got):\n%s", tt.user, diff)
		}
		var got *streamtest.Ban
		for _, b := range e.fake.Bans() {
			if b.UserID == tt.user {
				got = &b
			}
		}
		d := time.Duration(tt.act.TimeoutMinutes) * time.Minute
		if got == nil || got.Expires.Before(before.Add(d)) || got.Expires.After(after.Add(d)) {
			t.Fatalf("%s: ban at Stream %+v, want one ending %s after the call", tt.user, got, d)
		}
		got.Expires, got.CreatedAt = time.Time{}, time.Time{}
		if diff := cmp.Diff(tt.wantBan, *got); diff != "" {
			t.Fatalf("%s: ban at Stream (-want +got):\n%s", tt.user, diff)
		}
	}
	if n := len(e.fake.Calls(streamtest.RouteMute)); n != 0 {
		t.Fatalf("got %d calls to POST /moderation/mute (a personal mute), want none", n)
	}
	if !e.fake.IsBanned("chan", "messaging:ov") || e.fake.IsBanned("chan", "messaging:other") {
		t.Fatal("the channel mute does not silence in messaging:ov only")
	}
}

// TestUnmuteKeepsStrongerBan: the unmute of a mute lifts its timeout,
// unless a ban placed by the service after the mute, in force, holds the
// scope at Stream: the unmute then sends nothing and ends nothing_to_undo,
// whichever order the ban and the overturn come in.
func TestUnmuteKeepsStrongerBan(t *testing.T) {
	t.Parallel()
	week := policy.Action{Type: policy.ActionBan, RuleID: "r-ban", TimeoutMinutes: 7 * 24 * 60, Reason: "third strike"}

	t.Run("ban before the overturn", func(t *testing.T) {
		t.Parallel()
		e := newOverturnEnv(t, overturnOptions{})
		e.start(t)
		muteEvent, _ := e.record(t, "nina", "m-1", mute("r-mute", 15))
		m := e.waitEnded(t, 1, "a.event_id = $1", muteEvent)[0]
		banEvent, _ := e.record(t, "nina", "m-2", week)
		b := e.waitEnded(t, 1, "a.event_id = $1", banEvent)[0]
		if m.Outcome != "applied" || b.Outcome != "applied" {
			t.Fatalf("mute %+v, ban %+v; want both applied", m, b)
		}
		res := e.overturn(t, appeals.OverturnRequest{ActionID: m.ID})
		rev := e.waitEnded(t, 1, "a.reverses_action_id = $1", m.ID)[0]
		if rev.Outcome != "nothing_to_undo" || !strings.HasPrefix(rev.Reason, fmt.Sprintf("kept: stronger ban active (ban action %d, app-wide, until ", b.ID)) {
			t.Fatalf("unmute = %+v, want nothing_to_undo keeping ban action %d", rev, b.ID)
		}
		if res.Actions[0].Disposition != "reversed" || res.Actions[0].ReversalType != "unmute" {
			t.Fatalf("overturn = %+v, want the mute reversed by an unmute", res.Actions)
		}
		if n := len(e.fake.Calls(streamtest.RouteUnban)); n != 0 {
			t.Fatalf("got %d calls to DELETE /moderation/ban, want none", n)
		}
		bans := e.fake.Bans()
		if len(bans) != 1 || bans[0].Reason != "third strike" || !e.fake.IsBanned("nina", "") {
			t.Fatalf("bans at Stream = %+v, want the week's ban in force", bans)
		}
		if got := counterValue(t, e.metrics, "moderator_actions_total", map[string]string{"type": "unmute", "outcome": "nothing_to_undo"}); got != 1 {
			t.Fatalf("moderator_actions_total{type=unmute,outcome=nothing_to_undo} = %v, want 1", got)
		}
	})

	t.Run("overturn before the ban", func(t *testing.T) {
		t.Parallel()
		e := newOverturnEnv(t, overturnOptions{})
		e.start(t)
		muteEvent, _ := e.record(t, "omar", "m-1", mute("r-mute", 15))
		m := e.waitEnded(t, 1, "a.event_id = $1", muteEvent)[0]
		e.overturn(t, appeals.OverturnRequest{ActionID: m.ID})
		if rev := e.waitEnded(t, 1, "a.reverses_action_id = $1", m.ID)[0]; rev.Outcome != "applied" {
			t.Fatalf("unmute = %+v, want applied", rev)
		}
		if e.fake.IsBanned("omar", "") {
			t.Fatal("omar is still silenced after the mute's overturn")
		}
		banEvent, _ := e.record(t, "omar", "m-2", week)
		if b := e.waitEnded(t, 1, "a.event_id = $1", banEvent)[0]; b.Outcome != "applied" {
			t.Fatalf("ban = %+v, want applied", b)
		}
		bans := e.fake.Bans()
		if len(bans) != 1 || bans[0].Reason != "third strike" || !e.fake.IsBanned("omar", "") {
			t.Fatalf("bans at Stream = %+v, want the week's ban in force", bans)
		}
		if n := len(e.fake.Calls(streamtest.RouteUnban)); n != 1 {
			t.Fatalf("got %d unban calls, want 1 (the mute's)", n)
		}
	})

	t.Run("a channel mute under an app-wide ban", func(t *testing.T) {
		t.Parallel()
		e := newOverturnEnv(t, overturnOptions{})
		e.start(t)
		channelMute := mute("r-mute", 60)
		channelMute.ChannelOnly = true
		muteEvent, _ := e.record(t, "pia", "m-1", channelMute)
		m := e.waitEnded(t, 1, "a.event_id = $1", muteEvent)[0]
		banEvent, _ := e.record(t, "pia", "m-2", week)
		e.waitEnded(t, 1, "a.event_id = $1", banEvent)
		e.overturn(t, appeals.OverturnRequest{ActionID: m.ID})
		if rev := e.waitEnded(t, 1, "a.reverses_action_id = $1", m.ID)[0]; rev.Outcome != "applied" {
			t.Fatalf("unmute = %+v, want applied: lifting the channel timeout cannot touch the app-wide ban", rev)
		}
		unbans := e.fake.Calls(streamtest.RouteUnban)
		if len(unbans) != 1 || unbans[0].Query.Get("channel_cid") != "messaging:ov" || unbans[0].Query.Has("type") {
			t.Fatalf("unban calls = %+v, want one naming messaging:ov as channel_cid alone", unbans)
		}
		bans := e.fake.Bans()
		if len(bans) != 1 || bans[0].ChannelCID != "" || bans[0].Reason != "third strike" {
			t.Fatalf("bans at Stream = %+v, want only the app-wide ban", bans)
		}
	})
}

// TestMuteUnderStrongerBan: a mute sent while a longer ban is in force
// would replace it at Stream with the shorter timeout: it ends superseded,
// naming the ban, and Stream is not called. A mute longer than the ban in
// force is sent.
func TestMuteUnderStrongerBan(t *testing.T) {
	t.Parallel()
	e := newOverturnEnv(t, overturnOptions{})
	e.start(t)
	banEvent, _ := e.record(t, "quinn", "m-1", policy.Action{Type: policy.ActionBan, RuleID: "r-ban", TimeoutMinutes: 60, Reason: "spam"})
	b := e.waitEnded(t, 1, "a.event_id = $1", banEvent)[0]
	muteEvent, _ := e.record(t, "quinn", "m-2", mute("r-flood", 15))
	m := e.waitEnded(t, 1, "a.event_id = $1", muteEvent)[0]
	if m.Outcome != "superseded" || !strings.HasPrefix(m.Reason, fmt.Sprintf("superseded by a stronger ban in force (ban action %d, app-wide, until ", b.ID)) {
		t.Fatalf("mute = %+v, want superseded by ban action %d", m, b.ID)
	}
	if calls := e.fake.Calls(streamtest.RouteBan); len(calls) != 1 {
		t.Fatalf("got %d ban calls, want 1 (the ban's)", len(calls))
	}
	if bans := e.fake.Bans(); len(bans) != 1 || bans[0].Reason != "spam" {
		t.Fatalf("bans at Stream = %+v, want the hour's ban", bans)
	}
	longEvent, _ := e.record(t, "quinn", "m-3", mute("r-long", 24*60))
	if l := e.waitEnded(t, 1, "a.event_id = $1", longEvent)[0]; l.Outcome != "applied" {
		t.Fatalf("a day's mute = %+v, want applied (longer than the ban in force)", l)
	}
	if bans := e.fake.Bans(); len(bans) != 1 || bans[0].Reason != "flooding" || bans[0].Expires.Before(time.Now().Add(23*time.Hour)) {
		t.Fatalf("bans at Stream = %+v, want the day's mute", bans)
	}
}
