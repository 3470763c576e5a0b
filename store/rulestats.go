package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// RuleStat is one rule's figures over a period, so that a rule that acts
// wrongly shows itself: how often it matched, what its actions became,
// and how many of them people overturned.
type RuleStat struct {
	RuleID         string `json:"rule_id" db:"rule_id"`
	EnforceMatches int    `json:"enforce_matches" db:"enforce_matches"` // decisions in the period it matched in enforce mode
	ShadowMatches  int    `json:"shadow_matches" db:"shadow_matches"`
	// Errors counts the decisions in the period in which the rule failed
	// at run time (read from the decision's errors, written with it).
	Errors int `json:"errors" db:"errors"`
	// Actions counts the rule's actions created in the period (reversals
	// excluded), then by outcome; Taken is Applied + DryRun.
	Actions    int `json:"actions" db:"actions"`
	Taken      int `json:"taken" db:"taken"`
	Applied    int `json:"applied" db:"applied"`
	DryRun     int `json:"dry_run" db:"dry_run"`
	Failed     int `json:"failed" db:"failed"`
	Held       int `json:"held" db:"held"`
	Superseded int `json:"superseded" db:"superseded"`
	Suppressed int `json:"suppressed" db:"suppressed"` // kept from acting by an overturn's immunity
	Pending    int `json:"pending" db:"pending"`
	// Overturned counts the taken actions that were overturned (at any
	// time since); Cancelled the ones an overturn stopped before they
	// ran.
	Overturned int `json:"overturned" db:"overturned"`
	Cancelled  int `json:"cancelled" db:"cancelled"`
	// OverturnRate is Overturned / Taken, 0 when nothing was taken.
	OverturnRate float64 `json:"overturn_rate" db:"overturn_rate"`
	// TakenUsers is what the rule did: per action type, the distinct
	// users its taken actions (applied or dry run) were against.
	TakenUsers map[string]int `json:"taken_users" db:"taken_users"`
	// Did says TakenUsers in plain words: "banned 1 user, muted 3 users".
	Did string `json:"did,omitempty" db:"-"`
	// WouldUsers is what the rule's shadow matches would have done: per
	// action type, the distinct users it would have acted against.
	WouldUsers map[string]int `json:"would_users" db:"would_users"`
	// Would says WouldUsers in plain words: "would ban 1 user, would mute
	// 3 users", next to Did (a rule demoted or switched to shadow in the
	// period has both).
	Would string `json:"would,omitempty" db:"-"`
}

// effectWords are the action types a summary names, in its order, with
// their words done and to be done.
var effectWords = []struct{ typ, did, would string }{
	{"ban", "banned", "would ban"}, {"mute", "muted", "would mute"}, {"warn", "warned", "would warn"},
	{"flag", "flagged", "would flag"}, {"delete", "deleted messages of", "would delete messages of"},
}

// sayUsers says users by action type in plain words, as done ("banned 1
// user, muted 3 users") or as would have been done; "" when users is
// empty.
func sayUsers(users map[string]int, would bool) string {
	var parts []string
	for _, w := range effectWords {
		n, ok := users[w.typ]
		if !ok {
			continue
		}
		noun := "users"
		if n == 1 {
			noun = "user"
		}
		verb := w.did
		if would {
			verb = w.would
		}
		parts = append(parts, fmt.Sprintf("%s %d %s", verb, n, noun))
	}
	return strings.Join(parts, ", ")
}

