package appeals

import (
	"net/http"

	"moderator/store"
)

// route is one endpoint of the staff API: the role it needs ("": no token
// needed) and the query parameters it takes (any other is a 400 before
// the handler runs).
type route struct {
	method  string
	pattern string
	role    Role
	query   []string
	handler http.HandlerFunc
}

// The query parameters of the searches.
var (
	searchQuery   = []string{"user_id", "message_id", "channel_cid", "rule_id", "event_type", "action_type", "outcome", "from", "to", "cursor", "limit"}
	eventsQuery   = append([]string{"text"}, searchQuery...)
	timelineQuery = []string{"from", "to", "cursor", "limit"}
	appealQuery   = []string{"user_id", "status", "rule_id", "action_type", "sort", "from", "to", "cursor", "limit"}
)

// routes lists every endpoint of the staff API, in one place, with the
// role each needs. openapi.yaml documents the same list (x-role, and the
// query parameters), and a test holds the two, and the router, equal.
func (s *server) routes() []route {
	return []route{
		{http.MethodGet, "/openapi.yaml", "", nil, s.handleSpec},

		// viewer: search and read the audit trail.
		{http.MethodGet, "/events", RoleViewer, eventsQuery, s.handle(search(s, "events", Store.SearchEvents))},
		{http.MethodGet, "/decisions", RoleViewer, searchQuery, s.handle(search(s, "decisions", Store.SearchDecisions))},
		{http.MethodGet, "/decisions/{id}", RoleViewer, []string{"around"}, s.handle(s.decisionEvidence)},
		{http.MethodGet, "/decisions/{id}/statement", RoleViewer, []string{"format"}, s.handle(s.decisionStatement)},
		{http.MethodGet, "/actions", RoleViewer, searchQuery, s.handle(search(s, "actions", Store.SearchActions))},
		{http.MethodGet, "/actions/{id}", RoleViewer, nil, s.handle(s.action)},
		{http.MethodGet, "/users/{user_id}/timeline", RoleViewer, timelineQuery, s.handle(s.timeline)},
		{http.MethodGet, "/appeals", RoleViewer, appealQuery, s.handle(s.listAppeals)},
		{http.MethodGet, "/appeals/{id}", RoleViewer, nil, s.handle(s.appeal)},
		{http.MethodGet, "/appeals/{id}/notes", RoleViewer, nil, s.handle(s.notes)},
		{http.MethodGet, "/rules/stats", RoleViewer, []string{"from", "to"}, s.handle(s.ruleStats)},
		{http.MethodGet, "/quarantine", RoleViewer, timelineQuery, s.handle(search(s, "quarantine", Store.Quarantine))},

		// reviewer: also record and decide appeals, and overturn.
		{http.MethodPost, "/appeals", RoleReviewer, nil, s.handle(s.recordAppeal)},
		{http.MethodPost, "/appeals/{id}/decision", RoleReviewer, nil, s.handle(s.decideAppeal)},
		{http.MethodPost, "/appeals/{id}/claim", RoleReviewer, nil, s.handle(s.assign(store.AssignClaim))},
		{http.MethodPost, "/appeals/{id}/release", RoleReviewer, nil, s.handle(s.assign(store.AssignRelease))},
		{http.MethodPost, "/appeals/{id}/assign", RoleReviewer, nil, s.handle(s.assign(store.AssignAssign))},
		{http.MethodPost, "/appeals/{id}/notes", RoleReviewer, nil, s.handle(s.addNote)},
		{http.MethodPost, "/actions/{id}/overturn", RoleReviewer, nil, s.handle(s.overturnAction)},
		{http.MethodPost, "/decisions/{id}/overturn", RoleReviewer, nil, s.handle(s.overturnDecision)},
		{http.MethodPost, "/backtests", RoleReviewer, nil, s.handle(s.startBacktest)},
		{http.MethodGet, "/backtests", RoleReviewer, []string{"cursor", "limit"}, s.handle(s.listBacktests)},
		{http.MethodGet, "/backtests/{id}", RoleReviewer, nil, s.handle(s.backtest)},

		// admin: also the rule set's status and the service's settings.
		{http.MethodGet, "/rules", RoleAdmin, nil, s.handle(s.ruleSet)},
		{http.MethodGet, "/settings", RoleAdmin, nil, s.handle(s.settings)},
		{http.MethodPost, "/rules/{rule_id}/restore", RoleAdmin, nil, s.handle(s.restoreRule)},
		{http.MethodPost, "/users/{user_id}/erase", RoleAdmin, nil, s.handle(s.eraseUser)},
	}
}
