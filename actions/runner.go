package actions

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"moderator/jobs"
	"moderator/policy"
)

// Outcome is how an action ended, as the audit trail records it.
type Outcome string

// The outcomes.
const (
	Applied    Outcome = "applied"    // Stream did it (or said it was already done)
	Failed     Outcome = "failed"     // Stream refused it for good, or every retry failed
	Held       Outcome = "held"       // past the daily cap: not sent
	DryRun     Outcome = "dry_run"    // MODERATOR_DRY_RUN: recorded, not sent
	Superseded Outcome = "superseded" // another action of the decision covers it, or an overturn cancelled it
	Suppressed Outcome = "suppressed" // the rule is immune against the user after an overturn: not sent
	// NothingUndone ends a reversal that found nothing it may undo: the
	// unmute of a mute whose ban a stronger one replaced (see unmuteKeeps).
	NothingUndone Outcome = "nothing_to_undo"
)

// NewAction is a planned action about to be recorded.
type NewAction struct {
	EventID int64
	Key     string
	// WarningID is a warning's message id at Stream, chosen when the
	// action is recorded (see JobArgs.WarningID); "" for other actions.
	WarningID string
	Planned
	// ReversesActionID and OverturnID are set on a reversal: the action it
	// undoes and the overturn that asked for it.
	ReversesActionID int64
	OverturnID       int64
}

// Attempt is one call made to Stream for an action.
type Attempt struct {
	ActionID int64
	// N is the number Ledger.StartCall gave the call before it was made.
	N          int
	Endpoint   string // "POST /moderation/ban"
	HTTPStatus int    // 0: no answer
	StreamCode int
	Duration   time.Duration
	Err        string
	// StartedAt and At are when the call began and when it was answered
	// (zero At: the time it is recorded).
	StartedAt, At time.Time
}

// Call is a call to Stream recorded as started whose answer was never
// recorded.
type Call struct {
	N         int
	Endpoint  string
	StartedAt time.Time
}

// OutcomeRecord is the end of an action.
type OutcomeRecord struct {
	ActionID int64
	Outcome  Outcome
	Reason   string
	Request  json.RawMessage // for dry runs: the request that would have been sent
}

// Ledger is the audit trail the runner writes to. The Tx methods run in the
// transaction that records the events (or the overturn), so actions, their
// jobs and the outcomes decided at planning commit with the decision or not
// at all.
type Ledger interface {
	// InTx runs fn in a transaction of the audit trail's database.
	InTx(ctx context.Context, fn func(tx pgx.Tx) error) error
	// InsertActionsTx records actions and returns their ids in order; 0 for
	// an action whose key is already recorded.
	InsertActionsTx(ctx context.Context, tx pgx.Tx, acts []NewAction) ([]int64, error)
	// TakeDailySlotsTx counts, for each of wants (each type once), up to
	// Want more actions of its type on day without passing its Limit, and
	// returns how many it counted, in the order of wants.
	TakeDailySlotsTx(ctx context.Context, tx pgx.Tx, day time.Time, wants []DailyWant) ([]int, error)
	RecordOutcomesTx(ctx context.Context, tx pgx.Tx, outs []OutcomeRecord) error
	// StartCall records, before a call is made, that it is about to be,
	// and returns the number its attempt will carry. It commits on its own.
	StartCall(ctx context.Context, actionID int64, endpoint string) (int, error)
	// UnansweredCalls returns the action's started calls that have no
	// attempt recorded: their effect at Stream is unknown.
	UnansweredCalls(ctx context.Context, actionID int64) ([]Call, error)
	// SucceededAttempt returns the number of the action's latest attempt
	// that Stream answered with success, 0 when none did.
	SucceededAttempt(ctx context.Context, actionID int64) (int, error)
	// RecordAttemptTx records the answer to call a.N (once: a repeat of the
	// same number changes nothing) and returns its number. The caller's
	// transaction then holds the action's row against an overturn (the
	// foreign key's share lock) until it ends.
	RecordAttemptTx(ctx context.Context, tx pgx.Tx, a Attempt) (int, error)
	// OverturnOfTx returns the overturn that covered the action, false
	// when none did.
	OverturnOfTx(ctx context.Context, tx pgx.Tx, actionID int64) (Overturn, bool, error)

	// Restrictions returns the bans and mutes of userID that this
	// service's calls may have put in force at Stream, lifted or not.
	Restrictions(ctx context.Context, userID string) ([]Restriction, error)

	// Outcome returns the action's outcome, "" when it has none yet.
	Outcome(ctx context.Context, actionID int64) (Outcome, error)
	// RecordOutcome records the end of an action; false when one was
	// already recorded (that one stands).
	RecordOutcome(ctx context.Context, o OutcomeRecord) (bool, error)
}

// Budget is the per-endpoint call budget shared by every replica on one
// database, so that N replicas together stay within Stream's limits
// (MODERATOR_RATE_LIMITS). Endpoints are named by the action type whose
// budget they use; perSecond is the refill rate of a bucket of burst one.
type Budget interface {
	// ReserveCall takes a call and returns how long to wait before it.
	ReserveCall(ctx context.Context, endpoint string, perSecond float64) (time.Duration, error)
	// ReleaseCall gives back a reservation that will not be used.
	ReleaseCall(ctx context.Context, endpoint string) error
	// ObserveBudget lowers the budget to Stream's answer: remaining calls
	// until reset (0 after a 429).
	ObserveBudget(ctx context.Context, endpoint string, perSecond float64, remaining int, reset time.Time) error
}

// EventActions are the actions decided on one newly recorded event.
type EventActions struct {
	EventID int64
	Event   *policy.Event
	Actions []policy.Action
}

