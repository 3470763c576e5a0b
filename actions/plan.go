package actions

import (
	"fmt"

	"moderator/policy"
)

// Target is what an action is applied to, taken from the event that
// triggered it: the author of the message, the message, its channel.
type Target struct {
	UserID     string `json:"user_id,omitempty"`
	MessageID  string `json:"message_id,omitempty"`
	ChannelCID string `json:"channel_cid,omitempty"`
	// ParentID is the thread a warning goes to (the message's thread, or
	// the message itself when it starts one).
	ParentID string `json:"parent_id,omitempty"`
}

// TargetOf returns the target of the actions decided on ev.
func TargetOf(ev *policy.Event) Target {
	if ev == nil {
		return Target{}
	}
	t := Target{UserID: ev.SubjectUserID(), MessageID: ev.MessageIDOrEmpty(), ChannelCID: ev.ChannelCID()}
	if ev.Message != nil {
		t.ParentID = ev.Message.ParentID
	}
	if t.ParentID == "" {
		t.ParentID = t.MessageID
	}
	return t
}

// Planned is one action of a decision, after merging: either to carry out,
// or superseded by another action of the same decision.
type Planned struct {
	// Position is the action's index in the decision's actions; with the
	// event it makes the idempotency key.
	Position int
	Action   policy.Action
	Target   Target
	// SupersededBy is the Position of the action that makes this one
	// unnecessary, or -1 when this one is to be carried out.
	SupersededBy int
	// Immunity, when set, is the overturn that keeps this action's rule
	// off its target user: the action is suppressed, and takes no part in
	// merging (an immune ban must not supersede another rule's mute).
	Immunity *Immunity
}

// Superseded reports whether another action of the decision replaces p.
func (p Planned) Superseded() bool { return p.SupersededBy >= 0 }

// Key is p's idempotency key for an event: one per requested action, so
// that however often the job runs, the action is recorded and applied once.
func (p Planned) Key(eventID int64) string { return fmt.Sprintf("e%d-a%d", eventID, p.Position) }

// Plan merges the actions decided on one event so that each effect is
// asked of Stream once (as Bluesky's automod de-duplicates a rule set's
// effects before applying them):
//   - one ban per user: the strongest, where permanent beats timed, longer
//     beats shorter, and then app-wide beats channel-only; among equals the
//     first wins;
//   - a ban supersedes every mute of the same user in the same or a
//     narrower scope (an app-wide ban covers a channel mute; a channel ban
//     does not cover an app-wide mute);
//   - one mute per user and scope, the longest; an app-wide mute at least
//     as long supersedes the channel mute;
//   - one flag per flagged message or user, one delete per message (hard
//     beating soft), and identical warnings collapse.
//
// Every input action appears in the result, in order; merged-away ones say
// which action superseded them, so the audit trail shows all that was asked.
func Plan(target Target, acts []policy.Action) []Planned {
	return plan(target, acts, nil)
}

// plan is Plan where immune, when not nil, returns the immunity that
// suppresses an action, or nil.
func plan(target Target, acts []policy.Action, immune func(policy.Action) *Immunity) []Planned {
	out := make([]Planned, len(acts))
	winner := map[string]int{} // merge key → position of the current winner
	for i, a := range acts {
		out[i] = Planned{Position: i, Action: a, Target: target, SupersededBy: -1}
		if immune != nil {
			if im := immune(a); im != nil {
				out[i].Immunity = im
				continue
			}
		}
		key, ok := mergeKey(a, target)
		if !ok {
			continue
		}
		j, seen := winner[key]
		if !seen {
			winner[key] = i
			continue
		}
		if stronger(a, acts[j]) {
			winner[key] = i
		}
	}
	// Mark the losers, then let a ban of a user supersede that user's mute.
	for i, a := range acts {
		key, ok := mergeKey(a, target)
		if !ok || out[i].Immunity != nil {
			continue
		}
		if w := winner[key]; w != i {
			out[i].SupersededBy = w
		}
	}
	for i, a := range acts {
		if a.Type != policy.ActionMute || out[i].Superseded() || out[i].Immunity != nil {
			continue
		}
		if by, ok := muteCoveredBy(a, acts, winner, target.UserID); ok {
			out[i].SupersededBy = by
		}
	}
	return out
}

// muteCoveredBy returns the winning action that makes the winning mute m
// unnecessary: the user's ban when its scope covers m's, else an app-wide
// mute at least as long as a channel mute m.
func muteCoveredBy(m policy.Action, acts []policy.Action, winner map[string]int, user string) (int, bool) {
	if b, ok := winner["ban/"+user]; ok && (!acts[b].ChannelOnly || m.ChannelOnly) {
		return b, true
	}
	if g, ok := winner["mute/"+user+"/app"]; ok && m.ChannelOnly && compareTimeout(acts[g].TimeoutMinutes, m.TimeoutMinutes) >= 0 {
		return g, true
	}
	return 0, false
}

// mergeKey groups the actions that have one effect; ok is false for those
// never merged.
func mergeKey(a policy.Action, t Target) (string, bool) {
	switch a.Type {
	case policy.ActionBan:
		return "ban/" + t.UserID, true
	case policy.ActionMute:
		// A channel mute and an app-wide mute are separate bans at Stream.
		if a.ChannelOnly {
			return "mute/" + t.UserID + "/channel", true
		}
		return "mute/" + t.UserID + "/app", true
	case policy.ActionFlag:
		if a.Target == "user" {
			return "flag/user/" + t.UserID, true
		}
		return "flag/message/" + t.MessageID, true
	case policy.ActionDelete:
		return "delete/" + t.MessageID, true
	case policy.ActionWarn:
		return fmt.Sprintf("warn/%t/%s", a.InThread, a.Text), true
	}
	return "", false
}

// stronger reports whether a should replace b, an action with the same
// merge key decided earlier. Ties keep b.
func stronger(a, b policy.Action) bool {
	switch a.Type {
	case policy.ActionBan, policy.ActionMute:
		if c := compareTimeout(a.TimeoutMinutes, b.TimeoutMinutes); c != 0 {
			return c > 0
		}
		if a.Type == policy.ActionBan {
			return !a.ChannelOnly && b.ChannelOnly
		}
	case policy.ActionDelete:
		return a.Hard && !b.Hard
	}
	return false
}

// compareTimeout orders timeouts by strength: 0 (until lifted) is the
// strongest, then longer beats shorter.
func compareTimeout(a, b int) int {
	switch {
	case a == b:
		return 0
	case a == 0:
		return 1
	case b == 0:
		return -1
	case a > b:
		return 1
	}
	return -1
}
