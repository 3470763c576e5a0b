package actions

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"moderator/actions/streamtest"
	"moderator/policy"
)

// memLedger is an in-memory Ledger for the worker's tests.
type memLedger struct {
	mu       sync.Mutex
	outcomes map[int64]OutcomeRecord
	attempts []Attempt
	// supersedeAt, when not 0, makes that read of an outcome and later ones
	// answer superseded, as if an overturn had committed in between.
	supersedeAt int
	reads       int
	// restrictions are the user's bans and mutes, whoever asks.
	restrictions []Restriction
	// calls are the calls recorded as started; failRecords makes that many
	// records of an answer fail, as a database failing after a call would.
	calls       []Call
	failRecords int
}

func (l *memLedger) StartCall(_ context.Context, _ int64, endpoint string) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.calls) + 1
	l.calls = append(l.calls, Call{N: n, Endpoint: endpoint, StartedAt: time.Now()})
	return n, nil
}

func (l *memLedger) SucceededAttempt(context.Context, int64) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.attempts) - 1; i >= 0; i-- {
		if a := l.attempts[i]; a.HTTPStatus >= 200 && a.HTTPStatus < 300 {
			if a.N == 0 {
				return i + 1, nil
			}
			return a.N, nil
		}
	}
	return 0, nil
}

func (l *memLedger) UnansweredCalls(context.Context, int64) ([]Call, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Call
	for _, c := range l.calls {
		answered := false
		for _, a := range l.attempts {
			answered = answered || a.N == c.N
		}
		if !answered {
			out = append(out, c)
		}
	}
	return out, nil
}

func (l *memLedger) Restrictions(context.Context, string) ([]Restriction, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Restriction(nil), l.restrictions...), nil
}

func (l *memLedger) InsertActionsTx(context.Context, pgx.Tx, []NewAction) ([]int64, error) {
	return nil, errors.New("not in memory")
}

func (l *memLedger) TakeDailySlotsTx(context.Context, pgx.Tx, time.Time, []DailyWant) ([]int, error) {
	return nil, errors.New("not in memory")
}

func (l *memLedger) RecordOutcomesTx(context.Context, pgx.Tx, []OutcomeRecord) error {
	return errors.New("not in memory")
}

func (l *memLedger) Outcome(_ context.Context, id int64) (Outcome, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reads++
	if l.supersedeAt > 0 && l.reads >= l.supersedeAt {
		return Superseded, nil
	}
	return l.outcomes[id].Outcome, nil
}

// InTx runs fn without a transaction: the in-memory methods ignore it.
func (l *memLedger) InTx(_ context.Context, fn func(pgx.Tx) error) error { return fn(nil) }

func (l *memLedger) RecordAttemptTx(_ context.Context, _ pgx.Tx, a Attempt) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failRecords > 0 {
		l.failRecords--
		return 0, errors.New("connection refused")
	}
	for _, b := range l.attempts {
		if a.N != 0 && b.N == a.N {
			return a.N, nil // recorded once
		}
	}
	l.attempts = append(l.attempts, a)
	return len(l.attempts), nil
}

// OverturnOfTx finds no overturn: the race with one is tested on a real
// database (cmd/moderator).
func (l *memLedger) OverturnOfTx(context.Context, pgx.Tx, int64) (Overturn, bool, error) {
	return Overturn{}, false, nil
}

func (l *memLedger) RecordOutcome(_ context.Context, o OutcomeRecord) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.outcomes[o.ActionID]; ok {
		return false, nil
	}
	l.outcomes[o.ActionID] = o
	return true, nil
}