// JobArgs is the durable job that carries out one action. Everything the
// worker needs travels in it, so running it reads nothing but the outcome.
type JobArgs struct {
	ActionID int64         `json:"action_id"`
	EventID  int64         `json:"event_id"`
	Key      string        `json:"key"`
	Position int           `json:"position,omitempty"`
	Action   policy.Action `json:"action"`
	Target   Target        `json:"target"`
	// WarningID is the message id a warning posts: random, chosen when
	// the action is recorded, the same on every retry, so that Stream
	// refuses a repeat ("already exists") instead of posting it twice, and
	// unique across databases (a restored backup, a second environment on
	// the same app). "" on jobs from before it existed: warningID(Key).
	WarningID string `json:"warning_id,omitempty"`
	// Reverses is set on a reversal (Action.Type unban, unmute …): the
	// action it undoes.
	Reverses *Reverses `json:"reverses,omitempty"`
}

// JobKind is the River kind of action jobs.
const JobKind = "stream_action"

// QueueName is the River queue of action jobs.
const QueueName = "stream_actions"

// Kind implements river.JobArgs.
func (JobArgs) Kind() string { return JobKind }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (JobArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueName, MaxAttempts: DefaultMaxAttempts}
}

// Defaults of Config.
const (
	DefaultMaxAttempts = 12
	DefaultMaxWorkers  = 50
	// maxLimiterWait is how long a worker waits for its endpoint's budget
	// before snoozing the job instead of holding a worker slot.
	maxLimiterWait = 5 * time.Second
)

// DefaultDailyCaps are the actions of each type let through per UTC day.
// Past a cap, actions are held (recorded, not sent): a rule gone wrong
// must not ban a whole community before anyone looks.
func DefaultDailyCaps() map[policy.ActionType]int {
	return map[policy.ActionType]int{
		policy.ActionBan:    2000,
		policy.ActionMute:   2000,
		policy.ActionDelete: 5000,
		policy.ActionFlag:   10000,
		policy.ActionWarn:   5000,
	}
}

// Config configures a Runner.
type Config struct {
	// DryRun records each action with the request it would have sent,
	// and sends nothing (MODERATOR_DRY_RUN).
	DryRun bool
	Ledger Ledger
	Logger *slog.Logger
	// Metrics, from NewMetrics; required.
	Metrics *Metrics
	// RateLimits are per-minute budgets per action type (that is, per
	// endpoint); missing types take DefaultRateLimits.
	RateLimits map[policy.ActionType]int
	// Budget shares those budgets with the other replicas; nil paces this
	// process's calls alone.
	Budget Budget
	// DailyCaps per action type; missing types take DefaultDailyCaps; a
	// negative cap means none.
	DailyCaps map[policy.ActionType]int
	// MaxWorkers is how many actions run at once; DefaultMaxWorkers.
	MaxWorkers int
	// RetryBase is the first retry's delay, doubled per attempt up to ten
	// minutes; 1 s when zero.
	RetryBase time.Duration
	// Now is the clock for daily caps and retry times; time.Now when nil.
	Now func() time.Time
}

// Runner enqueues actions as durable River jobs in the recording
// transaction and runs them against Stream. It is the queue of actions of
// the process's jobs.Client, which runs it.
type Runner struct {
	jobs.Attachment
	maxWorkers int
	retry      retryPolicy
	client     *Client
	dryClient  *Client
	dryRun     bool
	ledger     Ledger
	logger     *slog.Logger
	metrics    *Metrics
	limiters   *limiters
	budget     Budget
	// lateBudget is lateRecordBudget; tests shorten it.
	lateBudget time.Duration
	caps       map[policy.ActionType]int
	now        func() time.Time
	botReady   atomic.Bool
}

// EnsureBotUser creates the bot user at Stream unless this runner already
// did. Stream refuses messages from an unknown sender, so warnings call it
// first; serve calls it at start.
func (r *Runner) EnsureBotUser(ctx context.Context) error {
	if r.botReady.Load() {
		return nil
	}
	if _, err := r.client.EnsureBotUser(ctx); err != nil {
		return err
	}
	r.botReady.Store(true)
	return nil
}

// BotUserID is the acting user of every action.
func (r *Runner) BotUserID() string { return r.client.BotUserID() }

