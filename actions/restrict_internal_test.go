package actions

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"

	"moderator/actions/streamtest"
	"moderator/policy"
)

// TestMuteCovered: a mute is not sent when a ban or mute of the user in
// its scope, or app-wide, is in force and lasts at least as long; one that
// ended, was lifted, failed, is shorter or in another channel does not
// cover it.
func TestMuteCovered(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	mute := func(channel bool) JobArgs {
		return JobArgs{ActionID: 10, Action: policy.Action{Type: policy.ActionMute, TimeoutMinutes: 60, ChannelOnly: channel},
			Target: Target{UserID: "u", ChannelCID: "messaging:c"}}
	}
	since := now.Add(-time.Hour)
	ban := func(mod func(*Restriction)) Restriction {
		x := Restriction{ActionID: 1, Type: policy.ActionBan, Since: since, Outcome: Applied}
		if mod != nil {
			mod(&x)
		}
		return x
	}
	until := func(d time.Duration) func(*Restriction) { return func(x *Restriction) { x.Until = now.Add(d) } }
	tests := []struct {
		name    string
		mute    JobArgs
		rs      Restriction
		covered bool
	}{
		{"permanent app-wide ban", mute(false), ban(nil), true},
		{"permanent ban covers a channel mute", mute(true), ban(nil), true},
		{"a ban pending after a call without an answer", mute(false), ban(func(x *Restriction) { x.Outcome = "" }), true},
		{"a longer timed ban", mute(false), ban(until(2 * time.Hour)), true},
		{"as long", mute(false), ban(until(time.Hour)), true},
		{"a longer mute in the channel", mute(true), ban(func(x *Restriction) {
			x.Type, x.ChannelCID, x.Until = policy.ActionMute, "messaging:c", now.Add(3*time.Hour)
		}), true},
		{"a shorter ban", mute(false), ban(until(30 * time.Minute)), false},
		{"an expired ban", mute(false), ban(until(-time.Minute)), false},
		{"a lifted ban", mute(false), ban(func(x *Restriction) { x.Lifted = true }), false},
		{"a failed ban", mute(false), ban(func(x *Restriction) { x.Outcome = Failed }), false},
		{"a channel ban does not cover an app-wide mute", mute(false), ban(func(x *Restriction) { x.ChannelCID = "messaging:c" }), false},
		{"a ban in another channel", mute(true), ban(func(x *Restriction) { x.ChannelCID = "messaging:other" }), false},
		{"the mute itself", mute(false), ban(func(x *Restriction) { x.ActionID = 10 }), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, got := muteCoveredAt(tt.mute, []Restriction{tt.rs}, now)
			if got != tt.covered {
				t.Fatalf("covered = %t, want %t", got, tt.covered)
			}
		})
	}
}

// TestUnmuteKeeps: the reversal of a mute lifts its ban unless a ban or
// mute placed in the same scope after it is still in force (Stream's one
// ban per scope is then that one), or the mute never reached the ban
// endpoint.
func TestUnmuteKeeps(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	muteAt := now.Add(-time.Hour)
	unmute := func(channel bool) JobArgs {
		return JobArgs{ActionID: 20, Action: policy.Action{Type: Unmute, ChannelOnly: channel},
			Target: Target{UserID: "u", ChannelCID: "messaging:c"}, Reverses: &Reverses{ActionID: 10, OverturnID: 3}}
	}
	theMute := func(channel string) Restriction {
		return Restriction{ActionID: 10, Type: policy.ActionMute, ChannelCID: channel, Since: muteAt, Until: muteAt.Add(24 * time.Hour),
			Outcome: Applied, Lifted: true}
	}
	later := Restriction{ActionID: 11, Type: policy.ActionBan, Since: muteAt.Add(time.Minute), Until: now.Add(time.Hour), Outcome: Applied}
	with := func(x Restriction, mod func(*Restriction)) Restriction { mod(&x); return x }
	tests := []struct {
		name string
		args JobArgs
		rs   []Restriction
		want string // "" to lift
	}{
		{"alone", unmute(false), []Restriction{theMute("")}, ""},
		{"a later app-wide ban in force", unmute(false), []Restriction{theMute(""), later}, "kept: stronger ban active (ban action 11, app-wide, until 2026-12-04T13:00:00Z)"},
		{"a later mute in force", unmute(false), []Restriction{theMute(""), with(later, func(x *Restriction) { x.Type = policy.ActionMute })},
			"kept: stronger ban active (mute action 11, app-wide, until 2026-12-04T13:00:00Z)"},
		{"a later channel ban in the mute's channel", unmute(true), []Restriction{theMute("messaging:c"),
			with(later, func(x *Restriction) { x.ChannelCID, x.Until = "messaging:c", time.Time{} })},
			"kept: stronger ban active (ban action 11, in messaging:c, until lifted)"},
		{"an earlier ban (the mute replaced it)", unmute(false), []Restriction{with(later, func(x *Restriction) { x.Since = muteAt.Add(-time.Minute) }), theMute("")}, ""},
		{"a later ban that expired", unmute(false), []Restriction{theMute(""), with(later, func(x *Restriction) { x.Until = now.Add(-time.Second) })}, ""},
		{"a later ban that was overturned", unmute(false), []Restriction{theMute(""), with(later, func(x *Restriction) { x.Lifted = true })}, ""},
		{"a later app-wide ban leaves a channel mute to lift", unmute(true), []Restriction{theMute("messaging:c"), later}, ""},
		{"a later channel ban leaves an app-wide mute to lift", unmute(false), []Restriction{theMute(""),
			with(later, func(x *Restriction) { x.ChannelCID = "messaging:c" })}, ""},
		{"the mute never reached the ban endpoint", unmute(false), []Restriction{later}, "nothing to undo: the mute never reached Stream's ban endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, keep := unmuteKeeps(tt.args, tt.rs, now)
			if keep != (tt.want != "") || got != tt.want {
				t.Fatalf("got %q, %t; want %q", got, keep, tt.want)
			}
		})
	}
}

