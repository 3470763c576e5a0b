package actions

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"moderator/policy"
)

// The reversal action types. A reversal is an ordinary action (an actions
// row, a River job, attempts and an outcome) whose type names what it
// undoes; they are also the type label of the action metrics.
const (
	// Unban lifts a ban: app-wide, or in its channel for a channel-only
	// ban.
	Unban policy.ActionType = "unban"
	// Unmute lifts a mute: the ban with a timeout in the mute's scope,
	// unless a stronger ban placed since would be lifted with it.
	Unmute policy.ActionType = "unmute"
	// Unflag withdraws the bot user's flag of the message or the user.
	Unflag policy.ActionType = "unflag"
	// Undelete restores a softly deleted message. A hard delete cannot be
	// undone.
	Undelete policy.ActionType = "undelete"
	// Unwarn hard-deletes the bot's warning message. Its id is fixed by
	// the warning's key ("moderator-" + key), so the reversal needs nothing
	// Stream answered. Hard, because a soft delete would leave a "message
	// deleted" placeholder in the conversation where the wrong warning was.
	Unwarn policy.ActionType = "unwarn"
)

// reversalOf returns the reversal type that undoes a, or "" and why
// nothing can.
func reversalOf(a policy.Action) (policy.ActionType, string) {
	switch a.Type {
	case policy.ActionBan:
		return Unban, ""
	case policy.ActionMute:
		return Unmute, ""
	case policy.ActionFlag:
		return Unflag, ""
	case policy.ActionDelete:
		if a.Hard {
			return "", "a hard delete cannot be undone"
		}
		return Undelete, ""
	case policy.ActionWarn:
		return Unwarn, ""
	}
	return "", fmt.Sprintf("%s actions have no reversal", a.Type)
}

// Reverses, in a reversal's job, names the action it undoes.
type Reverses struct {
	ActionID   int64  `json:"action_id"`
	Key        string `json:"key"` // the undone action's key: an old warning's message id derives from it
	OverturnID int64  `json:"overturn_id"`
	// WarningID is the message id of the warning undone (see
	// JobArgs.WarningID); "" for a warning recorded before ids were random.
	WarningID string `json:"warning_id,omitempty"`
}

// Disposition is what an overturn did about one action (the
// action_reversals row).
type Disposition string

// The dispositions.
const (
	// Reversed: a reversal action was enqueued (or, in dry run, recorded
	// with the request it would send).
	Reversed Disposition = "reversed"
	// Cancelled: the action had not run; it never will (outcome
	// superseded, job cancelled).
	Cancelled Disposition = "cancelled"
	// NothingToUndo: it failed, was held, superseded, suppressed or only
	// dry-run, or cannot be undone (a hard delete).
	NothingToUndo Disposition = "nothing_to_undo"
)

// Recorded is an automatic action as the audit trail has it: what an
// overturn decides about.
type Recorded struct {
	ActionID int64
	EventID  int64
	Position int
	Key      string
	// WarningID is a warning's message id at Stream ("" for other actions).
	WarningID string
	Action    policy.Action
	Target    Target
	// Outcome is how it ended; "" while it is pending.
	Outcome Outcome
	// MayHaveTakenEffect reports a call to Stream whose answer does not
	// rule its effect out (no answer, a timeout, a 5xx): such an action is
	// reversed even though it never recorded "applied".
	MayHaveTakenEffect bool
}

// Overturn is the human decision reversals carry out.
type Overturn struct {
	ID       int64
	Reviewer string
	Reason   string
	// Disposition is what the overturn did about the action a worker asks
	// about (Ledger.OverturnOfTx); unset elsewhere.
	Disposition Disposition
}

// Undo is what an overturn does about one action.
type Undo struct {
	Recorded
	Disposition Disposition
	// Cancel: the action has no outcome yet; it is recorded superseded and
	// its job cancelled (with Disposition Cancelled, or Reversed when an
	// earlier call may already have taken effect).
	Cancel bool
	// Reversal is the reversal's type when Disposition is Reversed.
	Reversal policy.ActionType
	// ReversalActionID is the reversal action, set by OverturnTx.
	ReversalActionID int64
	// Note says why there is nothing to undo.
	Note string
}