// NewRunner builds a Runner calling Stream with a client built from
// clientCfg; its jobs are run by the jobs.Client it is given to. In dry
// run a second client from the same configuration, whose network only
// records, builds the exact request that would have been sent.
func NewRunner(clientCfg ClientConfig, cfg Config) (*Runner, error) {
	if cfg.Ledger == nil || cfg.Metrics == nil {
		return nil, errors.New("actions runner: Ledger and Metrics are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	client, err := NewClient(clientCfg)
	if err != nil {
		return nil, err
	}
	dryCfg := clientCfg
	dryCfg.HTTPClient = &http.Client{Transport: captureTransport{}}
	dryClient, err := NewClient(dryCfg)
	if err != nil {
		return nil, err
	}
	caps := DefaultDailyCaps()
	for t, n := range cfg.DailyCaps {
		caps[t] = n
	}
	lims, err := newLimiters(cfg.RateLimits)
	if err != nil {
		return nil, err
	}
	return &Runner{client: client, dryClient: dryClient, dryRun: cfg.DryRun, ledger: cfg.Ledger, logger: cfg.Logger,
		metrics: cfg.Metrics, limiters: lims, budget: cfg.Budget, lateBudget: lateRecordBudget, caps: caps, now: cfg.Now,
		maxWorkers: cmpOr(cfg.MaxWorkers, DefaultMaxWorkers),
		retry:      retryPolicy{base: cmpOr(cfg.RetryBase, time.Second), now: cfg.Now}}, nil
}

// Register implements jobs.Queue: the action worker, on QueueName. A live
// run lasts at most jobTimeout, then up to lateRecordBudget recording the
// answer; a job running longer was left by a process that died, and its
// rescued rerun settles the calls that run left unanswered
// (settleUnanswered).
func (r *Runner) Register(workers *river.Workers) (jobs.Spec, error) {
	if err := river.AddWorkerSafely(workers, &worker{r: r}); err != nil {
		return jobs.Spec{}, fmt.Errorf("actions runner: %w", err)
	}
	return jobs.Spec{Name: QueueName, Config: river.QueueConfig{MaxWorkers: r.maxWorkers},
		LongestRun: jobTimeout + lateRecordBudget}, nil
}

// insertJobsTx inserts action jobs in tx, or fails (and with it the
// transaction) when no jobs.Client runs the runner: the actions would
// never be sent.
func (r *Runner) insertJobsTx(ctx context.Context, tx pgx.Tx, params []river.InsertManyParams) error {
	client, err := r.Client()
	if err != nil {
		return err
	}
	_, err = client.InsertManyTx(ctx, tx, params)
	return err
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// ImmunityCheck returns the (rule, target user) pairs whose immunities
// cover the events' actions, and the time they must be in force at, for
// the caller to read with other statements, in one round trip, before it
// calls EnqueueRecordedTx.
func (r *Runner) ImmunityCheck(events []EventActions) (pairs []RuleUser, at time.Time) {
	return immunityPairs(events), r.now()
}

// PlanActions returns the events' actions as they are recorded, for the
// caller to insert (InsertActionsTx's rows, which no immunity changes)
// with other statements, in one round trip, before it calls
// EnqueueRecordedTx.
func (r *Runner) PlanActions(events []EventActions) []NewAction {
	news := planEvents(events, nil)
	for i := range news {
		if news[i].Action.Type == policy.ActionWarn {
			news[i].WarningID = newWarningID()
		}
	}
	return news
}

// EnqueueRecordedTx ends at once (superseded, suppressed, held, dry run)
// or inserts the jobs of the events' actions, which the caller recorded in
// tx: planned are PlanActions(events), and ids their ids (0 for an action
// whose key was recorded before, which is not enqueued again). So the
// actions commit with the decision that asked for them, or not at all.
//
// immune holds the immunities in force (see ImmunityCheck): an action
// whose rule an overturn made immune against its target user (until the
// immunity window ends) is suppressed: recorded, not sent, with a reason
// naming the overturn, the reviewer and the window's end. The actions are
// planned again with them, keeping each warning's message id.
//
// end, when not nil, takes the outcomes of the actions that end at once,
// for the caller to record in tx before it commits (with the COMMIT, in
// one round trip); nil records them at once.
func (r *Runner) EnqueueRecordedTx(ctx context.Context, tx pgx.Tx, events []EventActions, planned []NewAction, ids []int64,
	immune map[RuleUser]Immunity, end func([]OutcomeRecord)) error {
	news := planEvents(events, immune)
	if len(news) != len(planned) || len(ids) != len(planned) {
		return fmt.Errorf("enqueue actions: %d planned, %d recorded, %d now", len(planned), len(ids), len(news))
	}
	for i := range news {
		if news[i].Key != planned[i].Key {
			return fmt.Errorf("enqueue actions: action %d is %s, recorded as %s", i, news[i].Key, planned[i].Key)
		}
		news[i].WarningID = planned[i].WarningID
	}
	if len(news) == 0 {
		return nil
	}
	return r.disposeTx(ctx, tx, news, ids, end)
}

// disposeTx takes the daily slots of the recorded actions news (with ids)
// and ends each at once or inserts its job, in tx; end, when not nil,
// takes the outcomes (see EnqueueRecordedTx).
func (r *Runner) disposeTx(ctx context.Context, tx pgx.Tx, news []NewAction, ids []int64, end func([]OutcomeRecord)) error {
	slots, err := r.takeDailySlotsTx(ctx, tx, news, ids)
	if err != nil {
		return err
	}
	d := r.dispose(ctx, news, ids, slots)
	switch {
	case len(d.outs) == 0:
	case end != nil:
		end(d.outs)
	default:
		if err := r.ledger.RecordOutcomesTx(ctx, tx, d.outs); err != nil {
			return err
		}
	}
	if len(d.jobs) > 0 {
		if err := r.insertJobsTx(ctx, tx, d.jobs); err != nil {
			return fmt.Errorf("enqueue %d actions: %w", len(d.jobs), err)
		}
	}
	r.report(d)
	return nil
}

// immunityPairs returns the distinct (rule, target user) pairs of the
// events' actions.
func immunityPairs(events []EventActions) []RuleUser {
	var pairs []RuleUser
	seen := map[RuleUser]bool{}
	for _, e := range events {
		user := TargetOf(e.Event).UserID
		for _, a := range e.Actions {
			ru := RuleUser{RuleID: a.RuleID, UserID: user}
			if user != "" && !seen[ru] {
				seen[ru] = true
				pairs = append(pairs, ru)
			}
		}
	}
	return pairs
}

// planEvents plans each event's actions (merging, immunities); a
// warning's message id is PlanActions' to give, once.
func planEvents(events []EventActions, immune map[RuleUser]Immunity) []NewAction {
	var news []NewAction
	for _, e := range events {
		target := TargetOf(e.Event)
		check := func(a policy.Action) *Immunity {
			if im, ok := immune[RuleUser{RuleID: a.RuleID, UserID: target.UserID}]; ok {
				return &im
			}
			return nil
		}
		for _, p := range plan(target, e.Actions, check) {
			news = append(news, NewAction{EventID: e.EventID, Key: p.Key(e.EventID), Planned: p})
		}
	}
	return news
}

// takeDailySlotsTx takes, per action type, slots under the daily caps for
// the newly recorded actions that will be sent: one counter update per
// capped type per call, not per action, all in one call to the ledger,
// since the counter rows stay locked until the commit.
func (r *Runner) takeDailySlotsTx(ctx context.Context, tx pgx.Tx, news []NewAction, ids []int64) (map[policy.ActionType]int, error) {
	want := map[policy.ActionType]int{}
	if !r.dryRun {
		for i, n := range news {
			if ids[i] != 0 && !n.Superseded() && n.Immunity == nil {
				want[n.Action.Type]++
			}
		}
	}
	slots := make(map[policy.ActionType]int, len(want))
	var capped []DailyWant
	for _, typ := range slices.Sorted(maps.Keys(want)) {
		limit, ok := r.caps[typ]
		if !ok || limit < 0 {
			slots[typ] = want[typ]
			continue
		}
		capped = append(capped, DailyWant{Type: typ, Want: want[typ], Limit: limit})
	}
	if len(capped) == 0 {
		return slots, nil
	}
	granted, err := r.ledger.TakeDailySlotsTx(ctx, tx, r.now().UTC(), capped)
	if err != nil {
		return nil, err
	}
	if len(granted) != len(capped) {
		return nil, fmt.Errorf("daily slots: %d answers for %d types", len(granted), len(capped))
	}
	for i, c := range capped {
		slots[c.Type] = granted[i]
	}
	return slots, nil
}

// DailyWant is how many more actions of one type a batch wants counted
// against the type's daily cap (Limit).
type DailyWant struct {
	Type        policy.ActionType
	Want, Limit int
}

// disposal is what becomes of a batch's newly recorded actions: outcomes
// recorded at once (with their types, for the metrics) or jobs, and the
// held and suppressed ones the log names.
type disposal struct {
	outs     []OutcomeRecord
	outTypes []policy.ActionType
	jobs     []river.InsertManyParams
	held     []JobArgs
	muted    []NewAction // suppressed by an immunity
}

// dispose ends each newly recorded action at once (suppressed, superseded,
// dry run, held past its cap) or makes it a job.
func (r *Runner) dispose(ctx context.Context, news []NewAction, ids []int64, slots map[policy.ActionType]int) disposal {
	var d disposal
	end := func(typ policy.ActionType, o OutcomeRecord) {
		d.outs = append(d.outs, o)
		d.outTypes = append(d.outTypes, typ)
	}
	for i, n := range news {
		id := ids[i]
		if id == 0 {
			continue // recorded before: its job exists
		}
		args := JobArgs{ActionID: id, EventID: n.EventID, Key: n.Key, Position: n.Position, Action: n.Action, Target: n.Target,
			WarningID: n.WarningID}
		typ := n.Action.Type
		switch {
		case n.Immunity != nil:
			end(typ, OutcomeRecord{ActionID: id, Outcome: Suppressed,
				Reason: suppressedReason(RuleUser{RuleID: n.Action.RuleID, UserID: n.Target.UserID}, *n.Immunity)})
			d.muted = append(d.muted, n)
		case n.Superseded():
			end(typ, OutcomeRecord{ActionID: id, Outcome: Superseded,
				Reason: fmt.Sprintf("superseded by action %d of the decision (%s)", n.SupersededBy, news[i-n.Position+n.SupersededBy].Action)})
		case r.dryRun:
			end(typ, r.dryRunOutcome(ctx, args))
		case slots[typ] == 0:
			end(typ, OutcomeRecord{ActionID: id, Outcome: Held,
				Reason: fmt.Sprintf("daily cap of %d %s actions reached", r.caps[typ], typ)})
			d.held = append(d.held, args)
		default:
			slots[typ]--
			d.jobs = append(d.jobs, river.InsertManyParams{Args: args})
		}
	}
	return d
}

// report counts and logs what a batch's transaction decided. A rollback
// after this point (rare: the commit itself failing) overstates that
// batch.
func (r *Runner) report(d disposal) {
	for i, o := range d.outs {
		r.metrics.outcome(d.outTypes[i], o.Outcome)
	}
	for _, a := range d.held {
		r.logger.Warn("action held: daily cap reached", "action_id", a.ActionID, "event_id", a.EventID,
			"type", string(a.Action.Type), "rule_id", a.Action.RuleID, "cap", r.caps[a.Action.Type])
	}
	for _, n := range d.muted {
		r.logger.Info("action suppressed: rule immune after an overturn", "event_id", n.EventID, "key", n.Key,
			"type", string(n.Action.Type), "rule_id", n.Action.RuleID, "user_id", n.Target.UserID,
			"overturn_id", n.Immunity.OverturnID, "reviewer", n.Immunity.Reviewer, "immune_until", n.Immunity.Until.UTC().Format(time.RFC3339))
	}
}

// worker runs action jobs.
type worker struct {
	river.WorkerDefaults[JobArgs]
	r *Runner
}

// jobTimeout bounds one run: the limiter wait plus one Stream call.
const jobTimeout = maxLimiterWait + DefaultTimeout + 5*time.Second

// Timeout bounds one run (jobTimeout).
func (w *worker) Timeout(*river.Job[JobArgs]) time.Duration { return jobTimeout }

// NextRetry is the retry policy of actions (retryPolicy).
func (w *worker) NextRetry(job *river.Job[JobArgs]) time.Time { return w.r.retry.NextRetry(job.JobRow) }

func (w *worker) Work(ctx context.Context, job *river.Job[JobArgs]) error {
	return w.r.work(ctx, job.JobRow, job.Args)
}

// work carries out one action: at most one new Stream call per run, every
// call recorded before it is made and answered after, and the outcome
// recorded once.
func (r *Runner) work(ctx context.Context, job *rivertype.JobRow, a JobArgs) error {
	if job.Attempt == 1 && job.AttemptedAt != nil {
		r.metrics.startDelay.Observe(job.AttemptedAt.Sub(job.CreatedAt).Seconds())
	}
	done, err := r.ledger.Outcome(ctx, a.ActionID)
	if err != nil {
		return err
	}
	if done != "" {
		return nil // ran before and ended, or an overturn superseded it: never act twice
	}
	typ := a.Action.Type
	if r.dryRun {
		// Enqueued before a restart into dry run: honour the switch.
		return r.finish(ctx, typ, r.dryRunOutcome(ctx, a))
	}
	if err := r.afterUndoneCalls(ctx, a); err != nil {
		return err
	}
	if ended, err := r.pace(ctx, a); err != nil || ended {
		return err
	}
	if typ == policy.ActionWarn {
		if err := r.EnsureBotUser(ctx); err != nil {
			return err // retried: the warning cannot be sent before its sender exists
		}
	}
	if o, ok, err := r.keepRestrictions(ctx, a); err != nil || ok {
		if err != nil {
			return err
		}
		return r.finish(ctx, typ, o)
	}
	rerun, overturned, err := r.settleUnanswered(ctx, a)
	if err != nil || overturned {
		return err
	}
	if job.Attempt > 1 {
		if done, err := r.concludeRecorded(ctx, a); err != nil || done {
			return err
		}
	}
	callErr, overturned, err := r.call(ctx, a)
	if err != nil || overturned {
		return err // an overturn superseded it, and reversed it if it took effect
	}
	return r.conclude(ctx, job, a, callErr, rerun)
}

// callSettled is how long after it started a call to Stream has surely
// ended, answered or not: the client gives up after DefaultTimeout.
const callSettled = DefaultTimeout + 2*time.Second

// afterUndoneCalls holds a reversal back (snoozes its job) while a call of
// the action it undoes may still be on its way to Stream: an overturn that
// met a call in flight enqueues the reversal at once, and the unban must
// not reach Stream before the ban it lifts.
func (r *Runner) afterUndoneCalls(ctx context.Context, a JobArgs) error {
	if a.Reverses == nil {
		return nil
	}
	calls, err := r.ledger.UnansweredCalls(ctx, a.Reverses.ActionID)
	if err != nil {
		return err
	}
	var wait time.Duration
	for _, c := range calls {
		wait = max(wait, time.Until(c.StartedAt.Add(callSettled)))
	}
	if wait > 0 {
		return river.JobSnooze(min(wait, time.Second))
	}
	return nil
}

// pace waits for the endpoint's budget: the budget shared by every replica
// (Config.Budget) or this process's own. A long wait gives the worker slot
// back (the job is snoozed). ended reports that an overturn superseded the
// action while it waited.
func (r *Runner) pace(ctx context.Context, a JobArgs) (ended bool, err error) {
	endpoint, perSecond, ok := r.limiters.budgetOf(a.Action.Type)
	if !ok {
		return false, nil
	}
	var (
		wait   time.Duration
		cancel func()
	)
	if r.budget != nil {
		if wait, err = r.budget.ReserveCall(ctx, endpoint, perSecond); err != nil {
			return false, err
		}
		cancel = func() { _ = r.budget.ReleaseCall(context.WithoutCancel(ctx), endpoint) }
	} else {
		res := r.limiters.forType(a.Action.Type).Reserve()
		wait, cancel = res.Delay(), res.Cancel
	}
	if wait <= 0 {
		return false, nil
	}
	if wait > maxLimiterWait {
		cancel()
		return false, river.JobSnooze(wait)
	}
	t := time.NewTimer(wait)
	select {
	case <-t.C:
	case <-ctx.Done():
		t.Stop()
		cancel()
		return false, river.JobSnooze(0)
	}
	done, err := r.ledger.Outcome(ctx, a.ActionID)
	return done != "", err
}

// settleUnanswered records, as answered with nothing, the calls an earlier
// run started but never recorded the answer of: it stopped (a crash, a
// kill, a rescue of a stuck job) or the database failed after the call.
// Each may have taken effect, so each goes through the overturn check as a
// call that did. The action is then sent again: every call is idempotent at
// Stream or made so (the same ban, a delete, an unflag, an undelete, a flag
// whose repeat Stream answers "already flagged", a warning whose fixed
// message id Stream refuses twice). rerun reports that there were some.
func (r *Runner) settleUnanswered(ctx context.Context, a JobArgs) (rerun, overturned bool, err error) {
	calls, err := r.ledger.UnansweredCalls(ctx, a.ActionID)
	if err != nil || len(calls) == 0 {
		return false, false, err
	}
	for _, c := range calls {
		att := Attempt{ActionID: a.ActionID, N: c.N, Endpoint: c.Endpoint, StartedAt: c.StartedAt,
			Err: "no answer recorded: the run stopped or the database failed after the call, which may have taken effect"}
		if overturned, err = r.recordAttempt(ctx, att, a, true); err != nil || overturned {
			return true, overturned, err
		}
		r.logger.Warn("a call to Stream was never answered on record: sending the action again", "action_id", a.ActionID,
			"type", string(a.Action.Type), "attempt", c.N, "started_at", c.StartedAt.UTC().Format(time.RFC3339Nano))
	}
	return true, false, nil
}

// concludeRecorded ends an action whose earlier run got Stream's success
// and recorded it, but failed to record the outcome (the database failed in
// between): the rerun records applied instead of calling again.
func (r *Runner) concludeRecorded(ctx context.Context, a JobArgs) (bool, error) {
	n, err := r.ledger.SucceededAttempt(ctx, a.ActionID)
	if err != nil || n == 0 {
		return false, err
	}
	return true, r.finish(ctx, a.Action.Type, OutcomeRecord{ActionID: a.ActionID, Outcome: Applied,
		Reason: fmt.Sprintf("Stream answered attempt %d with success; its outcome is recorded by a rerun", n)})
}

// call makes the action's one Stream call: recorded as started before it
// is made (so that a crash or a database failure after it leaves it on
// record), and its answer recorded after, late if the database is failing.
func (r *Runner) call(ctx context.Context, a JobArgs) (callErr error, overturned bool, err error) {
	endpoint := endpointOf(a.Action.Type)
	n, err := r.ledger.StartCall(ctx, a.ActionID, endpoint)
	if err != nil {
		return nil, false, err // nothing was sent: the job is retried
	}
	var window RateLimit
	start := time.Now()
	_, _, callErr = r.execute(context.WithValue(ctx, rateLimitKey{}, &window), r.client, a)
	att := Attempt{ActionID: a.ActionID, N: n, Endpoint: endpoint, StartedAt: start, At: time.Now(), Duration: time.Since(start)}
	var ae *APIError
	switch {
	case callErr == nil:
		att.HTTPStatus = http.StatusOK
	case errors.As(callErr, &ae):
		att.HTTPStatus, att.StreamCode = ae.StatusCode, ae.Code
	}
	r.observeBudget(ctx, a.Action.Type, window, callErr)
	if callErr != nil {
		att.Err = callErr.Error()
	}
	overturned, err = r.recordAnswer(ctx, att, a, mayHaveTakenEffect(callErr))
	if err != nil {
		return callErr, false, err
	}
	r.metrics.attempt(a.Action.Type, callErr)
	return callErr, overturned, nil
}

// lateRecordBudget is how long a worker keeps the answer of a call it made
// in memory and retries recording it while the database fails. Past it,
// the job fails and its rerun finds the call unanswered on record
// (settleUnanswered). It stays well inside the rescue window (NewRunner).
const lateRecordBudget = 20 * time.Second

// recordAnswer records a call's answer, retrying with backoff while the
// database fails, with the call's real times: every call that reached
// Stream ends with its row in action_attempts.
func (r *Runner) recordAnswer(ctx context.Context, att Attempt, a JobArgs, effect bool) (overturned bool, err error) {
	deadline := time.Now().Add(r.lateBudget)
	backoff := 50 * time.Millisecond
	for tries := 1; ; tries++ {
		overturned, err = r.recordAttempt(ctx, att, a, effect)
		if err == nil {
			if tries > 1 {
				r.logger.Warn("answer of a call to Stream recorded late", "action_id", a.ActionID,
					"attempt", att.N, "tries", tries)
			}
			return overturned, nil
		}
		if time.Now().Add(backoff).After(deadline) {
			return false, fmt.Errorf("record the answer to call %d of action %d: %w", att.N, a.ActionID, err)
		}
		if tries == 1 {
			r.logger.Warn("database failed after a call to Stream: keeping the answer and retrying its record",
				"action_id", a.ActionID, "attempt", att.N, "error", err)
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, 2*time.Second)
	}
}

// lowRemaining is the number of calls left in Stream's window below which
// its answer is passed to the shared budget: with more left, the budget's
// own pacing is the tighter bound, and the update would cost a statement
// per call for nothing.
const lowRemaining = 5

// observeBudget passes Stream's rate-limit answer to the budget shared by
// the replicas: after a 429, no call until Stream's reset (or Retry-After);
// with few calls left in the window (other clients of the app use the same
// budget), no more than that many until the reset.
func (r *Runner) observeBudget(ctx context.Context, typ policy.ActionType, window RateLimit, callErr error) {
	if r.budget == nil {
		return
	}
	endpoint, perSecond, ok := r.limiters.budgetOf(typ)
	if !ok {
		return
	}
	remaining, reset := window.Remaining, window.Reset
	var ae *APIError
	if errors.As(callErr, &ae) && ae.StatusCode == http.StatusTooManyRequests {
		remaining, reset = 0, RetryAt(callErr, time.Now())
	} else if window.Limit == 0 || remaining >= lowRemaining {
		return
	}
	if reset.IsZero() {
		return
	}
	if err := r.budget.ObserveBudget(context.WithoutCancel(ctx), endpoint, perSecond, remaining, reset); err != nil {
		r.logger.Warn("could not update the shared call budget", "endpoint", endpoint, "error", err)
	}
}

// conclude records how the action ended after its call, or asks River to
// retry it.
func (r *Runner) conclude(ctx context.Context, job *rivertype.JobRow, a JobArgs, callErr error, rerun bool) error {
	typ := a.Action.Type
	switch {
	case callErr == nil:
		return r.finish(ctx, typ, OutcomeRecord{ActionID: a.ActionID, Outcome: Applied})
	case IsAlreadyDone(callErr) && a.Reverses != nil:
		return r.finish(ctx, typ, OutcomeRecord{ActionID: a.ActionID, Outcome: Applied, Reason: "already undone: " + callErr.Error()})
	case IsAlreadyDone(callErr):
		return r.finish(ctx, typ, OutcomeRecord{ActionID: a.ActionID, Outcome: Applied, Reason: "already done: " + callErr.Error()})
	case (typ == Unwarn || typ == Unflag) && IsNotFound(callErr):
		// The warning is gone, or the flag is not there: nothing left to undo.
		return r.finish(ctx, typ, OutcomeRecord{ActionID: a.ActionID, Outcome: Applied, Reason: "already undone: " + callErr.Error()})
	case typ == policy.ActionDelete && IsNotFound(callErr) && (job.Attempt > 1 || rerun):
		// A hard delete that took effect on an earlier, unanswered try.
		return r.finish(ctx, typ, OutcomeRecord{ActionID: a.ActionID, Outcome: Applied, Reason: "already gone: " + callErr.Error()})
	case IsPermanent(callErr):
		if err := r.finish(ctx, typ, OutcomeRecord{ActionID: a.ActionID, Outcome: Failed, Reason: callErr.Error()}); err != nil {
			return err
		}
		r.logger.Warn("action failed", "action_id", a.ActionID, "type", string(typ), "rule_id", a.Action.RuleID, "error", callErr)
		return river.JobCancel(callErr)
	}
	// Retryable.
	now := r.now()
	var ae *APIError
	if errors.As(callErr, &ae) && ae.StatusCode == http.StatusTooManyRequests {
		r.metrics.rateLimited.WithLabelValues(string(typ)).Inc()
	}
	if at := RetryAt(callErr, now); !at.IsZero() {
		return river.JobSnooze(max(at.Sub(now), 0))
	}
	if job.Attempt >= job.MaxAttempts {
		reason := fmt.Sprintf("gave up after %d attempts: %v", job.Attempt, callErr)
		if err := r.finish(ctx, typ, OutcomeRecord{ActionID: a.ActionID, Outcome: Failed, Reason: reason}); err != nil {
			return err
		}
		r.logger.Warn("action failed", "action_id", a.ActionID, "type", string(typ), "rule_id", a.Action.RuleID, "error", callErr)
	}
	return callErr
}

// mayHaveTakenEffect reports whether a call that ended with err may have
// changed Stream: it succeeded, Stream said it was done already, or the
// answer was lost or transient (the request may have been carried out).
// A 429 and the permanent refusals changed nothing.
func mayHaveTakenEffect(err error) bool {
	var ae *APIError
	if errors.As(err, &ae) && ae.StatusCode == http.StatusTooManyRequests {
		return false
	}
	return err == nil || IsAlreadyDone(err) || IsRetryable(err)
}

// recordAttempt records a call and closes the race with an overturn: a
// worker reads "no outcome", the overturn records "superseded" and cancels
// the job, and then the worker's call bans the user at Stream anyway. The
// attempt is recorded in a transaction that then looks for an overturn of
// the action. The overturn locks the action's row (FOR UPDATE) before it
// reads the attempts, and the attempt's insert takes the row's share lock
// (its foreign key), so either the overturn saw this attempt (and reversed
// the action itself when the call may have taken effect) or it committed
// first and is seen here: then, when the call may have taken effect, the
// worker records the reversal (keyed by the attempt) and its job in the
// same transaction, so that Stream ends undone. overturned reports that an
// overturn covers the action: its own outcome is then superseded, not
// recorded by the worker.
func (r *Runner) recordAttempt(ctx context.Context, att Attempt, a JobArgs, effect bool) (overturned bool, err error) {
	ctx = context.WithoutCancel(ctx) // the call is made: its record must not be lost to a cancellation
	err = r.ledger.InTx(ctx, func(tx pgx.Tx) error {
		n, err := r.ledger.RecordAttemptTx(ctx, tx, att)
		if err != nil {
			return err
		}
		if a.Reverses != nil {
			return nil // reversals are not overturned
		}
		ov, ok, err := r.ledger.OverturnOfTx(ctx, tx, a.ActionID)
		if err != nil || !ok {
			return err
		}
		overturned = true
		if !effect || ov.Disposition == Reversed {
			// Nothing to undo, or the overturn counted this call (made and
			// not yet answered when it ran) and enqueued the reversal.
			return nil
		}
		rev, _ := reversalOf(a.Action)
		if rev == "" {
			r.logger.Warn("overturned action took effect and cannot be undone", "action_id", a.ActionID,
				"type", string(a.Action.Type), "overturn_id", ov.ID)
			return nil
		}
		ids, err := r.insertReversalsTx(ctx, tx, ov, []reversal{{rec: recordedOf(a), typ: rev, key: lateReversalKey(ov.ID, a.ActionID, n)}})
		if err != nil {
			return err
		}
		r.logger.Warn("call reached Stream after an overturn: reversing it", "action_id", a.ActionID,
			"type", string(a.Action.Type), "rule_id", a.Action.RuleID, "overturn_id", ov.ID, "attempt", n,
			"reversal_action_id", ids[0])
		return nil
	})
	return overturned, err
}

// dryRunOutcome is the outcome of a in dry run: not sent, with the request
// it would have sent, or why that request would be refused.
func (r *Runner) dryRunOutcome(ctx context.Context, a JobArgs) OutcomeRecord {
	_, req, err := r.execute(ctx, r.dryClient, a)
	reason := "dry run: not sent"
	if err != nil {
		reason = "dry run: the request would be refused: " + err.Error()
	}
	return OutcomeRecord{ActionID: a.ActionID, Outcome: DryRun, Reason: reason, Request: req}
}

// finish records the outcome once and counts it.
func (r *Runner) finish(ctx context.Context, typ policy.ActionType, o OutcomeRecord) error {
	recorded, err := r.ledger.RecordOutcome(context.WithoutCancel(ctx), o)
	if err != nil {
		return err
	}
	if recorded {
		r.metrics.outcome(typ, o.Outcome)
	}
	return nil
}

// endpoints are the Stream endpoints each action type calls.
var endpoints = map[policy.ActionType]string{
	policy.ActionFlag:   "POST /moderation/flag",
	policy.ActionMute:   "POST /moderation/ban", // a mute silences for a while: a ban with a timeout
	policy.ActionBan:    "POST /moderation/ban",
	policy.ActionDelete: "DELETE /messages/{id}",
	policy.ActionWarn:   "POST /channels/{type}/{id}/message",
	Unban:               "DELETE /moderation/ban",
	Unmute:              "DELETE /moderation/ban",
	Unflag:              "POST /moderation/unflag",
	Undelete:            "POST /messages/{id}/undelete",
	Unwarn:              "DELETE /messages/{id}",
}

// endpointOf is the endpoint type t calls; the type itself for an unknown
// one (which execute refuses).
func endpointOf(t policy.ActionType) string {
	if e, ok := endpoints[t]; ok {
		return e
	}
	return string(t)
}

// execute makes the one Stream call an action needs and returns its
// endpoint, and, for the dry-run client, the request it would have sent.
func (r *Runner) execute(ctx context.Context, c *Client, a JobArgs) (endpoint string, request json.RawMessage, err error) {
	var captured capturedRequest
	ctx = context.WithValue(ctx, captureKey{}, &captured)
	act, t := a.Action, a.Target
	endpoint = endpointOf(act.Type)
	switch act.Type {
	case policy.ActionFlag:
		opts := FlagOptions{Reason: TruncateReason(act.Reason), Custom: map[string]any{"rule_id": act.RuleID, "action": a.Key}}
		if act.Target == "user" {
			_, err = c.FlagUser(ctx, t.UserID, opts)
		} else {
			_, err = c.FlagMessage(ctx, t.MessageID, opts)
		}
	case policy.ActionMute, policy.ActionBan:
		if act.Type == policy.ActionMute && act.TimeoutMinutes <= 0 {
			return endpoint, nil, fmt.Errorf("mute user %s: %w: a mute needs a timeout (a permanent silence is a ban)", t.UserID, ErrInvalidRequest)
		}
		req := BanRequest{TargetUserID: t.UserID, Reason: TruncateReason(act.Reason),
			Timeout: time.Duration(act.TimeoutMinutes) * time.Minute, Shadow: act.Shadow, IPBan: act.IPBan,
			DeleteMessages: DeleteMode(act.DeleteMessages)}
		if act.ChannelOnly {
			req.ChannelCID = t.ChannelCID
			if req.ChannelCID == "" {
				return endpoint, nil, fmt.Errorf("%s user %s in its channel: %w: the event names no channel", act.Type, t.UserID, ErrInvalidRequest)
			}
		}
		_, err = c.Ban(ctx, req)
	case policy.ActionDelete:
		_, err = c.DeleteMessage(ctx, t.MessageID, act.Hard)
	case policy.ActionWarn:
		typ, id, _ := splitCID(t.ChannelCID)
		m := MessageRequest{ID: a.warningID(), Text: act.Text, SkipPush: true}
		if act.InThread {
			m.ParentID = t.ParentID
		}
		_, err = c.SendMessage(ctx, typ, id, m)
	case Unban, Unmute:
		// Lifting a mute lifts its ban with a timeout, in its scope.
		req := UnbanRequest{TargetUserID: t.UserID, Reason: act.Reason}
		if act.ChannelOnly {
			req.ChannelCID = t.ChannelCID
			if req.ChannelCID == "" {
				return endpoint, nil, fmt.Errorf("%s user %s in its channel: %w: the event names no channel", act.Type, t.UserID, ErrInvalidRequest)
			}
		}
		_, err = c.Unban(ctx, req)
	case Unflag:
		if act.Target == "user" {
			_, err = c.UnflagUser(ctx, t.UserID)
		} else {
			_, err = c.UnflagMessage(ctx, t.MessageID)
		}
	case Undelete:
		_, err = c.UndeleteMessage(ctx, t.MessageID)
	case Unwarn:
		if a.Reverses == nil || a.Reverses.Key == "" {
			return endpoint, nil, fmt.Errorf("delete warning: %w: the job names no warning", ErrInvalidRequest)
		}
		id := a.Reverses.WarningID
		if id == "" {
			id = warningID(a.Reverses.Key)
		}
		_, err = c.DeleteMessage(ctx, id, true)
	default:
		return string(act.Type), nil, fmt.Errorf("action %q: %w: not an action the worker carries out", act.Type, ErrInvalidRequest)
	}
	return endpoint, captured.summary(), err
}

// warningID is the message id of a warning recorded before warning ids
// were random: derived from its idempotency key, so it repeats across
// databases. Only jobs and reversals of such warnings use it.
func warningID(key string) string { return "moderator-" + key }

// warningID is the message id the job's warning posts.
func (a JobArgs) warningID() string {
	if a.WarningID != "" {
		return a.WarningID
	}
	return warningID(a.Key)
}

// newWarningID returns a fresh message id for a warning: 128 random bits,
// so that no other database's warning can ever have it.
func newWarningID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return "moderator-" + hex.EncodeToString(b[:])
}

// captureKey carries a *capturedRequest to captureTransport.
type captureKey struct{}

type capturedRequest struct {
	Method string          `json:"method"`
	Path   string          `json:"path"`
	Query  map[string]any  `json:"query,omitempty"`
	Body   json.RawMessage `json:"body,omitempty"`
	seen   bool
}

func (c *capturedRequest) summary() json.RawMessage {
	if !c.seen {
		return nil
	}
	b, err := json.Marshal(c)
	if err != nil {
		return nil
	}
	return b
}

// captureTransport answers every request with an empty success after
// noting it (without the api_key and the token): it is the dry-run client's
// network.
type captureTransport struct{}

func (captureTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if c, ok := req.Context().Value(captureKey{}).(*capturedRequest); ok {
		c.seen = true
		c.Method, c.Path = req.Method, req.URL.Path
		q := req.URL.Query()
		q.Del("api_key")
		if len(q) > 0 {
			c.Query = map[string]any{}
			for k, v := range q {
				c.Query[k] = strings.Join(v, ",")
			}
		}
		if req.Body != nil {
			b, err := io.ReadAll(req.Body)
			if err == nil && json.Valid(b) {
				c.Body = b
			}
		}
	}
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("{}")), Request: req}, nil
}

// retryPolicy retries a transient failure after base, 2×base, 4×base … up
// to ten minutes: Stream outages are short, and River's default (attempt⁴
// seconds) waits hours by the tenth attempt.
type retryPolicy struct {
	base time.Duration
	now  func() time.Time
}

func (p retryPolicy) NextRetry(job *rivertype.JobRow) time.Time {
	d := p.base
	for i := 1; i < job.Attempt && d < 10*time.Minute; i++ {
		d *= 2
	}
	return p.now().Add(min(d, 10*time.Minute))
}