// newTestRunner is a Runner in no jobs client (work does not touch River)
// calling fake.
func newTestRunner(t *testing.T, fake *streamtest.Server, dryRun bool) (*Runner, *memLedger) {
	t.Helper()
	ledger := &memLedger{outcomes: map[int64]OutcomeRecord{}}
	r, err := NewRunner(ClientConfig{BaseURL: fake.URL, APIKey: fake.Key, APISecret: fake.Secret, BotUserID: "bot"},
		Config{DryRun: dryRun, Ledger: ledger, Metrics: NewMetrics(prometheus.NewRegistry(), nil)})
	if err != nil {
		t.Fatal(err)
	}
	return r, ledger
}

func TestWorkClassifiesAnswers(t *testing.T) {
	t.Parallel()
	flag := JobArgs{ActionID: 1, Key: "e1-a0", Action: policy.Action{Type: policy.ActionFlag, RuleID: "r"},
		Target: Target{UserID: "u", MessageID: "m"}}
	del := JobArgs{ActionID: 1, Key: "e1-a0", Action: policy.Action{Type: policy.ActionDelete, Hard: true},
		Target: Target{MessageID: "m"}}
	tests := []struct {
		name        string
		args        JobArgs
		script      []streamtest.Answer
		route       string
		attempt     int
		wantOutcome Outcome
		wantErr     func(error) bool
		wantCalls   int
	}{
		{"success", flag, nil, streamtest.RouteFlag, 1, Applied, isNil, 1},
		{"already flagged", flag, []streamtest.Answer{streamtest.Error(400, 4, "message m was already flagged")},
			streamtest.RouteFlag, 1, Applied, isNil, 1},
		{"permanent", flag, []streamtest.Answer{streamtest.Error(403, 17, "not allowed")},
			streamtest.RouteFlag, 1, Failed, isCancel, 1},
		{"unrecoverable 500", flag, []streamtest.Answer{streamtest.Status(500).Unrecoverable()},
			streamtest.RouteFlag, 1, Failed, isCancel, 1},
		{"transient, attempts left", flag, []streamtest.Answer{streamtest.Status(502)},
			streamtest.RouteFlag, 1, "", isPlainError, 1},
		{"transient, last attempt", flag, []streamtest.Answer{streamtest.Status(502)},
			streamtest.RouteFlag, DefaultMaxAttempts, Failed, isPlainError, 1},
		{"rate limited", flag, []streamtest.Answer{streamtest.RateLimited(time.Now().Add(time.Minute))},
			streamtest.RouteFlag, 1, "", isSnooze, 1},
		{"deleted message gone on a retry", del, []streamtest.Answer{streamtest.Error(404, 16, "message m does not exist")},
			streamtest.RouteDeleteMessage, 2, Applied, isNil, 1},
		{"deleted message gone on the first try", del, []streamtest.Answer{streamtest.Error(404, 16, "message m does not exist")},
			streamtest.RouteDeleteMessage, 1, Failed, isCancel, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := streamtest.New(t)
			fake.Script(tt.route, tt.script...)
			r, ledger := newTestRunner(t, fake, false)
			err := r.work(context.Background(), &rivertype.JobRow{Attempt: tt.attempt, MaxAttempts: DefaultMaxAttempts}, tt.args)
			if !tt.wantErr(err) {
				t.Fatalf("got error %v (%T), want another kind", err, err)
			}
			if got := ledger.outcomes[1].Outcome; got != tt.wantOutcome {
				t.Fatalf("got outcome %q, want %q", got, tt.wantOutcome)
			}
			if got := len(fake.Calls(tt.route)); got != tt.wantCalls {
				t.Fatalf("got %d calls, want %d", got, tt.wantCalls)
			}
			if len(ledger.attempts) != 1 || ledger.attempts[0].Endpoint != tt.route {
				t.Fatalf("got attempts %+v, want one on %s", ledger.attempts, tt.route)
			}
		})
	}
}

