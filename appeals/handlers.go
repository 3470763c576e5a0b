package appeals

import (
	"context"
	_ "embed"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"moderator/store"
)

//go:embed openapi.yaml
var openAPISpec []byte

// ActViewSettings is the staff act of reading the service's settings; the
// other acts are store's (store.ActSearch, …), one vocabulary for the log.
const ActViewSettings = "view_settings"

// actionTypes are the values the action_type filter accepts (outcome's are
// store.FilterOutcomes).
var actionTypes = []string{"flag", "mute", "ban", "delete", "warn", "unflag", "unmute", "unban", "undelete", "unwarn"}

// handleSpec serves the OpenAPI document. It needs no token: it describes
// the API, and holds nothing about anyone.
func (s *server) handleSpec(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(openAPISpec)
}

// staff returns the caller; RequireRole has made sure there is one.
func staff(r *http.Request) Staff {
	st, _ := StaffFrom(r.Context())
	return st
}

// record writes the staff act of r before its answer is sent; if it
// cannot be written, the request is refused.
func (s *server) record(r *http.Request, act store.StaffAct) error {
	st := staff(r)
	act.Actor, act.Role = st.Subject, string(st.Role)
	if err := s.store.RecordStaffAct(r.Context(), act); err != nil {
		return &auditError{err: err}
	}
	return nil
}

// filterParams is the staff audit log's record of a search: which list,
// and the filters given.
func filterParams(list string, f store.AuditFilter) map[string]any {
	p := f.Params()
	p["list"] = list
	return p
}

// auditFilter reads the filters of a search.
func auditFilter(r *http.Request) (store.AuditFilter, error) {
	q := parseQuery(r)
	var f store.AuditFilter
	if q.err != nil {
		return f, q.err
	}
	f.UserID = q.id("user_id", idUser)
	f.MessageID = q.id("message_id", idMessage)
	f.ChannelCID = q.id("channel_cid", idChannel)
	f.RuleID = q.id("rule_id", idRule)
	f.EventType = q.id("event_type", idEventType)
	f.ActionType = q.enum("action_type", actionTypes...)
	f.Outcome = q.enum("outcome", store.FilterOutcomes...)
	f.Text = q.text("text", maxSearchTextLen)
	f.From, f.To = q.timeRange()
	f.Cursor = q.cursor()
	f.Limit = q.limit()
	return f, q.err
}

// search answers one of the audit searches, the list named list, run by
// find (a method expression, such as Store.SearchEvents, so that the
// routes can be listed on a server without a store).
func search[T any](s *server, list string, find func(Store, context.Context, store.AuditFilter) (store.Page[T], error)) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		f, err := auditFilter(r)
		if err != nil {
			return err
		}
		page, err := find(s.store, r.Context(), f)
		if err != nil {
			return fmt.Errorf("search %s: %w", list, err)
		}
		if err := s.record(r, store.StaffAct{Act: store.ActSearch, TargetUserID: f.UserID, Params: filterParams(list, f)}); err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, page)
		return nil
	}
}

func (s *server) timeline(w http.ResponseWriter, r *http.Request) error {
	userID, err := pathString(r, "user_id", idUser)
	if err != nil {
		return err
	}
	f, err := auditFilter(r)
	if err != nil {
		return err
	}
	f.UserID = userID
	page, err := s.store.Timeline(r.Context(), userID, f)
	if err != nil {
		return fmt.Errorf("timeline of %s: %w", userID, err)
	}
	if err := s.record(r, store.StaffAct{Act: store.ActTimeline, TargetUserID: userID, Params: filterParams("timeline", f)}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

func (s *server) decisionEvidence(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	q := parseQuery(r)
	around := q.number("around", defaultAround, 0, maxAround, true)
	if q.err != nil {
		return q.err
	}
	ev, err := s.store.DecisionEvidence(r.Context(), id, around)
	if err != nil {
		return about(fmt.Errorf("decision %d evidence: %w", id, err), "decision %d", id)
	}
	act := store.StaffAct{Act: store.ActViewDecision, TargetUserID: ev.Decision.UserID, Target: "decision:" + strconv.FormatInt(id, 10),
		Params: map[string]any{"decision_id": id, "around": around}}
	if err := s.record(r, act); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ev)
	return nil
}

func (s *server) action(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	a, err := s.store.Action(r.Context(), id)
	if err != nil {
		return about(fmt.Errorf("action %d: %w", id, err), "action %d", id)
	}
	act := store.StaffAct{Act: store.ActViewAction, TargetUserID: a.TargetUserID, Target: "action:" + strconv.FormatInt(id, 10),
		Params: map[string]any{"action_id": id}}
	if err := s.record(r, act); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a)
	return nil
}