// TestWorkKeepsStrongerBan: the worker reads the user's restrictions when
// a mute or an unmute runs; a covered mute ends superseded and an unmute
// that would lift a stronger ban ends nothing_to_undo, neither calling
// Stream; without them each makes its one call.
func TestWorkKeepsStrongerBan(t *testing.T) {
	t.Parallel()
	now := time.Now()
	strong := Restriction{ActionID: 1, Type: policy.ActionBan, Since: now, Outcome: Applied}
	mutedAt := Restriction{ActionID: 5, Type: policy.ActionMute, Since: now.Add(-time.Minute), Until: now.Add(time.Hour), Outcome: Applied, Lifted: true}
	mute := JobArgs{ActionID: 5, Key: "e2-a0", Action: policy.Action{Type: policy.ActionMute, RuleID: "r", TimeoutMinutes: 15},
		Target: Target{UserID: "u", ChannelCID: "messaging:c"}}
	unmute := JobArgs{ActionID: 6, Key: "o1-a5", Action: policy.Action{Type: Unmute, RuleID: "r", Reason: "overturned (moderator overturn 1)"},
		Target: Target{UserID: "u", ChannelCID: "messaging:c"}, Reverses: &Reverses{ActionID: 5, Key: "e2-a0", OverturnID: 1}}
	tests := []struct {
		name        string
		args        JobArgs
		rs          []Restriction
		route       string
		wantOutcome Outcome
		wantReason  string
		wantCalls   int
	}{
		{"mute under a permanent ban", mute, []Restriction{strong}, streamtest.RouteBan, Superseded,
			"superseded by a stronger ban in force (ban action 1, app-wide, until lifted)", 0},
		{"mute alone", mute, nil, streamtest.RouteBan, Applied, "", 1},
		{"unmute under a later ban", unmute, []Restriction{mutedAt, strong}, streamtest.RouteUnban, NothingUndone,
			"kept: stronger ban active (ban action 1, app-wide, until lifted)", 0},
		{"unmute alone", unmute, []Restriction{mutedAt}, streamtest.RouteUnban, Applied, "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := streamtest.New(t)
			r, ledger := newTestRunner(t, fake, false)
			ledger.restrictions = tt.rs
			if err := r.work(context.Background(), &rivertype.JobRow{Attempt: 1, MaxAttempts: 5}, tt.args); err != nil {
				t.Fatal(err)
			}
			o := ledger.outcomes[tt.args.ActionID]
			if o.Outcome != tt.wantOutcome || !strings.HasPrefix(o.Reason, tt.wantReason) {
				t.Fatalf("outcome %q %q, want %q %q", o.Outcome, o.Reason, tt.wantOutcome, tt.wantReason)
			}
			if n := len(fake.Calls(tt.route)); n != tt.wantCalls || len(fake.Requests()) != tt.wantCalls || len(ledger.attempts) != tt.wantCalls {
				t.Fatalf("%d calls on %s, %d in all, %d attempts; want %d", n, tt.route, len(fake.Requests()), len(ledger.attempts), tt.wantCalls)
			}
		})
	}
}