func TestWorkNeverActsTwice(t *testing.T) {
	t.Parallel()
	fake := streamtest.New(t)
	r, ledger := newTestRunner(t, fake, false)
	ledger.outcomes[7] = OutcomeRecord{ActionID: 7, Outcome: Applied}
	args := JobArgs{ActionID: 7, Action: policy.Action{Type: policy.ActionBan}, Target: Target{UserID: "u"}}
	if err := r.work(context.Background(), &rivertype.JobRow{Attempt: 2, MaxAttempts: 5}, args); err != nil {
		t.Fatalf("got %v, want nil", err)
	}
	if n := len(fake.Requests()); n != 0 {
		t.Fatalf("got %d requests for an action that had ended, want 0", n)
	}
}

func TestWorkDryRunSendsNothing(t *testing.T) {
	t.Parallel()
	fake := streamtest.New(t)
	r, ledger := newTestRunner(t, fake, true)
	args := JobArgs{ActionID: 3, Action: policy.Action{Type: policy.ActionMute, TimeoutMinutes: 30}, Target: Target{UserID: "u"}}
	if err := r.work(context.Background(), &rivertype.JobRow{Attempt: 1, MaxAttempts: 5}, args); err != nil {
		t.Fatal(err)
	}
	o := ledger.outcomes[3]
	if o.Outcome != DryRun || string(o.Request) != `{"method":"POST","path":"/moderation/ban","body":{"target_user_id":"u","banned_by_id":"bot","timeout":30}}` {
		t.Fatalf("got %+v (%s), want dry_run with the mute's ban request", o, o.Request)
	}
	if n := len(fake.Requests()); n != 0 {
		t.Fatalf("got %d requests in dry run, want 0", n)
	}
}

func isNil(err error) bool { return err == nil }

func isCancel(err error) bool {
	var c *rivertype.JobCancelError
	return errors.As(err, &c)
}

func isSnooze(err error) bool {
	var s *river.JobSnoozeError
	return errors.As(err, &s) && s.Duration > 0
}

func isPlainError(err error) bool { return err != nil && !isCancel(err) && !isSnooze(err) }

// TestPlanImmune: an immune action is suppressed and takes no part in
// merging, so an immune rule's ban does not supersede another rule's mute.
func TestPlanImmune(t *testing.T) {
	t.Parallel()
	im := &Immunity{OverturnID: 3, Reviewer: "alice", Until: time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)}
	acts := []policy.Action{
		{Type: policy.ActionBan, RuleID: "immune"},
		{Type: policy.ActionMute, RuleID: "other"},
		{Type: policy.ActionMute, RuleID: "other", TimeoutMinutes: 5},
	}
	got := plan(Target{UserID: "u"}, acts, func(a policy.Action) *Immunity {
		if a.RuleID == "immune" {
			return im
		}
		return nil
	})
	if got[0].Immunity != im || got[0].Superseded() {
		t.Fatalf("immune ban = %+v, want suppressed, not superseded", got[0])
	}
	if got[1].Immunity != nil || got[1].Superseded() || got[2].SupersededBy != 1 {
		t.Fatalf("mutes = %+v, %+v; want the permanent one to run and the timed one merged into it", got[1], got[2])
	}
}

