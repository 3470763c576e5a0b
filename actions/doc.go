// Package actions owns the moderator's side of Stream's REST API: a client
// that authenticates as the server (an HS256 JWT with the payload
// {"server": true}), one method per moderation operation (ban, flag,
// delete, warn, and their reversals; a rule's mute is a ban with a timeout,
// since Stream's own mute only hides the user from the muter) with the
// acting user fixed to the configured bot user, and a typed error that
// tells the job layer whether a failed call should be retried, given up,
// or counted as already done.
//
// The client never retries, sleeps or logs: retries, rate limiting and the
// audit of every attempt belong to the durable job layer, which needs to see
// each attempt and its outcome. Every call returns the rate-limit window
// Stream reported so that layer can pace the next one.
//
// The job layer is the Runner. Plan merges a decision's actions (one ban
// per user, the strongest; a ban supersedes a mute in its scope; the
// longer mute wins; duplicates collapse). Before a mute or an unmute is
// sent, the worker reads the user's bans and mutes from the audit trail
// (Restriction), so that neither weakens a stronger ban in force.
// In the transaction that records the decision, every action is recorded
// under an idempotency key (PlanActions gives the rows) and
// EnqueueRecordedTx inserts a River job for each one to carry out, so the
// jobs commit with the decision or not at all; superseded, held (past a
// daily cap) and dry-run actions end there. The
// workers pace each endpoint within Stream's budget, record every attempt,
// retry transient failures with backoff, wait for the reset after a 429,
// give up at once on permanent errors, and record one outcome per action,
// which is also what keeps a job that runs twice from acting twice.
// Planning also consults the immunities that overturns grant: an action
// whose rule may not act against its target user yet is suppressed.
//
// An overturn reverses actions through the same pipeline: PlanUndo decides,
// for each action, a reversal (unban, unmute, unflag, undelete, unwarn), a
// cancellation (a pending action ends superseded and its job is cancelled)
// or nothing to undo, and OverturnTx records the reversals and their jobs in
// the overturn's transaction. A worker whose call reaches Stream after an
// overturn superseded its action reverses it itself (see recordAttempt).
//
// The audit trail itself is behind the small Ledger interface, which cmd
// implements with package store.
//
// Package actions may import policy types; it must not import store,
// webhook or cmd. Its sub-package streamtest is a contract-enforcing fake
// of Stream for tests.
package actions
