package console

import (
	"cmp"
	"net/http"
	"slices"
	"time"

	"moderator/appeals"
	"moderator/store"
)

// ruleWindows are the periods the rules screen's figures cover.
var ruleWindows = map[string]time.Duration{"24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour, "30d": 30 * 24 * time.Hour}

// ruleSorts are the orders of the rules screen.
var ruleSorts = []string{"order", "id", "matches", "actions", "overturn_rate", "overturned"}

// rulesPage is the rule set in force with each rule's figures.
type rulesPage struct {
	basePage
	Status  appeals.RuleSetStatus
	Rows    []ruleRow
	Window  string
	Windows []string
	Sort    string
	Sorts   []string
	From    time.Time
}

// ruleRow is a rule (of the set in force, or one that acted in the
// period and is gone) with its figures.
type ruleRow struct {
	appeals.RuleInfo
	InForce bool
	Order   int
	Stat    store.RuleStat
}

func (c *Console) rulesScreen(w http.ResponseWriter, r *http.Request) error {
	window := cmp.Or(r.URL.Query().Get("window"), "30d")
	sortBy := cmp.Or(r.URL.Query().Get("sort"), "order")
	if ruleWindows[window] == 0 {
		return &httpError{status: http.StatusBadRequest, msg: "window: must be 24h, 7d or 30d"}
	}
	if !slices.Contains(ruleSorts, sortBy) {
		return &httpError{status: http.StatusBadRequest, msg: "sort: must be order, id, matches, actions, overturn_rate or overturned"}
	}
	if c.rules == nil {
		return &httpError{status: http.StatusServiceUnavailable, msg: "The rule set is not available in this deployment."}
	}
	to := c.now().UTC()
	from := to.Add(-ruleWindows[window])
	stats, err := c.store.RuleStats(r.Context(), from, to)
	if err != nil {
		return err
	}
	if err := c.record(r, store.StaffAct{Act: store.ActRuleStats, Params: map[string]any{"from": from.Format(time.RFC3339),
		"to": to.Format(time.RFC3339), "screen": "rules"}}); err != nil {
		return err
	}
	status := c.rules.RuleSet()
	p := rulesPage{basePage: c.base(r, "Rules"), Status: status, Window: window, Windows: []string{"24h", "7d", "30d"},
		Sort: sortBy, Sorts: ruleSorts, From: from, Rows: ruleRows(status.Rules, stats)}
	sortRules(p.Rows, sortBy)
	c.render(w, r, http.StatusOK, "rules", p)
	return nil
}

// ruleRows joins the rules in force with the figures, in evaluation
// order, then the rules that acted in the period but are no longer in
// force.
func ruleRows(rules []appeals.RuleInfo, stats []store.RuleStat) []ruleRow {
	byID := map[string]store.RuleStat{}
	for _, s := range stats {
		byID[s.RuleID] = s
	}
	rows := make([]ruleRow, 0, len(rules))
	seen := map[string]bool{}
	for i, ri := range rules {
		rows = append(rows, ruleRow{RuleInfo: ri, InForce: true, Order: i + 1, Stat: byID[ri.ID]})
		seen[ri.ID] = true
	}
	for _, s := range stats {
		if !seen[s.RuleID] {
			rows = append(rows, ruleRow{RuleInfo: appeals.RuleInfo{ID: s.RuleID}, Order: len(rows) + 1, Stat: s})
		}
	}
	return rows
}

// sortRules orders the rows; figures largest first, ties by order.
func sortRules(rows []ruleRow, by string) {
	key := func(r ruleRow) float64 {
		switch by {
		case "matches":
			return float64(r.Stat.EnforceMatches + r.Stat.ShadowMatches)
		case "actions":
			return float64(r.Stat.Actions)
		case "overturn_rate":
			return r.Stat.OverturnRate
		case "overturned":
			return float64(r.Stat.Overturned)
		}
		return 0
	}
	slices.SortStableFunc(rows, func(a, b ruleRow) int {
		switch by {
		case "id":
			return cmp.Compare(a.ID, b.ID)
		case "order":
			return cmp.Compare(a.Order, b.Order)
		}
		return cmp.Or(cmp.Compare(key(b), key(a)), cmp.Compare(a.Order, b.Order))
	})
}