// PlanUndo decides what overturning rec takes: an applied action is
// reversed; a pending one is cancelled (and also reversed when one of its
// calls may have reached Stream); a failed one whose calls may have taken
// effect is reversed; anything else has nothing to undo.
func PlanUndo(rec Recorded) Undo {
	u := Undo{Recorded: rec, Disposition: NothingToUndo}
	rev, why := reversalOf(rec.Action)
	var effect bool
	switch rec.Outcome {
	case Applied:
		effect = true
	case "":
		u.Cancel, u.Disposition = true, Cancelled
		effect = rec.MayHaveTakenEffect
	case Failed:
		effect = rec.MayHaveTakenEffect
		u.Note = "it failed: Stream refused it"
	default:
		u.Note = fmt.Sprintf("it ended %s: nothing was sent to Stream", rec.Outcome)
	}
	switch {
	case effect && rev != "":
		u.Disposition, u.Reversal, u.Note = Reversed, rev, ""
	case effect:
		u.Note = why
	}
	return u
}

// reversalKey is the idempotency key of the reversal of actionID by an
// overturn. The worker's late reversal (a call that reached Stream after
// the overturn) adds the attempt it reverses.
func reversalKey(overturnID, actionID int64) string {
	return fmt.Sprintf("o%d-a%d", overturnID, actionID)
}

// overturnedReason is the reason a reversal gives Stream: opaque, so that
// a reviewer's identity and words stay in the audit trail and never reach
// Stream's dashboard or a webhook consumer.
func overturnedReason(overturnID int64) string {
	return fmt.Sprintf("overturned (moderator overturn %d)", overturnID)
}

// reversalAction is the action a reversal of rec carries out.
func reversalAction(rec Recorded, typ policy.ActionType, ov Overturn) policy.Action {
	return policy.Action{
		Type:        typ,
		RuleID:      rec.Action.RuleID,
		Target:      rec.Action.Target,
		ChannelOnly: rec.Action.ChannelOnly,
		Reason:      overturnedReason(ov.ID),
	}
}

// OverturnTx carries out an overturn's undos in tx, the overturn's
// transaction, whose caller holds the actions' rows locked (FOR UPDATE):
// pending actions are recorded superseded, naming the overturn and the
// reviewer, and their jobs cancelled; reversals are recorded and their jobs
// inserted (in dry run, recorded with the request they would send). It
// returns undos with each ReversalActionID set. Once tx commits, the caller
// passes them to CountOverturn.
func (r *Runner) OverturnTx(ctx context.Context, tx pgx.Tx, ov Overturn, undos []Undo) ([]Undo, error) {
	var (
		outs      []OutcomeRecord
		cancelIDs []int64
		revs      []reversal
		revIdx    []int
	)
	for i, u := range undos {
		if u.Cancel {
			outs = append(outs, OutcomeRecord{ActionID: u.ActionID, Outcome: Superseded,
				Reason: fmt.Sprintf("superseded by overturn %d by %s: %s", ov.ID, ov.Reviewer, ov.Reason)})
			cancelIDs = append(cancelIDs, u.ActionID)
		}
		if u.Disposition == Reversed {
			revs = append(revs, reversal{rec: u.Recorded, typ: u.Reversal, key: reversalKey(ov.ID, u.ActionID)})
			revIdx = append(revIdx, i)
		}
	}
	if len(outs) > 0 {
		if err := r.ledger.RecordOutcomesTx(ctx, tx, outs); err != nil {
			return nil, err
		}
		if err := r.cancelJobsTx(ctx, tx, cancelIDs); err != nil {
			return nil, err
		}
	}
	ids, err := r.insertReversalsTx(ctx, tx, ov, revs)
	if err != nil {
		return nil, err
	}
	out := append([]Undo(nil), undos...)
	for j, i := range revIdx {
		if ids[j] == 0 {
			return nil, fmt.Errorf("overturn %d: the reversal of action %d is recorded already", ov.ID, out[i].ActionID)
		}
		out[i].ReversalActionID = ids[j]
	}
	return out, nil
}

// CountOverturn counts the outcomes a committed overturn recorded: the
// pending actions it superseded and, in dry run, its reversals. (An
// overturn's transaction may still fail after OverturnTx, on the appeal's
// decision say, so counting waits for the commit.)
func (r *Runner) CountOverturn(undos []Undo) {
	for _, u := range undos {
		if u.Cancel {
			r.metrics.outcome(u.Action.Type, Superseded)
		}
		if r.dryRun && u.ReversalActionID != 0 {
			r.metrics.outcome(u.Reversal, DryRun)
		}
	}
}

// reversal is one reversal action to record.
type reversal struct {
	rec Recorded
	typ policy.ActionType
	key string
}

