package actions

import (
	"fmt"
	"maps"

	"golang.org/x/time/rate"

	"moderator/policy"
)

// DefaultRateLimits are Stream's published server-side budgets, per minute,
// for the endpoint each action type calls: ban, flag and mute 300 (a mute
// calls the ban endpoint and shares its budget); send message (warn) and
// delete message 1,000.
func DefaultRateLimits() map[policy.ActionType]int {
	return map[policy.ActionType]int{
		policy.ActionBan:    300,
		policy.ActionFlag:   300,
		policy.ActionMute:   300,
		policy.ActionDelete: 1000,
		policy.ActionWarn:   1000,
	}
}

// DefaultReversalRateLimits are the per-minute budgets of the reversals'
// endpoints: unban, unflag and unmute as Stream publishes them (300);
// undelete is not published, 300 is assumed. A warning's reversal deletes a
// message and shares the delete budget.
func DefaultReversalRateLimits() map[policy.ActionType]int {
	return map[policy.ActionType]int{Unban: 300, Unmute: 300, Unflag: 300, Undelete: 300}
}

// limiters paces the calls of each endpoint. Each action type calls one
// endpoint, so the budget is per type (Unwarn calls delete's).
type limiters struct {
	byType map[policy.ActionType]*rate.Limiter
}

// newLimiters builds a token bucket per endpoint from per-minute budgets.
//
// Stream counts calls in fixed one-minute windows and in one-second
// windows of a thirtieth of that. A bucket of burst b refilling at r per
// second lets through at most b + r·T calls in any interval of T seconds,
// wherever the windows fall. With b = 1 and r = (perMinute-1)/60 that is at
// most perMinute per minute, and at most 1 + r per second, which is within
// perMinute/30 for every budget of 60 or more and within 1 (Stream's
// per-second floor) below it. So a backlog drains at almost the full budget
// and never earns a 429 that pacing could have avoided.
func newLimiters(perMinute map[policy.ActionType]int) (*limiters, error) {
	budgets := DefaultRateLimits()
	maps.Copy(budgets, DefaultReversalRateLimits())
	for t, n := range perMinute {
		if n <= 0 {
			return nil, fmt.Errorf("rate limit for %s: %d per minute, want a positive number", t, n)
		}
		budgets[t] = n
	}
	// A mute is a ban with a timeout and its reversal an unban: one
	// endpoint, one budget, the smaller when both are configured.
	for t, shared := range sharedEndpoint {
		if n, ok := perMinute[t]; ok {
			budgets[shared] = min(budgets[shared], n)
		}
		delete(budgets, t)
	}
	l := &limiters{byType: make(map[policy.ActionType]*rate.Limiter, len(budgets))}
	for t, n := range budgets {
		l.byType[t] = rate.NewLimiter(perSecond(n), 1)
	}
	return l, nil
}

// sharedEndpoint maps the action types that call another type's endpoint
// to that type: a warning's reversal deletes a message, a mute bans with a
// timeout, an unmute unbans.
var sharedEndpoint = map[policy.ActionType]policy.ActionType{
	Unwarn: policy.ActionDelete, policy.ActionMute: policy.ActionBan, Unmute: Unban,
}

// perSecond is the refill rate for a per-minute budget, as explained at
// newLimiters.
func perSecond(perMinute int) rate.Limit {
	if perMinute <= 1 {
		return rate.Limit(float64(perMinute) / 61)
	}
	return rate.Limit(float64(perMinute-1) / 60)
}

// budgetOf names the budget of type t's endpoint (the type whose budget it
// uses: "ban" for a mute) and its refill rate per second; false for a type
// with none.
func (l *limiters) budgetOf(t policy.ActionType) (endpoint string, perSecond float64, ok bool) {
	if shared, ok := sharedEndpoint[t]; ok {
		t = shared
	}
	lim := l.byType[t]
	if lim == nil {
		return "", 0, false
	}
	return string(t), float64(lim.Limit()), true
}

func (l *limiters) forType(t policy.ActionType) *rate.Limiter {
	if shared, ok := sharedEndpoint[t]; ok {
		t = shared
	}
	return l.byType[t]
}
