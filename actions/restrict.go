package actions

import (
	"context"
	"fmt"
	"time"

	"moderator/policy"
)

// Restriction is a ban or a mute (a ban with a timeout) of one user that
// this service's calls may have put in force at Stream: the audit trail
// has a call to the ban endpoint for it that succeeded or whose answer
// does not rule its effect out.
//
// Stream keeps one ban per user and scope (app-wide, or one channel), and
// a second ban in a scope replaces the first. So a shorter mute sent after
// a longer ban would shorten it, and lifting a mute lifts whatever ban is
// in force in its scope. The worker reads the user's restrictions before
// it sends a mute or lifts one, so that neither ever weakens a stronger
// ban placed by this service.
type Restriction struct {
	ActionID int64
	Type     policy.ActionType // ban or mute
	// ChannelCID is the channel of a channel-only ban or mute; "" for an
	// app-wide one.
	ChannelCID string
	// Since is the last call made for it, Until when it ends; Until is
	// zero for a ban until lifted.
	Since, Until time.Time
	// Outcome is how the action ended, "" while pending.
	Outcome Outcome
	// Lifted: an overturn reversed or cancelled it.
	Lifted bool
}

// inForce reports whether x may be in force at Stream at now.
func (x Restriction) inForce(now time.Time) bool {
	return !x.Lifted && (x.Outcome == Applied || x.Outcome == "") && (x.Until.IsZero() || x.Until.After(now))
}

// String names x for an outcome's reason: "ban action 12, until lifted".
func (x Restriction) String() string {
	until := "until lifted"
	if !x.Until.IsZero() {
		until = "until " + x.Until.UTC().Format(time.RFC3339)
	}
	scope := "app-wide"
	if x.ChannelCID != "" {
		scope = "in " + x.ChannelCID
	}
	return fmt.Sprintf("%s action %d, %s, %s", x.Type, x.ActionID, scope, until)
}

// scopeOf is the channel a ban or mute is limited to, "" when app-wide.
func scopeOf(a policy.Action, t Target) string {
	if a.ChannelOnly {
		return t.ChannelCID
	}
	return ""
}

// muteCoveredAt returns a restriction in force that makes the mute a
// unnecessary at now: a ban or mute of the user, other than a itself, in
// a's scope or app-wide, lasting at least as long as a would. Sending a
// would replace one in its own scope by a shorter one.
func muteCoveredAt(a JobArgs, rs []Restriction, now time.Time) (Restriction, bool) {
	scope := scopeOf(a.Action, a.Target)
	until := now.Add(time.Duration(a.Action.TimeoutMinutes) * time.Minute)
	for _, x := range rs {
		if x.ActionID == a.ActionID || !x.inForce(now) || (x.ChannelCID != "" && x.ChannelCID != scope) {
			continue
		}
		if x.Until.IsZero() || !x.Until.Before(until) {
			return x, true
		}
	}
	return Restriction{}, false
}

// unmuteKeeps decides the reversal a of a mute at now. The mute's ban is
// lifted (DELETE /moderation/ban in its scope) unless that would lift
// something else: a ban or a mute of the user placed in the same scope
// after the mute and still in force replaced the mute's ban at Stream, so
// it is kept, and so is everything when the mute never reached the ban
// endpoint (nothing of it is there to lift). A ban in a wider scope is not
// a reason to keep the mute: lifting a channel ban leaves an app-wide ban
// in force, and the channel timeout would otherwise outlast the overturn.
func unmuteKeeps(a JobArgs, rs []Restriction, now time.Time) (string, bool) {
	var mute *Restriction
	for i := range rs {
		if a.Reverses != nil && rs[i].ActionID == a.Reverses.ActionID {
			mute = &rs[i]
		}
	}
	if mute == nil {
		return "nothing to undo: the mute never reached Stream's ban endpoint", true
	}
	scope := scopeOf(a.Action, a.Target)
	for _, x := range rs {
		if x.ActionID != mute.ActionID && x.inForce(now) && x.ChannelCID == scope && x.Since.After(mute.Since) {
			return "kept: stronger ban active (" + x.String() + ")", true
		}
	}
	return "", false
}

// keepRestrictions reads the user's restrictions before a mute or the
// reversal of one is sent, at the time it runs, and returns the outcome
// that ends it without a call when a stronger ban is in force: a mute
// covered by one is superseded, and an unmute that would lift one does
// nothing (NothingUndone). ok is false when the call is to be made.
func (r *Runner) keepRestrictions(ctx context.Context, a JobArgs) (o OutcomeRecord, ok bool, err error) {
	if a.Action.Type != policy.ActionMute && a.Action.Type != Unmute {
		return OutcomeRecord{}, false, nil
	}
	rs, err := r.ledger.Restrictions(ctx, a.Target.UserID)
	if err != nil {
		return OutcomeRecord{}, false, err
	}
	now := r.now()
	if a.Action.Type == Unmute {
		why, keep := unmuteKeeps(a, rs, now)
		return OutcomeRecord{ActionID: a.ActionID, Outcome: NothingUndone, Reason: why}, keep, nil
	}
	x, covered := muteCoveredAt(a, rs, now)
	return OutcomeRecord{ActionID: a.ActionID, Outcome: Superseded, Reason: "superseded by a stronger ban in force (" + x.String() + ")"}, covered, nil
}
