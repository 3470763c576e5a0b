package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"moderator/actions"
	"moderator/policy"
	"moderator/store"
	"moderator/webhook"
)

// The adapters below connect packages that must not import each other
// (DESIGN.md): webhook and actions declare what they need, store provides
// it, and cmd converts between their types.

// enqueueActions is the batcher's hook: the new events' actions become
// jobs in the transaction that records them. The service's own echoes are
// never evaluated, so they carry no decision. Before-send decisions are
// carried out by the hook's answer (block, rewrite), so they are audited
// but never enqueued. The actions are recorded, and the immunities that
// may suppress them read, with the batch's decisions (one round trip);
// then their daily slots are taken and their jobs inserted, and the
// outcomes of those that end at once (dry run, superseded, held,
// suppressed) go with the COMMIT.
func enqueueActions(r *actions.Runner) store.QueueHook {
	return func(_ context.Context, w *store.Writes, events []store.NewEvent) (store.Continuation, error) {
		var todo []actions.EventActions
		for _, e := range events {
			if !hasActions(e.Record) {
				continue
			}
			todo = append(todo, actions.EventActions{EventID: e.EventID, Event: e.Record.Event, Actions: e.Record.Decision.Actions})
		}
		if len(todo) == 0 {
			return nil, nil
		}
		planned := r.PlanActions(todo)
		rows, err := actionRows(planned)
		if err != nil {
			return nil, err
		}
		var ids []int64
		store.QueueInsertActions(w, rows, func(got []int64) { ids = got })
		var immune map[actions.RuleUser]actions.Immunity
		pairs, at := r.ImmunityCheck(todo)
		in := make([]store.RuleUser, len(pairs))
		for i, p := range pairs {
			in[i] = store.RuleUser{RuleID: p.RuleID, UserID: p.UserID}
		}
		store.QueueImmunities(w, in, at, func(found []store.Immunity) { immune = immunityMap(found) })
		return func(ctx context.Context, tx pgx.Tx, last *store.Writes, _ []store.NewEvent) error {
			return r.EnqueueRecordedTx(ctx, tx, todo, planned, ids, immune, func(outs []actions.OutcomeRecord) {
				store.QueueOutcomes(last, outcomeRows(outs))
			})
		}, nil
	}
}

// hasActions reports whether enqueueActions has actions to enqueue for
// rec: its decision asks for some, and it is neither the service's own
// echo nor a before-send call (whose answer is the action).
func hasActions(rec *store.EventRecord) bool {
	d := rec.Decision
	return d != nil && len(d.Actions) > 0 && !rec.Own && rec.Event != nil && rec.Event.Type != policy.EventBeforeSend
}

// actionsQuiet is the Quiet of enqueueActions: true when it has nothing to
// enqueue for recs, so that a batch of them with nothing else to write
// (most batches no rule matched) commits with its insert, in one round
// trip.
func actionsQuiet(recs []store.EventRecord) bool {
	for i := range recs {
		if hasActions(&recs[i]) {
			return false
		}
	}
	return true
}

// storeLedger adapts the store to the action runner's Ledger.
type storeLedger struct{ st *store.Store }

func (l storeLedger) InsertActionsTx(ctx context.Context, tx pgx.Tx, acts []actions.NewAction) ([]int64, error) {
	rows, err := actionRows(acts)
	if err != nil {
		return nil, err
	}
	return store.InsertActions(ctx, tx, rows)
}

// actionRows are the rows of the actions table that record acts.
func actionRows(acts []actions.NewAction) ([]store.ActionRow, error) {
	rows := make([]store.ActionRow, len(acts))
	for i, a := range acts {
		params, err := json.Marshal(a.Action)
		if err != nil {
			return nil, fmt.Errorf("encode action %s: %w", a.Key, err)
		}
		rows[i] = store.ActionRow{
			EventID:      a.EventID,
			Position:     a.Position,
			RuleID:       a.Action.RuleID,
			Type:         string(a.Action.Type),
			TargetUserID: a.Target.UserID,
			MessageID:    a.Target.MessageID,
			ChannelCID:   a.Target.ChannelCID,
			Params:       params,
			Key:          a.Key,

			StreamMessageID: a.WarningID,

			ReversesActionID: a.ReversesActionID,
			OverturnID:       a.OverturnID,
		}
	}
	return rows, nil
}

func (l storeLedger) InTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, l.st.Pool(), fn)
}

// immunityMap keys the store's immunities by rule and user; nil when
// there are none.
func immunityMap(found []store.Immunity) map[actions.RuleUser]actions.Immunity {
	if len(found) == 0 {
		return nil
	}
	out := make(map[actions.RuleUser]actions.Immunity, len(found))
	for _, im := range found {
		out[actions.RuleUser{RuleID: im.RuleID, UserID: im.UserID}] = actions.Immunity{
			OverturnID: im.OverturnID, Reviewer: im.Reviewer, Until: im.Until}
	}
	return out
}

func (l storeLedger) RecordAttemptTx(ctx context.Context, tx pgx.Tx, a actions.Attempt) (int, error) {
	return store.RecordAttemptTx(ctx, tx, attemptOf(a))
}

func (l storeLedger) StartCall(ctx context.Context, actionID int64, endpoint string) (int, error) {
	return l.st.StartCall(ctx, actionID, endpoint)
}

func (l storeLedger) SucceededAttempt(ctx context.Context, actionID int64) (int, error) {
	return l.st.SucceededAttempt(ctx, actionID)
}

