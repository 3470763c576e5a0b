// Package guard demotes to shadow the rules whose actions reviewers keep
// overturning, and applies the demotions in force to a rule set: a rule
// whose overturn rate over its guard's window reaches the threshold, with
// enough taken actions behind it, stops acting (it is still evaluated and
// audited) until an admin restores it or its definition changes. The
// demotions live in the store (rule_demotions), so they survive reloads,
// restarts, and hold for every replica.
//
// It imports policy and store types; cmd/moderator runs Check on a timer.
package guard

import (
	"context"
	"fmt"
	"time"

	"moderator/policy"
	"moderator/store"
)

// Defaults are the guard's defaults: at least 30 % of at least 20 taken
// actions overturned within 7 days.
var Defaults = policy.Guard{MaxOverturnRate: 0.3, MinActions: 20, Window: 7 * 24 * time.Hour}

// Store is what the guard reads and records.
type Store interface {
	RuleStats(ctx context.Context, from, to time.Time) ([]store.RuleStat, error)
	GuardState(ctx context.Context) (store.GuardState, error)
	DemoteRule(ctx context.Context, d store.Demotion) (bool, error)
}

// Rate is one rule's overturn rate over its guard's window.
type Rate struct {
	RuleID     string
	Taken      int
	Overturned int
	Rate       float64
}

// Result is what one Check found: the rates of the rules it watched, the
// rules it demoted now, and every demotion in force afterwards.
type Result struct {
	Rates   []Rate
	Demoted []store.Demotion
	Active  []store.Demotion
}

// Check computes the overturn rate of each enforce rule of rs (as its
// folder says) over its guard's window ending at now (or since an admin
// restored it, if later), and demotes the rules whose guard trips. def
// fills the guards' zero fields.
func Check(ctx context.Context, st Store, rs *policy.RuleSet, def policy.Guard, now time.Time) (Result, error) {
	var res Result
	state, err := st.GuardState(ctx)
	if err != nil {
		return res, err
	}
	demoted := InForce(rs, state.Active)
	stats := map[time.Time]map[string]store.RuleStat{} // by the window's start
	for _, info := range rs.Rules() {
		if info.Mode != policy.ModeEnforce {
			continue
		}
		g := info.Guard.Or(def)
		from := now.Add(-g.Window)
		if r, ok := state.Restored[info.ID]; ok && r.After(from) {
			from = r
		}
		if stats[from] == nil {
			list, err := st.RuleStats(ctx, from, now)
			if err != nil {
				return res, err
			}
			stats[from] = map[string]store.RuleStat{}
			for _, s := range list {
				stats[from][s.RuleID] = s
			}
		}
		s := stats[from][info.ID]
		res.Rates = append(res.Rates, Rate{RuleID: info.ID, Taken: s.Taken, Overturned: s.Overturned, Rate: s.OverturnRate})
		if demoted[info.ID] || !g.Trips(s.Taken, s.Overturned) {
			continue
		}
		d := store.Demotion{RuleID: info.ID, RuleDigest: info.Digest, OverturnRate: s.OverturnRate, Taken: s.Taken,
			Overturned: s.Overturned, Window: g.Window, At: now,
			Reason: fmt.Sprintf("%d of %d taken actions overturned in %s (%.0f %%, the guard allows under %.0f %% from %d actions)",
				s.Overturned, s.Taken, g.Window, 100*s.OverturnRate, 100*g.MaxOverturnRate, g.MinActions)}
		done, err := st.DemoteRule(ctx, d)
		if err != nil {
			return res, err
		}
		if done {
			res.Demoted = append(res.Demoted, d)
		}
	}
	res.Active = state.Active
	if len(res.Demoted) > 0 {
		if state, err = st.GuardState(ctx); err != nil {
			return res, err
		}
		res.Active = state.Active
	}
	return res, nil
}

// InForce returns the rules of rs that active demotes: those whose
// current definition is the one demoted (a rule edited since is no
// longer demoted).
func InForce(rs *policy.RuleSet, active []store.Demotion) map[string]bool {
	digests := map[string]string{}
	for _, d := range active {
		digests[d.RuleID] = d.RuleDigest
	}
	out := map[string]bool{}
	for _, info := range rs.Rules() {
		if dg, ok := digests[info.ID]; ok && dg == info.Digest && info.Mode == policy.ModeEnforce {
			out[info.ID] = true
		}
	}
	return out
}

// Apply returns rs with the rules active demotes in shadow mode.
func Apply(rs *policy.RuleSet, active []store.Demotion) *policy.RuleSet {
	return rs.WithShadow(InForce(rs, active))
}