// TestWorkReversals: each reversal makes its one call with Stream's
// contract, and "already undone" answers count as applied.
func TestWorkReversals(t *testing.T) {
	t.Parallel()
	target := Target{UserID: "u", MessageID: "m", ChannelCID: "messaging:c"}
	rev := &Reverses{ActionID: 1, Key: "e4-a2", OverturnID: 9}
	job := func(typ policy.ActionType, mod func(*policy.Action)) JobArgs {
		a := policy.Action{Type: typ, RuleID: "r", Reason: "overturned (moderator overturn 9)"}
		if mod != nil {
			mod(&a)
		}
		return JobArgs{ActionID: 2, Key: "o9-a1", Action: a, Target: target, Reverses: rev}
	}
	tests := []struct {
		name        string
		args        JobArgs
		route       string
		script      []streamtest.Answer
		wantOutcome Outcome
		check       func(t *testing.T, r streamtest.Request)
	}{
		{"unban app-wide", job(Unban, nil), streamtest.RouteUnban, nil, Applied, func(t *testing.T, r streamtest.Request) {
			if q := r.Query; q.Get("target_user_id") != "u" || q.Get("created_by") != "bot" || q.Has("channel_cid") || q.Get("reason") != "overturned (moderator overturn 9)" {
				t.Fatalf("query = %v", q)
			}
		}},
		{"unban in the channel", job(Unban, func(a *policy.Action) { a.ChannelOnly = true }), streamtest.RouteUnban, nil, Applied, func(t *testing.T, r streamtest.Request) {
			if q := r.Query; q.Get("channel_cid") != "messaging:c" || q.Has("type") || q.Has("id") {
				t.Fatalf("query = %v, want the channel as channel_cid alone", q)
			}
		}},
		{"unmute lifts the mute's ban", job(Unmute, nil), streamtest.RouteUnban, nil, Applied, func(t *testing.T, r streamtest.Request) {
			if q := r.Query; q.Get("target_user_id") != "u" || q.Get("created_by") != "bot" || q.Has("channel_cid") || q.Get("reason") != "overturned (moderator overturn 9)" {
				t.Fatalf("query = %v", q)
			}
		}},
		{"unmute in the channel", job(Unmute, func(a *policy.Action) { a.ChannelOnly = true }), streamtest.RouteUnban, nil, Applied, func(t *testing.T, r streamtest.Request) {
			if q := r.Query; q.Get("channel_cid") != "messaging:c" || q.Has("type") || q.Has("id") {
				t.Fatalf("query = %v, want the channel as channel_cid alone", q)
			}
		}},
		{"unflag message", job(Unflag, nil), streamtest.RouteUnflag, nil, Applied, func(t *testing.T, r streamtest.Request) {
			if diff := cmp.Diff(map[string]any{"target_message_id": "m", "user_id": "bot"}, r.Body); diff != "" {
				t.Fatalf("body (-want +got):\n%s", diff)
			}
		}},
		{"unflag user", job(Unflag, func(a *policy.Action) { a.Target = "user" }), streamtest.RouteUnflag, nil, Applied, func(t *testing.T, r streamtest.Request) {
			if diff := cmp.Diff(map[string]any{"target_user_id": "u", "user_id": "bot"}, r.Body); diff != "" {
				t.Fatalf("body (-want +got):\n%s", diff)
			}
		}},
		{"unflag of a flag already gone", job(Unflag, nil), streamtest.RouteUnflag,
			[]streamtest.Answer{streamtest.Error(404, 16, "flag does not exist")}, Applied, nil},
		{"undelete", job(Undelete, nil), streamtest.RouteUndeleteMessage, nil, Applied, func(t *testing.T, r streamtest.Request) {
			if r.Path != "/messages/m/undelete" || r.Body["undeleted_by"] != "bot" {
				t.Fatalf("request = %s %v", r.Path, r.Body)
			}
		}},
		{"undelete of a message gone for good", job(Undelete, nil), streamtest.RouteUndeleteMessage,
			[]streamtest.Answer{streamtest.Error(404, 16, "message m does not exist")}, Failed, nil},
		{"unwarn hard-deletes the warning", job(Unwarn, nil), streamtest.RouteDeleteMessage, nil, Applied, func(t *testing.T, r streamtest.Request) {
			if r.Path != "/messages/moderator-e4-a2" || r.Query.Get("hard") != "true" {
				t.Fatalf("request = %s %v, want a hard delete of the warning", r.Path, r.Query)
			}
		}},
		{"unwarn of a warning already gone", job(Unwarn, nil), streamtest.RouteDeleteMessage,
			[]streamtest.Answer{streamtest.Error(404, 16, "message does not exist")}, Applied, nil},
		{"already undone", job(Unban, nil), streamtest.RouteUnban,
			[]streamtest.Answer{streamtest.Error(400, 4, "user u is already unbanned")}, Applied, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := streamtest.New(t)
			fake.Script(tt.route, tt.script...)
			r, ledger := newTestRunner(t, fake, false)
			// The reversed action's call reached Stream's ban endpoint.
			ledger.restrictions = []Restriction{{ActionID: rev.ActionID, Type: policy.ActionMute, Since: time.Now().Add(-time.Minute), Outcome: Applied, Lifted: true}}
			err := r.work(context.Background(), &rivertype.JobRow{Attempt: 1, MaxAttempts: DefaultMaxAttempts}, tt.args)
			if tt.wantOutcome == Failed && !isCancel(err) || tt.wantOutcome == Applied && err != nil {
				t.Fatalf("got error %v", err)
			}
			if got := ledger.outcomes[2].Outcome; got != tt.wantOutcome {
				t.Fatalf("got outcome %q (%s), want %q", got, ledger.outcomes[2].Reason, tt.wantOutcome)
			}
			calls := fake.Calls(tt.route)
			if len(calls) != 1 || len(fake.Requests()) != 1 {
				t.Fatalf("got %d calls on %s and %d in all, want 1", len(calls), tt.route, len(fake.Requests()))
			}
			if len(ledger.attempts) != 1 || ledger.attempts[0].Endpoint != tt.route {
				t.Fatalf("attempts = %+v, want one on %s", ledger.attempts, tt.route)
			}
			if tt.check != nil {
				tt.check(t, calls[0])
			}
		})
	}
}