func (l storeLedger) UnansweredCalls(ctx context.Context, actionID int64) ([]actions.Call, error) {
	rows, err := l.st.UnansweredCalls(ctx, actionID)
	if err != nil {
		return nil, err
	}
	out := make([]actions.Call, len(rows))
	for i, c := range rows {
		out[i] = actions.Call{N: c.Attempt, Endpoint: c.Endpoint, StartedAt: c.StartedAt}
	}
	return out, nil
}

func (l storeLedger) OverturnOfTx(ctx context.Context, tx pgx.Tx, actionID int64) (actions.Overturn, bool, error) {
	o, ok, err := store.OverturnOfTx(ctx, tx, actionID)
	return actions.Overturn{ID: o.ID, Reviewer: o.Reviewer, Reason: o.Reason, Disposition: actions.Disposition(o.Disposition)}, ok, err
}

func (l storeLedger) TakeDailySlotsTx(ctx context.Context, tx pgx.Tx, day time.Time, wants []actions.DailyWant) ([]int, error) {
	in := make([]store.DailyWant, len(wants))
	for i, w := range wants {
		in[i] = store.DailyWant{Type: string(w.Type), Want: w.Want, Limit: w.Limit}
	}
	return store.TakeDailySlots(ctx, tx, day, in)
}

func (l storeLedger) RecordOutcomesTx(ctx context.Context, tx pgx.Tx, outs []actions.OutcomeRecord) error {
	return store.RecordOutcomesTx(ctx, tx, outcomeRows(outs))
}

func outcomeRows(outs []actions.OutcomeRecord) []store.OutcomeRow {
	rows := make([]store.OutcomeRow, len(outs))
	for i, o := range outs {
		rows[i] = outcomeRow(o)
	}
	return rows
}

func (l storeLedger) Outcome(ctx context.Context, actionID int64) (actions.Outcome, error) {
	o, err := l.st.ActionOutcome(ctx, actionID)
	return actions.Outcome(o), err
}

func (l storeLedger) Restrictions(ctx context.Context, userID string) ([]actions.Restriction, error) {
	rows, err := l.st.Restrictions(ctx, userID)
	if err != nil {
		return nil, err
	}
	out := make([]actions.Restriction, len(rows))
	for i, r := range rows {
		out[i] = actions.Restriction{ActionID: r.ActionID, Type: policy.ActionType(r.Type), ChannelCID: r.ChannelCID,
			Since: r.Since, Outcome: actions.Outcome(r.Outcome), Lifted: r.Lifted}
		if r.TimeoutMinutes > 0 {
			out[i].Until = r.Since.Add(time.Duration(r.TimeoutMinutes) * time.Minute)
		}
	}
	return out, nil
}

func attemptOf(a actions.Attempt) store.AttemptRow {
	return store.AttemptRow{
		ActionID:   a.ActionID,
		Attempt:    a.N,
		Endpoint:   a.Endpoint,
		HTTPStatus: a.HTTPStatus,
		StreamCode: a.StreamCode,
		Duration:   a.Duration,
		Error:      a.Err,
		StartedAt:  a.StartedAt,
		At:         a.At,
	}
}

func (l storeLedger) RecordOutcome(ctx context.Context, o actions.OutcomeRecord) (bool, error) {
	return l.st.RecordOutcome(ctx, outcomeRow(o))
}

func outcomeRow(o actions.OutcomeRecord) store.OutcomeRow {
	return store.OutcomeRow{ActionID: o.ActionID, Outcome: string(o.Outcome), Reason: o.Reason, Request: o.Request}
}

// storeAudit adapts the store to the webhook's AuditLog.
type storeAudit struct {
	batcher  *store.Batcher
	migrated atomic.Bool
}

var errNotMigrated = errors.New("database schema not migrated yet")

func (a *storeAudit) RecordEvent(ctx context.Context, d webhook.Delivery) (webhook.Recorded, error) {
	wait, err := a.SubmitEvent(ctx, d)
	if err != nil {
		return webhook.Recorded{}, err
	}
	return wait(ctx)
}

// SubmitEvent queues d in the batcher and returns a wait for its commit
// (the spool's replayer queues its backlog in order this way).
func (a *storeAudit) SubmitEvent(ctx context.Context, d webhook.Delivery) (func(context.Context) (webhook.Recorded, error), error) {
	if !a.migrated.Load() {
		return nil, errNotMigrated
	}
	wait, err := a.batcher.Submit(ctx, eventRecord(d))
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) (webhook.Recorded, error) {
		res, err := wait(ctx)
		return webhook.Recorded{EventID: res.EventID, Duplicate: res.Duplicate, Decision: res.Decision,
			QuarantineID: res.QuarantineID, QuarantineCause: res.QuarantineCause}, err
	}, nil
}

// transient says whether a failed record may pass by itself (and so is
// worth spooling): the schema not migrated yet (the database was down at
// start), or what store.IsTransient says.
func (a *storeAudit) transient(err error) bool {
	return errors.Is(err, errNotMigrated) || store.IsTransient(err)
}

func eventRecord(d webhook.Delivery) store.EventRecord {
	return store.EventRecord{
		WebhookID:  d.WebhookID,
		BodySHA256: d.SHA256,
		Attempt:    d.Attempt,
		APIKey:     d.APIKey,
		Compressed: d.Compressed,
		Payload:    d.Body,
		Event:      d.Event,
		Own:        d.Own,
		Ignored:    d.Ignored,
		Decision:   d.Decision,
		Judge:      d.Judge,
		ReceivedAt: d.ReceivedAt,
	}
}
