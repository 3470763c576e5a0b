package appeals

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"moderator/store"
)

// Appeal decision outcomes.
const (
	OutcomeUpheld     = "upheld"
	OutcomeOverturned = "overturned"
)

// appealStatuses are an appeal's states: pending (no decision yet), or its
// decision's outcome.
var appealStatuses = []string{"pending", OutcomeUpheld, OutcomeOverturned}

func (s *server) listAppeals(w http.ResponseWriter, r *http.Request) error {
	q := parseQuery(r)
	if q.err != nil {
		return q.err
	}
	f := store.AppealFilter{
		UserID:     q.id("user_id", idUser),
		Status:     q.enum("status", appealStatuses...),
		RuleID:     q.id("rule_id", idRule),
		ActionType: q.enum("action_type", actionTypes...),
		Sort:       q.enum("sort", store.SortNewest, store.SortOldest),
	}
	f.From, f.To = q.timeRange()
	f.Cursor = q.cursor()
	f.Limit = q.limit()
	if q.err != nil {
		return q.err
	}
	page, err := s.store.ListAppeals(r.Context(), f)
	if err != nil {
		return fmt.Errorf("list appeals: %w", err)
	}
	params := map[string]any{"limit": f.Limit}
	for k, v := range map[string]string{"user_id": f.UserID, "status": f.Status, "rule_id": f.RuleID,
		"action_type": f.ActionType, "sort": f.Sort, "cursor": f.Cursor} {
		if v != "" {
			params[k] = v
		}
	}
	if !f.From.IsZero() {
		params["from"] = f.From.Format(time.RFC3339Nano)
	}
	if !f.To.IsZero() {
		params["to"] = f.To.Format(time.RFC3339Nano)
	}
	if err := s.record(r, store.StaffAct{Act: store.ActListAppeals, TargetUserID: f.UserID, Params: params}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

// appealOf reads the appeal of the path's {id}.
func (s *server) appealOf(r *http.Request) (int64, store.Appeal, error) {
	id, err := pathID(r, "id")
	if err != nil {
		return 0, store.Appeal{}, err
	}
	a, err := s.store.Appeal(r.Context(), id)
	if err != nil {
		return 0, store.Appeal{}, about(fmt.Errorf("appeal %d: %w", id, err), "appeal %d", id)
	}
	return id, a, nil
}

func (s *server) appeal(w http.ResponseWriter, r *http.Request) error {
	id, a, err := s.appealOf(r)
	if err != nil {
		return err
	}
	act := store.StaffAct{Act: store.ActViewAppeal, TargetUserID: a.UserID, Target: appealTarget(id), Params: map[string]any{"appeal_id": id}}
	if err := s.record(r, act); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a)
	return nil
}

func appealTarget(id int64) string { return "appeal:" + strconv.FormatInt(id, 10) }

// recordAppealRequest is POST /appeals's body.
type recordAppealRequest struct {
	UserID     *string `json:"user_id"`
	ActionID   *int64  `json:"action_id"`
	DecisionID *int64  `json:"decision_id"`
	Statement  *string `json:"statement"`
	Source     *string `json:"source"`
}

func (req recordAppealRequest) validate() (store.NewAppeal, error) {
	var a store.NewAppeal
	if req.UserID == nil || *req.UserID == "" {
		return a, badParam("user_id", "is required: the user who appeals")
	}
	if err := checkID("user_id", *req.UserID, idUser); err != nil {
		return a, err
	}
	if req.ActionID == nil && req.DecisionID == nil {
		return a, badParam("action_id", "action_id or decision_id is required: what the user appeals")
	}
	if req.ActionID != nil && *req.ActionID <= 0 {
		return a, badParam("action_id", "must be a positive whole number")
	}
	if req.DecisionID != nil && *req.DecisionID <= 0 {
		return a, badParam("decision_id", "must be a positive whole number")
	}
	if req.Statement == nil {
		return a, badParam("statement", "is required: the user's own words")
	}
	if err := requiredText("statement", *req.Statement, maxStatementLen); err != nil {
		return a, err
	}
	if req.Source == nil || *req.Source == "" {
		return a, badParam("source", "is required: where the appeal came from, such as in_app, email or support")
	}
	if !isSource(*req.Source) {
		return a, badParam("source", "must be 1-%d lower-case letters, digits and _, such as in_app, email or support", maxSourceLen)
	}
	a.UserID, a.Statement, a.Source = *req.UserID, *req.Statement, *req.Source
	if req.ActionID != nil {
		a.ActionID = *req.ActionID
	}
	if req.DecisionID != nil {
		a.DecisionID = *req.DecisionID
	}
	return a, nil
}

func isSource(s string) bool {
	if s == "" || len(s) > maxSourceLen {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func (s *server) recordAppeal(w http.ResponseWriter, r *http.Request) error {
	var req recordAppealRequest
	if err := decodeBody(w, r, &req); err != nil {
		return err
	}
	na, err := req.validate()
	if err != nil {
		return err
	}
	st := staff(r)
	na.RecordedBy = st.Subject
	a, err := s.store.RecordAppeal(r.Context(), na)
	if err != nil {
		return about(fmt.Errorf("record appeal: %w", err), "%s", appealSubject(na))
	}
	// The appeal row is itself a record of the act (recorded_by,
	// created_at), so a staff log that cannot be written now does not
	// undo it: the failure is logged and the appeal answered.
	act := store.StaffAct{Act: store.ActRecordAppeal, TargetUserID: na.UserID, Target: appealTarget(a.ID),
		Params: map[string]any{"appeal_id": a.ID, "action_id": na.ActionID, "decision_id": na.DecisionID, "source": na.Source}}
	if err := s.record(r, act); err != nil {
		logFrom(r.Context()).err = err
	}
	w.Header().Set("Location", "appeals/"+strconv.FormatInt(a.ID, 10))
	writeJSON(w, http.StatusCreated, a)
	return nil
}

// appealSubject names what an appeal is about, for a 404's message.
func appealSubject(a store.NewAppeal) string {
	switch {
	case a.ActionID != 0 && a.DecisionID != 0:
		return fmt.Sprintf("action %d of decision %d", a.ActionID, a.DecisionID)
	case a.ActionID != 0:
		return fmt.Sprintf("action %d", a.ActionID)
	}
	return fmt.Sprintf("decision %d", a.DecisionID)
}

// decideRequest is POST /appeals/{id}/decision's body.
type decideRequest struct {
	Outcome *string `json:"outcome"`
	Reason  *string `json:"reason"`
}

// Decided is what deciding an appeal did (POST /appeals/{id}/decision's
// answer): the decision when upheld; the overturn when overturned (its
// decision row is written in the overturn's transaction, and GET
// /appeals/{id} shows it).
type Decided struct {
	AppealID int64                 `json:"appeal_id"`
	Outcome  string                `json:"outcome"`
	Decision *store.AppealDecision `json:"decision,omitempty"`
	Overturn *OverturnResult       `json:"overturn,omitempty"`
}

func (s *server) decideAppeal(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	var req decideRequest
	if err := decodeBody(w, r, &req); err != nil {
		return err
	}
	if req.Outcome == nil || *req.Outcome == "" {
		return badParam("outcome", "is required: upheld or overturned")
	}
	if *req.Outcome != OutcomeUpheld && *req.Outcome != OutcomeOverturned {
		return badParam("outcome", "must be upheld or overturned, got %q", printable(*req.Outcome, 40))
	}
	reason, err := reasonOf(req.Reason)
	if err != nil {
		return err
	}
	d, err := Decide(r.Context(), s.store, s.overturner, staff(r), id, *req.Outcome, reason)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, d)
	return nil
}

// Decider is what Decide needs of the store. *store.Store satisfies it.
type Decider interface {
	Appeal(ctx context.Context, id int64) (store.Appeal, error)
	DecideAppealUpheld(ctx context.Context, appealID int64, reviewer, reason string, act store.StaffAct) (store.AppealDecision, error)
}

// Decide decides appeal id for who, the use case the staff API and the
// console share: upheld records the decision and the staff act in one
// transaction; overturned overturns what the appeal is about (the action,
// or every action of the decision) through ov, which records the decision
// in the overturn's transaction. outcome and reason must have been checked
// (OutcomeUpheld or OutcomeOverturned; reason not blank). Errors wrap
// store.ErrNotFound, store.ErrAlreadyDecided, store.ErrAlreadyOverturned,
// or are a *store.InputError; overturning without ov is unavailable.
func Decide(ctx context.Context, st Decider, ov Overturner, who Staff, id int64, outcome, reason string) (Decided, error) {
	if outcome == OutcomeUpheld {
		act := store.StaffAct{Actor: who.Subject, Role: string(who.Role), Act: store.ActDecideAppeal, Target: appealTarget(id), Reason: reason,
			Params: map[string]any{"appeal_id": id, "outcome": OutcomeUpheld}}
		d, err := st.DecideAppealUpheld(ctx, id, who.Subject, reason, act)
		if err != nil {
			return Decided{}, about(fmt.Errorf("decide appeal %d: %w", id, err), "appeal %d", id)
		}
		return Decided{AppealID: id, Outcome: OutcomeUpheld, Decision: &d}, nil
	}

	if ov == nil {
		return Decided{}, &unavailableError{msg: "overturning is not available in this deployment"}
	}
	a, err := st.Appeal(ctx, id)
	if err != nil {
		return Decided{}, about(fmt.Errorf("appeal %d: %w", id, err), "appeal %d", id)
	}
	if a.Decision != nil {
		return Decided{}, about(store.ErrAlreadyDecided, "appeal %d", id)
	}
	req := OverturnRequest{AppealID: id, Reviewer: who.Subject, Role: string(who.Role), Reason: reason}
	if a.ActionID != 0 {
		req.ActionID = a.ActionID
	} else {
		req.DecisionID = a.DecisionID
	}
	res, err := ov.Overturn(ctx, req)
	if err != nil {
		return Decided{}, about(fmt.Errorf("overturn for appeal %d: %w", id, err), "appeal %d", id)
	}
	return Decided{AppealID: id, Outcome: OutcomeOverturned, Overturn: &res}, nil
}

// reasonOf checks a reviewer's reason: required, not blank.
func reasonOf(reason *string) (string, error) {
	if reason == nil {
		return "", badParam("reason", "is required: why (it is kept in the audit trail)")
	}
	if err := requiredText("reason", *reason, maxReasonLen); err != nil {
		return "", err
	}
	return *reason, nil
}

// reasonRequest is the body of the staff acts that take only a reason:
// POST /actions/{id}/overturn, /decisions/{id}/overturn,
// /rules/{id}/restore and /users/{user_id}/erase.
type reasonRequest struct {
	Reason *string `json:"reason"`
}

// decodeReason reads a reasonRequest and checks its reason.
func decodeReason(w http.ResponseWriter, r *http.Request) (string, error) {
	var body reasonRequest
	if err := decodeBody(w, r, &body); err != nil {
		return "", err
	}
	return reasonOf(body.Reason)
}

func (s *server) overturnAction(w http.ResponseWriter, r *http.Request) error {
	return s.overturn(w, r, "action")
}

func (s *server) overturnDecision(w http.ResponseWriter, r *http.Request) error {
	return s.overturn(w, r, "decision")
}

func (s *server) overturn(w http.ResponseWriter, r *http.Request, kind string) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	reason, err := decodeReason(w, r)
	if err != nil {
		return err
	}
	if s.overturner == nil {
		return &unavailableError{msg: "overturning is not available in this deployment"}
	}
	st := staff(r)
	req := OverturnRequest{Reviewer: st.Subject, Role: string(st.Role), Reason: reason}
	if kind == "action" {
		req.ActionID = id
	} else {
		req.DecisionID = id
	}
	res, err := s.overturner.Overturn(r.Context(), req)
	if err != nil {
		return about(fmt.Errorf("overturn %s %d: %w", kind, id, err), "%s %d", kind, id)
	}
	writeJSON(w, http.StatusCreated, res)
	return nil
}