// TestWorkReversalDryRun: in dry run a reversal records the request it
// would send.
func TestWorkReversalDryRun(t *testing.T) {
	t.Parallel()
	fake := streamtest.New(t)
	r, ledger := newTestRunner(t, fake, true)
	args := JobArgs{ActionID: 5, Key: "o1-a4", Action: policy.Action{Type: Unmute, RuleID: "r"}, Target: Target{UserID: "u"},
		Reverses: &Reverses{ActionID: 4, Key: "e1-a0", OverturnID: 1}}
	if err := r.work(context.Background(), &rivertype.JobRow{Attempt: 1, MaxAttempts: 5}, args); err != nil {
		t.Fatal(err)
	}
	o := ledger.outcomes[5]
	if o.Outcome != DryRun || string(o.Request) != `{"method":"DELETE","path":"/moderation/ban","query":{"created_by":"bot","target_user_id":"u"}}` {
		t.Fatalf("got %+v (%s), want dry_run with the unmute request", o, o.Request)
	}
	if n := len(fake.Requests()); n != 0 {
		t.Fatalf("got %d requests in dry run, want 0", n)
	}
}

// TestReversalLimiters: reversals are paced per endpoint; a warning's
// reversal shares delete's budget.
func TestReversalLimiters(t *testing.T) {
	t.Parallel()
	l, err := newLimiters(map[policy.ActionType]int{Unban: 60})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := l.forType(Unban).Limit(), perSecond(60); got != want {
		t.Fatalf("unban limit = %v, want %v", got, want)
	}
	if got, want := l.forType(Unflag).Limit(), perSecond(300); got != want {
		t.Fatalf("unflag limit = %v, want %v (Stream's default)", got, want)
	}
	if l.forType(Unwarn) != l.forType(policy.ActionDelete) {
		t.Fatal("unwarn does not share delete's limiter")
	}
	if l.forType(policy.ActionMute) != l.forType(policy.ActionBan) || l.forType(Unmute) != l.forType(Unban) {
		t.Fatal("a mute and an unmute do not share the ban endpoint's limiters")
	}
	l, err = newLimiters(map[policy.ActionType]int{policy.ActionMute: 30, Unban: 100, Unmute: 200})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := l.forType(policy.ActionBan).Limit(), perSecond(30); got != want {
		t.Fatalf("ban limit with mute=30 = %v, want %v (the smaller of the two)", got, want)
	}
	if got, want := l.forType(Unmute).Limit(), perSecond(100); got != want {
		t.Fatalf("unmute limit = %v, want %v (unban's, the smaller)", got, want)
	}
}