// RuleStats returns per-rule figures for [from, to) (zero: open), by rule
// id: matches by the decisions' time, actions by the actions' time.
func (s *Store) RuleStats(ctx context.Context, from, to time.Time) ([]RuleStat, error) {
	var dq, aq query
	dq.timeRange("d.decided_at", from, to)
	aq.args = dq.args // one argument list, shared by both parts
	aq.timeRange("a.created_at", from, to)
	aq.where("a.reverses_action_id IS NULL")
	sql := `
		WITH m AS (
			SELECT x ->> 'rule_id' AS rule_id,
				count(*) FILTER (WHERE x ->> 'mode' = 'enforce') AS enforce_matches,
				count(*) FILTER (WHERE x ->> 'mode' = 'shadow') AS shadow_matches
			FROM decisions d, jsonb_array_elements(d.matches) AS x ` + dq.clause() + `
			GROUP BY 1
		), e AS (
			SELECT x ->> 'rule_id' AS rule_id, count(*) AS errors
			FROM decisions d, jsonb_array_elements(d.errors) AS x ` + dq.clause() + `
			GROUP BY 1
		), w AS (
			SELECT rule_id, jsonb_object_agg(typ, users) AS would
			FROM (SELECT x ->> 'rule_id' AS rule_id, act ->> 'type' AS typ, count(DISTINCT d.user_id) AS users
				FROM decisions d, jsonb_array_elements(d.matches) AS x,
					jsonb_array_elements(coalesce(x -> 'actions', '[]'::jsonb)) AS act ` + dq.clause() + andWord(dq) + ` x ->> 'mode' = 'shadow'
				GROUP BY 1, 2) t
			GROUP BY 1
		), me AS (
			SELECT coalesce(m.rule_id, e.rule_id) AS rule_id, m.enforce_matches, m.shadow_matches, e.errors
			FROM m FULL JOIN e ON e.rule_id = m.rule_id
		), u AS (
			SELECT rule_id, jsonb_object_agg(type, users) AS users
			FROM (SELECT a.rule_id, a.type, count(DISTINCT a.target_user_id) AS users
				FROM actions a JOIN action_outcomes o ON o.action_id = a.id AND o.outcome IN ('applied', 'dry_run') ` +
		aq.clause() + ` AND a.target_user_id IS NOT NULL
				GROUP BY 1, 2) t
			GROUP BY 1
		), a AS (
			SELECT a.rule_id,
				count(*) AS actions,
				count(*) FILTER (WHERE o.outcome IN ('applied', 'dry_run')) AS taken,
				count(*) FILTER (WHERE o.outcome = 'applied') AS applied,
				count(*) FILTER (WHERE o.outcome = 'dry_run') AS dry_run,
				count(*) FILTER (WHERE o.outcome = 'failed') AS failed,
				count(*) FILTER (WHERE o.outcome = 'held') AS held,
				count(*) FILTER (WHERE o.outcome = 'superseded') AS superseded,
				count(*) FILTER (WHERE o.outcome = 'suppressed') AS suppressed,
				count(*) FILTER (WHERE o.id IS NULL) AS pending,
				count(*) FILTER (WHERE r.id IS NOT NULL AND o.outcome IN ('applied', 'dry_run')) AS overturned,
				count(*) FILTER (WHERE r.disposition = 'cancelled') AS cancelled
			FROM actions a
			LEFT JOIN action_outcomes o ON o.action_id = a.id
			LEFT JOIN action_reversals r ON r.action_id = a.id ` + aq.clause() + `
			GROUP BY 1
		)
		SELECT coalesce(m.rule_id, a.rule_id) AS rule_id,
			coalesce(m.enforce_matches, 0)::int AS enforce_matches, coalesce(m.shadow_matches, 0)::int AS shadow_matches,
			coalesce(m.errors, 0)::int AS errors,
			coalesce(a.actions, 0)::int AS actions, coalesce(a.taken, 0)::int AS taken,
			coalesce(a.applied, 0)::int AS applied, coalesce(a.dry_run, 0)::int AS dry_run,
			coalesce(a.failed, 0)::int AS failed, coalesce(a.held, 0)::int AS held,
			coalesce(a.superseded, 0)::int AS superseded, coalesce(a.suppressed, 0)::int AS suppressed,
			coalesce(a.pending, 0)::int AS pending, coalesce(a.overturned, 0)::int AS overturned,
			coalesce(a.cancelled, 0)::int AS cancelled,
			CASE WHEN coalesce(a.taken, 0) = 0 THEN 0 ELSE a.overturned::float8 / a.taken END AS overturn_rate,
			coalesce(u.users, '{}'::jsonb) AS taken_users,
			coalesce(w.would, '{}'::jsonb) AS would_users
		FROM me AS m FULL JOIN a ON a.rule_id = m.rule_id
		LEFT JOIN u ON u.rule_id = a.rule_id
		LEFT JOIN w ON w.rule_id = coalesce(m.rule_id, a.rule_id)
		WHERE coalesce(m.rule_id, a.rule_id) IS NOT NULL
		ORDER BY 1`
	rows, err := s.pool.Query(ctx, sql, aq.args...)
	if err != nil {
		return nil, fmt.Errorf("rule stats: %w", err)
	}
	stats, err := pgx.CollectRows(rows, pgx.RowToStructByName[RuleStat])
	if err != nil {
		return nil, fmt.Errorf("rule stats: %w", err)
	}
	if stats == nil {
		stats = []RuleStat{}
	}
	for i := range stats {
		stats[i].say()
	}
	return stats, nil
}

// say fills Did and Would from the figures.
func (s *RuleStat) say() {
	s.Did, s.Would = sayUsers(s.TakenUsers, false), sayUsers(s.WouldUsers, true)
}

// WithIdleRules adds a row of zeros for each rule of ids that stats has
// none for, so that a rule that never matched shows as such, and returns
// the rows by rule id.
func WithIdleRules(stats []RuleStat, ids []string) []RuleStat {
	seen := make(map[string]bool, len(stats))
	for _, st := range stats {
		seen[st.RuleID] = true
	}
	for _, id := range ids {
		if !seen[id] {
			stats = append(stats, RuleStat{RuleID: id, TakenUsers: map[string]int{}, WouldUsers: map[string]int{}})
			seen[id] = true
		}
	}
	if stats == nil {
		stats = []RuleStat{}
	}
	slices.SortFunc(stats, func(a, b RuleStat) int { return strings.Compare(a.RuleID, b.RuleID) })
	return stats
}

// andWord continues q's WHERE clause, or starts one.
func andWord(q query) string {
	if len(q.conds) == 0 {
		return " WHERE"
	}
	return " AND"
}