// ruleStatsWindow is the period GET /rules/stats covers when from is not
// given.
const ruleStatsWindow = 30 * 24 * time.Hour

// ruleStatsResponse is GET /rules/stats's answer.
type ruleStatsResponse struct {
	From  time.Time        `json:"from"`
	To    time.Time        `json:"to"`
	Rules []store.RuleStat `json:"rules"`
}

// withIdleRules adds a row of zeros for each rule in force that has none,
// so that a rule that never matches shows as such.
func (s *server) withIdleRules(stats []store.RuleStat) []store.RuleStat {
	var ids []string
	if s.status != nil {
		for _, info := range s.status.RuleSet().Rules {
			ids = append(ids, info.ID)
		}
	}
	return store.WithIdleRules(stats, ids)
}

func (s *server) ruleStats(w http.ResponseWriter, r *http.Request) error {
	q := parseQuery(r)
	from, to := q.timeRange()
	if q.err != nil {
		return q.err
	}
	if to.IsZero() {
		to = s.now().UTC()
	}
	if from.IsZero() {
		from = to.Add(-ruleStatsWindow)
	}
	if !from.Before(to) {
		return badParam("from", "must be before to")
	}
	stats, err := s.store.RuleStats(r.Context(), from, to)
	if err != nil {
		return fmt.Errorf("rule stats: %w", err)
	}
	stats = s.withIdleRules(stats)
	act := store.StaffAct{Act: store.ActRuleStats, Params: map[string]any{
		"from": from.Format(time.RFC3339Nano), "to": to.Format(time.RFC3339Nano)}}
	if err := s.record(r, act); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ruleStatsResponse{From: from, To: to, Rules: stats})
	return nil
}

func (s *server) ruleSet(w http.ResponseWriter, r *http.Request) error {
	if s.status == nil {
		return &unavailableError{msg: "the rule set's status is not available in this deployment"}
	}
	rs := s.status.RuleSet()
	if rs.Rules == nil {
		rs.Rules = []RuleInfo{}
	}
	if err := s.record(r, store.StaffAct{Act: store.ActRuleSetStatus}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rs)
	return nil
}

// redacted replaces a secret setting's value.
const redacted = "[redacted]"

// settingsResponse is GET /settings's answer.
type settingsResponse struct {
	Settings []Setting `json:"settings"`
}

func (s *server) settings(w http.ResponseWriter, r *http.Request) error {
	if s.status == nil {
		return &unavailableError{msg: "the service's settings are not available in this deployment"}
	}
	list := s.status.Settings()
	out := make([]Setting, len(list))
	for i, st := range list {
		if st.Secret && st.Value != "" {
			st.Value = redacted
		}
		out[i] = st
	}
	if err := s.record(r, store.StaffAct{Act: ActViewSettings}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, settingsResponse{Settings: out})
	return nil
}

// restoreRule ends a rule's demotion by its guard; the staff audit row is
// written with it.
func (s *server) restoreRule(w http.ResponseWriter, r *http.Request) error {
	id, err := pathString(r, "rule_id", idRule)
	if err != nil {
		return err
	}
	reason, err := decodeReason(w, r)
	if err != nil {
		return err
	}
	if s.restorer == nil {
		return &unavailableError{msg: "restoring rules is not available in this deployment"}
	}
	st := staff(r)
	if err := s.restorer.RestoreRule(r.Context(), id, reason, store.StaffAct{Actor: st.Subject, Role: string(st.Role)}); err != nil {
		return fmt.Errorf("restore rule %s: %w", id, err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"rule_id": id, "restored": true})
	return nil
}