// TestWorkRechecksAfterWaiting: an action that waited for its endpoint's
// budget reads its outcome again before calling Stream, so an overturn
// that superseded it meanwhile keeps it from being sent.
func TestWorkRechecksAfterWaiting(t *testing.T) {
	t.Parallel()
	fake := streamtest.New(t)
	r, ledger := newTestRunner(t, fake, false)
	ledger.supersedeAt = 2                         // the first read finds it pending, the one after the wait superseded
	r.limiters.forType(policy.ActionBan).Reserve() // the budget's one token: the job waits for the next
	args := JobArgs{ActionID: 8, Key: "e1-a0", Action: policy.Action{Type: policy.ActionBan, RuleID: "r"}, Target: Target{UserID: "u"}}
	if err := r.work(context.Background(), &rivertype.JobRow{Attempt: 1, MaxAttempts: 5}, args); err != nil {
		t.Fatalf("got %v, want nil", err)
	}
	if ledger.reads != 2 {
		t.Fatalf("read the outcome %d times, want 2 (before and after the wait)", ledger.reads)
	}
	if n := len(fake.Requests()); n != 0 || len(ledger.attempts) != 0 {
		t.Fatalf("got %d requests and %d attempts for a superseded action, want none", n, len(ledger.attempts))
	}
}

// TestEnqueueRecordedRefusesOtherActions: the actions a batch enqueues
// must be the ones it recorded, each with an id; recorded with other keys
// (other events) or with ids missing, nothing is enqueued or ended and
// the transaction fails. With immunities the plan keeps its keys and each
// warning's message id.
func TestEnqueueRecordedRefusesOtherActions(t *testing.T) {
	t.Parallel()
	r, _ := newTestRunner(t, streamtest.New(t), true)
	ev := func(id string) *policy.Event {
		return &policy.Event{Type: "message.new", Message: &policy.Message{ID: id, User: &policy.User{ID: "u"}}}
	}
	acts := []policy.Action{{Type: policy.ActionWarn, RuleID: "w"}, {Type: policy.ActionFlag, RuleID: "f"}}
	events := []EventActions{{EventID: 1, Event: ev("m-1"), Actions: acts}}
	planned := r.PlanActions(events)
	other := r.PlanActions([]EventActions{{EventID: 2, Event: ev("m-2"), Actions: acts}})
	ctx := context.Background()
	endNone := func(outs []OutcomeRecord) { t.Errorf("ended %d actions of a refused batch", len(outs)) }
	if err := r.EnqueueRecordedTx(ctx, nil, events, other, []int64{7, 8}, nil, endNone); err == nil {
		t.Error("actions recorded for another event: no error")
	}
	if err := r.EnqueueRecordedTx(ctx, nil, events, planned, []int64{7}, nil, endNone); err == nil {
		t.Error("an id missing: no error")
	}
	var ended []OutcomeRecord
	im := map[RuleUser]Immunity{{RuleID: "f", UserID: "u"}: {OverturnID: 3, Reviewer: "alice"}}
	if err := r.EnqueueRecordedTx(ctx, nil, events, planned, []int64{7, 8}, im, func(outs []OutcomeRecord) { ended = outs }); err != nil {
		t.Fatal(err)
	}
	got := map[int64]string{}
	for _, o := range ended {
		got[o.ActionID] = string(o.Outcome)
	}
	if got[7] != string(DryRun) || got[8] != string(Suppressed) {
		t.Errorf("outcomes %v, want the warning a dry run and the immune flag suppressed", got)
	}
	if planned[0].WarningID == "" {
		t.Error("the planned warning has no message id")
	}
}
