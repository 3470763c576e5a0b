package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"moderator/actions"
	"moderator/appeals"
	"moderator/store"
)

// DefaultImmunityWindow is how long, after an overturn, the rules that
// acted may not act against the same user again
// (MODERATOR_IMMUNITY_WINDOW).
const DefaultImmunityWindow = 24 * time.Hour

// overturner implements appeals.Overturner: store holds the audit trail
// and the locks, actions plans and enqueues the reversals, and this type
// puts both in one transaction.
type overturner struct {
	st     *store.Store
	runner *actions.Runner
	window time.Duration
	now    func() time.Time
	logger *slog.Logger
}

var _ appeals.Overturner = (*overturner)(nil)

// newOverturner builds the Overturner serve mounts in the staff API.
// window is the immunity window; now is the clock of its start (time.Now
// when nil).
func newOverturner(st *store.Store, runner *actions.Runner, window time.Duration, logger *slog.Logger, now func() time.Time) *overturner {
	if now == nil {
		now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &overturner{st: st, runner: runner, window: window, now: now, logger: logger}
}

// Overturn reverses an action, or every action of a decision, in one
// transaction: it locks the actions, records the overturn, decides for each
// action not yet overturned (a reversal for an applied one, a cancellation
// for a pending one, nothing to undo for the rest), enqueues the
// reversals, records what it did about each action, the immunity of each
// (rule, user), the appeal's decision when it decides one, and the staff
// audit row. It returns store.ErrNotFound for an unknown action, decision or
// appeal, store.ErrAlreadyOverturned when every action was overturned
// before, store.ErrAlreadyDecided for an appeal decided before, and a
// *store.InputError (naming the field) for a missing reviewer or reason, a
// reversal (which cannot be overturned), a decision without actions, or an
// appeal about something else.
func (o *overturner) Overturn(ctx context.Context, req appeals.OverturnRequest) (appeals.OverturnResult, error) {
	if err := validateOverturn(req); err != nil {
		return appeals.OverturnResult{}, err
	}
	var appeal store.Appeal
	if req.AppealID != 0 {
		// Appeals are append-only rows: what one concerns never changes, so
		// it may be read before the transaction.
		var err error
		if appeal, err = o.st.Appeal(ctx, req.AppealID); err != nil {
			return appeals.OverturnResult{}, fmt.Errorf("overturn: %w", err)
		}
	}
	start := time.Now()
	var done overturnDone
	err := pgx.BeginFunc(ctx, o.st.Pool(), func(tx pgx.Tx) error {
		todo, err := lockOverturnTodoTx(ctx, tx, req, appeal)
		if err != nil {
			return err
		}
		if done, err = o.reverseTx(ctx, tx, req, todo); err != nil {
			return err
		}
		return recordOverturnTx(ctx, tx, req, done)
	})
	if err != nil {
		return appeals.OverturnResult{}, fmt.Errorf("overturn: %w", err)
	}
	o.runner.CountOverturn(done.undos)
	o.logOverturn(req, done, time.Since(start))
	return done.res, nil
}

// overturnDone is what one overturn did, for the rows that record it, the
// answer and the log line.
type overturnDone struct {
	res   appeals.OverturnResult
	undos []actions.Undo
	users []string // the users the overturned actions targeted, each once
}

// overturnSubject names what req overturns, in words for messages ("action
// 7") and as the staff audit row's target ("action:7").
func overturnSubject(req appeals.OverturnRequest) (what, target string) {
	if req.DecisionID != 0 {
		return fmt.Sprintf("decision %d", req.DecisionID), fmt.Sprintf("decision:%d", req.DecisionID)
	}
	return fmt.Sprintf("action %d", req.ActionID), fmt.Sprintf("action:%d", req.ActionID)
}

// lockOverturnTodoTx locks the actions req overturns and returns those not
// overturned before, refusing an overturn with nothing to do: no actions,
// a reversal among them, an appeal about something else, or every action
// already overturned.
func lockOverturnTodoTx(ctx context.Context, tx pgx.Tx, req appeals.OverturnRequest, appeal store.Appeal) ([]store.OverturnTarget, error) {
	what, _ := overturnSubject(req)
	targets, err := store.LockOverturnTargetsTx(ctx, tx, req.ActionID, req.DecisionID)
	if err != nil {
		return nil, err
	}
	if len(targets) == 0 {
		return nil, &store.InputError{Field: "id", Msg: what + " asked for no actions: there is nothing to overturn"}
	}
	if req.AppealID != 0 && !concerns(appeal, targets) {
		return nil, &store.InputError{Field: "appeal_id", Msg: fmt.Sprintf("appeal %d is not about %s", req.AppealID, what)}
	}
	var todo []store.OverturnTarget
	for _, t := range targets {
		switch {
		case t.ReversesActionID != 0:
			return nil, &store.InputError{Field: "id", Msg: fmt.Sprintf("action %d is the reversal of action %d, and a reversal cannot be overturned",
				t.ActionID, t.ReversesActionID)}
		case t.OverturnedBy == 0:
			todo = append(todo, t)
		}
	}
	if len(todo) == 0 {
		return nil, fmt.Errorf("%s: %w", what, store.ErrAlreadyOverturned)
	}
	return todo, nil
}

// reverseTx records the overturn, plans the undoing of each action of todo
// and enqueues the reversals, then records what became of each action and
// the immunity of each (rule, user) it acted on.
func (o *overturner) reverseTx(ctx context.Context, tx pgx.Tx, req appeals.OverturnRequest, todo []store.OverturnTarget) (overturnDone, error) {
	until := o.now().Add(o.window).UTC().Truncate(time.Microsecond) // as Postgres keeps it
	id, _, err := store.InsertOverturnTx(ctx, tx, store.NewOverturn{ActionID: req.ActionID, DecisionID: req.DecisionID,
		AppealID: req.AppealID, Reviewer: req.Reviewer, Reason: req.Reason, ImmuneUntil: until})
	if err != nil {
		return overturnDone{}, err
	}
	undos := make([]actions.Undo, len(todo))
	for i, t := range todo {
		rec, err := recordedOf(t)
		if err != nil {
			return overturnDone{}, err
		}
		undos[i] = actions.PlanUndo(rec)
	}
	undos, err = o.runner.OverturnTx(ctx, tx, actions.Overturn{ID: id, Reviewer: req.Reviewer, Reason: req.Reason}, undos)
	if err != nil {
		return overturnDone{}, err
	}

	done := overturnDone{undos: undos,
		res: appeals.OverturnResult{OverturnID: id, ImmuneUntil: until, Actions: make([]appeals.ReversalResult, len(undos))}}
	rows := make([]store.ReversalRow, len(undos))
	var immunities []store.ImmunityRow
	seen := map[store.RuleUser]bool{}
	for i, u := range undos {
		rows[i] = store.ReversalRow{OverturnID: id, ActionID: u.ActionID, Disposition: string(u.Disposition), ReversalActionID: u.ReversalActionID}
		done.res.Actions[i] = reversalResult(u)
		ru := store.RuleUser{RuleID: u.Action.RuleID, UserID: u.Target.UserID}
		if ru.UserID != "" && !seen[ru] {
			seen[ru] = true
			immunities = append(immunities, store.ImmunityRow{OverturnID: id, RuleID: ru.RuleID, UserID: ru.UserID, Until: until})
			if !slices.Contains(done.users, ru.UserID) {
				done.users = append(done.users, ru.UserID)
			}
		}
	}
	if err := store.InsertReversalsTx(ctx, tx, rows); err != nil {
		return overturnDone{}, err
	}
	if err := store.InsertImmunitiesTx(ctx, tx, immunities); err != nil {
		return overturnDone{}, err
	}
	return done, nil
}

// recordOverturnTx records the appeal's decision, when the overturn
// decides one, and the staff audit row of the overturn.
func recordOverturnTx(ctx context.Context, tx pgx.Tx, req appeals.OverturnRequest, done overturnDone) error {
	id := done.res.OverturnID
	if req.AppealID != 0 {
		if _, err := store.RecordAppealDecisionTx(ctx, tx, store.AppealDecisionRow{AppealID: req.AppealID,
			Outcome: store.AppealOverturned, Reviewer: req.Reviewer, Reason: req.Reason, OverturnID: id}); err != nil {
			return err
		}
	}
	_, target := overturnSubject(req)
	act := store.StaffAct{Actor: req.Reviewer, Role: req.Role, Act: store.ActOverturn, Target: target, Reason: req.Reason,
		Params: overturnParams{OverturnID: id, AppealID: req.AppealID, ImmuneUntil: done.res.ImmuneUntil, Actions: done.res.Actions}}
	if len(done.users) == 1 {
		act.TargetUserID = done.users[0]
	}
	return store.RecordStaffActTx(ctx, tx, act)
}

// logOverturn writes the overturn's one log line.
func (o *overturner) logOverturn(req appeals.OverturnRequest, done overturnDone, took time.Duration) {
	counts := map[string]int{}
	for _, a := range done.res.Actions {
		counts[a.Disposition]++
	}
	_, target := overturnSubject(req)
	o.logger.Info("overturn", "overturn_id", done.res.OverturnID, "target", target, "appeal_id", req.AppealID,
		"reviewer", req.Reviewer, "role", req.Role, "user_ids", done.users, "reversed", counts[appeals.DispositionReversed],
		"cancelled", counts[appeals.DispositionCancelled], "nothing_to_undo", counts[appeals.DispositionNothingToUndo],
		"immune_until", done.res.ImmuneUntil.Format(time.RFC3339), "duration_ms", float64(took.Microseconds())/1000)
}

// overturnParams are the staff audit row's parameters of an overturn.
type overturnParams struct {
	OverturnID  int64                    `json:"overturn_id"`
	AppealID    int64                    `json:"appeal_id,omitempty"`
	ImmuneUntil time.Time                `json:"immune_until"`
	Actions     []appeals.ReversalResult `json:"actions"`
}

// validateOverturn refuses a request the staff API should not have passed
// on, naming the field.
func validateOverturn(req appeals.OverturnRequest) error {
	switch {
	case (req.ActionID == 0) == (req.DecisionID == 0):
		return &store.InputError{Field: "id", Msg: "exactly one of an action id and a decision id is required"}
	case req.ActionID < 0 || req.DecisionID < 0 || req.AppealID < 0:
		return &store.InputError{Field: "id", Msg: "ids are positive"}
	case strings.TrimSpace(req.Reviewer) == "":
		return &store.InputError{Field: "reviewer", Msg: "is required"}
	case strings.TrimSpace(req.Reason) == "":
		return &store.InputError{Field: "reason", Msg: "is required"}
	}
	return nil
}

// concerns reports whether the appeal is about one of the targets or
// their decision.
func concerns(a store.Appeal, targets []store.OverturnTarget) bool {
	for _, t := range targets {
		if (a.ActionID != 0 && a.ActionID == t.ActionID) || (a.ActionID == 0 && a.DecisionID != 0 && a.DecisionID == t.DecisionID) {
			return true
		}
	}
	return false
}

// recordedOf converts a locked action to what actions plans with.
func recordedOf(t store.OverturnTarget) (actions.Recorded, error) {
	rec := actions.Recorded{
		ActionID: t.ActionID, EventID: t.EventID, Position: t.Position, Key: t.Key, WarningID: t.StreamMessageID,
		Target:             actions.Target{UserID: t.TargetUserID, MessageID: t.MessageID, ChannelCID: t.ChannelCID},
		Outcome:            actions.Outcome(t.Outcome),
		MayHaveTakenEffect: t.MayHaveTakenEffect,
	}
	if err := json.Unmarshal(t.Params, &rec.Action); err != nil {
		return rec, fmt.Errorf("decode action %d: %w", t.ActionID, err)
	}
	if rec.Action.Type == "" {
		return rec, errors.New("decode action: no type")
	}
	return rec, nil
}

// PreviewOverturn says what overturning action actionID, or every action
// of decision decisionID, would do now, as Overturn plans it, and does
// nothing: the console shows it before the reviewer confirms. The actions
// are read in a transaction that is rolled back.
func (o *overturner) PreviewOverturn(ctx context.Context, actionID, decisionID int64) ([]appeals.ReversalResult, error) {
	var out []appeals.ReversalResult
	tx, err := o.st.Pool().Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("preview overturn: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	targets, err := store.LockOverturnTargetsTx(ctx, tx, actionID, decisionID)
	if err != nil {
		return nil, fmt.Errorf("preview overturn: %w", err)
	}
	for _, t := range targets {
		if t.ReversesActionID != 0 || t.OverturnedBy != 0 {
			continue
		}
		rec, err := recordedOf(t)
		if err != nil {
			return nil, fmt.Errorf("preview overturn: %w", err)
		}
		out = append(out, reversalResult(actions.PlanUndo(rec)))
	}
	return out, nil
}

// reversalResult says what an overturn does (or would do) about one
// action.
func reversalResult(u actions.Undo) appeals.ReversalResult {
	return appeals.ReversalResult{ActionID: u.ActionID, Type: string(u.Action.Type), Disposition: string(u.Disposition),
		ReversalActionID: u.ReversalActionID, ReversalType: string(u.Reversal), Note: u.Note}
}
