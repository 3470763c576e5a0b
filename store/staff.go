package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Staff acts, in StaffAct.Act: the names the staff audit log uses, so that
// "who looked at this user's history" is one query.
const (
	ActSearch        = "search"
	ActTimeline      = "timeline"
	ActViewDecision  = "view_decision"
	ActViewStatement = "view_statement"
	ActViewAction    = "view_action"
	ActViewAppeal    = "view_appeal"
	ActRecordAppeal  = "record_appeal"
	ActDecideAppeal  = "decide_appeal"
	ActOverturn      = "overturn"
	ActRuleStats     = "rule_stats"
	ActListAppeals   = "list_appeals"
	ActRuleSetStatus = "rule_set_status"
)

// StaffAct is one thing a member of staff did, for the staff audit log:
// who (Actor, the token's sub, with the Role it carried), what (Act), whose
// history or which record it concerned, why, and the request's parameters
// (filters, ids, outcome), which are stored as JSON.
type StaffAct struct {
	Actor        string `json:"actor"`
	Role         string `json:"role"`
	Act          string `json:"act"`
	TargetUserID string `json:"target_user_id,omitempty"`
	Target       string `json:"target,omitempty"` // "decision:12", "action:7", "appeal:3"
	Reason       string `json:"reason,omitempty"`
	Params       any    `json:"params,omitempty"`
}

// RecordStaffAct appends act to the staff audit log.
func (s *Store) RecordStaffAct(ctx context.Context, act StaffAct) error {
	return recordStaffAct(ctx, s.pool, act)
}

// RecordStaffActTx appends act to the staff audit log inside tx, so the
// record of a decision or an overturn commits with it or not at all.
func RecordStaffActTx(ctx context.Context, tx pgx.Tx, act StaffAct) error {
	return recordStaffAct(ctx, tx, act)
}

func recordStaffAct(ctx context.Context, q querier, act StaffAct) error {
	if strings.TrimSpace(act.Actor) == "" {
		return &InputError{Field: "actor", Msg: "is required"}
	}
	if strings.TrimSpace(act.Act) == "" {
		return &InputError{Field: "act", Msg: "is required"}
	}
	params := "{}"
	if act.Params != nil {
		b, err := json.Marshal(act.Params)
		if err != nil {
			return fmt.Errorf("record staff act %s by %s: encode params: %w", act.Act, act.Actor, err)
		}
		if string(b) != "null" {
			params = jsonbSafe(b)
		}
	}
	_, err := q.Exec(ctx, `INSERT INTO staff_audit (actor, role, act, target_user_id, target, reason, params)
		VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)`,
		act.Actor, act.Role, act.Act, nullString(act.TargetUserID), nullString(act.Target), nullString(act.Reason), params)
	if err != nil {
		return fmt.Errorf("record staff act %s by %s: %w", act.Act, act.Actor, err)
	}
	return nil
}

// InputError is a value a caller passed that the store refuses, naming the
// field, so that the staff API can answer 400 with it and the CLI can print
// it. Nothing is written when it is returned.
type InputError struct {
	Field string
	Msg   string
}

func (e *InputError) Error() string { return e.Field + ": " + e.Msg }

// IsInputError reports whether err is (or wraps) an *InputError, and
// returns it.
func IsInputError(err error) (*InputError, bool) {
	var ie *InputError
	ok := errors.As(err, &ie)
	return ie, ok
}