// insertReversalsTx records reversal actions and inserts their jobs, or in
// dry run records them with the request they would send (CountOverturn
// counts those). It returns their ids in order, 0 for one whose key was
// recorded before (and whose job exists).
func (r *Runner) insertReversalsTx(ctx context.Context, tx pgx.Tx, ov Overturn, revs []reversal) ([]int64, error) {
	if len(revs) == 0 {
		return nil, nil
	}
	news := make([]NewAction, len(revs))
	args := make([]JobArgs, len(revs))
	for i, v := range revs {
		act := reversalAction(v.rec, v.typ, ov)
		news[i] = NewAction{EventID: v.rec.EventID, Key: v.key, ReversesActionID: v.rec.ActionID, OverturnID: ov.ID,
			Planned: Planned{Position: v.rec.Position, Action: act, Target: v.rec.Target, SupersededBy: -1}}
		args[i] = JobArgs{EventID: v.rec.EventID, Key: v.key, Position: v.rec.Position, Action: act, Target: v.rec.Target,
			Reverses: &Reverses{ActionID: v.rec.ActionID, Key: v.rec.Key, OverturnID: ov.ID, WarningID: v.rec.WarningID}}
	}
	ids, err := r.ledger.InsertActionsTx(ctx, tx, news)
	if err != nil {
		return nil, err
	}
	var (
		jobs []river.InsertManyParams
		outs []OutcomeRecord
	)
	for i, id := range ids {
		if id == 0 {
			continue
		}
		args[i].ActionID = id
		if r.dryRun {
			outs = append(outs, r.dryRunOutcome(ctx, args[i]))
			continue
		}
		jobs = append(jobs, river.InsertManyParams{Args: args[i]})
	}
	if len(outs) > 0 {
		if err := r.ledger.RecordOutcomesTx(ctx, tx, outs); err != nil {
			return nil, err
		}
	}
	if len(jobs) > 0 {
		if err := r.insertJobsTx(ctx, tx, jobs); err != nil {
			return nil, fmt.Errorf("enqueue %d reversals: %w", len(jobs), err)
		}
	}
	return ids, nil
}

// cancelJobsTx cancels the jobs of actions that an overturn supersedes. A
// job that is running is cancelled when it returns (River cancels its
// context); the worker then finds the outcome superseded and, if its call
// may have reached Stream anyway, reverses it (see recordAttempt).
func (r *Runner) cancelJobsTx(ctx context.Context, tx pgx.Tx, actionIDs []int64) error {
	client, err := r.Client()
	if err != nil {
		return err
	}
	// River's table has a GIN index on args: one containment probe per
	// action.
	rows, err := tx.Query(ctx, `
		SELECT j.id FROM unnest($1::bigint[]) AS x(action_id)
		JOIN LATERAL (SELECT id FROM river_job
			WHERE kind = $2 AND args @> jsonb_build_object('action_id', x.action_id)
			AND state NOT IN ('completed', 'cancelled', 'discarded')) j ON true`, actionIDs, JobKind)
	if err != nil {
		return fmt.Errorf("find the jobs of actions %v: %w", actionIDs, err)
	}
	jobIDs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return fmt.Errorf("find the jobs of actions %v: %w", actionIDs, err)
	}
	for _, id := range jobIDs {
		if _, err := client.JobCancelTx(ctx, tx, id); err != nil {
			return fmt.Errorf("cancel job %d: %w", id, err)
		}
	}
	return nil
}

// RuleUser is a rule and a user it acts against: the key of an immunity.
type RuleUser struct {
	RuleID string
	UserID string
}

// Immunity keeps a rule off a user after an overturn, until Until.
type Immunity struct {
	OverturnID int64
	Reviewer   string
	Until      time.Time
}

// suppressedReason is the outcome reason of an action an immunity stops.
func suppressedReason(ru RuleUser, im Immunity) string {
	return fmt.Sprintf("rule %s may not act against user %s until %s: overturn %d by %s",
		ru.RuleID, ru.UserID, im.Until.UTC().Format(time.RFC3339), im.OverturnID, im.Reviewer)
}

// lateReversalKey is the key of the reversal the worker records when call
// attempt n of actionID reached Stream after overturn overturnID had
// superseded it.
func lateReversalKey(overturnID, actionID int64, attempt int) string {
	return reversalKey(overturnID, actionID) + fmt.Sprintf("-t%d", attempt)
}

// recordedOf rebuilds what the audit trail has of a job's action.
func recordedOf(a JobArgs) Recorded {
	return Recorded{ActionID: a.ActionID, EventID: a.EventID, Position: a.Position, Key: a.Key, WarningID: a.WarningID,
		Action: a.Action, Target: a.Target}
}
