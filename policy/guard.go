package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// Guard is when a rule is demoted to shadow because reviewers keep
// overturning its actions: its overturn rate over Window reaches
// MaxOverturnRate with at least MinActions taken actions behind it. A
// zero field takes the service's default (MODERATOR_GUARD_*).
type Guard struct {
	MaxOverturnRate float64       `json:"max_overturn_rate,omitempty"`
	MinActions      int           `json:"min_actions,omitempty"`
	Window          time.Duration `json:"window,omitempty"`
}

// Or returns g with its zero fields taken from def.
func (g Guard) Or(def Guard) Guard {
	if g.MaxOverturnRate == 0 {
		g.MaxOverturnRate = def.MaxOverturnRate
	}
	if g.MinActions == 0 {
		g.MinActions = def.MinActions
	}
	if g.Window == 0 {
		g.Window = def.Window
	}
	return g
}

// Trips reports whether taken actions of which overturned were overturned
// demote a rule under g.
func (g Guard) Trips(taken, overturned int) bool {
	return g.MinActions > 0 && taken >= g.MinActions && g.MaxOverturnRate > 0 &&
		float64(overturned) >= g.MaxOverturnRate*float64(taken)
}

// compileGuard checks a rule's guard.
func compileGuard(raw *rawGuard) (Guard, error) {
	var g Guard
	if raw == nil {
		return g, nil
	}
	if raw.MaxOverturnRate != nil {
		if r := *raw.MaxOverturnRate; r <= 0 || r > 1 {
			return g, fmt.Errorf("guard max_overturn_rate %v: want a share above 0 and at most 1, like 0.3", r)
		}
		g.MaxOverturnRate = *raw.MaxOverturnRate
	}
	if raw.MinActions != nil {
		if *raw.MinActions < 1 {
			return g, fmt.Errorf("guard min_actions %d: want at least 1", *raw.MinActions)
		}
		g.MinActions = *raw.MinActions
	}
	if raw.Window != "" {
		w, err := ParseDuration(raw.Window)
		if err != nil || w < time.Hour || w > MaxHistoryWindow {
			return g, fmt.Errorf("guard window %q: want a duration from 1h to 30d, like 7d", raw.Window)
		}
		g.Window = w
	}
	return g, nil
}

// digest is a hash of the rule's definition (the fields Diff compares):
// a demotion holds until the rule's text changes.
func (r *rule) digest() string {
	h := sha256.New()
	def := r.definition()
	for _, f := range definitionFields {
		fmt.Fprintf(h, "%d:%s%d:%s", len(f), f, len(def[f]), def[f])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// WithShadow returns a copy of the set in which the rules of ids are in
// shadow mode: demoted rules, which are evaluated and audited but ask for
// nothing. The copy shares everything else; its version is the same (the
// decisions record each match's mode).
func (rs *RuleSet) WithShadow(ids map[string]bool) *RuleSet {
	if len(ids) == 0 {
		return rs
	}
	c := *rs
	c.rules = make([]*rule, len(rs.rules))
	for i, r := range rs.rules {
		if ids[r.id] && r.mode != ModeShadow {
			cp := *r
			cp.mode = ModeShadow
			r = &cp
		}
		c.rules[i] = r
	}
	c.shadowStrikes = c.findShadowStrikes()
	return &c
}
