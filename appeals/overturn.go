package appeals

import (
	"context"
	"time"
)

// Overturner reverses automatic actions: every effect undone through the
// durable action pipeline (unban, unmute, unflag, undelete), pending ones
// cancelled before they run, and the rule kept off the user for the
// immunity window. cmd wires it to actions and store.
type Overturner interface {
	// Overturn overturns req.ActionID, or every action of req.DecisionID,
	// in one transaction: the overturn row, a reversal per action, the
	// reversal jobs, the immunities, the staff audit row and, when
	// req.AppealID is set, the appeal's 'overturned' decision. Errors:
	// store.ErrNotFound, store.ErrAlreadyOverturned, store.ErrAlreadyDecided,
	// and a *store.InputError naming the field for a request that cannot be
	// carried out (a reversal, which cannot be overturned; a decision
	// without actions; an appeal about something else; a blank reason).
	Overturn(ctx context.Context, req OverturnRequest) (OverturnResult, error)
}

// OverturnRequest asks for one overturn. Exactly one of ActionID and
// DecisionID is set.
type OverturnRequest struct {
	ActionID   int64
	DecisionID int64
	// AppealID is the appeal this overturn decides (0: none). The appeal's
	// decision row is written in the overturn's transaction.
	AppealID int64
	Reviewer string // the staff token's sub
	Role     string // the staff token's role
	Reason   string // required, non-blank
}

// OverturnResult says what the overturn did.
type OverturnResult struct {
	OverturnID  int64            `json:"overturn_id"`
	ImmuneUntil time.Time        `json:"immune_until"`
	Actions     []ReversalResult `json:"actions"`
}

// Dispositions of an overturned action, as action_reversals records them.
const (
	DispositionReversed      = "reversed"        // a reversal action was enqueued
	DispositionCancelled     = "cancelled"       // it had not run: it never will (outcome superseded)
	DispositionNothingToUndo = "nothing_to_undo" // it failed, was held, superseded, suppressed or dry-run
)

// ReversalResult is what was done about one overturned action.
type ReversalResult struct {
	ActionID         int64  `json:"action_id"`
	Type             string `json:"type"` // the overturned action's type: ban, mute, flag, delete, warn
	Disposition      string `json:"disposition"`
	ReversalActionID int64  `json:"reversal_action_id,omitempty"`
	ReversalType     string `json:"reversal_type,omitempty"` // unban, unmute, unflag, undelete, unwarn
	// Note says why there was nothing to undo ("a hard delete cannot be
	// undone").
	Note string `json:"note,omitempty"`
}
