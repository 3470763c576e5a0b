package main

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"moderator/guard"
	"moderator/policy"
	"moderator/store"
)

// guardEvery is how often the rule guard looks at the overturn rates and
// reads the demotions other replicas made.
const guardEvery = time.Minute

// ruleGuard runs the rule guard (package guard) for the service: it
// demotes, reads the demotions in force into the live rules, exports the
// rates, and restores a rule for an admin (appeals.RuleRestorer).
type ruleGuard struct {
	st      *store.Store
	rules   *liveRules
	def     policy.Guard
	logger  *slog.Logger
	rate    *prometheus.GaugeVec
	demoted *prometheus.GaugeVec
}

func newRuleGuard(st *store.Store, rules *liveRules, def policy.Guard, logger *slog.Logger, reg prometheus.Registerer) *ruleGuard {
	g := &ruleGuard{st: st, rules: rules, def: def, logger: logger,
		rate: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "moderator_rule_overturn_rate",
			Help: "Per enforce rule: the share of its taken actions that reviewers overturned, over its guard's window.",
		}, []string{"rule"}),
		demoted: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "moderator_rule_demoted",
			Help: "1 for a rule its guard demoted to shadow (until an admin restores it or it changes), else 0.",
		}, []string{"rule"}),
	}
	reg.MustRegister(g.rate, g.demoted)
	return g
}

// run checks every guardEvery, once the migrations are applied.
func (g *ruleGuard) run(ctx context.Context, migrated *atomic.Bool) {
	everyOnceMigrated(ctx, guardEvery, migrated, func() {
		if err := g.check(ctx, time.Now()); err != nil && ctx.Err() == nil {
			g.logger.Error("rule guard", "error", err)
		}
	})
}

// check runs the guard once on the folder's rules and puts the demotions
// in force.
func (g *ruleGuard) check(ctx context.Context, now time.Time) error {
	rs := g.rules.loaded.Load()
	if rs == nil {
		return nil
	}
	res, err := guard.Check(ctx, g.st, rs, g.def, now)
	if err != nil {
		return err
	}
	for _, d := range res.Demoted {
		g.logger.Warn("rule demoted to shadow", "rule", d.RuleID, "overturn_rate", d.OverturnRate, "taken", d.Taken,
			"overturned", d.Overturned, "window", d.Window.String(), "reason", d.Reason)
	}
	g.rules.setDemotions(res.Active)
	g.rate.Reset()
	for _, r := range res.Rates {
		g.rate.WithLabelValues(r.RuleID).Set(r.Rate)
	}
	g.export(rs, res.Active)
	return nil
}

// export sets moderator_rule_demoted for every rule of rs.
func (g *ruleGuard) export(rs *policy.RuleSet, active []store.Demotion) {
	in := guard.InForce(rs, active)
	g.demoted.Reset()
	for _, info := range rs.Rules() {
		v := 0.0
		if in[info.ID] {
			v = 1
		}
		g.demoted.WithLabelValues(info.ID).Set(v)
	}
}

// RestoreRule ends a demotion for an admin and puts the rule back in
// force at once on this replica (the others within guardEvery).
func (g *ruleGuard) RestoreRule(ctx context.Context, ruleID, reason string, act store.StaffAct) error {
	if err := g.st.RestoreRule(ctx, ruleID, reason, act); err != nil {
		return err
	}
	g.logger.Info("rule restored", "rule", ruleID, "staff_sub", act.Actor)
	state, err := g.st.GuardState(ctx)
	if err != nil {
		return nil // restored; the next check puts it in force
	}
	g.rules.setDemotions(state.Active)
	if rs := g.rules.loaded.Load(); rs != nil {
		g.export(rs, state.Active)
	}
	return nil
}
